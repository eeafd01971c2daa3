//! Large entries this process has already verified, by file identity. A leaf: it knows file
//! metadata and checksums, not what an entry holds.
//!
//! Checking a hit's payload against its blake3 checksum costs as much as reading it: for a
//! 16 MiB value, hashing took longer than the read and the decode together. A process
//! that hits the same large entry again re-reads a file it has already checked. So, for
//! entries of at least [`MIN_LEN`] bytes, the process remembers the identity of each file
//! whose payload it verified: device, inode, size, modification time and *change* time
//! (`ctime`), with the payload checksum the header declared. A later read of a file with
//! the same identity and the same declared checksum skips the hash; every other check
//! (magic, version, the header's own checksum, lengths, key, type, layout) still runs.
//!
//! Why the identity is enough: entries are never rewritten in place. A store writes a new
//! file and renames it over the old one (a new inode), so a rewritten entry is another
//! file. Anything else that writes into the file changes its `ctime`, which a process
//! cannot set back (`utimensat` sets the modification time, and moves `ctime` to now).
//! One gap remains, the one git's index calls "racy": a write in the same clock tick as
//! the file's last change leaves `ctime` as it was. So a file is only remembered when
//! its last change is at least [`SETTLE`] old when it is checked; a younger one is
//! hashed on every hit until it settles.
//!
//! What this does not cover, said plainly (README, Guarantees): bytes that change on the
//! disk under the file system without any write through it (a failing disk the file
//! system's own checks miss), after this process verified the file. The memory tier has
//! the same exposure for the bytes it holds.
//!
//! Only on Unix, where `ctime` means change time; elsewhere every hit is hashed.

use std::collections::HashMap;
use std::fs::Metadata;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
#[cfg(unix)]
use std::time::Duration;
use std::time::SystemTime;

/// Entries smaller than this are hashed on every hit: a small hash costs next to nothing
/// beside opening the file, and the memory tier serves repeated small hits anyway.
pub(crate) const MIN_LEN: usize = 1 << 20;

/// How old a file's last change must be before its identity is trusted.
#[cfg(unix)]
pub(crate) const SETTLE: Duration = Duration::from_secs(2);

/// Most identities remembered; when full, the set starts over.
const CAPACITY: usize = 4096;

/// A file's identity as `stat` reports it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    /// The identity of a file, when it is settled (see [`SETTLE`]) and the platform has
    /// change times; `None` otherwise (then its payload is always hashed).
    pub(crate) fn settled(meta: &Metadata) -> Option<FileId> {
        Self::settled_at(meta, SystemTime::now())
    }

    #[cfg(unix)]
    fn settled_at(meta: &Metadata, now: SystemTime) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        let id = FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        };
        let changed = SystemTime::UNIX_EPOCH
            .checked_add(Duration::new(
                u64::try_from(id.ctime.0).ok()?,
                u32::try_from(id.ctime.1).ok()?,
            ))
            .filter(|_| id.ctime.1 < 1_000_000_000)?;
        // A change time in the future (clock set back) is never settled.
        let age = now.duration_since(changed).ok()?;
        (age >= SETTLE).then_some(id)
    }

    #[cfg(not(unix))]
    fn settled_at(_: &Metadata, _: SystemTime) -> Option<FileId> {
        None
    }
}

type Seen = HashMap<(u64, u64), (FileId, [u8; 32])>;

static SEEN: Mutex<Option<Seen>> = Mutex::new(None);

/// Payloads of at least [`MIN_LEN`] bytes hashed to verify an entry (every such read but
/// those [`is_verified`] spared).
static HASHED: AtomicU64 = AtomicU64::new(0);

/// Whether this process verified the payload of this very file, declaring this checksum.
pub(crate) fn is_verified(id: &FileId, payload_sum: &[u8; 32]) -> bool {
    let Ok(seen) = SEEN.lock() else {
        return false;
    };
    seen.as_ref()
        .and_then(|seen| seen.get(&(id.dev, id.ino)))
        .is_some_and(|(known, sum)| known == id && sum == payload_sum)
}

/// Remembers that the payload of this file matched this checksum.
pub(crate) fn record(id: FileId, payload_sum: [u8; 32]) {
    let Ok(mut seen) = SEEN.lock() else {
        return;
    };
    let seen = seen.get_or_insert_with(HashMap::new);
    if seen.len() >= CAPACITY {
        seen.clear();
    }
    seen.insert((id.dev, id.ino), (id, payload_sum));
}

/// Counts one large payload hashed for verification.
pub(crate) fn count_hash() {
    HASHED.fetch_add(1, Ordering::Relaxed);
}

/// Payloads of 1 MiB or more hashed so far by this process to verify entries; for tests
/// and benches.
pub fn payload_hashes() -> u64 {
    HASHED.load(Ordering::Relaxed)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("entry");
        std::fs::write(&path, bytes).expect("write");
        (dir, path)
    }

    #[test]
    fn a_fresh_file_is_not_settled_and_an_old_one_is() {
        let (_dir, path) = file_with(b"payload");
        let meta = std::fs::metadata(&path).expect("stat");
        assert_eq!(FileId::settled(&meta), None, "changed just now");
        let later = SystemTime::now() + SETTLE + Duration::from_millis(10);
        assert!(FileId::settled_at(&meta, later).is_some());
        // A change time ahead of the clock is not settled either.
        let earlier = SystemTime::now() - Duration::from_secs(60);
        assert_eq!(FileId::settled_at(&meta, earlier), None);
    }

    #[test]
    fn any_write_or_replacement_changes_the_identity() {
        let (_dir, path) = file_with(b"payload");
        let later = || SystemTime::now() + SETTLE + Duration::from_secs(1);
        let id = |path: &std::path::Path| {
            FileId::settled_at(&std::fs::metadata(path).expect("stat"), later()).expect("id")
        };
        let before = id(&path);
        let sum = *blake3::hash(b"payload").as_bytes();
        record(before, sum);
        assert!(is_verified(&before, &sum));
        assert!(!is_verified(&before, &[0; 32]), "another declared checksum");

        // The same size written in place, with the modification time put back.
        let mtime = std::fs::metadata(&path)
            .expect("stat")
            .modified()
            .expect("mtime");
        std::thread::sleep(Duration::from_millis(20));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        file.write_all(b"PAYLOAD").expect("write");
        file.set_modified(mtime).expect("set mtime");
        drop(file);
        let after = id(&path);
        assert_ne!(before, after, "ctime moved");
        assert!(!is_verified(&after, &sum));

        // Replaced by rename, as a store does: another inode.
        let other = path.with_extension("new");
        std::fs::write(&other, b"payload").expect("write");
        std::fs::rename(&other, &path).expect("rename");
        assert!(!is_verified(&id(&path), &sum));
    }
}
