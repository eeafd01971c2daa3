//! Self-healing: many entries damaged in every way at once (bytes flipped, truncated,
//! emptied, another entry's file copied over them) still give the right values, in a new
//! process, and are rewritten so the next process hits them all.

mod common;

use common::{child_role, entry_files, function_dir, init, marked_lines, run_child};
use file_cache::file_cache;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

const KEYS: u64 = 40;

fn expected(k: u64) -> Vec<u64> {
    (0..k * 37).map(|i| i * k).collect()
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn values(k: u64) -> Vec<u64> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    expected(k)
}

#[test]
fn child_calls() {
    init();
    if child_role().is_none() {
        return;
    }
    for k in 0..KEYS {
        assert_eq!(values(k), expected(k), "key {k}");
    }
    println!("RUNS {}", RUNS.load(Ordering::SeqCst));
}

fn runs(output: &std::process::Output) -> usize {
    marked_lines(output, "RUNS ")[0].parse().unwrap()
}

#[test]
fn damaged_entries_give_right_values_and_are_rewritten() {
    if child_role().is_some() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let env = [("FILE_CACHE_DIR", root.path().to_str().unwrap())];
    assert_eq!(runs(&run_child("child_calls", "fill", &env)), KEYS as usize);
    let files: Vec<PathBuf> = entry_files(&function_dir(root.path(), "healing", "values"));
    assert_eq!(files.len(), KEYS as usize);
    let good: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let mut damaged = 0;
    for (i, file) in files.iter().enumerate() {
        let bytes = &good[i];
        let new = match i % 5 {
            // One byte flipped, somewhere different in each file (header and payload).
            0 => {
                let mut b = bytes.clone();
                let at = (i * 7919) % b.len();
                b[at] ^= 1 << (i % 8);
                b
            }
            1 => bytes[..(i * 13) % bytes.len()].to_vec(),
            2 => Vec::new(),
            // Entry A's file copied over entry B's: a valid entry, for another key.
            3 => good[(i + 1) % good.len()].clone(),
            _ => continue,
        };
        std::fs::write(file, new).unwrap();
        damaged += 1;
    }
    let output = run_child("child_calls", "check", &env);
    assert_eq!(
        runs(&output),
        damaged,
        "each damaged entry recomputed, once"
    );
    let warnings = marked_lines(&output, "LOG WARN ");
    assert_eq!(warnings.len(), 1, "one warning per function: {warnings:?}");
    assert!(warnings[0].contains("unusable entry"), "{warnings:?}");
    for (i, file) in files.iter().enumerate() {
        let now = std::fs::read(file).unwrap();
        assert_eq!(now.len(), good[i].len(), "entry {i} was rewritten whole");
    }
    let output = run_child("child_calls", "again", &env);
    assert_eq!(runs(&output), 0, "every entry hits now");
    assert!(marked_lines(&output, "LOG WARN ").is_empty());
}

static LINKED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache(memory = false)]
fn linked(k: u64) -> u64 {
    LINKED_RUNS.fetch_add(1, Ordering::SeqCst);
    k + 100
}

/// An entry replaced by a symbolic link, even to a file holding that very entry, is never
/// read through: a miss, and the store puts a real file in its place.
#[cfg(unix)]
#[test]
fn an_entry_that_is_a_link_is_a_miss_and_is_replaced_by_a_file() {
    let root = init();
    assert_eq!(linked(1), 101);
    let files = entry_files(&function_dir(root, module_path!(), "linked"));
    let entry = files[0].clone();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("entry");
    std::fs::rename(&entry, &target).unwrap();
    let before = std::fs::read(&target).unwrap();
    std::os::unix::fs::symlink(&target, &entry).unwrap();
    assert_eq!(linked(1), 101);
    assert_eq!(
        LINKED_RUNS.load(Ordering::SeqCst),
        2,
        "the link was not read"
    );
    let now = std::fs::symlink_metadata(&entry).unwrap();
    assert!(now.is_file(), "a real entry replaced the link");
    assert_eq!(
        std::fs::read(&target).unwrap(),
        before,
        "the target is untouched"
    );
    assert_eq!(linked(1), 101);
    assert_eq!(LINKED_RUNS.load(Ordering::SeqCst), 2, "and it hits");
}
