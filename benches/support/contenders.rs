//! The functions every benchmark calls, once per contender: `file_cache` (with and without
//! its memory tier), `cached` 4.x (`#[concurrent_cached(disk = true)]`, redb) and
//! `smart-cache` 0.2 (redb + rkyv). Shared by the criterion benches and the fresh-process
//! examples through `#[path]`.
#![allow(dead_code)] // each bench target uses part of this module

use cached::macros::concurrent_cached;
use file_cache::file_cache;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many times a body ran: a hit must not run it.
pub static BODY_RUNS: AtomicU64 = AtomicU64::new(0);

fn ran() {
    BODY_RUNS.fetch_add(1, Ordering::Relaxed);
}

/// The small value of the small-hit case: about 30 bytes encoded.
pub type Small = (u64, String, u64);

pub fn small_value(x: u64, s: &str) -> Small {
    (x, s.to_owned(), x * 2)
}

pub fn floats(n: u64) -> Vec<f64> {
    (0..n).map(|i| i as f64 * 0.5).collect()
}

pub fn bytes(n: u64) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

/// The summary the big-argument case returns.
pub fn summary(xs: &[f64]) -> (usize, f64, f64) {
    (xs.len(), xs[0], xs[xs.len() - 1])
}

// ---- file_cache ------------------------------------------------------------------

#[file_cache]
pub fn fc_small(x: u64, s: &str) -> Small {
    ran();
    small_value(x, s)
}

#[file_cache(memory = false)]
pub fn fc_small_disk(x: u64, s: &str) -> Small {
    ran();
    small_value(x, s)
}

#[file_cache]
pub fn fc_floats(n: u64) -> Vec<f64> {
    ran();
    floats(n)
}

#[file_cache(memory = false)]
pub fn fc_floats_disk(n: u64) -> Vec<f64> {
    ran();
    floats(n)
}

#[file_cache]
pub fn fc_bytes(n: u64) -> serde_bytes::ByteBuf {
    ran();
    serde_bytes::ByteBuf::from(bytes(n))
}

#[file_cache(memory = false)]
pub fn fc_bytes_disk(n: u64) -> serde_bytes::ByteBuf {
    ran();
    serde_bytes::ByteBuf::from(bytes(n))
}

#[file_cache]
pub fn fc_bigarg(xs: &[f64]) -> (usize, f64, f64) {
    ran();
    summary(xs)
}

// ---- cached 4.x, redb disk store ---------------------------------------------------

/// `cached` needs the function to return `Result`, for its store's errors.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerError(pub String);

impl From<cached::RedbCacheError> for PeerError {
    fn from(error: cached::RedbCacheError) -> Self {
        PeerError(format!("{error:?}"))
    }
}

// Its disk store keys by a `ToString` key: the documented way for several or
// non-`Display` arguments is `key` + `convert`, and a `Debug` string for a `Vec`.
#[concurrent_cached(disk = true, key = "String", convert = r#"{ format!("{x}/{s}") }"#)]
pub fn c_small(x: u64, s: &str) -> Result<Small, PeerError> {
    ran();
    Ok(small_value(x, s))
}

#[concurrent_cached(disk = true)]
pub fn c_floats(n: u64) -> Result<Vec<f64>, PeerError> {
    ran();
    Ok(floats(n))
}

#[concurrent_cached(disk = true)]
pub fn c_bytes(n: u64) -> Result<serde_bytes::ByteBuf, PeerError> {
    ran();
    Ok(serde_bytes::ByteBuf::from(bytes(n)))
}

#[concurrent_cached(disk = true, key = "String", convert = r#"{ format!("{xs:?}") }"#)]
pub fn c_bigarg(xs: &[f64]) -> Result<(usize, f64, f64), PeerError> {
    ran();
    Ok(summary(xs))
}

// ---- smart-cache 0.2 (prints every key with `println!`) ------------------------------

#[smart_cache::cached]
pub fn sc_small(x: u64, s: &str) -> Small {
    ran();
    small_value(x, s)
}

#[smart_cache::cached]
pub fn sc_floats(n: u64) -> Vec<f64> {
    ran();
    floats(n)
}

#[smart_cache::cached]
pub fn sc_bytes(n: u64) -> Vec<u8> {
    ran();
    bytes(n)
}

#[smart_cache::cached]
pub fn sc_bigarg(xs: &[f64]) -> (usize, f64, f64) {
    ran();
    summary(xs)
}
