//! Reading entry files: a small hit in one `read` of a guessed size, a large one as
//! `fs::read` does, and a flat vector straight into its memory; each read tells a file's
//! identity (see `verified`). It knows where bytes are, not what they mean: checking and
//! decoding them is the caller's.

#[cfg(unix)]
use crate::codec::flat;
use crate::disk::files::{self};
use crate::entry;
use crate::verified::{self, FileId};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

/// Reads a whole entry; `None` when there is none (also when a file stands where one of
/// its directories should be: writing will report that).
///
/// A small hit's system calls are open, one `read` and close: the buffer is sized by
/// `guess` (the last size seen for the function) plus one byte, and the header says how
/// long the entry is, so a read that returns exactly that many bytes needs no second read
/// to see the end. (`fs::read` adds a `statx` and an `lseek` for the size and a read that
/// returns 0.) A short guess costs what `fs::read` costs, for the rest of the file.
///
/// Big entries (over [`SMALL_READ`]) are read as `fs::read` does: its extra system calls
/// are nothing beside the bytes, and it reads into memory it has not zeroed first.
pub(crate) fn read(path: &Path, guess: usize) -> io::Result<Option<Vec<u8>>> {
    Ok(read_with_id(path, guess)?.map(|(bytes, _)| bytes))
}

/// [`read`], and for an entry of at least [`verified::MIN_LEN`] bytes, the identity of
/// the file read when it is settled (see the `verified` module).
pub(crate) fn read_with_id(
    path: &Path,
    guess: usize,
) -> io::Result<Option<(Vec<u8>, Option<FileId>)>> {
    let Some(file) = open_entry(path)? else {
        return Ok(None);
    };
    if guess < verified::MIN_LEN {
        // Small, or the first read in this process (then the next read knows the size).
        return read_entry(file, guess).map(|bytes| Some((bytes, None)));
    }
    // The identity of the open file, taken before reading it: a write after this `stat`
    // moves its change time, so the next read sees another identity.
    let id = file.metadata().ok().and_then(|meta| FileId::settled(&meta));
    let bytes = read_entry(file, guess)?;
    Ok(Some((bytes, id)))
}

/// What [`read_flat`] read.
#[cfg(unix)]
pub(crate) enum FlatRead<E> {
    /// The header with the payload's length prefix, and the elements after them.
    Split {
        head: Vec<u8>,
        values: Vec<E>,
        id: Option<FileId>,
    },
    /// The whole file, read as [`read_with_id`] reads it: its sizes are not those of a
    /// vector of `E` under the expected header, or it ended early. The usual checks of the
    /// whole entry say why it is not a hit.
    Whole(Vec<u8>, Option<FileId>),
}

/// Reads an entry that should hold a vector of `E` under a header of `header_len` bytes:
/// the header and the length prefix in one read, then the elements straight into the
/// vector's memory ([`flat::read_into`]), so a large vector is copied once, from the
/// kernel. The sizes come from the file's own `stat`; nothing is trusted before the
/// entry's checks. `None` when there is no entry.
#[cfg(unix)]
pub(crate) fn read_flat<E: flat::Element>(
    path: &Path,
    header_len: usize,
) -> io::Result<Option<FlatRead<E>>> {
    use std::io::{Seek, SeekFrom};
    let Some(mut file) = open_entry(path)? else {
        return Ok(None);
    };
    let meta = file.metadata()?;
    let id = if meta.len() >= verified::MIN_LEN as u64 {
        FileId::settled(&meta)
    } else {
        None
    };
    let split = meta
        .len()
        .checked_sub(header_len as u64)
        .and_then(|payload_len| flat::split(payload_len, std::mem::size_of::<E>()));
    if let Some((prefix, count)) = split {
        let mut head = vec![0; header_len + prefix];
        let expected = fill(&mut file, &mut head)? == head.len()
            && entry::declared_header_len(&head) == Some(header_len)
            && entry::declared_len(&head) == Some(meta.len());
        if expected {
            if let Some(values) = flat::read_into(&file, count)? {
                return Ok(Some(FlatRead::Split { head, values, id }));
            }
        }
        file.seek(SeekFrom::Start(0))?;
    }
    let bytes = read_entry(file, usize::try_from(meta.len()).unwrap_or(usize::MAX))?;
    Ok(Some(FlatRead::Whole(bytes, id)))
}

/// Opens an entry to read it; `None` when there is none. A symbolic link where an entry
/// should be is never read through: it is removed (with one warning) and counts as absent,
/// so the miss that follows stores a real entry in its place.
fn open_entry(path: &Path) -> io::Result<Option<File>> {
    match files::open(OpenOptions::new().read(true), path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) if files::is_link(&e, path) => {
            crate::disk::gate::remove_planted(path);
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn is_absent(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Smallest first read: enough for any header with a short type name.
const MIN_GUESS: usize = 512;
/// Entries up to this size are read into a zeroed buffer of the guessed size.
pub(crate) const SMALL_READ: usize = 64 * 1024;

fn read_entry(mut file: File, guess: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if guess > SMALL_READ {
        file.read_to_end(&mut buf)?;
        return Ok(buf);
    }
    // Zeroed rather than uninitialized (no unsafe): a memset of a few KiB at most.
    buf.resize(guess.max(MIN_GUESS) + 1, 0);
    let len = fill(&mut file, &mut buf)?;
    let full = len == buf.len();
    buf.truncate(len);
    if full {
        // The guess was short (or the file is longer than it says): read the rest,
        // sized by the file itself, never by a length field not yet checked.
        file.read_to_end(&mut buf)?;
    }
    Ok(buf)
}

/// Reads into `buf` until it is full or the file ends; returns the length read. Stops
/// early once the header's declared length is reached, which is what saves the read that
/// would return 0.
fn fill(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if entry::declared_len(&buf[..len]).is_some_and(|d| d == len as u64) {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// An entry-shaped file whose header declares `declared` bytes in all.
    fn entry_file(declared: u64, actual: usize) -> Vec<u8> {
        let header = entry::Header {
            codec: 1,
            key: [1; 32],
            code_hash: [2; 32],
            layout: [0; 16],
            created_ms: 0,
            compute_us: 0,
            type_name: "u8",
            dependencies: &[],
        };
        let header = header.encode(b"").unwrap();
        let payload_len = declared - header.len() as u64;
        let mut bytes = header;
        // Patch the declared payload length; the header checksum no longer matches,
        // which does not matter for reading.
        bytes[108..116].copy_from_slice(&payload_len.to_le_bytes());
        bytes.resize(actual, 7);
        bytes
    }

    #[test]
    fn reads_whole_files_whatever_the_guess() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("entry");
        for (declared, actual) in [
            (300u64, 300usize),
            (5_000, 5_000),
            (200_000, 200_000),
            // Lying headers: the file is what is read, never more.
            (300, 1_000),
            (5_000, 400),
            (u64::MAX, 3_000),
        ] {
            let bytes = entry_file(declared, actual);
            fs::write(&path, &bytes).unwrap();
            for guess in [0, 1, 299, 300, 301, 4_999, 5_000, 100_000, 300_000] {
                let read = read(&path, guess).unwrap().unwrap();
                let want = actual.min(usize::try_from(declared).unwrap_or(usize::MAX));
                // More than declared is read only as far as the buffer reaches: parse
                // then sees a length mismatch, as it would with the whole file.
                if actual > want {
                    assert!(
                        read.len() > want || read.len() == actual,
                        "{declared} {actual} {guess}"
                    );
                    assert_eq!(read[..], bytes[..read.len()]);
                } else {
                    assert_eq!(
                        read, bytes,
                        "declared {declared}, actual {actual}, guess {guess}"
                    );
                }
            }
        }
        // Shorter than a header.
        fs::write(&path, b"short").unwrap();
        assert_eq!(read(&path, 0).unwrap().unwrap(), b"short");
    }
}
