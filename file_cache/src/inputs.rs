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
//!
//! A tree's walk also keeps what it found (each file's identity and digest, in walk
//! order), and the next walk of the same tree first checks each file against the one the
//! last walk found at its place: the same trust, read in order rather than scattered over
//! the memo (a cache miss each, which costs a tree of small files more than a `stat`).
//!
//! **A large file is hashed on every core** (from [`PARALLEL_FROM`] bytes), read, not
//! memory-mapped: see [`parallel`].

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How old a file's last change must be, when its hash begins, for its digest to be
/// remembered: beyond any file system's timestamp granularity (FAT's is 2 s).
pub(crate) const SETTLE: Duration = Duration::from_secs(2);

/// Most digests this process remembers; when full, it starts over.
const MEMO_CAPACITY: usize = 1 << 16;

/// A large file's piece of work for one thread (see [`parallel`]): a power of two, and so
/// a complete subtree of blake3's tree (a whole number of its 1 KiB chunks), hashed in a
/// few hundred microseconds.
#[cfg_attr(not(any(unix, windows)), allow(dead_code))]
const LEAF: u64 = 1 << 20;

/// Files at least this big are hashed on every core. blake3 documents threads as a loss
/// below about 128 KiB on x86-64; here each extra thread costs a spawn (tens of
/// microseconds) and needs a whole leaf of work: two leaves at least.
#[cfg_attr(not(any(unix, windows)), allow(dead_code))]
const PARALLEL_FROM: u64 = 2 * LEAF;

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
    /// When the digest began: a file hashed during it is remembered only when it was
    /// settled by then (earlier than its own hash began, so never less strict).
    now: SystemTime,
    /// The tree's files as the last walk of it found them, from `cursor` on, and as this
    /// walk found them, before it: each file's slot is read, then overwritten in place.
    walked: Walked,
    cursor: usize,
    /// What a walk keeps from one directory to the next.
    buffers: walker::Buffers,
}

impl Known<'_> {
    /// The digest the last walk of this tree found for the file at this walk's place, if
    /// the file there has the same identity.
    fn recall(&self, id: &Identity) -> Option<[u8; 32]> {
        let (known, digest) = self.walked.get(self.cursor)?.as_ref()?;
        (known == id).then_some(*digest)
    }

    /// Notes the file at this walk's place (its identity and digest when they are to be
    /// trusted), and moves to the next place.
    fn found(&mut self, file: Option<(Identity, [u8; 32])>) {
        match self.walked.get_mut(self.cursor) {
            Some(slot) => *slot = file,
            None => self.walked.push(file),
        }
        self.cursor += 1;
    }
}

/// A tree's regular files in walk order, each with its identity and digest when they may
/// be trusted (the same rule as the memo's).
type Walked = Vec<Option<(Identity, [u8; 32])>>;

/// The trees walked before, by the path they were walked from: the next walk of a tree
/// reads its files' digests in order, where the memo's lookups are scattered in memory (a
/// cache miss each, which costs a tree of small files more than its hashing). Together
/// they hold at most [`MEMO_CAPACITY`] files.
static TREES: Mutex<Option<HashMap<PathBuf, Walked>>> = Mutex::new(None);

/// The last walk of the tree at `path`, taken out (a walk of it meanwhile starts afresh).
fn take_walk(path: &Path) -> Walked {
    let Ok(mut trees) = TREES.lock() else {
        return Vec::new();
    };
    trees
        .as_mut()
        .and_then(|trees| trees.remove(path))
        .unwrap_or_default()
}

/// Keeps a walk of the tree at `path` for the next.
fn keep_walk(path: &Path, walked: Walked) {
    let Ok(mut trees) = TREES.lock() else {
        return;
    };
    let trees = trees.get_or_insert_with(HashMap::new);
    let held: usize = trees.values().map(Vec::len).sum();
    if held + walked.len() > MEMO_CAPACITY {
        trees.clear();
    }
    if walked.len() <= MEMO_CAPACITY {
        trees.insert(path.to_path_buf(), walked);
    }
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

/// Forgets every digest this process remembers, as a new process starts; for benches.
pub(crate) fn forget() {
    if let Ok(mut memo) = MEMO.lock() {
        *memo = None;
    }
    if let Ok(mut trees) = TREES.lock() {
        *trees = None;
    }
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
        now: SystemTime::now(),
        walked: Vec::new(),
        cursor: 0,
        buffers: walker::Buffers::default(),
    };
    let digest = digest_with(path, &mut known);
    if let Some(persisted) = known.persisted {
        persisted.put(&known.learnt);
    }
    digest
}

fn digest_with(path: &Path, known: &mut Known<'_>) -> [u8; 32] {
    let mut out = Stream::new(blake3::Hasher::new_derive_key(DOMAIN));
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            out.put(b"d");
            known.walked = take_walk(path);
            out.buf.reserve(STREAM_BUFFER);
            hash_tree(path, &mut out, known);
            let mut walked = std::mem::take(&mut known.walked);
            walked.truncate(known.cursor);
            keep_walk(path, walked);
        }
        Ok(meta) if meta.is_file() => {
            out.put(b"f");
            let now = known.now;
            match file_digest_at(path, &meta, now, known) {
                Ok(digest) => out.put(&digest),
                Err(error) => unreadable(path, &error, &mut out),
            }
        }
        // A fifo, socket or device: its kind, never its contents (opening a fifo blocks).
        Ok(_) => out.put(b"o"),
        Err(error) if error.kind() == io::ErrorKind::NotFound => out.put(b"m"),
        Err(error) => unreadable(path, &error, &mut out),
    }
    *out.finish().finalize().as_bytes()
}

/// Keys a path that cannot be read by why (the error's kind), and says so in the log.
fn unreadable(path: &Path, error: &io::Error, out: &mut Stream) {
    log::debug!(
        "file_cache: {} cannot be read ({error}); keyed as unreadable",
        path.display()
    );
    out.put(b"e");
    out.put(error_kind(error).as_bytes());
}

/// The digest remembered for `id`: in this process's memo, then in the persisted index
/// (and then remembered in the memo).
fn lookup(id: &Identity, known: &Known<'_>) -> Option<[u8; 32]> {
    if let Some(digest) = remembered(id) {
        return Some(digest);
    }
    let digest = known.persisted?.get(id)?;
    remember(*id, digest);
    Some(digest)
}

/// A regular file's bytes, hashed on their own (the digest that stands for the file), or
/// the digest remembered for the identity `meta` gives; `now` is when the hash began
/// (tests move it).
fn file_digest_at(
    path: &Path,
    meta: &fs::Metadata,
    now: SystemTime,
    known: &mut Known<'_>,
) -> io::Result<[u8; 32]> {
    match Identity::of(meta).and_then(|id| lookup(&id, known)) {
        Some(digest) => Ok(digest),
        #[cfg(feature = "mmap")]
        None if meta.len() >= PARALLEL_FROM => hash_mapped(path, meta, now, known),
        None => {
            let file = fs::File::open(path)?;
            hash_open(file, Identity::of(meta), meta.len(), now, known).map(|(digest, _)| digest)
        }
    }
}

/// Reads and hashes `file`, whose identity was `before` (and size `len`) before it was
/// opened; with the identity when the digest is remembered for it.
fn hash_open(
    file: fs::File,
    before: Option<Identity>,
    len: u64,
    now: SystemTime,
    known: &mut Known<'_>,
) -> io::Result<([u8; 32], Option<Identity>)> {
    let digest = hash_contents(&file, len)?;
    HASHED.fetch_add(1, Ordering::Relaxed);
    // Remembered only when the file did not move while it was read and was settled when
    // the hash began (the racy case).
    let after = file.metadata().ok().as_ref().and_then(Identity::of);
    if let (Some(before), Some(after)) = (before, after) {
        if before == after && before.settled_at(now) {
            remember(before, digest);
            known.learnt.push((before, digest));
            return Ok((digest, Some(before)));
        }
    }
    Ok((digest, None))
}

/// With the `mmap` feature: a large file named by its path hashed through a memory map, on
/// every core (blake3's `update_mmap_rayon`, `b3sum`'s way). The digest is remembered as
/// [`hash_open`] remembers one, when the path names the file it named before, with the
/// same identity, once the hash is done.
#[cfg(feature = "mmap")]
fn hash_mapped(
    path: &Path,
    meta: &fs::Metadata,
    now: SystemTime,
    known: &mut Known<'_>,
) -> io::Result<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_mmap_rayon(path)?;
    let digest = *hasher.finalize().as_bytes();
    HASHED.fetch_add(1, Ordering::Relaxed);
    let before = Identity::of(meta);
    let after = fs::metadata(path).ok().as_ref().and_then(Identity::of);
    if let (Some(before), Some(after)) = (before, after) {
        if before == after && before.settled_at(now) {
            remember(before, digest);
            known.learnt.push((before, digest));
        }
    }
    Ok(digest)
}

/// Every byte of `file`, whose size was `len` when it was looked at: on this thread, or
/// on every core when it is large. Either way a file that changed meanwhile is read as it
/// happens to be; its identity, taken again after, tells that it moved.
fn hash_contents(file: &fs::File, len: u64) -> io::Result<[u8; 32]> {
    #[cfg(any(unix, windows))]
    if len >= PARALLEL_FROM {
        return parallel::hash(file, len);
    }
    let _ = len;
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(file)?;
    Ok(*hasher.finalize().as_bytes())
}

/// A large file hashed on every core, without mapping it. The file is cut into leaves of
/// [`LEAF`] bytes; threads take leaves in turn, each reading its leaf at its offset into a
/// small buffer of its own and hashing it as a subtree (blake3's `hazmat`), and the leaves'
/// chaining values are merged as blake3's tree merges them: the result is the file's
/// blake3 hash, `blake3::hash` of its bytes.
///
/// Not blake3's own ways: `update_rayon` hashes a buffer in memory, so one thread would
/// first copy the whole file out of the page cache, and that copy, not the hash, would
/// bound the speed; `update_mmap_rayon` (what `b3sum` does) maps the file, and a mapped
/// file that another process truncates meanwhile kills this process with `SIGBUS`. Here
/// the copy is spread over every thread, and an input rewritten while a call keys it
/// costs a rehash, never the program.
#[cfg(any(unix, windows))]
mod parallel {
    use super::LEAF;
    use blake3::hazmat::{merge_subtrees_non_root, merge_subtrees_root};
    use blake3::hazmat::{ChainingValue, HasherExt, Mode};
    use std::fs::File;
    use std::io;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// Each thread's read buffer: small enough to stay in its core's cache between the
    /// read and the hash, a multiple of 16 KiB (every SIMD width blake3 has).
    const BUFFER: usize = 64 << 10;

    /// The blake3 hash of the first `len` bytes of `file`; `len` is more than one [`LEAF`].
    pub(super) fn hash(file: &File, len: u64) -> io::Result<[u8; 32]> {
        let leaves = len.div_ceil(LEAF) as usize;
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let values: Mutex<Vec<Option<ChainingValue>>> = Mutex::new(vec![None; leaves]);
        let error: Mutex<Option<io::Error>> = Mutex::new(None);
        let work = || {
            let mut buf = vec![0u8; BUFFER];
            loop {
                let leaf = next.fetch_add(1, Ordering::Relaxed);
                if leaf >= leaves || failed.load(Ordering::Relaxed) {
                    return;
                }
                let offset = leaf as u64 * LEAF;
                match hash_leaf(file, offset, LEAF.min(len - offset), &mut buf) {
                    Ok(value) => {
                        if let Ok(mut values) = values.lock() {
                            values[leaf] = Some(value);
                        }
                    }
                    Err(fault) => {
                        failed.store(true, Ordering::Relaxed);
                        if let Ok(mut error) = error.lock() {
                            error.get_or_insert(fault);
                        }
                        return;
                    }
                }
            }
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::thread::scope(|scope| {
            for _ in 1..threads.min(leaves) {
                // A thread that cannot be started leaves its share to the others.
                if std::thread::Builder::new()
                    .spawn_scoped(scope, work)
                    .is_err()
                {
                    break;
                }
            }
            work();
        });
        if let Some(error) = error.into_inner().ok().flatten() {
            return Err(error);
        }
        let values: Option<Vec<ChainingValue>> = values
            .into_inner()
            .ok()
            .and_then(|values| values.into_iter().collect());
        match values {
            Some(values) if values.len() > 1 => {
                let (left, right) = values.split_at(split(values.len()));
                let root = merge_subtrees_root(&merge(left), &merge(right), Mode::Hash);
                Ok(*root.as_bytes())
            }
            _ => Err(io::Error::other("a part of the file was not hashed")),
        }
    }

    /// How many of `count` leaves (more than one) the left subtree holds: the largest power
    /// of two below `count`, as blake3 splits an input (only the last leaf may be short).
    fn split(count: usize) -> usize {
        1 << (usize::BITS - 1 - (count - 1).leading_zeros())
    }

    /// The chaining value of a subtree of leaves (at least one).
    fn merge(values: &[ChainingValue]) -> ChainingValue {
        match values {
            [one] => *one,
            _ => {
                let (left, right) = values.split_at(split(values.len()));
                merge_subtrees_non_root(&merge(left), &merge(right), Mode::Hash)
            }
        }
    }

    /// The chaining value of the `len` bytes of `file` at `offset`: one leaf.
    fn hash_leaf(file: &File, offset: u64, len: u64, buf: &mut [u8]) -> io::Result<ChainingValue> {
        let mut hasher = blake3::Hasher::new();
        hasher.set_input_offset(offset);
        let mut done = 0;
        while done < len {
            let want = (len - done).min(buf.len() as u64) as usize;
            match read_at(file, &mut buf[..want], offset + done) {
                // Shorter than it was: keyed by why this once (its identity moved).
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(read) => {
                    hasher.update(&buf[..read]);
                    done += read as u64;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(hasher.finalize_non_root())
    }

    #[cfg(unix)]
    fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(file, buf, offset)
    }

    #[cfg(windows)]
    fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::windows::fs::FileExt::seek_read(file, buf, offset)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// Whatever the length (leaves full or not, a power of two of them or not), the
        /// leaves merge to blake3's own hash of the bytes.
        #[test]
        fn the_leaves_merge_to_blake3s_hash() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("big");
            let mut bytes = vec![0u8; 5 * LEAF as usize + 1000];
            blake3::Hasher::new()
                .update(b"bytes")
                .finalize_xof()
                .fill(&mut bytes);
            for len in [
                2 * LEAF + 1,
                3 * LEAF,
                4 * LEAF,
                4 * LEAF + 1024,
                5 * LEAF + 1000,
            ] {
                let len = len as usize;
                std::fs::write(&path, &bytes[..len]).unwrap();
                let file = File::open(&path).unwrap();
                assert_eq!(
                    hash(&file, len as u64).unwrap(),
                    *blake3::hash(&bytes[..len]).as_bytes(),
                    "{len} bytes"
                );
            }
            // Shorter than `len` says: an error, no panic and no digest.
            let file = File::open(&path).unwrap();
            assert!(hash(&file, 6 * LEAF).is_err());
        }
    }
}

/// Bytes a [`Stream`] gathers before it hands them to blake3.
/// 16 KiB: as many chunks as blake3 hashes at once at its widest.
const STREAM_BUFFER: usize = 16 << 10;

/// What a digest covers, as one byte stream handed to blake3 in large pieces: a tree's
/// entries are small fields, and one update per field costs more than hashing them.
struct Stream {
    hasher: blake3::Hasher,
    buf: Vec<u8>,
}

impl Stream {
    fn new(hasher: blake3::Hasher) -> Stream {
        Stream {
            hasher,
            buf: Vec::new(),
        }
    }

    fn put(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= STREAM_BUFFER {
            self.hasher.update(&self.buf);
            self.buf.clear();
        }
    }

    /// Length-prefixed, so no field runs into the next.
    fn framed(&mut self, bytes: &[u8]) {
        self.put(&(bytes.len() as u64).to_le_bytes());
        self.put(bytes);
    }

    /// One entry of a tree: its relative path, its kind, and what it holds (a file's
    /// digest, a link's target, an error's kind; nothing for a directory), each field
    /// framed.
    fn entry(&mut self, relative: &[u8], kind: u8, what: &[u8]) {
        self.framed(relative);
        self.put(&[kind]);
        self.framed(what);
    }

    fn finish(mut self) -> blake3::Hasher {
        self.hasher.update(&self.buf);
        self.hasher
    }
}

/// A tree, entry by entry in a fixed order: each directory's entries sorted by name, a
/// directory's own entry before the entries below it. The order the file system lists
/// them in does not count, and the stream holds no sorted copy of the whole tree.
fn hash_tree(root: &Path, out: &mut Stream, known: &mut Known<'_>) {
    walker::walk_tree(root, out, known);
    // The end of the tree, which no entry's framing can read as.
    out.put(&u64::MAX.to_le_bytes());
}

/// Keys a directory of a tree that cannot be listed, at its place `prefix`, by why.
fn unlistable(dir: &Path, error: &io::Error, prefix: &[u8], out: &mut Stream) {
    log::debug!(
        "file_cache: directory {} cannot be listed ({error})",
        dir.display()
    );
    out.entry(prefix, b'e', error_kind(error).as_bytes());
}

fn error_kind(error: &io::Error) -> String {
    format!("{:?}", error.kind())
}

/// A regular file met in a walk, whose `stat` gave its identity `id` and size `len`: its
/// digest, remembered or read from what `open` opens, noted at its place in the walk (when
/// it is not, because this fails, the caller notes the place).
fn walked_file(
    id: Option<Identity>,
    len: u64,
    open: impl FnOnce() -> io::Result<fs::File>,
    known: &mut Known<'_>,
) -> io::Result<[u8; 32]> {
    let trusted = id.and_then(|id| {
        let digest = known.recall(&id).or_else(|| lookup(&id, known))?;
        Some((id, digest))
    });
    let (digest, trusted) = match trusted {
        Some((id, digest)) => (digest, Some(id)),
        None => {
            let now = known.now;
            hash_open(open()?, id, len, now, known)?
        }
    };
    known.found(trusted.map(|id| (id, digest)));
    Ok(digest)
}

/// Linux: a tree walked by its directories' descriptors. Each directory's listing is read
/// into one buffer, its names copied into another (both kept from one directory to the
/// next), and its entries are `stat`ted relative to it: no allocation per entry, as
/// `std::fs::read_dir` makes, which costs a tree of small files as much as its `stat`s.
/// Directories, and files to be read, are opened by path, read-only.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod walker {
    use super::{error_kind, walked_file, Identity, Known, Stream};
    use rustix::fs::{readlinkat, statat, AtFlags, FileType, OFlags, RawDir, Stat};
    use std::ffi::{CStr, OsStr};
    use std::fs::{File, OpenOptions};
    use std::io;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::Path;

    /// The listing buffer: a few hundred entries per `getdents`.
    const LISTING: usize = 32 << 10;

    /// What a walk keeps from one directory to the next.
    #[derive(Default)]
    pub(super) struct Buffers {
        listing: Vec<u8>,
        /// One per level of the tree being walked.
        levels: Vec<Level>,
    }

    /// A directory's entries: their names, each with its NUL, one after the other, and
    /// for each entry where its name starts, its length and its kind.
    #[derive(Default)]
    struct Level {
        names: Vec<u8>,
        entries: Vec<(usize, usize, FileType)>,
    }

    pub(super) fn walk_tree(root: &Path, out: &mut Stream, known: &mut Known<'_>) {
        // The root itself is followed when it is a link, as a path given is.
        walk(root, OFlags::empty(), &mut Vec::new(), out, known);
    }

    /// Opens `path` read-only with `flags` added (`O_CLOEXEC` is std's own).
    fn open(path: &Path, flags: OFlags) -> io::Result<File> {
        // `bits()` are the platform's flags; they fit an `i32` (std's flag type).
        OpenOptions::new()
            .read(true)
            .custom_flags(flags.bits() as i32)
            .open(path)
    }

    fn failed(out: &mut Stream, prefix: &[u8], error: rustix::io::Errno) {
        out.entry(prefix, b'e', error_kind(&io::Error::from(error)).as_bytes());
    }

    // The widths of `stat`'s fields differ between architectures.
    #[allow(clippy::unnecessary_cast)]
    fn identity(stat: &Stat) -> Identity {
        let nanos = |s: i64, ns: i64| i128::from(s) * 1_000_000_000 + i128::from(ns);
        Identity {
            dev: stat.st_dev as u64,
            ino: stat.st_ino as u64,
            size: stat.st_size as u64,
            mtime: nanos(stat.st_mtime as i64, stat.st_mtime_nsec as i64),
            ctime: nanos(stat.st_ctime as i64, stat.st_ctime_nsec as i64),
        }
    }

    /// The directory at `path`, opened with `flags` added (not following a link there, below
    /// the root).
    fn walk(
        path: &Path,
        flags: OFlags,
        prefix: &mut Vec<u8>,
        out: &mut Stream,
        known: &mut Known<'_>,
    ) {
        let dir = match open(path, flags | OFlags::DIRECTORY) {
            Ok(dir) => dir,
            Err(error) => return super::unlistable(path, &error, prefix, out),
        };
        let dir = &dir;
        let mut level = known.buffers.levels.pop().unwrap_or_default();
        let listing = &mut known.buffers.listing;
        listing.reserve(LISTING);
        let mut items = RawDir::new(dir, listing.spare_capacity_mut());
        while let Some(item) = items.next() {
            match item {
                Ok(item) => {
                    let name = item.file_name().to_bytes_with_nul();
                    if name == b".\0" || name == b"..\0" {
                        continue;
                    }
                    level
                        .entries
                        .push((level.names.len(), name.len() - 1, item.file_type()));
                    level.names.extend_from_slice(name);
                }
                Err(error) => {
                    failed(out, prefix, error);
                    break;
                }
            }
        }
        let names = &level.names;
        level
            .entries
            .sort_unstable_by(|a, b| names[a.0..a.0 + a.1].cmp(&names[b.0..b.0 + b.1]));
        for &(start, len, kind) in &level.entries {
            let at = prefix.len();
            if at > 0 {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(&level.names[start..start + len]);
            if let Ok(name) = CStr::from_bytes_with_nul(&level.names[start..=start + len]) {
                entry(dir, path, name, kind, prefix, out, known);
            }
            prefix.truncate(at);
        }
        level.names.clear();
        level.entries.clear();
        known.buffers.levels.push(level);
    }

    /// One entry of the directory `dir` (at `path`), as the listing gave its kind.
    fn entry(
        dir: &File,
        path: &Path,
        name: &CStr,
        kind: FileType,
        prefix: &mut Vec<u8>,
        out: &mut Stream,
        known: &mut Known<'_>,
    ) {
        // Links are not followed: a link is its target's text.
        let lstat = || statat(dir, name, AtFlags::SYMLINK_NOFOLLOW);
        let (kind, stat) = match kind {
            // Some file systems do not tell the kind in the listing.
            FileType::Unknown => match lstat() {
                Ok(stat) => (FileType::from_raw_mode(stat.st_mode as _), Some(stat)),
                Err(error) => return failed(out, prefix, error),
            },
            kind => (kind, None),
        };
        match kind {
            FileType::Symlink => match readlinkat(dir, name, Vec::new()) {
                Ok(target) => out.entry(prefix, b'l', target.as_bytes()),
                Err(error) => failed(out, prefix, error),
            },
            FileType::Directory => {
                out.entry(prefix, b'd', &[]);
                let sub = path.join(OsStr::from_bytes(name.to_bytes()));
                walk(&sub, OFlags::NOFOLLOW, prefix, out, known);
            }
            FileType::RegularFile => {
                let stat = match stat.map_or_else(lstat, Ok) {
                    Ok(stat) => stat,
                    Err(error) => {
                        known.found(None);
                        return failed(out, prefix, error);
                    }
                };
                // Replaced since it was listed: not a file any more.
                if FileType::from_raw_mode(stat.st_mode as _) != FileType::RegularFile {
                    known.found(None);
                    return out.entry(prefix, b'o', &[]);
                }
                // Opened without following a link or waiting on a fifo put there since.
                let file = || {
                    let at = path.join(OsStr::from_bytes(name.to_bytes()));
                    open(&at, OFlags::NOFOLLOW | OFlags::NONBLOCK)
                };
                match walked_file(Some(identity(&stat)), stat.st_size as u64, file, known) {
                    Ok(digest) => out.entry(prefix, b'f', &digest),
                    Err(error) => {
                        known.found(None);
                        out.entry(prefix, b'e', error_kind(&error).as_bytes());
                    }
                }
            }
            _ => out.entry(prefix, b'o', &[]),
        }
    }
}

/// Elsewhere: a tree walked with `std::fs::read_dir`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod walker {
    use super::{error_kind, walked_file, Identity, Known, Stream};
    use std::ffi::OsString;
    use std::fs;
    use std::path::Path;

    /// Emptied directory listings, kept for the next directory: a walk allocates one per
    /// level of the tree, not one per directory.
    #[derive(Default)]
    pub(super) struct Buffers {
        listings: Vec<Vec<(OsString, fs::DirEntry)>>,
    }

    pub(super) fn walk_tree(root: &Path, out: &mut Stream, known: &mut Known<'_>) {
        walk(root, &mut Vec::new(), out, known);
    }

    fn walk(dir: &Path, prefix: &mut Vec<u8>, out: &mut Stream, known: &mut Known<'_>) {
        let listing = match fs::read_dir(dir) {
            Ok(listing) => listing,
            Err(error) => return super::unlistable(dir, &error, prefix, out),
        };
        let mut items = known.buffers.listings.pop().unwrap_or_default();
        for item in listing {
            match item {
                Ok(item) => items.push((item.file_name(), item)),
                Err(error) => out.entry(prefix, b'e', error_kind(&error).as_bytes()),
            }
        }
        items.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (name, item) in items.drain(..) {
            let at = prefix.len();
            if at > 0 {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(name.as_encoded_bytes());
            // `DirEntry::file_type` does not follow links.
            match item.file_type() {
                Ok(kind) if kind.is_symlink() => match fs::read_link(item.path()) {
                    Ok(target) => out.entry(prefix, b'l', target.as_os_str().as_encoded_bytes()),
                    Err(error) => out.entry(prefix, b'e', error_kind(&error).as_bytes()),
                },
                Ok(kind) if kind.is_dir() => {
                    out.entry(prefix, b'd', &[]);
                    walk(&item.path(), prefix, out, known);
                }
                Ok(kind) if kind.is_file() => {
                    // `DirEntry::metadata` stats by the directory's descriptor where it
                    // can; the path is only built for a file that must be read.
                    let digest = item.metadata().and_then(|meta| {
                        let open = || fs::File::open(item.path());
                        walked_file(Identity::of(&meta), meta.len(), open, known)
                    });
                    match digest {
                        Ok(digest) => out.entry(prefix, b'f', &digest),
                        Err(error) => {
                            known.found(None);
                            out.entry(prefix, b'e', error_kind(&error).as_bytes());
                        }
                    }
                }
                Ok(_) => out.entry(prefix, b'o', &[]),
                Err(error) => out.entry(prefix, b'e', error_kind(&error).as_bytes()),
            }
            prefix.truncate(at);
        }
        known.buffers.listings.push(items);
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

    #[cfg(unix)]
    fn none() -> Known<'static> {
        Known {
            persisted: None,
            learnt: Vec::new(),
            now: SystemTime::now(),
            walked: Vec::new(),
            cursor: 0,
            buffers: walker::Buffers::default(),
        }
    }

    /// With the `mmap` feature, a large file named by its path is mapped: the same digest
    /// as reading it, blake3's hash of its bytes.
    #[cfg(all(unix, feature = "mmap"))]
    #[test]
    fn a_mapped_large_file_has_the_digest_of_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let mut bytes = vec![0u8; (PARALLEL_FROM + LEAF + 77) as usize];
        blake3::Hasher::new()
            .update(b"mapped")
            .finalize_xof()
            .fill(&mut bytes);
        fs::write(&path, &bytes).unwrap();
        let meta = fs::metadata(&path).unwrap();
        let before = files_hashed();
        let digest = file_digest_at(&path, &meta, SystemTime::now(), &mut none()).unwrap();
        assert_eq!(digest, *blake3::hash(&bytes).as_bytes());
        assert!(files_hashed() > before, "hashed, not remembered");
        let read = parallel::hash(&fs::File::open(&path).unwrap(), bytes.len() as u64);
        assert_eq!(read.unwrap(), digest);
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
            now: SystemTime::now(),
            walked: Vec::new(),
            cursor: 0,
            buffers: walker::Buffers::default(),
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

    /// A tree's next walk trusts each file by the identity the last walk found at the same
    /// place, and by nothing else: an edited file is hashed again, and a young one is not
    /// kept for the next walk.
    #[cfg(unix)]
    #[test]
    fn a_walk_trusts_the_last_walk_of_its_tree_by_identity() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        fs::create_dir_all(tree.join("sub")).unwrap();
        for (name, bytes) in [("a", "one"), ("b", "two"), ("sub/c", "three")] {
            fs::write(tree.join(name), bytes).unwrap();
        }
        // The same tree by another path: walked without this path's last walk.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&tree, &link).unwrap();
        let later = || SystemTime::now() + SETTLE + Duration::from_secs(1);
        let walk = |path: &Path, now: SystemTime| {
            let mut known = none();
            known.now = now;
            digest_with(path, &mut known)
        };
        let slot = |at: usize| {
            let trees = TREES.lock().unwrap();
            trees.as_ref().unwrap()[&tree][at]
        };
        let first = walk(&tree, later());
        assert_eq!(first, walk(&link, later()));
        let (id, digest) = slot(0).expect("a settled file is kept");
        assert_eq!(digest, *blake3::hash(b"one").as_bytes());

        // A digest planted for `a`'s identity at its place is what the next walk uses.
        TREES
            .lock()
            .unwrap()
            .as_mut()
            .unwrap()
            .get_mut(&tree)
            .unwrap()[0] = Some((id, [7; 32]));
        assert_ne!(walk(&tree, later()), first);
        assert_eq!(walk(&link, later()), first);

        // Edited: its identity moved, so it is hashed, and not kept while young.
        TREES
            .lock()
            .unwrap()
            .as_mut()
            .unwrap()
            .get_mut(&tree)
            .unwrap()[0] = Some((id, [7; 32]));
        fs::write(tree.join("a"), b"edited").unwrap();
        let edited = walk(&tree, SystemTime::now());
        assert_ne!(edited, first);
        assert_eq!(edited, walk(&link, SystemTime::now()));
        assert_eq!(slot(0), None, "a young file is not kept");
        assert!(slot(2).is_some(), "sub/c, in walk order");
    }

    /// A tree's digest is the documented stream, whichever walk (by descriptors on Linux,
    /// `std::fs::read_dir` elsewhere) produced it: sorted entries, each framed, then the end.
    #[cfg(unix)]
    #[test]
    fn a_tree_digest_is_its_entries_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        fs::create_dir_all(tree.join("s")).unwrap();
        fs::write(tree.join("b"), b"one").unwrap();
        fs::write(tree.join("a"), b"two").unwrap();
        std::os::unix::fs::symlink("x", tree.join("s/l")).unwrap();
        let mut expected = blake3::Hasher::new_derive_key(DOMAIN);
        expected.update(b"d");
        let mut entry = |path: &[u8], kind: u8, what: &[u8]| {
            expected.update(&(path.len() as u64).to_le_bytes());
            expected.update(path);
            expected.update(&[kind]);
            expected.update(&(what.len() as u64).to_le_bytes());
            expected.update(what);
        };
        entry(b"a", b'f', blake3::hash(b"two").as_bytes());
        entry(b"b", b'f', blake3::hash(b"one").as_bytes());
        entry(b"s", b'd', b"");
        entry(b"s/l", b'l', b"x");
        expected.update(&u64::MAX.to_le_bytes());
        assert_eq!(digest(&tree, None), *expected.finalize().as_bytes());
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
