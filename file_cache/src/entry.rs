//! The on-disk entry format: a checked header followed by the encoded value. A leaf: it
//! owns the bytes of the format, and knows no codec, file or key type (a key is 32 bytes to
//! it).
//!
//! ```text
//! offset  size  field
//!      0     8  magic  b"FCACHE\r\n"
//!      8     2  format version (u16 LE)
//!     10     1  codec id
//!     11     1  flags: bit 0, the entry records dependencies; bit 1, the payload is
//!                compressed (both below); others zero
//!     12    32  key: the full digest the entry answers for
//!     44    32  code hash of the function version that wrote it
//!     76    16  layout fingerprint of the value type
//!     92     8  created at, milliseconds since the Unix epoch (u64 LE)
//!    100     8  time the body took to compute, microseconds (u64 LE)
//!    108     8  payload length (u64 LE)
//!    116    32  checksum of the payload: blake3
//!    148     2  type name length n (u16 LE)
//!    150     n  type name of the value (UTF-8)
//!  150+n    16  header checksum: XXH3-128 of bytes [0, 150+n) (u128 LE)
//!  166+n     …  payload: exactly `payload length` bytes, nothing after
//! ```
//!
//! An entry whose flags have bit 0 set records the files its body declared it read
//! (`depends_on`): 4 bytes of length `d` (u32 LE) and `d` bytes of dependencies follow
//! the type name, inside the checked header, and the header checksum follows them. The
//! dependencies are opaque here (the `dependencies` module owns their bytes). An entry
//! without them is byte for byte an entry of the layout above; a reader that predates the
//! flag finds the checksum where the length is, and so takes such an entry for a damaged
//! one: a miss, never a wrong value. A flag this version does not know is refused.
//!
//! An entry whose flags have bit 1 set holds its payload compressed with zstd: the remote
//! tier stores large payloads so (local files never are). Its header is the plain entry's,
//! uncompressed, with the payload length and checksum of the bytes stored (the compressed
//! payload), and 40 more bytes inside the checked header, after the dependencies if any:
//! the length (u64 LE) and blake3 checksum of the payload before compression. So the
//! header checksum covers them, the payload checksum covers what is stored, and the
//! plain entry rebuilt from the two ([`decompressed`]) is checked like any other: its
//! payload against the checksum it was written with. [`parse`] refuses a compressed
//! entry: its payload is not the value's bytes. A reader that predates the flag refuses it
//! as a flag it does not know: a miss.
//!
//! Every byte of a file is covered by a check: the header by its own checksum (so fields
//! a hit does not compare, like timestamps, still cannot be flipped silently), the payload
//! by its blake3 digest. Parsing never allocates: it borrows from the bytes read, and every
//! length field is compared with the bytes actually present before it is used.
//!
//! The checksums guard against accidents (a torn or lost write, a flipped bit), not against
//! someone who can write the cache directory (they could write any value with any
//! checksum). The payload's is blake3, as the entry format has promised since version 1.
//! The header's is XXH3-128: every hit checks it, and XXH3 checks a header of a few hundred
//! bytes in a few dozen instructions. Version 2 (never released) used XXH3-128 for the
//! payload too; version 1 used blake3 for both.

use crate::verified::{self, FileId};
use std::fmt;

/// First bytes of every entry file. The `\r\n` catches text-mode mangling.
pub(crate) const MAGIC: [u8; 8] = *b"FCACHE\r\n";
/// Version of the layout described in the module docs.
pub(crate) const FORMAT_VERSION: u16 = 3;

/// Flag: the header records dependencies after the type name.
const HAS_DEPENDENCIES: u8 = 1;
/// Flag: the payload is compressed (zstd); the header records the plain payload's length
/// and checksum after the dependencies.
const COMPRESSED: u8 = 2;
/// The flags this version reads.
const KNOWN_FLAGS: u8 = HAS_DEPENDENCIES | COMPRESSED;
/// Length of a compressed entry's fields: the plain payload's length and checksum.
const COMPRESSED_FIELDS_LEN: usize = 8 + PAYLOAD_SUM_LEN;
/// Where the flags sit in the fixed part.
const FLAGS_AT: usize = 11;
/// Where the payload checksum sits in the fixed part.
#[cfg(any(test, feature = "remote-redis", feature = "remote-s3"))]
const PAYLOAD_SUM_AT: usize = PAYLOAD_LEN_AT + 8;
/// Length of the dependencies' length field.
const DEPENDENCIES_LEN_LEN: usize = 4;
/// Most bytes of dependencies an entry records (a few hundred thousand paths).
pub(crate) const MAX_DEPENDENCIES_LEN: usize = 64 << 20;

const FIXED_LEN: usize = 150;
/// Where the payload length sits in the fixed part.
const PAYLOAD_LEN_AT: usize = 108;
const HEADER_SUM_LEN: usize = 16;

/// Everything an entry records besides its payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header<'a> {
    pub(crate) codec: u8,
    pub(crate) key: [u8; 32],
    pub(crate) code_hash: [u8; 32],
    pub(crate) layout: [u8; 16],
    pub(crate) created_ms: u64,
    pub(crate) compute_us: u64,
    pub(crate) type_name: &'a str,
    /// The files the value depends on, as the `dependencies` module encodes them; empty
    /// for none.
    pub(crate) dependencies: &'a [u8],
}

/// Why some bytes are not a valid entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EntryError {
    Truncated {
        len: usize,
    },
    BadMagic,
    UnsupportedVersion(u16),
    HeaderChecksum,
    TypeNameNotUtf8,
    PayloadLength {
        declared: u64,
        actual: usize,
    },
    PayloadChecksum,
    TypeNameTooLong(usize),
    UnknownFlags(u8),
    DependenciesTooLong(usize),
    /// A compressed entry, where a plain one is read (a local file, or [`parse`]).
    Compressed,
    /// A compressed entry that does not decompress to the payload its header declares.
    #[cfg(any(test, feature = "remote-redis", feature = "remote-s3"))]
    Decompression(String),
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryError::Truncated { len } => write!(f, "truncated entry ({len} bytes)"),
            EntryError::BadMagic => f.write_str("not a file_cache entry (bad magic)"),
            EntryError::UnsupportedVersion(v) => write!(f, "unsupported entry format version {v}"),
            EntryError::HeaderChecksum => f.write_str("header checksum mismatch"),
            EntryError::TypeNameNotUtf8 => f.write_str("type name is not UTF-8"),
            EntryError::PayloadLength { declared, actual } => write!(
                f,
                "payload length mismatch (header says {declared} bytes, file has {actual})"
            ),
            EntryError::PayloadChecksum => f.write_str("payload checksum mismatch"),
            EntryError::TypeNameTooLong(n) => write!(f, "type name of {n} bytes is too long"),
            EntryError::UnknownFlags(flags) => {
                write!(f, "flags {flags:#04x} this version does not know")
            }
            EntryError::DependenciesTooLong(n) => {
                write!(f, "dependencies of {n} bytes are too long")
            }
            EntryError::Compressed => f.write_str("a compressed entry where a plain one belongs"),
            #[cfg(any(test, feature = "remote-redis", feature = "remote-s3"))]
            EntryError::Decompression(why) => write!(f, "its payload does not decompress ({why})"),
        }
    }
}

impl std::error::Error for EntryError {}

impl Header<'_> {
    /// Serializes the header for `payload`; the file is these bytes followed by the payload.
    pub(crate) fn encode(&self, payload: &[u8]) -> Result<Vec<u8>, EntryError> {
        let name = self.type_name.as_bytes();
        let name_len =
            u16::try_from(name.len()).map_err(|_| EntryError::TypeNameTooLong(name.len()))?;
        let dependencies = self.dependencies;
        if dependencies.len() > MAX_DEPENDENCIES_LEN {
            return Err(EntryError::DependenciesTooLong(dependencies.len()));
        }
        let (flags, extra) = if dependencies.is_empty() {
            (0, 0)
        } else {
            (HAS_DEPENDENCIES, DEPENDENCIES_LEN_LEN + dependencies.len())
        };
        let mut out = Vec::with_capacity(FIXED_LEN + name.len() + extra + HEADER_SUM_LEN);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.push(self.codec);
        out.push(flags);
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.code_hash);
        out.extend_from_slice(&self.layout);
        out.extend_from_slice(&self.created_ms.to_le_bytes());
        out.extend_from_slice(&self.compute_us.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&payload_sum(payload));
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(name);
        if flags & HAS_DEPENDENCIES != 0 {
            out.extend_from_slice(&(dependencies.len() as u32).to_le_bytes());
            out.extend_from_slice(dependencies);
        }
        let sum = header_sum(&out);
        out.extend_from_slice(&sum);
        Ok(out)
    }
}

/// Length of the payload checksum.
const PAYLOAD_SUM_LEN: usize = 32;

fn payload_sum(payload: &[u8]) -> [u8; PAYLOAD_SUM_LEN] {
    crate::checksum::blake3(&[payload])
}

/// The whole file's length as its header declares it, from the first bytes of a file;
/// `None` until the fixed part is there. Unchecked: it only sizes a read, and [`parse`]
/// checks everything.
pub(crate) fn declared_len(start: &[u8]) -> Option<u64> {
    let fixed = start.get(..FIXED_LEN)?;
    let mut word = [0u8; 8];
    word.copy_from_slice(&fixed[PAYLOAD_LEN_AT..PAYLOAD_LEN_AT + 8]);
    let payload_len = u64::from_le_bytes(word);
    payload_len.checked_add(declared_header_len(start)? as u64)
}

/// Length of the header of an entry whose value's type is named `type_name` and that
/// records no dependencies.
#[cfg_attr(not(unix), allow(dead_code))] // for reading flat vectors, on Unix
pub(crate) fn header_len(type_name: &str) -> usize {
    FIXED_LEN + type_name.len() + HEADER_SUM_LEN
}

/// Length of the header that starts `start`, as its length fields say; `None` until the
/// fixed part is there (and, for an entry with dependencies, their length). Unchecked,
/// like [`declared_len`].
pub(crate) fn declared_header_len(start: &[u8]) -> Option<usize> {
    let fixed = start.get(..FIXED_LEN)?;
    let name_len = u16::from_le_bytes([fixed[FIXED_LEN - 2], fixed[FIXED_LEN - 1]]);
    let name_end = FIXED_LEN + usize::from(name_len);
    let dependencies = if fixed[FLAGS_AT] & HAS_DEPENDENCIES != 0 {
        let field = start.get(name_end..name_end + DEPENDENCIES_LEN_LEN)?;
        let len = u32::from_le_bytes(field.try_into().ok()?);
        DEPENDENCIES_LEN_LEN + usize::try_from(len).ok()?
    } else {
        0
    };
    let compressed = if fixed[FLAGS_AT] & COMPRESSED != 0 {
        COMPRESSED_FIELDS_LEN
    } else {
        0
    };
    (name_end + compressed + HEADER_SUM_LEN).checked_add(dependencies)
}

/// The payload of an entry [`parse`] accepted (empty for anything shorter than a header).
pub(crate) fn payload(entry: &[u8]) -> &[u8] {
    declared_header_len(entry)
        .and_then(|len| entry.get(len..))
        .unwrap_or(&[])
}

fn header_sum(bytes: &[u8]) -> [u8; HEADER_SUM_LEN] {
    xxhash_rust::xxh3::xxh3_128(bytes).to_le_bytes()
}

/// A cursor over the fixed part of a header whose length was already checked.
struct Fields<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        out.copy_from_slice(&self.bytes[self.at..self.at + N]);
        self.at += N;
        out
    }
}

/// Creation time (ms since the epoch) and compute time (µs) of an entry, read from their
/// fixed offsets without checking anything: a cheap look before the full [`parse`], for
/// decisions (expiry) that a damaged header can only turn into a harmless miss.
pub(crate) fn peek_times(bytes: &[u8]) -> Option<(u64, u64)> {
    let created = bytes.get(92..100)?.try_into().ok()?;
    let compute = bytes.get(100..108)?.try_into().ok()?;
    Some((u64::from_le_bytes(created), u64::from_le_bytes(compute)))
}

/// The codec id of an entry, read from its fixed offset without checking anything (see
/// [`peek_times`]).
pub(crate) fn peek_codec(bytes: &[u8]) -> Option<u8> {
    bytes.get(10).copied()
}

/// Parses and checks a whole entry file; returns its header and payload.
///
/// Checks magic, version, the header checksum, the payload length against the bytes
/// present (no trailing bytes allowed) and the payload checksum. Comparing the key,
/// codec, type and layout against what the caller expects is the caller's job.
pub(crate) fn parse(bytes: &[u8]) -> Result<(Header<'_>, &[u8]), EntryError> {
    parse_from(bytes, None)
}

/// [`parse`], for bytes read from the file `id` (see the `verified` module): when this
/// process already verified that very file's payload against the checksum its header
/// declares, the payload is not hashed again; when it verifies it now, it remembers.
pub(crate) fn parse_from(
    bytes: &[u8],
    id: Option<FileId>,
) -> Result<(Header<'_>, &[u8]), EntryError> {
    let parsed = parse_plain_header(bytes)?;
    let payload = &bytes[parsed.len..];
    check_payload(&parsed, &[payload], id)?;
    Ok((parsed.header, payload))
}

/// [`parse_from`] for an entry read in two parts: `head`, the header and the start of the
/// payload, and `rest`, the rest of the payload. Returns the header.
#[cfg(unix)]
pub(crate) fn parse_parts<'a>(
    head: &'a [u8],
    rest: &[u8],
    id: Option<FileId>,
) -> Result<Header<'a>, EntryError> {
    let parsed = parse_plain_header(head)?;
    check_payload(&parsed, &[&head[parsed.len..], rest], id)?;
    Ok(parsed.header)
}

/// [`parse_header`], refusing a compressed entry: its payload is not the value's bytes.
fn parse_plain_header(bytes: &[u8]) -> Result<ParsedHeader<'_>, EntryError> {
    let parsed = parse_header(bytes)?;
    if parsed.plain.is_some() {
        return Err(EntryError::Compressed);
    }
    Ok(parsed)
}

/// Whether `bytes` are a whole entry, plain or compressed, whose checksums hold (the
/// payload's over the bytes stored). A compressed payload is not decompressed.
#[cfg(any(test, feature = "remote-redis", feature = "remote-s3"))]
pub(crate) fn is_stored_entry(bytes: &[u8]) -> bool {
    parse_header(bytes).is_ok_and(|parsed| {
        let payload = &bytes[parsed.len..];
        check_payload(&parsed, &[payload], None).is_ok()
    })
}

/// Whether the entry in `bytes` says its payload is compressed; read without checking
/// anything (see [`peek_times`]): [`decompressed`] checks it all.
#[cfg(any(test, feature = "remote-redis", feature = "remote-s3"))]
pub(crate) fn peek_compressed(bytes: &[u8]) -> bool {
    bytes
        .get(FLAGS_AT)
        .is_some_and(|flags| flags & COMPRESSED != 0)
}

/// The payload of the plain entry `entry`, for [`compressed`]; `None` for bytes that are
/// not a plain entry's header followed by exactly its payload's length.
#[cfg(any(test, feature = "remote-redis", feature = "remote-s3"))]
pub(crate) fn plain_payload(entry: &[u8]) -> Option<&[u8]> {
    let parsed = parse_plain_header(entry).ok()?;
    entry
        .get(parsed.len..)
        .filter(|payload| payload.len() as u64 == parsed.payload_len)
}

/// The compressed form of the plain entry `entry` (whose header [`plain_payload`]
/// accepted), with `payload` its payload compressed: the same header, flagged, declaring
/// the compressed payload's length and checksum and recording the plain payload's.
#[cfg(any(test, feature = "remote-redis", feature = "remote-s3"))]
pub(crate) fn compressed(entry: &[u8], payload: &[u8]) -> Result<Vec<u8>, EntryError> {
    let parsed = parse_plain_header(entry)?;
    let checked = &entry[..parsed.len - HEADER_SUM_LEN];
    let mut out =
        Vec::with_capacity(checked.len() + COMPRESSED_FIELDS_LEN + HEADER_SUM_LEN + payload.len());
    out.extend_from_slice(checked);
    out[FLAGS_AT] |= COMPRESSED;
    out[PAYLOAD_LEN_AT..PAYLOAD_LEN_AT + 8].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    out[PAYLOAD_SUM_AT..PAYLOAD_SUM_AT + PAYLOAD_SUM_LEN].copy_from_slice(&payload_sum(payload));
    out.extend_from_slice(&parsed.payload_len.to_le_bytes());
    out.extend_from_slice(&parsed.payload_sum);
    let sum = header_sum(&out);
    out.extend_from_slice(&sum);
    out.extend_from_slice(payload);
    Ok(out)
}

/// The plain entry of the compressed entry `stored`: its header and the checksum of what is
/// stored are checked, then `decompress` is given the stored payload and the plain
/// payload's length, which it must produce exactly (in no more memory than that). The
/// plain payload is not checked here: the entry returned is checked like any other
/// ([`parse`]), against the checksum its payload was written with.
#[cfg(any(test, feature = "remote-redis", feature = "remote-s3"))]
pub(crate) fn decompressed(
    stored: &[u8],
    decompress: impl FnOnce(&[u8], usize) -> Result<Vec<u8>, String>,
) -> Result<Vec<u8>, EntryError> {
    let parsed = parse_header(stored)?;
    let Some(plain) = parsed.plain else {
        return Err(EntryError::Decompression("it is not compressed".to_owned()));
    };
    let payload = &stored[parsed.len..];
    check_payload(&parsed, &[payload], None)?;
    let plain_len = usize::try_from(plain.len)
        .map_err(|_| EntryError::Decompression(format!("{} bytes", plain.len)))?;
    let value = decompress(payload, plain_len).map_err(EntryError::Decompression)?;
    if value.len() != plain_len {
        return Err(EntryError::PayloadLength {
            declared: plain.len,
            actual: value.len(),
        });
    }
    let fields_at = parsed.len - HEADER_SUM_LEN - COMPRESSED_FIELDS_LEN;
    let mut out = Vec::with_capacity(fields_at + HEADER_SUM_LEN + value.len());
    out.extend_from_slice(&stored[..fields_at]);
    out[FLAGS_AT] &= !COMPRESSED;
    out[PAYLOAD_LEN_AT..PAYLOAD_LEN_AT + 8].copy_from_slice(&plain.len.to_le_bytes());
    out[PAYLOAD_SUM_AT..PAYLOAD_SUM_AT + PAYLOAD_SUM_LEN].copy_from_slice(&plain.sum);
    let sum = header_sum(&out);
    out.extend_from_slice(&sum);
    out.extend_from_slice(&value);
    Ok(out)
}

/// Checks the payload, in `parts` that follow each other, against the length and the
/// checksum the header declares (the checksum once per settled large file: `verified`).
fn check_payload(
    parsed: &ParsedHeader<'_>,
    parts: &[&[u8]],
    id: Option<FileId>,
) -> Result<(), EntryError> {
    let len: usize = parts.iter().map(|part| part.len()).sum();
    if parsed.payload_len != len as u64 {
        return Err(EntryError::PayloadLength {
            declared: parsed.payload_len,
            actual: len,
        });
    }
    if id.is_some_and(|id| verified::is_verified(&id, &parsed.payload_sum)) {
        return Ok(());
    }
    if len >= verified::MIN_LEN {
        // Only large ones: a global counter written on every small hit would be a cache
        // line bouncing between the cores of threads that hit.
        verified::count_hash();
    }
    if crate::checksum::blake3(parts) != parsed.payload_sum {
        return Err(EntryError::PayloadChecksum);
    }
    if let Some(id) = id {
        verified::record(id, parsed.payload_sum);
    }
    Ok(())
}

/// A header checked on its own (magic, version, its checksum), and where the payload is.
pub(crate) struct ParsedHeader<'a> {
    pub(crate) header: Header<'a>,
    /// Length of the header: the payload starts here.
    pub(crate) len: usize,
    /// Length of the payload stored (compressed, for a compressed entry).
    pub(crate) payload_len: u64,
    payload_sum: [u8; PAYLOAD_SUM_LEN],
    /// For a compressed entry, what its payload is once decompressed.
    pub(crate) plain: Option<PlainPayload>,
}

/// The length and checksum of a compressed entry's payload before compression.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(
    not(any(feature = "remote-redis", feature = "remote-s3")),
    allow(dead_code)
)]
pub(crate) struct PlainPayload {
    pub(crate) len: u64,
    sum: [u8; PAYLOAD_SUM_LEN],
}

/// Parses and checks the header at the start of `bytes`, which may hold more or less than
/// the rest of the file: what tools need to list entries without reading their payloads.
pub(crate) fn parse_header(bytes: &[u8]) -> Result<ParsedHeader<'_>, EntryError> {
    if bytes.len() < FIXED_LEN {
        return Err(EntryError::Truncated { len: bytes.len() });
    }
    let mut fields = Fields { bytes, at: 0 };
    if fields.take::<8>() != MAGIC {
        return Err(EntryError::BadMagic);
    }
    let version = u16::from_le_bytes(fields.take());
    if version != FORMAT_VERSION {
        return Err(EntryError::UnsupportedVersion(version));
    }
    let [codec, flags] = fields.take();
    if flags & !KNOWN_FLAGS != 0 {
        return Err(EntryError::UnknownFlags(flags));
    }
    let key = fields.take();
    let code_hash = fields.take();
    let layout = fields.take();
    let created_ms = u64::from_le_bytes(fields.take());
    let compute_us = u64::from_le_bytes(fields.take());
    let payload_len = u64::from_le_bytes(fields.take());
    let declared_sum = fields.take();
    let name_len = usize::from(u16::from_le_bytes(fields.take()));
    let name_end = FIXED_LEN + name_len;
    let truncated = EntryError::Truncated { len: bytes.len() };
    // Every length is compared with the bytes present before it sizes anything.
    let checked_len = if flags & HAS_DEPENDENCIES != 0 {
        let field = bytes
            .get(name_end..name_end + DEPENDENCIES_LEN_LEN)
            .ok_or(truncated.clone())?;
        let len = u32::from_le_bytes([field[0], field[1], field[2], field[3]]) as usize;
        (name_end + DEPENDENCIES_LEN_LEN)
            .checked_add(len)
            .ok_or(truncated.clone())?
    } else {
        name_end
    };
    let fields_at = checked_len;
    let checked_len = if flags & COMPRESSED != 0 {
        fields_at
            .checked_add(COMPRESSED_FIELDS_LEN)
            .ok_or(truncated.clone())?
    } else {
        checked_len
    };
    let header_len = checked_len
        .checked_add(HEADER_SUM_LEN)
        .filter(|&len| len <= bytes.len())
        .ok_or(truncated)?;
    let (checked, sum) = bytes[..header_len].split_at(checked_len);
    if header_sum(checked) != sum {
        return Err(EntryError::HeaderChecksum);
    }
    let type_name = std::str::from_utf8(&checked[FIXED_LEN..name_end])
        .map_err(|_| EntryError::TypeNameNotUtf8)?;
    let dependencies = checked
        .get(name_end + DEPENDENCIES_LEN_LEN..fields_at)
        .unwrap_or(&[]);
    let plain = (flags & COMPRESSED != 0).then(|| {
        let mut fields = Fields {
            bytes: checked,
            at: fields_at,
        };
        PlainPayload {
            len: u64::from_le_bytes(fields.take()),
            sum: fields.take(),
        }
    });
    Ok(ParsedHeader {
        header: Header {
            codec,
            key,
            code_hash,
            layout,
            created_ms,
            compute_us,
            type_name,
            dependencies,
        },
        len: header_len,
        payload_len,
        payload_sum: declared_sum,
        plain,
    })
}

/// The longest header without dependencies, compressed or not: enough bytes to read any
/// such header with [`parse_header`]; [`declared_header_len`] says how long one with
/// dependencies is.
pub(crate) const MAX_HEADER_LEN: usize =
    FIXED_LEN + u16::MAX as usize + COMPRESSED_FIELDS_LEN + HEADER_SUM_LEN;

/// Entries for the tests of the modules that carry them.
#[cfg(test)]
pub(crate) mod samples {
    use super::Header;

    /// A header of fixed, recognisable fields, for a value of type `type_name`.
    pub(crate) fn header(type_name: &str) -> Header<'_> {
        Header {
            codec: 1,
            key: [7; 32],
            code_hash: [9; 32],
            layout: [3; 16],
            created_ms: 1_700_000_000_000,
            compute_us: 2_000_000,
            type_name,
            dependencies: &[],
        }
    }

    /// A whole plain entry of a `String` whose payload is `payload`.
    #[cfg_attr(
        not(any(feature = "remote-redis", feature = "remote-s3")),
        allow(dead_code) // for the remote tier's tests
    )]
    pub(crate) fn entry(payload: &[u8]) -> Vec<u8> {
        let mut bytes = header("alloc::string::String")
            .encode(payload)
            .expect("a sample header encodes");
        bytes.extend_from_slice(payload);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header<'static> {
        samples::header("alloc::vec::Vec<u64>")
    }

    fn file(header: &Header<'_>, payload: &[u8]) -> Vec<u8> {
        let mut bytes = header.encode(payload).unwrap();
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn round_trips_header_and_payload() {
        let bytes = file(&sample(), b"payload bytes");
        let (header, payload) = parse(&bytes).unwrap();
        assert_eq!(header, sample());
        assert_eq!(payload, b"payload bytes");
    }

    #[test]
    fn times_can_be_peeked() {
        let bytes = file(&sample(), b"p");
        assert_eq!(peek_times(&bytes), Some((1_700_000_000_000, 2_000_000)));
        assert_eq!(peek_times(&bytes[..100]), None);
    }

    #[test]
    fn empty_payload_round_trips() {
        let bytes = file(&sample(), b"");
        assert_eq!(parse(&bytes).unwrap().1, b"");
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let bytes = file(&sample(), b"some payload");
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[at] ^= 1 << bit;
                assert!(
                    parse(&damaged).is_err(),
                    "flip of bit {bit} at byte {at} passed"
                );
            }
        }
    }

    #[test]
    fn every_truncation_and_extension_is_detected() {
        let bytes = file(&sample(), b"some payload");
        for len in 0..bytes.len() {
            assert!(parse(&bytes[..len]).is_err(), "truncation to {len} passed");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            parse(&longer),
            Err(EntryError::PayloadLength { .. })
        ));
    }

    #[test]
    fn lying_length_fields_are_rejected_without_trusting_them() {
        let mut bytes = file(&sample(), b"xyz");
        // A payload length of u64::MAX with a recomputed header checksum: still rejected,
        // because it is compared with the bytes present before anything is sized by it.
        bytes[PAYLOAD_LEN_AT..PAYLOAD_LEN_AT + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        let name_end = FIXED_LEN + sample().type_name.len();
        let sum = header_sum(&bytes[..name_end]);
        bytes[name_end..name_end + HEADER_SUM_LEN].copy_from_slice(&sum);
        assert_eq!(
            parse(&bytes),
            Err(EntryError::PayloadLength {
                declared: u64::MAX,
                actual: 3
            })
        );
        // A type-name length pointing past the end is a truncation, not a panic.
        let mut bytes = file(&sample(), b"xyz");
        bytes[FIXED_LEN - 2..FIXED_LEN].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(matches!(parse(&bytes), Err(EntryError::Truncated { .. })));
    }

    #[test]
    fn payload_is_what_parse_returns() {
        let bytes = file(&sample(), b"some payload");
        assert_eq!(payload(&bytes), parse(&bytes).unwrap().1);
        assert_eq!(payload(b"short"), b"");
    }

    #[test]
    fn declared_len_is_the_file_len() {
        let bytes = file(&sample(), b"some payload");
        assert_eq!(declared_len(&bytes), Some(bytes.len() as u64));
        assert_eq!(declared_len(&bytes[..FIXED_LEN]), Some(bytes.len() as u64));
        assert_eq!(declared_len(&bytes[..FIXED_LEN - 1]), None);
    }

    #[test]
    fn other_files_are_not_entries() {
        assert_eq!(parse(b""), Err(EntryError::Truncated { len: 0 }));
        assert_eq!(parse(&[0u8; 400]), Err(EntryError::BadMagic));
        let mut bytes = file(&sample(), b"p");
        bytes[8] = 99;
        assert_eq!(parse(&bytes), Err(EntryError::UnsupportedVersion(99)));
    }

    fn with_dependencies() -> Header<'static> {
        Header {
            dependencies: b"some recorded dependencies",
            ..sample()
        }
    }

    #[test]
    fn dependencies_round_trip_inside_the_checked_header() {
        let bytes = file(&with_dependencies(), b"payload bytes");
        assert_eq!(bytes[11], HAS_DEPENDENCIES);
        let (header, payload) = parse(&bytes).unwrap();
        assert_eq!(header, with_dependencies());
        assert_eq!(payload, b"payload bytes");
        assert_eq!(declared_len(&bytes), Some(bytes.len() as u64));
        assert_eq!(self::payload(&bytes), b"payload bytes");
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert!(parse(&damaged).is_err(), "flip at byte {at} passed");
        }
        for len in 0..bytes.len() {
            assert!(parse(&bytes[..len]).is_err(), "truncation to {len} passed");
        }
    }

    #[test]
    fn an_entry_without_dependencies_keeps_the_layout_before_them() {
        let bytes = file(&sample(), b"p");
        assert_eq!(bytes[11], 0);
        let name_end = FIXED_LEN + sample().type_name.len();
        assert_eq!(
            header_sum(&bytes[..name_end]),
            bytes[name_end..name_end + HEADER_SUM_LEN]
        );
    }

    #[test]
    fn a_reader_that_ignores_the_flag_takes_dependencies_for_damage() {
        // Such a reader checks the bytes before the dependencies against the bytes where
        // its layout puts the checksum.
        let bytes = file(&with_dependencies(), b"p");
        let name_end = FIXED_LEN + sample().type_name.len();
        assert_ne!(
            header_sum(&bytes[..name_end]),
            bytes[name_end..name_end + HEADER_SUM_LEN]
        );
    }

    #[test]
    fn unknown_flags_are_refused() {
        let mut bytes = file(&sample(), b"p");
        bytes[11] = 0x82;
        let name_end = FIXED_LEN + sample().type_name.len();
        let sum = header_sum(&bytes[..name_end]);
        bytes[name_end..name_end + HEADER_SUM_LEN].copy_from_slice(&sum);
        assert_eq!(parse(&bytes), Err(EntryError::UnknownFlags(0x82)));
    }

    #[test]
    fn a_lying_dependencies_length_is_a_truncation() {
        let mut bytes = file(&with_dependencies(), b"xyz");
        let name_end = FIXED_LEN + sample().type_name.len();
        bytes[name_end..name_end + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(parse(&bytes), Err(EntryError::Truncated { .. })));
    }

    /// The compressed form of `plain` whose "compression" reverses the payload: the
    /// layout, without a codec.
    fn reversed(plain: &[u8]) -> Vec<u8> {
        let mut stored = plain_payload(plain).unwrap().to_vec();
        stored.reverse();
        compressed(plain, &stored).unwrap()
    }

    fn unreversed(stored: &[u8]) -> Result<Vec<u8>, EntryError> {
        decompressed(stored, |payload, len| {
            let mut out = payload.to_vec();
            out.reverse();
            out.truncate(len);
            Ok(out)
        })
    }

    #[test]
    fn a_compressed_entry_keeps_its_header_and_becomes_the_plain_entry_again() {
        for header in [sample(), with_dependencies()] {
            let plain = file(&header, b"some payload bytes");
            let stored = reversed(&plain);
            assert_eq!(stored[11] & COMPRESSED, COMPRESSED);
            assert!(peek_compressed(&stored) && !peek_compressed(&plain));
            assert_eq!(declared_len(&stored), Some(stored.len() as u64));
            assert_eq!(declared_header_len(&stored), Some(stored.len() - 18));
            let parsed = parse_header(&stored).unwrap();
            assert_eq!(parsed.header, header, "the header reads as it is");
            assert_eq!(parsed.plain.map(|p| p.len), Some(18));
            assert!(is_stored_entry(&stored));
            assert_eq!(parse(&stored), Err(EntryError::Compressed));
            assert_eq!(unreversed(&stored).unwrap(), plain);
        }
    }

    #[test]
    fn every_flipped_bit_or_truncation_of_a_compressed_entry_is_detected() {
        let stored = reversed(&file(&with_dependencies(), b"some payload"));
        for at in 0..stored.len() {
            for bit in 0..8 {
                let mut damaged = stored.clone();
                damaged[at] ^= 1 << bit;
                let passed = unreversed(&damaged).is_ok_and(|plain| parse(&plain).is_ok());
                assert!(!passed, "flip of bit {bit} at byte {at} passed");
                assert!(!is_stored_entry(&damaged), "flip of bit {bit} at byte {at}");
            }
        }
        for len in 0..stored.len() {
            assert!(unreversed(&stored[..len]).is_err(), "truncation to {len}");
        }
    }

    #[test]
    fn a_reader_that_predates_compression_refuses_it() {
        // Such a reader knows bit 0 only, and refuses any other flag.
        let stored = reversed(&file(&sample(), b"some payload"));
        assert_ne!(stored[11] & !HAS_DEPENDENCIES, 0);
    }

    #[test]
    fn a_decompression_that_falls_short_is_refused() {
        let stored = reversed(&file(&sample(), b"some payload"));
        let short = decompressed(&stored, |payload, _| Ok(payload[1..].to_vec()));
        assert!(matches!(short, Err(EntryError::PayloadLength { .. })));
        // The plain payload is checked against the checksum it was written with.
        let wrong = decompressed(&stored, |payload, _| Ok(payload.to_vec())).unwrap();
        assert_eq!(parse(&wrong), Err(EntryError::PayloadChecksum));
        assert!(matches!(
            decompressed(&file(&sample(), b"p"), |p, _| Ok(p.to_vec())),
            Err(EntryError::Decompression(_))
        ));
    }

    #[test]
    fn overlong_type_names_are_refused_at_encode() {
        let name = "x".repeat(70_000);
        let header = Header {
            type_name: &name,
            ..sample()
        };
        assert_eq!(header.encode(b""), Err(EntryError::TypeNameTooLong(70_000)));
    }
}
