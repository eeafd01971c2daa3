//! Administration of the remote tier, off any call's path: listing its entries with their
//! ages and versions (read from the start of each object, never its payload), clearing
//! them, and pruning the old and the stale, over a connection of its own with a longer
//! timeout.

use super::backend::{Backend, Listed};
use super::config::RemoteError;
use super::{open_backend, tier, Tier};
use crate::disk::versions::{recorded_version, CURRENT_VERSION};
use crate::entry;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Listing and clearing are not on a call's path: they may wait this long per step.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes read from the start of each object to find its header: enough for any header
/// whose type name is not very long and that records few dependencies; a longer one is
/// read again, whole.
const HEAD_GUESS: u64 = 4096;

/// The longest header there can be: the longest type name and the most dependencies.
const MOST_HEADER: u64 = (entry::MAX_HEADER_LEN + 4 + entry::MAX_DEPENDENCIES_LEN) as u64;

/// One entry of the remote tier.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteEntry {
    /// The function's directory name (as under the local root).
    pub function: String,
    /// The key, in hex.
    pub key: String,
    /// Size of the stored object, in bytes (signature included).
    pub size: u64,
    /// When the entry was created, as its header records it; `None` when the object does
    /// not start with a valid entry header.
    pub created: Option<SystemTime>,
    /// When the store last wrote the object, when it says: S3's `Last-Modified`; `None`
    /// on Redis.
    pub modified: Option<SystemTime>,
    /// The code hash of the version of the function that wrote the entry (what a local
    /// root's version record names); `None` when the header cannot be read.
    pub version: Option<[u8; 32]>,
}

impl RemoteEntry {
    /// How long ago the entry was created, or else written to the store; `None` when
    /// neither is known (or both are ahead of `now`).
    pub fn age(&self, now: SystemTime) -> Option<Duration> {
        now.duration_since(self.created.or(self.modified)?).ok()
    }

    fn name(&self) -> String {
        format!("{}/{}", self.function, self.key)
    }
}

/// The entries of the remote tier, with their ages and versions: of one function (its
/// directory name) or of all. One listing, then the start of every object (Redis: one
/// pipelined `GETRANGE` per thousand keys; S3: ranged GETs, a few dozen at a time).
pub fn list(function: Option<&str>) -> Result<Vec<RemoteEntry>, RemoteError> {
    let backend = tier().ok_or(RemoteError::NotConfigured)?.admin()?;
    let listed = objects(backend, function)?;
    let mut wanted: Vec<(String, u64)> = listed
        .iter()
        .map(|object| (object.name.clone(), object.size.min(HEAD_GUESS)))
        .collect();
    let mut starts = backend.heads(&wanted)?;
    // Headers longer than the guess (a long type name, many dependencies): read again.
    let mut longer = Vec::new();
    for (i, (object, start)) in listed.iter().zip(&starts).enumerate() {
        if let Some(len) = longer_header(start, object.size) {
            longer.push(i);
            wanted[i].1 = len;
        }
    }
    if !longer.is_empty() {
        let again: Vec<(String, u64)> = longer.iter().map(|&i| wanted[i].clone()).collect();
        for (i, start) in longer.into_iter().zip(backend.heads(&again)?) {
            starts[i] = start;
        }
    }
    let mut entries: Vec<RemoteEntry> = listed
        .into_iter()
        .zip(starts)
        .filter_map(|(object, start)| describe(object, &start))
        .collect();
    entries.sort_by(|a, b| (&a.function, &a.key).cmp(&(&b.function, &b.key)));
    Ok(entries)
}

/// The objects under one function's directory name, or all.
fn objects(backend: &dyn Backend, function: Option<&str>) -> Result<Vec<Listed>, RemoteError> {
    let prefix = match function {
        Some(function) => format!("{function}/"),
        None => String::new(),
    };
    backend.list(&prefix)
}

/// The length of the header that `start` begins, when it is longer than `start` and fits
/// in the object.
fn longer_header(start: &[u8], size: u64) -> Option<u64> {
    let len = entry::declared_header_len(start)? as u64;
    (len > start.len() as u64 && len <= size.min(MOST_HEADER)).then_some(len)
}

/// The entry an object holds, as far as its start tells (`None` for an object whose name
/// is not `<function dir>/<key hex>`).
fn describe(object: Listed, start: &[u8]) -> Option<RemoteEntry> {
    let (function, key) = object.name.split_once('/')?;
    let header = entry::parse_header(start).ok().map(|parsed| parsed.header);
    Some(RemoteEntry {
        function: function.to_owned(),
        key: key.to_owned(),
        size: object.size,
        created: header
            .as_ref()
            .and_then(|h| UNIX_EPOCH.checked_add(Duration::from_millis(h.created_ms))),
        modified: object.modified,
        version: header.map(|h| h.code_hash),
    })
}

/// A read-only cache changes nothing, the remote included.
fn refuse_if_read_only(what: &str) -> Result<(), RemoteError> {
    if crate::config::config().read_only {
        return Err(RemoteError::BadSetting(format!(
            "the cache is read-only (FILE_CACHE_READONLY is set): the remote tier is not {what}"
        )));
    }
    Ok(())
}

/// Deletes the remote entries of one function (its directory name) or of all; returns
/// how many there were. A read-only cache (`FILE_CACHE_READONLY=1`) refuses, saying so.
pub fn clear(function: Option<&str>) -> Result<usize, RemoteError> {
    let tier = tier().ok_or(RemoteError::NotConfigured)?;
    refuse_if_read_only("cleared")?;
    let backend = tier.admin()?;
    let names: Vec<String> = objects(backend, function)?
        .into_iter()
        .filter(|object| object.name.contains('/'))
        .map(|object| object.name)
        .collect();
    backend.delete(&names)?;
    Ok(names.len())
}

/// Which remote entries [`prune`] removes: those older than an age, those of another
/// version of their function than its current one, or both.
///
/// ```no_run
/// # #[cfg(feature = "remote")] {
/// use file_cache::remote::{self, Prune};
/// use std::time::Duration;
/// let removed = remote::prune(&Prune::new().older_than(Duration::from_secs(30 * 86_400)).stale())?;
/// println!("removed {} remote entries", removed.len());
/// # }
/// # Ok::<(), file_cache::remote::RemoteError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Prune {
    older_than: Option<Duration>,
    stale: bool,
    dry_run: bool,
    versions_from: Option<PathBuf>,
}

impl Prune {
    /// Criteria that remove nothing yet.
    pub fn new() -> Prune {
        Prune::default()
    }

    /// Removes entries created longer ago than `age` (by the time their header records;
    /// for an object without a readable header, the time the store wrote it, when it says).
    pub fn older_than(mut self, age: Duration) -> Prune {
        self.older_than = Some(age);
        self
    }

    /// Removes entries written by another version of their function's code than its
    /// current one, which no call of that version can hit. The current version is the one
    /// the local root's version record names (the version that last ran on this machine,
    /// under [`versions_from`](Prune::versions_from)'s root), or else that of the
    /// function's newest remote entry. Run it where the code whose entries should stay last
    /// ran (CI, after the main branch's tests): for it, the entries of other branches'
    /// versions are stale too.
    pub fn stale(mut self) -> Prune {
        self.stale = true;
        self
    }

    /// The local root whose version records name the functions' current versions
    /// (default: the cache root, `FILE_CACHE_DIR`).
    pub fn versions_from(mut self, root: impl Into<PathBuf>) -> Prune {
        self.versions_from = Some(root.into());
        self
    }

    /// Decides what would be removed, and removes nothing.
    pub fn dry_run(mut self) -> Prune {
        self.dry_run = true;
        self
    }

    /// Of `entries` (a [`list`]), those these criteria remove, with why: what [`prune`]
    /// decides, without asking the remote anything (only the local version records are
    /// read). For a listing that marks stale entries, say.
    pub fn select(&self, entries: Vec<RemoteEntry>) -> Vec<(RemoteEntry, PruneReason)> {
        let root = self
            .versions_from
            .clone()
            .unwrap_or_else(|| crate::config::config().root.clone());
        let recorded =
            |function: &str| recorded_version(&root.join(function).join(CURRENT_VERSION));
        choose(entries, self, SystemTime::now(), recorded)
    }
}

/// Why [`prune`] removes an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PruneReason {
    /// Older than [`Prune::older_than`].
    Old,
    /// Of another version than its function's current one ([`Prune::stale`]).
    Stale,
}

/// Removes the remote entries `criteria` choose (none when it sets no criterion); returns
/// them with why, or, for a dry run, what it would remove. A read-only cache
/// (`FILE_CACHE_READONLY=1`) refuses, saying so, unless it is a dry run.
pub fn prune(criteria: &Prune) -> Result<Vec<(RemoteEntry, PruneReason)>, RemoteError> {
    let tier = tier().ok_or(RemoteError::NotConfigured)?;
    if !criteria.dry_run {
        refuse_if_read_only("pruned")?;
    }
    if criteria.older_than.is_none() && !criteria.stale {
        return Ok(Vec::new());
    }
    let doomed = criteria.select(list(None)?);
    if !criteria.dry_run {
        let names: Vec<String> = doomed.iter().map(|(entry, _)| entry.name()).collect();
        tier.admin()?.delete(&names)?;
    }
    Ok(doomed)
}

/// The entries `criteria` remove at `now`; `recorded` is a function's recorded current
/// version.
fn choose(
    entries: Vec<RemoteEntry>,
    criteria: &Prune,
    now: SystemTime,
    recorded: impl Fn(&str) -> Option<[u8; 32]>,
) -> Vec<(RemoteEntry, PruneReason)> {
    let mut current: BTreeMap<&str, Option<[u8; 32]>> = BTreeMap::new();
    if criteria.stale {
        for entry in &entries {
            current
                .entry(entry.function.as_str())
                .or_insert_with(|| recorded(&entry.function).or_else(|| newest(&entries, entry)));
        }
    }
    let mut doomed = Vec::new();
    for entry in &entries {
        let old = criteria
            .older_than
            .is_some_and(|most| entry.age(now).is_some_and(|age| age > most));
        let stale = criteria.stale
            && matches!(
                (entry.version, current.get(entry.function.as_str())),
                (Some(version), Some(Some(current))) if version != *current
            );
        if old {
            doomed.push((entry.clone(), PruneReason::Old));
        } else if stale {
            doomed.push((entry.clone(), PruneReason::Stale));
        }
    }
    doomed
}

/// The version of the newest entry (by creation time) of `of`'s function.
fn newest(entries: &[RemoteEntry], of: &RemoteEntry) -> Option<[u8; 32]> {
    entries
        .iter()
        .filter(|e| e.function == of.function && e.version.is_some())
        .max_by_key(|e| e.created)
        .and_then(|e| e.version)
}

impl Tier {
    /// The same store with [`ADMIN_TIMEOUT`], opened on first use.
    fn admin(&self) -> Result<&dyn Backend, RemoteError> {
        let timeout = ADMIN_TIMEOUT.max(self.timeout());
        match self
            .admin
            .get_or_init(|| open_backend(&self.url, timeout, self.ca.as_deref(), self.ttl))
        {
            Ok(backend) => Ok(backend.as_ref()),
            Err(error) => Err(error.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(function: &str, key: u8, created_s_ago: Option<u64>, version: u8) -> RemoteEntry {
        RemoteEntry {
            function: function.to_owned(),
            key: format!("{key:02x}").repeat(32),
            size: 200,
            created: created_s_ago.map(|s| now() - Duration::from_secs(s)),
            modified: None,
            version: created_s_ago.map(|_| [version; 32]),
        }
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn chosen(entries: &[RemoteEntry], criteria: &Prune, recorded: &[(&str, u8)]) -> Vec<String> {
        let recorded = |function: &str| {
            recorded
                .iter()
                .find(|(f, _)| *f == function)
                .map(|(_, v)| [*v; 32])
        };
        choose(entries.to_vec(), criteria, now(), recorded)
            .into_iter()
            .map(|(e, why)| format!("{}/{} {why:?}", e.function, &e.key[..2]))
            .collect()
    }

    #[test]
    fn old_entries_go_by_their_creation_time_else_their_write_time() {
        let day = 86_400;
        let mut written = entry("f", 4, None, 0);
        written.modified = Some(now() - Duration::from_secs(3 * day));
        let entries = [
            entry("f", 1, Some(2 * day), 1),
            entry("f", 2, Some(day / 2), 1),
            entry("f", 3, None, 0),
            written,
        ];
        let criteria = Prune::new().older_than(Duration::from_secs(day));
        assert_eq!(chosen(&entries, &criteria, &[]), ["f/01 Old", "f/04 Old"]);
        assert!(chosen(&entries, &Prune::new(), &[]).is_empty());
    }

    #[test]
    fn stale_is_against_the_recorded_version_else_the_newest_entry() {
        let entries = [
            entry("f", 1, Some(300), 1),
            entry("f", 2, Some(200), 2),
            entry("f", 3, Some(100), 3),
            entry("f", 4, None, 0),
            entry("g", 5, Some(50), 7),
            entry("g", 6, Some(10), 8),
        ];
        let stale = Prune::new().stale();
        // f: no record, its newest entry is version 3; g: recorded as 7.
        assert_eq!(
            chosen(&entries, &stale, &[("g", 7)]),
            ["f/01 Stale", "f/02 Stale", "g/06 Stale"]
        );
        // Old wins over stale; an entry without a header is neither.
        let both = Prune::new().stale().older_than(Duration::from_secs(250));
        assert_eq!(
            chosen(&entries, &both, &[("g", 7)]),
            ["f/01 Old", "f/02 Stale", "g/06 Stale"]
        );
    }

    #[test]
    fn a_header_longer_than_the_guess_is_read_again() {
        let long_name = "T".repeat(5000);
        let header = entry::samples::header(&long_name);
        let mut object = header.encode(b"payload").unwrap();
        object.extend_from_slice(b"payload");
        let size = object.len() as u64;
        let start = &object[..HEAD_GUESS as usize];
        let len = longer_header(start, size).expect("longer than the guess");
        assert_eq!(len, size - 7);
        let listed = |size| Listed {
            name: format!("f/{}", "01".repeat(32)),
            size,
            modified: None,
        };
        let described = describe(listed(size), &object[..len as usize]).unwrap();
        assert_eq!(described.version, Some(header.code_hash));
        assert_eq!(
            described.created,
            Some(UNIX_EPOCH + Duration::from_millis(header.created_ms))
        );
        assert_eq!(longer_header(&object[..len as usize], size), None);
        // Not an entry: no age, no version, still listed.
        let junk = describe(listed(4), b"junk").unwrap();
        assert_eq!((junk.created, junk.version), (None, None));
        assert!(describe(
            Listed {
                name: "nokey".into(),
                size: 1,
                modified: None
            },
            b""
        )
        .is_none());
    }
}
