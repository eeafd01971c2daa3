//! What a miss + store does to the files of the cache: on Unix, the lock file its caller
//! made and held while the body ran becomes the entry (written into, then renamed over it),
//! so a store creates one file, as a plain atomic write does, and removes none.
#![cfg(unix)]

mod common;

use common::{entry_files, function_dir, init, lock_files, temp_files};
use file_cache::file_cache;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Mutex;

/// The lock files under the function's directory while its body ran, with their inodes.
static SEEN: Mutex<Vec<(PathBuf, u64)>> = Mutex::new(Vec::new());

fn seen_now(name: &str) {
    let dir = function_dir(init(), "store_files", name);
    let locks = lock_files(&dir)
        .into_iter()
        .map(|path| {
            let inode = std::fs::symlink_metadata(&path).unwrap().ino();
            (path, inode)
        })
        .collect();
    *SEEN.lock().unwrap() = locks;
}

#[file_cache]
fn stored(x: u64) -> u64 {
    seen_now("stored");
    x * 2
}

#[test]
fn the_lock_file_of_a_miss_becomes_its_entry() {
    let root = init();
    assert_eq!(stored(21), 42);
    let seen = std::mem::take(&mut *SEEN.lock().unwrap());
    assert_eq!(seen.len(), 1, "the body runs under one lock file: {seen:?}");
    let dir = function_dir(root, "store_files", "stored");
    let entries = entry_files(&dir);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(
        std::fs::symlink_metadata(entry).unwrap().ino(),
        seen[0].1,
        "the entry is the file the body ran under"
    );
    assert!(lock_files(&dir).is_empty(), "{:?}", lock_files(&dir));
    assert!(temp_files(&dir).is_empty(), "{:?}", temp_files(&dir));
    assert_eq!(stored(21), 42, "a hit");
}
