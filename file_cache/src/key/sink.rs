//! The sink: the buffered blake3 stream every key is written into, its framing primitives
//! (tags, lengths, runs of fixed-width numbers, labels), the per-map state that buffers a
//! map's entries for ordering, and the serializer's error. It owns bytes and buffering; the
//! encoding of values is `serializer`'s, the order of map entries `order`'s.

use super::order::*;
use super::shape::*;
use super::*;

/// A blake3 hasher behind a write buffer; the serializer writes into it.
///
/// The buffer is an array inside the sink rather than a `Vec`: the compiler then knows
/// that a byte stored into it cannot change the sink's own fields (a store through a
/// `Vec`'s pointer might alias anything), and keeps the write position in a register
/// across the elements of a sequence.
#[repr(C, align(64))] // `buf` first: see `put`; on a cache line, on the heap or static.
pub(super) struct Sink {
    /// `BUF_LEN` bytes and a tail, so that `put` never needs a bounds check.
    pub(super) buf: [u8; BUF_LEN + 16],
    /// Bytes of `buf` in use.
    pub(super) pos: usize,
    /// Flush when the buffer would grow past this many bytes (at most `BUF_LEN`); also
    /// the size from which a slice bypasses the buffer.
    pub(super) limit: usize,
    /// The open run chunk, if any: its values end at `pos`.
    pub(super) run: Run,
    pub(super) hasher: blake3::Hasher,
    /// Bytes handed to `hasher` since it was last reset.
    pub(super) fed: u64,
    /// What maps serialized into this sink use (created on the first map, then reused
    /// for every map at this depth; `None` while a map holds it, or after one failed).
    pub(super) maps: Option<Box<MapParts>>,
    /// Reused by `collect_str`.
    pub(super) scratch: String,
    /// The struct shapes this sink has seen, and their numbers in its stream.
    pub(super) shapes: Shapes,
    /// Where the sequence element being serialized starts in the stream (`fed + pos`
    /// when it started), or `u64::MAX`: a struct that starts there may become a row (see
    /// `row`). A position in the stream, not the buffer: a flush moves `pos` back.
    pub(super) element: u64,
    /// Where the struct that may still become a row starts, or [`NO_CANDIDATE`].
    pub(super) cand: usize,
    /// What the open row chunk holds, when `run.tag` is `tag::ROWS`.
    pub(super) rows: RowKind,
    /// The shape of the struct that was the last sequence element written, if it was not
    /// a row, else [`NO_SHAPE`]: the elements after it are offered to the shape lane
    /// (see `lane`).
    pub(super) lane: u32,
    /// Whether the last sequence element written was a tuple (see `lane`).
    pub(super) lane_tuple: bool,
}

/// The open run chunk (see the module docs). Any write other than a value of the run
/// closes it, so while it is open, a primitive of its type is the sequence's next element.
#[derive(Clone, Copy)]
pub(super) struct Run {
    /// The element tag; 0 (no tag) when no run is open.
    pub(super) tag: u8,
    /// Where its header starts in `buf` (its count is at `at + 2`).
    pub(super) at: usize,
    /// Where its values start.
    pub(super) data: usize,
    /// `pos` may grow up to here while the chunk takes values.
    pub(super) end: usize,
    /// Bytes per value.
    pub(super) width: usize,
}

pub(super) const NO_RUN: Run = Run {
    tag: 0,
    at: 0,
    data: 0,
    end: 0,
    width: 1,
};

// The state of rows (see the `row` module), which the sink's writes keep.

/// Most fields of a struct that can be a row.
pub(super) const MAX_ROW_FIELDS: usize = 32;

/// Room a candidate may fill: its tag, and its fields' tags and values.
pub(super) const CANDIDATE_ROOM: usize = 1 + MAX_ROW_FIELDS * 17;

/// No candidate (for `Sink::cand`).
pub(super) const NO_CANDIDATE: usize = usize::MAX;

/// What an open row chunk holds: the shape and the fields' tags.
#[derive(Clone, Copy)]
pub(super) struct RowKind {
    pub(super) shape: u32,
    pub(super) n: usize,
    pub(super) tags: [u8; MAX_ROW_FIELDS],
}

pub(super) const NO_ROWS: RowKind = RowKind {
    shape: NO_SHAPE,
    n: 0,
    tags: [0; MAX_ROW_FIELDS],
};

/// What serializing one value into a sink did. A primitive is not written by the method
/// that receives it but handed back to the caller, which knows where it goes: tagged
/// (`Sink::place`) or, as a sequence's element, into a run (`Sink::run_value`). That keeps
/// the element loop of `collect_seq` free of anything the compiler cannot see through.
#[derive(Clone, Copy)]
pub(super) enum Val {
    /// Written to the sink (everything but primitives).
    Written,
    /// A primitive: its tag and its `width` little-endian bytes (the rest zero).
    Prim { tag: u8, width: u8, bytes: [u8; 16] },
}

impl Val {
    #[inline(always)]
    pub(super) fn prim<const N: usize>(tag: u8, payload: [u8; N]) -> Val {
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

/// A shape's field names, as [`Sink::names`] hands them to a struct in progress (or to
/// the shape lane, which flushes the sink between elements: a flush leaves the table be).
///
/// A pointer rather than a borrow, because the struct's serializer holds the sink (and its
/// table) mutably while its fields serialize. It stays valid that long: the names are a
/// `Box` of the shape's, which never moves when the table grows (the `Box` moves, not
/// its contents) and is only dropped by `Shapes::new_stream`, between keys, never while
/// a value is being serialized into the sink.
#[derive(Clone, Copy)]
pub(super) struct Names {
    at: *const &'static str,
    len: usize,
}

impl Names {
    /// How many names.
    #[inline(always)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Whether the `i`th name is `name` (by address: see `same_name`).
    #[inline(always)]
    #[allow(unsafe_code)]
    pub(super) fn is(&self, i: usize, name: &'static str) -> bool {
        // SAFETY: `i` is below `len`, and the names are alive (see the type's docs).
        i < self.len && same_name(unsafe { *self.at.add(i) }, name)
    }
}

/// `value` as an `E` when its type is `E` (a type without lifetimes), else `None`: lets a
/// generic field writer take the common field types (`String`, `Option<String>`,
/// `Vec<String>`) without going through their out-of-line `Serialize` impls.
#[inline(always)]
#[allow(unsafe_code)]
pub(super) fn value_as<T: ?Sized, E: 'static>(value: &T) -> Option<&E> {
    if typeid::of::<T>() == typeid::of::<E>() {
        // SAFETY: type ids are equal only for types that differ at most in lifetimes, and
        // `E` has none (it is `'static`): `T` is `E` (so sized, and the pointer thin), and
        // the borrow's lifetime is kept.
        Some(unsafe { &*(value as *const T).cast::<E>() })
    } else {
        None
    }
}

/// Stores a primitive's `width` bytes at `at` in a sink's buffer (`at` below `BUF_LEN`,
/// room checked by the caller). The index is masked into the buffer, so no bounds check
/// is left and the compiler can see that the store does not land on the sink's fields.
#[inline(always)]
pub(super) fn put(buf: &mut [u8; BUF_LEN + 16], at: usize, width: u8, bytes: [u8; 16]) {
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
pub(super) fn copy_short(dst: &mut [u8], src: &[u8]) {
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
    /// and then copied, the 64 KiB buffer twice: in a process's first call, where every
    /// page touched is a page fault, that was 32 faults for a key of a few bytes.
    #[allow(unsafe_code)]
    pub(super) fn boxed() -> Box<Sink> {
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
    pub(super) unsafe fn init_fields(at: *mut Sink) {
        // SAFETY: the caller's promise; each write is to a raw place inside `*at`.
        unsafe {
            std::ptr::addr_of_mut!((*at).pos).write(0);
            std::ptr::addr_of_mut!((*at).limit).write(FLUSH_AT);
            std::ptr::addr_of_mut!((*at).run).write(NO_RUN);
            std::ptr::addr_of_mut!((*at).hasher).write(blake3::Hasher::new());
            std::ptr::addr_of_mut!((*at).fed).write(0);
            std::ptr::addr_of_mut!((*at).maps).write(None);
            std::ptr::addr_of_mut!((*at).scratch).write(String::new());
            std::ptr::addr_of_mut!((*at).shapes).write(Shapes::new());
            std::ptr::addr_of_mut!((*at).element).write(u64::MAX);
            std::ptr::addr_of_mut!((*at).cand).write(NO_CANDIDATE);
            std::ptr::addr_of_mut!((*at).rows).write(NO_ROWS);
            std::ptr::addr_of_mut!((*at).lane).write(NO_SHAPE);
            std::ptr::addr_of_mut!((*at).lane_tuple).write(false);
        }
    }

    /// The field names of a shape from `Shapes::predict` (none for [`NO_SHAPE`]), to be
    /// checked one by one as a struct's fields come, without a lookup per field.
    #[inline(always)]
    pub(super) fn names(&self, shape: u32) -> Names {
        match self.shapes.get(shape) {
            Some(shape) => Names {
                at: shape.fields.as_ptr(),
                len: shape.fields.len(),
            },
            None => Names {
                at: std::ptr::NonNull::dangling().as_ptr(),
                len: 0,
            },
        }
    }

    /// Empties the sink for reuse (the buffer's old bytes are never read again).
    pub(super) fn reset(&mut self) {
        self.pos = 0;
        self.run = NO_RUN;
        self.element = u64::MAX;
        self.cand = NO_CANDIDATE;
        self.lane = NO_SHAPE;
        self.lane_tuple = false;
        self.shapes.new_stream();
        if self.fed > 0 {
            self.hasher.reset();
            self.fed = 0;
        }
    }

    #[inline(always)]
    pub(super) fn write(&mut self, data: &[u8]) {
        self.close_run();
        let end = self.pos + data.len();
        if end <= self.limit {
            copy_short(&mut self.buf[self.pos..end], data);
            self.pos = end;
        } else {
            self.write_slow(data);
        }
    }

    /// One byte (a tag that stands alone: `NONE`, `SOME`, `SEQ`…): the same bytes as
    /// `write(&[byte])`, without the slice copy.
    #[inline(always)]
    pub(super) fn byte(&mut self, byte: u8) {
        self.close_run();
        let at = self.pos;
        if at < self.limit {
            // `limit` is at most BUF_LEN: the mask changes nothing, and drops the bounds
            // check.
            self.buf[at & (BUF_LEN - 1)] = byte;
            self.pos = at + 1;
        } else {
            self.write_slow(&[byte]);
        }
    }

    #[inline(never)]
    pub(super) fn write_slow(&mut self, mut data: &[u8]) {
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
    pub(super) fn chunked(&self) -> bool {
        self.limit >= 2 * CHUNK_LEN
    }

    /// Hands the first `len` buffered bytes to blake3 and moves the rest to the front.
    pub(super) fn feed_buffer(&mut self, len: usize) {
        if len > 0 {
            self.hasher.update(&self.buf[..len]);
            self.fed += len64(len);
            self.buf.copy_within(len..self.pos, 0);
            self.pos -= len;
        }
    }

    /// A tag and a fixed-width payload.
    #[inline(always)]
    pub(super) fn tagged<const N: usize>(&mut self, tag: u8, payload: [u8; N]) {
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
    pub(super) fn framed(&mut self, tag: u8, data: &[u8]) {
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
    pub(super) fn framed_slow(&mut self, tag: u8, data: &[u8]) {
        let (len, n) = varint(len64(data.len()));
        self.write(&[tag]);
        self.write(&len[..n]);
        self.write(data);
    }

    /// Closes a sequence or tuple: `END` and the element count (LEB128).
    #[inline(always)]
    pub(super) fn end_count(&mut self, count: u64) {
        if count < 0x80 {
            self.tagged(tag::END, [count as u8]);
        } else {
            let (len, n) = varint(count);
            self.write(&[tag::END]);
            self.write(&len[..n]);
        }
    }

    /// Closes a struct or struct variant: `SHAPE` and its shape's number in the stream
    /// (LEB128), after `DEF` and the shape's definition where the shape is first used.
    #[inline(always)]
    pub(super) fn close_struct(&mut self, shape: u32) {
        match self.shapes.number(shape) {
            (number, None) if number < 0x80 => self.tagged(tag::SHAPE, [number as u8]),
            (number, def) => self.close_struct_slow(number, def),
        }
    }

    #[inline(never)]
    fn close_struct_slow(&mut self, number: u32, def: Option<Box<[u8]>>) {
        if let Some(def) = def {
            self.write(&[tag::DEF]);
            self.write(&def);
        }
        let (len, n) = varint(u64::from(number));
        self.write(&[tag::SHAPE]);
        self.write(&len[..n]);
    }

    #[inline]
    pub(super) fn label(&mut self, name: &str) {
        self.framed(tag::LABEL, name.as_bytes());
    }

    #[inline]
    pub(super) fn variant(&mut self, tag: u8, name: &str, index: u32, variant: &str) {
        self.framed(tag, name.as_bytes());
        self.write(&index.to_le_bytes());
        self.label(variant);
    }

    /// A primitive that is not a sequence's element: its tag, then its bytes.
    #[inline(always)]
    pub(super) fn place(&mut self, value: Val) {
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
    pub(super) fn run_value(&mut self, tag: u8, width: u8, bytes: [u8; 16]) {
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
    pub(super) fn open_run(&mut self, tag: u8, width: u8, bytes: [u8; 16]) {
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
            data: at + RUN_HEADER,
            end: at + room,
            width: usize::from(width),
        };
    }

    /// A sequence of `data.len() / width` numbers of type `tag`, as their little-endian
    /// bytes: the stream that writing them one by one into runs gives (see the module
    /// docs), written a chunk at a time.
    pub(super) fn number_seq(&mut self, tag: u8, width: usize, data: &[u8]) {
        self.byte(tag::SEQ);
        for chunk in data.chunks(RUN_BYTES) {
            // At most RUN_BYTES values.
            let count = u16::try_from(chunk.len() / width).unwrap_or(u16::MAX);
            let [low, high] = count.to_le_bytes();
            self.write(&[tag::RUN, tag, low, high]);
            self.write(chunk);
        }
        self.end_count(len64(data.len() / width));
    }

    /// A sorted map's entries (see `MapEntries`), each `range_of` a packed entry in
    /// `arena`: the same bytes as a `write` of each, with the write position kept in a
    /// local variable across the entries (entries are at most `ENTRY_INLINE` bytes).
    pub(super) fn write_entries(&mut self, order: &[u128], arena: &[u8]) {
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
    pub(super) fn string_seq(&mut self, strings: &[String]) {
        self.byte(tag::SEQ);
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
        self.end_count(len64(strings.len()));
    }

    /// Writes the open chunk's count into its header and closes it.
    #[inline(always)]
    pub(super) fn close_run(&mut self) {
        if self.run.tag != 0 {
            self.close_run_slow();
        }
    }

    #[inline(never)]
    pub(super) fn close_run_slow(&mut self) {
        // A write while a struct after the chunk's rows may still become a row (see
        // `row`): it will not, and its bytes so far are not the chunk's.
        let end = self.pos.min(self.cand);
        self.cand = NO_CANDIDATE;
        let Run {
            at, data, width, ..
        } = self.run;
        self.run = NO_RUN;
        let count = (end - data) / width;
        // At most RUN_BYTES values (or rows) of at least one byte each.
        let count = u16::try_from(count).unwrap_or(u16::MAX);
        self.buf[at + 2..at + 4].copy_from_slice(&count.to_le_bytes());
    }

    /// Hands blake3 the buffered bytes up to the last chunk boundary of the stream
    /// (everything, for tiny buffers), keeping less than a chunk.
    ///
    /// An update that starts inside one of blake3's 1 KiB chunks compresses that chunk's
    /// blocks one at a time, and one that covers an odd number of chunks hashes some of
    /// them with a narrower SIMD path; 16 aligned chunks go through its widest path at
    /// once. Unaligned flushes made blake3 half again slower on a `Vec<f64>`.
    pub(super) fn flush(&mut self) {
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
    pub(super) fn digest(&mut self) -> [u8; 32] {
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
pub(super) fn varint(mut n: u64) -> ([u8; 10], usize) {
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

pub(super) fn len64(len: usize) -> u64 {
    // usize is at most 64 bits on every target Rust supports.
    len as u64
}

/// The serializer's error: a `Serialize` impl's own error, or a broken serde protocol.
#[derive(Debug)]
pub(super) struct Error(pub(super) Box<str>);

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

/// What a map in progress needs, kept by its sink for the next map at the same depth.
pub(super) struct MapParts {
    /// Encodes one entry (key, then value) at a time.
    pub(super) entry: Box<Sink>,
    /// The entries' encodings (or digests), back to back.
    pub(super) bytes: Vec<u8>,
    /// Per entry: its order hash (see `MapEntries`) in the high 64 bits, where its bytes
    /// are in the low ones (see `pack`); sorted by `sort_entries`.
    pub(super) order: Vec<u128>,
    /// Room for `sort_entries`.
    pub(super) scratch: Vec<u128>,
    /// The digit counts of `sort_entries`.
    pub(super) counts: Vec<usize>,
    /// The digits the entries are counted on as they come, when the map said its length
    /// up front (see `push_entry`).
    pub(super) early: Option<Digits>,
    /// How many of `order`'s first entries have their hash (and, with `early`, are
    /// counted).
    pub(super) hashed: usize,
}

impl MapParts {
    pub(super) fn new() -> Box<MapParts> {
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
    pub(super) fn push_entry(&mut self, start: usize) {
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
    pub(super) fn expect(&mut self, len: Option<usize>) {
        if let Some(len) = len.filter(|len| *len >= SMALL_MAP) {
            let digits = Digits::for_len(len);
            digits.clear(&mut self.counts);
            self.early = Some(digits);
        }
    }

    pub(super) fn clear(&mut self) {
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
pub(super) fn sort_entries(parts: &mut MapParts, order_hash: impl Fn(&[u8]) -> u64) {
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
