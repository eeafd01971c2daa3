//! Calls the library's cached `shared_square` and reports whether its body ran here; the
//! `shared_library` test runs it as a second binary.

use std::sync::atomic::Ordering;

fn main() {
    let x = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(12);
    let value = file_cache_tests::shared_square(x);
    let runs = file_cache_tests::SHARED_SQUARE_RUNS.load(Ordering::SeqCst);
    println!("value={value} runs={runs}");
}
