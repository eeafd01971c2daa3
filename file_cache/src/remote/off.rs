//! Without a remote feature the call path's hooks do nothing (and compile to nothing).

use crate::call::CallKey;
use crate::site::Site;
use std::path::Path;

#[inline(always)]
pub(crate) fn lookup<T>(_: &'static Site, _: &CallKey, _: &Path) -> Option<T> {
    None
}

#[inline(always)]
pub(crate) fn would_hit<T>(_: &'static Site, _: &CallKey, _: &Path) -> bool {
    false
}

#[inline(always)]
pub(crate) fn store(_: &Path, _: &[&[u8]]) {}
