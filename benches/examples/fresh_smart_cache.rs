//! Fresh-process benchmark (`benches/fresh.rs`): one hit of `smart-cache` 0.2 in a new
//! process (its `println!` of the key goes wherever stdout goes: the harness sends it to
//! /dev/null). With `FRESH_FILL` set, fills the cache; otherwise fails if the body runs.

#[smart_cache::cached]
fn small(x: u64, s: &str) -> (u64, String, u64) {
    if std::env::var_os("FRESH_FILL").is_none() {
        std::process::exit(3);
    }
    (x, s.to_owned(), x * 2)
}

fn main() {
    assert_eq!(small(7, "key").0, 7);
}
