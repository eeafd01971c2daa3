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
