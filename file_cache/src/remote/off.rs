//! Without a remote feature the call path's hooks do nothing (and compile to nothing). The
//! remote tier's signatures, and nothing else.

use std::path::Path;

/// What the remote holds for an entry (never anything, here), in the remote tier's shape.
#[allow(dead_code)]
pub(crate) enum Fetched {
    Entry(Vec<u8>),
    Refused(String),
}

#[inline(always)]
pub(crate) fn fetch(_: &Path) -> Option<(String, Fetched, u64)> {
    None
}

#[inline(always)]
pub(crate) fn store(_: &Path, _: &[&[u8]]) {}

#[inline(always)]
pub(crate) fn on_dropped(_: fn(&Path)) {}

#[inline(always)]
pub(crate) fn on_uploaded(_: fn(&Path, u64)) {}

#[inline(always)]
pub(crate) fn enabled() -> bool {
    false
}
