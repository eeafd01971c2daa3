//! Fresh-process benchmark (the workspace's `benches/fresh.rs`): one hit of `file_cache` in a
//! new process. With `FRESH_FILL` set, fills the cache; otherwise fails if the body runs.
//!
//! It lives in this crate, not beside the other contenders in the workspace's `examples/`,
//! so that it is built as a user builds it: with this crate's default features. The
//! workspace's examples get the remote tier compiled in (the test suite needs it), which
//! made this binary 25 times bigger and its start-up (relocations, page faults) a
//! millisecond slower than any user's.

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
