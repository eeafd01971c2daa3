//! `FILE_CACHE_MAX_SIZE`: keeping the root under a bound, least recently used entries first.
//!
//! - **Recency without atime.** A hit sets its entry's mtime to now (one `utimensat`), at
//!   most once a minute per entry and process, so the mtime is the time of the last write
//!   or hit, to the minute, whatever the mount options. Without a bound nothing is touched.
//! - **Pruning off the call path.** Each process keeps an estimate of the root's size: a
//!   scan's total plus the bytes it has written since. A store that takes the estimate past
//!   90% of the bound wakes a background thread, which scans the root and deletes the
//!   entries with the oldest mtimes until the root is at 75% of it, then corrects the
//!   estimate. A call only does atomic additions and, past 90%, one condition-variable
//!   notify.
//! - **A hard cap instead of waiting.** When a store would take the estimate more than 5%
//!   over the bound (the pruner has not caught up with a burst of writes), the storing call
//!   removes, itself, as many of the least recently used entries the last pass queued as it
//!   needs room for: a stat and an unlink each, no scan. With none left, the store is
//!   skipped: the call returns its value uncached rather than wait or grow the root.

use crate::config::config;
use crate::inspect::{self, EntryFile};
use std::collections::VecDeque;
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
/// Most entries a pass queues for stores at the hard cap to remove.
const MAX_VICTIMS: usize = 4096;

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
    /// The least recently used entries the last pass kept, oldest first: what a store at
    /// the hard cap removes itself to make room, instead of waiting for the next pass.
    victims: Mutex<VecDeque<EntryFile>>,
}

/// Whether a size bound is in force (a hit then keeps its file recent).
pub(crate) fn is_bounded() -> bool {
    bound().is_some()
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
                victims: Mutex::new(VecDeque::new()),
            })
        })
        .as_ref()
}

impl Bound {
    fn hard_cap(&self) -> u64 {
        self.max.saturating_add(self.max / 20)
    }

    /// Past this, the pruner is woken: it starts before the bound is reached.
    fn trigger(&self) -> u64 {
        self.max / 10 * 9
    }

    /// What a pruning pass leaves: room for a quarter of the bound before the next one.
    fn target(&self) -> u64 {
        self.max / 4 * 3
    }

    /// Removes queued victims until `len` more bytes fit under the hard cap: a few unlinks,
    /// each after a stat that skips an entry hit since the pass that queued it.
    fn make_room(&self, len: u64) -> bool {
        let mut victims = self.victims.lock().unwrap_or_else(|e| e.into_inner());
        while self.estimate.load(Ordering::Relaxed).saturating_add(len) > self.hard_cap() {
            let Some(victim) = victims.pop_front() else {
                return false;
            };
            let unchanged = std::fs::metadata(&victim.path)
                .and_then(|meta| meta.modified())
                .is_ok_and(|modified| modified == victim.modified);
            if unchanged && std::fs::remove_file(&victim.path).is_ok() {
                let _ = self
                    .estimate
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |e| {
                        Some(e.saturating_sub(victim.len))
                    });
            }
        }
        true
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
            }
            // Wakes that arrive during a pass are folded into it: the pass ends by looking
            // at the estimate again, so a burst costs as many passes as it needs, no more.
            loop {
                self.prune();
                if self.estimate.load(Ordering::Relaxed) <= self.trigger() {
                    break;
                }
            }
            *self.wake.lock().unwrap_or_else(|e| e.into_inner()) = false;
        }
    }

    /// Scans the root and, when it is over the bound, evicts the least recently used
    /// entries down to the target.
    fn prune(&self) {
        let started = Instant::now();
        let written_before = self.written.load(Ordering::Relaxed);
        match prune_root(&self.root, self.trigger(), self.target()) {
            Ok(mut outcome) => {
                *self.victims.lock().unwrap_or_else(|e| e.into_inner()) =
                    std::mem::take(&mut outcome.next_victims);
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
    /// The oldest entries kept, oldest first (up to a quarter of `target` in bytes).
    pub(crate) next_victims: VecDeque<EntryFile>,
}

/// Deletes the entries with the oldest mtimes under `root` until at most `target` bytes
/// remain, if it holds more than `max`. (Entries another process prunes at the same time
/// count as removed, so pruners running together do not remove much more than needed.)
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
    entries.sort_by_key(|entry| entry.modified);
    let mut entries = entries.into_iter();
    if total > max {
        for entry in entries.by_ref() {
            if total <= target {
                outcome.next_victims.push_back(entry);
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
    let mut queued: u64 = outcome.next_victims.iter().map(|e| e.len).sum();
    for entry in entries {
        if queued > target / 4 || outcome.next_victims.len() >= MAX_VICTIMS {
            break;
        }
        queued += entry.len;
        outcome.next_victims.push_back(entry);
    }
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
    if bound.make_room(len) {
        return true;
    }
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
    if estimate > bound.trigger() || !bound.scanned.load(Ordering::Relaxed) {
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
        // The oldest entries kept are queued for stores at the hard cap, oldest first.
        let queued: Vec<_> = outcome
            .next_victims
            .iter()
            .map(|e| e.path.clone())
            .collect();
        assert_eq!(
            queued,
            [
                shard.join(format!("{:064}", 5)),
                shard.join(format!("{:064}", 6))
            ]
        );
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
