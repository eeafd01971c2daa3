//! `FILE_CACHE_MAX_SIZE`: keeping the root under a bound, least recently used entries
//! first. It counts and removes entry files; it never reads what they hold, and knows
//! nothing of sites or calls.
//!
//! - **What counts.** Entries only. The runtime's own small files (hit logs, which stay a
//!   few kilobytes, version records, locks, temporary files) are neither counted nor
//!   removed, so they can never make the pruner remove every entry to reach a bound they
//!   alone exceed.
//! - **Recency without atime.** A hit sets its entry's mtime to now (one `utimensat`), at
//!   most once a minute per entry and process, so the mtime is the time of the last write
//!   or hit, to the minute, whatever the mount options. Without a bound nothing is touched.
//! - **One size for every process.** The size of the root's entries is kept in a small file
//!   at the root (`.size`), read and updated under a file lock by each store of every
//!   process with a bound: a process's writes are seen by all the others at once. Each
//!   pruning pass sets it from what its scan found, plus what was stored meanwhile (the
//!   record keeps a running total of the bytes stores counted, for this: entries also go
//!   during a scan, so how much the size grew would miss stores), which corrects what no
//!   store counted (entries removed by hand, or written by a process without a bound).
//!   The size may count a store twice (one written while a scan ran), never miss one.
//! - **Pruning off the call path.** A store that takes the size past 90% of the bound wakes
//!   a background thread, which scans the root and deletes the entries with the oldest
//!   mtimes until the root is at 75% of it. A pass that cannot get below 90% (files that
//!   cannot be removed) is followed by another no sooner than a second later: the pruner
//!   never spins.
//! - **A hard cap instead of waiting.** When a store would take the size more than 5% over
//!   the bound (the pruner has not caught up with a burst of writes, or has not been
//!   scheduled), the storing call removes, itself, as many of the least recently used
//!   entries the last pass queued as it needs room for: a stat and an unlink each, no scan.
//!   With none left, it runs a pass itself (a scan, once per quarter of the bound written,
//!   at most), which queues the next ones. A store is skipped only when its value alone is
//!   larger than the bound, or when a pass less than a second ago could not make room.

use crate::config::{config, MAX_SIZE_VAR};
use crate::disk::gate;
use crate::disk::scan::{self, EntryFile};
use std::cell::Cell;
use std::collections::VecDeque;
use std::fs::File;
#[cfg(not(unix))]
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A hit refreshes its entry's mtime when this process has not done so for this long.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// Entries remembered as recently touched, before the memory is reset.
const TOUCH_MEMORY: usize = 65_536;
/// Most entries a pass queues for stores at the hard cap to remove.
const MAX_VICTIMS: usize = 4096;

/// Name, at the root, of the file holding the size of the root's entries.
pub(crate) const SIZE_RECORD: &str = ".size";

/// A pass that could not reach its target is followed by another no sooner than this.
const BACK_OFF: Duration = Duration::from_secs(1);

/// Pruning passes made by this process.
static PASSES: AtomicU64 = AtomicU64::new(0);

/// Whether the background pruner is held (tests: a scheduler that does not run it).
static HELD: AtomicBool = AtomicBool::new(false);

pub(crate) fn passes() -> u64 {
    PASSES.load(Ordering::Relaxed)
}

pub(crate) fn hold_pruner(held: bool) {
    HELD.store(held, Ordering::Relaxed);
    if let (false, Some(bound)) = (held, bound()) {
        bound.wake_pruner();
    }
}

/// The size bound of this process's root, and what it knows about the root's size.
struct Bound {
    root: PathBuf,
    max: u64,
    /// The entries' size as this process last read or set it.
    estimate: AtomicU64,
    /// Whether this process has scanned the root once.
    scanned: AtomicBool,
    wake: Mutex<bool>,
    signal: Condvar,
    pruner: OnceLock<bool>,
    /// The least recently used entries the last pass kept, oldest first: what a store at
    /// the hard cap removes itself to make room, instead of waiting for the next pass.
    victims: Mutex<VecDeque<EntryFile>>,
    /// The open size record. The mutex keeps this process's threads out of each other's
    /// way (they share the file, so its lock does not exclude them); `None` until opened,
    /// and after a pass (which reopens it, in case the root was removed and recreated).
    /// What stands in for it when it cannot be opened comes with it.
    record: Mutex<(Option<File>, Record)>,
    /// One pass at a time in this process.
    passes: Mutex<PassLog>,
}

/// What the passes of this process have done.
#[derive(Default)]
struct PassLog {
    done: u64,
    /// When the last pass that could not get the root under its trigger ended.
    fell_short: Option<Instant>,
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
            config
                .max_size
                .map(|max| Bound::new(config.root.clone(), max))
        })
        .as_ref()
}

impl Bound {
    fn new(root: PathBuf, max: u64) -> Bound {
        Bound {
            root,
            max,
            estimate: AtomicU64::new(0),
            scanned: AtomicBool::new(false),
            wake: Mutex::new(false),
            signal: Condvar::new(),
            pruner: OnceLock::new(),
            victims: Mutex::new(VecDeque::new()),
            record: Mutex::new((None, Record::default())),
            passes: Mutex::new(PassLog::default()),
        }
    }

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

    /// Runs `update` on the size of the root's entries, as every process sees it, under
    /// the size record's lock; writes back what it leaves. Without a record (it cannot be
    /// opened or locked), this process's own count stands in.
    fn with_record<R>(&self, update: impl FnOnce(&mut Record) -> R) -> R {
        let mut guard = self.record.lock().unwrap_or_else(|e| e.into_inner());
        let (file, local) = &mut *guard;
        if file.is_none() {
            *file = open_record(&self.root);
        }
        let locked = file.as_mut().filter(|file| file.lock().is_ok());
        let Some(file) = locked else {
            let out = update(local);
            self.estimate.store(local.size, Ordering::Relaxed);
            return out;
        };
        let before = read_record(file).unwrap_or(*local);
        let mut record = before;
        let out = update(&mut record);
        if record != before {
            if let Err(error) = write_record(file, record) {
                log::debug!("file_cache: cannot update {SIZE_RECORD} ({error})");
            }
        }
        let _ = file.unlock();
        *local = record;
        self.estimate.store(record.size, Ordering::Relaxed);
        out
    }

    /// Counts `len` more bytes, removing queued victims first until they fit under the hard
    /// cap: a few unlinks, each after a stat that skips an entry hit since the pass that
    /// queued it. Returns the record's pass count then; `None` when the queue ran out first.
    fn reserve(&self, len: u64) -> Option<u64> {
        self.with_record(|record| {
            if record.size.saturating_add(len) > self.hard_cap() {
                let mut victims = self.victims.lock().unwrap_or_else(|e| e.into_inner());
                while record.size.saturating_add(len) > self.hard_cap() {
                    let victim = victims.pop_front()?;
                    let unchanged = std::fs::metadata(&victim.path)
                        .and_then(|meta| meta.modified())
                        .is_ok_and(|modified| modified == victim.modified);
                    if unchanged && gate::remove_file(&victim.path).is_ok() {
                        record.size = record.size.saturating_sub(victim.len);
                        scan::remove_empty_shard(&victim.path);
                    }
                }
            }
            record.add(len);
            Some(record.passes)
        })
    }

    /// Counts a store of `len` bytes, making room first if needed: from the queued victims,
    /// then by a pass of its own (or two, if the first one's victims were taken by other
    /// stores). Returns the record's pass count; `None` when no room could be made.
    fn admit(&self, len: u64) -> Option<u64> {
        for attempt in 0..3 {
            let seen = self.passes.lock().unwrap_or_else(|e| e.into_inner()).done;
            if let Some(passes) = self.reserve(len) {
                return Some(passes);
            }
            if attempt == 2 || !self.pass_for_store(seen) {
                break;
            }
        }
        None
    }

    /// Whether the record still counts `passes` passes: read without its lock (a store
    /// asks after every write; the count only changes when a pass starts, and a torn read
    /// would only count a store again).
    fn passes_unchanged(&self, passes: u64) -> bool {
        let mut guard = self.record.lock().unwrap_or_else(|e| e.into_inner());
        let (file, local) = &mut *guard;
        if file.is_none() {
            // Closed for a pass to reopen: another process's pass may have begun since
            // this one's count was last read.
            *file = open_record(&self.root);
        }
        match file {
            Some(file) => read_record(file).is_some_and(|record| record.passes == passes),
            None => local.passes == passes,
        }
    }

    /// After a store admitted when the record counted `admitted` passes has written its
    /// `len` bytes: counts them again if a pass began in between (its scan may have missed
    /// the file, and set the size without it).
    fn recount(&self, admitted: u64, len: u64) {
        if !self.passes_unchanged(admitted) {
            self.with_record(|record| {
                if record.passes != admitted {
                    record.add(len);
                }
            });
        }
    }

    /// Wakes the pruner when `size` is past the trigger, or this process has not scanned
    /// the root yet.
    fn wake_if_near(&'static self, size: u64) {
        if size > self.trigger() || !self.scanned.load(Ordering::Relaxed) {
            self.wake_pruner();
        }
    }

    /// Runs a pass from a store that found no room, unless one ended since `seen` passes
    /// (it queued new victims: try those first) or the last one fell short less than
    /// [`BACK_OFF`] ago. Returns whether trying again can help.
    fn pass_for_store(&self, seen: u64) -> bool {
        let mut log = self.passes.lock().unwrap_or_else(|e| e.into_inner());
        if log.done != seen {
            return true;
        }
        if log.fell_short.is_some_and(|at| at.elapsed() < BACK_OFF) {
            return false;
        }
        self.prune(&mut log);
        true
    }

    /// Wakes the pruning thread, starting it on first use.
    fn wake_pruner(&'static self) {
        let started = *self.pruner.get_or_init(|| {
            std::thread::Builder::new()
                .name("file_cache-pruner".into())
                .spawn(move || self.run_pruner())
                .map_err(|error| {
                    log::warn!("file_cache: cannot start the pruning thread ({error}); stores prune themselves")
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
            if HELD.load(Ordering::Relaxed) {
                continue;
            }
            // Wakes that arrive during a pass are folded into it: the pass ends by looking
            // at the size again, so a burst costs as many passes as it needs, no more. A
            // pass that removed nothing, or could not reach its target, is not repeated
            // within a second.
            loop {
                let started = Instant::now();
                let productive = {
                    let mut log = self.passes.lock().unwrap_or_else(|e| e.into_inner());
                    self.prune(&mut log)
                };
                if self.estimate.load(Ordering::Relaxed) <= self.trigger()
                    || HELD.load(Ordering::Relaxed)
                {
                    break;
                }
                if !productive {
                    std::thread::sleep(BACK_OFF.saturating_sub(started.elapsed()));
                }
            }
        }
    }

    /// Scans the root and, when it is over the trigger, evicts the least recently used
    /// entries down to the target; sets the shared size from what it found. Returns whether
    /// it removed something and reached its target.
    fn prune(&self, log: &mut PassLog) -> bool {
        let pass = self.begin_pass(log);
        let scan = prune_root(&self.root, self.trigger(), self.target());
        self.end_pass(log, pass, scan)
    }

    /// Starts a pass: counts it in the record (stores admitted before it then know its scan
    /// may have missed their files) and notes what the record holds before its scan.
    fn begin_pass(&self, log: &mut PassLog) -> PassStart {
        let started = Instant::now();
        PASSES.fetch_add(1, Ordering::Relaxed);
        log.done += 1;
        // Reopened: the root may have been removed and recreated since it was opened.
        self.record.lock().unwrap_or_else(|e| e.into_inner()).0 = None;
        let before = self.with_record(|record| {
            record.passes = record.passes.wrapping_add(1);
            *record
        });
        PassStart { started, before }
    }

    /// Ends a pass with what its scan found: queues the next victims and sets the shared
    /// size to what the scan kept plus what was stored since the pass began.
    fn end_pass(
        &self,
        log: &mut PassLog,
        pass: PassStart,
        scan: std::io::Result<PruneOutcome>,
    ) -> bool {
        match scan {
            Ok(mut outcome) => {
                *self.victims.lock().unwrap_or_else(|e| e.into_inner()) =
                    std::mem::take(&mut outcome.next_victims);
                // What was stored since the pass began is what the record counted as added
                // since, not how much its size grew: the size also shrinks meanwhile (stores
                // remove victims, other processes' passes set it from their own scans), and
                // a difference of sizes would lose the stores behind those decreases, whose
                // files the scan may have missed. Stores counted during the scan may or may
                // not be in it: counting them again can only make the next pass come early.
                // (Stores counted before it and written after it add themselves again: see
                // `stored`.)
                let size = self.with_record(|record| {
                    record.size = outcome
                        .kept
                        .saturating_add(pass.before.stored_since(record));
                    record.size
                });
                self.scanned.store(true, Ordering::Relaxed);
                let short = outcome.kept > self.trigger();
                log.fell_short = short.then(Instant::now);
                log::debug!(
                    "file_cache: pruned {} of {} entries ({} of {} bytes) in {:?}; {size} bytes now",
                    outcome.removed,
                    outcome.entries,
                    outcome.removed_bytes,
                    outcome.kept + outcome.removed_bytes,
                    pass.started.elapsed()
                );
                !short && (outcome.removed > 0 || size <= self.trigger())
            }
            Err(error) => {
                log.fell_short = Some(Instant::now());
                log::warn!("file_cache: cannot prune {} ({error})", self.root.display());
                false
            }
        }
    }
}

/// A pass under way: when it began, and the record then.
struct PassStart {
    started: Instant,
    before: Record,
}

/// What the size record holds: the size of the root's entries; how many passes (of any
/// process) have started, which tells a store whether one may have missed it; and how many
/// bytes stores have ever counted, which tells a pass what was stored during its scan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Record {
    size: u64,
    passes: u64,
    /// Only grows (wrapping): stores add their bytes to it as they do to `size`.
    added: u64,
}

impl Record {
    /// Counts `len` bytes more.
    fn add(&mut self, len: u64) {
        self.size = self.size.saturating_add(len);
        self.added = self.added.wrapping_add(len);
    }

    /// The bytes stores counted between this record and `now`. A record written by a
    /// release that kept no `added` count has its stores seen in the size's growth instead:
    /// the larger of the two is taken, which can only make the next pass come early.
    fn stored_since(&self, now: &Record) -> u64 {
        let added = now.added.wrapping_sub(self.added);
        let grown = now.size.saturating_sub(self.size);
        // A count that went backwards (the record was recreated meanwhile) tells nothing.
        let added = if added > u64::MAX / 2 { 0 } else { added };
        added.max(grown)
    }
}

fn open_record(root: &Path) -> Option<File> {
    match gate::open_own(&root.join(SIZE_RECORD), gate::Own::Update) {
        Ok(file) => Some(file),
        Err(error) => {
            log::debug!(
                "file_cache: cannot open {} in {} ({error}); this process counts its own writes only",
                SIZE_RECORD,
                root.display()
            );
            None
        }
    }
}

/// Bytes of a record: its size, its pass count, and what was ever added. A record of only
/// the first two (as an earlier release wrote it) reads with nothing added.
const RECORD_LEN: usize = 24;

/// What a record holds; `None` for a new (empty) or damaged one.
fn read_record(file: &mut File) -> Option<Record> {
    let mut bytes = [0; RECORD_LEN];
    let mut read = 0;
    while read < RECORD_LEN {
        #[cfg(unix)]
        let got = std::os::unix::fs::FileExt::read_at(file, &mut bytes[read..], read as u64);
        #[cfg(not(unix))]
        let got = file
            .seek(SeekFrom::Start(read as u64))
            .and_then(|_| file.read(&mut bytes[read..]));
        match got {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    if read < 16 {
        return None;
    }
    let word = |at: usize| {
        let mut out = [0; 8];
        out.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(out)
    };
    Some(Record {
        size: word(0),
        passes: word(8),
        added: if read == RECORD_LEN { word(16) } else { 0 },
    })
}

fn write_record(file: &mut File, record: Record) -> std::io::Result<()> {
    let mut bytes = [0; RECORD_LEN];
    bytes[..8].copy_from_slice(&record.size.to_le_bytes());
    bytes[8..16].copy_from_slice(&record.passes.to_le_bytes());
    bytes[16..].copy_from_slice(&record.added.to_le_bytes());
    gate::write_at_start(file, &bytes)
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
    for function in scan::functions(root)? {
        // Bookkeeping files are not counted: pruning cannot remove them.
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
            // Its shard goes too when that leaves it empty.
            if entry.remove().is_err() {
                continue;
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

/// Whether a new entry of `len` bytes may be written at `path` (always, without a bound),
/// counting it in the root's size if so. Under a bound, it makes room itself when the
/// pruner is behind: the value is not stored only when it is larger than the bound, or
/// when no room could be made.
pub(crate) fn admit(path: &Path, len: u64) -> bool {
    let Some(bound) = bound() else {
        return true;
    };
    if !path.starts_with(&bound.root) {
        return true;
    }
    if len > bound.max {
        log::debug!(
            "file_cache: not storing {} ({len} bytes): larger than {MAX_SIZE_VAR}",
            path.display()
        );
        return false;
    }
    if let Some(passes) = bound.admit(len) {
        ADMITTED.with(|admitted| admitted.set(Some(passes)));
        return true;
    }
    log::debug!(
        "file_cache: not storing {} ({len} bytes): no room can be made under {MAX_SIZE_VAR}",
        path.display()
    );
    false
}

thread_local! {
    /// The record's pass count when this thread's last store was admitted.
    static ADMITTED: Cell<Option<u64>> = const { Cell::new(None) };
}

/// After an entry admitted by [`admit`] is written: counts it again if a pass started in
/// between (its scan may have missed the file, and set the size without it); wakes the
/// pruner when the root is near the bound (or this process has not scanned it yet).
pub(crate) fn stored(path: &Path, len: u64) {
    let Some(bound) = bound() else {
        return;
    };
    if !path.starts_with(&bound.root) {
        return;
    }
    if let Some(admitted) = ADMITTED.with(Cell::take) {
        bound.recount(admitted, len);
    }
    bound.wake_if_near(bound.estimate.load(Ordering::Relaxed));
}

/// Marks the entry at `path` as just used, when a bound is set, the root is not read-only
/// and this process has not done so in the last minute.
pub(crate) fn touch(path: &Path, key: &[u8; 32]) {
    if bound().is_none() || gate::refusal(path).is_some() {
        // Nothing to keep recent, or a read-only root: its mtimes stay as they are.
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
    if let Err(error) = gate::set_mtime_now(path) {
        log::debug!(
            "file_cache: cannot refresh the mtime of {} ({error})",
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

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
        // A hit log larger than the bound is not counted: pruning cannot remove it.
        std::fs::write(root.path().join("app.f/.hits"), [1u8; 5000]).unwrap();
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
    fn pruning_removes_the_shards_it_empties_and_keeps_the_others() {
        let root = tempfile::tempdir().unwrap();
        let (emptied, kept) = (root.path().join("app.f/0a"), root.path().join("app.f/0b"));
        let locked = root.path().join("app.f/0c");
        for shard in [&emptied, &kept, &locked] {
            std::fs::create_dir_all(shard).unwrap();
        }
        for i in 0..3 {
            write_entry(&emptied, i);
        }
        write_entry(&locked, 3);
        // A writer's lock file (not an entry) keeps its shard.
        std::fs::write(locked.join(".x.lock"), b"").unwrap();
        for i in 4..6 {
            write_entry(&kept, i);
        }
        let outcome = prune_root(root.path(), 500, 200).unwrap();
        assert_eq!((outcome.removed, outcome.kept), (4, 200));
        assert!(!emptied.exists(), "an emptied shard is removed");
        assert!(
            locked.join(".x.lock").exists(),
            "a shard holding a file stays"
        );
        assert_eq!(entry_bytes(&kept), 200);
    }

    #[test]
    fn a_store_makes_room_itself_when_no_pass_has_run() {
        let root = tempfile::tempdir().unwrap();
        let shard = root.path().join("app.f/ab");
        std::fs::create_dir_all(&shard).unwrap();
        let bound = Bound::new(root.path().to_path_buf(), 1000);
        for i in 0..10u64 {
            // Each store is counted, then written, as `store` does.
            assert!(bound.admit(100).is_some(), "store {i}");
            std::fs::write(shard.join(format!("{i:064}")), [0u8; 100]).unwrap();
        }
        // 1000 bytes: the next 100 go over the hard cap, and nothing is queued: the store
        // scans, removes the oldest entries down to 750 bytes (700), and fits.
        assert!(bound.admit(100).is_some());
        assert_eq!(bound.passes.lock().unwrap().done, 1);
        assert_eq!(bound.estimate.load(Ordering::Relaxed), 800);
        let left = std::fs::read_dir(&shard).unwrap().count();
        assert_eq!(left, 7);
        // The size is kept at the root, for every process.
        let record = read_record(&mut File::open(root.path().join(SIZE_RECORD)).unwrap());
        assert_eq!(record.map(|r| r.size), Some(800));
    }

    #[test]
    fn a_pass_that_cannot_make_room_is_not_repeated_within_a_second() {
        let dir = tempfile::tempdir().unwrap();
        // A root that cannot be scanned: a pass fails.
        let root = dir.path().join("file");
        std::fs::write(&root, "").unwrap();
        let bound = Bound::new(root, 1000);
        assert!(bound.admit(900).is_some());
        assert!(bound.admit(900).is_none(), "no room, and none can be made");
        assert_eq!(bound.passes.lock().unwrap().done, 1);
        for _ in 0..100 {
            assert!(bound.admit(900).is_none());
        }
        assert_eq!(bound.passes.lock().unwrap().done, 1, "backed off");
    }

    /// Entry `i` of 100 bytes under `shard`, `i` seconds newer than an hour ago.
    fn write_entry(shard: &Path, i: u64) {
        let path = shard.join(format!("{i:064}"));
        std::fs::write(&path, [0u8; 100]).unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        file.set_modified(old + Duration::from_secs(i)).unwrap();
    }

    fn entry_bytes(shard: &Path) -> u64 {
        std::fs::read_dir(shard)
            .unwrap()
            .map(|item| item.unwrap().metadata().unwrap().len())
            .sum()
    }

    fn recorded(root: &Path) -> Record {
        read_record(&mut File::open(root.join(SIZE_RECORD)).unwrap()).unwrap()
    }

    #[test]
    fn stores_during_a_scan_stay_counted_when_another_pass_ends_first() {
        let root = tempfile::tempdir().unwrap();
        let shard = root.path().join("app.f/ab");
        std::fs::create_dir_all(&shard).unwrap();
        // Two processes with the same bound share the record.
        let one = Bound::new(root.path().to_path_buf(), 1000);
        let two = Bound::new(root.path().to_path_buf(), 1000);
        for i in 0..10 {
            assert!(one.admit(100).is_some());
            write_entry(&shard, i);
        }
        // The first process's pass scans 1000 bytes...
        let mut log = PassLog::default();
        let pass = one.begin_pass(&mut log);
        let scan = prune_root(&one.root, one.trigger(), one.target());
        // ...while the second one's pass runs whole (down to 700 bytes), and two stores
        // follow it, after the first scan.
        two.prune(&mut PassLog::default());
        for i in 10..12 {
            let admitted = two.admit(100).unwrap();
            write_entry(&shard, i);
            two.recount(admitted, 100);
        }
        // The first pass ends: its scan holds neither store, and the record has shrunk
        // (to 900) since it began (at 1000), for all it counted them.
        one.end_pass(&mut log, pass, scan);
        assert_eq!(entry_bytes(&shard), 900);
        assert!(
            recorded(root.path()).size >= 900,
            "the record says {} bytes; 900 are stored",
            recorded(root.path()).size
        );
    }

    #[test]
    fn stores_during_a_scan_stay_counted_when_they_remove_victims() {
        let root = tempfile::tempdir().unwrap();
        let shard = root.path().join("app.f/ab");
        std::fs::create_dir_all(&shard).unwrap();
        let bound = Bound::new(root.path().to_path_buf(), 1000);
        let other = Bound::new(root.path().to_path_buf(), 1000);
        for i in 0..9 {
            assert!(bound.admit(100).is_some());
            write_entry(&shard, i);
        }
        // A pass at the trigger removes nothing, and queues the oldest entries.
        bound.prune(&mut PassLog::default());
        assert_eq!(bound.victims.lock().unwrap().len(), 2);
        let admitted = bound.admit(100).unwrap();
        write_entry(&shard, 9);
        bound.recount(admitted, 100);
        assert_eq!(recorded(root.path()).size, 1000);
        // A pass of another process begins at 1000 bytes...
        let mut log = PassLog::default();
        let pass = other.begin_pass(&mut log);
        // ...a store at the hard cap removes a victim before its scan (the record goes
        // down by 100, and up by 100 again)...
        let admitted = bound.admit(100).unwrap();
        assert_eq!(entry_bytes(&shard), 900);
        let scan = prune_root(&other.root, other.trigger(), other.target());
        // ...and writes its file after it.
        write_entry(&shard, 10);
        bound.recount(admitted, 100);
        other.end_pass(&mut log, pass, scan);
        assert_eq!(entry_bytes(&shard), 1000);
        assert!(
            recorded(root.path()).size >= 1000,
            "the record says {} bytes; 1000 are stored",
            recorded(root.path()).size
        );
    }

    #[test]
    fn a_record_of_an_earlier_release_reads_with_nothing_added() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SIZE_RECORD);
        let mut bytes = 1234u64.to_le_bytes().to_vec();
        bytes.extend(7u64.to_le_bytes());
        std::fs::write(&path, bytes).unwrap();
        let mut file = File::options().read(true).write(true).open(&path).unwrap();
        let record = read_record(&mut file).unwrap();
        assert_eq!((record.size, record.passes, record.added), (1234, 7, 0));
        write_record(&mut file, Record { added: 9, ..record }).unwrap();
        let again = read_record(&mut file).unwrap();
        assert_eq!((again.size, again.passes, again.added), (1234, 7, 9));
    }

    #[cfg(unix)]
    #[test]
    fn touching_a_link_never_moves_its_targets_time() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"x").unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        let file = std::fs::File::options().write(true).open(&target).unwrap();
        file.set_modified(old).unwrap();
        let link = dir.path().join("entry");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let _ = gate::set_mtime_now(&link);
        let after = std::fs::metadata(&target).unwrap().modified().unwrap();
        assert_eq!(after, old);
    }

    #[test]
    fn touching_sets_the_mtime_and_leaves_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("entry");
        std::fs::write(&path, b"value").unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
        gate::set_mtime_now(&path).unwrap();
        let age = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert!(age > SystemTime::now() - Duration::from_secs(60));
        assert_eq!(std::fs::read(&path).unwrap(), b"value");
    }
}
