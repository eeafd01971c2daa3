//! The persisted digest index: a file `.inputs-index` in a root, mapping files' identities
//! to their content digests, so a fresh process trusts a settled file it has never read
//! (like git's index or ccache's manifests). It knows identities and digests, not what the
//! files are for.
//!
//! The index is a list of fixed-size records, each with its magic, version and a blake3
//! checksum of its own bytes; a process reads it once, keeping the last valid record of
//! each `(device, inode)`, and appends what it hashed afterwards in one `O_APPEND` write
//! (records of concurrent processes never interleave). A record that does not check (a
//! torn or damaged write, another version) is skipped, and a record is only ever used for
//! the identity it names, which the caller compared with a live `stat`: a damaged index
//! costs a rehash, never a wrong key. Bounded: once the file holds [`MAX_BYTES`], the
//! process that sees it removes it, and the index starts over. Written through the gate,
//! so a read-only cache keeps the index it has and writes nothing.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::disk::{files, gate};
use crate::inputs::{Identity, Persisted};

/// The index's file name in a root (a leading dot: listings and scans skip it).
pub(crate) const NAME: &str = ".inputs-index";

const MAGIC: [u8; 4] = *b"FCdi";
const VERSION: u8 = 1;
/// magic 4, version 1, padding 3, dev 8, ino 8, size 8, mtime 16, ctime 16, digest 32,
/// checksum 8.
const RECORD_LEN: usize = 104;
const CHECKED_LEN: usize = RECORD_LEN - 8;

/// Most bytes the index holds before it starts over: 65,536 records, 6.5 MiB.
pub(crate) const MAX_BYTES: u64 = (RECORD_LEN as u64) << 16;

/// One root's index, as this process read it.
pub(crate) struct Index {
    path: PathBuf,
    max_bytes: u64,
    /// Read at the first lookup; `None` until then (and again after [`forget`]).
    loaded: Mutex<Option<Records>>,
}

/// The last valid record of each `(device, inode)`.
type Records = HashMap<(u64, u64), (Identity, [u8; 32])>;

/// Every root's index this process has used.
static INDEXES: Mutex<Vec<&'static Index>> = Mutex::new(Vec::new());

/// The index of the root at `root`, one per root for the life of the process.
pub(crate) fn for_root(root: &Path) -> &'static Index {
    let path = root.join(NAME);
    let mut indexes = INDEXES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(index) = indexes.iter().find(|index| index.path == path) {
        return index;
    }
    let index: &'static Index = Box::leak(Box::new(Index::at(path, MAX_BYTES)));
    indexes.push(index);
    index
}

/// Forgets what every index was read as, so that the next lookup reads it again, as a new
/// process would; for benches.
pub(crate) fn forget() {
    let indexes = INDEXES.lock().unwrap_or_else(PoisonError::into_inner);
    for index in indexes.iter() {
        *index.loaded.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl Index {
    fn at(path: PathBuf, max_bytes: u64) -> Index {
        Index {
            path,
            max_bytes,
            loaded: Mutex::new(None),
        }
    }

    fn load(&self) -> Records {
        let mut records = HashMap::new();
        let bytes = match read_index(&self.path, self.max_bytes + RECORD_LEN as u64) {
            Ok(bytes) => bytes,
            Err(_) => return records,
        };
        for chunk in bytes.chunks_exact(RECORD_LEN) {
            if let Some((id, digest)) = decode(chunk) {
                records.insert((id.dev, id.ino), (id, digest));
            }
        }
        records
    }
}

/// The index's bytes, at most `limit`, read without following a link: a small index (up to
/// 4 KiB, 39 records) in one read, as a fresh process's first key of an unchanged file
/// costs little more than its `stat`. A read that does not fill the buffer is taken as the
/// end: a record appended meanwhile is only missed (a rehash).
fn read_index(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let mut file = files::open(OpenOptions::new().read(true), path)?;
    let mut first = [0u8; 4096];
    let first = &mut first[..usize::try_from(limit).map_or(4096, |limit| limit.min(4096))];
    let read = loop {
        match file.read(first) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            result => break result?,
        }
    };
    let mut bytes = first[..read].to_vec();
    if read == first.len() {
        file.take(limit.saturating_sub(read as u64))
            .read_to_end(&mut bytes)?;
    }
    Ok(bytes)
}

impl Persisted for Index {
    fn get(&self, id: &Identity) -> Option<[u8; 32]> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        let records = loaded.get_or_insert_with(|| self.load());
        let (known, digest) = records.get(&(id.dev, id.ino))?;
        (known == id).then_some(*digest)
    }

    fn put(&self, new: &[(Identity, [u8; 32])]) {
        if new.is_empty() {
            return;
        }
        let mut bytes = Vec::with_capacity(new.len() * RECORD_LEN);
        for (id, digest) in new {
            bytes.extend_from_slice(&encode(id, digest));
        }
        let appended = gate::open_own(&self.path, gate::Own::Append).and_then(|mut file| {
            file.write_all(&bytes)?;
            file.metadata().map(|meta| meta.len())
        });
        match appended {
            Ok(len) if len >= self.max_bytes => {
                // Full: start over. Records others append meanwhile go with it (a rehash).
                if let Err(error) = gate::remove_file(&self.path) {
                    log::debug!("file_cache: digest index {}: {error}", self.path.display());
                }
            }
            Ok(_) => {}
            Err(error) if gate::is_refusal(&error) => {}
            Err(error) => {
                log::debug!(
                    "file_cache: digest index {} not written: {error}",
                    self.path.display()
                );
            }
        }
    }
}

fn encode(id: &Identity, digest: &[u8; 32]) -> [u8; RECORD_LEN] {
    let mut record = [0u8; RECORD_LEN];
    record[..4].copy_from_slice(&MAGIC);
    record[4] = VERSION;
    record[8..16].copy_from_slice(&id.dev.to_le_bytes());
    record[16..24].copy_from_slice(&id.ino.to_le_bytes());
    record[24..32].copy_from_slice(&id.size.to_le_bytes());
    record[32..48].copy_from_slice(&id.mtime.to_le_bytes());
    record[48..64].copy_from_slice(&id.ctime.to_le_bytes());
    record[64..96].copy_from_slice(digest);
    let sum = blake3::hash(&record[..CHECKED_LEN]);
    record[CHECKED_LEN..].copy_from_slice(&sum.as_bytes()[..8]);
    record
}

fn decode(record: &[u8]) -> Option<(Identity, [u8; 32])> {
    let field = |at: usize, len: usize| record.get(at..at + len);
    if field(0, 4)? != MAGIC || record.get(4) != Some(&VERSION) {
        return None;
    }
    let sum = blake3::hash(record.get(..CHECKED_LEN)?);
    if field(CHECKED_LEN, 8)? != &sum.as_bytes()[..8] {
        return None;
    }
    let u64_at = |at| field(at, 8)?.try_into().ok().map(u64::from_le_bytes);
    let i128_at = |at| field(at, 16)?.try_into().ok().map(i128::from_le_bytes);
    let id = Identity {
        dev: u64_at(8)?,
        ino: u64_at(16)?,
        size: u64_at(24)?,
        mtime: i128_at(32)?,
        ctime: i128_at(48)?,
    };
    Some((id, field(64, 32)?.try_into().ok()?))
}

/// Reads `path` with a link there refused: for tests of what was written.
#[cfg(test)]
fn read(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut bytes = Vec::new();
    files::open(std::fs::OpenOptions::new().read(true), path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map(|_| bytes)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> Identity {
        Identity {
            dev: 1,
            ino: n,
            size: n * 10,
            mtime: 1_700_000_000_000_000_000 + i128::from(n),
            ctime: 1_700_000_000_000_000_001,
        }
    }

    #[test]
    fn what_one_process_writes_a_fresh_one_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(NAME);
        let writer = Index::at(path.clone(), MAX_BYTES);
        assert_eq!(writer.get(&id(1)), None);
        writer.put(&[(id(1), [1; 32]), (id(2), [2; 32])]);
        writer.put(&[(id(1), [3; 32])]);
        let reader = Index::at(path, MAX_BYTES);
        assert_eq!(reader.get(&id(1)), Some([3; 32]), "the last record wins");
        assert_eq!(reader.get(&id(2)), Some([2; 32]));
        // Only for the very identity: another size, time or inode is not served.
        let mut moved = id(2);
        moved.ctime += 1;
        assert_eq!(reader.get(&moved), None);
        assert_eq!(reader.get(&id(3)), None);
    }

    /// A root's index is read once per process, and again after [`forget`], as a new
    /// process would read it.
    #[test]
    fn a_forgotten_index_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let index = for_root(dir.path());
        assert_eq!(index.get(&id(1)), None, "read: empty");
        Index::at(dir.path().join(NAME), MAX_BYTES).put(&[(id(1), [1; 32])]);
        assert_eq!(index.get(&id(1)), None, "not read again");
        forget();
        assert_eq!(index.get(&id(1)), Some([1; 32]));
    }

    #[test]
    fn a_damaged_record_is_skipped_never_misread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(NAME);
        Index::at(path.clone(), MAX_BYTES).put(&[(id(1), [1; 32]), (id(2), [2; 32])]);
        let mut bytes = read(&path);
        // A digest byte of the first record flipped, and a torn record at the end.
        bytes[70] ^= 1;
        bytes.extend_from_slice(&encode(&id(3), &[3; 32])[..50]);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let reader = Index::at(path, MAX_BYTES);
        assert_eq!(reader.get(&id(1)), None, "damaged: a rehash");
        assert_eq!(reader.get(&id(2)), Some([2; 32]));
        assert_eq!(reader.get(&id(3)), None);
        // Another version's record is not read either.
        let mut other = encode(&id(4), &[4; 32]);
        other[4] = VERSION + 1;
        assert_eq!(decode(&other), None);
    }

    #[test]
    fn the_index_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(NAME);
        let max = RECORD_LEN as u64 * 10;
        let index = Index::at(path.clone(), max);
        for n in 0..100 {
            index.put(&[(id(n), [0; 32])]);
            let len = std::fs::metadata(&path).map_or(0, |meta| meta.len());
            assert!(len < max, "{len} bytes after {n} records");
        }
    }

    /// Threads stand for processes: each appends through its own `Index`, and every
    /// record is whole afterwards.
    #[test]
    fn concurrent_writers_never_interleave_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(NAME);
        std::thread::scope(|scope| {
            for writer in 0..4u64 {
                let path = path.clone();
                scope.spawn(move || {
                    let index = Index::at(path, MAX_BYTES);
                    for n in 0..200 {
                        let batch = [(id(writer * 1000 + n), [writer as u8; 32]); 3];
                        index.put(&batch);
                    }
                });
            }
        });
        let reader = Index::at(path.clone(), MAX_BYTES);
        for writer in 0..4u64 {
            for n in 0..200 {
                assert_eq!(reader.get(&id(writer * 1000 + n)), Some([writer as u8; 32]));
            }
        }
        assert_eq!(read(&path).len(), 4 * 200 * 3 * RECORD_LEN);
    }
}
