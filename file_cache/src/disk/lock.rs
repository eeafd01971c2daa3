//! Single-flight across processes: a per-entry lock file, taken after a miss. It locks
//! files; it knows nothing of keys, flights or calls.
//!
//! The lock of `<shard>/<key hex>` is `<shard>/.<key hex>.lock`, locked with std's
//! `File::lock` (`flock` on Unix), which the OS releases when its holder dies, even by
//! `SIGKILL`. The holder re-checks the entry once it holds the lock (another process may
//! have stored it meanwhile), computes and stores on a miss, then **removes the lock file
//! while still holding the lock**, so lock files do not pile up.
//!
//! Removing it races with processes that opened the same file and are waiting to lock it:
//! when they get it, the file is no longer the one at the path. So a process that gets a
//! lock checks that the file it locked is still the one linked at the path (same device
//! and inode); if not, it drops it and starts over with a fresh open. Only a holder ever
//! removes the file, and a holder always holds the file linked at the path, so two
//! processes can never both believe they hold an entry's lock.
//!
//! On Unix, a holder that made the lock file itself (a new file, empty, private to the user
//! like any temporary file) writes the entry into it and renames it over the entry: that
//! removes the lock file, while still holding the lock, and stores the entry in one atomic
//! step. A miss so creates one file, as a plain atomic write does, and frees none (a file
//! freed on every store makes some file systems, ext4 without a journal among them, look
//! over every recently freed inode before each file they create). A waiter that locked the
//! file meanwhile finds it gone from the lock's path when it gets it, and starts over, as
//! above; `flock` locks are advisory, so readers of the entry never notice the lock. The
//! rename moves whatever the lock's path names, so the holder checks just before it that the
//! path still names its file (a clear removes files without their locks, and another writer
//! may have made a new lock file since), and otherwise writes the entry anew. (Windows locks
//! are mandatory: a reader of an entry still locked would fail, so there the lock file is
//! only a lock.)
//!
//! A holder killed before it removed its file leaves it behind, unlocked: the next holder
//! of that key removes it, and a writer sweeping its shard removes it once it is stale
//! (see `files::sweep`), through the same protocol (lock, check, remove).

use crate::config::Faults;
use crate::disk::{files, gate, paths};
use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

/// The held lock of one entry; dropping it removes the lock file (unless it became the
/// entry), then unlocks it.
#[derive(Debug)]
pub(crate) struct EntryLock {
    path: PathBuf,
    /// What the lock file is to the entry.
    role: Role,
    // Closed after the removal in `drop`, which releases the lock.
    file: File,
}

/// What a held lock file is to its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A lock only.
    Lock,
    /// Made empty by this holder (Unix): the entry may be written into it and renamed over
    /// the entry.
    #[cfg_attr(not(unix), allow(dead_code))]
    Fresh,
    /// Renamed over the entry: the lock's path no longer names it.
    Entry,
}

impl EntryLock {
    /// The lock's path and its file, empty and private, when the entry may be written into
    /// it and renamed over the entry (see the module's documentation): then call
    /// [`EntryLock::renamed`] once it is.
    pub(crate) fn fresh_file(&self) -> Option<(&Path, &File)> {
        (self.role == Role::Fresh).then_some((&self.path, &self.file))
    }

    /// Whether the lock's path still names the file this holder made and locked: a clear
    /// removes files without their locks, and another writer may have made a new lock file
    /// since.
    pub(crate) fn still_fresh(&self) -> bool {
        self.role == Role::Fresh && is_linked(&self.file).unwrap_or(false)
    }

    /// The lock's file was renamed over the entry: there is nothing left to remove.
    pub(crate) fn renamed(&mut self) {
        self.role = Role::Entry;
    }
}

impl Drop for EntryLock {
    fn drop(&mut self) {
        // Renamed over the entry, or removed by a clear meanwhile: then the path names
        // nothing of ours (perhaps another writer's new lock file), and stays as it is.
        if self.role == Role::Entry || !is_linked(&self.file).unwrap_or(true) {
            return;
        }
        // Best effort: a file left behind is removed by a later holder or sweep.
        let _ = gate::remove_file(&self.path);
    }
}

/// The lock file of an entry.
pub(crate) fn lock_path(entry: &Path) -> PathBuf {
    paths::dot_sibling(entry, ".lock")
}

/// Whether a file name is a lock file of ours.
pub(crate) fn is_lock_file(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".lock")
}

/// How many times [`acquire`] opens the lock file anew before it gives up: each retry means
/// the file changed under it (a holder removed it, or a link was planted in its place), which
/// a few tries outlast unless something keeps changing it on purpose.
const MAX_TRIES: usize = 16;

/// How many times [`acquire`] creates the lock's directory again when it vanished before the
/// lock file could be created in it (a prune removes the shards it empties, a clear removes
/// everything): past that, something removes it as fast as it is made, and the call goes on
/// without the lock.
const RECREATE_DIR: usize = 16;

/// Creates `dir` (and its parents) for a lock file, again when a level of it is removed
/// while it is made: `create_dir_all` then fails with "not found", or with "exists" for a
/// level there at `mkdir` and gone when looked at. Counts each try in `recreated`.
fn create_dir(dir: &Path, recreated: &mut usize) -> io::Result<()> {
    loop {
        let error = match gate::create_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        let vanished = match error.kind() {
            io::ErrorKind::NotFound => true,
            io::ErrorKind::AlreadyExists => {
                fs::metadata(dir).is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
            }
            _ => false,
        };
        if !vanished || *recreated >= RECREATE_DIR {
            return Err(error);
        }
        *recreated += 1;
    }
}

/// Takes the lock of `entry`: `Ok(None)` when `block` is false and another process holds
/// it. Errors mean locking does not work here (or the directory cannot be written), or,
/// when [`gave_up`] says so, that the lock file kept changing under every try.
pub(crate) fn acquire(entry: &Path, block: bool, faults: Faults) -> io::Result<Option<EntryLock>> {
    let path = lock_path(entry);
    let mut recreated = 0;
    #[cfg(unix)]
    if let Some(held) = claim(&path, faults, &mut recreated)? {
        return Ok(Some(held));
    }
    let mut tries = 0;
    while tries < MAX_TRIES {
        tries += 1;
        let file = match open(&path) {
            Ok(file) => file,
            // The directory is missing (not made yet, or removed since): create it.
            // (Not a try of the lock file: nothing changed it.)
            Err(error) if error.kind() == io::ErrorKind::NotFound && recreated < RECREATE_DIR => {
                recreated += 1;
                tries -= 1;
                if let Some(dir) = paths::dir_of(&path) {
                    create_dir(dir, &mut recreated)?;
                }
                continue;
            }
            // Never lock (or create) a link's target: remove the link and try again.
            Err(error) if files::is_link(&error, &path) => {
                gate::remove_planted(&path);
                continue;
            }
            Err(error) => return Err(error),
        };
        if !try_lock(&file, faults)? {
            if !block {
                return Ok(None);
            }
            log::debug!(
                "file_cache: waiting for the lock {}, held by another process",
                path.display()
            );
            lock(&file, faults)?;
        }
        if still_linked(&file, &path)? {
            return Ok(Some(EntryLock {
                path,
                role: Role::Lock,
                file,
            }));
        }
        // The previous holder removed the file we waited on: start over with a new one.
    }
    Err(io::Error::other(GaveUp))
}

/// Takes the lock at `path` by making its file, new: `Some` when this process made it and
/// holds it, `None` when the file is there already (held, or left behind, or another
/// process got it first): take it the usual way.
#[cfg(unix)]
fn claim(path: &Path, faults: Faults, recreated: &mut usize) -> io::Result<Option<EntryLock>> {
    let file = loop {
        match gate::create_new(path) {
            Ok(file) => break file,
            Err(error) if error.kind() == io::ErrorKind::NotFound && *recreated < RECREATE_DIR => {
                *recreated += 1;
                if let Some(dir) = paths::dir_of(path) {
                    create_dir(dir, recreated)?;
                }
            }
            // There already, or a link: the usual way finds out.
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
            Err(error) => return Err(error),
        }
    };
    // Another process may have opened it and locked it first, and even be done with it
    // (then it removed it).
    if !try_lock(&file, faults)? || !is_linked(&file)? {
        return Ok(None);
    }
    Ok(Some(EntryLock {
        path: path.to_path_buf(),
        role: Role::Fresh,
        file,
    }))
}

/// Whether a lock file this process holds is still linked, hence still at its path: the
/// only name it ever has is the lock's (nothing links lock files elsewhere, and only a
/// holder renames one, over its entry), so a held file linked anywhere is linked there.
/// One `fstat`, without looking the path up.
#[cfg(unix)]
fn is_linked(file: &File) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    Ok(file.metadata()?.nlink() > 0)
}

/// Without a link count in stable std, taken to be linked (a lock file is never made the
/// entry there).
#[cfg(not(unix))]
fn is_linked(_file: &File) -> io::Result<bool> {
    Ok(true)
}

/// Why [`acquire`] failed after [`MAX_TRIES`] tries.
#[derive(Debug)]
struct GaveUp;

impl std::fmt::Display for GaveUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the lock file changed under each of {MAX_TRIES} tries")
    }
}

impl std::error::Error for GaveUp {}

/// Whether `error`, from [`acquire`], says the lock file kept changing under every try.
pub(crate) fn gave_up(error: &io::Error) -> bool {
    error.get_ref().is_some_and(|inner| inner.is::<GaveUp>())
}

/// Removes a lock file left behind by a dead holder, if nobody holds it.
pub(crate) fn remove_if_unheld(path: &Path, faults: Faults) {
    let file = match gate::open_existing(path) {
        Ok(file) => file,
        Err(error) => {
            if files::is_link(&error, path) {
                gate::remove_planted(path);
            }
            return;
        }
    };
    if let Ok(true) = try_lock(&file, faults) {
        if let Ok(true) = still_linked(&file, path) {
            let _ = gate::remove_file(path);
        }
    }
}

fn open(path: &Path) -> io::Result<File> {
    gate::open_lock(path)
}

fn lock(file: &File, faults: Faults) -> io::Result<()> {
    if faults.no_lock {
        return Err(simulated_no_lock());
    }
    loop {
        match file.lock() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            result => return result,
        }
    }
}

/// Locks without waiting: `Ok(false)` when another holds the lock.
pub(crate) fn try_lock(file: &File, faults: Faults) -> io::Result<bool> {
    if faults.no_lock {
        return Err(simulated_no_lock());
    }
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

fn simulated_no_lock() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "locks not supported (simulated)",
    )
}

/// Whether `file` is still the file linked at `path`.
fn still_linked(file: &File, path: &Path) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let held = file.metadata()?;
        match fs::symlink_metadata(path) {
            Ok(linked) => Ok(linked.dev() == held.dev() && linked.ino() == held.ino()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        // Stable std has no file identity here (on Windows, `MetadataExt::file_index` is
        // unstable), and std opens files sharing deletion, so a holder can remove the file a
        // waiter then locks. Only a file gone from the path is recognised: a waiter that wakes
        // after the removal starts over, but one that wakes after another process created a
        // new file there holds the old one alongside it (both compute the entry; each store
        // still replaces it whole).
        let _ = file;
        match fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            _ => Ok(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_lock_blocks_others_and_its_file_is_removed_on_release() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("ab/abcd");
        let held = acquire(&entry, true, Faults::default()).unwrap().unwrap();
        assert!(lock_path(&entry).exists());
        assert!(acquire(&entry, false, Faults::default()).unwrap().is_none());
        drop(held);
        assert!(!lock_path(&entry).exists(), "the holder removes the file");
        let again = acquire(&entry, false, Faults::default()).unwrap();
        assert!(again.is_some(), "free again");
    }

    #[test]
    fn a_waiter_on_a_removed_file_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("e");
        let held = acquire(&entry, true, Faults::default()).unwrap().unwrap();
        // A waiter opened the file and blocks on it.
        let waiter = std::thread::spawn({
            let entry = entry.clone();
            move || {
                let lock = acquire(&entry, true, Faults::default()).unwrap().unwrap();
                // What it holds is the file at the path, not the removed one.
                let linked = fs::symlink_metadata(lock_path(&entry)).is_ok();
                (linked, lock)
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(held);
        let (linked, lock) = waiter.join().unwrap();
        assert!(linked);
        drop(lock);
        assert!(!lock_path(&entry).exists());
    }

    #[test]
    fn leftover_lock_files_are_removed_only_when_unheld() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("e");
        let held = acquire(&entry, true, Faults::default()).unwrap().unwrap();
        remove_if_unheld(&lock_path(&entry), Faults::default());
        assert!(lock_path(&entry).exists(), "a held lock stays");
        drop(held);
        // What a holder killed before its cleanup leaves: a file nobody holds.
        fs::write(lock_path(&entry), b"").unwrap();
        remove_if_unheld(&lock_path(&entry), Faults::default());
        assert!(!lock_path(&entry).exists(), "an unheld leftover goes");
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_link_is_removed_never_followed_and_never_spins() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let entry = dir.path().join("e");
        let target = outside.path().join("created-through-the-link");
        std::os::unix::fs::symlink(&target, lock_path(&entry)).unwrap();
        let lock = acquire(&entry, true, Faults::default()).unwrap().unwrap();
        assert!(!target.exists(), "the link's target was created");
        let linked = fs::symlink_metadata(lock_path(&entry)).unwrap();
        assert!(linked.is_file(), "a real lock file replaced the link");
        drop(lock);
        // A leftover that is a link: swept as a link, its target untouched.
        fs::write(&target, b"x").unwrap();
        std::os::unix::fs::symlink(&target, lock_path(&entry)).unwrap();
        remove_if_unheld(&lock_path(&entry), Faults::default());
        assert!(fs::symlink_metadata(lock_path(&entry)).is_err());
        assert_eq!(fs::read(&target).unwrap(), b"x");
    }

    #[test]
    fn a_shard_removed_while_the_lock_is_taken_is_created_again() {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let shard = dir.path().join("ab");
        let entry = shard.join("abcd");
        let (round, removed, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        // A pruner that removes the shard once a round, as soon as it is empty: as a pass
        // does after removing its last entry, at any moment of the lock being taken.
        let pruner = std::thread::spawn({
            let (shard, round, removed, stop) =
                (shard.clone(), round.clone(), removed.clone(), stop.clone());
            move || {
                let mut last = 0;
                while !stop.load(Ordering::Relaxed) {
                    let now = round.load(Ordering::Relaxed);
                    if now != last && fs::remove_dir(&shard).is_ok() {
                        last = now;
                        removed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        let mut rounds = 0u64;
        while rounds < 2000 || (removed.load(Ordering::Relaxed) < 100 && rounds < 1_000_000) {
            rounds += 1;
            round.store(rounds, Ordering::Relaxed);
            let lock = acquire(&entry, true, Faults::default());
            assert!(matches!(lock, Ok(Some(_))), "round {rounds}: {lock:?}");
        }
        stop.store(true, Ordering::Relaxed);
        pruner.join().unwrap();
        assert!(
            removed.load(Ordering::Relaxed) >= 100,
            "the shard was removed under the locks"
        );
    }

    /// The identity of the file at `path`.
    #[cfg(unix)]
    fn inode(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        fs::symlink_metadata(path).unwrap().ino()
    }

    #[cfg(unix)]
    #[test]
    fn a_lock_file_made_by_its_holder_is_fresh_and_one_left_behind_is_a_lock_only() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("ab/abcd");
        let made = acquire(&entry, true, Faults::default()).unwrap().unwrap();
        let (path, _) = made.fresh_file().expect("made by its holder");
        assert_eq!(path, lock_path(&entry));
        assert!(made.still_fresh());
        drop(made);
        // What a holder killed before its cleanup leaves, half an entry perhaps.
        fs::write(lock_path(&entry), b"partial").unwrap();
        let found = acquire(&entry, true, Faults::default()).unwrap().unwrap();
        assert!(found.fresh_file().is_none(), "a file it did not make");
        assert!(!found.still_fresh());
        drop(found);
        assert!(!lock_path(&entry).exists(), "the holder removes it");
    }

    #[cfg(unix)]
    #[test]
    fn a_holder_whose_lock_file_was_removed_meanwhile_leaves_the_new_one_alone() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("e");
        let held = acquire(&entry, true, Faults::default()).unwrap().unwrap();
        // A clear removes the file under the holder; another writer makes a new one.
        fs::remove_file(lock_path(&entry)).unwrap();
        assert!(!held.still_fresh());
        let other = acquire(&entry, true, Faults::default()).unwrap().unwrap();
        let others = inode(&lock_path(&entry));
        drop(held);
        assert_eq!(
            inode(&lock_path(&entry)),
            others,
            "another's lock file stays"
        );
        drop(other);
        assert!(!lock_path(&entry).exists());
    }

    #[test]
    fn simulated_missing_locks_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Faults {
            no_lock: true,
            ..Faults::default()
        };
        let error = acquire(&dir.path().join("e"), true, faults).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::Unsupported);
    }
}
