//! Writing a file atomically (a temporary file in the same directory, renamed over the
//! target), and sweeping what killed writers left behind (stale temporary files, unheld
//! lock files) the first time this process writes to a directory. It writes bytes: what
//! they hold is the caller's.

use crate::config::{config, Faults};
use crate::disk::files::{is_temp_file, temp_path};
use crate::disk::gate::{self, create_dir_all, rename_over, write_new, write_new_slowly};
use crate::disk::lock::{self, EntryLock};
use crate::disk::paths;
use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self};
use std::io::{self};
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// How many times a write whose directory vanished under it (a concurrent clear) is tried.
const WRITE_ATTEMPTS: usize = 4;

/// Writes `parts` as the new content of `path`, atomically: a reader sees the old file,
/// the new one, or none, never a part. Creates missing directories (private to the user),
/// and removes what killed writers left in the directory once it is stale.
///
/// Another process may remove the directory at any moment (`clear`, `file-cache clear`):
/// a write that finds it gone creates it again and starts over. When it keeps vanishing,
/// something is clearing it as fast as it is written: the write counts as done and
/// cleared at once (what a reader could have seen anyway), not as a failure.
pub(crate) fn write_atomic(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let dir = paths::dir_of(path)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "entry path has no parent"))?;
    // The directory is there, usually: written at once, and made only when it is missing.
    match write_temp(path, parts) {
        Ok(()) => {
            let config = config();
            sweep_once(dir, config.stale_after, config.faults);
            return Ok(());
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    for _ in 0..WRITE_ATTEMPTS {
        match write_atomic_once(dir, path, parts) {
            Err(Vanished(error)) => {
                log::debug!(
                    "file_cache: {} vanished while writing {} ({error}); writing again",
                    dir.display(),
                    path.display()
                );
            }
            Ok(result) => return result,
        }
    }
    log::debug!(
        "file_cache: {} keeps being removed while {} is written; taking it as written and cleared",
        dir.display(),
        path.display()
    );
    Ok(())
}

/// [`write_atomic`] for an entry whose lock this process holds: where the lock's file is
/// new and its own (see [`lock`]), the entry is written into it and it is renamed over
/// `path`, with no other file created; otherwise, or when that fails (the lock's file was
/// removed meanwhile), as [`write_atomic`].
pub(crate) fn write_locked(lock: &mut EntryLock, path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    if let (Some((lock_file, file)), Some(dir)) = (lock.fresh_file(), paths::dir_of(path)) {
        let config = config();
        sweep_once(dir, config.stale_after, config.faults);
        let write = if config.faults.slow_write {
            gate::write_parts_slowly
        } else {
            gate::write_parts
        };
        let written = write(file, parts).and_then(|()| {
            // The rename moves what the path names: only the file written, never another.
            if lock.still_fresh() {
                rename_over(lock_file, path, config.faults)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "the lock file was removed meanwhile",
                ))
            }
        });
        match written {
            Ok(()) => {
                lock.renamed();
                return Ok(());
            }
            Err(error) => log::debug!(
                "file_cache: cannot write {} through its lock file ({error}); writing it anew",
                path.display()
            ),
        }
    }
    write_atomic(path, parts)
}

/// A write whose directory, which it had created or found, was removed under it.
struct Vanished(io::Error);

/// One try of [`write_atomic`]: `Err` when the directory vanished after it was created.
fn write_atomic_once(dir: &Path, path: &Path, parts: &[&[u8]]) -> Result<io::Result<()>, Vanished> {
    if let Err(error) = create_dir_all(dir) {
        // `create_dir_all` makes each missing level in turn: a level removed meanwhile fails
        // it with "not found", or with "exists" when it was there at `mkdir` and gone when
        // looked at again. (A file where a directory should be is "exists" and stays.)
        let gone = match error.kind() {
            io::ErrorKind::NotFound => true,
            io::ErrorKind::AlreadyExists => {
                fs::metadata(dir).is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
            }
            _ => false,
        };
        return if gone {
            Err(Vanished(error))
        } else {
            Ok(Err(error))
        };
    }
    let config = config();
    sweep_once(dir, config.stale_after, config.faults);
    match write_temp(path, parts) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Err(Vanished(error)),
        result => Ok(result),
    }
}

/// Writes `parts` to a new temporary file beside `path` and renames it over `path`; on a
/// failure, removes the temporary file.
fn write_temp(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let faults = config().faults;
    let temp = temp_path(path);
    let write = if faults.slow_write {
        write_new_slowly
    } else {
        write_new
    };
    let result = write(&temp, parts).and_then(|()| rename_over(&temp, path, faults));
    if result.is_err() {
        // Best effort: the temporary file may not exist, and a failure here changes
        // nothing.
        let _ = gate::remove_file(&temp);
    }
    result
}

/// Sweeps `dir` the first time this process writes there: a long-lived process does not
/// list a directory on every store, and every process that writes somewhere sweeps it.
fn sweep_once(dir: &Path, stale_after: Duration, faults: Faults) {
    // Keyed by the path's bytes: a `Path` hashes component by component, parsing it.
    static SWEPT: Mutex<Option<HashSet<OsString>>> = Mutex::new(None);
    let first = {
        let mut swept = SWEPT.lock().unwrap_or_else(PoisonError::into_inner);
        let swept = swept.get_or_insert_with(HashSet::new);
        // Looked up before inserting: the usual store allocates nothing here.
        !swept.contains(dir.as_os_str()) && swept.insert(dir.as_os_str().to_owned())
    };
    if first {
        sweep(dir, stale_after, faults);
    }
}

/// Removes temporary files older than `stale_after` (their writer was killed before its
/// rename; a live writer renames within moments of creating one) and lock files of the
/// same age that nobody holds. Problems are ignored: sweeping is housekeeping.
pub(crate) fn sweep(dir: &Path, stale_after: Duration, faults: Faults) {
    let Ok(items) = fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for item in items.flatten() {
        let name = item.file_name();
        let name = name.to_string_lossy();
        let (temp, lock) = (is_temp_file(&name), lock::is_lock_file(&name));
        if !temp && !lock {
            continue;
        }
        let stale = item
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|modified| now.duration_since(modified).unwrap_or_default() >= stale_after);
        if !stale {
            continue;
        }
        let path = item.path();
        if temp {
            log::debug!(
                "file_cache: removing stale temporary file {}",
                path.display()
            );
            let _ = gate::remove_file(&path);
        } else {
            lock::remove_if_unheld(&path, faults);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::gate::rename_over_only;
    use crate::disk::read::read;

    /// The identity of the file at `path`.
    #[cfg(unix)]
    fn inode(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        fs::symlink_metadata(path).unwrap().ino()
    }

    fn names(dir: &Path) -> Vec<std::ffi::OsString> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    }

    #[cfg(unix)]
    #[test]
    fn a_lock_file_made_by_its_holder_becomes_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("ab/abcd");
        let mut held = lock::acquire(&entry, true, Faults::default())
            .unwrap()
            .unwrap();
        let lock_file = inode(&lock::lock_path(&entry));
        write_locked(&mut held, &entry, &[b"head", b"payload"]).unwrap();
        assert_eq!(read(&entry, 0).unwrap().unwrap(), b"headpayload");
        assert_eq!(inode(&entry), lock_file, "one file made: the lock's");
        assert_eq!(
            names(&dir.path().join("ab")),
            ["abcd"],
            "no lock or temporary file"
        );
        // A writer that takes the lock now makes a new file; the first holder leaves it.
        let next = lock::acquire(&entry, false, Faults::default()).unwrap();
        assert!(next.is_some(), "free at once");
        drop(held);
        assert!(
            lock::lock_path(&entry).exists(),
            "the next holder's file stays"
        );
        drop(next);
        assert_eq!(names(&dir.path().join("ab")), ["abcd"]);
        assert_eq!(read(&entry, 0).unwrap().unwrap(), b"headpayload");
    }

    #[cfg(unix)]
    #[test]
    fn a_waiter_on_a_lock_file_that_became_the_entry_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("e");
        let mut held = lock::acquire(&entry, true, Faults::default())
            .unwrap()
            .unwrap();
        let waiter = std::thread::spawn({
            let entry = entry.clone();
            move || {
                let lock = lock::acquire(&entry, true, Faults::default())
                    .unwrap()
                    .unwrap();
                let linked = inode(&lock::lock_path(&entry));
                (linked, lock)
            }
        });
        std::thread::sleep(Duration::from_millis(50));
        write_locked(&mut held, &entry, &[b"value"]).unwrap();
        drop(held);
        let (linked, lock) = waiter.join().unwrap();
        assert_ne!(linked, inode(&entry), "it holds a lock file, not the entry");
        drop(lock);
        assert_eq!(names(dir.path()), ["e"]);
        assert_eq!(read(&entry, 0).unwrap().unwrap(), b"value");
    }

    #[cfg(unix)]
    #[test]
    fn a_lock_file_replaced_meanwhile_is_never_renamed_over_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("e");
        let mut held = lock::acquire(&entry, true, Faults::default())
            .unwrap()
            .unwrap();
        // A clear removes the lock file; another writer makes its own and writes into it.
        fs::remove_file(lock::lock_path(&entry)).unwrap();
        let other = lock::acquire(&entry, true, Faults::default())
            .unwrap()
            .unwrap();
        fs::write(lock::lock_path(&entry), b"half").unwrap();
        write_locked(&mut held, &entry, &[b"whole ", b"value"]).unwrap();
        assert_eq!(read(&entry, 0).unwrap().unwrap(), b"whole value");
        assert_eq!(fs::read(lock::lock_path(&entry)).unwrap(), b"half");
        drop(held);
        drop(other);
        assert_eq!(names(dir.path()), ["e"]);
    }

    #[test]
    fn a_lock_left_behind_is_not_written_into() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("e");
        fs::write(lock::lock_path(&entry), b"half an entry").unwrap();
        let mut held = lock::acquire(&entry, true, Faults::default())
            .unwrap()
            .unwrap();
        write_locked(&mut held, &entry, &[b"value"]).unwrap();
        assert_eq!(read(&entry, 0).unwrap().unwrap(), b"value");
        drop(held);
        assert_eq!(names(dir.path()), ["e"]);
    }

    #[test]
    fn atomic_write_creates_dirs_and_replaces() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("f/ab/entry");
        assert_eq!(read(&path, 0).unwrap(), None);
        write_atomic(&path, &[b"one", b"two"]).unwrap();
        assert_eq!(read(&path, 0).unwrap().unwrap(), b"onetwo");
        write_atomic(&path, &[b"three"]).unwrap();
        assert_eq!(read(&path, 0).unwrap().unwrap(), b"three");
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("entry")]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = fs::metadata(root.path().join("f"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }

    #[test]
    fn stale_temporary_and_unheld_lock_files_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("e");
        fs::write(&entry, b"entry").unwrap();
        fs::write(dir.path().join(".e.123-0.tmp"), b"partial").unwrap();
        fs::write(lock::lock_path(&entry), b"").unwrap();
        sweep(dir.path(), Duration::from_secs(3600), Faults::default());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            3,
            "young files stay"
        );
        let held = lock::acquire(&dir.path().join("f"), true, Faults::default()).unwrap();
        sweep(dir.path(), Duration::ZERO, Faults::default());
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [".f.lock", "e"], "stale ones go, a held lock stays");
        drop(held);
    }

    #[test]
    fn without_rename_over_an_entry_is_replaced_all_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e");
        fs::write(&path, b"old").unwrap();
        let temp = dir.path().join(".e.tmp");
        fs::write(&temp, b"new").unwrap();
        let faults = Faults {
            no_rename_over: true,
            ..Faults::default()
        };
        assert!(rename_over_only(&temp, &path, faults).is_err());
        rename_over(&temp, &path, faults).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert!(!temp.exists());
    }

    #[test]
    fn failed_write_leaves_nothing_behind() {
        let root = tempfile::tempdir().unwrap();
        // A directory where the entry should be: the rename fails.
        let path = root.path().join("entry");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"x").unwrap();
        assert!(write_atomic(&path, &[b"value"]).is_err());
        let names: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("entry")]);
    }
}
