//! Per-function counters of this process, and the hit log that lets saved time outlive it.
//! It registers sites and reads and flushes their counters; it knows nothing of how a call
//! reaches a hit.
//!
//! Counting is a few relaxed atomic adds on the call path, to counters striped by thread; a
//! hit, from memory or from its file, writes no file. What the `file-cache` tool shows as
//! "time saved" must survive the process, so the hits not yet logged are appended to a small
//! log in the function's directory (see [`crate::inspect`]) once, when the process is done
//! with them: when the last thread that called a cached function ends, or the main thread
//! (whose thread-local destructors `exit` runs on the platforms that have them, Linux among
//! them). A thread that ends while others still run writes nothing: its counts are in the
//! shared counters, and the last one out writes them. Hits counted only on threads that
//! outlive the main thread's end (a pool that never joins, when the main thread itself never
//! called a cached function) are not logged.
//!
//! The log stays small: an append that finds it past [`COMPACT_AFTER`] bytes rewrites it as
//! one record holding the sum (written to a temporary file and renamed over it, so a reader
//! sees the old log or the new one). A record another process appends to the old file while
//! it is being compacted is lost from the totals; the log is never left damaged.

use crate::disk::hitlog::{self, HitRecord, HIT_LOG, MAX_COMPUTE_US};
use crate::disk::write::write_atomic;
use crate::disk::{files, gate};
use crate::site::{stripe, Site};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Size past which an append compacts the hit log into one record (256 records).
pub(crate) const COMPACT_AFTER: u64 = 4096;

/// Writes to hit logs by this process (appends and compactions), for tests to check that
/// hits write nothing.
static LOG_WRITES: AtomicU64 = AtomicU64::new(0);

/// How many times this process has written a hit log.
pub(crate) fn log_writes() -> u64 {
    LOG_WRITES.load(Ordering::Relaxed)
}

/// Every site that has counted something in this process.
static SITES: Mutex<Vec<&'static Site>> = Mutex::new(Vec::new());

fn register(site: &'static Site) {
    // Read first: a swap on every call would write the shared line on every hit.
    let registered = &site.state.stats.registered;
    if !registered.load(Ordering::Relaxed) && !registered.swap(true, Ordering::Relaxed) {
        SITES.lock().unwrap_or_else(|e| e.into_inner()).push(site);
        // Uploads, and drops of uploads, count for registered sites only (see
        // `record_upload_dropped`).
        crate::remote::on_dropped(record_upload_dropped);
        crate::remote::on_uploaded(record_upload);
    }
}

/// A hit that read `bytes` from the entry at `path` and saved `saved_us` of computing.
pub(crate) fn record_hit(site: &'static Site, path: &Path, bytes: u64, saved_us: u64) {
    register(site);
    let stats = &site.state.stats.stripes[stripe()];
    stats.hits.fetch_add(1, Ordering::Relaxed);
    stats.bytes_read.fetch_add(bytes, Ordering::Relaxed);
    stats.saved_us.fetch_add(saved_us, Ordering::Relaxed);
    stats.unlogged_hits.fetch_add(1, Ordering::Relaxed);
    stats
        .unlogged_saved_us
        .fetch_add(saved_us, Ordering::Relaxed);
    note_dir(site, path);
    // Arms this thread's exit flush. `try_with`: a call from another thread-local's
    // destructor must not panic (its hits are then logged by another thread, or not).
    let _ = EXIT_FLUSH.try_with(|_| {});
}

/// A call that waited while another caller of this process computed its key, and got that
/// value: a hit (the body did not run for it) that read no file and saved no compute time
/// of its own (it spent it waiting), also counted as waited.
pub(crate) fn record_waited(site: &'static Site, path: &Path) {
    record_hit(site, path, 0, 0);
    site.state.stats.waited.fetch_add(1, Ordering::Relaxed);
}

/// Remembers the directory of the entry at `path` as the site's, if it has none yet
/// (checked first: taking a path's parent parses it, and every hit comes here).
pub(crate) fn note_dir(site: &'static Site, path: &Path) {
    let known = &site.state.stats.dir;
    if known.get().is_none() {
        if let Some(dir) = path.parent().and_then(Path::parent) {
            known.get_or_init(|| dir.to_path_buf());
        }
    }
}

/// A call that found nothing usable and runs the body.
pub(crate) fn record_miss(site: &'static Site) {
    register(site);
    // A thread that computes is likely to hit later, or to outlive threads that hit.
    let _ = EXIT_FLUSH.try_with(|_| {});
    site.state.stats.misses.fetch_add(1, Ordering::Relaxed);
}

/// A stored entry of `bytes` bytes.
pub(crate) fn record_store(site: &'static Site, bytes: u64) {
    register(site);
    site.state
        .stats
        .bytes_written
        .fetch_add(bytes, Ordering::Relaxed);
}

/// A miss whose value is not stored because the root is read-only (`why`); the first of the
/// process says so at `info`.
pub(crate) fn record_not_stored(site: &'static Site, why: &dyn std::fmt::Display) {
    register(site);
    site.state
        .stats
        .not_stored_read_only
        .fetch_add(1, Ordering::Relaxed);
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        log::info!(
            "file_cache: {}: computed values are not stored: {why} (counted in \
             FunctionStats::not_stored_read_only)",
            site.display_name()
        );
    }
}

/// A hit answered by the remote tier, of an object of `bytes` bytes (counted as a hit too,
/// by [`record_hit`]).
pub(crate) fn record_remote_hit(site: &'static Site, bytes: u64) {
    let stats = &site.state.stats;
    stats.remote_hits.fetch_add(1, Ordering::Relaxed);
    stats.remote_bytes_read.fetch_add(bytes, Ordering::Relaxed);
}

/// A local miss the remote tier was asked about and had no usable entry for (none, refused,
/// expired, or the remote failed or is skipped after failures).
pub(crate) fn record_remote_miss(site: &'static Site) {
    register(site);
    site.state
        .stats
        .remote_misses
        .fetch_add(1, Ordering::Relaxed);
}

/// The site whose function directory is `function_dir`, among those registered.
fn site_of_dir(function_dir: &Path) -> Option<&'static Site> {
    let sites = SITES.lock().unwrap_or_else(|e| e.into_inner());
    sites.iter().copied().find(|site| {
        site.state
            .stats
            .dir
            .get()
            .is_some_and(|dir| dir == function_dir)
    })
}

/// An upload of `bytes` bytes of an entry in `function_dir` that the remote stored.
pub(crate) fn record_upload(function_dir: &Path, bytes: u64) {
    if let Some(site) = site_of_dir(function_dir) {
        let stats = &site.state.stats;
        stats.uploads.fetch_add(1, Ordering::Relaxed);
        stats
            .remote_bytes_written
            .fetch_add(bytes, Ordering::Relaxed);
    }
}

/// A remote upload of an entry in `function_dir` that was dropped or given up; counted for
/// the function whose directory that is (a method's first `Self` type's, see
/// [`FunctionStats::function`]).
pub(crate) fn record_upload_dropped(function_dir: &Path) {
    if let Some(site) = site_of_dir(function_dir) {
        site.state
            .stats
            .uploads_dropped
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// Appends the site's unlogged hits to its hit log, and compacts the log when it has grown
/// past [`COMPACT_AFTER`]. Best effort: a log that cannot be written loses those hits from
/// the tool's totals, and nothing else.
fn flush_site(site: &Site) {
    let stats = &site.state.stats;
    let Some(dir) = stats.dir.get() else {
        return;
    };
    let (mut hits, mut saved_us) = (0, 0);
    for stripe in &stats.stripes {
        hits += stripe.unlogged_hits.swap(0, Ordering::Relaxed);
        saved_us += stripe.unlogged_saved_us.swap(0, Ordering::Relaxed);
    }
    if hits == 0 {
        return;
    }
    // An entry whose header claims a longer compute than any ran (written by hand, or
    // damaged under a matching checksum) must not make this record look damaged.
    let saved_us = saved_us.min(hits.saturating_mul(MAX_COMPUTE_US));
    let appended = HitRecord { hits, saved_us };
    let record = appended.to_bytes();
    let log = dir.join(HIT_LOG);
    if let Some(why) = gate::refusal(&log) {
        // A read-only cache logs no hits: they are lost from the tool's totals only.
        log::debug!(
            "file_cache: {}: {hits} hits not logged ({why})",
            site.display_name()
        );
        return;
    }
    LOG_WRITES.fetch_add(1, Ordering::Relaxed);
    match hitlog::append(&log, &record) {
        // A length that is not a whole number of records is a damaged log: replaced now.
        Ok(len) if len > COMPACT_AFTER || !len.is_multiple_of(record.len() as u64) => {
            compact(&log, appended)
        }
        Ok(_) => {}
        Err(error) => log::debug!(
            "file_cache: {}: cannot append to the hit log in {} ({error})",
            site.display_name(),
            dir.display()
        ),
    }
}

/// Rewrites the hit log at `log` as one record, the sum of its records. Appends that land
/// on the old file between the read and the rename are lost (a few hits of the tool's
/// totals); the rename replaces the log whole, so no reader ever sees a damaged one.
///
/// A damaged log (records no process wrote, see [`crate::inspect::DamagedHitLog`]) has no
/// sum worth keeping: it is replaced by the record this process `appended`, and the totals
/// start over from there.
fn compact(log: &Path, appended: HitRecord) {
    // Bounded: what is there now may not be what was appended to (a link is refused).
    let bytes = match files::read_bounded(log, 4 * COMPACT_AFTER) {
        Ok(bytes) => bytes,
        Err(error) => {
            log::debug!(
                "file_cache: cannot read the hit log {} ({error})",
                log.display()
            );
            return;
        }
    };
    let sum = match HitRecord::parse_log(&bytes) {
        Ok(sum) => sum,
        Err(damage) => {
            log::warn!(
                "file_cache: the hit log {} is damaged ({damage}); replacing it with this \
                 process's hits",
                log.display()
            );
            appended
        }
    };
    LOG_WRITES.fetch_add(1, Ordering::Relaxed);
    if let Err(error) = write_atomic(log, &[&sum.to_bytes()]) {
        log::debug!(
            "file_cache: cannot compact the hit log {} ({error})",
            log.display()
        );
    }
}

/// Writes every site's unlogged hits.
fn flush_all() {
    let sites = SITES.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for site in sites {
        flush_site(site);
    }
}

/// Threads that have called a cached function and not ended yet.
static HITTING_THREADS: AtomicUsize = AtomicUsize::new(0);

/// A thread's part in writing the hit logs: the last thread that called a cached function
/// to end, or the main thread at exit, writes them.
struct ExitFlush {
    main: bool,
}

impl ExitFlush {
    fn arm() -> ExitFlush {
        HITTING_THREADS.fetch_add(1, Ordering::Relaxed);
        ExitFlush {
            main: std::thread::current().name() == Some("main"),
        }
    }
}

impl Drop for ExitFlush {
    fn drop(&mut self) {
        let last = HITTING_THREADS.fetch_sub(1, Ordering::AcqRel) == 1;
        if last || self.main {
            flush_all();
        }
    }
}

thread_local! {
    static EXIT_FLUSH: ExitFlush = ExitFlush::arm();
}

/// What one cached function did in this process, from [`stats()`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FunctionStats {
    /// The function's path as [`clear`](crate::clear) and the `file-cache` tool name it:
    /// `my_crate::module::name`, or `my_crate::module::Type::method` for a method (the type
    /// of its first call in this process; the counters cover every type).
    pub function: String,
    /// Calls answered without running the body: from a stored entry (in memory, in its
    /// file, or in the remote tier), or with the value another caller computed while they
    /// waited for it (those are counted in [`waited`](Self::waited) too).
    pub hits: u64,
    /// Calls that ran the body (nothing stored, or an entry that was expired or unusable).
    /// `hits + misses` is every call that used the cache.
    pub misses: u64,
    /// Of the hits, those that found the key being computed by another thread or task of
    /// this process, waited for it, and got its value: the body ran once for all of them.
    /// They read no file and are not in [`time_saved`](Self::time_saved) (they spent that
    /// time waiting). A call that waited for another *process* (for the entry's lock) reads
    /// the entry that process stored: it is a hit from the file, not counted here.
    pub waited: u64,
    /// Bytes of entry files read by hits.
    pub bytes_read: u64,
    /// Bytes of entry files written after misses.
    pub bytes_written: u64,
    /// Time the hits did not spend computing: the sum of the compute times their entries
    /// recorded when they were stored.
    pub time_saved: Duration,
    /// Stored values not uploaded to the remote tier in the background: dropped because
    /// the upload queue was full, or given up at exit after the exit wait
    /// (`FILE_CACHE_REMOTE_EXIT_WAIT`). They are in the local cache all the same.
    pub uploads_dropped: u64,
    /// Of the hits, those answered by the remote tier (after a local miss).
    pub remote_hits: u64,
    /// Local misses the remote tier was asked about and had no usable entry for (none,
    /// one refused or expired, or the remote failing or skipped after failures): they ran
    /// the body.
    pub remote_misses: u64,
    /// Entries the remote tier stored (in the call with `FILE_CACHE_REMOTE_WRITE=sync`,
    /// otherwise in the background).
    pub uploads: u64,
    /// Bytes [`remote_hits`](Self::remote_hits) fetched: the stored objects, as they
    /// travelled (compressed, signatures included), as for `remote_bytes_written`.
    pub remote_bytes_read: u64,
    /// Bytes of the objects of [`uploads`](Self::uploads) (signatures included).
    pub remote_bytes_written: u64,
    /// Misses whose value was computed and returned but not stored, because the cache is
    /// read-only: `FILE_CACHE_READONLY=1`, or a root this process cannot write (a read-only
    /// mount, no permission). The first one of the process is logged at `info`.
    pub not_stored_read_only: u64,
    /// Why the function's values are not being cached in this process, when they are not:
    /// its return type's `Serialize` and `Deserialize` disagree in every codec, so every
    /// call runs the body. `None` for a function that caches.
    pub not_cached: Option<String>,
}

/// The counters of every cached function called in this process so far, sorted by path.
///
/// Every call that uses the cache is a hit or a miss: a call that waits for another thread
/// computing the same key and gets its value is a hit (counted in
/// [`FunctionStats::waited`] too), and only the caller that computed is a miss.
///
/// Counting costs a few atomic additions per call. Calls that bypass the cache
/// (`FILE_CACHE=off`, an argument that cannot be hashed) count as neither hits nor misses.
///
/// ```
/// use file_cache::file_cache;
///
/// #[file_cache]
/// fn cube(x: u64) -> u64 {
///     x * x * x
/// }
///
/// # std::env::set_var("FILE_CACHE_DIR", std::env::temp_dir().join("file_cache_doctest_stats"));
/// # file_cache::clear_all().unwrap();
/// cube(3); // a miss: computed and stored
/// cube(3); // a hit
/// let stats = file_cache::stats();
/// let cube = stats.iter().find(|s| s.function.ends_with("::cube")).unwrap();
/// assert_eq!((cube.hits, cube.misses), (1, 1));
/// assert!(cube.bytes_written > 0 && cube.bytes_read == cube.bytes_written);
/// ```
pub fn stats() -> Vec<FunctionStats> {
    let sites = SITES.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut out: Vec<FunctionStats> = sites
        .iter()
        .map(|site| {
            let stats = &site.state.stats;
            FunctionStats {
                function: stats
                    .dir
                    .get()
                    .and_then(|dir| dir.file_name())
                    .map(|name| name.to_string_lossy().replace('.', "::"))
                    .unwrap_or_else(|| site.display_name()),
                hits: stats.sum(|s| &s.hits),
                misses: stats.misses.load(Ordering::Relaxed),
                waited: stats.waited.load(Ordering::Relaxed),
                bytes_read: stats.sum(|s| &s.bytes_read),
                bytes_written: stats.bytes_written.load(Ordering::Relaxed),
                time_saved: Duration::from_micros(stats.sum(|s| &s.saved_us)),
                uploads_dropped: stats.uploads_dropped.load(Ordering::Relaxed),
                remote_hits: stats.remote_hits.load(Ordering::Relaxed),
                remote_misses: stats.remote_misses.load(Ordering::Relaxed),
                uploads: stats.uploads.load(Ordering::Relaxed),
                remote_bytes_read: stats.remote_bytes_read.load(Ordering::Relaxed),
                remote_bytes_written: stats.remote_bytes_written.load(Ordering::Relaxed),
                not_stored_read_only: stats.not_stored_read_only.load(Ordering::Relaxed),
                not_cached: site.uncacheable_reason().map(str::to_owned),
            }
        })
        .collect();
    out.sort_by(|a, b| a.function.cmp(&b.function));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::SiteInfo;

    static SITE: Site = Site::new(SiteInfo {
        module_path: "stats_test",
        name: "f",
        ..SiteInfo::DEFAULT
    });

    #[test]
    fn hits_are_counted_in_memory_and_logged_when_flushed() {
        let root = tempfile::tempdir().unwrap();
        let entry = root.path().join("stats_test.f/ab/abcd");
        record_miss(&SITE);
        record_store(&SITE, 100);
        let writes = log_writes();
        for _ in 0..1000 {
            record_hit(&SITE, &entry, 100, 1_000_000);
        }
        let log = root.path().join("stats_test.f").join(HIT_LOG);
        assert!(!log.exists(), "a hit writes nothing");
        assert_eq!(log_writes(), writes);
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        flush_site(&SITE);
        let totals = |log: &Path| HitRecord::parse_log(&std::fs::read(log).unwrap()).unwrap();
        assert_eq!(std::fs::read(&log).unwrap().len(), 16, "one record");
        assert_eq!(
            totals(&log),
            HitRecord {
                hits: 1000,
                saved_us: 1_000_000_000
            }
        );
        flush_site(&SITE);
        assert_eq!(std::fs::read(&log).unwrap().len(), 16, "nothing new to log");
        let found = stats()
            .into_iter()
            .find(|s| s.function == "stats_test::f")
            .unwrap();
        assert_eq!((found.hits, found.misses), (1000, 1));
        assert_eq!((found.bytes_read, found.bytes_written), (100_000, 100));
        assert_eq!(found.time_saved, Duration::from_secs(1000));
    }

    #[cfg(unix)]
    static LINKED: Site = Site::new(SiteInfo {
        module_path: "stats_test",
        name: "linked",
        ..SiteInfo::DEFAULT
    });

    #[cfg(unix)]
    #[test]
    fn a_hit_log_that_is_a_link_is_replaced_never_written_through() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("bashrc");
        std::fs::write(&target, b"precious").unwrap();
        let dir = root.path().join("stats_test.linked");
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(&target, dir.join(HIT_LOG)).unwrap();
        for _ in 0..5 {
            record_hit(&LINKED, &dir.join("ab/abcd"), 10, 5);
        }
        flush_site(&LINKED);
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        let log = dir.join(HIT_LOG);
        assert!(std::fs::symlink_metadata(&log).unwrap().is_file());
        assert_eq!(
            HitRecord::parse_log(&std::fs::read(&log).unwrap())
                .unwrap()
                .hits,
            5
        );
        // A link planted for the compaction's read is refused, not read.
        std::fs::remove_file(&log).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &log).unwrap();
        compact(
            &log,
            HitRecord {
                hits: 1,
                saved_us: 0,
            },
        );
        assert!(std::fs::symlink_metadata(&log).unwrap().is_symlink());
    }

    #[test]
    fn a_damaged_log_is_replaced_not_summed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join(HIT_LOG);
        let ours = HitRecord {
            hits: 2,
            saved_us: 40,
        };
        // Past the compaction threshold, records of no hits and absurd counts.
        let mut garbage: Vec<u8> = (0..COMPACT_AFTER + 16)
            .map(|i| (i * 37 % 251) as u8)
            .collect();
        garbage.extend_from_slice(&ours.to_bytes());
        std::fs::write(&log, &garbage).unwrap();
        assert!(HitRecord::parse_log(&garbage).is_err());
        compact(&log, ours);
        let bytes = std::fs::read(&log).unwrap();
        assert_eq!(HitRecord::parse_log(&bytes), Ok(ours));
    }

    static TORN: Site = Site::new(SiteInfo {
        module_path: "stats_test",
        name: "torn",
        ..SiteInfo::DEFAULT
    });

    #[test]
    fn a_log_of_torn_records_is_replaced_by_the_next_append() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("stats_test.torn");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(HIT_LOG);
        // A record cut short, as a full disk leaves one: every later record is misaligned.
        std::fs::write(
            &log,
            &HitRecord {
                hits: 9,
                saved_us: 9,
            }
            .to_bytes()[..7],
        )
        .unwrap();
        for _ in 0..3 {
            record_hit(&TORN, &dir.join("ab/abcd"), 10, 5);
        }
        flush_site(&TORN);
        let bytes = std::fs::read(&log).unwrap();
        assert_eq!(
            HitRecord::parse_log(&bytes),
            Ok(HitRecord {
                hits: 3,
                saved_us: 15
            })
        );
    }

    static FORGED: Site = Site::new(SiteInfo {
        module_path: "stats_test",
        name: "forged",
        ..SiteInfo::DEFAULT
    });

    #[test]
    fn a_hit_on_an_entry_claiming_an_endless_compute_logs_a_plausible_record() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("stats_test.forged");
        std::fs::create_dir_all(&dir).unwrap();
        record_hit(&FORGED, &dir.join("ab/abcd"), 10, u64::MAX);
        flush_site(&FORGED);
        let bytes = std::fs::read(dir.join(HIT_LOG)).unwrap();
        let logged = HitRecord::parse_log(&bytes).expect("a plausible record");
        assert_eq!(logged.hits, 1);
    }

    #[test]
    fn a_long_log_is_compacted_into_its_sum() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join(HIT_LOG);
        let record = HitRecord {
            hits: 3,
            saved_us: 7,
        }
        .to_bytes();
        let records = COMPACT_AFTER as usize / 16;
        std::fs::write(&log, record.repeat(records)).unwrap();
        compact(
            &log,
            HitRecord {
                hits: 3,
                saved_us: 7,
            },
        );
        let bytes = std::fs::read(&log).unwrap();
        assert_eq!(bytes.len(), 16);
        assert_eq!(
            HitRecord::parse_log(&bytes).unwrap(),
            HitRecord {
                hits: 3 * records as u64,
                saved_us: 7 * records as u64
            }
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [HIT_LOG], "no temporary file left");
    }
}
