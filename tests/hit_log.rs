//! The hit log: a hit, from memory or from its file, writes no file; each process appends
//! its hits once, when it is done; the log stays a few kilobytes and its totals stay right.

mod common;

use common::{child_role, function_dir, marked_lines, root_size, run_child};
use file_cache::file_cache;
use std::path::Path;
use std::time::Duration;

/// A second of compute: each hit saves a second.
#[file_cache]
fn slow(n: u32) -> u32 {
    std::thread::sleep(Duration::from_secs(1));
    n
}

/// The same, answered from its file on every hit.
#[file_cache(memory = false)]
fn slow_file(n: u32) -> u32 {
    std::thread::sleep(Duration::from_secs(1));
    n
}

const HITS: u64 = 50_000;

/// The hit totals every process logged for `name` under `root`.
fn logged(root: &Path, name: &str) -> file_cache::inspect::HitTotals {
    file_cache::inspect::functions(root)
        .unwrap()
        .into_iter()
        .find(|f| f.function().ends_with(name))
        .unwrap_or_else(|| panic!("{name} not found"))
        .hits()
        .unwrap()
}

#[test]
fn a_hundred_thousand_hits_write_nothing_until_exit_and_then_a_record() {
    match child_role().as_deref() {
        // No `common::init()`: its logger would print a line per hit.
        Some("store") => {
            assert_eq!((slow(1), slow_file(1)), (1, 1));
            return;
        }
        Some("hit") => {
            // The first hit of each reads the file (and records the function's version).
            assert_eq!((slow(1), slow_file(1)), (1, 1));
            let writes = file_cache::__private::hit_log_writes();
            for _ in 1..HITS {
                assert_eq!(slow(1), 1);
                assert_eq!(slow_file(1), 1);
            }
            let hits: u64 = file_cache::stats().iter().map(|s| s.hits).sum();
            assert_eq!(hits, 2 * HITS);
            println!(
                "HIT_LOG_WRITES {}",
                file_cache::__private::hit_log_writes() - writes
            );
            return;
        }
        _ => {}
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_str().unwrap();
    let envs = [("FILE_CACHE_DIR", dir)];
    let test = "a_hundred_thousand_hits_write_nothing_until_exit_and_then_a_record";
    run_child(test, "store", &envs);
    // A log many processes appended to: compacted by the next append.
    let slow_dir = function_dir(root.path(), "hit_log", "slow");
    let mut old_log = Vec::new();
    for _ in 0..300 {
        old_log.extend_from_slice(&1u64.to_le_bytes());
        old_log.extend_from_slice(&1_000_000u64.to_le_bytes());
    }
    std::fs::write(slow_dir.join(".hits"), &old_log).unwrap();
    let before = root_size(root.path());
    for run in 1..=2u64 {
        let output = run_child(test, "hit", &envs);
        let writes = marked_lines(&output, "HIT_LOG_WRITES ");
        assert_eq!(writes, ["0"], "writes to the hit log during the hits");
        let grown = root_size(root.path()).saturating_sub(before);
        assert!(grown <= 4096, "run {run}: the root grew by {grown} bytes");
        let slow = logged(root.path(), "::slow");
        assert_eq!(slow.hits, 300 + run * HITS);
        // Each hit saves the compute time its entry recorded: a second and a little more.
        let saved = slow.time_saved - Duration::from_secs(300);
        let expected = Duration::from_secs(run * HITS);
        assert!(
            saved >= expected && saved < expected * 101 / 100,
            "{saved:?}"
        );
        let slow_file = logged(root.path(), "::slow_file");
        assert_eq!(slow_file.hits, run * HITS);
        assert!(slow_file.time_saved >= Duration::from_secs(run * HITS));
    }
    let log_len = std::fs::metadata(slow_dir.join(".hits")).unwrap().len();
    assert!(log_len <= 32, "the long log was compacted: {log_len} bytes");
}

#[test]
fn threads_that_end_before_the_last_write_nothing() {
    if child_role().as_deref() == Some("threads") {
        assert_eq!(slow(2), 2);
        let writes = file_cache::__private::hit_log_writes();
        // The main thread has hit: it writes the log when it ends, not these threads.
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..100 {
                        assert_eq!(slow(2), 2);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        println!(
            "HIT_LOG_WRITES {}",
            file_cache::__private::hit_log_writes() - writes
        );
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_str().unwrap();
    let output = run_child(
        "threads_that_end_before_the_last_write_nothing",
        "threads",
        &[("FILE_CACHE_DIR", dir)],
    );
    assert_eq!(marked_lines(&output, "HIT_LOG_WRITES "), ["0"]);
    let totals = logged(root.path(), "::slow");
    assert_eq!(totals.hits, 400, "logged at exit, once");
    let log_len = std::fs::metadata(function_dir(root.path(), "hit_log", "slow").join(".hits"))
        .unwrap()
        .len();
    assert_eq!(log_len, 16);
}

#[test]
fn processes_compacting_together_leave_a_whole_log() {
    match child_role().as_deref() {
        Some("store") => {
            assert_eq!(slow(3), 3);
            return;
        }
        Some("hit") => {
            for _ in 0..10 {
                assert_eq!(slow(3), 3);
            }
            return;
        }
        _ => {}
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_str().unwrap();
    let envs = [("FILE_CACHE_DIR", dir)];
    let test = "processes_compacting_together_leave_a_whole_log";
    run_child(test, "store", &envs);
    // One record short of compaction: every process's append compacts.
    let log = function_dir(root.path(), "hit_log", "slow").join(".hits");
    let record = [1u64.to_le_bytes(), 1u64.to_le_bytes()].concat();
    std::fs::write(&log, record.repeat(4096 / 16)).unwrap();
    let children: Vec<_> = (0..8)
        .map(|_| common::spawn_child(test, "hit", &envs))
        .collect();
    for child in children {
        child.finish();
    }
    let bytes = std::fs::read(&log).unwrap();
    assert_eq!(bytes.len() % 16, 0, "torn log of {} bytes", bytes.len());
    assert!(bytes.len() <= 4096 + 8 * 16, "{} bytes", bytes.len());
    // Records appended during another process's compaction may be lost; the rest add up.
    let totals = logged(root.path(), "::slow");
    assert!(
        (256..=256 + 80).contains(&totals.hits),
        "{} hits logged",
        totals.hits
    );
    assert!(common::temp_files(root.path()).is_empty());
}
