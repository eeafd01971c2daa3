//! `FILE_CACHE_MAX_SIZE`: a write-heavy workload keeps the root near the bound, and the
//! entries that go are the least recently used. Each case runs in a child process, since
//! the bound is read from the environment once per process.

mod common;

use common::{child_role, entry_files, run_child};
use file_cache::file_cache;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// About 10 kB on disk.
#[file_cache]
fn blob(n: u32) -> Vec<u8> {
    vec![n as u8; 10_000]
}

const BOUND: u64 = 100_000;

fn root_size(root: &Path) -> u64 {
    fn walk(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .map(|read| {
                read.flatten()
                    .map(|item| {
                        let path = item.path();
                        if path.is_dir() {
                            walk(&path)
                        } else {
                            std::fs::metadata(&path).map_or(0, |m| m.len())
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(root)
}

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
    while present().len() == 9 && Instant::now() < gave_up {
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
