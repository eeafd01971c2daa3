//! Each tier's read for one key, and its bookkeeping: the memory tier's payload
//! ([`memory_hit`]), the entry file ([`disk_hit`], with its fast path for flat vectors) and
//! the remote tier ([`remote_hit`], written back to the file); what a hit counts and keeps
//! in memory; where a key's entry lives. The order of the tiers is not here: it is
//! [`super::lookup`]'s, written once.

use super::builder::CallKey;
#[cfg(unix)]
use super::check::check_header;
use super::check::{decode_entry_from, dependencies_hold, is_expired};

#[cfg(unix)]
use crate::codec::flat;
use crate::codec::{self, Codec};
use crate::config::{config, Mode};
use crate::dependencies;
use crate::disk::root::Access;
use crate::disk::{later, size_limit};
use crate::disk::{paths, read, versions};
use crate::entry::{self};
#[cfg(unix)]
use crate::fingerprint::Fingerprint;
use crate::memory::{self, Memory};
use crate::remote::{self, Fetched};
use crate::site::{root_of, Problem, Site};
use crate::stats;
use crate::verified::FileId;
use serde::de::DeserializeOwned;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
pub(crate) fn entry_path(site: &'static Site, key: &CallKey) -> PathBuf {
    let dir = |self_ty| {
        let name = paths::function_dir_name(site.info.module_path, self_ty, site.info.name);
        site.root().join(name)
    };
    match key.self_ty {
        // A method's directory depends on `Self`, which may differ between calls.
        Some(ty) => paths::entry_path(&dir(Some(ty)), &key.key),
        // Built once; every hit runs this.
        None => paths::entry_path(site.state.dir.get_or_init(|| dir(None)), &key.key),
    }
}

/// The memory tier, when it is on for this function and this call reads the cache.
/// (`refresh` skips reading it; its store replaces the entry.)
#[inline]
pub(super) fn memory_of(site: &'static Site) -> Option<&'static Memory> {
    // Expiry is decided from the file's creation time: a `ttl` function reads the file.
    if !site.info.memory || site.info.ttl.is_some() {
        return None;
    }
    memory::global()
}

/// Decodes the payload the memory tier holds for the key, as a file hit decodes its file.
#[inline]
pub(super) fn memory_hit<T: DeserializeOwned>(
    site: &'static Site,
    memory: &Memory,
    key: &CallKey,
) -> Option<T> {
    if config().mode == Mode::Refresh {
        return None;
    }
    let (bytes, meta) = memory.get(key.key.as_bytes())?;
    let (recorded, payload) = bytes.split_at(meta.dependencies_len.min(bytes.len()));
    if !dependencies_hold(site, recorded) {
        memory.remove(key.key.as_bytes());
        return None;
    }
    let decoded = match Codec::from_id(meta.codec) {
        Some(codec) => codec::decode_with(codec, payload),
        None => Err(codec::Error::unknown(meta.codec)),
    };
    match decoded {
        Ok(value) => {
            log::debug!("file_cache: memory hit {}", site.display_name());
            dependencies::inherit(recorded);
            // Counted like a file hit; the function's directory was noted when the entry
            // came into memory (the empty path notes nothing).
            stats::record_hit(site, Path::new(""), meta.file_len, meta.compute_us);
            if size_limit::is_bounded() {
                // Under a size bound a hit keeps its file recent, from memory too.
                size_limit::touch(&entry_path(site, key), key.key.as_bytes());
            }
            Some(value)
        }
        Err(_) => {
            // Bytes it held decoded once; another type under the same key cannot happen
            // (the key covers the function and its generic types), but stay safe.
            memory.remove(key.key.as_bytes());
            None
        }
    }
}

/// Reads, checks and decodes the entry, and keeps its payload in `memory`; `None` (logged)
/// for a miss of any kind.
pub(super) fn disk_hit<T: DeserializeOwned>(
    site: &'static Site,
    key: &CallKey,
    path: &Path,
    memory: Option<&Memory>,
) -> Option<T> {
    if config().mode == Mode::Refresh {
        log::debug!("file_cache: refresh {}", site.display_name());
        return None;
    }
    let guess = site.state.entry_len.load(Ordering::Relaxed);
    // A fresh process knows no size yet (0): the entry may be large, so a vector of numbers
    // takes the path whose first read is a `stat` too.
    // (Only postcard stores a flat vector as its elements' bytes.)
    #[cfg(unix)]
    if (guess == 0 || guess > read::SMALL_READ) && site.codec() == Codec::Postcard {
        if let Some(kind) = flat::kind::<T>() {
            // A large vector of numbers, read straight into its memory.
            let layout = site.fingerprint::<T>();
            let found = flat::with_element!(kind, E => {
                lookup_flat::<E>(site, key, path, memory, &layout, std::any::type_name::<T>())
                    .map(flat::into_value::<T, E>)
            });
            return match found {
                Found::Hit(value) => Some(value),
                Found::Miss => None,
                Found::Whole(bytes, file_id) => {
                    lookup_bytes(site, key, path, memory, &bytes, file_id)
                }
            };
        }
    }
    let (bytes, file_id) = match read::read_with_id(path, guess) {
        Ok(Some(read)) => read,
        Ok(None) => {
            log::debug!("file_cache: miss {}", site.display_name());
            return None;
        }
        Err(error) => {
            warn_read_failure(site, path, &error);
            return None;
        }
    };
    lookup_bytes(site, key, path, memory, &bytes, file_id)
}

/// [`disk_hit`] once the entry's bytes are read (from the file `file_id`).
pub(super) fn lookup_bytes<T: DeserializeOwned>(
    site: &'static Site,
    key: &CallKey,
    path: &Path,
    memory: Option<&Memory>,
    bytes: &[u8],
    file_id: Option<FileId>,
) -> Option<T> {
    note_entry_len(site, bytes.len());
    if is_expired(site, bytes) {
        log::debug!("file_cache: expired {}", site.display_name());
        return None;
    }
    match decode_entry_from(bytes, file_id, key, &site.fingerprint::<T>()) {
        Ok((value, recorded)) => {
            if !dependencies_hold(site, recorded) {
                return None;
            }
            dependencies::inherit(recorded);
            let mut meta = note_hit(site, key, path, bytes, bytes.len() as u64);
            meta.dependencies_len = recorded.len();
            let payload = entry::payload(bytes);
            keep_in_memory(memory, key, meta, recorded.len() + payload.len(), || {
                if recorded.is_empty() {
                    Cow::Borrowed(payload)
                } else {
                    Cow::Owned([recorded, payload].concat())
                }
            });
            Some(value)
        }
        Err(reason) => {
            warn_bad_entry(site, path, &reason);
            None
        }
    }
}

/// What a lookup of a flat vector found.
#[cfg(unix)]
pub(super) enum Found<V> {
    Hit(V),
    Miss,
    /// The entry, read whole: not the flat vector expected (the usual checks say why).
    Whole(Vec<u8>, Option<FileId>),
}

#[cfg(unix)]
impl<V> Found<V> {
    fn map<W>(self, f: impl FnOnce(V) -> W) -> Found<W> {
        match self {
            Found::Hit(value) => Found::Hit(f(value)),
            Found::Miss => Found::Miss,
            Found::Whole(bytes, id) => Found::Whole(bytes, id),
        }
    }
}

/// [`disk_hit`] for a value of type `type_name` that is a `Vec<E>` (see `codec::flat`): the
/// same checks, on an entry read in two parts, and the same bookkeeping.
#[cfg(unix)]
pub(super) fn lookup_flat<E: flat::Element>(
    site: &'static Site,
    key: &CallKey,
    path: &Path,
    memory: Option<&Memory>,
    layout: &Fingerprint,
    type_name: &str,
) -> Found<Vec<E>> {
    let header_len = entry::header_len(type_name);
    let (head, values, file_id) = match read::read_flat::<E>(path, header_len) {
        Ok(Some(read::FlatRead::Split { head, values, id })) => (head, values, id),
        Ok(Some(read::FlatRead::Whole(bytes, id))) => return Found::Whole(bytes, id),
        Ok(None) => {
            log::debug!("file_cache: miss {}", site.display_name());
            return Found::Miss;
        }
        Err(error) => {
            warn_read_failure(site, path, &error);
            return Found::Miss;
        }
    };
    let elements = flat::bytes_of(&values);
    if entry::peek_codec(&head) != Some(codec::POSTCARD) {
        // Another codec's entry: its payload is not the elements' bytes.
        return Found::Whole([&head[..], elements].concat(), file_id);
    }
    note_entry_len(site, head.len() + elements.len());
    if is_expired(site, &head) {
        log::debug!("file_cache: expired {}", site.display_name());
        return Found::Miss;
    }
    let checked = entry::parse_parts(&head, elements, file_id)
        .map_err(|e| e.to_string())
        .and_then(|header| check_header(&header, key, layout, type_name))
        .and_then(|_postcard| match flat::take_varint(&head[header_len..]) {
            Some((count, _)) if count == values.len() as u64 => Ok(()),
            _ => Err("its value does not decode: a length that does not fit".to_owned()),
        });
    match checked {
        Ok(()) => {
            log::debug!(
                "file_cache: {} read straight into a `{type_name}`",
                site.display_name()
            );
            let meta = note_hit(site, key, path, &head, (head.len() + elements.len()) as u64);
            let payload_len = head.len() - header_len + elements.len();
            keep_in_memory(memory, key, meta, payload_len, || {
                Cow::Owned([&head[header_len..], elements].concat())
            });
            Found::Hit(values)
        }
        Err(reason) => {
            warn_bad_entry(site, path, &reason);
            Found::Miss
        }
    }
}

/// Remembers the length of the entry last read, the next read's first guess.
pub(super) fn note_entry_len(site: &Site, len: usize) {
    if site.state.entry_len.load(Ordering::Relaxed) != len {
        site.state.entry_len.store(len, Ordering::Relaxed);
    }
}

/// The bookkeeping of a file hit: stats and the size bound's recency. `head` starts the
/// entry, which is `file_len` bytes long. Returns what the memory tier records with it.
pub(super) fn note_hit(
    site: &'static Site,
    key: &CallKey,
    path: &Path,
    head: &[u8],
    file_len: u64,
) -> memory::Meta {
    log::debug!("file_cache: hit {}", site.display_name());
    let saved_us = entry::peek_times(head).map_or(0, |(_, compute_us)| compute_us);
    stats::record_hit(site, path, file_len, saved_us);
    size_limit::touch(path, key.key.as_bytes());
    memory::Meta {
        compute_us: saved_us,
        file_len,
        codec: entry::peek_codec(head).unwrap_or(0),
        dependencies_len: 0,
    }
}

/// Keeps a file hit's payload of `len` bytes in `memory`, built by `payload` only when
/// the tier keeps payloads that big (a bigger one drops what the tier held for the key).
pub(super) fn keep_in_memory<'a>(
    memory: Option<&Memory>,
    key: &CallKey,
    meta: memory::Meta,
    len: usize,
    payload: impl FnOnce() -> Cow<'a, [u8]>,
) {
    if let Some(memory) = memory {
        if memory.keeps(len) {
            memory.insert(key.key.as_bytes(), &payload(), meta);
        } else {
            memory.remove(key.key.as_bytes());
        }
    }
}

pub(super) fn warn_read_failure(site: &Site, path: &Path, error: &io::Error) {
    site.warn_once(Problem::Read, || {
        format!(
            "{}: cannot read {} ({error}); calling without the cache",
            site.display_name(),
            path.display()
        )
    });
}

pub(super) fn warn_bad_entry(site: &Site, path: &Path, reason: &str) {
    site.warn_once(Problem::BadEntry, || {
        format!(
            "{}: unusable entry {} ({reason}); recomputing and rewriting it",
            site.display_name(),
            path.display()
        )
    });
}

/// Records the site's code hash as its function's current version in the directory of the
/// entry at `path`: on a site's first lookup of the process, and on every store into a
/// directory not seen before (a method has one directory per `Self` type).
pub(super) fn note_version(site: &'static Site, path: &Path, storing: bool) {
    let first_lookup = !site.state.stats.version_noted.swap(true, Ordering::Relaxed);
    if first_lookup {
        stats::note_dir(site, path);
    }
    if !(first_lookup || storing) {
        return;
    }
    if let Some(dir) = paths::dir_of(path).and_then(paths::dir_of) {
        versions::note(dir, &site.info.code_hash, storing);
    }
}

/// The remote tier, asked after a local miss by the caller that would compute: its entry,
/// checked as a file's is, decoded, counted as a hit and kept in `memory`; `None` (logged)
/// for a miss of any kind. Returns the entry's bytes too, for [`keep_locally`].
pub(super) fn remote_hit<T: DeserializeOwned>(
    site: &'static Site,
    key: &CallKey,
    path: &Path,
    memory: Option<&Memory>,
) -> Option<(T, Vec<u8>)> {
    if config().mode == Mode::Refresh {
        return None;
    }
    let Some((value, entry, fetched_len)) = remote_entry(site, key, path) else {
        if remote::enabled() {
            stats::record_remote_miss(site);
        }
        return None;
    };
    log::debug!("file_cache: remote hit {}", site.display_name());
    // Checked whole already: the header alone says what the entry depends on.
    let recorded = entry::parse_header(&entry)
        .map(|parsed| parsed.header.dependencies)
        .unwrap_or_default();
    dependencies::inherit(recorded);
    let len = entry.len() as u64;
    let saved_us = entry::peek_times(&entry).map_or(0, |(_, compute_us)| compute_us);
    stats::record_hit(site, path, len, saved_us);
    stats::record_remote_hit(site, fetched_len);
    let meta = memory::Meta {
        compute_us: saved_us,
        file_len: len,
        codec: entry::peek_codec(&entry).unwrap_or(0),
        dependencies_len: recorded.len(),
    };
    let payload = entry::payload(&entry);
    keep_in_memory(memory, key, meta, recorded.len() + payload.len(), || {
        Cow::Owned([recorded, payload].concat())
    });
    Some((value, entry))
}

/// The remote's entry for `path`, checked (signature, expiry, header, recorded
/// dependencies) and decoded, with its bytes and the number of bytes fetched (see
/// [`remote::fetch`]); `None` (logged) for a miss of any kind.
pub(super) fn remote_entry<T: DeserializeOwned>(
    site: &'static Site,
    key: &CallKey,
    path: &Path,
) -> Option<(T, Vec<u8>, u64)> {
    let (name, fetched, fetched_len) = remote::fetch(path)?;
    let refuse = |reason: String| {
        site.warn_once(Problem::BadEntry, || {
            format!(
                "{}: unusable remote entry {name} ({reason}); recomputing it",
                site.display_name()
            )
        });
    };
    let entry = match fetched {
        Fetched::Entry(entry) => entry,
        Fetched::Refused(reason) => {
            refuse(reason);
            return None;
        }
    };
    if is_expired(site, &entry) {
        log::debug!("file_cache: expired remote entry {}", site.display_name());
        return None;
    }
    match decode_entry_from::<T>(&entry, None, key, &site.fingerprint::<T>()) {
        // Dependencies are paths as the body named them, checked on this machine.
        Ok((value, recorded)) => {
            dependencies_hold(site, recorded).then_some((value, entry, fetched_len))
        }
        Err(reason) => {
            refuse(reason);
            None
        }
    }
}

/// Entries of remote hits whose local copies wait to be written ([`keep_locally`]), by
/// the path they will have: a caller of this process that misses the file meanwhile reads
/// the entry here, as the file it will be, instead of asking the remote again.
struct Pending {
    entries: Mutex<HashMap<PathBuf, Arc<Vec<u8>>>>,
    /// How many: none on the path of a call that never met the remote.
    count: AtomicUsize,
}

fn pending() -> &'static Pending {
    static PENDING: OnceLock<Pending> = OnceLock::new();
    PENDING.get_or_init(|| Pending {
        entries: Mutex::new(HashMap::new()),
        count: AtomicUsize::new(0),
    })
}

fn pending_entries() -> MutexGuard<'static, HashMap<PathBuf, Arc<Vec<u8>>>> {
    pending()
        .entries
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// The entry of a remote hit whose local copy at `path` is not written yet, checked and
/// decoded as that file will be; `None` when there is none (or it does not do).
pub(super) fn pending_hit<T: DeserializeOwned>(
    site: &'static Site,
    key: &CallKey,
    path: &Path,
    memory: Option<&Memory>,
) -> Option<T> {
    if pending().count.load(Ordering::Relaxed) == 0 || config().mode == Mode::Refresh {
        return None;
    }
    let entry = pending_entries().get(path).cloned()?;
    log::debug!(
        "file_cache: {}: the local copy being written",
        site.display_name()
    );
    lookup_bytes(site, key, path, memory, &entry, None)
}

/// Writes a remote hit's entry to the local tier, within the size bound, off the caller's
/// path: the writer thread of [`later`] writes it (through the same atomic write as any
/// store) while the call returns; until then this process reads it from memory
/// ([`pending_hit`]). A crash before then loses only this local copy. Returns the entry.
pub(super) fn keep_locally(site: &'static Site, path: &Path, entry: Vec<u8>) -> Arc<Vec<u8>> {
    if root_of(site).access() != Access::ReadWrite {
        // A root that cannot be written was said once, when it was checked; a read-only
        // cache keeps nothing, in silence.
        log::debug!(
            "file_cache: {}: the remote hit is not kept under a read-only root",
            site.display_name()
        );
        return Arc::new(entry);
    }
    let path = path.to_path_buf();
    let entry = Arc::new(entry);
    let len = entry.len();
    if pending_entries()
        .insert(path.clone(), Arc::clone(&entry))
        .is_none()
    {
        pending().count.fetch_add(1, Ordering::Relaxed);
    }
    let job_entry = Arc::clone(&entry);
    later::run_later(len, move || {
        let entry = job_entry;
        let size = len as u64;
        if size_limit::admit(&path, size) {
            match crate::disk::write::write_atomic(&path, &[&entry]) {
                Ok(()) => size_limit::stored(&path, size),
                Err(error) => warn_write_failure(site, &path, &error),
            }
        }
        // Written (or not to be): the file answers from now on. A later hit's own copy for
        // the same path stays.
        let mut entries = pending_entries();
        if entries
            .get(&path)
            .is_some_and(|held| Arc::ptr_eq(held, &entry))
        {
            entries.remove(&path);
            pending().count.fetch_sub(1, Ordering::Relaxed);
        }
    });
    entry
}

/// A root that cannot be written usually fails every function alike: warn once per process.
pub(crate) fn warn_write_failure(site: &Site, path: &Path, error: &std::io::Error) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if crate::disk::gate::is_refusal(error) {
        // The cache is read-only: said when that was found.
        log::debug!(
            "file_cache: {}: not writing {} ({error})",
            site.display_name(),
            path.display()
        );
        return;
    }
    let message = format!(
        "file_cache: {}: cannot write {} ({error}); results are not being cached",
        site.display_name(),
        path.display()
    );
    if WARNED.swap(true, Ordering::Relaxed) {
        log::debug!("{message}");
    } else {
        log::warn!("{message}");
    }
}
