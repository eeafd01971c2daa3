//! The shape lane: `collect_seq`'s fast lane for a sequence of structs of one shape that
//! are not rows (a field holds a string, an `Option`, a `Vec<String>`…). Once an element
//! has been written as such a struct, the elements after it are offered to [`Lane`], which
//! writes each one, if it is a struct of that shape whose fields are of the kinds it knows,
//! straight into the sink's buffer at a write position kept in a local variable: the same
//! bytes the sink's serializer writes (`STRUCT`, the tagged fields, `SHAPE` and the
//! number), without its per-field bookkeeping (shape prediction, row candidacy, run
//! checks). Fields of the commonest string types (`String`, `Option<String>`,
//! `Vec<String>`), recognised by type id, are written without their `Serialize` impls'
//! out-of-line calls. It changes no byte of any key; it only skips work.
//!
//! When the buffer is too full for the next element, the lane flushes it and goes on.
//! An element it cannot write (another struct, a field of another kind, a struct that
//! would be a row, too little room left in the buffer) is refused before the lane's write
//! position is kept, and serialized again into the sink.

use super::fast::NotPrim;
use super::shape::*;
use super::sink::*;
use super::*;

/// Room the lane wants left in the buffer before it starts an element (an element that
/// needs more is refused for room, and written by the sink).
const LANE_ROOM: usize = 4096;

/// Why [`Lane`] refused an element.
#[derive(Debug)]
pub(super) struct Refused {
    /// Only for lack of room in the buffer: the lane may take the elements after it.
    room: bool,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not for the shape lane")
    }
}

impl std::error::Error for Refused {}

impl ser::Error for Refused {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Refused { room: false }
    }
}

impl From<NotPrim> for Refused {
    fn from(_: NotPrim) -> Refused {
        Refused { room: false }
    }
}

const KIND: Refused = Refused { room: false };
const ROOM: Refused = Refused { room: true };

impl Sink {
    /// `collect_seq`'s fast lane after an element that was a struct of shape `self.lane`
    /// and not a row: the items that follow, offered to [`Lane`], written while it takes
    /// them. Hands back the item it refused (to be serialized again into the sink; `on`
    /// is cleared unless it was refused only for room), or the next item when the buffer
    /// is too full for the lane (`None`: the sequence ended). `count` counts the items
    /// taken.
    #[inline]
    pub(super) fn shape_lane<I>(
        &mut self,
        iter: &mut I,
        count: &mut u64,
        on: &mut bool,
    ) -> Option<(I::Item, bool)>
    where
        I: Iterator,
        I::Item: Serialize,
    {
        let shape = std::mem::replace(&mut self.lane, NO_SHAPE);
        let close = match self.shapes.number(shape) {
            (number, None) => {
                // A `u32` takes at most five bytes of LEB128: the close fits in a word.
                let (bytes, n) = varint(u64::from(number));
                let mut close = [0u8; 8];
                close[0] = tag::SHAPE;
                close[1..1 + n].copy_from_slice(&bytes[..n]);
                Close {
                    word: u64::from_le_bytes(close),
                    len: 1 + n,
                }
            }
            // Never: the element before numbered it.
            (_, Some(_)) => {
                *on = false;
                return iter.next().map(|item| (item, false));
            }
        };
        let Some(known) = self.shapes.get(shape) else {
            *on = false;
            return iter.next().map(|item| (item, false));
        };
        // The names as a pointer (see `Names`): the lane may flush the sink between
        // elements, which leaves the shape table as it is.
        let (name, fields) = (known.name, self.names(shape));
        let limit = self.limit.min(BUF_LEN);
        let mut pos = self.pos;
        loop {
            if pos + LANE_ROOM > limit {
                self.pos = pos;
                if !self.lane_flush() {
                    return iter.next().map(|item| (item, false));
                }
                pos = self.pos;
            }
            let Some(item) = iter.next() else {
                self.pos = pos;
                return None;
            };
            *count += 1;
            let lane = Lane {
                buf: &mut self.buf,
                pos: &mut pos,
                limit,
                name,
                fields,
                close,
            };
            if let Err(refused) = item.serialize(lane) {
                self.pos = pos;
                *on = refused.room;
                return Some((item, true));
            }
        }
    }
}

impl Sink {
    /// Makes room for a lane whose buffer is too full for its next element: hands blake3
    /// what the buffer holds (no run is open after a struct or a tuple, so this changes
    /// no byte of the stream). Whether the lane has its room now (not with the tiny
    /// buffers of tests, whose elements the sink writes).
    #[inline(never)]
    fn lane_flush(&mut self) -> bool {
        if self.run.tag != 0 || self.limit < 2 * LANE_ROOM {
            return false;
        }
        self.flush();
        self.pos + LANE_ROOM <= self.limit.min(BUF_LEN)
    }
}

/// The shape lane's serializer (see the module docs): takes a struct named `name` with
/// the fields `fields` and writes it at `pos`, below `limit`; refuses anything else.
pub(super) struct Lane<'a> {
    buf: &'a mut [u8; BUF_LEN + 16],
    pos: &'a mut usize,
    limit: usize,
    name: &'static str,
    fields: Names,
    close: Close,
}

/// `SHAPE` and a shape's number, as the bytes of a word (the rest zero) and their count.
#[derive(Clone, Copy)]
struct Close {
    word: u64,
    len: usize,
}

/// A struct's fields in the lane.
pub(super) struct LaneFields<'a> {
    lane: Lane<'a>,
    i: usize,
    at: usize,
    /// Whether every field so far was a primitive (a struct of primitives only is a row,
    /// which the lane does not write).
    prims: bool,
}

/// Writes `data` at `*at` if it fits below `limit`.
#[inline(always)]
fn put_all(
    buf: &mut [u8; BUF_LEN + 16],
    at: &mut usize,
    limit: usize,
    data: &[u8],
) -> Result<(), Refused> {
    let end = *at + data.len();
    if end > limit {
        return Err(ROOM);
    }
    copy_short(&mut buf[*at..end], data);
    *at = end;
    Ok(())
}

/// Writes a tag, the LEB128 length of `data` and `data` (as `Sink::framed`).
#[inline(always)]
fn framed(
    buf: &mut [u8; BUF_LEN + 16],
    at: &mut usize,
    limit: usize,
    tag: u8,
    data: &[u8],
) -> Result<(), Refused> {
    let start = *at;
    if data.len() < 0x80 && start + 2 + data.len() <= limit {
        buf[start & (BUF_LEN - 1)] = tag;
        buf[(start + 1) & (BUF_LEN - 1)] = data.len() as u8;
        copy_short(&mut buf[start + 2..start + 2 + data.len()], data);
        *at = start + 2 + data.len();
        return Ok(());
    }
    let (len, n) = varint(len64(data.len()));
    put_byte(buf, at, limit, tag)?;
    put_all(buf, at, limit, &len[..n])?;
    put_all(buf, at, limit, data)
}

/// Writes `END` and a count (as `Sink::end_count`).
#[inline(always)]
fn end_count(
    buf: &mut [u8; BUF_LEN + 16],
    at: &mut usize,
    limit: usize,
    count: usize,
) -> Result<(), Refused> {
    let start = *at;
    if count < 0x80 && start + 2 <= limit {
        buf[start & (BUF_LEN - 1)] = tag::END;
        buf[(start + 1) & (BUF_LEN - 1)] = count as u8;
        *at = start + 2;
        return Ok(());
    }
    let (len, n) = varint(len64(count));
    put_byte(buf, at, limit, tag::END)?;
    put_all(buf, at, limit, &len[..n])
}

/// Writes one byte at `*at` if it fits below `limit`.
#[inline(always)]
fn put_byte(
    buf: &mut [u8; BUF_LEN + 16],
    at: &mut usize,
    limit: usize,
    byte: u8,
) -> Result<(), Refused> {
    let start = *at;
    if start >= limit {
        return Err(ROOM);
    }
    // `limit` is at most BUF_LEN: the mask changes nothing, and drops the bounds check.
    buf[start & (BUF_LEN - 1)] = byte;
    *at = start + 1;
    Ok(())
}

/// A field's value in the lane: primitives, strings, bytes, unit, `Option`s, unit
/// variants, newtype structs of those, and vectors of strings or of fixed-width numbers,
/// each written as the sink's serializer writes it. `Ok(true)` for a primitive.
struct Field<'a> {
    buf: &'a mut [u8; BUF_LEN + 16],
    at: &'a mut usize,
    limit: usize,
}

impl Field<'_> {
    #[inline(always)]
    fn prim(self, value: Val) -> Result<bool, Refused> {
        if let Val::Prim { tag, width, bytes } = value {
            let at = *self.at;
            if at + 17 > self.limit {
                return Err(ROOM);
            }
            self.buf[at & (BUF_LEN - 1)] = tag;
            put(self.buf, at + 1, width, bytes);
            *self.at = at + 1 + usize::from(width);
        }
        Ok(true)
    }

    #[inline(always)]
    fn framed(self, tag: u8, data: &[u8]) -> Result<bool, Refused> {
        framed(self.buf, self.at, self.limit, tag, data)?;
        Ok(false)
    }

    #[inline(always)]
    fn byte(self, byte: u8) -> Result<bool, Refused> {
        put_byte(self.buf, self.at, self.limit, byte)?;
        Ok(false)
    }

    /// A value inside this one (of an `Option` or a newtype): written as `place` writes it.
    #[inline(always)]
    fn inner<T: ?Sized + Serialize>(self, value: &T) -> Result<bool, Refused> {
        let Field { buf, at, limit } = self;
        Field { buf, at, limit }.value(value)?;
        Ok(false)
    }

    #[inline(always)]
    fn value<T: ?Sized + Serialize>(self, value: &T) -> Result<bool, Refused> {
        value.serialize(self)
    }

    /// A struct's field: a `String`, an `Option<String>` or a `Vec<String>` written here
    /// (the bytes their `Serialize` impls make this serializer write, without the calls),
    /// anything else serialized.
    #[inline(always)]
    fn typed<T: ?Sized + Serialize>(self, value: &T) -> Result<bool, Refused> {
        if let Some(text) = value_as::<T, String>(value) {
            return self.framed(tag::STR, text.as_bytes());
        }
        if let Some(text) = value_as::<T, Option<String>>(value) {
            return match text {
                Some(text) => {
                    put_byte(self.buf, self.at, self.limit, tag::SOME)?;
                    self.framed(tag::STR, text.as_bytes())
                }
                None => self.byte(tag::NONE),
            };
        }
        if let Some(strings) = value_as::<T, Vec<String>>(value) {
            return self.strings(strings);
        }
        value.serialize(self)
    }

    /// A sequence of strings, as `Sink::string_seq` writes it.
    #[inline(always)]
    fn strings(self, strings: &[String]) -> Result<bool, Refused> {
        let Field { buf, at, limit } = self;
        put_byte(buf, at, limit, tag::SEQ)?;
        for text in strings {
            framed(buf, at, limit, tag::STR, text.as_bytes())?;
        }
        end_count(buf, at, limit, strings.len())?;
        Ok(false)
    }
}

/// The primitive methods of [`Field`]: each writes its tag and bytes.
macro_rules! field_prims {
    ($($name:ident($v:ident: $ty:ty) => $tag:expr, $bytes:expr;)*) => {
        $(
            #[inline(always)]
            fn $name(self, $v: $ty) -> Result<bool, Refused> {
                self.prim(Val::prim($tag, $bytes))
            }
        )*
    };
}

/// Refuses serializer methods the lane does not take.
macro_rules! refuse {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(
            #[inline]
            fn $name(self, $(_: $ty),*) -> Result<$ret, Refused> {
                Err(KIND)
            }
        )*
    };
}

impl<'a> ser::Serializer for Field<'a> {
    type Ok = bool;
    type Error = Refused;
    type SerializeSeq = ser::Impossible<bool, Refused>;
    type SerializeTuple = ser::Impossible<bool, Refused>;
    type SerializeTupleStruct = ser::Impossible<bool, Refused>;
    type SerializeTupleVariant = ser::Impossible<bool, Refused>;
    type SerializeMap = ser::Impossible<bool, Refused>;
    type SerializeStruct = ser::Impossible<bool, Refused>;
    type SerializeStructVariant = ser::Impossible<bool, Refused>;

    #[inline]
    fn is_human_readable(&self) -> bool {
        // As the sink's: an impl with two forms must pick the same one in both.
        false
    }

    field_prims! {
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

    #[inline(always)]
    fn serialize_str(self, v: &str) -> Result<bool, Refused> {
        self.framed(tag::STR, v.as_bytes())
    }

    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<bool, Refused> {
        self.framed(tag::BYTES, v)
    }

    #[inline(always)]
    fn serialize_none(self) -> Result<bool, Refused> {
        self.byte(tag::NONE)
    }

    #[inline(always)]
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<bool, Refused> {
        put_byte(self.buf, self.at, self.limit, tag::SOME)?;
        self.inner(value)
    }

    #[inline]
    fn serialize_unit(self) -> Result<bool, Refused> {
        self.byte(tag::UNIT)
    }

    #[inline]
    fn serialize_unit_variant(
        self,
        name: &'static str,
        variant_index: u32,
        variant: &'static str,
    ) -> Result<bool, Refused> {
        // As `Sink::variant`.
        framed(
            self.buf,
            self.at,
            self.limit,
            tag::UNIT_VARIANT,
            name.as_bytes(),
        )?;
        put_all(self.buf, self.at, self.limit, &variant_index.to_le_bytes())?;
        self.framed(tag::LABEL, variant.as_bytes())
    }

    #[inline]
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<bool, Refused> {
        framed(
            self.buf,
            self.at,
            self.limit,
            tag::NEWTYPE_STRUCT,
            name.as_bytes(),
        )?;
        self.inner(value)
    }

    /// A vector or slice of strings or of fixed-width numbers, as `Sink::string_seq` and
    /// `Sink::number_seq` write them; any other sequence is refused.
    #[inline]
    fn collect_seq<I>(self, iter: I) -> Result<bool, Refused>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        if let Some(strings) = pod::elements_of::<I, String>(&iter) {
            return self.strings(strings);
        }
        let Field { buf, at, limit } = self;
        if let Some((tag, width, data)) = serializer::number_slice(&iter) {
            put_byte(buf, at, limit, tag::SEQ)?;
            for chunk in data.chunks(RUN_BYTES) {
                // At most RUN_BYTES values.
                let count = u16::try_from(chunk.len() / width).unwrap_or(u16::MAX);
                let [low, high] = count.to_le_bytes();
                put_all(buf, at, limit, &[tag::RUN, tag, low, high])?;
                put_all(buf, at, limit, chunk)?;
            }
            end_count(buf, at, limit, data.len() / width)?;
            return Ok(false);
        }
        Err(KIND)
    }

    refuse! {
        serialize_unit_struct(name: &'static str) -> bool;
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
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<bool, Refused> {
        Err(KIND)
    }

    #[inline]
    fn collect_str<T: ?Sized + fmt::Display>(self, _: &T) -> Result<bool, Refused> {
        Err(KIND)
    }
}

impl<'a> ser::Serializer for Lane<'a> {
    type Ok = bool;
    type Error = Refused;
    type SerializeSeq = ser::Impossible<bool, Refused>;
    type SerializeTuple = ser::Impossible<bool, Refused>;
    type SerializeTupleStruct = ser::Impossible<bool, Refused>;
    type SerializeTupleVariant = ser::Impossible<bool, Refused>;
    type SerializeMap = ser::Impossible<bool, Refused>;
    type SerializeStruct = LaneFields<'a>;
    type SerializeStructVariant = ser::Impossible<bool, Refused>;

    #[inline]
    fn is_human_readable(&self) -> bool {
        false
    }

    refuse! {
        serialize_bool(v: bool) -> bool;
        serialize_i8(v: i8) -> bool;
        serialize_i16(v: i16) -> bool;
        serialize_i32(v: i32) -> bool;
        serialize_i64(v: i64) -> bool;
        serialize_i128(v: i128) -> bool;
        serialize_u8(v: u8) -> bool;
        serialize_u16(v: u16) -> bool;
        serialize_u32(v: u32) -> bool;
        serialize_u64(v: u64) -> bool;
        serialize_u128(v: u128) -> bool;
        serialize_f32(v: f32) -> bool;
        serialize_f64(v: f64) -> bool;
        serialize_char(v: char) -> bool;
        serialize_str(v: &str) -> bool;
        serialize_bytes(v: &[u8]) -> bool;
        serialize_none() -> bool;
        serialize_unit() -> bool;
        serialize_unit_struct(name: &'static str) -> bool;
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str) -> bool;
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
        serialize_struct_variant(
            name: &'static str,
            index: u32,
            variant: &'static str,
            len: usize
        ) -> Self::SerializeStructVariant;
    }

    #[inline(always)]
    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<LaneFields<'a>, Refused> {
        if !same_name(name, self.name) {
            return Err(KIND);
        }
        let at = *self.pos;
        // Room was left (`LANE_ROOM`).
        self.buf[at & (BUF_LEN - 1)] = tag::STRUCT;
        Ok(LaneFields {
            lane: self,
            i: 0,
            at: at + 1,
            prims: true,
        })
    }

    refuse_values!(bool, Refused, KIND);
}

impl ser::SerializeStruct for LaneFields<'_> {
    type Ok = bool;
    type Error = Refused;

    #[inline(always)]
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Refused> {
        if !self.lane.fields.is(self.i, key) {
            return Err(KIND);
        }
        let field = Field {
            buf: self.lane.buf,
            at: &mut self.at,
            limit: self.lane.limit,
        };
        let prim = field.typed(value)?;
        self.prims &= prim;
        self.i += 1;
        Ok(())
    }

    #[inline(always)]
    fn end(self) -> Result<bool, Refused> {
        let n = self.i;
        // A struct of 1 to MAX_ROW_FIELDS primitives is a row: the sink writes it.
        if n != self.lane.fields.len() || (self.prims && n > 0 && n <= MAX_ROW_FIELDS) {
            return Err(KIND);
        }
        let Close { word, len } = self.lane.close;
        let end = self.at + len;
        if end > self.lane.limit {
            return Err(ROOM);
        }
        // The whole word: the bytes past `len` land in the buffer's room past `end` (at
        // most `BUF_LEN`, and the buffer has 16 bytes more), where nothing is yet.
        let at = self.at & (BUF_LEN - 1);
        self.lane.buf[at..at + 8].copy_from_slice(&word.to_le_bytes());
        *self.lane.pos = end;
        Ok(false)
    }
}

impl Sink {
    /// `collect_seq`'s fast lane after an element that was a tuple: the items that follow,
    /// offered to [`TupleLane`], written while they are tuples of primitives. As
    /// [`Sink::shape_lane`] for what it hands back.
    #[inline]
    pub(super) fn tuple_lane<I>(
        &mut self,
        iter: &mut I,
        count: &mut u64,
        on: &mut bool,
    ) -> Option<(I::Item, bool)>
    where
        I: Iterator,
        I::Item: Serialize,
    {
        self.lane_tuple = false;
        let limit = self.limit.min(BUF_LEN);
        let mut pos = self.pos;
        loop {
            if pos + LANE_ROOM > limit {
                self.pos = pos;
                if !self.lane_flush() {
                    return iter.next().map(|item| (item, false));
                }
                pos = self.pos;
            }
            let Some(item) = iter.next() else {
                self.pos = pos;
                return None;
            };
            *count += 1;
            let lane = TupleLane {
                buf: &mut self.buf,
                pos: &mut pos,
                limit,
            };
            if let Err(refused) = item.serialize(lane) {
                self.pos = pos;
                *on = refused.room;
                return Some((item, true));
            }
        }
    }
}

/// The tuple lane's serializer: takes a tuple of at most [`TUPLE_LANE_LEN`] primitives and
/// writes it at `pos`, below `limit`, as the sink's serializer does (`TUPLE`, its elements
/// in runs of one type, `END` and the count); refuses anything else.
pub(super) struct TupleLane<'a> {
    buf: &'a mut [u8; BUF_LEN + 16],
    pos: &'a mut usize,
    limit: usize,
}

/// Most elements of a tuple the tuple lane takes (so no run of it is longer than a run
/// chunk holds).
const TUPLE_LANE_LEN: usize = 64;

/// A tuple's elements in the tuple lane.
pub(super) struct TupleElements<'a> {
    lane: TupleLane<'a>,
    at: usize,
    count: usize,
    /// The open run: its element tag (0: none) and where its header is.
    tag: u8,
    header: usize,
    values: u16,
}

impl TupleElements<'_> {
    /// Writes the open run's count into its header.
    #[inline(always)]
    fn close_run(&mut self) {
        if self.tag != 0 {
            let [low, high] = self.values.to_le_bytes();
            self.lane.buf[(self.header + 2) & (BUF_LEN - 1)] = low;
            self.lane.buf[(self.header + 3) & (BUF_LEN - 1)] = high;
        }
    }
}

impl<'a> ser::Serializer for TupleLane<'a> {
    type Ok = bool;
    type Error = Refused;
    type SerializeSeq = ser::Impossible<bool, Refused>;
    type SerializeTuple = TupleElements<'a>;
    type SerializeTupleStruct = ser::Impossible<bool, Refused>;
    type SerializeTupleVariant = ser::Impossible<bool, Refused>;
    type SerializeMap = ser::Impossible<bool, Refused>;
    type SerializeStruct = ser::Impossible<bool, Refused>;
    type SerializeStructVariant = ser::Impossible<bool, Refused>;

    #[inline]
    fn is_human_readable(&self) -> bool {
        false
    }

    refuse! {
        serialize_bool(v: bool) -> bool;
        serialize_i8(v: i8) -> bool;
        serialize_i16(v: i16) -> bool;
        serialize_i32(v: i32) -> bool;
        serialize_i64(v: i64) -> bool;
        serialize_i128(v: i128) -> bool;
        serialize_u8(v: u8) -> bool;
        serialize_u16(v: u16) -> bool;
        serialize_u32(v: u32) -> bool;
        serialize_u64(v: u64) -> bool;
        serialize_u128(v: u128) -> bool;
        serialize_f32(v: f32) -> bool;
        serialize_f64(v: f64) -> bool;
        serialize_char(v: char) -> bool;
        serialize_str(v: &str) -> bool;
        serialize_bytes(v: &[u8]) -> bool;
        serialize_none() -> bool;
        serialize_unit() -> bool;
        serialize_unit_struct(name: &'static str) -> bool;
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str) -> bool;
        serialize_seq(len: Option<usize>) -> Self::SerializeSeq;
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

    #[inline(always)]
    fn serialize_tuple(self, _len: usize) -> Result<TupleElements<'a>, Refused> {
        let at = *self.pos;
        // Room was left (`LANE_ROOM`).
        self.buf[at & (BUF_LEN - 1)] = tag::TUPLE;
        Ok(TupleElements {
            lane: self,
            at: at + 1,
            count: 0,
            tag: 0,
            header: 0,
            values: 0,
        })
    }

    refuse_values!(bool, Refused, KIND);
}

impl ser::SerializeTuple for TupleElements<'_> {
    type Ok = bool;
    type Error = Refused;

    #[inline(always)]
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Refused> {
        let Val::Prim { tag, width, bytes } = value.serialize(fast::PrimOnly)? else {
            return Err(KIND);
        };
        self.count += 1;
        let at = self.at;
        // A run header and a value at most.
        if self.count > TUPLE_LANE_LEN || at + 20 > self.lane.limit {
            return Err(if self.count > TUPLE_LANE_LEN {
                KIND
            } else {
                ROOM
            });
        }
        if tag == self.tag {
            put(self.lane.buf, at, width, bytes);
            self.at = at + usize::from(width);
            self.values += 1;
        } else {
            self.close_run();
            let header = [tag::RUN, tag, 0, 0];
            self.lane.buf[at..at + 4].copy_from_slice(&header);
            put(self.lane.buf, at + 4, width, bytes);
            self.at = at + 4 + usize::from(width);
            self.tag = tag;
            self.header = at;
            self.values = 1;
        }
        Ok(())
    }

    #[inline(always)]
    fn end(mut self) -> Result<bool, Refused> {
        self.close_run();
        end_count(self.lane.buf, &mut self.at, self.lane.limit, self.count)?;
        *self.lane.pos = self.at;
        Ok(false)
    }
}
