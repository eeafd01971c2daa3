//! Results persist: within a process, across processes, and not when the body panics.

mod common;

use common::{child_role, entry_files, function_dir, init, logged, marked_lines, run_child};
use file_cache::file_cache;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

static ADD_RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn add(x: u64, y: u64) -> u64 {
    ADD_RUNS.fetch_add(1, Ordering::SeqCst);
    x + y
}

#[test]
fn second_call_with_equal_arguments_is_a_hit() {
    init();
    assert_eq!(add(1, 2), 3);
    assert_eq!(add(1, 2), 3);
    assert_eq!(ADD_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(add(2, 1), 3);
    assert_eq!(
        ADD_RUNS.load(Ordering::SeqCst),
        2,
        "other arguments, other entry"
    );
    assert!(!logged(log::Level::Debug, "miss persist::add").is_empty());
    assert!(!logged(log::Level::Debug, "hit persist::add").is_empty());
}

static WORDS_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Counts words; the map arrives in a different iteration order in every process.
#[file_cache]
fn total(counts: &HashMap<String, u64>, scale: f64) -> f64 {
    WORDS_RUNS.fetch_add(1, Ordering::SeqCst);
    counts.values().sum::<u64>() as f64 * scale
}

fn word_counts() -> HashMap<String, u64> {
    // A fresh RandomState per process: iteration order differs between processes.
    (0..500).map(|i| (format!("word{i}"), i)).collect()
}

#[test]
fn results_persist_across_processes_and_hashmap_keys_are_stable() {
    let root = init();
    if let Some(role) = child_role() {
        let value = total(&word_counts(), 0.5);
        println!("VALUE {value}");
        println!("RUNS {}", WORDS_RUNS.load(Ordering::SeqCst));
        println!("ROLE {role}");
        return;
    }
    let dir = root.to_str().expect("utf-8 temp dir");
    let test = "results_persist_across_processes_and_hashmap_keys_are_stable";
    let first = run_child(test, "first", &[("FILE_CACHE_DIR", dir)]);
    let second = run_child(test, "second", &[("FILE_CACHE_DIR", dir)]);
    assert_eq!(marked_lines(&first, "ROLE "), ["first"]);
    assert_eq!(marked_lines(&first, "RUNS "), ["1"]);
    assert_eq!(
        marked_lines(&second, "RUNS "),
        ["0"],
        "second process must hit"
    );
    assert_eq!(
        marked_lines(&first, "VALUE "),
        marked_lines(&second, "VALUE ")
    );
    assert_eq!(marked_lines(&second, "VALUE "), ["62375"]);
    let entries = entry_files(&function_dir(root, "persist", "total"));
    assert_eq!(entries.len(), 1, "{entries:?}");
}

static PANIC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn fragile(x: u32) -> u32 {
    PANIC_RUNS.fetch_add(1, Ordering::SeqCst);
    if x > 10 {
        panic!("too big: {x}");
    }
    x
}

#[test]
fn a_panic_stores_nothing_and_propagates() {
    let root = init();
    for attempt in 1..=2 {
        let caught = std::panic::catch_unwind(|| fragile(11));
        let message = caught.expect_err("the panic propagates");
        assert_eq!(message.downcast_ref::<String>().unwrap(), "too big: 11");
        assert_eq!(
            PANIC_RUNS.load(Ordering::SeqCst),
            attempt,
            "nothing was stored"
        );
    }
    assert!(entry_files(&function_dir(root, "persist", "fragile")).is_empty());
    assert_eq!(fragile(3), 3);
    assert_eq!(fragile(3), 3);
    assert_eq!(PANIC_RUNS.load(Ordering::SeqCst), 3);
}
