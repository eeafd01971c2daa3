//! The library of the `file_cache` workspace's behaviour tests. Its one
//! cached function is called from two different binaries (the `shared_library` test and
//! the `shared_caller` binary) to show that they share its entries.

use std::sync::atomic::{AtomicUsize, Ordering};

/// How many times [`shared_square`]'s body ran in this process.
pub static SHARED_SQUARE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A cached library function, the same entries in every binary that links this crate.
#[file_cache::file_cache]
pub fn shared_square(x: u64) -> u64 {
    SHARED_SQUARE_RUNS.fetch_add(1, Ordering::SeqCst);
    x * x
}
