//! `#[file_cache(dir = "...")]`: a relative path is joined onto the root in force
//! (`FILE_CACHE_DIR`, else the default root), so `FILE_CACHE_DIR` moves it; an absolute
//! path is the function's root whatever `FILE_CACHE_DIR` says (the attribute wins).

mod common;

use file_cache::file_cache;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache(dir = "models/v2")]
fn embed(text: &str) -> usize {
    RUNS.fetch_add(1, Ordering::SeqCst);
    text.len()
}

const ABSOLUTE: &str = "/tmp/file_cache_suite_dir_option";

#[file_cache(dir = "/tmp/file_cache_suite_dir_option")]
fn pinned(x: u32) -> u32 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    x + 1
}

#[test]
fn relative_dir_is_under_the_root_and_absolute_dir_wins_over_file_cache_dir() {
    let root = common::init();
    assert_eq!(
        std::env::var_os("FILE_CACHE_DIR").as_deref(),
        Some(root.as_os_str())
    );
    let _ = std::fs::remove_dir_all(ABSOLUTE);

    assert_eq!(embed("four"), 4);
    assert_eq!(embed("four"), 4);
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
    let relative = common::function_dir(&root.join("models/v2"), "dir_option", "embed");
    assert_eq!(
        common::entry_files(&relative).len(),
        1,
        "{}",
        relative.display()
    );
    assert!(!common::function_dir(root, "dir_option", "embed").exists());

    assert_eq!(pinned(1), 2);
    assert_eq!(pinned(1), 2);
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);
    let absolute = common::function_dir(Path::new(ABSOLUTE), "dir_option", "pinned");
    assert_eq!(
        common::entry_files(&absolute).len(),
        1,
        "{}",
        absolute.display()
    );
    assert!(!common::function_dir(root, "dir_option", "pinned").exists());
    std::fs::remove_dir_all(ABSOLUTE).expect("clean up");
}
