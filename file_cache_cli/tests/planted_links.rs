//! A shared root (`FILE_CACHE_SHARED=1`) where a co-user planted symbolic links in place of
//! the runtime's own files: the size record, a hit log, a version record, an entry and a
//! lock file. Calls, stores, the `file-cache` tool and `clear_all` run over it: every value
//! is right, nothing waits for long, and no file outside the root changes or appears.
#![cfg(unix)]

use file_cache::file_cache;
use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

/// Set in the child process: what it does.
const ROLE_VAR: &str = "FILE_CACHE_LINKS_TEST_ROLE";

#[file_cache(memory = false)]
fn value(x: u64) -> String {
    format!("value-{x}")
}

/// Not a test of its own: the body of the child processes.
#[test]
fn child() {
    match std::env::var(ROLE_VAR).as_deref() {
        Ok("fill") => {
            for x in 1..=4 {
                value(x);
                value(x);
            }
        }
        Ok("use") => {
            for _ in 0..3 {
                for x in 1..=5 {
                    assert_eq!(value(x), format!("value-{x}"));
                }
            }
        }
        Ok("clear") => {
            file_cache::clear_all().expect("clear_all");
        }
        _ => {}
    }
}

/// Runs the child in `role` on `root`, failing if it takes more than 20 s.
fn run_child(root: &Path, role: &str) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .env("FILE_CACHE_DIR", root)
        .env("FILE_CACHE_SHARED", "1")
        .env("FILE_CACHE_MAX_SIZE", "10MB")
        .env_remove("FILE_CACHE")
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "child {role} failed");
            return;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("child {role} was still running after 20 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn cli(root: &Path, args: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_file-cache"))
        .args(args)
        .env("FILE_CACHE_DIR", root)
        .output()
        .unwrap();
    assert!(output.status.success(), "file-cache {args:?}: {output:?}");
}

/// Every file under `dir`, with its content and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            out.extend(snapshot(&path));
        } else {
            out.insert(
                path.clone(),
                (std::fs::read(&path).unwrap(), meta.modified().unwrap()),
            );
        }
    }
    out
}

/// The entry file whose value is `value-<x>`.
fn entry_of(function_dir: &Path, x: u64) -> PathBuf {
    let needle = format!("value-{x}");
    for shard in std::fs::read_dir(function_dir).unwrap() {
        let shard = shard.unwrap().path();
        if !shard.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&shard).unwrap() {
            let file = file.unwrap().path();
            let bytes = std::fs::read(&file).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                return file;
            }
        }
    }
    panic!("no entry holds {needle}");
}

#[test]
fn links_planted_in_a_shared_root_never_reach_outside_it() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    run_child(root.path(), "fill");
    let function = root.path().join("planted_links.value");
    assert!(function.join(".hits").is_file() && function.join(".current").is_file());
    assert!(root.path().join(".size").is_file());

    // Files of the victim's, each the target of a link where a file of the cache was.
    for (name, planted) in [
        ("size", root.path().join(".size")),
        ("hits", function.join(".hits")),
        ("current", function.join(".current")),
    ] {
        let target = outside.path().join(name);
        std::fs::write(&target, format!("the victim's {name}")).unwrap();
        std::fs::remove_file(&planted).unwrap();
        symlink(&target, &planted).unwrap();
    }
    // An entry moved out and linked back: reading it through the link would be a hit.
    let entry = entry_of(&function, 1);
    std::fs::rename(&entry, outside.path().join("entry")).unwrap();
    symlink(outside.path().join("entry"), &entry).unwrap();
    // A lock file linked to a path that does not exist, for a key that misses.
    let cold = entry_of(&function, 4);
    std::fs::remove_file(&cold).unwrap();
    let name = cold.file_name().unwrap().to_str().unwrap().to_owned();
    let lock = cold.with_file_name(format!(".{name}.lock"));
    symlink(outside.path().join("created-through-the-lock"), &lock).unwrap();

    let before = snapshot(outside.path());
    run_child(root.path(), "use");
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["verify"],
        &["prune", "--older-than", "1d"],
        &["prune", "--stale"],
    ] {
        cli(root.path(), args);
    }
    run_child(root.path(), "clear");
    run_child(root.path(), "use");

    assert_eq!(
        snapshot(outside.path()),
        before,
        "a file outside the root changed or appeared"
    );
    for planted in [
        root.path().join(".size"),
        function.join(".hits"),
        function.join(".current"),
    ] {
        let meta = std::fs::symlink_metadata(&planted).unwrap();
        assert!(meta.is_file(), "{} is still a link", planted.display());
    }
}
