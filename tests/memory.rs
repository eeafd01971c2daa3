//! The memory tier: a hit from memory needs no file; `memory = false`,
//! `FILE_CACHE_MEMORY=0`, `FILE_CACHE=off` and `FILE_CACHE=refresh` each bypass it. Each
//! case runs in a child process, since the environment is read once per process.
//! (Budget, eviction order and values too large to keep are unit tests in `memory.rs`.)

mod common;

use common::{child_role, init, marked_lines, run_child};
use file_cache::file_cache;
use std::sync::atomic::{AtomicUsize, Ordering};

static RUNS: AtomicUsize = AtomicUsize::new(0);
static RUNS_NO_MEMORY: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn double(x: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    x * 2
}

#[file_cache(memory = false)]
fn triple(x: u64) -> u64 {
    RUNS_NO_MEMORY.fetch_add(1, Ordering::SeqCst);
    x * 3
}

const TEST: &str = "child_calls_then_deletes_the_files";

/// The child's part: a call, every entry file deleted, the same call again.
#[test]
fn child_calls_then_deletes_the_files() {
    let root = init();
    assert_eq!(double(21), 42);
    assert_eq!(triple(21), 63);
    let _ = std::fs::remove_dir_all(root);
    assert_eq!(double(21), 42);
    assert_eq!(triple(21), 63);
    println!("RUNS {}", RUNS.load(Ordering::SeqCst));
    println!("RUNS_NO_MEMORY {}", RUNS_NO_MEMORY.load(Ordering::SeqCst));
}

fn runs(envs: &[(&str, &str)]) -> (usize, usize) {
    let output = run_child(TEST, "memory", envs);
    let count = |marker| marked_lines(&output, marker)[0].parse().unwrap();
    (count("RUNS "), count("RUNS_NO_MEMORY "))
}

fn fresh_root() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn a_memory_hit_needs_no_file_unless_memory_is_off_for_the_function() {
    if child_role().is_some() {
        return;
    }
    let root = fresh_root();
    let dir = root.path().to_str().unwrap();
    // Memory answers the second call although the file is gone; `memory = false` misses.
    assert_eq!(runs(&[("FILE_CACHE_DIR", dir)]), (1, 2));
}

#[test]
fn a_zero_budget_turns_the_tier_off() {
    if child_role().is_some() {
        return;
    }
    let root = fresh_root();
    let dir = root.path().to_str().unwrap();
    assert_eq!(
        runs(&[("FILE_CACHE_DIR", dir), ("FILE_CACHE_MEMORY", "0")]),
        (2, 2)
    );
}

#[test]
fn off_and_refresh_bypass_the_tier() {
    if child_role().is_some() {
        return;
    }
    for mode in ["off", "refresh"] {
        let root = fresh_root();
        let dir = root.path().to_str().unwrap();
        assert_eq!(
            runs(&[("FILE_CACHE_DIR", dir), ("FILE_CACHE", mode)]),
            (2, 2),
            "FILE_CACHE={mode}"
        );
    }
}
