//! `FILE_CACHE_MAX_SIZE`: keeping the root under a bound, least recently used entries first.
//!
//! - **Recency without atime.** A hit sets its entry's mtime to now (one `utimensat`), at
//!   most once a minute per entry and process, so the mtime is the time of the last write
//!   or hit, to the minute, whatever the mount options. Without a bound nothing is touched.
//! - **Pruning off the call path.** Each process keeps an estimate of the root's size: a
//!   scan's total plus the bytes it has written since. A store that takes the estimate over
//!   the bound wakes a background thread, which scans the root and deletes the entries with
//!   the oldest mtimes until the root is at 80% of the bound, then corrects the estimate.
//!   A call only does atomic additions and, past the bound, one condition-variable notify.
//! - **A hard cap instead of waiting.** While the estimate is more than 5% over the bound
//!   (the pruner has not caught up with a burst of writes), a store is skipped: the call
//!   returns its value uncached rather than wait or grow the root further.

use crate::config::config;
use crate::inspect;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Environment variable bounding the root's size (`2GiB`, `500MB`, `1048576`).
pub(crate) const MAX_SIZE_VAR: &str = "FILE_CACHE_MAX_SIZE";

/// A hit refreshes its entry's mtime when this process has not done so for this long.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// Entries remembered as recently touched, before the memory is reset.
const TOUCH_MEMORY: usize = 65_536;

/// Parses a size: a number, optionally with a fraction, and an optional unit. `B`; `kB`,
/// `MB`, `GB`, `TB` are powers of 1000; `KiB`, `MiB`, `GiB`, `TiB` and the bare letters
/// `K`, `M`, `G`, `T` are powers of 1024. Case and spaces do not matter.
///
/// ```
/// use file_cache::inspect::parse_size;
///
/// assert_eq!(parse_size("2GiB"), Ok(2 << 30));
/// assert_eq!(parse_size("500MB"), Ok(500_000_000));
/// assert_eq!(parse_size("1.5k"), Ok(1536));
/// assert_eq!(parse_size("4096"), Ok(4096));
/// assert!(parse_size("lots").is_err());
/// ```
pub fn parse_size(text: &str) -> Result<u64, ParseSizeError> {
    let error = || ParseSizeError(text.to_owned());
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let split = compact
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(compact.len());
    let (number, unit) = compact.split_at(split);
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        _ => return Err(error()),
    };
    if let Ok(whole) = number.parse::<u64>() {
        return whole.checked_mul(multiplier).ok_or_else(error);
    }
    let value: f64 = number.parse().map_err(|_| error())?;
    let bytes = value * multiplier as f64;
    if bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64 {
        Ok(bytes as u64)
    } else {
        Err(error())
    }
}

/// A size that [`parse_size`] does not understand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseSizeError(String);

impl fmt::Display for ParseSizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid size {:?} (expected a number with an optional unit: B, kB, MB, GB, KiB, MiB, GiB)",
            self.0
        )
    }
}

impl std::error::Error for ParseSizeError {}

/// The size bound of this process's root, and what it knows about the root's size.
struct Bound {
    root: PathBuf,
    max: u64,
    /// Bytes believed to be under the root: the last scan, plus what was written since.
    estimate: AtomicU64,
    /// Bytes this process has written under the root, ever.
    written: AtomicU64,
    /// Whether a scan has replaced the initial guess (zero).
    scanned: AtomicBool,
    wake: Mutex<bool>,
    signal: Condvar,
    pruner: OnceLock<bool>,
}

fn bound() -> Option<&'static Bound> {
    static BOUND: OnceLock<Option<Bound>> = OnceLock::new();
    BOUND
        .get_or_init(|| {
            let config = config();
            config.max_size.map(|max| Bound {
                root: config.root.clone(),
                max,
                estimate: AtomicU64::new(0),
                written: AtomicU64::new(0),
                scanned: AtomicBool::new(false),
                wake: Mutex::new(false),
                signal: Condvar::new(),
                pruner: OnceLock::new(),
            })
        })
        .as_ref()
}

impl Bound {
    fn hard_cap(&self) -> u64 {
        self.max.saturating_add(self.max / 20)
    }

    fn target(&self) -> u64 {
        self.max / 5 * 4
    }

    /// Wakes the pruning thread, starting it on first use.
    fn wake_pruner(&'static self) {
        let started = *self.pruner.get_or_init(|| {
            std::thread::Builder::new()
                .name("file_cache-pruner".into())
                .spawn(move || self.run_pruner())
                .map_err(|error| {
                    log::warn!("file_cache: cannot start the pruning thread ({error}); the size bound is not enforced")
                })
                .is_ok()
        });
        if started {
            *self.wake.lock().unwrap_or_else(|e| e.into_inner()) = true;
            self.signal.notify_one();
        }
    }

    fn run_pruner(&self) {
        loop {
            {
                let mut woken = self.wake.lock().unwrap_or_else(|e| e.into_inner());
                while !*woken {
                    woken = self.signal.wait(woken).unwrap_or_else(|e| e.into_inner());
                }
                *woken = false;
            }
            self.prune();
        }
    }

    /// Scans the root and, when it is over the bound, evicts the least recently used
    /// entries down to the target.
    fn prune(&self) {
        let started = Instant::now();
        let written_before = self.written.load(Ordering::Relaxed);
        match prune_root(&self.root, self.max, self.target()) {
            Ok(outcome) => {
                let since = self.written.load(Ordering::Relaxed) - written_before;
                self.estimate.store(outcome.kept + since, Ordering::Relaxed);
                self.scanned.store(true, Ordering::Relaxed);
                log::debug!(
                    "file_cache: pruned {} of {} entries ({} of {} bytes) in {:?}",
                    outcome.removed,
                    outcome.entries,
                    outcome.removed_bytes,
                    outcome.kept + outcome.removed_bytes,
                    started.elapsed()
                );
            }
            Err(error) => log::warn!("file_cache: cannot prune {} ({error})", self.root.display()),
        }
    }
}

/// What one pruning pass did.
#[derive(Debug, Default)]
pub(crate) struct PruneOutcome {
    pub(crate) entries: u64,
    pub(crate) removed: u64,
    pub(crate) removed_bytes: u64,
    pub(crate) kept: u64,
}

/// Deletes the entries with the oldest mtimes under `root` until at most `target` bytes
/// remain, if it holds more than `max`.
pub(crate) fn prune_root(root: &Path, max: u64, target: u64) -> std::io::Result<PruneOutcome> {
    let mut entries = Vec::new();
    let mut total = 0u64;
    for function in inspect::functions(root)? {
        total += function.bookkeeping_len();
        for entry in function.entries()? {
            total += entry.len;
            entries.push(entry);
        }
    }
    let mut outcome = PruneOutcome {
        entries: entries.len() as u64,
        ..PruneOutcome::default()
    };
    if total > max {
        entries.sort_by_key(|entry| entry.modified);
        for entry in entries {
            if total <= target {
                break;
            }
            // Gone already (another process pruned it) counts as removed.
            match std::fs::remove_file(&entry.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => continue,
            }
            total -= entry.len;
            outcome.removed += 1;
            outcome.removed_bytes += entry.len;
        }
    }
    outcome.kept = total;
    Ok(outcome)
}

/// Whether a new entry of `len` bytes may be written at `path` (always, without a bound).
pub(crate) fn admit(path: &Path, len: u64) -> bool {
    let Some(bound) = bound() else {
        return true;
    };
    if !path.starts_with(&bound.root) {
        return true;
    }
    let estimate = bound.estimate.load(Ordering::Relaxed);
    if estimate.saturating_add(len) <= bound.hard_cap() {
        return true;
    }
    bound.wake_pruner();
    log::debug!(
        "file_cache: not storing {} ({len} bytes): the root is over {MAX_SIZE_VAR} until the pruner catches up",
        path.display()
    );
    false
}

/// Counts a written entry; wakes the pruner when the root may be over the bound.
pub(crate) fn stored(path: &Path, len: u64) {
    let Some(bound) = bound() else {
        return;
    };
    if !path.starts_with(&bound.root) {
        return;
    }
    bound.written.fetch_add(len, Ordering::Relaxed);
    let estimate = bound.estimate.fetch_add(len, Ordering::Relaxed) + len;
    if estimate > bound.max || !bound.scanned.load(Ordering::Relaxed) {
        bound.wake_pruner();
    }
}

/// Marks the entry at `path` as just used, when a bound is set and this process has not
/// done so in the last minute.
pub(crate) fn touch(path: &Path, key: &[u8; 32]) {
    if bound().is_none() {
        return;
    }
    static TOUCHED: Mutex<Option<std::collections::HashMap<[u8; 8], Instant>>> = Mutex::new(None);
    let mut id = [0; 8];
    id.copy_from_slice(&key[..8]);
    let now = Instant::now();
    {
        let mut touched = TOUCHED.lock().unwrap_or_else(|e| e.into_inner());
        let touched = touched.get_or_insert_with(Default::default);
        if let Some(at) = touched.get(&id) {
            if now.duration_since(*at) < TOUCH_EVERY {
                return;
            }
        }
        if touched.len() >= TOUCH_MEMORY {
            touched.clear();
        }
        touched.insert(id, now);
    }
    if let Err(error) = set_mtime_now(path) {
        log::debug!(
            "file_cache: cannot refresh the mtime of {} ({error})",
            path.display()
        );
    }
}

#[cfg(unix)]
fn set_mtime_now(path: &Path) -> std::io::Result<()> {
    use rustix::fs::{utimensat, AtFlags, Timespec, Timestamps, CWD, UTIME_NOW, UTIME_OMIT};
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_NOW,
        },
    };
    // One system call, by path: no open, no close.
    utimensat(CWD, path, &times, AtFlags::empty()).map_err(std::io::Error::from)
}

#[cfg(not(unix))]
fn set_mtime_now(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .set_modified(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("2 gib"), Ok(2 << 30));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("10k"), Ok(10_240));
        assert_eq!(parse_size("0.5M"), Ok(1 << 19));
        assert_eq!(parse_size("12"), Ok(12));
        for bad in [
            "",
            "MB",
            "1.2.3G",
            "-1",
            "5 parsecs",
            "99999999999999999999T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn pruning_removes_the_least_recently_modified_first() {
        let root = tempfile::tempdir().unwrap();
        let shard = root.path().join("app.f/ab");
        std::fs::create_dir_all(&shard).unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        for i in 0..10u64 {
            let path = shard.join(format!("{i:064}"));
            std::fs::write(&path, [0u8; 100]).unwrap();
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(old + Duration::from_secs(i)).unwrap();
        }
        // Under the bound: nothing goes.
        let outcome = prune_root(root.path(), 1000, 800).unwrap();
        assert_eq!((outcome.removed, outcome.kept), (0, 1000));
        // Over it: the oldest go until 500 bytes remain.
        let outcome = prune_root(root.path(), 900, 500).unwrap();
        assert_eq!((outcome.removed, outcome.kept), (5, 500));
        for i in 0..10u64 {
            assert_eq!(shard.join(format!("{i:064}")).exists(), i >= 5, "entry {i}");
        }
    }

    #[test]
    fn touching_sets_the_mtime_and_leaves_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("entry");
        std::fs::write(&path, b"value").unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
        set_mtime_now(&path).unwrap();
        let age = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert!(age > SystemTime::now() - Duration::from_secs(60));
        assert_eq!(std::fs::read(&path).unwrap(), b"value");
    }
}
