//! Entries on disk: where they live, and that every kind of damage is a logged miss that
//! recomputes the right value and repairs the file.

mod common;

use common::{entry_files, function_dir, init, logged};
use file_cache::file_cache;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

fn series(n: u64) -> Vec<u64> {
    (0..n).map(|i| i * i).collect()
}

/// Defines a cached function with its own run counter, so tests do not share state. Out
/// of the memory tier: these tests damage files under a running process, which that tier
/// (by design, see the README) would not see.
macro_rules! cached_series {
    ($name:ident, $runs:ident) => {
        static $runs: AtomicUsize = AtomicUsize::new(0);
        #[file_cache(memory = false)]
        fn $name(n: u64) -> Vec<u64> {
            $runs.fetch_add(1, Ordering::SeqCst);
            series(n)
        }
    };
}

cached_series!(layout, LAYOUT_RUNS);
cached_series!(corrupted, CORRUPTED_RUNS);
cached_series!(truncated, TRUNCATED_RUNS);
cached_series!(emptied, EMPTIED_RUNS);
cached_series!(swapped, SWAPPED_RUNS);
cached_series!(foreign, FOREIGN_RUNS);

fn only_entry(dir: &Path) -> PathBuf {
    let files = entry_files(dir);
    assert_eq!(files.len(), 1, "{files:?}");
    files.into_iter().next().unwrap()
}

#[test]
fn one_file_per_entry_in_a_shard_of_the_function_directory() {
    let root = init();
    layout(5);
    layout(6);
    assert_eq!(LAYOUT_RUNS.load(Ordering::SeqCst), 2);
    let dir = function_dir(root, "entries", "layout");
    let files = entry_files(&dir);
    assert_eq!(files.len(), 2);
    for file in files {
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        assert_eq!(name.len(), 64);
        assert!(name.bytes().all(|b| b.is_ascii_hexdigit()));
        let shard = file.parent().unwrap();
        assert_eq!(shard.parent().unwrap(), dir);
        assert_eq!(shard.file_name().unwrap().to_str().unwrap(), &name[..2]);
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(&bytes[..8], b"FCACHE\r\n");
        assert!(String::from_utf8_lossy(&bytes).contains("alloc::vec::Vec<u64>"));
    }
}

/// Damages the one entry of `f(40)`, then checks the next call recomputes the right value,
/// logs one warning, and leaves a good entry that the call after hits.
fn damage_is_a_repaired_miss(
    name: &str,
    f: fn(u64) -> Vec<u64>,
    runs: &AtomicUsize,
    damage: impl FnOnce(&Path),
) {
    let root = init();
    assert_eq!(f(40), series(40));
    let file = only_entry(&function_dir(root, "entries", name));
    let good = std::fs::read(&file).unwrap();
    damage(&file);
    assert_ne!(
        std::fs::read(&file).unwrap(),
        good,
        "the damage changed the file"
    );
    assert_eq!(
        f(40),
        series(40),
        "a damaged entry never gives a wrong value"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the body ran again");
    let warnings = logged(
        log::Level::Warn,
        &format!("entries::{name}: unusable entry"),
    );
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let repaired = std::fs::read(&file).unwrap();
    assert_eq!(repaired.len(), good.len(), "the entry was rewritten");
    assert_eq!(f(40), series(40));
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the repaired entry hits");
}

#[test]
fn a_corrupted_byte_is_a_miss() {
    damage_is_a_repaired_miss("corrupted", corrupted, &CORRUPTED_RUNS, |file| {
        let mut bytes = std::fs::read(file).unwrap();
        let middle = bytes.len() - 20;
        bytes[middle] ^= 0x40;
        std::fs::write(file, bytes).unwrap();
    });
}

#[test]
fn a_truncated_entry_is_a_miss() {
    damage_is_a_repaired_miss("truncated", truncated, &TRUNCATED_RUNS, |file| {
        let bytes = std::fs::read(file).unwrap();
        std::fs::write(file, &bytes[..bytes.len() / 2]).unwrap();
    });
}

#[test]
fn an_empty_entry_is_a_miss() {
    damage_is_a_repaired_miss("emptied", emptied, &EMPTIED_RUNS, |file| {
        std::fs::write(file, b"").unwrap();
    });
}

#[test]
fn an_entry_of_another_key_is_a_miss() {
    damage_is_a_repaired_miss("swapped", swapped, &SWAPPED_RUNS, |file| {
        // Entry of f(41), same size as f(40)'s, copied over it.
        swapped(41);
        let dir = file.parent().unwrap().parent().unwrap();
        let other = entry_files(dir).into_iter().find(|p| p != file).unwrap();
        std::fs::copy(other, file).unwrap();
        assert_eq!(SWAPPED_RUNS.load(Ordering::SeqCst), 2);
        SWAPPED_RUNS.store(1, Ordering::SeqCst);
    });
}

#[test]
fn a_file_that_is_not_an_entry_is_a_miss() {
    damage_is_a_repaired_miss("foreign", foreign, &FOREIGN_RUNS, |file| {
        std::fs::write(
            file,
            "not an entry, but long enough to have a header. ".repeat(8),
        )
        .unwrap();
    });
}
