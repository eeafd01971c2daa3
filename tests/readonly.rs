//! `FILE_CACHE_READONLY=1`: hits are served, misses compute and return their value, and
//! nothing under the root changes (no file created, written, removed or touched, no
//! directory created, a missing root left missing), in several processes at once and with
//! a size bound set; `clear` and `clear_all` refuse, saying why; `stats()` counts the
//! misses not stored. Each process reads the setting once, so each case runs in children.

mod common;

use common::{child_role, marked_lines, run_child};
use file_cache::file_cache;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn square(x: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    x * x
}

#[file_cache]
fn blob(n: u8) -> Vec<u8> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    vec![n; 2000]
}

/// What a listing holds of each path under a root: kind, size, mode, modification time.
type Listing = BTreeMap<String, (bool, u64, u32, SystemTime)>;

fn listing(root: &Path) -> Listing {
    fn walk(root: &Path, dir: &Path, out: &mut Listing) {
        for item in std::fs::read_dir(dir).unwrap().flatten() {
            let meta = std::fs::symlink_metadata(item.path()).unwrap();
            let name = item
                .path()
                .strip_prefix(root)
                .unwrap()
                .display()
                .to_string();
            #[cfg(unix)]
            let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
            #[cfg(not(unix))]
            let mode = 0;
            out.insert(
                name,
                (meta.is_dir(), meta.len(), mode, meta.modified().unwrap()),
            );
            if meta.is_dir() {
                walk(root, &item.path(), out);
            }
        }
    }
    let mut out = Listing::new();
    let meta = std::fs::metadata(root).unwrap();
    out.insert(".".into(), (true, meta.len(), 0, meta.modified().unwrap()));
    walk(root, root, &mut out);
    out
}

/// Sets every file's modification time an hour back, so a touch would show.
fn age_files(root: &Path) {
    let old = SystemTime::now() - Duration::from_secs(3600);
    for (name, (is_dir, ..)) in listing(root) {
        if !is_dir {
            let file = std::fs::File::options()
                .write(true)
                .open(root.join(name))
                .unwrap();
            file.set_modified(old).unwrap();
        }
    }
}

/// The hits and misses of one read-only child: 0..4 and blobs 0..2 were stored by the
/// filling child; 100.. are misses, each called twice (still a miss: nothing is stored).
fn read_only_calls(misses: &[u64]) {
    for x in 0..4 {
        assert_eq!(square(x), x * x);
    }
    for n in 0..2 {
        assert_eq!(blob(n), vec![n; 2000]);
    }
    assert_eq!(
        RUNS.load(Ordering::SeqCst),
        0,
        "every stored value is a hit"
    );
    for &x in misses {
        assert_eq!(square(x), x * x);
        assert_eq!(square(x), x * x);
    }
    assert_eq!(blob(9), vec![9; 2000]);
    assert_eq!(RUNS.load(Ordering::SeqCst), 2 * misses.len() + 1);
    let stats = file_cache::stats();
    let of = |name: &str| {
        stats
            .iter()
            .find(|s| s.function.ends_with(name))
            .unwrap()
            .clone()
    };
    assert_eq!(of("::square").not_stored_read_only, 2 * misses.len() as u64);
    assert_eq!(of("::blob").not_stored_read_only, 1);
    assert_eq!(of("::square").bytes_written, 0);
    for result in [
        file_cache::clear("readonly::square"),
        file_cache::clear_all(),
    ] {
        let error = result.expect_err("a read-only cache is not cleared");
        assert_eq!(error.kind(), std::io::ErrorKind::ReadOnlyFilesystem);
        assert!(error.to_string().contains("FILE_CACHE_READONLY"), "{error}");
    }
    assert_eq!(square(0), 0, "still a hit after the refused clears");
    assert_eq!(RUNS.load(Ordering::SeqCst), 2 * misses.len() + 1);
    println!("DONE");
}

#[test]
fn a_read_only_run_of_hits_and_misses_in_several_processes_changes_nothing() {
    const TEST: &str = "a_read_only_run_of_hits_and_misses_in_several_processes_changes_nothing";
    match child_role().as_deref() {
        Some("fill") => {
            common::init();
            for x in 0..4 {
                square(x);
                square(x); // a hit: the hit log is written too
            }
            blob(0);
            blob(1);
            return;
        }
        Some(role) => {
            common::init();
            let first: u64 = role.parse().unwrap();
            read_only_calls(&[first, first + 1, first + 2]);
            return;
        }
        None => {}
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_str().unwrap();
    // Filled under a bound, so the root holds the size record as well.
    run_child(
        TEST,
        "fill",
        &[("FILE_CACHE_DIR", dir), ("FILE_CACHE_MAX_SIZE", "1MB")],
    );
    age_files(root.path());
    let before = listing(root.path());
    for part in [".size", ".hits", ".current"] {
        assert!(
            before.keys().any(|name| name.ends_with(part)),
            "{part}: {before:#?}"
        );
    }
    // A bound below what the root holds: a writer would prune at once.
    let envs = [
        ("FILE_CACHE_DIR", dir),
        ("FILE_CACHE_READONLY", "1"),
        ("FILE_CACHE_MAX_SIZE", "1kB"),
    ];
    let outputs: Vec<_> = std::thread::scope(|scope| {
        let children: Vec<_> = ["100", "200", "300", "100"]
            .into_iter()
            .map(|role| scope.spawn(move || run_child(TEST, role, &envs)))
            .collect();
        children.into_iter().map(|c| c.join().unwrap()).collect()
    });
    for output in &outputs {
        assert_eq!(marked_lines(output, "DONE"), [""]);
        let said = marked_lines(output, "LOG INFO ")
            .into_iter()
            .filter(|line| line.contains("not stored"))
            .count();
        assert_eq!(said, 1, "the first miss not stored is said once");
        assert!(marked_lines(output, "LOG WARN ").is_empty());
    }
    assert_eq!(
        listing(root.path()),
        before,
        "nothing under the root changed"
    );
}

#[test]
fn a_missing_root_is_not_created() {
    const TEST: &str = "a_missing_root_is_not_created";
    if child_role().is_some() {
        common::init();
        assert_eq!(square(7), 49);
        assert_eq!(square(7), 49);
        assert_eq!(RUNS.load(Ordering::SeqCst), 2);
        assert!(file_cache::clear_all().is_err());
        println!("DONE");
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("missing");
    let output = run_child(
        TEST,
        "missing",
        &[
            ("FILE_CACHE_DIR", root.to_str().unwrap()),
            ("FILE_CACHE_READONLY", "1"),
        ],
    );
    assert_eq!(marked_lines(&output, "DONE"), [""]);
    assert!(!root.exists(), "the root was created");
    assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
}

/// A filled root made read-only underneath the cache: a tmpfs remounted read-only when this
/// runs as root (root writes through any mode), else every directory and file made
/// read-only (mode 0555 and 0444). Undone when dropped.
#[cfg(target_os = "linux")]
struct FilledReadOnly {
    dir: tempfile::TempDir,
    mounted: bool,
}

#[cfg(target_os = "linux")]
impl FilledReadOnly {
    fn new(fill: impl FnOnce(&Path)) -> FilledReadOnly {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap().to_owned();
        // SAFETY: `geteuid` has no preconditions and cannot fail.
        let mounted = unsafe { libc::geteuid() } == 0;
        let mount = |args: &[&str]| {
            let status = std::process::Command::new("mount")
                .args(args)
                .status()
                .unwrap();
            assert!(status.success(), "mount {args:?} failed");
        };
        if mounted {
            mount(&["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", &path]);
        }
        fill(dir.path());
        if mounted {
            mount(&["-o", "remount,ro", &path]);
        } else {
            set_modes(dir.path(), 0o555, 0o444);
        }
        FilledReadOnly { dir, mounted }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

#[cfg(target_os = "linux")]
fn set_modes(dir: &Path, dirs: u32, files: u32) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    if dirs & 0o200 != 0 {
        mode(dir, dirs);
    }
    for item in std::fs::read_dir(dir).unwrap().flatten() {
        if item.file_type().unwrap().is_dir() {
            set_modes(&item.path(), dirs, files);
        } else {
            mode(&item.path(), files);
        }
    }
    if dirs & 0o200 == 0 {
        mode(dir, dirs);
    }
}

#[cfg(target_os = "linux")]
impl Drop for FilledReadOnly {
    fn drop(&mut self) {
        if self.mounted {
            let _ = std::process::Command::new("umount")
                .arg(self.dir.path())
                .status();
        } else {
            set_modes(self.dir.path(), 0o700, 0o600);
        }
    }
}

/// A root this process cannot write is known as such when the cache first looks at it,
/// before any write is tried: a process whose calls all hit (under a size bound, where a
/// hit would move its entry's mtime) tries no recency touch, hit log or version record,
/// changes nothing, and says nothing above `debug`.
#[cfg(target_os = "linux")]
#[test]
fn a_read_only_mount_is_known_before_any_write() {
    const TEST: &str = "a_read_only_mount_is_known_before_any_write";
    match child_role().as_deref() {
        Some("fill") => {
            common::init();
            for x in 0..4 {
                square(x);
            }
            blob(0);
            return;
        }
        Some(_) => {
            common::init();
            for x in 0..4 {
                assert_eq!(square(x), x * x);
                assert_eq!(square(x), x * x);
            }
            assert_eq!(blob(0), vec![0; 2000]);
            assert_eq!(RUNS.load(Ordering::SeqCst), 0, "all hits");
            println!("DONE");
            return;
        }
        None => {}
    }
    let root = FilledReadOnly::new(|root| {
        run_child(TEST, "fill", &[("FILE_CACHE_DIR", root.to_str().unwrap())]);
        age_files(root);
    });
    let before = listing(root.path());
    let output = run_child(
        TEST,
        "hits",
        &[
            ("FILE_CACHE_DIR", root.path().to_str().unwrap()),
            ("FILE_CACHE_MAX_SIZE", "1MB"),
        ],
    );
    assert_eq!(marked_lines(&output, "DONE"), [""]);
    let log = marked_lines(&output, "LOG ");
    let said = |needle: &str| log.iter().filter(|l| l.contains(needle)).count();
    assert!(
        log.iter()
            .all(|line| line.starts_with("DEBUG ") || line.starts_with("TRACE ")),
        "{log:#?}"
    );
    assert_eq!(said("cannot refresh the mtime"), 0, "{log:#?}");
    assert_eq!(said("cannot append to the hit log"), 0, "{log:#?}");
    assert!(said("hits not logged") > 0, "{log:#?}");
    assert_eq!(
        listing(root.path()),
        before,
        "nothing under the root changed"
    );
}
