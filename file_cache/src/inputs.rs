//! What a path names, as a 32-byte digest: a file by its bytes, a directory by its tree, a
//! missing path as missing. A leaf: it reads the files a function's arguments name (never
//! anything under a cache root) and knows nothing of keys, entries or calls.
//!
//! A directory's digest covers every entry below it: each one's path relative to the
//! directory, its kind, a regular file's bytes, and a symbolic link's target text (links
//! inside a tree are not followed, so a link out of the tree, or a loop, is keyed by what
//! it says). Each directory's entries are sorted by name, so the order the file system
//! lists them in does not count. The path given itself is followed when it is a link: a function
//! handed `data.csv` reads what the link points at.
//!
//! Nothing here fails: a path that cannot be read is keyed by why (the error's kind), so
//! the call goes on and a later readable file is another key.
//!
//! **Hashing is paid once per change.** A file's digest is remembered by its identity:
//! device, inode, size, and modification and change times in nanoseconds. A file whose
//! identity matches a remembered one is trusted without reading it; anything else is
//! hashed. A write changes the change time, which no process can set back (putting the
//! modification time back with `touch -r` moves the change time to now), and a file
//! replaced by rename is another inode. The gap is git's "racy" case: a write within the
//! file system's timestamp granularity of the hash leaves the times as they were. So a
//! digest is only remembered when the file's last change was at least [`SETTLE`] before
//! the hash began, and a younger file is hashed on every call until it is older. The
//! identity is taken again from the open file after hashing; a file that changed while it
//! was read is not remembered either. On platforms without change times (not Unix),
//! nothing is remembered: every call hashes.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How old a file's last change must be, when its hash begins, for its digest to be
/// remembered: beyond any file system's timestamp granularity (FAT's is 2 s).
pub(crate) const SETTLE: Duration = Duration::from_secs(2);

/// Most digests this process remembers; when full, it starts over.
const MEMO_CAPACITY: usize = 1 << 16;

/// A file's identity as `stat` reports it: what must not have moved for a remembered
/// digest to stand for the file's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct Identity {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub(crate) mtime: i128,
    /// Change time, nanoseconds since the epoch.
    pub(crate) ctime: i128,
}

impl Identity {
    /// The identity of the file `meta` describes; `None` where there are no change times.
    #[cfg(unix)]
    pub(crate) fn of(meta: &fs::Metadata) -> Option<Identity> {
        use std::os::unix::fs::MetadataExt;
        let nanos = |s: i64, ns: i64| i128::from(s) * 1_000_000_000 + i128::from(ns);
        Some(Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: nanos(meta.mtime(), meta.mtime_nsec()),
            ctime: nanos(meta.ctime(), meta.ctime_nsec()),
        })
    }

    #[cfg(not(unix))]
    pub(crate) fn of(_: &fs::Metadata) -> Option<Identity> {
        None
    }

    /// Whether the file's last change (either time) was at least [`SETTLE`] before `now`.
    /// A time ahead of `now` (a clock set back) is never settled.
    pub(crate) fn settled_at(&self, now: SystemTime) -> bool {
        let Ok(now) = now.duration_since(SystemTime::UNIX_EPOCH) else {
            return false;
        };
        let limit = now.as_nanos() as i128 - SETTLE.as_nanos() as i128;
        self.mtime <= limit && self.ctime <= limit
    }
}

/// Digests kept beyond this process (the root's index, `disk::digests`): consulted after
/// the memo, and given every digest this process remembers. Taken as a trait object so
/// this leaf knows no files under a root.
pub(crate) trait Persisted {
    /// The digest recorded for exactly this identity, if any.
    fn get(&self, id: &Identity) -> Option<[u8; 32]>;
    /// Records digests taken by this process, in one write.
    fn put(&self, new: &[(Identity, [u8; 32])]);
}

/// Where one digest's lookups go and what it learnt, to be persisted at its end.
struct Known<'a> {
    persisted: Option<&'a dyn Persisted>,
    learnt: Vec<(Identity, [u8; 32])>,
}

/// Digests remembered by identity, in this process.
static MEMO: Mutex<Option<Memo>> = Mutex::new(None);

/// Digests by `(device, inode)`, each with the identity it was taken at.
type Memo = HashMap<(u64, u64), (Identity, [u8; 32])>;

/// Files hashed so far by this process (every digest not served by identity).
static HASHED: AtomicU64 = AtomicU64::new(0);

/// Files this process has hashed to key `files = [...]` parameters; for tests and benches.
pub fn files_hashed() -> u64 {
    HASHED.load(Ordering::Relaxed)
}

fn remembered(id: &Identity) -> Option<[u8; 32]> {
    let memo = MEMO.lock().ok()?;
    let (known, digest) = memo.as_ref()?.get(&(id.dev, id.ino))?;
    (known == id).then_some(*digest)
}

fn remember(id: Identity, digest: [u8; 32]) {
    let Ok(mut memo) = MEMO.lock() else {
        return;
    };
    let memo = memo.get_or_insert_with(HashMap::new);
    if memo.len() >= MEMO_CAPACITY {
        memo.clear();
    }
    memo.insert((id.dev, id.ino), (id, digest));
}

/// Separates these digests from every other blake3 use of the crate.
const DOMAIN: &str = "file_cache 2026-12 inputs: what a path names v1";

/// What `path` names, hashed: see the module's documentation. File digests are looked up
/// in this process's memo, then in `persisted`, before a file is read.
pub(crate) fn digest(path: &Path, persisted: Option<&dyn Persisted>) -> [u8; 32] {
    let mut known = Known {
        persisted,
        learnt: Vec::new(),
    };
    let digest = digest_with(path, &mut known);
    if let Some(persisted) = known.persisted {
        persisted.put(&known.learnt);
    }
    digest
}

fn digest_with(path: &Path, known: &mut Known<'_>) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(DOMAIN);
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            hasher.update(b"d");
            hash_tree(path, &mut hasher, known);
        }
        Ok(meta) if meta.is_file() => {
            hasher.update(b"f");
            hash_file_into(path, &meta, &mut hasher, known);
        }
        // A fifo, socket or device: its kind, never its contents (opening a fifo blocks).
        Ok(_) => {
            hasher.update(b"o");
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            hasher.update(b"m");
        }
        Err(error) => {
            log::debug!(
                "file_cache: {} cannot be read ({error}); keyed as unreadable",
                path.display()
            );
            hasher.update(b"e");
            hasher.update(format!("{:?}", error.kind()).as_bytes());
        }
    }
    *hasher.finalize().as_bytes()
}

/// A regular file's bytes, hashed on their own (the digest that stands for the file), or
/// the digest remembered for its identity `meta` gives.
fn file_digest(path: &Path, meta: &fs::Metadata, known: &mut Known<'_>) -> io::Result<[u8; 32]> {
    file_digest_at(path, meta, SystemTime::now(), known)
}

/// [`file_digest`] with the clock read as `now` (tests move it).
fn file_digest_at(
    path: &Path,
    meta: &fs::Metadata,
    now: SystemTime,
    known: &mut Known<'_>,
) -> io::Result<[u8; 32]> {
    let before = Identity::of(meta);
    if let Some(id) = &before {
        if let Some(digest) = remembered(id) {
            return Ok(digest);
        }
        if let Some(digest) = known.persisted.and_then(|persisted| persisted.get(id)) {
            remember(*id, digest);
            return Ok(digest);
        }
    }
    let file = fs::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(&file)?;
    HASHED.fetch_add(1, Ordering::Relaxed);
    let digest = *hasher.finalize().as_bytes();
    // Remembered only when the file did not move while it was read and was settled when
    // the hash began (the racy case).
    let after = file.metadata().ok().as_ref().and_then(Identity::of);
    if let (Some(before), Some(after)) = (before, after) {
        if before == after && before.settled_at(now) {
            remember(before, digest);
            known.learnt.push((before, digest));
        }
    }
    Ok(digest)
}

fn hash_file_into(
    path: &Path,
    meta: &fs::Metadata,
    hasher: &mut blake3::Hasher,
    known: &mut Known<'_>,
) {
    match file_digest(path, meta, known) {
        Ok(digest) => {
            hasher.update(&digest);
        }
        Err(error) => {
            log::debug!(
                "file_cache: {} cannot be read ({error}); keyed as unreadable",
                path.display()
            );
            hasher.update(b"e");
            hasher.update(format!("{:?}", error.kind()).as_bytes());
        }
    }
}

/// Length-prefixed, so no field runs into the next.
fn framed(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    hasher.update(&(bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// Hashes one entry of a tree: its relative path, its kind, and what it holds (a file's
/// digest, a link's target, an error's kind; nothing for a directory), each field framed.
fn emit(hasher: &mut blake3::Hasher, relative: &[u8], kind: u8, what: &[u8]) {
    framed(hasher, relative);
    hasher.update(&[kind]);
    framed(hasher, what);
}

/// A tree, entry by entry in a fixed order: each directory's entries sorted by name, a
/// directory's own entry before the entries below it. The order the file system lists
/// them in does not count, and the stream holds no sorted copy of the whole tree.
fn hash_tree(root: &Path, hasher: &mut blake3::Hasher, known: &mut Known<'_>) {
    walk(root, &mut Vec::new(), hasher, known);
    // The end of the tree, which no entry's framing can read as.
    hasher.update(&u64::MAX.to_le_bytes());
}

fn error_kind(error: &io::Error) -> String {
    format!("{:?}", error.kind())
}

fn walk(dir: &Path, prefix: &mut Vec<u8>, hasher: &mut blake3::Hasher, known: &mut Known<'_>) {
    let listing = match fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(error) => {
            log::debug!(
                "file_cache: directory {} cannot be listed ({error})",
                dir.display()
            );
            emit(hasher, prefix, b'e', error_kind(&error).as_bytes());
            return;
        }
    };
    let mut items = Vec::new();
    for item in listing {
        match item {
            Ok(item) => items.push((item.file_name(), item)),
            Err(error) => emit(hasher, prefix, b'e', error_kind(&error).as_bytes()),
        }
    }
    items.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (name, item) in items {
        let at = prefix.len();
        if at > 0 {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(name.as_encoded_bytes());
        // `DirEntry::file_type` does not follow links.
        match item.file_type() {
            Ok(kind) if kind.is_symlink() => match fs::read_link(item.path()) {
                Ok(target) => emit(hasher, prefix, b'l', target.as_os_str().as_encoded_bytes()),
                Err(error) => emit(hasher, prefix, b'e', error_kind(&error).as_bytes()),
            },
            Ok(kind) if kind.is_dir() => {
                emit(hasher, prefix, b'd', &[]);
                walk(&item.path(), prefix, hasher, known);
            }
            Ok(kind) if kind.is_file() => {
                let path = item.path();
                match item
                    .metadata()
                    .and_then(|meta| file_digest(&path, &meta, known))
                {
                    Ok(digest) => emit(hasher, prefix, b'f', &digest),
                    Err(error) => emit(hasher, prefix, b'e', error_kind(&error).as_bytes()),
                }
            }
            Ok(_) => emit(hasher, prefix, b'o', &[]),
            Err(error) => emit(hasher, prefix, b'e', error_kind(&error).as_bytes()),
        }
        prefix.truncate(at);
    }
}

/// Files no larger than this are hashed where they are asked for even in an `async fn`: a
/// fraction of a millisecond.
const READ_INLINE_MAX: u64 = 256 << 10;

/// Whether [`digest`] of `path` means real reading: a directory's walk, or a file larger
/// than [`READ_INLINE_MAX`] whose digest is not remembered for its identity, here or in
/// `persisted`. What an `async fn` hands to another thread rather than block its executor.
pub(crate) fn needs_reading(path: &Path, persisted: Option<&dyn Persisted>) -> bool {
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => true,
        Ok(meta) if meta.is_file() && meta.len() > READ_INLINE_MAX => match Identity::of(&meta) {
            Some(id) => {
                remembered(&id).is_none()
                    && persisted.and_then(|persisted| persisted.get(&id)).is_none()
            }
            None => true,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> Known<'static> {
        Known {
            persisted: None,
            learnt: Vec::new(),
        }
    }

    /// The persisted index is asked after the memo, and told what was hashed settled.
    #[cfg(unix)]
    #[test]
    fn the_persisted_index_is_consulted_and_fed() {
        use std::cell::RefCell;
        struct Fake(RefCell<Vec<(Identity, [u8; 32])>>);
        impl Persisted for Fake {
            fn get(&self, id: &Identity) -> Option<[u8; 32]> {
                let records = self.0.borrow();
                records.iter().find(|(known, _)| known == id).map(|r| r.1)
            }
            fn put(&self, new: &[(Identity, [u8; 32])]) {
                self.0.borrow_mut().extend_from_slice(new);
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let planted = dir.path().join("planted");
        fs::write(&planted, b"bytes").unwrap();
        let id = Identity::of(&fs::metadata(&planted).unwrap()).unwrap();
        let fake = Fake(RefCell::new(vec![(id, [9; 32])]));
        let mut known = Known {
            persisted: Some(&fake),
            learnt: Vec::new(),
        };
        let meta = fs::metadata(&planted).unwrap();
        let now = SystemTime::now();
        assert_eq!(
            file_digest_at(&planted, &meta, now, &mut known).unwrap(),
            [9; 32],
            "a recorded identity is trusted"
        );
        let fresh = dir.path().join("fresh");
        fs::write(&fresh, b"other").unwrap();
        let meta = fs::metadata(&fresh).unwrap();
        let later = SystemTime::now() + SETTLE + Duration::from_secs(1);
        let hashed = file_digest_at(&fresh, &meta, later, &mut known).unwrap();
        assert_eq!(known.learnt, [(Identity::of(&meta).unwrap(), hashed)]);
        // `digest` hands what it learnt to the index in one put.
        let tree = dir.path().join("tree");
        fs::create_dir(&tree).unwrap();
        fs::write(tree.join("young"), b"young").unwrap();
        let _ = digest(&tree, Some(&fake));
        assert_eq!(fake.0.borrow().len(), 1, "a young file is not recorded");
    }

    /// A digest served by identity; hashed again when the identity moves or the file is
    /// not settled. Counted by this test's own files: the memo is keyed by inode.
    #[cfg(unix)]
    #[test]
    fn a_settled_identity_is_trusted_and_a_young_one_rehashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"bytes").unwrap();
        let meta = || fs::metadata(&path).unwrap();
        let later = || SystemTime::now() + SETTLE + Duration::from_secs(1);
        let id = Identity::of(&meta()).unwrap();
        assert!(!id.settled_at(SystemTime::now()), "just written");
        assert!(id.settled_at(later()));

        // Young: hashed, not remembered.
        let digest = file_digest_at(&path, &meta(), SystemTime::now(), &mut none()).unwrap();
        assert_eq!(remembered(&id), None, "a racy file is not remembered");
        // Settled (the clock moved on): remembered, then served without a read.
        assert_eq!(
            file_digest_at(&path, &meta(), later(), &mut none()).unwrap(),
            digest
        );
        assert_eq!(remembered(&id), Some(digest));
        // A remembered identity is trusted: a digest planted for it is what comes back
        // (which is how a hit costs a stat).
        remember(id, [7; 32]);
        assert_eq!(
            file_digest_at(&path, &meta(), later(), &mut none()).unwrap(),
            [7; 32]
        );

        // Edited in place to the same size, its mtime put back: the change time moved.
        let mtime = meta().modified().unwrap();
        std::thread::yield_now();
        fs::write(&path, b"BYTES").unwrap();
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let moved = Identity::of(&meta()).unwrap();
        assert_eq!(moved.mtime, id.mtime);
        assert_ne!(moved, id, "ctime moved");
        let fresh = file_digest_at(&path, &meta(), later(), &mut none()).unwrap();
        assert_eq!(fresh, *blake3::hash(b"BYTES").as_bytes());
    }

    #[test]
    fn files_trees_and_missing_paths() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let missing = digest(&root.join("nothing"), None);
        assert_eq!(
            missing,
            digest(&root.join("nothing else"), None),
            "missing is missing"
        );
        fs::write(root.join("a"), b"one").unwrap();
        let a = digest(&root.join("a"), None);
        assert_ne!(a, missing);
        fs::write(root.join("b"), b"one").unwrap();
        assert_eq!(a, digest(&root.join("b"), None), "a file is its bytes");
        fs::write(root.join("a"), b"two").unwrap();
        assert_ne!(a, digest(&root.join("a"), None));

        let tree = root.join("tree");
        fs::create_dir_all(tree.join("x/y")).unwrap();
        fs::write(tree.join("x/y/z"), b"deep").unwrap();
        let first = digest(&tree, None);
        assert_eq!(first, digest(&tree, None), "stable");
        fs::rename(tree.join("x/y/z"), tree.join("x/y/w")).unwrap();
        let renamed = digest(&tree, None);
        assert_ne!(first, renamed, "a rename");
        fs::create_dir(tree.join("x/y/v")).unwrap();
        assert_ne!(
            renamed,
            digest(&tree, None),
            "an empty directory is an entry"
        );
        fs::remove_dir(tree.join("x/y/v")).unwrap();
        assert_eq!(renamed, digest(&tree, None));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("w", tree.join("x/link")).unwrap();
            let linked = digest(&tree, None);
            assert_ne!(renamed, linked);
            fs::write(tree.join("x/y/w"), b"changed").unwrap();
            let changed = digest(&tree, None);
            assert_ne!(linked, changed, "the file changed");
            fs::remove_file(tree.join("x/link")).unwrap();
            std::os::unix::fs::symlink("elsewhere", tree.join("x/link")).unwrap();
            assert_ne!(changed, digest(&tree, None), "a link is its target's text");
            // A loop is text too: no endless walk.
            std::os::unix::fs::symlink(".", tree.join("x/loop")).unwrap();
            let _ = digest(&tree, None);
        }
        assert_ne!(digest(&tree, None), digest(&root.join("a"), None));
    }
}
