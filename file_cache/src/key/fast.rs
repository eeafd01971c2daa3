//! The fast lanes: stateless serializers that take only primitives ([`PrimOnly`]), or
//! primitives and short strings ([`ShortOnly`]), so a sequence or map of them is written
//! without the general serializer's frames, and [`Prefetch`], which asks the memory system
//! for a map entry's bytes ahead of hashing them. The bytes they write are the general
//! serializer's, byte for byte.

use super::sink::*;
use super::*;

/// The serializer of `collect_seq`'s fast lane: takes primitives (exactly as the sink's
/// serializer does, to [`Val::Prim`]) and refuses everything else with [`NotPrim`]
/// before anything is written.
pub(super) struct PrimOnly;

/// [`PrimOnly`]'s refusal: the value is not a primitive.
#[derive(Debug)]
pub(super) struct NotPrim;

impl fmt::Display for NotPrim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a primitive")
    }
}

impl std::error::Error for NotPrim {}

impl ser::Error for NotPrim {
    fn custom<T: fmt::Display>(_: T) -> Self {
        NotPrim
    }
}

impl ser::Serializer for PrimOnly {
    fast_lane!();

    not_prim! {
        serialize_str(v: &str) -> Val;
        serialize_bytes(v: &[u8]) -> Val;
    }
}

/// The serializer of a map entry's fast lane (see `MapEntries`): takes primitives (as
/// [`PrimOnly`], to [`Val::Prim`]), writes strings and byte strings straight into the map's
/// arena, framed as the sink frames them (tag, LEB128 length, bytes), and refuses
/// everything else with [`NotPrim`] before anything is written.
pub(super) struct ShortOnly<'a>(pub(super) &'a mut Vec<u8>);

impl ShortOnly<'_> {
    #[inline(always)]
    pub(super) fn framed(self, tag: u8, data: &[u8]) -> Result<Val, NotPrim> {
        let (len, n) = varint(len64(data.len()));
        self.0.push(tag);
        self.0.extend_from_slice(&len[..n]);
        self.0.extend_from_slice(data);
        Ok(Val::Written)
    }
}

impl ser::Serializer for ShortOnly<'_> {
    fast_lane!();

    #[inline(always)]
    fn serialize_str(self, v: &str) -> Result<Val, NotPrim> {
        self.framed(tag::STR, v.as_bytes())
    }

    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<Val, NotPrim> {
        self.framed(tag::BYTES, v)
    }
}

/// How many map entries `collect_map` takes from the iterator ahead of their turn.
pub(super) const PREFETCH_AHEAD: usize = 8;

/// Asks the memory system for the strings and bytes of a map entry about to be encoded.
#[inline(always)]
pub(super) fn prefetch<K: Serialize, V: Serialize>(key: &K, value: &V) {
    let _ = key.serialize(Prefetch);
    let _ = value.serialize(Prefetch);
}

/// A serializer that only prefetches: a string's or byte string's first bytes are asked of
/// the memory system (a hint; nothing is read); everything else is refused at once, so it
/// costs one call. Nothing it does changes a key.
pub(super) struct Prefetch;

impl Prefetch {
    #[inline(always)]
    pub(super) fn hint(data: &[u8]) -> Result<Val, NotPrim> {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            #[allow(unsafe_code)]
            // SAFETY: a prefetch is a hint that never faults and reads nothing into the
            // program, whatever the address; the address is a live slice's anyway. SSE,
            // which the instruction needs, is part of every x86_64 target.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(data.as_ptr().cast())
            };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = data;
        Ok(Val::Written)
    }
}

impl ser::Serializer for Prefetch {
    fast_lane!();

    #[inline(always)]
    fn serialize_str(self, v: &str) -> Result<Val, NotPrim> {
        Prefetch::hint(v.as_bytes())
    }

    #[inline(always)]
    fn serialize_bytes(self, v: &[u8]) -> Result<Val, NotPrim> {
        Prefetch::hint(v)
    }
}

/// Appends what a [`ShortOnly`] serializer took: a primitive's tag and bytes (strings and
/// bytes are in already).
#[inline(always)]
pub(super) fn append_short(out: &mut Vec<u8>, taken: Val) {
    if let Val::Prim { tag, width, bytes } = taken {
        out.push(tag);
        out.extend_from_slice(&bytes[..usize::from(width)]);
    }
}
