//! `FILE_CACHE_MAX_SIZE`: a write-heavy workload keeps the root near the bound, and the
//! entries that go are the least recently used. Each case runs in a child process, since
//! the bound is read from the environment once per process.

mod common;

use common::{child_role, entry_files, root_size, run_child};
use file_cache::file_cache;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// About 10 kB on disk.
#[file_cache]
fn blob(n: u32) -> Vec<u8> {
    vec![n as u8; 10_000]
}

const BOUND: u64 = 100_000;

fn entry_of(n: u32) -> Option<PathBuf> {
    entry_files(file_cache::cache_dir())
        .into_iter()
        .find(|path| std::fs::read(path).is_ok_and(|bytes| bytes.ends_with(&[n as u8; 10_000])))
}

fn in_child(test: &str) -> Option<tempfile::TempDir> {
    if child_role().is_some() {
        common::init();
        return None;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_str().unwrap();
    run_child(
        test,
        "bounded",
        &[("FILE_CACHE_DIR", dir), ("FILE_CACHE_MAX_SIZE", "100kB")],
    );
    Some(root)
}

#[test]
fn writing_three_times_the_bound_ends_within_ten_percent_of_it() {
    if let Some(root) = in_child("writing_three_times_the_bound_ends_within_ten_percent_of_it") {
        let size = root_size(root.path());
        assert!(
            size <= BOUND + BOUND / 10,
            "the root holds {size} bytes, bound {BOUND}"
        );
        assert!(!entry_files(root.path()).is_empty());
        return;
    }
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for n in 0..30 {
        let call = Instant::now();
        blob(n);
        slowest = slowest.max(call.elapsed());
    }
    let written: u64 = file_cache::stats().iter().map(|s| s.bytes_written).sum();
    println!(
        "wrote {written} bytes in {:?}; slowest call {slowest:?}; root now {} bytes",
        started.elapsed(),
        root_size(file_cache::cache_dir())
    );
}

#[test]
fn the_least_recently_used_entries_go_first() {
    if let Some(root) = in_child("the_least_recently_used_entries_go_first") {
        let size = root_size(root.path());
        assert!(size <= BOUND, "{size}");
        return;
    }
    for n in 0..8 {
        blob(n);
    }
    // mtimes have the file system's clock granularity (a few ms): leave a gap.
    std::thread::sleep(Duration::from_millis(50));
    blob(0); // a hit: entry 0 becomes the most recently used of the first eight
    std::thread::sleep(Duration::from_millis(50));
    blob(8); // ~92 kB: past 90% of the bound, the pruner goes down to 75 kB
    let gave_up = Instant::now() + Duration::from_secs(30);
    let present = || -> Vec<u32> { (0..9).filter(|&n| entry_of(n).is_some()).collect() };
    // A pass removes its victims one by one (and the shards they empty): wait for it to
    // end, not for its first removal.
    while present().len() > 7 && Instant::now() < gave_up {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Entries 1 to 7 were written within a few ms, so their mtimes may tie: which two of
    // them go is open; that entry 0, used after them, and the newer 8 stay is not.
    let present = present();
    assert_eq!(present.len(), 7, "down to 75 kB: {present:?}");
    assert!(
        present.starts_with(&[0]) && present.ends_with(&[8]),
        "{present:?}"
    );
}

/// 64 KiB and a little more on disk; `tag` tells the values apart by their bytes.
#[file_cache]
fn big(tag: u8) -> Vec<u8> {
    vec![tag; 65_536]
}

/// The entry holding `big(tag)`, if it is stored.
fn big_entry(root: &Path, tag: u8) -> Option<PathBuf> {
    entry_files(root)
        .into_iter()
        .find(|path| std::fs::read(path).is_ok_and(|bytes| bytes.ends_with(&[tag; 65_536])))
}

const MIB: u64 = 1 << 20;

/// Waits for a condition another thread or process makes true; `false` after 30 s.
fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let gave_up = Instant::now() + Duration::from_secs(30);
    while !done() {
        if Instant::now() > gave_up {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

#[test]
fn a_hit_log_larger_than_the_bound_neither_evicts_entries_nor_keeps_the_pruner_busy() {
    if child_role().is_some() {
        common::init();
        for n in 0..15 {
            blob(n);
        }
        // The first store of a process wakes the pruner for a first scan.
        assert!(wait_until(|| file_cache::__private::prune_passes() >= 1));
        let passes = file_cache::__private::prune_passes();
        // A pruner that cannot reach its target would pass again at once, over and over.
        std::thread::sleep(Duration::from_millis(500));
        let more = file_cache::__private::prune_passes() - passes;
        assert!(more <= 1, "{more} more passes in half a second");
        let kept = (0..15).filter(|&n| entry_of(n).is_some()).count();
        assert_eq!(kept, 15, "entries evicted");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    // A hit log of 15,000 records (240 kB), as a release that never compacted it left.
    let function = common::function_dir(root.path(), "size_limit", "blob");
    std::fs::create_dir_all(&function).unwrap();
    std::fs::write(function.join(".hits"), vec![1u8; 15_000 * 16]).unwrap();
    run_child(
        "a_hit_log_larger_than_the_bound_neither_evicts_entries_nor_keeps_the_pruner_busy",
        "bounded",
        &[
            ("FILE_CACHE_DIR", root.path().to_str().unwrap()),
            ("FILE_CACHE_MAX_SIZE", "200kB"),
        ],
    );
}

#[test]
fn a_burst_the_pruner_does_not_keep_up_with_keeps_the_newest_values() {
    if child_role().is_some() {
        common::init();
        // A busy machine: the pruning thread does not get to run during the burst.
        file_cache::__private::hold_pruner(true);
        for tag in 0..96 {
            big(tag);
        }
        let root = file_cache::cache_dir();
        let missing: Vec<u8> = (80..96)
            .filter(|&tag| big_entry(root, tag).is_none())
            .collect();
        assert!(missing.is_empty(), "newest values not stored: {missing:?}");
        let size = root_size(root);
        assert!(size <= 2 * MIB + 2 * MIB / 10, "{size} bytes");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    run_child(
        "a_burst_the_pruner_does_not_keep_up_with_keeps_the_newest_values",
        "bounded",
        &[
            ("FILE_CACHE_DIR", root.path().to_str().unwrap()),
            ("FILE_CACHE_MAX_SIZE", "2MiB"),
        ],
    );
}

/// The size of the root's entries as the size record at the root counts it.
fn recorded_size(root: &Path) -> Option<u64> {
    let bytes = std::fs::read(root.join(".size")).ok()?;
    Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
}

/// Children of the test below; they write in rounds of this many values, all together.
const ROUND: u8 = 5;
const WRITERS: u8 = 4;
const VALUES: u8 = 50;

#[test]
fn four_processes_writing_together_end_within_ten_percent_with_their_newest_values() {
    if let Some(role) = child_role() {
        common::init();
        let me: u8 = role.parse().unwrap();
        // Two of them on a busy machine: their pruning threads do not get to run.
        file_cache::__private::hold_pruner(me < 2);
        let meeting = PathBuf::from(std::env::var("MEETING").unwrap());
        for round in 0..VALUES / ROUND {
            for n in round * ROUND..(round + 1) * ROUND {
                big(me * VALUES + n);
            }
            // Waits for the others, so that no writer's newest values are older than
            // another's whole run.
            std::fs::write(meeting.join(format!("{round}-{me}")), "").unwrap();
            assert!(wait_until(
                || (0..WRITERS).all(|other| meeting.join(format!("{round}-{other}")).exists())
            ));
        }
        // None of the stores was skipped: each wrote its 64 KiB and more (its header).
        let written: u64 = file_cache::stats().iter().map(|s| s.bytes_written).sum();
        assert!(
            written >= u64::from(VALUES) * 65_536,
            "{written} bytes stored"
        );
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let meeting = tempfile::tempdir().unwrap();
    let dir = root.path().to_str().unwrap();
    let test = "four_processes_writing_together_end_within_ten_percent_with_their_newest_values";
    let writers: Vec<_> = (0..WRITERS)
        .map(|me| {
            common::spawn_child(
                test,
                &me.to_string(),
                &[
                    ("FILE_CACHE_DIR", dir),
                    ("FILE_CACHE_MAX_SIZE", "2MiB"),
                    ("MEETING", meeting.path().to_str().unwrap()),
                    ("RUST_LOG", "info"),
                ],
            )
        })
        .collect();
    for writer in writers {
        writer.finish();
    }
    let size = root_size(root.path());
    let entries: u64 = entry_files(root.path())
        .iter()
        .map(|path| std::fs::metadata(path).map_or(0, |meta| meta.len()))
        .sum();
    let record = recorded_size(root.path());
    println!(
        "four writers: the root ends at {size} bytes, {entries} of them entries; the size record says {record:?}"
    );
    assert!(
        size <= 2 * MIB + 2 * MIB / 10,
        "the root holds {size} bytes, {entries} of them entries, bound {}; the size record says {record:?}",
        2 * MIB
    );
    // What keeps the bound is the shared count: it may count a store twice, never miss one.
    assert!(
        record.is_some_and(|record| record >= entries),
        "the size record says {record:?} bytes, the entries hold {entries}"
    );
    for me in 0..WRITERS {
        let last = (VALUES - 4..VALUES).map(|n| me * VALUES + n);
        let missing: Vec<u8> = last
            .filter(|&tag| big_entry(root.path(), tag).is_none())
            .collect();
        assert!(
            missing.is_empty(),
            "writer {me}: newest values gone: {missing:?}"
        );
    }
}
