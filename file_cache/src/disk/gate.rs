//! The write gate: every change the runtime makes under a root goes through this module,
//! and nothing else in the crate creates, writes, renames, removes or touches a file or a
//! directory (`.ci/modcycles.py` fails on such a call anywhere else). It knows the access
//! mode of each root, and refuses every change under a root that is read-only, before any
//! system call:
//!
//! - **`FILE_CACHE_READONLY=1`**: the whole cache is read-only for this process, on
//!   purpose. Nothing under any root is created, written, removed or touched.
//! - **A root this process cannot write** (a read-only mount, no permission), found so by
//!   the root's probe ([`super::root`]) and [marked](mark_unwritable) here: the writers that
//!   come after it (the remote tier's local copy, hit logs, version records, the size
//!   bound's record and recency) are refused as well, in silence, instead of each failing
//!   on its own with a warning.
//!
//! A refusal is an `io::Error` of kind `ReadOnlyFilesystem` whose message says why, which
//! [`is_refusal`] recognises. The gate hands out writable file handles only where it would
//! write itself, so what is written through one has passed it too. It knows files, modes
//! and roots, not entries, sites or calls.
//!
//! Reads are not its business: they stay with [`super::files`] and [`super::read`].

#[cfg(test)]
use crate::config::READONLY_VAR;
use crate::config::{config, Faults};
use crate::disk::files;
#[cfg(unix)]
use crate::disk::files::{dir_mode, file_mode};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Why a cache root is read-only for this process: nothing under it is changed. Its
/// message says why (`the cache is read-only: FILE_CACHE_READONLY is set`); see
/// [`inspect::read_only`](crate::inspect::read_only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadOnly {
    /// `FILE_CACHE_READONLY` is set.
    Setting,
    /// This process cannot write under the root (a read-only mount, no permission).
    Unwritable,
}

impl ReadOnly {
    /// The reason alone: `FILE_CACHE_READONLY is set`, or why the root cannot be written.
    pub fn reason(self) -> &'static str {
        match self {
            ReadOnly::Setting => "FILE_CACHE_READONLY is set",
            ReadOnly::Unwritable => {
                "this process cannot write under the root (a read-only mount, or no permission)"
            }
        }
    }
}

impl fmt::Display for ReadOnly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the cache is read-only: {}", self.reason())
    }
}

impl std::error::Error for ReadOnly {}

/// Whether the cache root `root` is read-only for this process, and why: when
/// `FILE_CACHE_READONLY` is set in its environment, or when it cannot write there (a
/// read-only mount, no permission: asked of the system without writing anything). A root
/// that does not exist is not read-only (it would be created).
///
/// A program with a read-only root serves hits, computes misses without storing them, and
/// changes nothing under the root; `file-cache list` says so.
pub fn read_only_root(root: &Path) -> Option<ReadOnly> {
    refusal(root).or_else(|| (!can_write(root)).then_some(ReadOnly::Unwritable))
}

/// Whether this process may write in the directory `dir`, asked of the system without
/// writing (with the effective user, as a write would be; a missing directory, or an
/// answer that says nothing, counts as writable).
pub(crate) fn can_write(dir: &Path) -> bool {
    #[cfg(unix)]
    {
        use rustix::fs::{accessat, Access, AtFlags, CWD};
        match accessat(CWD, dir, Access::WRITE_OK, AtFlags::EACCESS) {
            Ok(()) => true,
            Err(error) => {
                let error = io::Error::from(error);
                !matches!(
                    error.kind(),
                    io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied
                )
            }
        }
    }
    #[cfg(not(unix))]
    {
        fs::metadata(dir).map_or(true, |meta| !meta.permissions().readonly())
    }
}

/// Roots found unwritable, and whether there is any (the common case reads one flag).
static UNWRITABLE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static ANY_UNWRITABLE: AtomicBool = AtomicBool::new(false);

/// Whether `FILE_CACHE_READONLY` makes the whole cache read-only for this process.
pub(crate) fn read_only() -> bool {
    config().read_only
}

/// Records that this process cannot write under `root`: every change under it is refused
/// from now on.
pub(crate) fn mark_unwritable(root: &Path) {
    let mut roots = UNWRITABLE.lock().unwrap_or_else(PoisonError::into_inner);
    if !roots.iter().any(|known| known == root) {
        roots.push(root.to_path_buf());
    }
    ANY_UNWRITABLE.store(true, Ordering::Relaxed);
}

/// Why a change at `path` is refused, if it is.
pub(crate) fn refusal(path: &Path) -> Option<ReadOnly> {
    refusal_with(read_only(), path)
}

fn refusal_with(read_only: bool, path: &Path) -> Option<ReadOnly> {
    if read_only {
        return Some(ReadOnly::Setting);
    }
    if ANY_UNWRITABLE.load(Ordering::Relaxed) {
        let roots = UNWRITABLE.lock().unwrap_or_else(PoisonError::into_inner);
        if roots.iter().any(|root| path.starts_with(root)) {
            return Some(ReadOnly::Unwritable);
        }
    }
    None
}

/// `Err` (the refusal) when a change at `path` is refused.
pub(crate) fn check(path: &Path) -> io::Result<()> {
    match refusal(path) {
        Some(why) => Err(io::Error::new(io::ErrorKind::ReadOnlyFilesystem, why)),
        None => Ok(()),
    }
}

/// Whether `error` is the gate's refusal (not a failure of the file system).
pub(crate) fn is_refusal(error: &io::Error) -> bool {
    error.get_ref().is_some_and(|inner| inner.is::<ReadOnly>())
}

/// `create_dir_all`, with new directories readable by the user only (see
/// [`files::dir_mode`]).
pub(crate) fn create_dir_all(dir: &Path) -> io::Result<()> {
    check(dir)?;
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, dir_mode());
    builder.create(dir)
}

/// Creates a new file holding `parts`, readable by the user only.
pub(crate) fn write_new(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let file = create_new(path)?;
    write_parts(&file, parts)
}

/// [`write_new`] in 64 KiB pieces, pausing after each (a test hook, see `Faults`).
pub(crate) fn write_new_slowly(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let file = create_new(path)?;
    write_parts_slowly(&file, parts)
}

/// Creates the new file `path` (never an existing one, nor through a link), readable by the
/// user only, open for reading and writing: a temporary file to write, or to lock first
/// (see [`super::lock`]).
pub(crate) fn create_new(path: &Path) -> io::Result<File> {
    check(path)?;
    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, file_mode());
    options.open(path)
}

/// Writes `parts` at the position of `file`, one [`create_new`] handed out: in one system
/// call when the system takes them all at once (an entry's header and payload).
pub(crate) fn write_parts(mut file: &File, parts: &[&[u8]]) -> io::Result<()> {
    const AT_ONCE: usize = 4;
    let mut written = 0;
    if (2..=AT_ONCE).contains(&parts.len()) {
        let mut slices = [io::IoSlice::new(&[]); AT_ONCE];
        for (slice, part) in slices.iter_mut().zip(parts) {
            *slice = io::IoSlice::new(part);
        }
        written = loop {
            match file.write_vectored(&slices[..parts.len()]) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                result => break result?,
            }
        };
    }
    // What the vectored write left (all of it, for a single part).
    for part in parts {
        if written >= part.len() {
            written -= part.len();
            continue;
        }
        file.write_all(&part[written..])?;
        written = 0;
    }
    Ok(())
}

/// [`write_parts`] in 64 KiB pieces, pausing after each (a test hook, see `Faults`).
pub(crate) fn write_parts_slowly(mut file: &File, parts: &[&[u8]]) -> io::Result<()> {
    for piece in parts.iter().flat_map(|part| part.chunks(64 << 10)) {
        file.write_all(piece)?;
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Renames `from` onto `to`. Where the file system refuses to rename onto an existing file,
/// removes `to` first: not atomic (a reader may find no entry for a moment), but a reader
/// still never sees a partial one.
pub(crate) fn rename_over(from: &Path, to: &Path, faults: Faults) -> io::Result<()> {
    match rename_over_only(from, to, faults) {
        Err(error)
            if !is_refusal(&error) && fs::symlink_metadata(to).is_ok_and(|m| m.is_file()) =>
        {
            log::debug!(
                "file_cache: rename over {} failed ({error}); removing it first",
                to.display()
            );
            fs::remove_file(to)?;
            fs::rename(from, to)
        }
        result => result,
    }
}

/// `fs::rename`, failing as some network file systems do when `faults` say so.
pub(crate) fn rename_over_only(from: &Path, to: &Path, faults: Faults) -> io::Result<()> {
    check(to)?;
    if faults.no_rename_over && fs::symlink_metadata(to).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "rename onto an existing file refused (simulated)",
        ));
    }
    fs::rename(from, to)
}

/// Removes the file at `path` (a link itself, never its target).
pub(crate) fn remove_file(path: &Path) -> io::Result<()> {
    check(path)?;
    fs::remove_file(path)
}

/// Removes the directory at `path` if it is empty (never one that holds anything).
pub(crate) fn remove_dir(path: &Path) -> io::Result<()> {
    check(path)?;
    fs::remove_dir(path)
}

/// Removes the symbolic link at `path` (not what it points to), saying so once per process.
/// Returns whether the path is now free of it (never, where changes are refused: the link
/// stays, and is never followed).
pub(crate) fn remove_planted(path: &Path) -> bool {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if refusal(path).is_some() {
        log::debug!(
            "file_cache: {} is a symbolic link where the cache keeps its own file; it is not \
             followed, and stays (the cache is read-only)",
            path.display()
        );
        return false;
    }
    let message = format!(
        "file_cache: {} is a symbolic link where the cache keeps its own file; removing the \
         link (its target is not touched)",
        path.display()
    );
    if WARNED.swap(true, Ordering::Relaxed) {
        log::debug!("{message}");
    } else {
        log::warn!("{message}");
    }
    match fs::remove_file(path) {
        Ok(()) => true,
        Err(error) => error.kind() == io::ErrorKind::NotFound,
    }
}

/// Opens (creating it if missing, never truncating) the lock file at `path`, for reading
/// and writing, without following a link there.
pub(crate) fn open_lock(path: &Path) -> io::Result<File> {
    check(path)?;
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, file_mode());
    files::open(&mut options, path)
}

/// Opens the existing file at `path` for reading and writing (a lock file to lock and
/// remove), without following a link there.
pub(crate) fn open_existing(path: &Path) -> io::Result<File> {
    check(path)?;
    files::open(OpenOptions::new().read(true).write(true), path)
}

/// How [`open_own`] opens one of the runtime's own files.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Own {
    /// To append records to (the hit log).
    Append,
    /// To read and update in place (the size record).
    Update,
}

/// Opens one of the runtime's own files (a hit log, a size record), private to the user,
/// creating it if missing: a link found at `path` is removed (with one warning) and the
/// open tried once more, which then creates the file in its place.
pub(crate) fn open_own(path: &Path, how: Own) -> io::Result<File> {
    check(path)?;
    let mut options = OpenOptions::new();
    match how {
        Own::Append => options.append(true).create(true),
        Own::Update => options.read(true).write(true).create(true).truncate(false),
    };
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match files::open(&mut options, path) {
        Err(error) if files::is_link(&error, path) => {
            remove_planted(path);
            files::open(&mut options, path)
        }
        result => result,
    }
}

/// Writes `bytes` at the start of `file`, one opened by [`open_own`] to update.
pub(crate) fn write_at_start(file: &mut File, bytes: &[u8]) -> io::Result<()> {
    #[cfg(unix)]
    return std::os::unix::fs::FileExt::write_all_at(file, bytes, 0);
    #[cfg(not(unix))]
    {
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(0))?;
        file.write_all(bytes)
    }
}

/// Sets the modification time of the file at `path` to now (its access time stays). A link
/// there is not followed: its own time moves, never its target's.
#[cfg(unix)]
pub(crate) fn set_mtime_now(path: &Path) -> io::Result<()> {
    use rustix::fs::{utimensat, AtFlags, Timespec, Timestamps, CWD, UTIME_NOW, UTIME_OMIT};
    check(path)?;
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
    utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(io::Error::from)
}

/// Sets the modification time of the file at `path` to now.
#[cfg(not(unix))]
pub(crate) fn set_mtime_now(path: &Path) -> io::Result<()> {
    check(path)?;
    OpenOptions::new()
        .write(true)
        .open(path)?
        .set_modified(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_link_is_refused_recognised_and_removed_without_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"precious").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut options = OpenOptions::new();
        options.append(true).create(true);
        let error = files::open(&mut options, &link).unwrap_err();
        assert!(files::is_link(&error, &link), "{error}");
        assert!(remove_planted(&link));
        assert!(std::fs::symlink_metadata(&link).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        // A dangling link is refused too, and its target never created.
        let missing = dir.path().join("missing");
        std::os::unix::fs::symlink(&missing, &link).unwrap();
        let error = files::open(&mut options, &link).unwrap_err();
        assert!(files::is_link(&error, &link));
        assert!(!missing.exists());
        // A plain file opens as usual; an absent one is not a link.
        let plain = dir.path().join("plain");
        assert!(files::open(&mut options, &plain).is_ok());
        let absent = std::fs::File::open(dir.path().join("absent")).unwrap_err();
        assert!(!files::is_link(&absent, &dir.path().join("absent")));
    }

    #[test]
    fn the_setting_refuses_every_change_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let refused = refusal_with(true, dir.path()).unwrap();
        assert_eq!(refused, ReadOnly::Setting);
        assert!(refused.to_string().contains(READONLY_VAR));
        assert_eq!(refusal_with(false, dir.path()), None);
    }

    #[test]
    fn an_unwritable_root_refuses_changes_under_it_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("unwritable");
        let other = dir.path().join("other");
        mark_unwritable(&root);
        assert_eq!(
            refusal_with(false, &root.join("app.f/00/00aa")),
            Some(ReadOnly::Unwritable)
        );
        assert_eq!(refusal_with(false, &other.join("app.f")), None);
        let error = create_dir_all(&root.join("app.f")).unwrap_err();
        assert!(is_refusal(&error), "{error}");
        assert_eq!(error.kind(), io::ErrorKind::ReadOnlyFilesystem);
        assert!(!root.exists(), "refused before any system call");
        assert!(
            write_new(&other.join("x"), &[b"x"]).is_err(),
            "no directory"
        );
        create_dir_all(&other).unwrap();
        write_new(&other.join("x"), &[b"x"]).unwrap();
        assert_eq!(fs::read(other.join("x")).unwrap(), b"x");
    }
}
