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
//!   blake3's speed: one tag per 512 values instead of one per value. A `Vec` or slice of
//!   fixed-width numbers, which serde hands over as a whole, is written a chunk at a time
//!   rather than value by value (`Sink::number_seq`): the same bytes;
//! - floats by bits (`to_bits`), so `-0.0 != 0.0` and NaNs hash by payload;
//! - `str` and bytes: the length (LEB128: one byte below 128), then the bytes;
//! - names (type, field and variant names) as labels: `LABEL`, the length, the bytes;
//!   enum variants as the enum's name, the variant's `u32` index and the variant's name,
//!   so a renamed, reordered or retyped argument type changes the key;
//! - sequences, tuples and structs (all kinds): their header (tag and names), then the
//!   elements (struct fields as a label and a value), then `END` and the element count
//!   as a `u64`. Element encodings never start with `END`, so the stream is unambiguous
//!   whether or not serde told us the length up front, and the length hint does not
//!   change the key (a `Vec` and an iterator of unknown length with the same elements
//!   hash the same);
//! - maps: `MAP`, the entry count, then the entries (key, then value), sorted by a hash
//!   of their bytes (see `MapEntries`); an entry longer than [`ENTRY_INLINE`] bytes stands
//!   as `DIGEST` and its blake3 digest. Two equal `HashMap`s built in different processes
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
//! Small writes are collected in a buffer of [`BUF_LEN`] bytes that is handed to blake3
//! in one `update` when full (blake3 hashes long inputs with SIMD across chunks; one
//! `update` per primitive is 8–10x slower). Slices at least as long as the buffer (big
//! byte strings, long strings) flush it and go to blake3 directly, without a copy.

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
pub(crate) const KEY_FORMAT: &str = "file_cache key v3";

/// Bytes collected before one `blake3::Hasher::update`.
pub(crate) const BUF_LEN: usize = 32 * 1024;

/// The buffer hands blake3 whole multiples of this many bytes of the stream: sixteen of
/// its 1 KiB chunks, what its widest SIMD path (AVX-512) hashes at once.
const CHUNK_LEN: usize = 16 * 1024;

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
    /// A map entry too long to inline, by its blake3 digest.
    pub(super) const DIGEST: u8 = 0x23;
}

/// Streaming canonical hasher: labels, raw bytes and values in, one [`Key`] out.
///
/// After [`KeyHasher::write_value`] returns an error, the stream holds part of that value:
/// discard the hasher.
pub(crate) struct KeyHasher {
    // Boxed (a sink is its buffer plus a ~2 KB blake3 hasher) and reused: dropping a
    // hasher hands its sink back to its thread (see `SPARE`), so a call allocates none.
    sink: Option<SinkBox>,
}

thread_local! {
    /// One idle sink per thread, reused by the next [`KeyHasher`] built on it.
    static SPARE: std::cell::Cell<Option<SinkBox>> = const { std::cell::Cell::new(None) };
}

/// An owned sink: on the heap like a `Box<Sink>`, or the one in [`STATIC_SINK`].
///
/// Why a static one: a process's first call builds its first sink, and a heap sink's
/// 32 KiB buffer is zeroed when it is built: 8 pages touched, each a page fault (2.3 µs
/// each on the benchmark's VM), with the heap grown for it, for a key of a few bytes. A
/// static that starts as zeros lives in the zero-filled part of the program's image: the
/// kernel provides each page on its first touch, so a small key touches one page of the
/// buffer. One sink at a time can use it (the first thread to ask, in practice the main
/// thread, which keeps it in `SPARE`); others come from the heap.
struct SinkBox {
    sink: std::ptr::NonNull<Sink>,
    /// Whether `sink` is [`STATIC_SINK`]'s (else it came from `Box::leak`).
    is_static: bool,
}

/// Room for one sink, all zeros until first used (see [`SinkBox`]).
struct StaticSink(std::cell::UnsafeCell<std::mem::MaybeUninit<Sink>>);

// SAFETY: only the `SinkBox` that holds `STATIC_SINK_TAKEN` touches the sink.
#[allow(unsafe_code)]
unsafe impl Sync for StaticSink {}

static STATIC_SINK: StaticSink =
    StaticSink(std::cell::UnsafeCell::new(std::mem::MaybeUninit::zeroed()));

/// Whether a `SinkBox` holds [`STATIC_SINK`].
static STATIC_SINK_TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

// SAFETY: a `SinkBox` owns its sink as a `Box` would (the static one through
// `STATIC_SINK_TAKEN`), and `Sink` is `Send`.
#[allow(unsafe_code)]
unsafe impl Send for SinkBox {}

impl SinkBox {
    #[allow(unsafe_code)]
    fn new() -> SinkBox {
        use std::sync::atomic::Ordering;
        if !STATIC_SINK_TAKEN.load(Ordering::Relaxed)
            && !STATIC_SINK_TAKEN.swap(true, Ordering::Acquire)
        {
            let at = STATIC_SINK.0.get().cast::<Sink>();
            // SAFETY: taking the flag makes this the only user of the static sink, whose
            // last user (if any) dropped its fields before giving the flag back. Its
            // buffer is initialized: zeros from the start, or the bytes a last user
            // wrote; `init_fields` writes the rest.
            unsafe { Sink::init_fields(at) };
            return SinkBox {
                sink: std::ptr::NonNull::new(at).expect("a static is not null"),
                is_static: true,
            };
        }
        SinkBox {
            sink: std::ptr::NonNull::from(Box::leak(Sink::boxed())),
            is_static: false,
        }
    }
}

impl std::ops::Deref for SinkBox {
    type Target = Sink;

    #[allow(unsafe_code)]
    fn deref(&self) -> &Sink {
        // SAFETY: `sink` is initialized and owned by `self` for its whole life.
        unsafe { self.sink.as_ref() }
    }
}

impl std::ops::DerefMut for SinkBox {
    #[allow(unsafe_code)]
    fn deref_mut(&mut self) -> &mut Sink {
        // SAFETY: as in `deref`, and `&mut self` makes this the only reference.
        unsafe { self.sink.as_mut() }
    }
}

impl Drop for SinkBox {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        let at = self.sink.as_ptr();
        if self.is_static {
            // SAFETY: the sink is initialized and this is its only user: its fields are
            // dropped once, then the static is given back (the buffer stays initialized).
            unsafe { std::ptr::drop_in_place(at) };
            STATIC_SINK_TAKEN.store(false, std::sync::atomic::Ordering::Release);
        } else {
            // SAFETY: `at` came from `Box::leak` and is given back once.
            drop(unsafe { Box::from_raw(at) });
        }
    }
}

impl KeyHasher {
    pub(crate) fn new() -> KeyHasher {
        KeyHasher::with_buffer_len(BUF_LEN)
    }

    /// A hasher that hands blake3 at most `buf_len` buffered bytes at once (0: every
    /// write goes to blake3 as is). The key does not depend on it; tests use it to prove
    /// that.
    pub(crate) fn with_buffer_len(buf_len: usize) -> KeyHasher {
        let mut hasher = KeyHasher::bare(buf_len);
        // A label rather than blake3's derive-key mode: same separation, and no
        // compression of a context string on every call.
        hasher.write_label(KEY_FORMAT);
        hasher
    }

    /// A hasher whose stream starts with `prefix`, the digest of another key stream
    /// (which started with the format's label), framed as raw bytes: what a cached
    /// function's calls continue from (see `KeyBuilder::begin`).
    pub(crate) fn continuing(prefix: &[u8; 32]) -> KeyHasher {
        let mut hasher = KeyHasher::bare(BUF_LEN);
        hasher.write_raw(prefix);
        hasher
    }

    fn bare(buf_len: usize) -> KeyHasher {
        let mut sink = SPARE
            .try_with(std::cell::Cell::take)
            .ok()
            .flatten()
            .unwrap_or_else(SinkBox::new);
        sink.limit = buf_len.min(BUF_LEN);
        KeyHasher { sink: Some(sink) }
    }

    fn sink(&mut self) -> &mut Sink {
        // Only `finish` and `drop` take it out, and both consume the hasher.
        self.sink.get_or_insert_with(SinkBox::new)
    }

    /// Feeds a framed label (a name, a type name, a format tag).
    pub(crate) fn write_label(&mut self, label: &str) {
        self.sink().framed(tag::LABEL, label.as_bytes());
    }

    /// Feeds raw framed bytes (e.g. a code hash).
    pub(crate) fn write_raw(&mut self, bytes: &[u8]) {
        self.sink().framed(tag::RAW, bytes);
    }

    /// Feeds a value through the canonical serializer.
    pub(crate) fn write_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), KeyError> {
        let sink = self.sink();
        match value.serialize(&mut *sink) {
            Ok(value) => {
                sink.place(value);
                Ok(())
            }
            Err(Error(msg)) => Err(KeyError(msg.into())),
        }
    }

    pub(crate) fn finish(mut self) -> Key {
        Key(self.sink().digest())
    }
}

impl Drop for KeyHasher {
    fn drop(&mut self) {
        if let Some(mut sink) = self.sink.take() {
            sink.reset();
            // During thread teardown the slot may be gone: then the sink is just freed.
            let _ = SPARE.try_with(|spare| spare.set(Some(sink)));
        }
    }
}

/// A blake3 hasher behind a write buffer; the serializer writes into it.
///
/// The buffer is an array inside the sink rather than a `Vec`: the compiler then knows
/// that a byte stored into it cannot change the sink's own fields (a store through a
/// `Vec`'s pointer might alias anything), and keeps the write position in a register
/// across the elements of a sequence.
#[repr(C, align(64))] // `buf` first: see `put`; on a cache line, on the heap or static.
struct Sink {
    /// `BUF_LEN` bytes and a tail, so that `put` never needs a bounds check.
    buf: [u8; BUF_LEN + 16],
    /// Bytes of `buf` in use.
    pos: usize,
    /// Flush when the buffer would grow past this many bytes (at most `BUF_LEN`); also
    /// the size from which a slice bypasses the buffer.
    limit: usize,
    /// The open run chunk, if any: its values end at `pos`.
    run: Run,
    hasher: blake3::Hasher,
    /// Bytes handed to `hasher` since it was last reset.
    fed: u64,
    /// What maps serialized into this sink use (created on the first map, then reused
    /// for every map at this depth; `None` while a map holds it, or after one failed).
    maps: Option<Box<MapParts>>,
    /// Reused by `collect_str`.
    scratch: String,
}

/// The open run chunk (see the module docs). Any write other than a value of the run
/// closes it, so while it is open, a primitive of its type is the sequence's next element.
#[derive(Clone, Copy)]
struct Run {
    /// The element tag; 0 (no tag) when no run is open.
    tag: u8,
    /// Where its header starts in `buf`.
    at: usize,
    /// `pos` may grow up to here while the chunk takes values.
    end: usize,
    /// Bytes per value.
    width: usize,
}

const NO_RUN: Run = Run {
    tag: 0,
    at: 0,
    end: 0,
    width: 1,
};

/// What serializing one value into a sink did. A primitive is not written by the method
/// that receives it but handed back to the caller, which knows where it goes: tagged
/// (`Sink::place`) or, as a sequence's element, into a run (`Sink::run_value`). That keeps
/// the element loop of `collect_seq` free of anything the compiler cannot see through.
#[derive(Clone, Copy)]
enum Val {
    /// Written to the sink (everything but primitives).
    Written,
    /// A primitive: its tag and its `width` little-endian bytes (the rest zero).
    Prim { tag: u8, width: u8, bytes: [u8; 16] },
}

impl Val {
    #[inline(always)]
    fn prim<const N: usize>(tag: u8, payload: [u8; N]) -> Val {
        let mut bytes = [0u8; 16];
        bytes[..N].copy_from_slice(&payload);
        Val::Prim {
            tag,
            // N is at most 16.
            width: N as u8,
            bytes,
        }
    }
}

/// Stores a primitive's `width` bytes at `at` in a sink's buffer (`at` below `BUF_LEN`,
/// room checked by the caller). The index is masked into the buffer, so no bounds check
/// is left and the compiler can see that the store does not land on the sink's fields.
#[inline(always)]
fn put(buf: &mut [u8; BUF_LEN + 16], at: usize, width: u8, bytes: [u8; 16]) {
    let at = at & (BUF_LEN - 1);
    match width {
        1 => buf[at] = bytes[0],
        2 => buf[at..at + 2].copy_from_slice(&bytes[..2]),
        4 => buf[at..at + 4].copy_from_slice(&bytes[..4]),
        8 => buf[at..at + 8].copy_from_slice(&bytes[..8]),
        _ => buf[at..at + 16].copy_from_slice(&bytes),
    }
}

/// Copies `src` into `dst` (same length): fixed-size moves for short slices, where a
/// call to `memcpy` would cost more than the copy.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if dst.len() != n {
        return dst.copy_from_slice(src);
    }
    match n {
        0 => {}
        1..=3 => {
            dst[0] = src[0];
            dst[n / 2] = src[n / 2];
            dst[n - 1] = src[n - 1];
        }
        4..=7 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..].copy_from_slice(&src[n - 4..]);
        }
        8..=16 => {
            dst[..8].copy_from_slice(&src[..8]);
            dst[n - 8..].copy_from_slice(&src[n - 8..]);
        }
        17..=32 => {
            dst[..16].copy_from_slice(&src[..16]);
            dst[n - 16..].copy_from_slice(&src[n - 16..]);
        }
        _ => dst.copy_from_slice(src),
    }
}

impl Sink {
    /// A new sink, built in place on the heap. Built as a value, it was built on the stack
    /// and then copied, the 32 KiB buffer twice: in a process's first call, where every
    /// page touched is a page fault, that was 16 faults for a key of a few bytes.
    #[allow(unsafe_code)]
    fn boxed() -> Box<Sink> {
        let mut sink = Box::<Sink>::new_uninit();
        let at = sink.as_mut_ptr();
        // SAFETY: `at` points to memory for a `Sink`, owned by `sink`. The buffer is
        // written as zero bytes through a raw place (no reference to the uninitialized
        // sink is made), and `init_fields` writes every other field.
        unsafe {
            std::ptr::addr_of_mut!((*at).buf).write_bytes(0, 1);
            Sink::init_fields(at);
            sink.assume_init()
        }
    }

    /// Writes every field of the sink at `at` but its buffer.
    ///
    /// # Safety
    /// `at` is valid for writes of a `Sink` and aligned, and its fields hold nothing that
    /// needs dropping.
    #[allow(unsafe_code)]
    unsafe fn init_fields(at: *mut Sink) {
        // SAFETY: the caller's promise; each write is to a raw place inside `*at`.
        unsafe {
            std::ptr::addr_of_mut!((*at).pos).write(0);
            std::ptr::addr_of_mut!((*at).limit).write(BUF_LEN);
            std::ptr::addr_of_mut!((*at).run).write(NO_RUN);
            std::ptr::addr_of_mut!((*at).hasher).write(blake3::Hasher::new());
            std::ptr::addr_of_mut!((*at).fed).write(0);
            std::ptr::addr_of_mut!((*at).maps).write(None);
            std::ptr::addr_of_mut!((*at).scratch).write(String::new());
        }
    }

    /// Empties the sink for reuse (the buffer's old bytes are never read again).
    fn reset(&mut self) {
        self.pos = 0;
        self.run = NO_RUN;
        if self.fed > 0 {
            self.hasher.reset();
            self.fed = 0;
        }
    }

    #[inline(always)]
    fn write(&mut self, data: &[u8]) {
        self.close_run();
        let end = self.pos + data.len();
        if end <= self.limit {
            copy_short(&mut self.buf[self.pos..end], data);
            self.pos = end;
        } else {
            self.write_slow(data);
        }
    }

    #[inline(never)]
    fn write_slow(&mut self, mut data: &[u8]) {
        self.flush();
        if self.pos + data.len() <= self.limit {
            self.buf[self.pos..self.pos + data.len()].copy_from_slice(data);
            self.pos += data.len();
            return;
        }
        // Too big to buffer: complete the buffered chunk from `data`, then hand blake3
        // the whole chunks of `data` directly, without a copy, and buffer the rest.
        let chunked = self.chunked();
        if chunked && self.pos > 0 {
            let top = (CHUNK_LEN - self.pos % CHUNK_LEN) % CHUNK_LEN;
            let top = top.min(data.len());
            self.buf[self.pos..self.pos + top].copy_from_slice(&data[..top]);
            self.pos += top;
            data = &data[top..];
        }
        self.feed_buffer(self.pos);
        let whole = if chunked {
            data.len() - data.len() % CHUNK_LEN
        } else {
            data.len()
        };
        self.hasher.update(&data[..whole]);
        self.fed += len64(whole);
        let rest = &data[whole..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.pos = rest.len();
    }

    /// Whether the buffer hands blake3 whole chunks only (every buffer size but the tiny
    /// ones tests use).
    #[inline]
    fn chunked(&self) -> bool {
        self.limit >= 2 * CHUNK_LEN
    }

    /// Hands the first `len` buffered bytes to blake3 and moves the rest to the front.
    fn feed_buffer(&mut self, len: usize) {
        if len > 0 {
            self.hasher.update(&self.buf[..len]);
            self.fed += len64(len);
            self.buf.copy_within(len..self.pos, 0);
            self.pos -= len;
        }
    }

    /// A tag and a fixed-width payload.
    #[inline(always)]
    fn tagged<const N: usize>(&mut self, tag: u8, payload: [u8; N]) {
        self.close_run();
        let end = self.pos + 1 + N;
        if end <= self.limit {
            self.buf[self.pos] = tag;
            self.buf[self.pos + 1..end].copy_from_slice(&payload);
            self.pos = end;
        } else {
            self.write_slow(&[tag]);
            self.write(&payload);
        }
    }

    /// A tag, the length (LEB128, see `varint`) and the bytes.
    #[inline(always)]
    fn framed(&mut self, tag: u8, data: &[u8]) {
        self.close_run();
        let at = self.pos;
        let end = at + 2 + data.len();
        if data.len() < 0x80 && end <= self.limit {
            // The usual short string or name: its length is one byte.
            self.buf[at] = tag;
            self.buf[at + 1] = data.len() as u8;
            copy_short(&mut self.buf[at + 2..end], data);
            self.pos = end;
        } else {
            self.framed_slow(tag, data);
        }
    }

    #[inline(never)]
    fn framed_slow(&mut self, tag: u8, data: &[u8]) {
        let (len, n) = varint(len64(data.len()));
        self.write(&[tag]);
        self.write(&len[..n]);
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

    /// A primitive that is not a sequence's element: its tag, then its bytes.
    #[inline(always)]
    fn place(&mut self, value: Val) {
        if let Val::Prim { tag, width, bytes } = value {
            self.close_run();
            let end = self.pos + 1 + usize::from(width);
            if end <= self.limit {
                self.buf[self.pos & (BUF_LEN - 1)] = tag;
                put(&mut self.buf, self.pos + 1, width, bytes);
                self.pos = end;
            } else {
                self.write_slow(&[tag]);
                self.write(&bytes[..usize::from(width)]);
            }
        }
    }

    /// A primitive that is a sequence's (or tuple's) element: into the open run when it is
    /// of the run's type, else into a new run.
    #[inline(always)]
    fn run_value(&mut self, tag: u8, width: u8, bytes: [u8; 16]) {
        let end = self.pos + usize::from(width);
        if self.run.tag == tag && end <= self.run.end {
            put(&mut self.buf, self.pos, width, bytes);
            self.pos = end;
            // The header's count is written when the chunk is closed.
        } else {
            self.open_run(tag, width, bytes);
        }
    }

    #[inline(never)]
    fn open_run(&mut self, tag: u8, width: u8, bytes: [u8; 16]) {
        self.close_run();
        // Room for a whole chunk, so no flush can fall inside it.
        let room = RUN_HEADER + RUN_BYTES;
        if self.pos + room > self.limit.max(room) {
            self.flush();
        }
        let at = self.pos;
        self.buf[at..at + RUN_HEADER].copy_from_slice(&[tag::RUN, tag, 0, 0]);
        put(&mut self.buf, at + RUN_HEADER, width, bytes);
        self.pos = at + RUN_HEADER + usize::from(width);
        self.run = Run {
            tag,
            at,
            end: at + room,
            width: usize::from(width),
        };
    }

    /// A sequence of `data.len() / width` numbers of type `tag`, as their little-endian
    /// bytes: the stream that writing them one by one into runs gives (see the module
    /// docs), written a chunk at a time.
    fn number_seq(&mut self, tag: u8, width: usize, data: &[u8]) {
        self.write(&[tag::SEQ]);
        for chunk in data.chunks(RUN_BYTES) {
            // At most RUN_BYTES values.
            let count = u16::try_from(chunk.len() / width).unwrap_or(u16::MAX);
            let [low, high] = count.to_le_bytes();
            self.write(&[tag::RUN, tag, low, high]);
            self.write(chunk);
        }
        self.tagged(tag::END, len64(data.len() / width).to_le_bytes());
    }

    /// A sorted map's entries (see `MapEntries`), each `range_of` a packed entry in
    /// `arena`: the same bytes as a `write` of each, with the write position kept in a
    /// local variable across the entries (entries are at most `ENTRY_INLINE` bytes).
    fn write_entries(&mut self, order: &[u128], arena: &[u8]) {
        self.close_run();
        let mut pos = self.pos;
        for &e in order {
            let entry = &arena[range_of(e)];
            let end = pos + entry.len();
            if end > self.limit {
                self.pos = pos;
                self.write_slow(entry);
                pos = self.pos;
                continue;
            }
            copy_short(&mut self.buf[pos..end], entry);
            pos = end;
        }
        self.pos = pos;
    }

    /// A sequence of strings, which serde hands over whole as a `&Vec<String>` or a
    /// `&[String]`: the stream that serializing them one by one gives (`SEQ`, each one
    /// framed as `STR`, `END` and the count), without a serializer call per string, and
    /// with the write position kept in a local variable across them.
    fn string_seq(&mut self, strings: &[String]) {
        self.write(&[tag::SEQ]);
        let mut pos = self.pos;
        for text in strings {
            let data = text.as_bytes();
            let end = pos + 2 + data.len();
            if data.len() < 0x80 && end <= self.limit {
                // As `framed` writes the usual short string.
                self.buf[pos] = tag::STR;
                self.buf[pos + 1] = data.len() as u8;
                copy_short(&mut self.buf[pos + 2..end], data);
                pos = end;
            } else {
                self.pos = pos;
                self.framed_slow(tag::STR, data);
                pos = self.pos;
            }
        }
        self.pos = pos;
        self.tagged(tag::END, len64(strings.len()).to_le_bytes());
    }

    /// Writes the open chunk's count into its header and closes it.
    #[inline(always)]
    fn close_run(&mut self) {
        if self.run.tag != 0 {
            self.close_run_slow();
        }
    }

    #[inline(never)]
    fn close_run_slow(&mut self) {
        let Run { at, width, .. } = self.run;
        let count = (self.pos - at - RUN_HEADER) / width;
        // At most RUN_BYTES values of at least one byte each.
        let count = u16::try_from(count).unwrap_or(u16::MAX);
        self.buf[at + 2..at + 4].copy_from_slice(&count.to_le_bytes());
        self.run = NO_RUN;
    }

    /// Hands blake3 the buffered bytes up to the last chunk boundary of the stream
    /// (everything, for tiny buffers), keeping less than a chunk.
    ///
    /// An update that starts inside one of blake3's 1 KiB chunks compresses that chunk's
    /// blocks one at a time, and one that covers an odd number of chunks hashes some of
    /// them with a narrower SIMD path; 16 aligned chunks go through its widest path at
    /// once. Unaligned flushes made blake3 half again slower on a `Vec<f64>`.
    fn flush(&mut self) {
        self.close_run();
        let tail = if self.chunked() {
            // Below CHUNK_LEN: fits.
            ((self.fed + len64(self.pos)) % len64(CHUNK_LEN)) as usize
        } else {
            0
        };
        self.feed_buffer(self.pos - tail);
    }

    /// The digest of everything written; leaves the sink empty for reuse.
    fn digest(&mut self) -> [u8; 32] {
        self.close_run();
        let out = if self.fed > 0 {
            self.feed_buffer(self.pos);
            *self.hasher.finalize().as_bytes()
        } else {
            // All of it is in the buffer: blake3's one-shot function skips the
            // incremental hasher's bookkeeping.
            *blake3::hash(&self.buf[..self.pos]).as_bytes()
        };
        self.reset();
        out
    }
}

/// `n` in LEB128: seven bits per byte, low bits first, the high bit set on every byte but
/// the last (so the length of a length is known from its bytes; always the shortest form).
fn varint(mut n: u64) -> ([u8; 10], usize) {
    let mut out = [0u8; 10];
    let mut len = 0;
    while n >= 0x80 {
        out[len] = (n as u8) | 0x80;
        n >>= 7;
        len += 1;
    }
    out[len] = n as u8;
    (out, len + 1)
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

/// The serializer methods of every fixed-width primitive, each handing back its tag and
/// little-endian bytes ([`Val::prim`]). One list for the sink's serializer and for
/// [`PrimOnly`]: the fast lane of `collect_seq` is right only while both encode every
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

impl<'a> ser::Serializer for &'a mut Sink {
    type Ok = Val;
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

    primitives!(Error);

    #[inline(always)]
    fn serialize_str(self, v: &str) -> Result<Val, Error> {
        self.framed(tag::STR, v.as_bytes());
        Ok(Val::Written)
    }

    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<Val, Error> {
        self.framed(tag::BYTES, v);
        Ok(Val::Written)
    }

    #[inline]
    fn serialize_none(self) -> Result<Val, Error> {
        self.write(&[tag::NONE]);
        Ok(Val::Written)
    }

    #[inline]
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<Val, Error> {
        self.write(&[tag::SOME]);
        let value = value.serialize(&mut *self)?;
        self.place(value);
        Ok(Val::Written)
    }

    #[inline]
    fn serialize_unit(self) -> Result<Val, Error> {
        self.write(&[tag::UNIT]);
        Ok(Val::Written)
    }

    #[inline]
    fn serialize_unit_struct(self, name: &'static str) -> Result<Val, Error> {
        self.framed(tag::UNIT_STRUCT, name.as_bytes());
        Ok(Val::Written)
    }

    #[inline]
    fn serialize_unit_variant(
        self,
        name: &'static str,
        variant_index: u32,
        variant: &'static str,
    ) -> Result<Val, Error> {
        self.variant(tag::UNIT_VARIANT, name, variant_index, variant);
        Ok(Val::Written)
    }

    #[inline]
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Val, Error> {
        self.framed(tag::NEWTYPE_STRUCT, name.as_bytes());
        let value = value.serialize(&mut *self)?;
        self.place(value);
        Ok(Val::Written)
    }

    #[inline]
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        variant_index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Val, Error> {
        self.variant(tag::NEWTYPE_VARIANT, name, variant_index, variant);
        let value = value.serialize(&mut *self)?;
        self.place(value);
        Ok(Val::Written)
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
    fn serialize_map(self, len: Option<usize>) -> Result<MapEntries<'a>, Error> {
        Ok(MapEntries::new(self, len))
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

    /// What `serialize_seq`, `serialize_element` for each item and `end` write (the same
    /// bytes: serde's impls for `Vec`, slices and sets come here, a hand-written impl may
    /// take the long way), in a loop of our own with a fast lane for runs.
    ///
    /// Once an item turns out to be a primitive, the items after it are first offered to
    /// [`PrimOnly`], which holds no state: while they are primitives of the same type, they
    /// are stored at a write position kept in a local variable, up to the end of the run
    /// chunk, with no call the compiler cannot see through. An item that is not a
    /// primitive makes `PrimOnly` fail at its first serializer call, before anything is
    /// written, and is then serialized again into the sink. (A `Serialize` impl with side
    /// effects before its first serializer call would see them twice; a key's impls are
    /// expected to be pure anyway, or keys would not be stable.)
    #[inline]
    fn collect_seq<I>(self, iter: I) -> Result<Val, Error>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        if let Some((tag, width, data)) = number_slice(&iter) {
            self.number_seq(tag, width, data);
            return Ok(Val::Written);
        }
        if let Some(strings) = pod::elements_of::<I, String>(&iter) {
            self.string_seq(strings);
            return Ok(Val::Written);
        }
        self.write(&[tag::SEQ]);
        let mut count = 0u64;
        let mut iter = iter.into_iter();
        while let Some(item) = iter.next() {
            count += 1;
            let mut value = item.serialize(&mut *self)?;
            while let Val::Prim { tag, width, bytes } = value {
                self.run_value(tag, width, bytes);
                value = Val::Written;
                let room = (self.run.end - self.pos) / usize::from(width);
                let mut pos = self.pos;
                let mut redo = None;
                for item in iter.by_ref().take(room) {
                    count += 1;
                    match item.serialize(PrimOnly) {
                        Ok(Val::Prim {
                            tag: next,
                            width,
                            bytes,
                        }) if next == tag => {
                            put(&mut self.buf, pos, width, bytes);
                            pos += usize::from(width);
                        }
                        Ok(other) => {
                            value = other;
                            break;
                        }
                        Err(NotPrim) => {
                            redo = Some(item);
                            break;
                        }
                    }
                }
                self.pos = pos;
                if let Some(item) = redo {
                    value = item.serialize(&mut *self)?;
                }
            }
        }
        self.tagged(tag::END, count.to_le_bytes());
        Ok(Val::Written)
    }

    /// What `serialize_map`, `serialize_entry` for each entry and `end` write, with the
    /// entries taken from the iterator `PREFETCH_AHEAD` ahead of their turn: each one's
    /// strings and bytes are then asked of the memory system (`Prefetch`) while the
    /// entries before it are encoded. A `HashMap`'s iteration order is unrelated to where
    /// its keys' strings were allocated, so without this every string was a cache miss
    /// waited for in turn (a third of the time of a `HashMap<String, u64>`'s key).
    ///
    /// A key or value is so serialized up to three times (prefetched, offered to the
    /// arena's fast lane, then, if refused, into the entry sink): like `collect_seq`'s fast
    /// lane, this assumes `Serialize` impls without side effects, as stable keys need.
    #[inline]
    fn collect_map<K, V, I>(self, iter: I) -> Result<Val, Error>
    where
        K: Serialize,
        V: Serialize,
        I: IntoIterator<Item = (K, V)>,
    {
        // The map ends at the iterator's first end, as with serde's own `collect_map`;
        // fused, the iterator is not asked again after it.
        let mut iter = iter.into_iter().fuse();
        let exact = match iter.size_hint() {
            (low, Some(high)) if low == high => Some(low),
            _ => None,
        };
        let mut map = MapEntries::new(self, exact);
        let mut ahead: [Option<(K, V)>; PREFETCH_AHEAD] = [const { None }; PREFETCH_AHEAD];
        for slot in ahead.iter_mut() {
            *slot = iter.next();
            if let Some((key, value)) = slot {
                prefetch(key, value);
            }
        }
        let mut next = 0;
        while let Some((key, value)) = ahead[next].take() {
            if let Some((k, v)) = iter.next() {
                prefetch(&k, &v);
                ahead[next] = Some((k, v));
            }
            ser::SerializeMap::serialize_entry(&mut map, &key, &value)?;
            next = (next + 1) % PREFETCH_AHEAD;
        }
        ser::SerializeMap::end(map)
    }

    #[inline]
    fn collect_str<T: ?Sized + fmt::Display>(self, value: &T) -> Result<Val, Error> {
        use fmt::Write as _;
        let mut text = std::mem::take(&mut self.scratch);
        text.clear();
        let written = write!(text, "{value}");
        if written.is_ok() {
            self.framed(tag::STR, text.as_bytes());
        }
        self.scratch = text;
        written
            .map(|()| Val::Written)
            .map_err(|_| Error("a Display impl returned an error".into()))
    }
}

/// The serializer of `collect_seq`'s fast lane: takes primitives (exactly as the sink's
/// serializer does, to [`Val::Prim`]) and refuses everything else with [`NotPrim`]
/// before anything is written.
struct PrimOnly;

/// [`PrimOnly`]'s refusal: the value is not a primitive.
#[derive(Debug)]
struct NotPrim;

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

/// Refuses every serializer method of [`PrimOnly`] that is not a primitive.
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

/// What the fast-lane serializers ([`PrimOnly`], [`ShortOnly`], [`Prefetch`]) share: they
/// take primitives, to [`Val::Prim`], as the sink's serializer does, and refuse with
/// [`NotPrim`] everything but strings and bytes (each says what it does with those).
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

        #[inline]
        fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<Val, NotPrim> {
            Err(NotPrim)
        }

        #[inline]
        fn serialize_newtype_struct<T: ?Sized + Serialize>(
            self,
            _: &'static str,
            _: &T,
        ) -> Result<Val, NotPrim> {
            Err(NotPrim)
        }

        #[inline]
        fn serialize_newtype_variant<T: ?Sized + Serialize>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<Val, NotPrim> {
            Err(NotPrim)
        }

        #[inline]
        fn collect_str<T: ?Sized + fmt::Display>(self, _: &T) -> Result<Val, NotPrim> {
            Err(NotPrim)
        }
    };
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
struct ShortOnly<'a>(&'a mut Vec<u8>);

impl ShortOnly<'_> {
    #[inline(always)]
    fn framed(self, tag: u8, data: &[u8]) -> Result<Val, NotPrim> {
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
const PREFETCH_AHEAD: usize = 8;

/// Asks the memory system for the strings and bytes of a map entry about to be encoded.
#[inline(always)]
fn prefetch<K: Serialize, V: Serialize>(key: &K, value: &V) {
    let _ = key.serialize(Prefetch);
    let _ = value.serialize(Prefetch);
}

/// A serializer that only prefetches: a string's or byte string's first bytes are asked of
/// the memory system (a hint; nothing is read); everything else is refused at once, so it
/// costs one call. Nothing it does changes a key.
struct Prefetch;

impl Prefetch {
    #[inline(always)]
    fn hint(data: &[u8]) -> Result<Val, NotPrim> {
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
fn append_short(out: &mut Vec<u8>, taken: Val) {
    if let Val::Prim { tag, width, bytes } = taken {
        out.push(tag);
        out.extend_from_slice(&bytes[..usize::from(width)]);
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
        if let Val::Prim { tag, width, bytes } = value.serialize(&mut *self.sink)? {
            self.sink.run_value(tag, width, bytes);
        }
        Ok(())
    }

    /// A named field: its label sits between values, so it never joins a run.
    #[inline]
    fn field<T: ?Sized + Serialize>(&mut self, name: &str, value: &T) -> Result<(), Error> {
        self.count += 1;
        self.sink.label(name);
        let value = value.serialize(&mut *self.sink)?;
        self.sink.place(value);
        Ok(())
    }

    #[inline]
    fn end(self) -> Result<Val, Error> {
        self.sink.tagged(tag::END, self.count.to_le_bytes());
        Ok(Val::Written)
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = Val;
    type Error = Error;

    #[inline]
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    #[inline]
    fn end(self) -> Result<Val, Error> {
        Compound::end(self)
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = Val;
    type Error = Error;

    #[inline]
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    #[inline]
    fn end(self) -> Result<Val, Error> {
        Compound::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = Val;
    type Error = Error;

    #[inline]
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    #[inline]
    fn end(self) -> Result<Val, Error> {
        Compound::end(self)
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = Val;
    type Error = Error;

    #[inline]
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    #[inline]
    fn end(self) -> Result<Val, Error> {
        Compound::end(self)
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = Val;
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
    fn end(self) -> Result<Val, Error> {
        Compound::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = Val;
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
    fn end(self) -> Result<Val, Error> {
        Compound::end(self)
    }
}

/// Map entries whose canonical encoding is at most this long go into the map's stream
/// as they are; longer ones as `DIGEST` and their 32-byte blake3 digest.
pub(crate) const ENTRY_INLINE: usize = 256;

/// What a map in progress needs, kept by its sink for the next map at the same depth.
struct MapParts {
    /// Encodes one entry (key, then value) at a time.
    entry: Box<Sink>,
    /// The entries' encodings (or digests), back to back.
    bytes: Vec<u8>,
    /// Per entry: its order hash (see `MapEntries`) in the high 64 bits, where its bytes
    /// are in the low ones (see `pack`); sorted by `sort_entries`.
    order: Vec<u128>,
    /// Room for `sort_entries`.
    scratch: Vec<u128>,
    /// The digit counts of `sort_entries`.
    counts: Vec<usize>,
    /// The digits the entries are counted on as they come, when the map said its length
    /// up front (see `push_entry`).
    early: Option<Digits>,
    /// How many of `order`'s first entries have their hash (and, with `early`, are
    /// counted).
    hashed: usize,
}

/// An entry's order hash, and where its bytes are in `MapParts::bytes`: the start in 48
/// bits, the length (at most `ENTRY_INLINE`) in 16. One integer to sort, and no second
/// table to look the range up in, at random, for every entry written out.
fn pack(hash: u64, start: usize, len: usize) -> u128 {
    u128::from(hash) << 64 | (start as u128) << 16 | len as u128
}

/// The range in `MapParts::bytes` of a packed entry (see `pack`).
fn range_of(e: u128) -> std::ops::Range<usize> {
    let start = ((e >> 16) as u64 & ((1 << 48) - 1)) as usize;
    let len = (e as u16) as usize;
    start..start + len
}

/// A sequence serde hands `collect_seq` that is a vector or slice of fixed-width numbers
/// (see `pod::slice_of`): its element tag, width and bytes, which are its encoding.
fn number_slice<I>(seq: &I) -> Option<(u8, usize, &[u8])> {
    fn found<E: pod::Plain>(tag: u8, values: &[E]) -> Option<(u8, usize, &[u8])> {
        Some((tag, std::mem::size_of::<E>(), pod::bytes_of(values)))
    }
    macro_rules! try_types {
        ($($ty:ty => $tag:expr),* $(,)?) => {
            $(
                if let Some(values) = pod::slice_of::<I, $ty>(seq) {
                    return found($tag, values);
                }
            )*
        };
    }
    try_types! {
        f64 => tag::F64, f32 => tag::F32, u8 => tag::U8, i8 => tag::I8,
        u16 => tag::U16, i16 => tag::I16, u32 => tag::U32, i32 => tag::I32,
        u64 => tag::U64, i64 => tag::I64,
    }
    // serde hands `usize` and `isize` over as 64-bit integers.
    #[cfg(target_pointer_width = "64")]
    try_types! { usize => tag::U64, isize => tag::I64 }
    None
}

/// Bits of the hash one pass of `sort_entries` sorts on: 2,048 counts, which stay in
/// the first-level cache while the entries are scattered.
const RADIX_BITS: u32 = 11;

/// The two digits of the hash's top bits `sort_entries` sorts a map of a given length on:
/// about a quarter of an entry per value of the sorted bits, so runs of entries that
/// share them are rare and short.
#[derive(Clone, Copy, PartialEq, Debug)]
struct Digits {
    low_bits: u32,
    high_bits: u32,
}

impl Digits {
    /// For a map of `n` entries, at least [`SMALL_MAP`].
    fn for_len(n: usize) -> Digits {
        let wanted = usize::BITS - (n - 1).leading_zeros() + 2;
        Digits {
            low_bits: (wanted / 2).min(RADIX_BITS),
            high_bits: (wanted - wanted / 2).min(RADIX_BITS),
        }
    }

    fn sorted_bits(self) -> u32 {
        self.low_bits + self.high_bits
    }

    /// The lower digit of a packed entry's hash.
    #[inline(always)]
    fn low(self, e: u128) -> usize {
        (e >> (128 - self.sorted_bits())) as usize & ((1 << self.low_bits) - 1)
    }

    /// The higher digit: the hash's top bits.
    #[inline(always)]
    fn high(self, e: u128) -> usize {
        (e >> (128 - self.high_bits)) as usize
    }

    /// Zeroes the counts of both digits (low first).
    fn clear(self, counts: &mut Vec<usize>) {
        counts.clear();
        counts.resize((1 << self.low_bits) + (1 << self.high_bits), 0);
    }
}

/// Maps of fewer entries are sorted by comparison.
const SMALL_MAP: usize = 64;

/// Puts each entry's order hash in its high 64 bits and, with `digits`, counts the
/// entries per value of each digit (counts laid out as `Digits::clear` makes them).
#[inline(always)]
fn hash_and_count(
    order: &mut [u128],
    arena: &[u8],
    order_hash: &impl Fn(&[u8]) -> u64,
    digits: Option<(Digits, &mut [usize])>,
) {
    const PLACE: u128 = u64::MAX as u128;
    let with_hash = |e: u128| u128::from(order_hash(&arena[range_of(e)])) << 64 | (e & PLACE);
    match digits {
        None => {
            for e in order.iter_mut() {
                *e = with_hash(*e);
            }
        }
        Some((digits, counts)) => {
            let (low_counts, high_counts) = counts.split_at_mut(1 << digits.low_bits);
            for e in order.iter_mut() {
                *e = with_hash(*e);
                low_counts[digits.low(*e)] += 1;
                high_counts[digits.high(*e)] += 1;
            }
        }
    }
}

/// Turns counts per value into where each value's entries start.
fn starts_from_counts(counts: &mut [usize]) {
    let mut start = 0;
    for count in counts {
        let n = *count;
        *count = start;
        start += n;
    }
}

/// Sorts a short slice.
#[inline]
fn insertion_sort_by(items: &mut [u128], order: impl Fn(&u128, &u128) -> std::cmp::Ordering) {
    for i in 1..items.len() {
        let item = items[i];
        let mut j = i;
        while j > 0 && order(&items[j - 1], &item).is_gt() {
            items[j] = items[j - 1];
            j -= 1;
        }
        items[j] = item;
    }
}

/// Sorts a map's entries by their order hash, ties by their bytes.
///
/// A least-significant-digit radix sort on the hash's top bits, in two passes of at most
/// `RADIX_BITS` bits each, then the runs of entries that share those bits (rare, and
/// short) sorted on their own, by hash, then bytes: linear in the entry count, where a
/// comparison sort of 100,000 entries took more time than hashing them, and a one-pass
/// bucket sort into as many buckets as entries scattered its writes over more memory
/// than the caches hold. The result is a function of the entries alone.
///
/// The entries that have no hash yet get theirs from `order_hash`, and are counted for
/// both passes in one read. Those of a map that said its length up front were hashed
/// (with XXH3, which `order_hash` must then be too) and counted as they came
/// (`MapParts::push_entry`); tests pass other functions, to force ties, on maps that were
/// not.
fn sort_entries(parts: &mut MapParts, order_hash: impl Fn(&[u8]) -> u64) {
    let MapParts {
        bytes,
        order,
        scratch,
        counts,
        early,
        hashed,
        ..
    } = parts;
    let hash = |e: u128| (e >> 64) as u64;
    let entry = |e: u128| &bytes[range_of(e)];
    let by_hash_then_bytes = |a: &u128, b: &u128| {
        hash(*a)
            .cmp(&hash(*b))
            .then_with(|| entry(*a).cmp(entry(*b)))
    };
    if order.len() < SMALL_MAP {
        hash_and_count(order, bytes, &order_hash, None);
        order.sort_unstable_by(by_hash_then_bytes);
        return;
    }
    let digits = Digits::for_len(order.len());
    // Counted as they came (see `MapParts::push_entry`) if the map's length was known
    // ahead; else all counted here.
    let counted = if *early == Some(digits) {
        *hashed
    } else {
        digits.clear(counts);
        0
    };
    hash_and_count(
        &mut order[counted..],
        bytes,
        &order_hash,
        Some((digits, counts)),
    );
    let sorted_bits = digits.sorted_bits();
    let (low, high) = (|e| digits.low(e), |e| digits.high(e));
    let (low_counts, high_counts) = counts.split_at_mut(1 << digits.low_bits);
    starts_from_counts(low_counts);
    starts_from_counts(high_counts);
    // Every slot is written below, so the old contents may stay (no zeroing pass).
    scratch.resize(order.len(), 0);
    for &e in order.iter() {
        let at = &mut low_counts[low(e)];
        scratch[*at] = e;
        *at += 1;
    }
    for &e in scratch.iter() {
        let at = &mut high_counts[high(e)];
        order[*at] = e;
        *at += 1;
    }
    // Runs of entries that share the sorted bits, sorted in full.
    let top = |e: u128| (e >> (128 - sorted_bits)) as u64;
    let mut i = 0;
    while i + 1 < order.len() {
        let first = top(order[i]);
        if top(order[i + 1]) != first {
            i += 1;
            continue;
        }
        let mut j = i + 2;
        while j < order.len() && top(order[j]) == first {
            j += 1;
        }
        if j - i <= 16 {
            insertion_sort_by(&mut order[i..j], by_hash_then_bytes);
        } else {
            order[i..j].sort_unstable_by(by_hash_then_bytes);
        }
        i = j;
    }
}

impl MapParts {
    fn new() -> Box<MapParts> {
        let mut entry = Sink::boxed();
        // The inline-or-digest choice must not depend on buffering, so an entry's sink
        // always buffers (see `serialize_value`).
        entry.limit = BUF_LEN;
        Box::new(MapParts {
            entry,
            bytes: Vec::new(),
            order: Vec::new(),
            scratch: Vec::new(),
            counts: Vec::new(),
            early: None,
            hashed: 0,
        })
    }

    /// Records the entry whose bytes (or digest) end the arena, from `start`.
    ///
    /// With `early` digits, the entry before it gets its hash and is counted now, while
    /// its bytes are in the cache, which saves `sort_entries` a pass over all of them;
    /// this entry's own would have waited for the stores of its bytes.
    #[inline(always)]
    fn push_entry(&mut self, start: usize) {
        self.order.push(pack(0, start, self.bytes.len() - start));
        if let Some(digits) = self.early {
            let n = self.order.len();
            if n >= 2 {
                let counts = Some((digits, &mut self.counts[..]));
                let order_hash = &xxhash_rust::xxh3::xxh3_64;
                hash_and_count(
                    &mut self.order[n - 2..n - 1],
                    &self.bytes,
                    order_hash,
                    counts,
                );
                self.hashed = n - 1;
            }
        }
    }

    /// Counts the entries as they come (see `push_entry`), for a map that says it has
    /// `len` entries.
    fn expect(&mut self, len: Option<usize>) {
        if let Some(len) = len.filter(|len| *len >= SMALL_MAP) {
            let digits = Digits::for_len(len);
            digits.clear(&mut self.counts);
            self.early = Some(digits);
        }
    }

    fn clear(&mut self) {
        self.entry.reset();
        // A huge map's arena is not kept for the rest of the thread's life.
        if self.bytes.capacity() > 4 << 20 {
            *self = MapParts {
                entry: std::mem::replace(&mut self.entry, Sink::boxed()),
                bytes: Vec::new(),
                order: Vec::new(),
                scratch: Vec::new(),
                counts: Vec::new(),
                early: None,
                hashed: 0,
            };
        }
        self.bytes.clear();
        self.order.clear();
        self.early = None;
        self.hashed = 0;
    }
}

/// A map in progress.
///
/// Each entry (key, then value, in the canonical encoding) is encoded on its own; the map
/// writes `MAP`, the entry count, then the entries *sorted*: by a 64-bit XXH3 of each
/// entry's bytes, ties broken by the bytes. The order is a function of the multiset of
/// entries alone, so two equal `HashMap`s built in different processes (different random
/// iteration orders) stream the same bytes, and a `BTreeMap` with the same entries too.
/// XXH3 only orders; every byte of every entry still goes through blake3, so the key
/// keeps blake3's collision resistance (entries are self-delimiting, so the sorted stream
/// determines the multiset of entries).
///
/// An entry longer than [`ENTRY_INLINE`] bytes is replaced by `DIGEST` and the blake3
/// digest of its encoding, which bounds the memory a map needs to ~290 bytes per entry
/// whatever its values hold.
struct MapEntries<'a> {
    sink: &'a mut Sink,
    parts: Box<MapParts>,
    key_pending: bool,
    /// Where the pending key starts in `MapParts::bytes`, if it went there directly (see
    /// `serialize_key`); `None` if it went into the entry sink.
    direct_key: Option<usize>,
}

impl MapEntries<'_> {
    fn new(sink: &mut Sink, len: Option<usize>) -> MapEntries<'_> {
        let mut parts = sink.maps.take().unwrap_or_else(MapParts::new);
        parts.clear();
        parts.expect(len);
        MapEntries {
            sink,
            parts,
            key_pending: false,
            direct_key: None,
        }
    }
}

impl ser::SerializeMap for MapEntries<'_> {
    type Ok = Val;
    type Error = Error;

    /// A key that is a primitive, a string or bytes (the usual map's) is written straight
    /// into the arena ([`ShortOnly`]), and so is its value if it is one too: the same
    /// bytes the entry sink would have produced, without the sink and the copy out of it
    /// (half the time of a `HashMap<String, u64>`'s entries). Any other key or value takes
    /// the entry sink.
    #[inline]
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Error> {
        if self.key_pending {
            return Err(Error("map key serialized without its value".into()));
        }
        self.key_pending = true;
        let bytes = &mut self.parts.bytes;
        let start = bytes.len();
        match key.serialize(ShortOnly(bytes)) {
            Ok(taken) => {
                append_short(bytes, taken);
                self.direct_key = Some(start);
            }
            Err(NotPrim) => {
                // Nothing of it is kept (a `Serialize` impl may write, then fail).
                bytes.truncate(start);
                let key = key.serialize(&mut *self.parts.entry)?;
                self.parts.entry.place(key);
            }
        }
        Ok(())
    }

    #[inline]
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        if !self.key_pending {
            return Err(Error("map value serialized without a key".into()));
        }
        self.key_pending = false;
        let parts = &mut *self.parts;
        if let Some(start) = self.direct_key.take() {
            let key_end = parts.bytes.len();
            match value.serialize(ShortOnly(&mut parts.bytes)) {
                Ok(taken) => {
                    append_short(&mut parts.bytes, taken);
                    if parts.bytes.len() - start > ENTRY_INLINE {
                        let digest = blake3::hash(&parts.bytes[start..]);
                        parts.bytes.truncate(start);
                        parts.bytes.push(tag::DIGEST);
                        parts.bytes.extend_from_slice(digest.as_bytes());
                    }
                    parts.push_entry(start);
                    return Ok(());
                }
                Err(NotPrim) => {
                    // The value needs the entry sink: the key moves there first.
                    parts.entry.write(&parts.bytes[start..key_end]);
                    parts.bytes.truncate(start);
                }
            }
        }
        let value = value.serialize(&mut *parts.entry)?;
        let entry = &mut *parts.entry;
        entry.place(value);
        entry.close_run();
        let start = parts.bytes.len();
        if entry.fed == 0 && entry.pos <= ENTRY_INLINE {
            if entry.pos <= 32 {
                // A fixed-size copy (the buffer is always longer), then the excess cut:
                // cheaper than a call to `memcpy` for the usual short entry.
                parts.bytes.extend_from_slice(&entry.buf[..32]);
                parts.bytes.truncate(start + entry.pos);
            } else {
                parts.bytes.extend_from_slice(&entry.buf[..entry.pos]);
            }
            entry.reset();
        } else {
            parts.bytes.push(tag::DIGEST);
            parts.bytes.extend_from_slice(&entry.digest());
        }
        parts.push_entry(start);
        Ok(())
    }

    #[inline]
    fn end(self) -> Result<Val, Error> {
        if self.key_pending {
            return Err(Error("map key serialized without its value".into()));
        }
        let MapEntries {
            sink, mut parts, ..
        } = self;
        sort_entries(&mut parts, xxhash_rust::xxh3::xxh3_64);
        sink.tagged(tag::MAP, len64(parts.order.len()).to_le_bytes());
        sink.write_entries(&parts.order, &parts.bytes);
        sink.maps = Some(parts);
        Ok(Val::Written)
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
    fn sinks_on_the_heap_and_the_static_one_start_empty_and_give_the_same_keys() {
        let check = |sink: &mut Sink| {
            assert_eq!((sink.pos, sink.limit, sink.fed), (0, BUF_LEN, 0));
            assert_eq!(sink.run.tag, NO_RUN.tag);
            assert!(sink.maps.is_none() && sink.scratch.is_empty());
            assert_eq!(sink.hasher.finalize(), blake3::hash(b""));
            // Used like any sink: past the end of its buffer, and with a heap field.
            sink.write(&[7; BUF_LEN + 100]);
            sink.scratch.push_str("dropped with the sink");
        };
        let mut boxed = Sink::boxed();
        assert!(boxed.buf.iter().all(|&b| b == 0));
        check(&mut boxed);
        let value = ("a", 1u8, vec![2.5f64; 5000], BTreeMap::from([(1, "x")]));
        let expected = key_of(&value);
        // Another test's thread keeps the static sink as its spare until it ends: try
        // again until it is free (tests end within seconds).
        let mut got_static = false;
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_secs(120) {
            let mut a = SinkBox::new();
            let b = SinkBox::new();
            assert!(!(a.is_static && b.is_static), "one user at a time");
            got_static |= a.is_static || b.is_static;
            check(&mut a);
            a.reset();
            for sink in [a, b] {
                let mut hasher = KeyHasher { sink: Some(sink) };
                hasher.write_label(KEY_FORMAT);
                hasher.write_value(&value).unwrap();
                // `finish` hands the sink to this thread's spare: take it back to drop it.
                assert_eq!(hasher.finish(), expected);
                drop(SPARE.with(std::cell::Cell::take));
            }
            if got_static {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert!(got_static, "the static sink was never free");
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
        // Lengths of names and strings: one byte below 128.
        let vlen = |s: &mut Vec<u8>, n: u64| s.push(u8::try_from(n).expect("short"));
        s.push(tag::LABEL);
        vlen(&mut s, KEY_FORMAT.len() as u64);
        s.extend_from_slice(KEY_FORMAT.as_bytes());
        s.push(tag::LABEL);
        vlen(&mut s, 1);
        s.extend_from_slice(b"f");
        s.push(tag::RAW);
        vlen(&mut s, 1);
        s.push(9);
        s.push(tag::TUPLE);
        {
            s.push(tag::STRUCT);
            vlen(&mut s, 1);
            s.extend_from_slice(b"P");
            s.push(tag::LABEL);
            vlen(&mut s, 1);
            s.extend_from_slice(b"x");
            s.push(tag::U16);
            s.extend_from_slice(&7u16.to_le_bytes());
            s.push(tag::END);
            len(&mut s, 1);

            s.extend_from_slice(&[tag::SOME, tag::I8, 0xff]);
            s.push(tag::STR);
            vlen(&mut s, 2);
            s.extend_from_slice(b"hi");
            s.push(tag::SEQ);
            s.extend_from_slice(&[tag::RUN, tag::F32, 1, 0]);
            s.extend_from_slice(&1.5f32.to_bits().to_le_bytes());
            s.push(tag::END);
            len(&mut s, 1);

            s.push(tag::NEWTYPE_VARIANT);
            vlen(&mut s, 5);
            s.extend_from_slice(b"Shape");
            s.extend_from_slice(&3u32.to_le_bytes());
            s.push(tag::LABEL);
            vlen(&mut s, 6);
            s.extend_from_slice(b"Radius");
            s.push(tag::F64);
            s.extend_from_slice(&2.0f64.to_bits().to_le_bytes());
        }
        s.push(tag::END);
        len(&mut s, 5);
        s.push(tag::MAP);
        len(&mut s, 1);
        s.extend_from_slice(&[tag::U8, 1, tag::BOOL, 1]);

        assert_eq!(hasher.finish().as_bytes(), blake3::hash(&s).as_bytes());
    }

    /// Long lengths take more LEB128 bytes; a map entry longer than `ENTRY_INLINE` stands
    /// as its digest; entries are sorted by their XXH3, ties by their bytes.
    #[test]
    fn long_lengths_and_long_map_entries_are_encoded_as_documented() {
        let text = "x".repeat(200);
        let mut s: Vec<u8> = vec![tag::LABEL, KEY_FORMAT.len() as u8];
        s.extend_from_slice(KEY_FORMAT.as_bytes());
        s.extend_from_slice(&[tag::STR, 0xc8, 0x01]);
        s.extend_from_slice(text.as_bytes());
        assert_eq!(key_of(&text).as_bytes(), blake3::hash(&s).as_bytes());
        assert_eq!(varint(0), ([0; 10], 1));
        assert_eq!(&varint(300).0[..2], &[0xac, 0x02]);
        assert_eq!(varint(u64::MAX).1, 10);

        let long = vec![7u8; ENTRY_INLINE];
        let map: BTreeMap<u8, Bytes<'_>> = [(1, Bytes(&long)), (2, Bytes(b"ab"))].into();
        let mut long_entry = vec![tag::U8, 1, tag::BYTES, 0x80, 0x02];
        long_entry.extend_from_slice(&long);
        let mut digest_entry = vec![tag::DIGEST];
        digest_entry.extend_from_slice(blake3::hash(&long_entry).as_bytes());
        let short_entry = vec![tag::U8, 2, tag::BYTES, 2, b'a', b'b'];
        let mut entries = [digest_entry, short_entry];
        entries.sort_by_key(|e| (xxhash_rust::xxh3::xxh3_64(e), e.clone()));
        let mut s: Vec<u8> = vec![tag::LABEL, KEY_FORMAT.len() as u8];
        s.extend_from_slice(KEY_FORMAT.as_bytes());
        s.push(tag::MAP);
        s.extend_from_slice(&2u64.to_le_bytes());
        for entry in &entries {
            s.extend_from_slice(entry);
        }
        assert_eq!(key_of(&map).as_bytes(), blake3::hash(&s).as_bytes());
    }

    /// A map's entries serialized on their own through the sink's serializer (what
    /// `MapEntries` does when its fast lane refuses): key, then value.
    fn entry_through_the_sink<K: Serialize, V: Serialize>(key: &K, value: &V) -> Vec<u8> {
        let mut sink = Sink::boxed();
        let key = key.serialize(&mut *sink).expect("serializes");
        sink.place(key);
        let value = value.serialize(&mut *sink).expect("serializes");
        sink.place(value);
        sink.close_run();
        let bytes = sink.buf[..sink.pos].to_vec();
        if bytes.len() > ENTRY_INLINE {
            let mut digest = vec![tag::DIGEST];
            digest.extend_from_slice(blake3::hash(&bytes).as_bytes());
            digest
        } else {
            bytes
        }
    }

    /// Keys and values written straight into the arena (strings, bytes, primitives) give
    /// the bytes the entry sink gives, alone or mixed with ones that need the sink.
    #[test]
    fn the_map_fast_lane_writes_what_the_sink_writes() {
        fn same<K: Serialize + Ord, V: Serialize>(entries: Vec<(K, V)>) {
            let mut expected: Vec<Vec<u8>> = entries
                .iter()
                .map(|(k, v)| entry_through_the_sink(k, v))
                .collect();
            expected.sort_by_key(|e| (xxhash_rust::xxh3::xxh3_64(e), e.clone()));
            let mut s: Vec<u8> = vec![tag::LABEL, KEY_FORMAT.len() as u8];
            s.extend_from_slice(KEY_FORMAT.as_bytes());
            s.push(tag::MAP);
            s.extend_from_slice(&len64(entries.len()).to_le_bytes());
            for entry in &expected {
                s.extend_from_slice(entry);
            }
            let map: BTreeMap<K, V> = entries.into_iter().collect();
            assert_eq!(key_of(&map).as_bytes(), blake3::hash(&s).as_bytes());
        }
        let text = |n: usize| "é".repeat(n);
        same((0..200u64).map(|i| (format!("key-{i}"), i * 7)).collect());
        // Strings across the one-byte length, and entries across the inline limit.
        same(
            [0, 1, 63, 64, 100, 127, 128, 200]
                .map(|n| (text(n), n as i128))
                .to_vec(),
        );
        same(
            (0..70u8)
                .map(|i| (i, Bytes(&[7; 300][..usize::from(i) * 4])))
                .collect(),
        );
        same(vec![('a', 1.5f64), ('é', -0.0), ('🦀', f64::NAN)]);
        same(vec![(false, u16::MAX), (true, 0)]);
        same((-5i32..5).map(|i| (i, i as u8 as char)).collect());
        // Values that need the sink after keys that did not, and the other way round.
        same(
            (0..40u64)
                .map(|i| (format!("k{i}"), (i % 3 == 0).then_some(i)))
                .collect(),
        );
        same((0..40u64).map(|i| (i, vec![text(i as usize)])).collect());
        same(
            (0..40u8)
                .map(|i| ((i, i / 2), text(usize::from(i) * 3)))
                .collect(),
        );
        same((0..40u8).map(|i| (Some(i), i)).collect());
    }

    /// A map handed over whole (`collect_map`, which takes entries ahead of their turn)
    /// and one written entry by entry (`serialize_map`) give the same key, at every size
    /// around the look-ahead, and an entry that fails fails the map.
    #[test]
    fn collected_maps_hash_as_maps_written_entry_by_entry() {
        struct ByEntry<'a>(&'a [(String, Vec<u8>)]);
        impl Serialize for ByEntry<'_> {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(Some(self.0.len()))?;
                for (k, v) in self.0 {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
        struct Collected<'a>(&'a [(String, Vec<u8>)]);
        impl Serialize for Collected<'_> {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
            }
        }
        let n = PREFETCH_AHEAD;
        for len in [0, 1, n - 1, n, n + 1, 2 * n + 3, 500] {
            let entries: Vec<(String, Vec<u8>)> = (0..len)
                .map(|i| (format!("k{i}"), vec![i as u8; i % 5]))
                .collect();
            let by_entry = key_of(&ByEntry(&entries));
            assert_eq!(key_of(&Collected(&entries)), by_entry, "{len} entries");
            let map: HashMap<String, Vec<u8>> = entries.into_iter().collect();
            assert_eq!(key_of(&map), by_entry, "{len} entries");
        }
        // An iterator that yields again after its end: the map ends at its first end, as
        // serde's own `collect_map` does.
        struct Restarts(u32);
        impl Iterator for Restarts {
            type Item = (u32, u32);
            fn next(&mut self) -> Option<(u32, u32)> {
                self.0 += 1;
                (self.0 != 11).then_some((self.0, self.0 * 2))
            }
        }
        struct Restarting;
        impl Serialize for Restarting {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(Restarts(0).take(15))
            }
        }
        let first_ten: BTreeMap<u32, u32> = (1..=10).map(|i| (i, i * 2)).collect();
        assert_eq!(key_of(&Restarting), key_of(&first_ten));

        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: ser::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(ser::Error::custom("refused"))
            }
        }
        let failing: Vec<(u32, Option<Refuses>)> =
            (0..20).map(|i| (i, (i == 13).then_some(Refuses))).collect();
        struct Pairs<'a>(&'a [(u32, Option<Refuses>)]);
        impl Serialize for Pairs<'_> {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
            }
        }
        let mut hasher = KeyHasher::new();
        let error = hasher.write_value(&Pairs(&failing)).expect_err("fails");
        assert!(error.to_string().contains("refused"), "{error}");
    }

    /// Entries counted as they come (a map that says its length) or all at the end give
    /// the same key, whether the length said is right, wrong, or not said.
    #[test]
    fn map_keys_do_not_depend_on_the_length_a_map_says() {
        struct Says<'a>(Option<usize>, &'a [(u64, String)]);
        impl Serialize for Says<'_> {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(self.0)?;
                for (k, v) in self.1 {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
        for len in [10usize, 63, 64, 65, 70, 100, 3000] {
            let entries: Vec<(u64, String)> =
                (0..len as u64).map(|i| (i * 31, format!("v{i}"))).collect();
            let unsaid = key_of(&Says(None, &entries));
            for said in [len, 10, 64, 100, 3000, 1 << 20] {
                assert_eq!(
                    key_of(&Says(Some(said), &entries)),
                    unsaid,
                    "{len} said {said}"
                );
            }
        }
    }

    /// A key whose `Serialize` writes a string, then fails: the fast lane keeps nothing
    /// of it, and the failure is the key's error.
    #[test]
    fn a_key_that_fails_after_writing_fails_the_map() {
        struct Fickle;
        impl Serialize for Fickle {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let _ = s.serialize_str("written");
                Err(ser::Error::custom("then refused"))
            }
        }
        let map: BTreeMap<u8, ()> = [(1, ())].into();
        let pairs = vec![("ok".to_owned(), 1u8)];
        struct Mixed(Vec<(String, u8)>);
        impl Serialize for Mixed {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(None)?;
                for (k, v) in &self.0 {
                    map.serialize_entry(k, v)?;
                }
                map.serialize_entry(&Fickle, &0u8)?;
                map.end()
            }
        }
        let mut hasher = KeyHasher::new();
        let error = hasher.write_value(&Mixed(pairs)).expect_err("fails");
        assert!(error.to_string().contains("then refused"), "{error}");
        // The thread's map parts are fine for the next map.
        assert_eq!(key_of(&map), key_of(&map));
    }

    /// The radix sort gives the order of a full sort, equal hashes ordered by bytes.
    #[test]
    fn map_entries_sort_like_a_full_sort() {
        let xxh3 = xxhash_rust::xxh3::xxh3_64;
        // Few distinct hashes, spread over the top bits: many ties to break by the bytes.
        let few = |bytes: &[u8]| (xxh3(bytes) % 97).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let cases = [0usize, 1, 5, 63, 64, 65, 1000, 5000, 70_000];
        for (n, ties) in cases.iter().flat_map(|&n| [(n, false), (n, true)]) {
            let hash = |bytes: &[u8]| if ties { few(bytes) } else { xxh3(bytes) };
            let mut parts = MapParts::new();
            for i in 0..n {
                let start = parts.bytes.len();
                let value = i as u64 * 7919 % 1000;
                // Entries of a few lengths (and some equal ones).
                let len = 1 + (i % 3) * 3;
                parts.bytes.extend_from_slice(&value.to_le_bytes()[..len]);
                parts.order.push(pack(0, start, len));
            }
            let entries = |parts: &MapParts| -> Vec<(u64, Vec<u8>)> {
                let entry = |e: &u128| {
                    let bytes = &parts.bytes[range_of(*e)];
                    (hash(bytes), bytes.to_vec())
                };
                parts.order.iter().map(entry).collect()
            };
            let mut expected = entries(&parts);
            expected.sort();
            sort_entries(&mut parts, hash);
            let got = entries(&parts);
            assert_eq!(got, expected, "{n} entries");
            let hashes: Vec<u64> = parts.order.iter().map(|e| (*e >> 64) as u64).collect();
            let want: Vec<u64> = got.iter().map(|(hash, _)| *hash).collect();
            assert_eq!(hashes, want, "hashes kept with their entries");
        }
    }

    #[test]
    fn vectors_and_slices_of_numbers_are_found_for_bulk_hashing() {
        let doubles = vec![1.5f64, -0.0];
        let seq = &doubles;
        let found = number_slice(&seq).expect("a &Vec<f64>");
        assert_eq!(found, (tag::F64, 8, crate::pod::bytes_of(&doubles)));
        let shorts: &[u16] = &[1, 2, 3];
        assert_eq!(
            number_slice(&shorts).map(|(t, w, d)| (t, w, d.len())),
            Some((tag::U16, 2, 6))
        );
        assert!(number_slice(&shorts.iter()).is_none(), "an iterator");
        assert!(number_slice(&&vec![true]).is_none(), "bool is not a number");
        assert!(number_slice(&&vec![1u128]).is_none(), "not handled in bulk");
        assert!(number_slice(&&vec!["a"]).is_none());
    }

    /// A sequence serialized from an iterator: never a `&Vec` or a `&[T]`, so always
    /// written element by element.
    struct OneByOne<'a, T>(&'a [T]);

    impl<T: Serialize> Serialize for OneByOne<'_, T> {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(self.0.iter())
        }
    }

    proptest::proptest! {
        /// Vectors and slices of strings are written in one loop; the stream is the one
        /// their elements give one by one, for short strings and long ones (whose length
        /// takes two bytes), with buffers of every size.
        #[test]
        fn strings_in_bulk_hash_as_one_by_one(
            lens in proptest::collection::vec(0usize..300, 0..300),
            seed in proptest::prelude::any::<u8>(),
        ) {
            let strings: Vec<String> = lens
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    let c = char::from(b'a' + (seed.wrapping_add(i as u8) % 26));
                    std::iter::repeat_n(c, n).collect()
                })
                .collect();
            let one_by_one = key_of(&OneByOne(&strings));
            assert_eq!(key_of(&strings), one_by_one);
            assert_eq!(key_of(strings.as_slice()), one_by_one);
            let nested = (1u8, strings.clone(), vec![2.5f64]);
            let nested_one_by_one = (1u8, OneByOne(&strings), vec![2.5f64]);
            for buf_len in [0, 100, BUF_LEN] {
                assert_eq!(
                    key_with_buffer(&nested, buf_len),
                    key_of(&nested_one_by_one),
                    "buffer of {} bytes", buf_len
                );
            }
        }

        /// Vectors and slices of numbers are hashed in bulk; the stream is the one their
        /// elements give one by one, whatever the length (runs of 4096 bytes of values).
        #[test]
        fn numbers_in_bulk_hash_as_one_by_one(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..9000),
            split in 0usize..9000,
        ) {
            fn same<T: Serialize + Copy>(values: &[T]) {
                let one_by_one = key_of(&OneByOne(values));
                assert_eq!(key_of(&values.to_vec()), one_by_one);
                assert_eq!(key_of(values), one_by_one);
                // Inside other values, and with a buffer that flushes on every write.
                let nested = (1u8, values.to_vec(), "x");
                let nested_one_by_one = (1u8, OneByOne(values), "x");
                assert_eq!(key_of(&nested), key_of(&nested_one_by_one));
                assert_eq!(key_with_buffer(&nested, 0), key_of(&nested_one_by_one));
            }
            let words = |n: usize| -> Vec<[u8; 8]> {
                bytes.chunks(n).map(|c| {
                    let mut w = [0u8; 8];
                    w[..c.len()].copy_from_slice(c);
                    w
                }).collect()
            };
            same(&bytes);
            same(&bytes.iter().map(|&b| b as i8).collect::<Vec<_>>());
            let w = words(8);
            same(&w.iter().map(|w| f64::from_le_bytes(*w)).collect::<Vec<_>>());
            same(&w.iter().map(|w| u64::from_le_bytes(*w)).collect::<Vec<_>>());
            same(&w.iter().map(|w| i64::from_le_bytes(*w)).collect::<Vec<_>>());
            same(&w.iter().map(|w| usize::from_le_bytes(*w)).collect::<Vec<_>>());
            same(&w.iter().map(|w| isize::from_le_bytes(*w)).collect::<Vec<_>>());
            let w = words(4);
            same(&w.iter().map(|w| f32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect::<Vec<_>>());
            same(&w.iter().map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect::<Vec<_>>());
            same(&w.iter().map(|w| i32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect::<Vec<_>>());
            let w = words(2);
            same(&w.iter().map(|w| u16::from_le_bytes([w[0], w[1]])).collect::<Vec<_>>());
            same(&w.iter().map(|w| i16::from_le_bytes([w[0], w[1]])).collect::<Vec<_>>());
            // A sequence that continues a run of the same type right after a bulk one.
            let split = split.min(bytes.len());
            let (a, b) = bytes.split_at(split);
            assert_eq!(key_of(&(a.to_vec(), b)), key_of(&(OneByOne(a), OneByOne(b))));
        }
    }

    /// Runs: chunks of `RUN_BYTES` of values, broken by anything written between elements.
    #[test]
    fn runs_are_chunked_by_value_count() {
        let floats: Vec<f64> = (0..1000).map(f64::from).collect();
        let mut s: Vec<u8> = Vec::new();
        s.push(tag::LABEL);
        s.push(KEY_FORMAT.len() as u8);
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
