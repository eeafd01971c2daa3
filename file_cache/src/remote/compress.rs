//! Compression of the remote tier's objects: an entry whose payload is at least
//! [`MIN_PAYLOAD`] bytes is sent with its payload compressed (zstd), when that saves at
//! least an eighth of it; otherwise as it is. A compressed object is made plain again as it
//! is fetched, so the call path, the memory tier and the local copy of a remote hit only
//! ever see plain entries. The entry format owns the layout (`entry::compressed`); this
//! module owns the codec, its level and its limits.
//!
//! `FILE_CACHE_REMOTE_COMPRESS=off` sends every entry plain (a reader still reads
//! compressed ones).

use crate::entry::{self, EntryError};
use std::cell::RefCell;

/// The variable that turns compression of uploads off: `off` (or `0`, `false`, `no`).
pub const COMPRESS_VAR: &str = "FILE_CACHE_REMOTE_COMPRESS";

/// Smallest payload worth compressing: below it, the bytes saved are not worth a round of
/// zstd on each side.
pub(super) const MIN_PAYLOAD: usize = 4 << 10;

/// zstd's default level: several times smaller for text, at several hundred MB/s to
/// compress and over 1 GB/s to decompress.
const LEVEL: i32 = 3;

/// Largest payload compressed, and so the most a fetched object may decompress to: a
/// lying or damaged object costs at most this much memory, never more.
pub(super) const MAX_PLAIN: usize = 1 << 30;

/// Whether uploads are compressed, from [`COMPRESS_VAR`] (on unless it says off).
pub(super) fn enabled_by_env() -> bool {
    match std::env::var(COMPRESS_VAR) {
        Ok(value) => parse_setting(&value),
        Err(_) => true,
    }
}

fn parse_setting(value: &str) -> bool {
    match value.trim().to_ascii_lowercase().as_str() {
        "off" | "0" | "false" | "no" => false,
        "" | "on" | "1" | "true" | "yes" | "zstd" => true,
        _ => {
            log::warn!(
                "file_cache: ignoring {COMPRESS_VAR}={value:?}: expected `off` or `on`; \
                 compressing"
            );
            true
        }
    }
}

thread_local! {
    /// A context per thread (the upload thread's, a caller's with synchronous writes):
    /// zstd's state is a few hundred KiB, worth keeping between entries.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// The compressed form of the plain entry `entry`, when its payload is large enough and
/// compresses by at least an eighth; `None` to send it as it is (anything that is not a
/// plain entry included).
pub(super) fn compress(entry: &[u8]) -> Option<Vec<u8>> {
    let payload = entry::plain_payload(entry)?;
    if payload.len() < MIN_PAYLOAD || payload.len() > MAX_PLAIN {
        return None;
    }
    let most = payload.len() - payload.len() / 8;
    let mut out = Vec::new();
    out.try_reserve_exact(most).ok()?;
    let written = COMPRESSOR.with(|cell| {
        let mut cell = cell.try_borrow_mut().ok()?;
        if cell.is_none() {
            *cell = zstd::bulk::Compressor::new(LEVEL).ok();
        }
        // Too little room is an error: it did not save an eighth.
        cell.as_mut()?.compress_to_buffer(payload, &mut out).ok()
    })?;
    debug_assert_eq!(written, out.len());
    match entry::compressed(entry, &out) {
        Ok(object) => Some(object),
        Err(error) => {
            log::debug!("file_cache: not compressing an entry ({error})");
            None
        }
    }
}

/// The plain entry of a fetched compressed entry; an error for an object that is damaged,
/// truncated, or declares a plain payload it does not decompress to exactly (or one
/// larger than [`MAX_PLAIN`]).
pub(super) fn decompress(stored: &[u8]) -> Result<Vec<u8>, EntryError> {
    entry::decompressed(stored, |payload, plain_len| {
        if plain_len > MAX_PLAIN {
            return Err(format!(
                "it declares {plain_len} bytes, more than the {MAX_PLAIN} an entry may be"
            ));
        }
        let mut out = Vec::new();
        out.try_reserve_exact(plain_len)
            .map_err(|error| format!("{plain_len} bytes: {error}"))?;
        DECOMPRESSOR.with(|cell| {
            let mut cell = cell
                .try_borrow_mut()
                .map_err(|_| "its decompressor is busy".to_owned())?;
            if cell.is_none() {
                *cell = Some(zstd::bulk::Decompressor::new().map_err(|e| e.to_string())?);
            }
            let Some(decompressor) = cell.as_mut() else {
                return Err("no decompressor".to_owned());
            };
            // Into `out`'s capacity only: a stream that would produce more is an error.
            decompressor
                .decompress_to_buffer(payload, &mut out)
                .map_err(|error| error.to_string())
        })?;
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0u64;
        while out.len() < len {
            out.extend_from_slice(
                format!("{{\"id\":{i},\"name\":\"user {}\",\"ok\":true}},", i % 97).as_bytes(),
            );
            i += 1;
        }
        out.truncate(len);
        out
    }

    fn noise(len: usize) -> Vec<u8> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[test]
    fn a_large_compressible_payload_is_compressed_and_restored_exactly() {
        let plain = crate::entry::samples::entry(&text(256 << 10));
        let object = compress(&plain).expect("compressed");
        assert!(object.len() < plain.len() / 4, "{}", object.len());
        assert!(entry::peek_compressed(&object));
        assert!(entry::is_stored_entry(&object));
        // A compressed entry is not a plain one.
        assert_eq!(entry::parse(&object), Err(EntryError::Compressed));
        // Its header is readable as it is, and says what it is.
        let parsed = entry::parse_header(&object).unwrap();
        assert_eq!(parsed.header, entry::parse(&plain).unwrap().0);
        assert_eq!(parsed.plain.map(|p| p.len), Some(256 << 10));
        assert_eq!(
            entry::declared_len(&object),
            Some(object.len() as u64),
            "ranged reads size it right"
        );
        let restored = decompress(&object).unwrap();
        assert_eq!(restored, plain);
        assert!(!entry::peek_compressed(&restored));
    }

    #[test]
    fn small_incompressible_and_foreign_bytes_are_sent_as_they_are() {
        assert!(compress(&crate::entry::samples::entry(&text(MIN_PAYLOAD - 1))).is_none());
        assert!(compress(&crate::entry::samples::entry(&noise(256 << 10))).is_none());
        assert!(compress(b"not an entry").is_none());
        // Already compressed: not a plain entry.
        let object = compress(&crate::entry::samples::entry(&text(64 << 10))).unwrap();
        assert!(compress(&object).is_none());
    }

    #[test]
    fn every_flipped_byte_and_truncation_of_a_compressed_entry_is_refused() {
        let plain = crate::entry::samples::entry(&text(8 << 10));
        let object = compress(&plain).unwrap();
        for at in 0..object.len() {
            let mut damaged = object.clone();
            damaged[at] ^= 0x04;
            let restored = decompress(&damaged);
            // A flip can clear the flag: then it is refused as not compressed, and a
            // plain reader refuses it too.
            assert!(
                restored.as_ref().map_or(true, |e| entry::parse(e).is_err()),
                "flip at byte {at} passed"
            );
        }
        for len in 0..object.len() {
            assert!(decompress(&object[..len]).is_err(), "truncation to {len}");
        }
    }

    /// A compressed entry with `len` as its declared plain length, checksums made good.
    fn lying(object: &[u8], len: u64) -> Vec<u8> {
        let parsed = entry::parse_header(object).unwrap();
        let fields_at = parsed.len - 16 - 40;
        let mut out = object.to_vec();
        out[fields_at..fields_at + 8].copy_from_slice(&len.to_le_bytes());
        let sum = xxhash_rust::xxh3::xxh3_128(&out[..parsed.len - 16]).to_le_bytes();
        out[parsed.len - 16..parsed.len].copy_from_slice(&sum);
        assert!(entry::parse_header(&out).is_ok(), "a consistent header");
        out
    }

    #[test]
    fn a_lying_plain_length_is_refused_without_allocating_it() {
        let object = compress(&crate::entry::samples::entry(&text(64 << 10))).unwrap();
        // Shorter than the stream: the decompressor stops at the room it has.
        assert!(decompress(&lying(&object, 1000)).is_err());
        // Longer: what it produces is shorter than declared.
        assert!(decompress(&lying(&object, 65 << 10)).is_err());
        // A bomb's size: refused before any allocation.
        let error = decompress(&lying(&object, u64::MAX / 2)).unwrap_err();
        assert!(error.to_string().contains("bytes"), "{error}");
        let error = decompress(&lying(&object, MAX_PLAIN as u64 + 1)).unwrap_err();
        assert!(error.to_string().contains("more than"), "{error}");
    }

    #[test]
    fn a_stored_payload_that_is_not_zstd_is_refused() {
        // Good checksums over bytes zstd refuses.
        let plain = crate::entry::samples::entry(&text(8 << 10));
        let object = entry::compressed(&plain, b"certainly not a zstd frame").unwrap();
        let error = decompress(&object).unwrap_err();
        assert!(matches!(error, EntryError::Decompression(_)), "{error:?}");
    }

    #[test]
    fn the_setting_reads_off_and_on() {
        assert!(!parse_setting("off"));
        assert!(!parse_setting(" OFF "));
        assert!(!parse_setting("0"));
        assert!(parse_setting("on"));
        assert!(parse_setting("zstd"));
        assert!(parse_setting("sometimes"));
    }
}
