//! Keys: the canonical byte stream of a call's arguments, hashed with blake3. It owns the
//! key format; it knows nothing of functions, entries or files (the call's builder feeds
//! it).
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
//!   blake3's speed: one tag per 512 values instead of one per value. A `Vec` or slice of
//!   fixed-width numbers, which serde hands over as a whole, is written a chunk at a time
//!   rather than value by value (`Sink::number_seq`): the same bytes;
//! - floats by bits (`to_bits`), so `-0.0 != 0.0` and NaNs hash by payload;
//! - `str` and bytes: the length (LEB128: one byte below 128), then the bytes;
//! - names (type and variant names) as labels: `LABEL`, the length, the bytes; unit,
//!   newtype, tuple structs and variants as the (enum's) name, the variant's `u32` index
//!   and the variant's name, so a renamed, reordered or retyped argument type changes
//!   the key;
//! - structs and struct variants: their tag (`STRUCT`, `STRUCT_VARIANT`), their fields'
//!   values (no names), then `SHAPE` and the number of their *shape*: the struct's name
//!   (for a variant the enum's name, the variant's index and name) and its field names in
//!   order. A stream numbers shapes 0, 1, 2… where each is first used, and spells a shape
//!   out once, right before the token that first names its number: `DEF`, the kind tag,
//!   the names (each a LEB128 length and its bytes; the variant's index as a `u32`) and
//!   the field count. A renamed, reordered, added or skipped field (`skip_serializing_if`),
//!   or another struct name, is another shape; the numbers depend only on the stream, so
//!   the key does too (which shapes the sink remembers from earlier keys makes no
//!   difference but speed: see the `shape` module);
//! - *rows*: consecutive elements of a sequence or tuple that are structs (not variants)
//!   of one shape whose fields (at most 32) are all fixed-width primitives of the same
//!   types are written as row chunks: `ROWS`, the
//!   field count (`u8`), a `u16` row count, the shape's number (LEB128), the fields' tags,
//!   then the rows' values alone, at most [`RUN_BYTES`] bytes of rows per chunk. Like a
//!   run, a chunk stands for that many element slots and ends where the values say, never
//!   where the buffer does (see the `row` module). A `Vec` of points hashes about as many
//!   bytes as the points' memory. (Structs of one shape that are not rows, and tuples of
//!   primitives, that follow one another in a sequence are written by fast lanes of
//!   `collect_seq`, the `lane` module: the same bytes, with less work per field);
//! - sequences and tuples (all kinds): their header (tag and names), then the
//!   elements, then `END` and the element count (LEB128). Element encodings never start
//!   with `END`, so the stream is unambiguous whether or not serde told us the length up
//!   front, and the length hint does not change the key (a `Vec` and an iterator of
//!   unknown length with the same elements hash the same);
//! - maps: `MAP`, the entry count, then the entries (key, then value), sorted by a hash
//!   of their bytes (see `MapEntries`); an entry longer than [`ENTRY_INLINE`](order::ENTRY_INLINE) bytes stands
//!   as `DIGEST` and its blake3 digest. Each entry numbers its shapes from 0 on its own,
//!   so its bytes depend on it alone, not on the entries before it. Two equal `HashMap`s built in different processes
//!   (different random iteration orders) therefore give the same key, and a `BTreeMap`
//!   gives the same key as a `HashMap` with the same entries: a map argument is keyed by
//!   its contents, not by its container.
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
//! Small writes are collected in a buffer that is handed to blake3 in one `update` when
//! [`FLUSH_AT`] bytes are collected (blake3 hashes long inputs with SIMD across chunks; one
//! `update` per primitive is 8–10x slower). Slices at least that long (big byte strings,
//! long strings) flush it and go to blake3 directly, without a copy.

use crate::pod;
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
pub(crate) const KEY_FORMAT: &str = "file_cache key v4";

/// The buffer's size: the most bytes collected before one `blake3::Hasher::update`
/// (the default collects [`FLUSH_AT`]).
pub(crate) const BUF_LEN: usize = 64 * 1024;

/// The buffer hands blake3 whole multiples of this many bytes of the stream: sixteen of
/// its 1 KiB chunks, what its widest SIMD path (AVX-512) hashes at once.
const CHUNK_LEN: usize = 16 * 1024;

/// A key's buffer is flushed when it would grow past this many bytes: just past three
/// [`CHUNK_LEN`]s, so a flush hands blake3 48 KiB and moves the few bytes past them to
/// the front. (A 32 KiB buffer flushed when full handed blake3 16 KiB and moved up to
/// 16 KiB: as many bytes copied as hashed. And each `update` leaves its last 1 KiB chunk
/// to the next, which compresses it without SIMD: fewer, longer updates, fewer such.)
pub(crate) const FLUSH_AT: usize = 3 * CHUNK_LEN + 1024;

/// Most bytes of values in one run chunk (see the module docs): 512 `f64`, 4096 `u8`.
pub(crate) const RUN_BYTES: usize = 4096;
/// A run chunk's header: `RUN`, the element tag, a `u16` count.
const RUN_HEADER: usize = 4;

/// The serializer methods of every fixed-width primitive, each handing back its tag and
/// little-endian bytes ([`sink::Val::prim`]). One list for the sink's serializer and for
/// [`fast::PrimOnly`]: the fast lane of `collect_seq` is right only while both encode every
/// primitive alike.
macro_rules! primitives {
    ($error:ty) => {
        primitives! {
            $error;
            serialize_bool(v: bool) => tag::BOOL, [u8::from(v)];
            serialize_i8(v: i8) => tag::I8, v.to_le_bytes();
            serialize_i16(v: i16) => tag::I16, v.to_le_bytes();
            serialize_i32(v: i32) => tag::I32, v.to_le_bytes();
            serialize_i64(v: i64) => tag::I64, v.to_le_bytes();
            serialize_i128(v: i128) => tag::I128, v.to_le_bytes();
            serialize_u8(v: u8) => tag::U8, [v];
            serialize_u16(v: u16) => tag::U16, v.to_le_bytes();
            serialize_u32(v: u32) => tag::U32, v.to_le_bytes();
            serialize_u64(v: u64) => tag::U64, v.to_le_bytes();
            serialize_u128(v: u128) => tag::U128, v.to_le_bytes();
            serialize_f32(v: f32) => tag::F32, v.to_bits().to_le_bytes();
            serialize_f64(v: f64) => tag::F64, v.to_bits().to_le_bytes();
            serialize_char(v: char) => tag::CHAR, u32::from(v).to_le_bytes();
        }
    };
    ($error:ty; $($name:ident($v:ident: $ty:ty) => $tag:expr, $bytes:expr;)*) => {
        $(
            #[inline]
            fn $name(self, $v: $ty) -> Result<Val, $error> {
                Ok(Val::prim($tag, $bytes))
            }
        )*
    };
}

/// The serializer methods that take a value of any type (`Some`, newtypes, `collect_str`):
/// a lane refuses them all with `$refusal` (its `Error`), and the caller writes the item
/// through the sink instead.
macro_rules! refuse_values {
    ($ok:ty, $error:ty, $refusal:expr) => {
        #[inline]
        fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<$ok, $error> {
            Err($refusal)
        }

        #[inline]
        fn serialize_newtype_struct<T: ?Sized + Serialize>(
            self,
            _: &'static str,
            _: &T,
        ) -> Result<$ok, $error> {
            Err($refusal)
        }

        #[inline]
        fn serialize_newtype_variant<T: ?Sized + Serialize>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<$ok, $error> {
            Err($refusal)
        }

        #[inline]
        fn collect_str<T: ?Sized + fmt::Display>(self, _: &T) -> Result<$ok, $error> {
            Err($refusal)
        }
    };
}

/// Refuses every serializer method of [`fast::PrimOnly`] that is not a primitive.
macro_rules! not_prim {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(
            #[inline]
            fn $name(self, $(_: $ty),*) -> Result<$ret, NotPrim> {
                Err(NotPrim)
            }
        )*
    };
}

/// What the fast-lane serializers ([`fast::PrimOnly`], [`fast::ShortOnly`], [`fast::Prefetch`]) share: they
/// take primitives, to [`sink::Val::Prim`], as the sink's serializer does, and refuse with
/// [`fast::NotPrim`] everything but strings and bytes (each says what it does with those).
macro_rules! fast_lane {
    () => {
        type Ok = Val;
        type Error = NotPrim;
        type SerializeSeq = ser::Impossible<Val, NotPrim>;
        type SerializeTuple = ser::Impossible<Val, NotPrim>;
        type SerializeTupleStruct = ser::Impossible<Val, NotPrim>;
        type SerializeTupleVariant = ser::Impossible<Val, NotPrim>;
        type SerializeMap = ser::Impossible<Val, NotPrim>;
        type SerializeStruct = ser::Impossible<Val, NotPrim>;
        type SerializeStructVariant = ser::Impossible<Val, NotPrim>;

        #[inline]
        fn is_human_readable(&self) -> bool {
            // As the sink's: an impl with two forms must pick the same one in both.
            false
        }

        primitives!(NotPrim);

        not_prim! {
            serialize_none() -> Val;
            serialize_unit() -> Val;
            serialize_unit_struct(name: &'static str) -> Val;
            serialize_unit_variant(name: &'static str, index: u32, variant: &'static str) -> Val;
            serialize_seq(len: Option<usize>) -> Self::SerializeSeq;
            serialize_tuple(len: usize) -> Self::SerializeTuple;
            serialize_tuple_struct(name: &'static str, len: usize) -> Self::SerializeTupleStruct;
            serialize_tuple_variant(
                name: &'static str,
                index: u32,
                variant: &'static str,
                len: usize
            ) -> Self::SerializeTupleVariant;
            serialize_map(len: Option<usize>) -> Self::SerializeMap;
            serialize_struct(name: &'static str, len: usize) -> Self::SerializeStruct;
            serialize_struct_variant(
                name: &'static str,
                index: u32,
                variant: &'static str,
                len: usize
            ) -> Self::SerializeStructVariant;
        }

        refuse_values!(Val, NotPrim, NotPrim);
    };
}

mod fast;
mod hasher;
mod lane;
mod order;
mod row;
mod serializer;
mod shape;
mod sink;
mod tag;

pub(crate) use hasher::KeyHasher;

#[cfg(test)]
mod lane_tests;
#[cfg(test)]
mod shapes_tests;
#[cfg(test)]
mod tests;
