//! Crash safety: writers killed with SIGKILL at random moments while they write large
//! entries never leave an entry that reads back wrong, and what they leave behind
//! (temporary and lock files) is removed by a later writer once it is stale.

mod common;

use common::{child_role, entry_files, function_dir, init, lock_files, spawn_child};
use common::{run_child, temp_files};
use file_cache::file_cache;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const KEYS: u64 = 6;

/// A large value, different for every key: 1 MiB to 6 MiB.
fn expected(k: u64) -> Vec<u8> {
    let mut value = vec![k as u8 ^ 0x5a; (k as usize + 1) << 20];
    value[..8].copy_from_slice(&k.to_le_bytes());
    value
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn large(k: u64) -> Vec<u8> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    expected(k)
}

const CHILD: &str = "child_calls";

#[test]
fn child_calls() {
    init();
    match child_role().as_deref() {
        // Rewrites every entry over and over (FILE_CACHE=refresh) until killed.
        Some("writer") => {
            println!("WRITING");
            for k in (0..KEYS).cycle() {
                assert_eq!(large(k).len(), expected(k).len());
            }
        }
        Some("reader") => {
            for k in 0..KEYS {
                assert!(large(k) == expected(k), "a wrong value for key {k}");
            }
            println!("RUNS {}", RUNS.load(Ordering::SeqCst));
        }
        _ => {}
    }
}

/// A small xorshift: random moments without a dependency.
fn random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn writers_killed_at_random_moments_never_leave_a_wrong_entry() {
    if child_role().is_some() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_str().unwrap();
    // Slow writes (a test hook): most kills land in the middle of writing an entry.
    let writer_env = [
        ("FILE_CACHE_DIR", dir),
        ("FILE_CACHE", "refresh"),
        ("FILE_CACHE_TEST_FAULTS", "slow_write"),
    ];
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let mut kills = 0;
    for _round in 0..12 {
        // Two writers race on the same keys (and their locks); both die mid-work.
        let mut writers: Vec<_> = (0..2)
            .map(|_| spawn_child(CHILD, "writer", &writer_env))
            .collect();
        for writer in &mut writers {
            assert!(writer.wait_for("stored crash::large"));
        }
        for writer in writers {
            std::thread::sleep(Duration::from_millis(random(&mut seed) % 1000));
            writer.kill();
            kills += 1;
        }
    }
    assert!(kills >= 20);
    let function = function_dir(root.path(), "crash", "large");
    let leftover_temps = temp_files(&function).len();
    let leftover_locks = lock_files(&function).len();
    println!("after {kills} kills: {leftover_temps} temporary files, {leftover_locks} lock files");
    assert!(leftover_temps > 0, "some kills landed mid-write");

    // Every entry reads back right or is a miss.
    let reader_env = [("FILE_CACHE_DIR", dir)];
    let lines = run_child(CHILD, "reader", &reader_env);
    let misses: usize = common::marked_lines(&lines, "RUNS ")[0].parse().unwrap();
    println!("{misses} of {KEYS} keys were misses");
    assert_eq!(entry_files(&function).len() as u64, KEYS);

    // A later writer removes what the killed ones left, once it is old (here: at once).
    let sweep_env = [
        ("FILE_CACHE_DIR", dir),
        ("FILE_CACHE", "refresh"),
        ("FILE_CACHE_TEST_STALE_SECS", "0"),
    ];
    let lines = run_child(CHILD, "reader", &sweep_env);
    assert_eq!(common::marked_lines(&lines, "RUNS "), [KEYS.to_string()]);
    assert!(
        temp_files(&function).is_empty(),
        "{:?}",
        temp_files(&function)
    );
    assert!(
        lock_files(&function).is_empty(),
        "{:?}",
        lock_files(&function)
    );
    let lines = run_child(CHILD, "reader", &reader_env);
    assert_eq!(common::marked_lines(&lines, "RUNS "), ["0"], "all hits now");
}
