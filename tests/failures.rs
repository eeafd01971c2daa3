//! The cache never fails a call: an unusable root, a full disk, or a value no codec can
//! represent all degrade to calling the function, with one warning.

mod common;

use common::{child_role, entry_files, init, logged, marked_lines, run_child};
use file_cache::file_cache;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn square(x: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    x * x
}

#[file_cache]
fn cube(x: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    x * x * x
}

#[file_cache]
fn big(n: usize) -> Vec<u8> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    vec![7; n]
}

const TEST: &str = "child_calls";

/// The child's part, chosen by its role.
#[test]
fn child_calls() {
    let root = init();
    match child_role().as_deref() {
        Some("fsize") => {
            limit_file_size(64 * 1024);
            assert_eq!(big(1 << 20), vec![7; 1 << 20]);
            assert_eq!(big(1 << 20).len(), 1 << 20);
        }
        Some("nobody") => {
            // SAFETY: plain system calls, before this process touches the cache.
            unsafe {
                assert_eq!(libc::setgid(65534), 0);
                assert_eq!(libc::setuid(65534), 0);
            }
            assert_eq!((square(3), cube(3)), (9, 27));
            assert_eq!((square(3), cube(4)), (9, 64));
        }
        Some("read-only") => {
            assert_eq!((square(3), cube(3)), (9, 27));
            assert_eq!((square(3), cube(4)), (9, 64));
        }
        _ => {
            assert_eq!((square(3), cube(3)), (9, 27));
            assert_eq!((square(3), cube(3)), (9, 27));
        }
    }
    println!("RUNS {}", RUNS.load(Ordering::SeqCst));
    println!("ROOT {}", root.display());
}

/// Limits the size of files this process may write, like a full disk, and asks for the
/// error instead of the default `SIGXFSZ` that would kill the process.
fn limit_file_size(bytes: u64) {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: plain system calls on this process, before any other thread writes files.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}

fn warnings(output: &std::process::Output) -> Vec<String> {
    marked_lines(output, "LOG WARN ")
}

#[test]
fn a_file_where_the_root_should_be_only_costs_the_caching() {
    if child_role().is_some() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    for root in [file.clone(), file.join("below")] {
        let output = run_child(
            TEST,
            "file-root",
            &[("FILE_CACHE_DIR", root.to_str().unwrap())],
        );
        assert_eq!(
            marked_lines(&output, "RUNS "),
            ["4"],
            "every call ran, none failed"
        );
        let warnings = warnings(&output);
        assert_eq!(
            warnings.len(),
            1,
            "one warning for the process: {warnings:?}"
        );
        assert!(
            warnings[0].contains("cannot use the cache root"),
            "{warnings:?}"
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn a_write_that_fails_midway_leaves_no_partial_entry() {
    if child_role().is_some() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_str().unwrap();
    let output = run_child(TEST, "fsize", &[("FILE_CACHE_DIR", root)]);
    assert_eq!(marked_lines(&output, "RUNS "), ["2"]);
    let warnings = warnings(&output);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(entry_files(tmp.path()).is_empty(), "no entry was left");
    let mut leftovers = Vec::new();
    let mut stack = vec![tmp.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for item in std::fs::read_dir(dir).unwrap().flatten() {
            if item.path().is_dir() {
                stack.push(item.path());
            } else {
                leftovers.push(item.path());
            }
        }
    }
    assert!(
        leftovers.is_empty(),
        "no temporary file was left: {leftovers:?}"
    );
}

/// A value type no codec can round-trip: what it serializes is not what it deserializes
/// (the field is skipped when deserializing, so it comes back as its default).
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Lossy {
    id: u32,
    #[serde(skip_deserializing)]
    secret: u32,
}

static LOSSY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn lossy(id: u32) -> Lossy {
    LOSSY_RUNS.fetch_add(1, Ordering::SeqCst);
    Lossy { id, secret: 7 }
}

#[file_cache]
fn lossy_too(id: u32) -> Lossy {
    Lossy { id, secret: 8 }
}

#[test]
fn a_value_that_cannot_round_trip_is_reported_once_and_runs_uncached() {
    let root = init();
    for n in 1..=3 {
        assert_eq!(lossy(9).secret, 7);
        assert_eq!(LOSSY_RUNS.load(Ordering::SeqCst), n);
    }
    let warnings = logged(log::Level::Warn, "failures::lossy");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("failures::Lossy"), "{warnings:?}");
    assert!(warnings[0].contains("cannot be cached"), "{warnings:?}");
    assert!(
        warnings[0].contains("msgpack:"),
        "both codecs were tried: {warnings:?}"
    );
    assert!(entry_files(&root.join("failures.lossy")).is_empty());
    let stats = file_cache::stats();
    let found = stats
        .iter()
        .find(|s| s.function == "failures::lossy")
        .unwrap();
    assert_eq!((found.hits, found.misses), (0, 1), "{found:?}");
    let reason = found.not_cached.as_deref().unwrap_or_default();
    assert!(reason.contains("decodes to a different value"), "{reason}");
    let square = stats.iter().find(|s| s.function == "failures::square");
    assert!(square.is_none_or(|s| s.not_cached.is_none()));
}

#[test]
fn without_a_logger_an_uncacheable_function_says_so_on_stderr_once() {
    if child_role().is_some() {
        // No logger in this process: `log::max_level()` is `Off`.
        assert_eq!(log::max_level(), log::LevelFilter::Off);
        for _ in 0..3 {
            lossy(1);
            lossy_too(1);
        }
        return;
    }
    let root = init();
    let dir = root.join("no_logger");
    let test = "without_a_logger_an_uncacheable_function_says_so_on_stderr_once";
    let output = run_child(test, "child", &[("FILE_CACHE_DIR", dir.to_str().unwrap())]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("file_cache: "))
        .collect();
    assert_eq!(lines.len(), 2, "one line per function: {stderr}");
    assert!(lines[0].contains("failures::lossy:"), "{stderr}");
    assert!(lines[1].contains("failures::lossy_too:"), "{stderr}");
    assert!(lines.iter().all(|line| line.contains("cannot be cached")));
    // With a logger (this process), nothing goes to stderr: the warning is a log record.
    assert_eq!(log::max_level(), log::LevelFilter::Debug);
}

/// A read-only root: a tmpfs remounted read-only (as root), or, where mounting is not
/// allowed, a directory this child cannot write after giving up root for `nobody`.
struct ReadOnlyRoot {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl ReadOnlyRoot {
    fn new() -> ReadOnlyRoot {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ReadOnlyRoot { dir, mounted }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Makes the root read-only; returns the role the child must play.
    fn seal(&self) -> &'static str {
        use std::os::unix::fs::PermissionsExt;
        if self.mounted {
            let status = std::process::Command::new("mount")
                .args(["-o", "remount,ro"])
                .arg(self.path())
                .status()
                .unwrap();
            assert!(status.success());
            "read-only"
        } else {
            let mut stack = vec![self.path().to_path_buf()];
            while let Some(path) = stack.pop() {
                std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
                if path.is_dir() {
                    let mode = std::fs::Permissions::from_mode(0o500);
                    std::fs::set_permissions(&path, mode).unwrap();
                    stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                }
            }
            "nobody"
        }
    }
}

impl Drop for ReadOnlyRoot {
    fn drop(&mut self) {
        if self.mounted {
            let _ = std::process::Command::new("umount")
                .arg(self.path())
                .status();
        }
    }
}

#[test]
fn a_read_only_root_serves_its_entries_and_does_not_fail_calls() {
    if child_role().is_some() {
        return;
    }
    let root = ReadOnlyRoot::new();
    let dir = root.path().to_str().unwrap();
    let output = run_child(TEST, "fill", &[("FILE_CACHE_DIR", dir)]);
    assert_eq!(marked_lines(&output, "RUNS "), ["2"]);
    let before = entry_files(root.path());
    let role = root.seal();
    println!("read-only by {role}");
    let output = run_child(TEST, role, &[("FILE_CACHE_DIR", dir)]);
    // square(3) and cube(3) hit; cube(4) is computed, and not stored.
    assert_eq!(marked_lines(&output, "RUNS "), ["1"]);
    let warnings = warnings(&output);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("cannot write under the cache root"),
        "{warnings:?}"
    );
    assert_eq!(entry_files(root.path()), before);
}

#[test]
fn a_file_system_without_locks_is_detected_and_still_caches() {
    if child_role().is_some() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let envs = [
        ("FILE_CACHE_DIR", tmp.path().to_str().unwrap()),
        ("FILE_CACHE_TEST_FAULTS", "no_lock"),
    ];
    let output = run_child(TEST, "no-lock", &envs);
    assert_eq!(
        marked_lines(&output, "RUNS "),
        ["2"],
        "cached, without the lock"
    );
    let warnings = warnings(&output);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("file locks do not work"),
        "{warnings:?}"
    );
    assert_eq!(entry_files(tmp.path()).len(), 2);
}

#[test]
fn a_file_system_without_rename_over_is_detected_and_entries_are_still_repaired() {
    if child_role().is_some() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    run_child(TEST, "fill", &[("FILE_CACHE_DIR", dir)]);
    let entries = entry_files(tmp.path());
    for entry in &entries {
        std::fs::write(entry, b"damaged").unwrap();
    }
    let envs = [
        ("FILE_CACHE_DIR", dir),
        ("FILE_CACHE_TEST_FAULTS", "no_rename_over"),
    ];
    let output = run_child(TEST, "no-rename", &envs);
    assert_eq!(marked_lines(&output, "RUNS "), ["2"]);
    // Said once, when the first store probes the root (after the damaged entry was read).
    let warnings = warnings(&output);
    let said = warnings
        .iter()
        .filter(|w| w.contains("renaming over an existing file does not work"))
        .count();
    assert_eq!(said, 1, "{warnings:?}");
    let output = run_child(TEST, "after", &[("FILE_CACHE_DIR", dir)]);
    assert_eq!(
        marked_lines(&output, "RUNS "),
        ["0"],
        "the entries were replaced"
    );
    assert_eq!(entry_files(tmp.path()), entries);
}

/// A value whose `Serialize` refuses some instances (13), as a hand-written impl may.
#[derive(Debug, PartialEq, Deserialize)]
struct Picky(u32);

impl Serialize for Picky {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 == 13 {
            return Err(serde::ser::Error::custom("thirteen is unlucky"));
        }
        serializer.serialize_u32(self.0)
    }
}

static PICKY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn picky(x: u32) -> Picky {
    PICKY_RUNS.fetch_add(1, Ordering::SeqCst);
    Picky(x)
}

#[test]
fn a_value_that_fails_to_serialize_skips_only_its_own_store() {
    init();
    let runs = || PICKY_RUNS.load(Ordering::SeqCst);
    assert_eq!(picky(1), Picky(1));
    assert_eq!(picky(13), Picky(13));
    assert_eq!(picky(13), Picky(13));
    assert_eq!(runs(), 3, "13 is never stored: it runs every time");
    let warned = logged(log::Level::Warn, "thirteen is unlucky");
    assert_eq!(warned.len(), 1, "one warning naming the error: {warned:?}");
    // Other arguments keep their entries and keep being stored.
    assert_eq!(picky(1), Picky(1));
    assert_eq!(picky(2), Picky(2));
    assert_eq!(picky(2), Picky(2));
    assert_eq!(runs(), 4, "1 hit its entry, 2 ran once and then hit");
}
