//! Fresh-process benchmark (`benches/fresh.rs`): one hit of `cached` 4.x with its redb disk
//! store in a new process. With `FRESH_FILL` set, fills the cache; otherwise fails if the
//! body runs.

use cached::macros::concurrent_cached;

#[derive(Debug, Clone)]
struct PeerError;

impl From<cached::RedbCacheError> for PeerError {
    fn from(_: cached::RedbCacheError) -> Self {
        PeerError
    }
}

#[concurrent_cached(disk = true, key = "String", convert = r#"{ format!("{x}/{s}") }"#)]
fn small(x: u64, s: &str) -> Result<(u64, String, u64), PeerError> {
    if std::env::var_os("FRESH_FILL").is_none() {
        std::process::exit(3);
    }
    Ok((x, s.to_owned(), x * 2))
}

fn main() {
    assert_eq!(small(7, "key").expect("no store error").0, 7);
}
