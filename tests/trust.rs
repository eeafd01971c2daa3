//! Trust of the root directory: created private, entries private, and a root that someone
//! else could write to (a symbolic link, another user's directory, a group- or
//! world-writable one) is not used unless `FILE_CACHE_SHARED=1` says so. Each case runs in
//! a child process, since the root is checked once per process.

mod common;

use common::{child_role, entry_files, function_dir, init, marked_lines, run_child};
use file_cache::file_cache;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn double(x: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    x * 2
}

#[file_cache]
fn triple(x: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    x * 3
}

/// Two functions, each called twice: 2 runs when cached, 4 when not.
#[test]
fn child_calls() {
    init();
    if child_role().is_none() {
        return;
    }
    for _ in 0..2 {
        assert_eq!((double(21), triple(2)), (42, 6));
    }
    println!("RUNS {}", RUNS.load(Ordering::SeqCst));
}

struct Run {
    runs: usize,
    warnings: Vec<String>,
}

fn run(envs: &[(&str, &str)]) -> Run {
    let output = run_child("child_calls", "trust", envs);
    Run {
        runs: marked_lines(&output, "RUNS ")[0].parse().unwrap(),
        warnings: marked_lines(&output, "LOG WARN "),
    }
}

fn run_in(root: &Path, extra: &[(&str, &str)]) -> Run {
    let mut envs = vec![("FILE_CACHE_DIR", root.to_str().unwrap())];
    envs.extend_from_slice(extra);
    run(&envs)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Refused: one warning saying why, and every call ran.
fn assert_refused(run: &Run, why: &str) {
    assert_eq!(run.runs, 4, "uncached");
    assert_eq!(run.warnings.len(), 1, "{:?}", run.warnings);
    assert!(run.warnings[0].contains(why), "{:?}", run.warnings);
    assert!(
        run.warnings[0].contains("FILE_CACHE_SHARED"),
        "{:?}",
        run.warnings
    );
}

const NOBODY: u32 = 65534;

#[test]
fn the_default_root_is_created_0700_and_entries_are_written_0600() {
    if child_role().is_some() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    let output = command
        .args(["--exact", "child_calls", "--nocapture"])
        .env(common::CHILD_VAR, "default")
        .env_remove("FILE_CACHE_DIR")
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(marked_lines(&output, "RUNS "), ["2"]);
    let root = tmp.path().join("file_cache");
    assert_eq!(mode(&root), 0o700);
    let entries = entry_files(&root);
    assert_eq!(entries.len(), 2);
    for entry in entries {
        assert_eq!(mode(&entry), 0o600, "{}", entry.display());
        assert_eq!(mode(entry.parent().unwrap()), 0o700);
    }
    // A default root planted by another user is refused the same way.
    let tmp = tempfile::tempdir().unwrap();
    let planted = tmp.path().join("file_cache");
    std::fs::create_dir(&planted).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&planted, Some(NOBODY), Some(NOBODY)).unwrap();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_calls", "--nocapture"])
        .env(common::CHILD_VAR, "default")
        .env_remove("FILE_CACHE_DIR")
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(marked_lines(&output, "RUNS "), ["4"]);
    assert!(entry_files(&planted).is_empty());
}

#[test]
fn a_symlinked_root_is_not_used() {
    if child_role().is_some() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert_refused(&run_in(&link, &[]), "it is a symbolic link");
    assert!(entry_files(&real).is_empty());
    // Deliberately shared: used.
    let shared = run_in(&link, &[("FILE_CACHE_SHARED", "1")]);
    assert_eq!((shared.runs, shared.warnings.len()), (2, 0));
    assert_eq!(entry_files(&real).len(), 2);
}

#[test]
fn a_root_owned_by_another_user_is_not_used() {
    if child_role().is_some() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("theirs");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&root, Some(NOBODY), Some(NOBODY)).unwrap();
    // A value planted there is never read.
    assert_refused(&run_in(&root, &[]), "owned by user id 65534");
    assert!(entry_files(&root).is_empty());
    let shared = run_in(&root, &[("FILE_CACHE_SHARED", "1")]);
    assert_eq!((shared.runs, shared.warnings.len()), (2, 0));
}

#[test]
fn a_root_writable_by_group_or_others_is_not_used_unless_shared() {
    if child_role().is_some() {
        return;
    }
    for (mode_bits, who) in [
        (0o770, "writable by its group"),
        (0o703, "writable by others"),
        (0o777, "writable by group and others"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("open");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(mode_bits)).unwrap();
        assert_refused(&run_in(&root, &[]), who);
        assert!(entry_files(&root).is_empty());
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("team");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
    let shared = run_in(&root, &[("FILE_CACHE_SHARED", "1")]);
    assert_eq!((shared.runs, shared.warnings.len()), (2, 0));
    let again = run_in(&root, &[("FILE_CACHE_SHARED", "1")]);
    assert_eq!(again.runs, 0, "a shared root is a cache like any other");
    let dir = function_dir(&root, "trust", "double");
    assert!(dir.is_dir());
}
