//! Configuration from the environment: `FILE_CACHE_DIR`, the default root, and the
//! `FILE_CACHE` modes. Each case runs in a child process, since the environment is read
//! once per process.

mod common;

use common::{child_role, entry_files, function_dir, init, marked_lines, run_child};
use file_cache::file_cache;
use std::sync::atomic::{AtomicUsize, Ordering};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn double(x: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    x * 2
}

const TEST: &str = "child_calls";

/// The child's part: two calls, then report.
#[test]
fn child_calls() {
    let root = init();
    assert_eq!(double(21), 42);
    assert_eq!(double(21), 42);
    println!("RUNS {}", RUNS.load(Ordering::SeqCst));
    println!("ROOT {}", root.display());
}

fn runs(output: &std::process::Output) -> usize {
    marked_lines(output, "RUNS ")[0].parse().unwrap()
}

fn entries(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    entry_files(&function_dir(root, "config", "double"))
}

#[test]
fn file_cache_dir_selects_the_root() {
    if child_role().is_some() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("nested/cache");
    let output = run_child(TEST, "dir", &[("FILE_CACHE_DIR", dir.to_str().unwrap())]);
    assert_eq!(runs(&output), 1);
    assert_eq!(marked_lines(&output, "ROOT "), [dir.display().to_string()]);
    assert_eq!(entries(&dir).len(), 1);
}

#[test]
fn the_default_root_is_file_cache_in_the_temp_dir() {
    if child_role().is_some() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", TEST, "--nocapture"])
        .env(common::CHILD_VAR, "default")
        .env_remove("FILE_CACHE_DIR")
        .env_remove("FILE_CACHE")
        .env("TMPDIR", tmp.path());
    let output = command.output().unwrap();
    assert!(output.status.success());
    let expected = tmp.path().join("file_cache");
    assert_eq!(
        marked_lines(&output, "ROOT "),
        [expected.display().to_string()]
    );
    assert_eq!(entries(&expected).len(), 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&expected).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "the root is private to the user");
    }
}

#[test]
fn off_reads_and_writes_nothing() {
    if child_role().is_some() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_str().unwrap();
    // A stored entry exists, and `off` still does not read it.
    assert_eq!(
        runs(&run_child(TEST, "fill", &[("FILE_CACHE_DIR", dir)])),
        1
    );
    let before = entries(root.path());
    let output = run_child(
        TEST,
        "off",
        &[("FILE_CACHE_DIR", dir), ("FILE_CACHE", "off")],
    );
    assert_eq!(runs(&output), 2, "both calls ran the body");
    assert_eq!(entries(root.path()), before);
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().to_str().unwrap();
    run_child(
        TEST,
        "off",
        &[("FILE_CACHE_DIR", dir), ("FILE_CACHE", "off")],
    );
    assert_eq!(
        std::fs::read_dir(empty.path()).unwrap().count(),
        0,
        "wrote nothing"
    );
}

#[test]
fn refresh_recomputes_and_overwrites() {
    if child_role().is_some() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_str().unwrap();
    assert_eq!(
        runs(&run_child(TEST, "fill", &[("FILE_CACHE_DIR", dir)])),
        1
    );
    let file = entries(root.path()).pop().unwrap();
    let old = std::fs::read(&file).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let output = run_child(
        TEST,
        "refresh",
        &[("FILE_CACHE_DIR", dir), ("FILE_CACHE", "refresh")],
    );
    assert_eq!(runs(&output), 2, "refresh never reads");
    let new = std::fs::read(&file).unwrap();
    assert_ne!(
        old, new,
        "the entry was overwritten (its creation time changed)"
    );
    assert_eq!(runs(&run_child(TEST, "hit", &[("FILE_CACHE_DIR", dir)])), 0);
}

#[test]
fn an_unknown_mode_is_a_warning_and_the_cache_stays_on() {
    if child_role().is_some() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_str().unwrap();
    let output = run_child(
        TEST,
        "bogus",
        &[("FILE_CACHE_DIR", dir), ("FILE_CACHE", "sometimes")],
    );
    assert_eq!(runs(&output), 1);
    let warnings = marked_lines(&output, "LOG WARN ");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("FILE_CACHE=\"sometimes\""),
        "{warnings:?}"
    );
}

/// The child's part for a relative root: a call, a change of directory, the same call.
#[test]
fn child_changes_directory() {
    if child_role().as_deref() != Some("chdir") {
        return;
    }
    init();
    assert_eq!(double(4), 8);
    std::env::set_current_dir(std::env::var("OTHER_DIR").unwrap()).unwrap();
    assert_eq!(double(4), 8);
    println!("RUNS {}", RUNS.load(Ordering::SeqCst));
    println!("ROOT {}", file_cache::cache_dir().display());
}

#[test]
fn a_relative_root_is_made_absolute_once_and_a_chdir_does_not_move_it() {
    if child_role().is_some() {
        return;
    }
    let start = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_changes_directory", "--nocapture"])
        .current_dir(start.path())
        .env(common::CHILD_VAR, "chdir")
        .env("FILE_CACHE_DIR", "rel")
        .env("FILE_CACHE_MEMORY", "0")
        .env("OTHER_DIR", other.path())
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        runs(&output),
        1,
        "the second call hits the first's entry:\n{stdout}"
    );
    let root = start.path().join("rel");
    assert_eq!(marked_lines(&output, "ROOT "), [root.display().to_string()]);
    assert_eq!(entries(&root).len(), 1);
    assert!(!other.path().join("rel").exists());
    assert!(!stdout.contains("LOG WARN"), "{stdout}");
}

#[cfg(unix)]
#[test]
fn a_root_whose_name_is_not_utf8_is_the_root_used() {
    use std::os::unix::ffi::OsStringExt;
    if child_role().is_some() {
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    let name = std::ffi::OsString::from_vec(b"caf\xe9".to_vec());
    let dir = parent.path().join(&name);
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture"])
        .env(common::CHILD_VAR, "latin1")
        .env("FILE_CACHE_DIR", &dir)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(runs(&output), 1);
    assert_eq!(entries(&dir).len(), 1, "the entry is under the root named");
}
