//! file_cache: persistent memoization for Rust functions (work in progress skeleton).
#![forbid(unsafe_code)]

pub(crate) mod config;
pub(crate) mod key;
