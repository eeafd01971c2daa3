//! One program whose cached functions do different things in different builds: built by
//! `tests/builds.rs` in debug and in release, with the `extra` feature and without, and run
//! in turn against one cache. Each line printed is `name ran=<body runs> value=<Debug>`.

use file_cache::file_cache;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn profile() -> String {
    RUNS.fetch_add(1, SeqCst);
    if cfg!(debug_assertions) {
        "debug".to_owned()
    } else {
        "release".to_owned()
    }
}

/// No `cfg` in sight, but `debug_assert!` runs only with debug assertions.
#[file_cache]
fn asserted() -> String {
    RUNS.fetch_add(1, SeqCst);
    let mut checked = "unchecked";
    debug_assert!({
        checked = "checked";
        true
    });
    checked.to_owned()
}

/// Overflow checks are on exactly when debug assertions are, in both default profiles.
#[file_cache]
fn overflow(x: u8) -> String {
    RUNS.fetch_add(1, SeqCst);
    match std::panic::catch_unwind(|| std::hint::black_box(x) + 1) {
        Ok(sum) => format!("wrapped to {sum}"),
        Err(_) => "panicked".to_owned(),
    }
}

#[file_cache]
fn feature() -> String {
    RUNS.fetch_add(1, SeqCst);
    #[cfg(feature = "extra")]
    let which = "extra";
    #[cfg(not(feature = "extra"))]
    let which = "plain";
    which.to_owned()
}

/// The feature appears only inside `cfg_attr`.
#[file_cache]
fn attribute() -> String {
    RUNS.fetch_add(1, SeqCst);
    let mut which = "extra";
    // Without the feature, the statement is there; with it, `cfg(any())` removes it.
    #[cfg_attr(feature = "extra", cfg(any()))]
    {
        which = "plain";
    }
    which.to_owned()
}

fn report<T: std::fmt::Debug>(name: &str, call: impl FnOnce() -> T) {
    let before = RUNS.load(SeqCst);
    let value = call();
    let ran = RUNS.load(SeqCst) - before;
    println!("{name} ran={ran} value={value:?}");
}

fn main() {
    // `overflow`'s panic is expected in builds with overflow checks: do not print it.
    std::panic::set_hook(Box::new(|_| {}));
    report("profile", profile);
    report("asserted", asserted);
    report("overflow", || overflow(255));
    report("feature", feature);
    report("attribute", attribute);
}
