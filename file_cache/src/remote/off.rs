//! Without a remote feature the call path's hooks do nothing (and compile to nothing).

use crate::call::CallKey;
use crate::site::Site;
use std::path::Path;

#[inline(always)]
pub(crate) fn lookup<T>(_: &'static Site, _: &CallKey, _: &Path) -> Option<T> {
    None
}

// The same signature as the remote tier's own, which the caller names with `::<T>`.
#[allow(clippy::extra_unused_type_parameters)]
#[inline(always)]
pub(crate) fn would_hit<T>(_: &'static Site, _: &CallKey, _: &Path) -> bool {
    false
}

#[inline(always)]
pub(crate) fn store(_: &Path, _: &[&[u8]]) {}
