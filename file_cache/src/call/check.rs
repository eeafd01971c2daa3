//! Whether stored bytes are the entry a call asked for: the header's key, type, layout and
//! codec, its age against the function's `ttl`, the decoding of its payload, and whether
//! the files it recorded as dependencies still hold what they held. Any tier's bytes
//! (file, memory, remote) pass the same checks. It reads no entry file and counts nothing.

use super::builder::CallKey;
use crate::codec::{self, Codec};
use crate::entry::{self, Header};
use crate::fingerprint::Fingerprint;
use crate::site::Site;
use crate::verified::FileId;
use serde::de::DeserializeOwned;
use std::time::{SystemTime, UNIX_EPOCH};

/// The value of the entry in `bytes`, checked to be the one `key` asks for; the entry's
/// recorded dependencies are not checked (see [`decode_entry_from`]).
#[cfg(test)]
pub(crate) fn decode_entry<T: DeserializeOwned>(
    bytes: &[u8],
    key: &CallKey,
    layout: &Fingerprint,
) -> Result<T, String> {
    decode_entry_from(bytes, None, key, layout).map(|(value, _)| value)
}

/// The value of the entry in `bytes` (read from the file `id`, if any: see
/// [`entry::parse_from`]), checked to be the one `key` asks for, with the dependencies the
/// entry records (encoded), which the caller checks with [`dependencies_hold`].
pub(super) fn decode_entry_from<'b, T: DeserializeOwned>(
    bytes: &'b [u8],
    id: Option<FileId>,
    key: &CallKey,
    layout: &Fingerprint,
) -> Result<(T, &'b [u8]), String> {
    let (header, payload) = entry::parse_from(bytes, id).map_err(|e| e.to_string())?;
    let codec = check_header(&header, key, layout, std::any::type_name::<T>())?;
    let value = codec::decode_with(codec, payload)
        .map_err(|e| format!("its value does not decode: {e}"))?;
    Ok((value, header.dependencies))
}

/// Whether every file an entry recorded as a dependency (`dependencies`, encoded) still
/// holds what it held when the value was computed; one that changed makes the entry a
/// miss like any other, logged at debug level. One `stat` per unchanged file.
pub(super) fn dependencies_hold(site: &Site, dependencies: &[u8]) -> bool {
    if dependencies.is_empty() {
        return true;
    }
    match crate::dependencies::check(dependencies, site.digest_index()) {
        Ok(()) => true,
        Err(changed) => {
            log::debug!("file_cache: miss {} ({changed})", site.display_name());
            false
        }
    }
}

/// Whether a checked header is the entry of `key` for a value of type `expected` of
/// layout `layout`, in a codec this version reads: that codec.
pub(super) fn check_header(
    header: &Header<'_>,
    key: &CallKey,
    layout: &Fingerprint,
    expected: &str,
) -> Result<Codec, String> {
    if header.key != *key.key.as_bytes() {
        return Err("it holds another key".to_owned());
    }
    let Some(codec) = Codec::from_id(header.codec) else {
        return Err(format!("unknown codec {}", header.codec));
    };
    if header.type_name != expected {
        return Err(format!(
            "it holds a `{}`, not a `{expected}`",
            header.type_name
        ));
    }
    // postcard bytes carry no names: bytes of an older layout could decode, wrongly.
    if header.layout != *layout {
        return Err(format!(
            "the layout of `{expected}` changed since it was written"
        ));
    }
    Ok(codec)
}

/// Whether the entry in `bytes` is older than the site's `ttl`. Read from the header before
/// it is checked: a damaged time can only cause a miss, and the full check follows.
pub(crate) fn is_expired(site: &Site, bytes: &[u8]) -> bool {
    let Some(ttl) = site.info.ttl else {
        return false;
    };
    let Some((created_ms, _)) = entry::peek_times(bytes) else {
        return false;
    };
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let now = unix_millis();
    if created_ms > now.saturating_add(FUTURE_TOLERANCE_MS) {
        // Written by a clock that is ahead: its age cannot be known, and reading it as zero
        // would keep the entry fresh past its ttl by however far that clock was ahead.
        return true;
    }
    now.saturating_sub(created_ms) >= ttl_ms
}

/// How far in the future an entry's creation time may be (clocks of machines sharing a
/// remote tier, or a clock stepped back) before the entry counts as expired.
pub(super) const FUTURE_TOLERANCE_MS: u64 = 2_000;

/// Runs the whole decoder on untrusted bytes: [`entry::parse`], then the codec, as a few
/// value types of every shape, on the parsed payload and on the raw bytes (which, unlike a
/// mutated entry, reach the codec without a valid checksum). Returns how many decodes
/// succeeded. For the fuzz target and the decoder's property tests only.
#[doc(hidden)]
pub fn decode_untrusted(bytes: &[u8]) -> usize {
    let from_entry = match entry::parse(bytes) {
        Ok((_, payload)) => 1 + codec::decode_samples(payload),
        Err(_) => 0,
    };
    from_entry + codec::decode_samples(bytes)
}

pub(super) fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
