//! Storing a computed value: encoding it with the function's codec (switching codec when
//! a value does not round-trip), writing the entry file, and the bookkeeping of a store
//! (stats, size bound, version record, memory tier, remote upload). Problems are logged,
//! never returned.

use super::builder::CallKey;
use super::check::unix_millis;
use super::tiers::{entry_path, memory_of, note_version, warn_write_failure};
use crate::codec::{self, Codec};
use crate::disk::lock::EntryLock;
use crate::disk::root::{Access, Root};
use crate::disk::{gate, size_limit, write};
use crate::entry::{EntryError, Header};
use crate::memory::{self};
use crate::site::{root_of, Problem, Site};
use crate::stats;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Writes the entry of `key` exactly as a miss would, without looking anything up.
/// Benchmarks fill a cache with it (a million entries without a million calls).
#[doc(hidden)]
pub fn write_entry<T: Serialize + DeserializeOwned>(site: &'static Site, key: CallKey, value: &T) {
    let path = entry_path(site, &key);
    store(
        site,
        root_of(site),
        &key,
        &path,
        value,
        &[],
        Duration::ZERO,
        None,
    );
}

/// Encodes and writes the entry, with the `dependencies` its body recorded (encoded),
/// through the entry's `lock` when this call holds it; problems are logged, never
/// returned. Returns the encoded value and its codec's id unless it cannot be cached at
/// all.
#[allow(clippy::too_many_arguments)]
pub(super) fn store<T>(
    site: &'static Site,
    root: &Root,
    key: &CallKey,
    path: &Path,
    value: &T,
    dependencies: &[u8],
    took: Duration,
    lock: Option<&mut EntryLock>,
) -> Option<(u8, Vec<u8>)>
where
    T: Serialize + DeserializeOwned,
{
    let type_name = std::any::type_name::<T>();
    let (codec, payload) = encode_value(site, value)?;
    let compute_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    let header = Header {
        codec: codec.id(),
        key: *key.key.as_bytes(),
        code_hash: site.info.code_hash,
        layout: site.fingerprint::<T>(),
        created_ms: unix_millis(),
        compute_us,
        type_name,
        dependencies,
    };
    let header = match header.encode(&payload) {
        Ok(header) => header,
        Err(error @ EntryError::DependenciesTooLong(_)) => {
            // This call's only: an entry without them would be a stale hit later.
            site.warn_once(Problem::Encode, || {
                format!(
                    "{}: a call declared more dependencies than an entry records ({error}); \
                     its result is not stored",
                    site.display_name()
                )
            });
            return Some((codec.id(), payload));
        }
        Err(error) => {
            refuse::<T>(site, error.to_string());
            return None;
        }
    };
    if root.access() != Access::ReadWrite {
        // An unwritable root was said once, when it was checked; a read-only cache counts
        // what it did not store.
        if let Some(why) = gate::refusal(path) {
            stats::record_not_stored(site, &why);
        }
        return Some((codec.id(), payload));
    }
    let len = (header.len() + payload.len()) as u64;
    if !size_limit::admit(path, len) {
        return Some((codec.id(), payload));
    }
    site.state
        .entry_len
        .store(header.len() + payload.len(), Ordering::Relaxed);
    let parts: [&[u8]; 2] = [&header, &payload];
    let written = match lock {
        Some(lock) => write::write_locked(lock, path, &parts),
        None => write::write_atomic(path, &parts),
    };
    match written {
        Ok(()) => {
            log::debug!("file_cache: stored {}", site.display_name());
            stats::record_store(site, len);
            size_limit::stored(path, len);
            note_version(site, path, true);
            if let Some(memory) = memory_of(site) {
                stats::note_dir(site, path);
                let meta = memory::Meta {
                    compute_us,
                    file_len: len,
                    codec: codec.id(),
                    dependencies_len: dependencies.len(),
                };
                if dependencies.is_empty() {
                    memory.insert(key.key.as_bytes(), &payload, meta);
                } else {
                    memory.insert(key.key.as_bytes(), &[dependencies, &payload].concat(), meta);
                }
            }
        }
        Err(error) => warn_write_failure(site, path, &error),
    }
    crate::remote::store(path, &[&header, &payload]);
    Some((codec.id(), payload))
}

/// Encodes a value with the site's codec, and checks that it round-trips; a value that
/// does not is encoded with the other codec. A value postcard cannot hold is so stored as
/// MessagePack, and the site stores with MessagePack from then on. `None` when this value
/// cannot be stored (its own `Serialize` failed: logged) or no codec holds it (the site is
/// then marked uncacheable).
pub(super) fn encode_value<T>(site: &'static Site, value: &T) -> Option<(Codec, Vec<u8>)>
where
    T: Serialize + DeserializeOwned,
{
    let first = site.codec();
    let first_failed = match encode_checked(site, first, value)? {
        Ok(payload) => return Some((first, payload)),
        Err(reason) => reason,
    };
    let other = match first {
        Codec::Postcard => Codec::MessagePack,
        Codec::MessagePack => Codec::Postcard,
    };
    match encode_checked(site, other, value)? {
        Ok(payload) => {
            if other == Codec::MessagePack {
                site.switch_codec(other);
                log::debug!(
                    "file_cache: {}: values of type `{}` do not round-trip through postcard \
                     ({first_failed}); stored as {} from now on",
                    site.display_name(),
                    std::any::type_name::<T>(),
                    other.name()
                );
            }
            Some((other, payload))
        }
        Err(reason) => {
            refuse::<T>(
                site,
                format!(
                    "{}: {first_failed}; {}: {reason}",
                    first.name(),
                    other.name()
                ),
            );
            None
        }
    }
}

/// Encodes `value` with `codec` and checks that it round-trips: `Ok(Ok(payload))`,
/// `Ok(Err(why))` when `codec` cannot hold it, `None` (logged) when the value's own
/// `Serialize` impl failed.
pub(super) fn encode_checked<T>(
    site: &'static Site,
    codec: Codec,
    value: &T,
) -> Option<Result<Vec<u8>, String>>
where
    T: Serialize + DeserializeOwned,
{
    let payload = match codec::encode_with(codec, value) {
        Ok(payload) => payload,
        Err(error) => match codec::own_error(value) {
            // This value only: the function's other values may well serialize.
            Some(own) => {
                site.warn_once(Problem::Encode, || {
                    format!(
                        "{}: a value of type `{}` cannot be serialized ({own}); that call's \
                         result is not stored, the function's other results still are",
                        site.display_name(),
                        std::any::type_name::<T>()
                    )
                });
                return None;
            }
            None => return Some(Err(format!("it does not encode: {error}"))),
        },
    };
    Some(codec::round_trips(codec, value, &payload).map(|()| payload))
}

/// Marks the site as one whose values of type `T` cannot be cached, for `reason`, and says
/// so once.
pub(super) fn refuse<T: ?Sized>(site: &'static Site, reason: String) {
    let message = format!(
        "{}: values of type `{}` cannot be cached ({reason}); no codec gives back the value \
         that was stored (do its `Serialize` and `Deserialize` agree?). The function keeps \
         working, uncached",
        site.display_name(),
        std::any::type_name::<T>()
    );
    site.set_uncacheable(reason, || message);
}
