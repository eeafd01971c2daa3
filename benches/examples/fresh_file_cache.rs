//! Fresh-process benchmark (`benches/fresh.rs`): one hit of `file_cache` in a new process.
//! With `FRESH_FILL` set, fills the cache; otherwise fails if the body runs.
//!
//! `benches/fresh.rs` builds it without this package's `remote` feature, so `file_cache` has
//! its default features, as in a user's program: with the remote tier compiled in, this
//! binary was 25 times bigger and its start-up (relocations, page faults) a millisecond
//! slower.

use file_cache::file_cache;

#[file_cache]
fn small(x: u64, s: &str) -> (u64, String, u64) {
    if std::env::var_os("FRESH_FILL").is_none() {
        std::process::exit(3);
    }
    (x, s.to_owned(), x * 2)
}

fn main() {
    assert_eq!(small(7, "key").0, 7);
}
