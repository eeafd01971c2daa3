//! The root directory: created private to the user, checked once per process before
//! anything is read from or written to it, and probed for what the cache relies on
//! (writing, renaming over a file, locking a file) before anything is written to it. A
//! function with `dir = "..."` has a root of its own, checked the same way, once. It judges
//! directories by their path; which function uses a root is the site's to remember.
//!
//! A root that someone else could have planted entries in (a symbolic link, a directory
//! owned by another user, or one writable by group or others) is not used at all, unless
//! `FILE_CACHE_SHARED=1` says it is shared on purpose.

use crate::config::{config, Config};
use crate::disk::gate;
use crate::disk::lock;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

/// What this process may do under the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read entries and store new ones.
    ReadWrite,
    /// Read entries; nothing can be written (a read-only mount, no permission).
    ReadOnly,
    /// Neither: the root is not trusted or cannot be made. Functions run uncached.
    Unusable,
}

/// The verdict on a root, reached once per process: whether it is trusted at its first
/// use, what can be written there (probed) at the first call that needs to know.
#[derive(Debug)]
pub(crate) struct Root {
    path: PathBuf,
    /// Checked at first use: a root that is not trusted (or cannot be made) is unusable.
    usable: bool,
    /// The probe's findings: access, and whether file locks work. Probed by the first
    /// miss (a store or a lock needs them), not by a hit: a process whose calls all hit
    /// creates no file at all, and its first hit costs a read, not four file creations.
    probed: OnceLock<(Access, bool)>,
    /// Whether file locks work there; turned off for good at the first failure.
    locks: AtomicBool,
}

impl Root {
    /// Whether entries may be read there at all.
    pub(crate) fn usable(&self) -> bool {
        self.usable
    }

    /// What this process may do there (probing the root the first time it is asked).
    pub(crate) fn access(&self) -> Access {
        if !self.usable {
            return Access::Unusable;
        }
        self.probe().0
    }

    fn probe(&self) -> (Access, bool) {
        *self.probed.get_or_init(|| {
            if gate::read_only() {
                // Read-only on purpose: probing would write.
                return (Access::ReadOnly, false);
            }
            let config = config();
            let access = probe_writes(&self.path, config);
            if access == Access::ReadOnly {
                // Every writer under it is refused from now on, by the gate, in silence.
                gate::mark_unwritable(&self.path);
            }
            let locks = access == Access::ReadWrite && probe_locks(&self.path, config);
            (access, locks)
        })
    }

    /// Whether misses should take the cross-process lock of their entry.
    pub(crate) fn locks(&self) -> bool {
        self.usable && self.probe().1 && self.locks.load(Ordering::Relaxed)
    }

    /// Called when locking fails for a reason other than contention: warns once, and the
    /// process goes on without cross-process single-flight.
    pub(crate) fn locks_failed(&self, error: &io::Error) {
        if self.locks.swap(false, Ordering::Relaxed) {
            warn_no_locks(&self.path, error);
        }
    }
}

pub(crate) fn verdict(path: &Path) -> &'static Root {
    // A `BTreeMap`: a `HashMap`'s random keys cost a fresh process a `getrandom` call.
    static ROOTS: Mutex<BTreeMap<PathBuf, &'static Root>> = Mutex::new(BTreeMap::new());
    let mut roots = ROOTS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(root) = roots.get(path) {
        return root;
    }
    // One per distinct root the program uses, for the life of the process.
    let root: &'static Root = Box::leak(Box::new(check(path, config())));
    roots.insert(path.to_path_buf(), root);
    root
}

fn check(path: &Path, config: &Config) -> Root {
    let usable = match trust(path, config.shared) {
        Ok(()) => true,
        Err(Refusal::Untrusted(reason)) => {
            log::warn!(
                "file_cache: not using the cache root {} because {reason}: anyone who can write \
                 there could plant values. Functions run uncached. Use a directory of your own \
                 (FILE_CACHE_DIR), or set {}=1 if it is shared on purpose",
                path.display(),
                crate::config::SHARED_VAR,
            );
            false
        }
        Err(Refusal::Unavailable(reason)) => {
            log::warn!(
                "file_cache: cannot use the cache root {} ({reason}); results are not being cached",
                path.display()
            );
            false
        }
    };
    if usable && !gate::can_write(path) {
        // Known before any write is tried (one `faccessat`): a process whose calls all hit
        // tries no hit log, version record or recency touch there either. The probe, at the
        // first miss, says so.
        gate::mark_unwritable(path);
    }
    Root {
        path: path.to_path_buf(),
        usable,
        probed: OnceLock::new(),
        locks: AtomicBool::new(true),
    }
}

enum Refusal {
    /// Someone else could control what is in the root.
    Untrusted(String),
    /// The root cannot be created or is not a directory.
    Unavailable(String),
}

/// Creates the root if it is missing (a read-only cache leaves it missing: nothing can be
/// read there, nor planted), then checks who controls it.
fn trust(path: &Path, shared: bool) -> Result<(), Refusal> {
    let mut meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound && gate::read_only() => {
            // Not created: every read misses (the remote tier is still asked), and nothing
            // is stored. Nothing there can have been planted.
            log::debug!(
                "file_cache: the cache root {} does not exist; the cache is read-only, so it \
                 is not created",
                path.display()
            );
            return Ok(());
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            gate::create_dir_all(path)
                .map_err(|e| Refusal::Unavailable(format!("cannot create it: {e}")))?;
            // Looked at again: something else may have been put there meanwhile.
            fs::symlink_metadata(path).map_err(|e| Refusal::Unavailable(e.to_string()))?
        }
        Err(e) => return Err(Refusal::Unavailable(e.to_string())),
    };
    if meta.file_type().is_symlink() {
        if !shared {
            return Err(Refusal::Untrusted("it is a symbolic link".to_owned()));
        }
        meta = fs::metadata(path).map_err(|e| Refusal::Unavailable(e.to_string()))?;
    }
    if !meta.is_dir() {
        return Err(Refusal::Unavailable("it is not a directory".to_owned()));
    }
    if shared {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me {
            return Err(Refusal::Untrusted(format!(
                "it is owned by user id {}, not by this process's user id {me}",
                meta.uid()
            )));
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o022 != 0 {
            let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
                (true, true) => "group and others",
                (true, false) => "its group",
                _ => "others",
            };
            return Err(Refusal::Untrusted(format!(
                "it is writable by {who} (mode {mode:03o})"
            )));
        }
    }
    Ok(())
}

/// Process-unique names for the probe files.
fn probe_path(root: &Path, which: &str) -> std::path::PathBuf {
    root.join(format!(".probe.{}.{which}.tmp", std::process::id()))
}

/// Writes two small files and renames one over the other: is the root writable, and does
/// renaming over an existing file (the commit of every store) work?
fn probe_writes(root: &Path, config: &Config) -> Access {
    let (a, b) = (probe_path(root, "a"), probe_path(root, "b"));
    let written = gate::write_new(&a, &[b"a"]).and_then(|()| gate::write_new(&b, &[b"b"]));
    if let Err(error) = written {
        let _ = gate::remove_file(&a);
        log::warn!(
            "file_cache: cannot write under the cache root {} ({error}): entries already there \
             are used, new results are not stored",
            root.display()
        );
        return Access::ReadOnly;
    }
    let renamed = gate::rename_over_only(&a, &b, config.faults).and_then(|()| {
        let mut content = Vec::new();
        File::open(&b)?.read_to_end(&mut content)?;
        if content == b"a" {
            Ok(())
        } else {
            Err(io::Error::other("the renamed file kept its old content"))
        }
    });
    if let Err(error) = renamed {
        log::warn!(
            "file_cache: renaming over an existing file does not work under the cache root {} \
             ({error}): a damaged entry is removed before its replacement is renamed into \
             place, so a concurrent reader may miss it (never read a partial one)",
            root.display()
        );
    }
    let _ = gate::remove_file(&a);
    let _ = gate::remove_file(&b);
    Access::ReadWrite
}

/// Locks a probe file: does this file system support the locks of cross-process
/// single-flight?
fn probe_locks(root: &Path, config: &Config) -> bool {
    let path = probe_path(root, "lock");
    let result = gate::write_new(&path, &[]).and_then(|()| {
        let file = File::open(&path)?;
        lock::try_lock(&file, config.faults)
    });
    let _ = gate::remove_file(&path);
    match result {
        Ok(_) => true,
        Err(error) => {
            warn_no_locks(root, &error);
            false
        }
    }
}

fn warn_no_locks(root: &Path, error: &io::Error) {
    log::warn!(
        "file_cache: file locks do not work under the cache root {} ({error}): processes may \
         compute the same cold key at the same time (values stay correct)",
        root.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trusted_root_is_probed_by_the_first_call_that_writes_not_at_first_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root");
        let root = check(&path, config());
        assert!(root.usable(), "created private, so trusted");
        assert!(
            root.probed.get().is_none(),
            "a hit would not have probed it"
        );
        assert_eq!(root.access(), Access::ReadWrite);
        assert!(root.locks());
        assert!(root.probed.get().is_some());
        // The probe leaves nothing behind.
        assert_eq!(fs::read_dir(&path).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn an_untrusted_root_is_never_probed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real");
        fs::create_dir(&target).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let root = check(&link, config());
        assert!(!root.usable());
        assert_eq!(root.access(), Access::Unusable);
        assert!(!root.locks());
        assert!(root.probed.get().is_none());
    }
}
