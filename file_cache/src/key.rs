//! Keys: the canonical byte stream of a call's arguments, hashed with blake3.
//!
//! A [`KeyHasher`] feeds labels (function and type names), raw framed bytes (a code hash)
//! and argument values into one blake3 hash. Values go through a `serde::Serializer` of
//! our own that writes a *canonical* stream: two values get the same [`Key`] exactly when
//! they make the same serde calls (up to the order of map entries), and the stream of one
//! value is never a prefix of the stream of another, so consecutive values cannot trade
//! bytes. Every stream starts with the label [`KEY_FORMAT`], which names the encoding.
//! A `Serialize` impl that fails (`S::Error::custom`) makes [`KeyHasher::write_value`]
//! return a [`KeyError`].
//!
//! # Encoding
//!
//! Every value starts with a one-byte type tag (the `tag` module). After the tag:
//!
//! - integers, fixed-width little-endian (`usize`/`isize` arrive from serde as 64-bit,
//!   so keys do not depend on the platform); `bool` as one byte; `char` as its `u32`;
//! - *runs*: consecutive elements of a sequence or tuple that are the same fixed-width
//!   primitive (a `Vec<f64>`, a `Vec<u8>`, `[u32; 4]`) are written as `RUN`, the type's
//!   tag, a `u16` count, then the values' bytes alone, in chunks of at most
//!   [`RUN_BYTES`] bytes of values. A run stands for that many consecutive value slots,
//!   so the stream stays decodable; where chunks end depends only on the values (never on
//!   the buffer), so the key does not either. It is what lets a `Vec<f64>` hash near
//!   blake3's speed: one tag per 512 values instead of one per value;
//! - floats by bits (`to_bits`), so `-0.0 != 0.0` and NaNs hash by payload;
//! - `str` and bytes: a `u64` length, then the bytes;
//! - names (type, field and variant names) as labels: `LABEL`, a `u64` length, the bytes;
//!   enum variants as the enum's name, the variant's `u32` index and the variant's name,
//!   so a renamed, reordered or retyped argument type changes the key;
//! - sequences, tuples and structs (all kinds): their header (tag and names), then the
//!   elements (struct fields as a label and a value), then `END` and the element count
//!   as a `u64`. Element encodings never start with `END`, so the stream is unambiguous
//!   whether or not serde told us the length up front, and the length hint does not
//!   change the key (a `Vec` and an iterator of unknown length with the same elements
//!   hash the same);
//! - maps: `MAP`, the entry count, and a 32-byte digest of the entries that does not
//!   depend on their order (see `EntrySum`). Two equal `HashMap`s built in different
//!   processes (different random iteration orders) therefore give the same key, and a
//!   `BTreeMap` gives the same key as a `HashMap` with the same entries: a map argument
//!   is keyed by its contents, not by its container.
//!
//! The serializer reports `is_human_readable() == false`, so types with two serde forms
//! (addresses, UUIDs, times) use their compact one.
//!
//! # Sets
//!
//! serde serializes a `HashSet` as a *sequence*, in its random iteration order, and gives
//! the serializer no way to tell it from a `Vec`. A `HashSet` argument therefore gets a
//! different key in every process: never a wrong hit, but a miss every run. Use a
//! `BTreeSet` (or a sorted `Vec`) for set arguments. The same holds for any type whose
//! `Serialize` impl walks a hash-ordered container as a sequence.
//!
//! # Buffering
//!
//! Small writes are collected in a buffer of [`BUF_LEN`] bytes that is handed to blake3
//! in one `update` when full (blake3 hashes long inputs with SIMD across chunks; one
//! `update` per primitive is 8–10x slower). Slices at least as long as the buffer (big
//! byte strings, long strings) flush it and go to blake3 directly, without a copy.

use serde::ser::{self, Serialize};
use std::fmt;

/// The 32-byte blake3 digest that names one entry of one function.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(pub(crate) [u8; 32]);

impl Key {
    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex of the digest (64 characters).
    pub fn to_hex(self) -> String {
        String::from_utf8(self.hex_bytes().to_vec()).unwrap_or_default()
    }

    /// Lower-case hex of the digest as ASCII bytes, without allocating.
    pub(crate) fn hex_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        for (pair, byte) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0xf)];
        }
        out
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.to_hex())
    }
}

/// A value could not be serialized into a key (its `Serialize` impl returned an error).
#[derive(Debug)]
pub struct KeyError(pub(crate) String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot hash value: {}", self.0)
    }
}

impl std::error::Error for KeyError {}

/// The first label of every key stream. It names the encoding: change it whenever the
/// encoding of any value changes, so entries written under the old one are never hit.
pub(crate) const KEY_FORMAT: &str = "file_cache key v2";

/// Bytes collected before one `blake3::Hasher::update`.
pub(crate) const BUF_LEN: usize = 32 * 1024;

/// Most bytes of values in one run chunk (see the module docs): 512 `f64`, 4096 `u8`.
pub(crate) const RUN_BYTES: usize = 4096;
/// A run chunk's header: `RUN`, the element tag, a `u16` count.
const RUN_HEADER: usize = 4;

/// Type tags: the first byte of every value and frame in the stream. Part of the key
/// format: never renumber (change [`KEY_FORMAT`] instead).
mod tag {
    pub(super) const BOOL: u8 = 0x01;
    pub(super) const I8: u8 = 0x02;
    pub(super) const I16: u8 = 0x03;
    pub(super) const I32: u8 = 0x04;
    pub(super) const I64: u8 = 0x05;
    pub(super) const I128: u8 = 0x06;
    pub(super) const U8: u8 = 0x07;
    pub(super) const U16: u8 = 0x08;
    pub(super) const U32: u8 = 0x09;
    pub(super) const U64: u8 = 0x0a;
    pub(super) const U128: u8 = 0x0b;
    pub(super) const F32: u8 = 0x0c;
    pub(super) const F64: u8 = 0x0d;
    pub(super) const CHAR: u8 = 0x0e;
    pub(super) const STR: u8 = 0x0f;
    pub(super) const BYTES: u8 = 0x10;
    pub(super) const NONE: u8 = 0x11;
    pub(super) const SOME: u8 = 0x12;
    pub(super) const UNIT: u8 = 0x13;
    pub(super) const UNIT_STRUCT: u8 = 0x14;
    pub(super) const UNIT_VARIANT: u8 = 0x15;
    pub(super) const NEWTYPE_STRUCT: u8 = 0x16;
    pub(super) const NEWTYPE_VARIANT: u8 = 0x17;
    pub(super) const SEQ: u8 = 0x18;
    pub(super) const TUPLE: u8 = 0x19;
    pub(super) const TUPLE_STRUCT: u8 = 0x1a;
    pub(super) const TUPLE_VARIANT: u8 = 0x1b;
    pub(super) const MAP: u8 = 0x1c;
    pub(super) const STRUCT: u8 = 0x1d;
    pub(super) const STRUCT_VARIANT: u8 = 0x1e;
    /// Closes a sequence, tuple or struct; followed by the element count.
    pub(super) const END: u8 = 0x1f;
    /// A name: type, field or variant name, or a [`super::KeyHasher::write_label`].
    pub(super) const LABEL: u8 = 0x20;
    /// Bytes fed by [`super::KeyHasher::write_raw`].
    pub(super) const RAW: u8 = 0x21;
    /// A run of same-typed primitive elements: element tag, `u16` count, the values.
    pub(super) const RUN: u8 = 0x22;
}

/// Streaming canonical hasher: labels, raw bytes and values in, one [`Key`] out.
///
/// After [`KeyHasher::write_value`] returns an error, the stream holds part of that value:
/// discard the hasher.
pub(crate) struct KeyHasher {
    // Boxed: a blake3 hasher is about 2 KB, and a key builder moves through a few frames.
    sink: Box<Sink>,
}

impl KeyHasher {
    pub(crate) fn new() -> KeyHasher {
        KeyHasher::with_buffer_len(BUF_LEN)
    }

    /// A hasher whose buffer holds `buf_len` bytes (0: every write goes to blake3 as is).
    /// The key does not depend on it; tests use it to prove that.
    pub(crate) fn with_buffer_len(buf_len: usize) -> KeyHasher {
        let mut hasher = KeyHasher {
            sink: Box::new(Sink::new(buf_len)),
        };
        // A label rather than blake3's derive-key mode: same separation, and no
        // compression of a context string on every call.
        hasher.write_label(KEY_FORMAT);
        hasher
    }

    /// Feeds a framed label (a name, a type name, a format tag).
    pub(crate) fn write_label(&mut self, label: &str) {
        self.sink.framed(tag::LABEL, label.as_bytes());
    }

    /// Feeds raw framed bytes (e.g. a code hash).
    pub(crate) fn write_raw(&mut self, bytes: &[u8]) {
        self.sink.framed(tag::RAW, bytes);
    }

    /// Feeds a value through the canonical serializer.
    pub(crate) fn write_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), KeyError> {
        value
            .serialize(&mut *self.sink)
            .map_err(|Error(msg)| KeyError(msg.into()))
    }

    pub(crate) fn finish(mut self) -> Key {
        Key(self.sink.digest())
    }
}

/// A blake3 hasher behind a write buffer; the serializer writes into it.
struct Sink {
    hasher: blake3::Hasher,
    buf: Vec<u8>,
    /// Flush when the buffer would grow past this many bytes; also the size from which
    /// a slice bypasses the buffer.
    limit: usize,
    /// Hashes the entries of maps serialized into this sink (created on the first map,
    /// then reset and reused, buffer included, for every entry of every map at this depth;
    /// `None` while a map holds it, or after one failed).
    entries: Option<Box<Sink>>,
    /// Reused by `collect_str`.
    scratch: String,
    /// `buf.len()` when a sequence or tuple element began; a primitive written while the
    /// buffer is still that long *is* the element, and goes into a run.
    element_at: usize,
    /// The run chunk being written at the end of `buf`, if any.
    run: Run,
    /// Whether `hasher` has been fed since it was last reset.
    fed: bool,
}

/// The open run chunk: it can take another value while nothing was written after it.
#[derive(Clone, Copy)]
struct Run {
    /// Where its header starts in `buf`.
    at: usize,
    /// `buf.len()` after its last value; `usize::MAX` when there is no open run.
    end: usize,
    tag: u8,
    count: u16,
    /// Bytes of values the chunk can still take.
    room: usize,
}

const NO_RUN: Run = Run {
    at: 0,
    end: usize::MAX,
    tag: 0,
    count: 0,
    room: 0,
};

impl Sink {
    fn new(limit: usize) -> Sink {
        Sink {
            hasher: blake3::Hasher::new(),
            // Most keys are a few hundred bytes; big ones grow it up to `limit`.
            buf: Vec::with_capacity(limit.min(512)),
            limit,
            entries: None,
            scratch: String::new(),
            element_at: usize::MAX,
            run: NO_RUN,
            fed: false,
        }
    }

    #[inline]
    fn write(&mut self, data: &[u8]) {
        // A run chunk may take the buffer past a limit smaller than a chunk.
        if data.len() <= self.limit.saturating_sub(self.buf.len()) {
            self.buf.extend_from_slice(data);
        } else {
            self.write_slow(data);
        }
    }

    #[inline(never)]
    fn write_slow(&mut self, data: &[u8]) {
        self.flush();
        if data.len() >= self.limit {
            self.hasher.update(data);
            self.fed = true;
        } else {
            self.buf.extend_from_slice(data);
        }
    }

    /// A tag and a fixed-width payload, in one write.
    #[inline]
    fn tagged<const N: usize>(&mut self, tag: u8, payload: [u8; N]) {
        if N <= 8 {
            // Tag and payload assembled in a register and written with one length update.
            // (Assembling them byte by byte in memory made the CPU reload bytes it had
            // just stored one by one, a store-forwarding stall; two pushes update the
            // buffer's length twice. Either made a `Vec<u8>` several times slower.)
            let mut word = [0u8; 8];
            word[..N].copy_from_slice(&payload);
            let word = u128::from(tag) | u128::from(u64::from_le_bytes(word)) << 8;
            self.write(&word.to_le_bytes()[..=N]);
        } else {
            self.write(&[tag]);
            self.write(&payload);
        }
    }

    /// A tag, a `u64` length and the bytes.
    #[inline]
    fn framed(&mut self, tag: u8, data: &[u8]) {
        self.tagged(tag, len64(data.len()).to_le_bytes());
        self.write(data);
    }

    #[inline]
    fn label(&mut self, name: &str) {
        self.framed(tag::LABEL, name.as_bytes());
    }

    #[inline]
    fn variant(&mut self, tag: u8, name: &str, index: u32, variant: &str) {
        self.framed(tag, name.as_bytes());
        self.write(&index.to_le_bytes());
        self.label(variant);
    }

    /// A fixed-width primitive: into the open run when it is a sequence's element of the
    /// run's type, else a new run when it is an element, else tagged.
    #[inline(always)]
    fn primitive<const N: usize>(&mut self, tag: u8, payload: [u8; N]) {
        // Nothing written since the run's last value: this is the next element (every
        // other way to reach a value writes a tag first).
        if self.buf.len() == self.run.end && self.run.tag == tag && self.run.room >= N {
            self.run.room -= N;
            self.run.count += 1;
            self.buf.extend_from_slice(&payload);
            self.run.end += N;
            // The header's count is written when the chunk is done (`close_run`).
        } else {
            self.primitive_slow(tag, payload);
        }
    }

    #[inline(never)]
    fn primitive_slow<const N: usize>(&mut self, tag: u8, payload: [u8; N]) {
        if self.buf.len() != self.element_at {
            return self.tagged(tag, payload);
        }
        self.close_run();
        // Room for a whole chunk, so no flush can fall inside it.
        let room = RUN_HEADER + RUN_BYTES;
        if self.buf.len() + room > self.limit.max(room) {
            self.flush();
        }
        let at = self.buf.len();
        self.buf.extend_from_slice(&[tag::RUN, tag, 1, 0]);
        self.buf.extend_from_slice(&payload);
        self.run = Run {
            at,
            end: self.buf.len(),
            tag,
            count: 1,
            room: RUN_BYTES - N,
        };
    }

    /// Writes the open chunk's count into its header and forgets it; any time before its
    /// bytes are hashed will do, and the hot path is lighter without it.
    fn close_run(&mut self) {
        if self.run.end != usize::MAX {
            let at = self.run.at + 2;
            if let Some(count) = self.buf.get_mut(at..at + 2) {
                count.copy_from_slice(&self.run.count.to_le_bytes());
            }
            self.run = NO_RUN;
        }
    }

    fn flush(&mut self) {
        self.close_run();
        if !self.buf.is_empty() {
            self.hasher.update(&self.buf);
            self.buf.clear();
            self.fed = true;
        }
        // Positions in the buffer mean nothing after it is emptied.
        self.element_at = usize::MAX;
        self.run = NO_RUN;
    }

    /// The digest of everything written; leaves the sink empty for reuse.
    fn digest(&mut self) -> [u8; 32] {
        self.close_run();
        if !self.fed {
            // All of it is in the buffer (always, for a map entry): blake3's one-shot
            // function skips the incremental hasher's bookkeeping.
            let out = *blake3::hash(&self.buf).as_bytes();
            self.buf.clear();
            self.element_at = usize::MAX;
            self.run = NO_RUN;
            return out;
        }
        self.flush();
        let out = *self.hasher.finalize().as_bytes();
        self.hasher.reset();
        self.fed = false;
        out
    }

    /// The sink that hashes map entries one level below this one, emptied. The map takes
    /// it while its entries are written and gives it back at its end.
    fn take_entry_sink(&mut self) -> Box<Sink> {
        match self.entries.take() {
            Some(mut sink) => {
                sink.buf.clear();
                sink.hasher.reset();
                sink.fed = false;
                sink.element_at = usize::MAX;
                sink.run = NO_RUN;
                sink
            }
            None => Box::new(Sink::new(self.limit)),
        }
    }
}

fn len64(len: usize) -> u64 {
    // usize is at most 64 bits on every target Rust supports.
    len as u64
}

/// The serializer's error: a `Serialize` impl's own error, or a broken serde protocol.
#[derive(Debug)]
struct Error(Box<str>);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string().into())
    }
}

impl<'a> ser::Serializer for &'a mut Sink {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = MapEntries<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    #[inline]
    fn is_human_readable(&self) -> bool {
        false
    }

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.primitive(tag::BOOL, [u8::from(v)]);
        Ok(())
    }

    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.primitive(tag::I8, v.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.primitive(tag::I16, v.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.primitive(tag::I32, v.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.primitive(tag::I64, v.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.primitive(tag::I128, v.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.primitive(tag::U8, [v]);
        Ok(())
    }

    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.primitive(tag::U16, v.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.primitive(tag::U32, v.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.primitive(tag::U64, v.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.primitive(tag::U128, v.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.primitive(tag::F32, v.to_bits().to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.primitive(tag::F64, v.to_bits().to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.primitive(tag::CHAR, u32::from(v).to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.framed(tag::STR, v.as_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.framed(tag::BYTES, v);
        Ok(())
    }

    #[inline]
    fn serialize_none(self) -> Result<(), Error> {
        self.write(&[tag::NONE]);
        Ok(())
    }

    #[inline]
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), Error> {
        self.write(&[tag::SOME]);
        value.serialize(self)
    }

    #[inline]
    fn serialize_unit(self) -> Result<(), Error> {
        self.write(&[tag::UNIT]);
        Ok(())
    }

    #[inline]
    fn serialize_unit_struct(self, name: &'static str) -> Result<(), Error> {
        self.framed(tag::UNIT_STRUCT, name.as_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_unit_variant(
        self,
        name: &'static str,
        variant_index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.variant(tag::UNIT_VARIANT, name, variant_index, variant);
        Ok(())
    }

    #[inline]
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.framed(tag::NEWTYPE_STRUCT, name.as_bytes());
        value.serialize(self)
    }

    #[inline]
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        variant_index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.variant(tag::NEWTYPE_VARIANT, name, variant_index, variant);
        value.serialize(self)
    }

    #[inline]
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a>, Error> {
        self.write(&[tag::SEQ]);
        Ok(Compound::new(self))
    }

    #[inline]
    fn serialize_tuple(self, _len: usize) -> Result<Compound<'a>, Error> {
        self.write(&[tag::TUPLE]);
        Ok(Compound::new(self))
    }

    #[inline]
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, Error> {
        self.framed(tag::TUPLE_STRUCT, name.as_bytes());
        Ok(Compound::new(self))
    }

    #[inline]
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        variant_index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, Error> {
        self.variant(tag::TUPLE_VARIANT, name, variant_index, variant);
        Ok(Compound::new(self))
    }

    #[inline]
    fn serialize_map(self, _len: Option<usize>) -> Result<MapEntries<'a>, Error> {
        Ok(MapEntries {
            entries: self.take_entry_sink(),
            sink: self,
            sum: EntrySum::default(),
            key_pending: false,
        })
    }

    #[inline]
    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Compound<'a>, Error> {
        self.framed(tag::STRUCT, name.as_bytes());
        Ok(Compound::new(self))
    }

    #[inline]
    fn serialize_struct_variant(
        self,
        name: &'static str,
        variant_index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, Error> {
        self.variant(tag::STRUCT_VARIANT, name, variant_index, variant);
        Ok(Compound::new(self))
    }

    #[inline]
    fn collect_str<T: ?Sized + fmt::Display>(self, value: &T) -> Result<(), Error> {
        use fmt::Write as _;
        let mut text = std::mem::take(&mut self.scratch);
        text.clear();
        let written = write!(text, "{value}");
        if written.is_ok() {
            self.framed(tag::STR, text.as_bytes());
        }
        self.scratch = text;
        written.map_err(|_| Error("a Display impl returned an error".into()))
    }
}

/// A sequence, tuple or struct in progress: elements, then `END` and their count.
struct Compound<'a> {
    sink: &'a mut Sink,
    count: u64,
}

impl<'a> Compound<'a> {
    fn new(sink: &'a mut Sink) -> Compound<'a> {
        Compound { sink, count: 0 }
    }

    /// An element of a sequence or tuple (of any kind): it may join a run.
    #[inline]
    fn element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.count += 1;
        self.sink.element_at = self.sink.buf.len();
        value.serialize(&mut *self.sink)
    }

    /// A named field: its label sits between values, so it never joins a run.
    #[inline]
    fn field<T: ?Sized + Serialize>(&mut self, name: &str, value: &T) -> Result<(), Error> {
        self.count += 1;
        self.sink.label(name);
        value.serialize(&mut *self.sink)
    }

    #[inline]
    fn end(self) -> Result<(), Error> {
        self.sink.tagged(tag::END, self.count.to_le_bytes());
        Ok(())
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = Error;

    #[inline]
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    #[inline]
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = Error;

    #[inline]
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    #[inline]
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;

    #[inline]
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    #[inline]
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = Error;

    #[inline]
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    #[inline]
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;

    #[inline]
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }

    #[inline]
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Error;

    #[inline]
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }

    #[inline]
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

/// The order-independent combination of a map's entry digests.
///
/// Each entry (key, then value, in the canonical encoding) is hashed on its own; the map
/// contributes the entry count and the sum of the entry digests, read as 256-bit
/// little-endian integers, modulo 2^256. Addition is commutative and associative, so the
/// sum does not depend on iteration order, and it costs a few adds per entry with no
/// memory per entry.
///
/// Not XOR: XOR cancels equal digests, so `{a, a, b, b}` (serde lets a map repeat a key)
/// would collide with `{c, c, d, d}` and with the empty map but for the count; a sum only
/// cancels when `2·d ≡ 0 (mod 2^256)`, i.e. for two digests out of 2^256. A full-width
/// carry chain rather than four independent 64-bit lanes: same cost, and one cyclic group
/// instead of four small ones.
///
/// Limit: a sum of hashes (AdHash) is collision resistant against accident, not against
/// an adversary who chooses many map entries (Wagner's k-sum algorithm finds colliding
/// multisets far below 2^128 work at 256 bits). A cache keyed on the program's own
/// arguments does not face that adversary; sorting the entry digests and hashing them in
/// order would, at the price of 32 bytes per entry and a sort.
#[derive(Default)]
struct EntrySum {
    lanes: [u64; 4],
    count: u64,
}

impl EntrySum {
    fn add(&mut self, digest: &[u8; 32]) {
        let mut carry = false;
        for (lane, bytes) in self.lanes.iter_mut().zip(digest.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes);
            let (sum, over1) = lane.overflowing_add(u64::from_le_bytes(word));
            let (sum, over2) = sum.overflowing_add(u64::from(carry));
            *lane = sum;
            carry = over1 || over2;
        }
        self.count += 1;
    }

    fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (bytes, lane) in out.chunks_exact_mut(8).zip(self.lanes) {
            bytes.copy_from_slice(&lane.to_le_bytes());
        }
        out
    }
}

/// A map in progress: entries are hashed one by one in the sink's entry sink and summed.
struct MapEntries<'a> {
    sink: &'a mut Sink,
    entries: Box<Sink>,
    sum: EntrySum,
    key_pending: bool,
}

impl ser::SerializeMap for MapEntries<'_> {
    type Ok = ();
    type Error = Error;

    #[inline]
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Error> {
        if self.key_pending {
            return Err(Error("map key serialized without its value".into()));
        }
        self.key_pending = true;
        key.serialize(&mut *self.entries)
    }

    #[inline]
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        if !self.key_pending {
            return Err(Error("map value serialized without a key".into()));
        }
        self.key_pending = false;
        value.serialize(&mut *self.entries)?;
        let digest = self.entries.digest();
        self.sum.add(&digest);
        Ok(())
    }

    #[inline]
    fn end(self) -> Result<(), Error> {
        if self.key_pending {
            return Err(Error("map key serialized without its value".into()));
        }
        self.sink.tagged(tag::MAP, self.sum.count.to_le_bytes());
        self.sink.write(&self.sum.to_bytes());
        self.sink.entries = Some(self.entries);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::ser::SerializeMap;
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use std::hash::RandomState;

    fn key_of<T: ?Sized + Serialize>(value: &T) -> Key {
        key_with_buffer(value, BUF_LEN)
    }

    fn key_with_buffer<T: ?Sized + Serialize>(value: &T, buf_len: usize) -> Key {
        let mut hasher = KeyHasher::with_buffer_len(buf_len);
        hasher.write_value(value).expect("value hashes");
        hasher.finish()
    }

    /// Byte strings through `serialize_bytes`, as `serde_bytes` would.
    struct Bytes<'a>(&'a [u8]);

    impl Serialize for Bytes<'_> {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    #[test]
    fn equal_values_give_equal_keys() {
        let value = (1u8, "two", vec![3.0f64, 4.5], Some('x'), [Some(()), None]);
        assert_eq!(key_of(&value), key_of(&value.clone()));
        assert_eq!(key_of(&String::from("abc")), key_of("abc"));
        assert_ne!(key_of(&value), key_of(&(1u8, "two", vec![3.0f64, 4.5])));
    }

    #[test]
    fn same_bytes_of_different_types_give_different_keys() {
        let pairs: Vec<(Key, Key)> = vec![
            (key_of(&1u32), key_of(&1u64)),
            (key_of(&1i32), key_of(&1u32)),
            (key_of(&1u8), key_of(&true)),
            (key_of(&1.0f32), key_of(&1.0f32.to_bits())),
            (key_of(&'a'), key_of(&u32::from('a'))),
            (key_of("a"), key_of(&Bytes(b"a"))),
            (key_of("a"), key_of(&'a')),
            (key_of(&Bytes(b"a")), key_of(&vec![b'a'])),
            (key_of(&Some(())), key_of(&())),
            (key_of(&None::<u8>), key_of(&())),
            (key_of(&Some(0u8)), key_of(&0u8)),
            (key_of(&("ab", "c")), key_of(&("a", "bc"))),
            (key_of(&(1u8, 2u8)), key_of(&vec![1u8, 2u8])),
            (
                key_of(&vec![vec![1u8], vec![]]),
                key_of(&vec![vec![], vec![1u8]]),
            ),
            (key_of(&vec![(); 2]), key_of(&vec![(); 3])),
        ];
        for (i, (a, b)) in pairs.iter().enumerate() {
            assert_ne!(a, b, "pair {i}");
        }
        // Where serde makes the same calls, the key is the same: an array is a tuple to
        // serde, and empty sequences of any element type are alike.
        assert_eq!(key_of(&(1u8, 2u8)), key_of(&[1u8, 2u8]));
        assert_eq!(key_of(&Vec::<u8>::new()), key_of(&Vec::<u16>::new()));
    }

    #[test]
    fn floats_hash_by_bits() {
        assert_ne!(key_of(&0.0f64), key_of(&-0.0f64));
        assert_ne!(key_of(&0.0f32), key_of(&-0.0f32));
        assert_eq!(key_of(&f64::NAN), key_of(&f64::NAN));
        let other_nan = f64::from_bits(f64::NAN.to_bits() ^ 1);
        assert!(other_nan.is_nan());
        assert_ne!(key_of(&f64::NAN), key_of(&other_nan));
        assert_ne!(key_of(&1.0f32), key_of(&1.0f64));
    }

    mod v1 {
        #[derive(serde::Serialize)]
        pub struct Point {
            pub x: i32,
            pub y: i32,
        }
    }

    mod renamed {
        #[derive(serde::Serialize)]
        pub struct Point {
            pub x: i32,
            pub z: i32,
        }
    }

    mod reordered {
        #[derive(serde::Serialize)]
        pub struct Point {
            pub y: i32,
            pub x: i32,
        }
    }

    mod retyped {
        #[derive(serde::Serialize)]
        pub struct Point {
            pub x: i32,
            pub y: i64,
        }
    }

    mod other_name {
        #[derive(serde::Serialize)]
        pub struct Spot {
            pub x: i32,
            pub y: i32,
        }
    }

    #[test]
    fn changed_struct_definitions_change_the_key() {
        let base = key_of(&v1::Point { x: 1, y: 2 });
        assert_eq!(base, key_of(&v1::Point { x: 1, y: 2 }));
        assert_ne!(base, key_of(&v1::Point { x: 2, y: 1 }));
        assert_ne!(base, key_of(&renamed::Point { x: 1, z: 2 }));
        assert_ne!(base, key_of(&reordered::Point { y: 2, x: 1 }));
        assert_ne!(base, key_of(&retyped::Point { x: 1, y: 2 }));
        assert_ne!(base, key_of(&other_name::Spot { x: 1, y: 2 }));
        assert_ne!(base, key_of(&(1i32, 2i32)));
    }

    #[derive(serde::Serialize)]
    enum Shape {
        Empty,
        Other,
        Circle(f64),
        Radius(f64),
        Rect(f64, f64),
        Sized { w: f64, h: f64 },
    }

    #[derive(serde::Serialize)]
    struct Circle(f64);

    #[derive(serde::Serialize)]
    struct Empty;

    #[test]
    fn enum_variants_differ() {
        let keys = [
            key_of(&Shape::Empty),
            key_of(&Shape::Other),
            key_of(&Shape::Circle(1.0)),
            key_of(&Shape::Radius(1.0)),
            key_of(&Shape::Rect(1.0, 2.0)),
            key_of(&Shape::Sized { w: 1.0, h: 2.0 }),
            key_of(&Circle(1.0)),
            key_of(&Empty),
            key_of(&()),
            key_of(&(1.0f64, 2.0f64)),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(
            key_of(&Shape::Rect(1.0, 2.0)),
            key_of(&Shape::Rect(1.0, 2.0))
        );
        assert_ne!(
            key_of(&Shape::Rect(1.0, 2.0)),
            key_of(&Shape::Rect(2.0, 1.0))
        );
    }

    fn hash_map(entries: impl IntoIterator<Item = (String, u64)>) -> HashMap<String, u64> {
        // A fresh RandomState per map: its own random iteration order.
        let mut map = HashMap::with_hasher(RandomState::new());
        map.extend(entries);
        map
    }

    fn entries(n: u64) -> Vec<(String, u64)> {
        (0..n).map(|i| (format!("key-{i}"), i * 7)).collect()
    }

    #[test]
    fn maps_hash_independently_of_order() {
        let forward = hash_map(entries(200));
        let backward = hash_map(entries(200).into_iter().rev());
        assert_eq!(key_of(&forward), key_of(&backward));

        let mut changed = forward.clone();
        changed.insert("key-3".to_owned(), 0);
        assert_ne!(key_of(&forward), key_of(&changed));
        let mut smaller = forward.clone();
        smaller.remove("key-3");
        assert_ne!(key_of(&forward), key_of(&smaller));
        // Swapping two values keeps the multiset of keys and of values, not the entries.
        let mut swapped = forward.clone();
        swapped.insert("key-1".to_owned(), 14);
        swapped.insert("key-2".to_owned(), 7);
        assert_ne!(key_of(&forward), key_of(&swapped));

        assert_ne!(key_of(&hash_map([])), key_of(&()));
        assert_ne!(key_of(&hash_map([])), key_of(&Vec::<(String, u64)>::new()));
        // A map is keyed by its contents, not its container (documented).
        let btree: BTreeMap<String, u64> = entries(200).into_iter().collect();
        assert_eq!(key_of(&btree), key_of(&forward));
        // ...but a list of pairs is a sequence, with its order.
        assert_ne!(key_of(&btree), key_of(&entries(200)));
    }

    #[test]
    fn nested_maps_hash_by_contents() {
        let build = |reverse: bool| {
            let mut outer: HashMap<u32, HashMap<String, Vec<HashMap<u8, u8>>>> = HashMap::new();
            let mut order: Vec<u32> = (0..20).collect();
            if reverse {
                order.reverse();
            }
            for i in order {
                let mut inner = HashMap::new();
                for j in 0..i {
                    let leaf: HashMap<u8, u8> = (0..(j as u8)).map(|b| (b, b ^ 0x55)).collect();
                    inner.insert(format!("{i}/{j}"), vec![leaf.clone(), leaf]);
                }
                outer.insert(i, inner);
            }
            outer
        };
        let a = build(false);
        let b = build(true);
        assert_eq!(key_of(&a), key_of(&b));
        // Two maps side by side, and after a nested map, still hash consistently.
        assert_eq!(key_of(&(&a, 1u8, &a)), key_of(&(&b, 1u8, &b)));

        let mut c = build(false);
        c.get_mut(&7)
            .and_then(|inner| inner.get_mut("7/3"))
            .map(|leaves| leaves[1].insert(0, 0));
        assert_ne!(key_of(&a), key_of(&c));

        // Moving an entry between the nested levels changes the key.
        let flat: HashMap<u8, HashMap<u8, u8>> = [(1, [(2, 3), (4, 5)].into())].into();
        let split: HashMap<u8, HashMap<u8, u8>> =
            [(1, [(2, 3)].into()), (4, HashMap::new())].into();
        assert_ne!(key_of(&flat), key_of(&split));
    }

    #[test]
    fn repeated_entries_do_not_cancel() {
        struct Pairs(Vec<(u8, u8)>);
        impl Serialize for Pairs {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
            }
        }
        let twice = key_of(&Pairs(vec![(1, 1), (1, 1), (2, 2), (2, 2)]));
        let other = key_of(&Pairs(vec![(3, 3), (3, 3), (4, 4), (4, 4)]));
        assert_ne!(twice, other);
        assert_ne!(key_of(&Pairs(vec![(1, 1), (1, 1)])), key_of(&Pairs(vec![])));
    }

    #[test]
    fn sets_hash_in_iteration_order() {
        // Documented limitation: serde shows a set as a sequence.
        let set: BTreeSet<u8> = [3, 1, 2].into();
        assert_eq!(key_of(&set), key_of(&vec![1u8, 2, 3]));
        assert_ne!(key_of(&set), key_of(&vec![3u8, 1, 2]));
    }

    #[test]
    fn serialize_errors_become_key_errors() {
        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: ser::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(ser::Error::custom("not today"))
            }
        }
        let mut hasher = KeyHasher::new();
        let err = hasher.write_value(&(1u8, Refuses)).expect_err("fails");
        assert_eq!(err.to_string(), "cannot hash value: not today");

        // Inside a map entry too, and the next map after the failure hashes cleanly.
        let mut map = BTreeMap::new();
        map.insert(1u8, Refuses);
        let mut hasher = KeyHasher::new();
        assert!(hasher.write_value(&map).is_err());
        hasher = KeyHasher::new();
        let good: BTreeMap<u8, u8> = [(1, 2)].into();
        hasher.write_value(&good).expect("hashes");
        assert_eq!(hasher.finish(), key_of(&good));

        // A broken map protocol is an error, not a panic.
        struct KeyOnly;
        impl Serialize for KeyOnly {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(None)?;
                map.serialize_key(&1u8)?;
                map.end()
            }
        }
        assert!(KeyHasher::new().write_value(&KeyOnly).is_err());
    }

    #[test]
    fn collect_str_matches_str() {
        struct Shown(u32);
        impl Serialize for Shown {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&format_args!("n={}", self.0))
            }
        }
        assert_eq!(key_of(&Shown(42)), key_of("n=42"));
        assert_eq!(
            key_of(&vec![Shown(1), Shown(22)]),
            key_of(&vec!["n=1", "n=22"])
        );
    }

    #[test]
    fn labels_raw_bytes_and_values_are_framed_apart() {
        let digest = |f: &dyn Fn(&mut KeyHasher)| {
            let mut hasher = KeyHasher::new();
            f(&mut hasher);
            hasher.finish()
        };
        let ab_c = digest(&|h| {
            h.write_label("ab");
            h.write_label("c");
        });
        let a_bc = digest(&|h| {
            h.write_label("a");
            h.write_label("bc");
        });
        assert_ne!(ab_c, a_bc);
        assert_ne!(
            digest(&|h| h.write_label("a")),
            digest(&|h| h.write_raw(b"a"))
        );
        assert_ne!(
            digest(&|h| h.write_label("a")),
            digest(&|h| h.write_value("a").expect("hashes"))
        );
        assert_ne!(digest(&|_| {}), digest(&|h| h.write_raw(b"")));
    }

    /// The stream of a few values, written out by hand: pins the encoding (a failure here
    /// means keys changed, which needs a new [`KEY_FORMAT`]).
    #[test]
    fn encoding_is_the_documented_one() {
        #[derive(serde::Serialize)]
        struct P {
            x: u16,
        }
        let mut hasher = KeyHasher::new();
        hasher.write_label("f");
        hasher.write_raw(&[9]);
        hasher
            .write_value(&(
                P { x: 7 },
                Some(-1i8),
                "hi",
                vec![1.5f32],
                Shape::Radius(2.0),
            ))
            .expect("hashes");
        let map: BTreeMap<u8, bool> = [(1, true)].into();
        hasher.write_value(&map).expect("hashes");

        let mut s: Vec<u8> = Vec::new();
        let len = |s: &mut Vec<u8>, n: u64| s.extend_from_slice(&n.to_le_bytes());
        s.push(tag::LABEL);
        len(&mut s, KEY_FORMAT.len() as u64);
        s.extend_from_slice(KEY_FORMAT.as_bytes());
        s.push(tag::LABEL);
        len(&mut s, 1);
        s.extend_from_slice(b"f");
        s.push(tag::RAW);
        len(&mut s, 1);
        s.push(9);
        s.push(tag::TUPLE);
        {
            s.push(tag::STRUCT);
            len(&mut s, 1);
            s.extend_from_slice(b"P");
            s.push(tag::LABEL);
            len(&mut s, 1);
            s.extend_from_slice(b"x");
            s.push(tag::U16);
            s.extend_from_slice(&7u16.to_le_bytes());
            s.push(tag::END);
            len(&mut s, 1);

            s.extend_from_slice(&[tag::SOME, tag::I8, 0xff]);
            s.push(tag::STR);
            len(&mut s, 2);
            s.extend_from_slice(b"hi");
            s.push(tag::SEQ);
            s.extend_from_slice(&[tag::RUN, tag::F32, 1, 0]);
            s.extend_from_slice(&1.5f32.to_bits().to_le_bytes());
            s.push(tag::END);
            len(&mut s, 1);

            s.push(tag::NEWTYPE_VARIANT);
            len(&mut s, 5);
            s.extend_from_slice(b"Shape");
            s.extend_from_slice(&3u32.to_le_bytes());
            s.push(tag::LABEL);
            len(&mut s, 6);
            s.extend_from_slice(b"Radius");
            s.push(tag::F64);
            s.extend_from_slice(&2.0f64.to_bits().to_le_bytes());
        }
        s.push(tag::END);
        len(&mut s, 5);
        let entry = blake3::hash(&[tag::U8, 1, tag::BOOL, 1]);
        s.push(tag::MAP);
        len(&mut s, 1);
        s.extend_from_slice(entry.as_bytes());

        assert_eq!(hasher.finish().as_bytes(), blake3::hash(&s).as_bytes());
    }

    /// Runs: chunks of `RUN_BYTES` of values, broken by anything written between elements.
    #[test]
    fn runs_are_chunked_by_value_count() {
        let floats: Vec<f64> = (0..1000).map(f64::from).collect();
        let mut s: Vec<u8> = Vec::new();
        s.push(tag::LABEL);
        s.extend_from_slice(&(KEY_FORMAT.len() as u64).to_le_bytes());
        s.extend_from_slice(KEY_FORMAT.as_bytes());
        s.push(tag::SEQ);
        for chunk in floats.chunks(RUN_BYTES / 8) {
            s.extend_from_slice(&[tag::RUN, tag::F64]);
            s.extend_from_slice(&(chunk.len() as u16).to_le_bytes());
            for f in chunk {
                s.extend_from_slice(&f.to_bits().to_le_bytes());
            }
        }
        s.push(tag::END);
        s.extend_from_slice(&1000u64.to_le_bytes());
        assert_eq!(key_of(&floats).as_bytes(), blake3::hash(&s).as_bytes());
    }

    #[test]
    fn runs_do_not_blur_values() {
        // Same bytes, other types or other nesting: other keys.
        assert_ne!(key_of(&vec![1u8, 2]), key_of(&vec![0x0201u16]));
        assert_ne!(key_of(&vec![1u8, 2]), key_of(&(1u8, 2u8)));
        assert_ne!(key_of(&vec![1u8, 2]), key_of(&vec![vec![1u8], vec![2]]));
        assert_ne!(
            key_of(&vec![vec![1u8, 2], vec![]]),
            key_of(&vec![vec![1u8], vec![2]])
        );
        assert_ne!(key_of(&vec![1u8, 2]), key_of(&Bytes(&[1, 2])));
        // A run broken by another type, or by an element that is not a primitive.
        assert_ne!(key_of(&(1u8, 2u16, 3u8)), key_of(&(1u8, 3u8, 2u16)));
        assert_ne!(
            key_of(&vec![Some(1u8), None, Some(2)]),
            key_of(&vec![Some(1u8), Some(2), None])
        );
        assert_ne!(key_of(&vec![1.0f64; 512]), key_of(&vec![1.0f64; 513]));
    }

    /// Buffer sizes from "none at all" (every write is its own `update`) to the real one
    /// give the same key, for values smaller than, around and much bigger than each
    /// buffer, mixing small writes with big slices that bypass the buffer.
    #[test]
    fn buffering_does_not_change_the_key() {
        let big_bytes: Vec<u8> = (0..3 * BUF_LEN + 17)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let long_text = "chunk ".repeat(BUF_LEN / 3);
        let floats: Vec<f64> = (0..20_000).map(|i| f64::from(i) * 0.25).collect();
        let map = hash_map(entries(300));
        let edge: Vec<Vec<u8>> = (0..70).map(|n| big_bytes[..n].to_vec()).collect();

        type Feed<'a> = Box<dyn Fn(&mut KeyHasher) + 'a>;
        let values: Vec<Feed<'_>> = vec![
            Box::new(|h| h.write_value(&floats).expect("hashes")),
            Box::new(|h| h.write_value(&Bytes(&big_bytes)).expect("hashes")),
            Box::new(|h| {
                // Small, big, small: the buffered prefix must go to blake3 before the bypass.
                h.write_label("before");
                h.write_value(&(1u8, Bytes(&big_bytes), "mid", &long_text, 2u8))
                    .expect("hashes");
                h.write_raw(&big_bytes[..BUF_LEN]);
                h.write_raw(&big_bytes[..BUF_LEN - 1]);
                h.write_label("after");
            }),
            Box::new(|h| {
                let bytes: Vec<Bytes<'_>> = edge.iter().map(|v| Bytes(v)).collect();
                h.write_value(&bytes).expect("hashes");
                h.write_value(&edge).expect("hashes");
            }),
            Box::new(|h| h.write_value(&(&map, &floats, &map)).expect("hashes")),
        ];
        for (i, feed) in values.iter().enumerate() {
            let digest = |buf_len: usize| {
                let mut hasher = KeyHasher::with_buffer_len(buf_len);
                feed(&mut hasher);
                hasher.finish()
            };
            let unbuffered = digest(0);
            for buf_len in [1, 2, 7, 9, 64, 1000, 4096, BUF_LEN, 4 * BUF_LEN] {
                assert_eq!(digest(buf_len), unbuffered, "value {i}, buffer {buf_len}");
            }
        }
    }

    const CHILD_VAR: &str = "FILE_CACHE_KEY_TEST_CHILD";
    const DIGEST_MARK: &str = "file-cache-key-digest=";
    const ORDER_MARK: &str = "file-cache-key-order=";

    /// Run by `maps_hash_alike_in_two_processes` in a child process (with `CHILD_VAR` set):
    /// prints the key of a `HashMap` built with this process's random hasher. Run alone,
    /// checks the same map built in another order hashes alike.
    #[test]
    fn map_digest_child() {
        let map = hash_map(entries(1000));
        let key = key_of(&map);
        assert_eq!(key, key_of(&hash_map(entries(1000).into_iter().rev())));
        if std::env::var_os(CHILD_VAR).is_some() {
            let order: Vec<&str> = map.keys().take(8).map(String::as_str).collect();
            println!("{ORDER_MARK}{}", order.join(","));
            println!("{DIGEST_MARK}{}", key.to_hex());
        }
    }

    #[test]
    fn maps_hash_alike_in_two_processes() {
        let exe = std::env::current_exe().expect("test binary path");
        let run = || {
            let out = std::process::Command::new(&exe)
                .args(["--exact", "key::tests::map_digest_child", "--nocapture"])
                .env(CHILD_VAR, "1")
                .output()
                .expect("child test runs");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(out.status.success(), "child failed:\n{stdout}");
            let field = |mark: &str| {
                stdout
                    .lines()
                    .find_map(|line| line.strip_prefix(mark))
                    .map(str::to_owned)
                    .unwrap_or_else(|| panic!("child printed no {mark} line:\n{stdout}"))
            };
            (field(DIGEST_MARK), field(ORDER_MARK))
        };
        let (digest1, order1) = run();
        let (digest2, order2) = run();
        assert_eq!(digest1.len(), 64);
        // The processes iterated their maps in different orders, yet agree on the key.
        assert_ne!(
            order1, order2,
            "both processes iterated alike; the test proves nothing"
        );
        assert_eq!(digest1, digest2);
        assert_eq!(digest1, key_of(&hash_map(entries(1000))).to_hex());
    }
}
