//! Listing a root: its function directories (under relative `dir` roots too), their entry
//! files, reading an entry's header for a listing, and removing a function's directory
//! while other processes may still write to it. It reads what is on disk; it knows nothing
//! of sites, calls or this process's state.

use crate::disk::files;
use crate::disk::gate;
use crate::disk::hitlog::{HitRecord, HitTotals, HIT_LOG, MAX_HIT_LOG};
use crate::disk::versions::{recorded_version, CURRENT_VERSION};
use crate::entry::{self, EntryError};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One function's directory under a root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionDir {
    /// The directory's name: the function's path with `.` for `::` (`my_crate.module.name`),
    /// after the relative `dir` it lives in, if any (`embeddings/my_crate.embed`).
    pub name: String,
    /// Where it is.
    pub path: PathBuf,
}

/// The name of the directory of the function at `function`, a path as
/// [`clear`](crate::clear) takes it: `my_crate::module::name`, or for a method
/// `my_crate::module::Type::method` with the type as `std::any::type_name` spells it
/// (`my_crate::Wrapper<u8>::get`).
///
/// A path of plain ASCII identifiers is its own name, with `.` for `::`; any other keeps a
/// readable part and ends with a hash of the whole path, so that two functions never
/// share a directory:
///
/// ```
/// use file_cache::inspect::function_dir_name;
/// assert_eq!(function_dir_name("app::text::summarize"), "app.text.summarize");
/// let u8s = function_dir_name("app::Wrapper<u8>::get");
/// let u64s = function_dir_name("app::Wrapper<u64>::get");
/// assert!(u8s.starts_with("app.Wrapper.get-") && u64s.starts_with("app.Wrapper.get-"));
/// assert_ne!(u8s, u64s);
/// assert_ne!(function_dir_name("app::café"), function_dir_name("app::cafè"));
/// ```
pub fn function_dir_name(function: &str) -> String {
    let (module, name) = function.rsplit_once("::").unwrap_or(("", function));
    crate::disk::paths::function_dir_name(module, None, name)
}

/// The function directories under `root`, sorted by name. A root that does not exist is
/// empty, not an error.
///
/// Functions with a relative `#[file_cache(dir = "...")]` live in a directory of their own
/// under the root: they are found there too, named `dir/my_crate.module.name`.
pub fn functions(root: &Path) -> io::Result<Vec<FunctionDir>> {
    let mut out = Vec::new();
    collect_functions(root, "", 0, &mut out)?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// How deep `dir = "a/b/c"` roots are looked for.
const MAX_NESTING: usize = 8;

fn collect_functions(
    dir: &Path,
    prefix: &str,
    depth: usize,
    out: &mut Vec<FunctionDir>,
) -> io::Result<()> {
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for item in read {
        // A directory removed while it is listed (a concurrent clear) is skipped.
        let item = match item {
            Ok(item) => item,
            Err(e) if is_gone(&e) => continue,
            Err(e) => return Err(e),
        };
        let name = item.file_name().to_string_lossy().into_owned();
        let is_dir = match item.file_type() {
            Ok(kind) => kind.is_dir(),
            Err(e) if is_gone(&e) => continue,
            Err(e) => return Err(e),
        };
        if name.starts_with('.') || !is_dir {
            continue;
        }
        let path = item.path();
        let named = format!("{prefix}{name}");
        let is_function = match is_function_dir(&path) {
            Ok(is_function) => is_function,
            Err(e) if is_gone(&e) => continue,
            Err(e) => return Err(e),
        };
        if is_function {
            out.push(FunctionDir { name: named, path });
        } else if depth < MAX_NESTING {
            collect_functions(&path, &format!("{named}/"), depth + 1, out)?;
        }
    }
    Ok(())
}

/// A function's directory holds shards (two hex digits) or its bookkeeping files; any other
/// directory is a root of its own (`dir = "..."`), or empty.
fn is_function_dir(dir: &Path) -> io::Result<bool> {
    for item in fs::read_dir(dir)? {
        let name = item?.file_name();
        let name = name.to_string_lossy();
        let is_shard = name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit());
        if is_shard || name == HIT_LOG || name == CURRENT_VERSION {
            return Ok(true);
        }
    }
    Ok(false)
}

/// An entry file, as the directory listing sees it (nothing read yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub len: u64,
    /// Its modification time: when it was written or last hit (hits refresh it, at most
    /// once a minute per process, when a size bound is set). Eviction goes by this.
    pub modified: SystemTime,
}

impl FunctionDir {
    /// The entry files of this function, in no particular order. Files and shards that
    /// vanish while they are listed (a concurrent prune) are skipped; a directory that is
    /// gone (a concurrent clear removed it since [`functions`] listed it) is an error of kind
    /// [`NotFound`](io::ErrorKind::NotFound): the function holds nothing any more.
    pub fn entries(&self) -> io::Result<Vec<EntryFile>> {
        let mut out = Vec::new();
        for shard in fs::read_dir(&self.path)? {
            let shard = match shard {
                Ok(shard) => shard,
                Err(e) if is_gone(&e) => continue,
                Err(e) => return Err(e),
            };
            let is_dir = match shard.file_type() {
                Ok(kind) => kind.is_dir(),
                Err(e) if is_gone(&e) => continue,
                Err(e) => return Err(e),
            };
            if shard.file_name().to_string_lossy().starts_with('.') || !is_dir {
                continue;
            }
            let files = match fs::read_dir(shard.path()) {
                Ok(files) => files,
                Err(e) if is_gone(&e) => continue,
                Err(e) => return Err(e),
            };
            for file in files {
                let file = match file {
                    Ok(file) => file,
                    Err(e) if is_gone(&e) => continue,
                    Err(e) => return Err(e),
                };
                if file.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                let meta = match file.metadata() {
                    Ok(meta) => meta,
                    Err(e) if is_gone(&e) => continue,
                    Err(e) => return Err(e),
                };
                if meta.is_file() {
                    out.push(EntryFile {
                        path: file.path(),
                        len: meta.len(),
                        modified: meta.modified().unwrap_or(UNIX_EPOCH),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Hits logged for this function by every process so far, and the time they saved. No
    /// log (none yet, or the directory is gone) is no hits.
    ///
    /// A log that no process could have written (see [`DamagedHitLog`](crate::inspect::DamagedHitLog)) is an error of kind
    /// [`InvalidData`](io::ErrorKind::InvalidData) holding the [`DamagedHitLog`](crate::inspect::DamagedHitLog): its totals
    /// are unknown, and summing its records would only add garbage.
    pub fn hits(&self) -> io::Result<HitTotals> {
        let log = self.path.join(HIT_LOG);
        // Bounded and never through a link: what is there may have been planted.
        let bytes = match files::read_bounded(&log, MAX_HIT_LOG) {
            Ok(bytes) => bytes,
            Err(e) if is_gone(&e) => Vec::new(),
            Err(e) if files::is_link(&e, &log) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "it is a symbolic link, not a hit log",
                ))
            }
            Err(e) => return Err(e),
        };
        let sum = HitRecord::parse_log(&bytes)
            .map_err(|damage| io::Error::new(io::ErrorKind::InvalidData, damage))?;
        Ok(HitTotals {
            hits: sum.hits,
            time_saved: Duration::from_micros(sum.saved_us),
        })
    }

    /// The code hash of the version of the function that ran last, if it was recorded.
    pub fn current_version(&self) -> Option<[u8; 32]> {
        recorded_version(&self.path.join(CURRENT_VERSION))
    }

    /// Removes the whole directory (entries, hit log, version record); returns how many
    /// entries it removed. A directory that is already gone held none.
    ///
    /// Other processes may store into the function while it is removed: what the removal
    /// found is removed, files written meanwhile may stay (or be removed too), and neither
    /// makes it fail. Only a file it cannot remove (permissions) is an error.
    ///
    /// A function with a relative `dir = "..."` lives in directories of its own under the
    /// root: those it leaves empty are removed too, so the root does not keep a trail of
    /// empty directories.
    pub fn remove(&self) -> io::Result<u64> {
        let removed = remove_tree(&self.path, Level::Function)?;
        // `name` has one `/` per directory between the root and the function's.
        let mut parent = self.path.parent();
        for _ in 0..self.name.matches('/').count() {
            let Some(dir) = parent else { break };
            // Fails, and stops, at a directory that holds anything else.
            if gate::remove_dir(dir).is_err() {
                break;
            }
            parent = dir.parent();
        }
        Ok(removed)
    }

    /// The function's path as users write it: the directory name with `::` for `.`.
    pub fn function(&self) -> String {
        self.own_name().replace('.', "::")
    }

    /// Whether this is the directory of `function`: a path as [`function`](Self::function)
    /// spells it, or as [`function_dir_name`] takes it.
    pub fn is_function(&self, function: &str) -> bool {
        self.function() == function || self.own_name() == function_dir_name(function)
    }

    /// The directory's own name, without the relative `dir` it lives in.
    fn own_name(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }

    /// Total size in bytes of the bookkeeping files (hit log, version), which are not entries.
    pub fn bookkeeping_len(&self) -> u64 {
        [HIT_LOG, CURRENT_VERSION]
            .iter()
            .filter_map(|name| fs::metadata(self.path.join(name)).ok())
            .map(|meta| meta.len())
            .sum()
    }
}

/// What a directory being removed is, to count the entries among its files.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Function,
    Shard,
    Other,
}

/// How many times a directory that keeps being written to is emptied before its removal
/// leaves it be.
const REMOVE_ATTEMPTS: usize = 4;

/// Removes `dir` and everything in it, tolerating files that appear or vanish meanwhile
/// (concurrent writers, hit logs, another removal); returns the entries removed.
fn remove_tree(dir: &Path, level: Level) -> io::Result<u64> {
    let mut removed = 0;
    for _ in 0..REMOVE_ATTEMPTS {
        let items = match fs::read_dir(dir) {
            Ok(items) => items,
            Err(e) if is_gone(&e) => return Ok(removed),
            Err(e) => return Err(e),
        };
        for item in items {
            let item = match item {
                Ok(item) => item,
                Err(e) if is_gone(&e) => continue,
                Err(e) => return Err(e),
            };
            let is_dir = match item.file_type() {
                Ok(kind) => kind.is_dir(),
                Err(e) if is_gone(&e) => continue,
                Err(e) => return Err(e),
            };
            let hidden = item.file_name().to_string_lossy().starts_with('.');
            if is_dir {
                let inner = match level {
                    Level::Function if !hidden => Level::Shard,
                    _ => Level::Other,
                };
                removed += remove_tree(&item.path(), inner)?;
                continue;
            }
            match gate::remove_file(&item.path()) {
                Ok(()) => removed += u64::from(level == Level::Shard && !hidden),
                Err(e) if is_gone(&e) => {}
                Err(e) => return Err(e),
            }
        }
        match gate::remove_dir(dir) {
            Ok(()) => return Ok(removed),
            Err(e) if is_gone(&e) => return Ok(removed),
            // Written to since it was listed: list it again.
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => {}
            Err(e) => return Err(e),
        }
    }
    // Still being written to: everything it held when it was looked at is gone.
    log::debug!(
        "file_cache: {} is being written to; leaving what was written during its removal",
        dir.display()
    );
    Ok(removed)
}

/// A file or directory that vanished while it was being looked at.
fn is_gone(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::NotFound
}

impl EntryFile {
    /// Removes the entry, and its shard directory when that leaves it empty. An entry that
    /// is already gone (another process removed it) is no error.
    ///
    /// A process storing into the same shard at that moment is not disturbed: the shard is
    /// removed only while empty, and a writer that finds its shard gone creates it again.
    pub fn remove(&self) -> io::Result<()> {
        match gate::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if is_gone(&e) => {}
            Err(e) => return Err(e),
        }
        remove_empty_shard(&self.path);
        Ok(())
    }
}

/// Removes the shard directory of the entry at `entry` if it is empty (and is a shard:
/// two hex digits). Best effort: a shard that holds anything stays.
pub(crate) fn remove_empty_shard(entry: &Path) {
    let Some(shard) = entry.parent() else {
        return;
    };
    let is_shard = shard.file_name().is_some_and(|name| {
        let name = name.to_string_lossy();
        name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit())
    });
    if is_shard {
        // `remove_dir` never removes a directory that holds anything.
        let _ = gate::remove_dir(shard);
    }
}

impl EntryFile {
    /// Reads and checks the whole entry, payload checksum included: `Ok(Err(_))` for a file
    /// that is not a valid entry (damaged, truncated, another format), `Err(_)` when it
    /// cannot be read at all.
    pub fn read(&self) -> io::Result<Result<EntryInfo, InvalidEntry>> {
        use std::io::Read;
        // Never through a link planted where an entry was listed.
        let mut bytes = Vec::new();
        files::open(fs::OpenOptions::new().read(true), &self.path)?.read_to_end(&mut bytes)?;
        Ok(parse_entry(&bytes))
    }

    /// Reads and checks only the header (its checksum, and the payload length against the
    /// file's size): a few hundred bytes instead of the whole value, for listing.
    pub fn read_header(&self) -> io::Result<Result<EntryInfo, InvalidEntry>> {
        use std::io::Read;
        let mut bytes = Vec::new();
        let file = files::open(fs::OpenOptions::new().read(true), &self.path)?;
        let size = file.metadata()?.len();
        let mut file = file.take(entry::MAX_HEADER_LEN as u64);
        file.read_to_end(&mut bytes)?;
        // A header that records dependencies may be longer: read up to its declared end
        // (never past the file's own size).
        if let Some(len) = entry::declared_header_len(&bytes) {
            let len = (len as u64).min(size);
            if len > bytes.len() as u64 {
                let file = file.into_inner();
                file.take(len - bytes.len() as u64)
                    .read_to_end(&mut bytes)?;
            }
        }
        let parsed = match entry::parse_header(&bytes) {
            Ok(parsed) => parsed,
            Err(error) => return Ok(Err(InvalidEntry(error))),
        };
        let actual = size.saturating_sub(parsed.len as u64);
        if parsed.payload_len != actual {
            return Ok(Err(InvalidEntry(EntryError::PayloadLength {
                declared: parsed.payload_len,
                actual: usize::try_from(actual).unwrap_or(usize::MAX),
            })));
        }
        Ok(Ok(info(&parsed.header, parsed.payload_len)))
    }
}

fn info(header: &entry::Header<'_>, payload_len: u64) -> EntryInfo {
    EntryInfo {
        key: header.key,
        code_hash: header.code_hash,
        type_name: header.type_name.to_owned(),
        created: UNIX_EPOCH + Duration::from_millis(header.created_ms),
        compute_time: Duration::from_micros(header.compute_us),
        payload_len,
        dependencies: crate::dependencies::decode(header.dependencies).unwrap_or_default(),
    }
}

/// What an entry's header records.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntryInfo {
    /// The key the entry answers for.
    pub key: [u8; 32],
    /// The code hash of the version of the function that wrote it.
    pub code_hash: [u8; 32],
    /// The value's type, as `std::any::type_name` spelled it.
    pub type_name: String,
    /// When it was written.
    pub created: SystemTime,
    /// How long the function took to compute the value: what every hit saves.
    pub compute_time: Duration,
    /// Size of the encoded value.
    pub payload_len: u64,
    /// The files the value was computed from, as its body declared them with
    /// [`depends_on`](crate::depends_on) (and nested cached calls' `files = [...]`): each
    /// path as named, with the digest of what it named. A hit re-checks them.
    pub dependencies: Vec<crate::dependencies::Dependency>,
}

/// Checks a whole entry file (magic, format version, both checksums, lengths) and returns
/// its header.
///
/// ```
/// assert!(file_cache::inspect::parse_entry(b"not an entry").is_err());
/// ```
pub fn parse_entry(bytes: &[u8]) -> Result<EntryInfo, InvalidEntry> {
    let (header, payload) = entry::parse(bytes).map_err(InvalidEntry)?;
    Ok(info(&header, payload.len() as u64))
}

/// Why some bytes are not a valid entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidEntry(EntryError);

impl fmt::Display for InvalidEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for InvalidEntry {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::hitlog::tests::log_of;
    use crate::disk::hitlog::DamagedHitLog;
    use crate::disk::versions::{note_current_version, to_hex};

    #[test]
    fn a_missing_root_is_empty() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(functions(&root.path().join("nope")).unwrap(), vec![]);
    }

    #[test]
    fn functions_are_found_in_their_own_dirs_too() {
        let root = tempfile::tempdir().unwrap();
        for dir in ["app.f/ab", "embeddings/app.embed/0c", "empty"] {
            fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        fs::create_dir_all(root.path().join("app.g")).unwrap();
        fs::write(root.path().join("app.g").join(CURRENT_VERSION), "x").unwrap();
        let found: Vec<(String, String)> = functions(root.path())
            .unwrap()
            .into_iter()
            .map(|f| (f.name.clone(), f.function()))
            .collect();
        assert_eq!(
            found,
            [
                ("app.f".to_owned(), "app::f".to_owned()),
                ("app.g".to_owned(), "app::g".to_owned()),
                ("embeddings/app.embed".to_owned(), "app::embed".to_owned()),
            ]
        );
    }

    #[test]
    fn removing_a_function_counts_its_entries_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = FunctionDir {
            name: "app.f".into(),
            path: root.path().join("app.f"),
        };
        for shard in ["ab", "cd"] {
            fs::create_dir_all(dir.path.join(shard)).unwrap();
            fs::write(dir.path.join(shard).join(format!("{shard}01")), "e").unwrap();
            fs::write(dir.path.join(shard).join(".x.1-0.tmp"), "t").unwrap();
            fs::write(dir.path.join(shard).join(".x.lock"), "").unwrap();
        }
        fs::write(dir.path.join(HIT_LOG), [0; 16]).unwrap();
        fs::write(dir.path.join(CURRENT_VERSION), "v").unwrap();
        assert_eq!(dir.entries().unwrap().len(), 2);
        assert_eq!(dir.remove().unwrap(), 2);
        assert!(!dir.path.exists());
        assert_eq!(dir.remove().unwrap(), 0, "already gone");
        assert_eq!(
            dir.entries().map_err(|e| e.kind()),
            Err(io::ErrorKind::NotFound)
        );
    }

    #[test]
    fn a_damaged_hit_log_is_invalid_data_that_says_why() {
        let root = tempfile::tempdir().unwrap();
        let dir = FunctionDir {
            name: "f".into(),
            path: root.path().to_path_buf(),
        };
        fs::write(root.path().join(HIT_LOG), log_of(&[(3, 1), (0, 9)])).unwrap();
        let error = dir.hits().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        let damage = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<DamagedHitLog>())
            .expect("the damage");
        assert_eq!(damage.to_string(), "record 1: a record of no hits");
    }

    #[test]
    fn headers_read_alone_check_their_checksum_and_the_file_size() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("entry");
        let header = entry::Header {
            codec: 1,
            key: [1; 32],
            code_hash: [2; 32],
            layout: [0; 16],
            created_ms: 1_000,
            compute_us: 5,
            type_name: "u8",
            dependencies: &[],
        };
        let mut bytes = header.encode(&[7; 5000]).unwrap();
        bytes.extend_from_slice(&[7; 5000]);
        fs::write(&path, &bytes).unwrap();
        let file = EntryFile {
            path: path.clone(),
            len: bytes.len() as u64,
            modified: UNIX_EPOCH,
        };
        let info = file.read_header().unwrap().unwrap();
        assert_eq!((info.code_hash, info.payload_len), ([2; 32], 5000));
        assert_eq!(info.compute_time, Duration::from_micros(5));
        fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(file.read_header().unwrap().is_err(), "truncated");
        bytes[100] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(file.read_header().unwrap().is_err(), "header damaged");
    }

    #[test]
    fn current_version_round_trips() {
        let root = tempfile::tempdir().unwrap();
        let dir = FunctionDir {
            name: "f".into(),
            path: root.path().to_path_buf(),
        };
        assert_eq!(dir.current_version(), None);
        assert!(!note_current_version(
            &dir.path.join("absent"),
            &[1; 32],
            false
        ));
        assert!(
            !dir.path.join("absent").exists(),
            "a lookup creates nothing"
        );
        assert!(note_current_version(&dir.path, &[0xab; 32], false));
        assert_eq!(dir.current_version(), Some([0xab; 32]));
        assert!(note_current_version(&dir.path, &[0xcd; 32], true));
        assert_eq!(dir.current_version(), Some([0xcd; 32]));
        // A record with more after it, or cut short, names no version.
        let path = dir.path.join(CURRENT_VERSION);
        fs::write(
            &path,
            format!("{}\n{}\n", to_hex(&[0xcd; 32]), to_hex(&[1; 32])),
        )
        .unwrap();
        assert_eq!(dir.current_version(), None);
        fs::write(&path, &to_hex(&[0xcd; 32])[..40]).unwrap();
        assert_eq!(dir.current_version(), None);
        fs::write(&path, to_hex(&[0xcd; 32])).unwrap();
        assert_eq!(dir.current_version(), Some([0xcd; 32]), "no newline");
    }
}
