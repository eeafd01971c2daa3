//! The leaf file operations of a root: opening without following links, private modes,
//! creating directories, writing a new file and renaming over one. It knows files, not
//! entries.
//!
//! Files inside a root are never reached through a planted symbolic link.
//!
//! Anyone who can write to a shared root (`FILE_CACHE_SHARED=1`) can replace one of the
//! runtime's own files with a link to a file of the victim's choosing. So every file the
//! runtime opens inside a root is opened without following a final link (`O_NOFOLLOW`: the
//! open fails with `ELOOP` on a link), and a link found where one of our files should be is
//! removed (the link itself, never its target) with one warning per process.
//!
//! On Windows, creating a symbolic link takes a privilege ordinary users lack, and std opens
//! a reparse point's target: there the checks of this module are not made.

#[cfg(unix)]
use crate::config::config;
use crate::config::Faults;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Opens `path` with `options`, refusing a symbolic link at the path: the error is then one
/// that [`is_link`] recognises.
pub(crate) fn open(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // `bits()` are the platform's `O_NOFOLLOW`; it fits an `i32` (std's flag type).
        let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
        options.custom_flags(nofollow);
    }
    options.open(path)
}

/// [`open`] for one of the runtime's own files (a hit log, a size record): a link found at
/// `path` is removed (with one warning) and the open tried once more, which then creates
/// the file in its place.
pub(crate) fn open_own(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    match open(options, path) {
        Err(error) if is_link(&error, path) => {
            remove_planted(path);
            open(options, path)
        }
        result => result,
    }
}

/// Reads at most `limit` bytes of the file at `path`, without following a link there (a
/// link reads as an error that [`is_link`] recognises): a planted link to a device that
/// never ends, or to a huge file, costs nothing.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let file = open(OpenOptions::new().read(true), path)?;
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Whether `error`, from [`open`] of `path`, means a symbolic link stands at `path`.
pub(crate) fn is_link(error: &io::Error, path: &Path) -> bool {
    // `ELOOP` on Linux and macOS, `EMLINK` on FreeBSD: both only after the open failed, so
    // the `lstat` below costs nothing on the usual paths.
    error.kind() != io::ErrorKind::NotFound
        && std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink())
}

/// Removes the symbolic link at `path` (not what it points to), saying so once per process.
/// Returns whether the path is now free of it.
pub(crate) fn remove_planted(path: &Path) -> bool {
    static WARNED: AtomicBool = AtomicBool::new(false);
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
    match std::fs::remove_file(path) {
        Ok(()) => true,
        Err(error) => error.kind() == io::ErrorKind::NotFound,
    }
}

/// Renames `from` onto `to`. Where the file system refuses to rename onto an existing file,
/// removes `to` first: not atomic (a reader may find no entry for a moment), but a reader
/// still never sees a partial one.
pub(crate) fn rename_over(from: &Path, to: &Path, faults: Faults) -> io::Result<()> {
    match rename_over_only(from, to, faults) {
        Err(error) if fs::symlink_metadata(to).is_ok_and(|m| m.is_file()) => {
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
    if faults.no_rename_over && fs::symlink_metadata(to).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "rename onto an existing file refused (simulated)",
        ));
    }
    fs::rename(from, to)
}

/// Creates a new file holding `parts`, readable by the user only.
pub(crate) fn write_new(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, file_mode());
    let mut file: File = options.open(path)?;
    for part in parts {
        file.write_all(part)?;
    }
    Ok(())
}

/// [`write_new`] in 64 KiB pieces, pausing after each (a test hook, see `Faults`).
pub(crate) fn write_new_slowly(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    write_new(path, &[])?;
    let mut file = open(OpenOptions::new().append(true), path)?;
    for piece in parts.iter().flat_map(|part| part.chunks(64 << 10)) {
        file.write_all(piece)?;
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Mode of new files: private, unless the root is shared on purpose (then the umask rules).
#[cfg(unix)]
pub(crate) fn file_mode() -> u32 {
    if config().shared {
        0o666
    } else {
        0o600
    }
}

/// Mode of new directories, as [`file_mode`].
#[cfg(unix)]
pub(crate) fn dir_mode() -> u32 {
    if config().shared {
        0o777
    } else {
        0o700
    }
}

/// A name no other writer, in this process or another, is using.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()))
}

pub(crate) fn is_temp_file(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// `create_dir_all`, with new directories readable by the user only (see [`dir_mode`]).
pub(crate) fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, dir_mode());
    builder.create(dir)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_refused_recognised_and_removed_without_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"precious").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut options = OpenOptions::new();
        options.append(true).create(true);
        let error = open(&mut options, &link).unwrap_err();
        assert!(is_link(&error, &link), "{error}");
        assert!(remove_planted(&link));
        assert!(std::fs::symlink_metadata(&link).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        // A dangling link is refused too, and its target never created.
        let missing = dir.path().join("missing");
        std::os::unix::fs::symlink(&missing, &link).unwrap();
        let error = open(&mut options, &link).unwrap_err();
        assert!(is_link(&error, &link));
        assert!(!missing.exists());
        // A plain file opens as usual; an absent one is not a link.
        let plain = dir.path().join("plain");
        assert!(open(&mut options, &plain).is_ok());
        let absent = std::fs::File::open(dir.path().join("absent")).unwrap_err();
        assert!(!is_link(&absent, &dir.path().join("absent")));
    }
}
