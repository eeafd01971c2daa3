//! Per-function counters of this process, and the hit log that lets saved time outlive it.
//!
//! Counting is a few relaxed atomic adds on the call path, to counters striped by thread. What the `file-cache` tool shows
//! as "time saved" must survive the process, so hits are also appended, in batches, to a
//! small log in the function's directory (see [`crate::inspect`]): a batch is written once it
//! holds a second of saved time or a thousand hits, and whatever is left when a thread ends
//! (the main thread included, on the platforms that run its thread-local destructors).

use crate::inspect::{HitRecord, HIT_LOG};
use crate::site::Site;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Unlogged saved time that triggers a write to the hit log.
const LOG_AFTER_SAVED_US: u64 = 1_000_000;
/// Unlogged hits that trigger a write to the hit log.
const LOG_AFTER_HITS: u64 = 1_000;

/// The counters of one site, kept in its per-process state.
///
/// A hit's counters are striped: each thread adds to one of [`STRIPES`] sets, each on its
/// own cache lines, and readers sum them. Two threads hitting one function then never
/// write to the same cache line (with one shared set, the line bounced between the cores
/// on every hit, and two threads did hardly more hits than one).
#[derive(Debug)]
pub(crate) struct SiteStats {
    registered: AtomicBool,
    misses: AtomicU64,
    bytes_written: AtomicU64,
    stripes: [HitStripe; STRIPES],
    /// The function's directory, from its first lookup: where its hit log is, and what
    /// names it in [`FunctionStats`] (for a method, the directory of its first `Self` type).
    dir: OnceLock<PathBuf>,
    /// Whether the first lookup of this process has recorded the function's version.
    pub(crate) version_noted: AtomicBool,
}

/// Stripes of hit counters per site; a thread's stripe is assigned round-robin.
const STRIPES: usize = 8;

/// One thread stripe's hit counters, alone on its cache lines.
#[derive(Debug)]
#[repr(align(128))]
struct HitStripe {
    hits: AtomicU64,
    bytes_read: AtomicU64,
    saved_us: AtomicU64,
    unlogged_hits: AtomicU64,
    unlogged_saved_us: AtomicU64,
}

impl HitStripe {
    const fn new() -> HitStripe {
        HitStripe {
            hits: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            saved_us: AtomicU64::new(0),
            unlogged_hits: AtomicU64::new(0),
            unlogged_saved_us: AtomicU64::new(0),
        }
    }
}

/// This thread's stripe.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.try_with(|stripe| *stripe).unwrap_or(0)
}

impl SiteStats {
    pub(crate) const fn new() -> SiteStats {
        SiteStats {
            registered: AtomicBool::new(false),
            misses: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            stripes: [const { HitStripe::new() }; STRIPES],
            dir: OnceLock::new(),
            version_noted: AtomicBool::new(false),
        }
    }

    fn sum(&self, field: impl Fn(&HitStripe) -> &AtomicU64) -> u64 {
        self.stripes
            .iter()
            .map(|stripe| field(stripe).load(Ordering::Relaxed))
            .sum()
    }
}

/// Every site that has counted something in this process.
static SITES: Mutex<Vec<&'static Site>> = Mutex::new(Vec::new());

fn register(site: &'static Site) {
    // Read first: a swap on every call would write the shared line on every hit.
    let registered = &site.state.stats.registered;
    if !registered.load(Ordering::Relaxed) && !registered.swap(true, Ordering::Relaxed) {
        SITES.lock().unwrap_or_else(|e| e.into_inner()).push(site);
    }
}

/// A hit that read `bytes` from the entry at `path` and saved `saved_us` of computing.
pub(crate) fn record_hit(site: &'static Site, path: &Path, bytes: u64, saved_us: u64) {
    register(site);
    let stats = &site.state.stats.stripes[stripe()];
    stats.hits.fetch_add(1, Ordering::Relaxed);
    stats.bytes_read.fetch_add(bytes, Ordering::Relaxed);
    stats.saved_us.fetch_add(saved_us, Ordering::Relaxed);
    // Per stripe: a batch is logged once one thread's stripe holds a second of saved
    // time or a thousand hits (with the other stripes' unlogged hits).
    let hits = stats.unlogged_hits.fetch_add(1, Ordering::Relaxed) + 1;
    let saved = stats
        .unlogged_saved_us
        .fetch_add(saved_us, Ordering::Relaxed)
        + saved_us;
    note_dir(site, path);
    // `try_with`: a call from another thread-local's destructor must not panic.
    let _ = EXIT_FLUSH.try_with(|_| {});
    if saved >= LOG_AFTER_SAVED_US || hits >= LOG_AFTER_HITS {
        flush_site(site);
    }
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

/// Appends the site's unlogged hits to its hit log. Best effort: a log that cannot be
/// written loses those hits from the tool's totals, and nothing else.
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
    let record = HitRecord { hits, saved_us }.to_bytes();
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    // One `write` of 16 bytes with O_APPEND: records of concurrent processes never interleave.
    let result = options
        .open(dir.join(HIT_LOG))
        .and_then(|mut file| file.write_all(&record));
    if let Err(error) = result {
        log::debug!(
            "file_cache: {}: cannot append to the hit log in {} ({error})",
            site.display_name(),
            dir.display()
        );
    }
}

/// Writes every site's unlogged hits; run when a thread that hit ends.
fn flush_all() {
    let sites = SITES.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for site in sites {
        flush_site(site);
    }
}

struct ExitFlush;

impl Drop for ExitFlush {
    fn drop(&mut self) {
        flush_all();
    }
}

thread_local! {
    static EXIT_FLUSH: ExitFlush = const { ExitFlush };
}

/// What one cached function did in this process, from [`stats()`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FunctionStats {
    /// The function's path as [`clear`](crate::clear) and the `file-cache` tool name it:
    /// `my_crate::module::name`, or `my_crate::module::Type::method` for a method (the type
    /// of its first call in this process; the counters cover every type).
    pub function: String,
    /// Calls answered from a stored entry.
    pub hits: u64,
    /// Calls that ran the body (nothing stored, or an entry that was expired or unusable).
    pub misses: u64,
    /// Bytes of entry files read by hits.
    pub bytes_read: u64,
    /// Bytes of entry files written after misses.
    pub bytes_written: u64,
    /// Time the hits did not spend computing: the sum of the compute times their entries
    /// recorded when they were stored.
    pub time_saved: Duration,
    /// Why the function's values are not being cached in this process, when they are not:
    /// its return type's `Serialize` and `Deserialize` disagree in every codec, so every
    /// call runs the body. `None` for a function that caches.
    pub not_cached: Option<String>,
}

/// The counters of every cached function called in this process so far, sorted by path.
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
                bytes_read: stats.sum(|s| &s.bytes_read),
                bytes_written: stats.bytes_written.load(Ordering::Relaxed),
                time_saved: Duration::from_micros(stats.sum(|s| &s.saved_us)),
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
    fn counts_and_logs_hits_in_batches() {
        let root = tempfile::tempdir().unwrap();
        let entry = root.path().join("stats_test.f/ab/abcd");
        record_miss(&SITE);
        record_store(&SITE, 100);
        record_hit(&SITE, &entry, 100, 400_000);
        let log = root.path().join("stats_test.f").join(HIT_LOG);
        assert!(!log.exists(), "0.4 s saved: not logged yet");
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        record_hit(&SITE, &entry, 100, 700_000);
        assert_eq!(
            std::fs::read(&log).unwrap().len(),
            16,
            "1.1 s saved: one record"
        );
        let found = stats()
            .into_iter()
            .find(|s| s.function == "stats_test::f")
            .unwrap();
        assert_eq!((found.hits, found.misses), (2, 1));
        assert_eq!((found.bytes_read, found.bytes_written), (200, 100));
        assert_eq!(found.time_saved, Duration::from_millis(1100));
    }
}
