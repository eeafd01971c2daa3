//! The leaf file operations of a root that change nothing: opening without following
//! links, the private modes of what [`super::gate`] creates, names of temporary files. It
//! knows files, not entries. (Every change is the gate's.)
//!
//! Files inside a root are never reached through a planted symbolic link.
//!
//! Anyone who can write to a shared root (`FILE_CACHE_SHARED=1`) can replace one of the
//! runtime's own files with a link to a file of the victim's choosing. So every file the
//! runtime opens inside a root is opened without following a final link (`O_NOFOLLOW`: the
//! open fails with `ELOOP` on a link), and a link found where one of our files should be is
//! removed (the link itself, never its target) with one warning per process, by the gate.
//!
//! On Windows, creating a symbolic link takes a privilege ordinary users lack, and std opens
//! a reparse point's target: there the checks of this module are not made.

#[cfg(unix)]
use crate::config::config;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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
