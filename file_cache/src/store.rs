//! Where entries live, and the file operations on them.
//!
//! `<root>/<crate>.<module path>.<fn>/<first two hex digits of the key>/<key hex>`.
//! Directory names keep only characters portable to every common file system, and are
//! each function's own (a name that is not plain ASCII identifiers ends with a hash of the
//! whole path, see [`function_dir_name`]); the shard level keeps any one directory to a
//! few thousand entries at a million.

#[cfg(unix)]
use crate::codec::flat;
use crate::config::{config, Faults};
use crate::entry;
use crate::key::Key;
use crate::links;
use crate::lock;
use crate::verified::{self, FileId};
use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// Longest directory name we produce; longer names are cut and suffixed with a hash.
const MAX_DIR_NAME: usize = 120;
/// Hex digits of the identity's hash appended to a name that does not spell it exactly.
const HASH_DIGITS: usize = 16;

/// The directory name of one function: its path with `::` turned into `.`.
///
/// `self_ty` is the `Self` type of a method (from `std::any::type_name`), less its module
/// when that is the function's own module. The name is readable, and it is the function's
/// alone: a path of plain ASCII identifiers is spelled as it is (`app.text.summarize`);
/// any other (non-ASCII or raw identifiers, a `Self` type with generic arguments or
/// punctuation, a name Windows reserves, one over [`MAX_DIR_NAME`] bytes) keeps its
/// readable part, generic arguments dropped and every non-portable character replaced,
/// followed by `-` and a hash of the whole path: `app.Wrapper.get-<16 hex digits>` for
/// `app::Wrapper<u8>::get`, another for `app::Wrapper<u64>::get`, and `app.caf_-<...>` for
/// `app::café`, another for `app::cafè`. A plain name never holds a `-`, so the two forms
/// never meet.
pub(crate) fn function_dir_name(module_path: &str, self_ty: Option<&str>, name: &str) -> String {
    let mut path = module_path.to_owned();
    if let Some(ty) = self_ty {
        let ty = ty
            .strip_prefix(module_path)
            .and_then(|rest| rest.strip_prefix("::"))
            .unwrap_or(ty);
        path.push_str("::");
        path.push_str(ty);
    }
    path.push_str("::");
    path.push_str(name);
    let mut out: String = without_generics(&path)
        .replace("::", ".")
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '.' => c,
            _ => '_',
        })
        .collect();
    let reserved = is_reserved_on_windows(&out);
    if reserved {
        out.insert(0, '_');
    }
    if reserved || !is_plain_path(&path) || out.len() > MAX_DIR_NAME {
        let digest = blake3::hash(path.as_bytes()).to_hex();
        out.truncate(MAX_DIR_NAME - HASH_DIGITS - 1);
        out.push('-');
        out.push_str(&digest[..HASH_DIGITS]);
    }
    out
}

/// `path` without its generic arguments (`a::B<c::D<E>>::f` is `a::B::f`).
fn without_generics(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut depth = 0usize;
    for c in path.chars() {
        match c {
            '<' => depth += 1,
            '>' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whether `path` is ASCII identifiers joined by `::`: then its directory name, with `.`
/// for `::`, spells it exactly.
fn is_plain_path(path: &str) -> bool {
    path.split("::").all(|part| {
        !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// Windows refuses `CON`, `NUL`, `COM1`... as a name or as the part before a dot.
fn is_reserved_on_windows(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name).to_ascii_uppercase();
    matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit())
}

/// The file of one entry inside its function's directory: `<dir>/<first two hex
/// digits>/<hex digits>`.
pub(crate) fn entry_path(function_dir: &Path, key: &Key) -> PathBuf {
    use std::path::MAIN_SEPARATOR_STR as SEPARATOR;
    let hex = key.hex_bytes();
    let hex = std::str::from_utf8(&hex).unwrap_or_default();
    // One allocation of the final size, and the parts appended as they are (a function's
    // directory never ends with a separator): this runs on every hit, and
    // `PathBuf::push` looks each part over for separators and roots first.
    let mut path = OsString::with_capacity(function_dir.as_os_str().len() + 68);
    path.push(function_dir);
    path.push(SEPARATOR);
    path.push(&hex[..2]);
    path.push(SEPARATOR);
    path.push(hex);
    PathBuf::from(path)
}

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
    match links::open(OpenOptions::new().read(true), path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) if links::is_link(&e, path) => {
            links::remove_planted(path);
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
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "entry path has no parent"))?;
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
    let temp = temp_path(path);
    let write = if config.faults.slow_write {
        write_new_slowly
    } else {
        write_new
    };
    let result = write(&temp, parts).and_then(|()| rename_over(&temp, path, config.faults));
    match result {
        Ok(()) => Ok(Ok(())),
        Err(error) => {
            // Best effort: the temporary file may not exist, and a failure here changes
            // nothing.
            let _ = fs::remove_file(&temp);
            if error.kind() == io::ErrorKind::NotFound {
                Err(Vanished(error))
            } else {
                Ok(Err(error))
            }
        }
    }
}

/// Renames `from` onto `to`. Where the file system refuses to rename onto an existing file,
/// removes `to` first: not atomic (a reader may find no entry for a moment), but a reader
/// still never sees a partial one.
fn rename_over(from: &Path, to: &Path, faults: Faults) -> io::Result<()> {
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
fn write_new_slowly(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    write_new(path, &[])?;
    let mut file = links::open(OpenOptions::new().append(true), path)?;
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
fn dir_mode() -> u32 {
    if config().shared {
        0o777
    } else {
        0o700
    }
}

/// A name no other writer, in this process or another, is using.
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()))
}

fn is_temp_file(name: &str) -> bool {
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

/// Sweeps `dir` the first time this process writes there: a long-lived process does not
/// list a directory on every store, and every process that writes somewhere sweeps it.
fn sweep_once(dir: &Path, stale_after: Duration, faults: Faults) {
    static SWEPT: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    let first = SWEPT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(HashSet::new)
        .insert(dir.to_path_buf());
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
            let _ = fs::remove_file(&path);
        } else {
            lock::remove_if_unheld(&path, faults);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_are_portable() {
        assert_eq!(
            function_dir_name("app::text", None, "summarize"),
            "app.text.summarize"
        );
        assert_eq!(
            function_dir_name("app::text", Some("app::text::Client"), "ask"),
            "app.text.Client.ask"
        );
        assert_eq!(
            function_dir_name("app", Some("other::Client"), "ask"),
            "app.other.Client.ask"
        );
        let hashed = |name: &str, readable: &str| {
            let (head, hash) = name.rsplit_once('-').unwrap();
            assert_eq!(head, readable, "{name}");
            assert_eq!(hash.len(), HASH_DIGITS, "{name}");
            assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
        };
        hashed(
            &function_dir_name("app::text", Some("app::text::Client<u32>"), "ask"),
            "app.text.Client.ask",
        );
        hashed(&function_dir_name("con", None, "f"), "_con.f");
        hashed(&function_dir_name("app", Some("&str"), "f"), "app._str.f");
        hashed(&function_dir_name("app", None, "café"), "app.caf_");
        let long = "m".repeat(300);
        let name = function_dir_name(&long, None, "f");
        assert_eq!(name.len(), MAX_DIR_NAME);
        assert_ne!(name, function_dir_name(&format!("{long}x"), None, "f"));
    }

    #[test]
    fn every_function_has_a_directory_of_its_own() {
        let names = [
            function_dir_name("app", Some("app::Wrapper<u8>"), "get"),
            function_dir_name("app", Some("app::Wrapper<u64>"), "get"),
            function_dir_name("app", Some("app::Wrapper"), "get"),
            function_dir_name("app", None, "café"),
            function_dir_name("app", None, "cafè"),
            function_dir_name("app", None, "caf_"),
            function_dir_name("app", Some("(u8, u16)"), "f"),
            function_dir_name("app", Some("(u8,u16)"), "f"),
            function_dir_name("app", Some("app::A"), "f"),
            function_dir_name("app::A", None, "f"),
        ];
        let distinct: HashSet<&String> = names.iter().collect();
        // The last two are one function, spelled as a method and as `clear` spells it.
        assert_eq!(distinct.len(), names.len() - 1, "{names:?}");
        assert_eq!(names[8], names[9]);
        // `clear` spells a generic method's path as `stats()` and `type_name` do.
        assert_eq!(names[0], function_dir_name("app::Wrapper<u8>", None, "get"));
    }

    #[test]
    fn entries_are_sharded_by_key() {
        let key = Key([0xab; 32]);
        let path = entry_path(Path::new("/r/f"), &key);
        assert_eq!(path, Path::new("/r/f/ab").join("ab".repeat(32)));
        // Exactly these bytes, not only the same components.
        assert_eq!(
            path.as_os_str(),
            Path::new("/r/f/ab").join("ab".repeat(32)).as_os_str()
        );
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
