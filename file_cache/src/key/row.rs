//! Rows: consecutive elements of a sequence or tuple that are structs of one shape whose
//! fields are all fixed-width primitives (a `Vec` of points, of table rows of numbers)
//! are written as row chunks: `ROWS`, the field count, a `u16` row count, the shape's
//! number and the fields' tags, then each row's field bytes alone, at most
//! [`RUN_BYTES`] bytes of rows per chunk. A chunk stands for that many consecutive
//! element slots, as a run does for primitives; where chunks end depends only on the
//! values, never on the buffer.
//!
//! Whether a struct is a row is only known at its end, so a struct that starts an element
//! is a *candidate*: it is written as any struct is (its tag, then each field tagged), into
//! room reserved so that no flush can fall inside it, and rewritten as a row at its end if
//! it qualifies. Its first field that is not a primitive ends the candidacy (a primitive
//! writes nothing before its field places it); with a row chunk open before it, the first
//! write that is not one of its primitive fields goes through `Sink::close_run`, which
//! closes the chunk at the candidate's start (see `Sink::close_run_slow`). Its bytes are
//! then already what a struct that is not a row writes. The fast lane of `collect_seq`
//! ([`RowOnly`]) appends the elements that follow a row straight to its chunk; those that
//! follow a struct that is not a row go to the shape lane (`lane`).

use super::fast::NotPrim;
use super::shape::*;
use super::sink::*;
use super::*;

/// The width of a fixed-width primitive's value, by its tag.
fn width_of(tag: u8) -> usize {
    match tag {
        tag::BOOL | tag::I8 | tag::U8 => 1,
        tag::I16 | tag::U16 => 2,
        tag::I32 | tag::U32 | tag::F32 | tag::CHAR => 4,
        tag::I64 | tag::U64 | tag::F64 => 8,
        _ => 16,
    }
}

impl Sink {
    /// Serializes a sequence's (or tuple's) element: a struct that starts it may be a row.
    #[inline(always)]
    pub(super) fn element_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<Val, Error> {
        self.element = self.at_stream();
        self.lane = NO_SHAPE;
        self.lane_tuple = false;
        let value = value.serialize(&mut *self);
        self.element = u64::MAX;
        value
    }

    /// Where the next byte goes in the stream.
    #[inline(always)]
    pub(super) fn at_stream(&self) -> u64 {
        self.fed + len64(self.pos)
    }

    /// Starts a struct that may become a row (it starts a sequence's element): writes its
    /// tag, after room for all of it.
    ///
    /// With no row chunk open, nothing marks the candidate in the run: its `Fields` ends
    /// the candidacy itself at its first field that is not a primitive (a primitive writes
    /// nothing before its field places it), so the writes of such a field take no detour
    /// through `close_run_slow`. With a row chunk open, the chunk must be closed by the
    /// first write that is not the candidate's, whoever makes it, so `close_run` does.
    #[inline(always)]
    pub(super) fn start_candidate(&mut self) {
        if self.run.tag != tag::ROWS {
            // A row chunk reserved room for a candidate after its rows (`end_row`).
            self.close_run();
            if self.pos + CANDIDATE_ROOM > self.limit.max(CANDIDATE_ROOM) {
                self.flush();
            }
        }
        self.cand = self.pos;
        self.buf[self.pos] = tag::STRUCT;
        self.pos += 1;
    }

    /// Whether the candidate that started at `start` is still one.
    #[inline(always)]
    pub(super) fn is_candidate(&self, start: usize) -> bool {
        self.cand == start
    }

    /// A primitive field of a live candidate, tagged as `place` writes it (the room was
    /// reserved).
    #[inline(always)]
    pub(super) fn candidate_field(&mut self, tag: u8, width: u8, bytes: [u8; 16]) {
        let at = self.pos;
        self.buf[at & (BUF_LEN - 1)] = tag;
        put(&mut self.buf, at + 1, width, bytes);
        self.pos = at + 1 + usize::from(width);
    }

    /// Ends a candidate that is a row: its `n` fields, written from `start`, become a row
    /// of the open chunk if it holds rows of this shape and field types and has room, else
    /// the first of a new chunk.
    pub(super) fn end_row(&mut self, shape: u32, start: usize, n: usize) {
        let mut kind = RowKind {
            shape,
            n,
            tags: [0; MAX_ROW_FIELDS],
        };
        let mut row = [0u8; MAX_ROW_FIELDS * 16];
        let mut width = 0;
        let mut at = start + 1;
        for tag in kind.tags.iter_mut().take(n) {
            *tag = self.buf[at];
            let w = width_of(*tag);
            row[width..width + w].copy_from_slice(&self.buf[at + 1..at + 1 + w]);
            width += w;
            at += 1 + w;
        }
        self.cand = NO_CANDIDATE;
        let row = &row[..width];
        let same =
            self.rows.shape == shape && self.rows.n == n && self.rows.tags[..n] == kind.tags[..n];
        if self.run.tag == tag::ROWS && same && start + width <= self.run.end {
            self.buf[start..start + width].copy_from_slice(row);
            self.pos = start + width;
            return;
        }
        self.pos = start;
        self.close_run();
        let (number, def) = self.shapes.number(shape);
        if let Some(def) = def {
            self.write(&[tag::DEF]);
            self.write(&def);
        }
        let (number, number_len) = varint(u64::from(number));
        let header = 4 + number_len + n;
        // Room for the whole chunk and a candidate after it, so no flush falls inside.
        let room = header + RUN_BYTES + CANDIDATE_ROOM;
        if self.pos + room > self.limit.max(room) {
            self.flush();
        }
        let at = self.pos;
        // At most MAX_ROW_FIELDS fields.
        self.buf[at..at + 4].copy_from_slice(&[tag::ROWS, n as u8, 0, 0]);
        self.buf[at + 4..at + 4 + number_len].copy_from_slice(&number[..number_len]);
        self.buf[at + 4 + number_len..at + header].copy_from_slice(&kind.tags[..n]);
        let data = at + header;
        self.buf[data..data + width].copy_from_slice(row);
        self.pos = data + width;
        self.run = Run {
            tag: tag::ROWS,
            at,
            data,
            end: data + RUN_BYTES,
            width,
        };
        self.rows = kind;
    }

    /// `collect_seq`'s fast lane after a row: the items that follow, offered to
    /// [`RowOnly`], appended to the open chunk while they are rows of it. Hands back the
    /// item `RowOnly` refused (to be serialized again into the sink), or the next item
    /// once the chunk is full (`None`: the sequence ended). `count` counts the items taken.
    #[inline]
    pub(super) fn row_lane<I>(&mut self, iter: &mut I, count: &mut u64) -> Option<(I::Item, bool)>
    where
        I: Iterator,
        I::Item: Serialize,
    {
        let width = self.run.width;
        let room = (self.run.end - self.pos) / width;
        let Some(shape) = self.shapes.get(self.rows.shape) else {
            return iter.next().map(|item| (item, false));
        };
        let mut pos = self.pos;
        let mut refused = None;
        let mut taken = 0;
        for item in iter.by_ref().take(room) {
            taken += 1;
            let row = RowOnly {
                buf: &mut self.buf,
                pos: &mut pos,
                name: shape.name,
                fields: &shape.fields,
                tags: &self.rows.tags[..self.rows.n],
            };
            if item.serialize(row).is_err() {
                refused = Some(item);
                break;
            }
        }
        *count += taken;
        self.pos = pos;
        match refused {
            Some(item) => Some((item, true)),
            None if taken == room as u64 => iter.next().map(|item| (item, false)),
            None => None,
        }
    }
}

/// The serializer of the rows' fast lane: takes a struct of the open chunk's shape whose
/// fields are primitives of its tags, storing their bytes at `pos` (the chunk has room),
/// and refuses anything else with [`NotPrim`] (what it stored is then past the end of the
/// stream, and overwritten).
pub(super) struct RowOnly<'a> {
    pub(super) buf: &'a mut [u8; BUF_LEN + 16],
    pub(super) pos: &'a mut usize,
    pub(super) name: &'static str,
    pub(super) fields: &'a [&'static str],
    pub(super) tags: &'a [u8],
}

/// A row's fields in progress (see [`RowOnly`]).
pub(super) struct RowFields<'a> {
    row: RowOnly<'a>,
    i: usize,
    at: usize,
}

/// Refuses every primitive (for [`RowOnly`], which takes structs only).
macro_rules! refuse_prims {
    ($($name:ident($ty:ty);)*) => {
        $(
            #[inline]
            fn $name(self, _: $ty) -> Result<Val, NotPrim> {
                Err(NotPrim)
            }
        )*
    };
}

impl<'a> ser::Serializer for RowOnly<'a> {
    type Ok = Val;
    type Error = NotPrim;
    type SerializeSeq = ser::Impossible<Val, NotPrim>;
    type SerializeTuple = ser::Impossible<Val, NotPrim>;
    type SerializeTupleStruct = ser::Impossible<Val, NotPrim>;
    type SerializeTupleVariant = ser::Impossible<Val, NotPrim>;
    type SerializeMap = ser::Impossible<Val, NotPrim>;
    type SerializeStruct = RowFields<'a>;
    type SerializeStructVariant = ser::Impossible<Val, NotPrim>;

    #[inline]
    fn is_human_readable(&self) -> bool {
        // As the sink's: an impl with two forms must pick the same one in both.
        false
    }

    refuse_prims! {
        serialize_bool(bool);
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_i128(i128);
        serialize_u8(u8);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_u128(u128);
        serialize_f32(f32);
        serialize_f64(f64);
        serialize_char(char);
        serialize_str(&str);
        serialize_bytes(&[u8]);
    }

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
        serialize_struct_variant(
            name: &'static str,
            index: u32,
            variant: &'static str,
            len: usize
        ) -> Self::SerializeStructVariant;
    }

    #[inline(always)]
    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<RowFields<'a>, NotPrim> {
        if !same_name(name, self.name) {
            return Err(NotPrim);
        }
        let at = *self.pos;
        Ok(RowFields {
            row: self,
            i: 0,
            at,
        })
    }

    refuse_values!(Val, NotPrim, NotPrim);
}

impl ser::SerializeStruct for RowFields<'_> {
    type Ok = Val;
    type Error = NotPrim;

    #[inline(always)]
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), NotPrim> {
        let i = self.i;
        let (Some(&name), Some(&tag)) = (self.row.fields.get(i), self.row.tags.get(i)) else {
            return Err(NotPrim);
        };
        if !same_name(key, name) {
            return Err(NotPrim);
        }
        match value.serialize(fast::PrimOnly)? {
            Val::Prim {
                tag: got,
                width,
                bytes,
            } if got == tag => {
                put(self.row.buf, self.at, width, bytes);
                self.at += usize::from(width);
                self.i = i + 1;
                Ok(())
            }
            _ => Err(NotPrim),
        }
    }

    #[inline(always)]
    fn end(self) -> Result<Val, NotPrim> {
        if self.i != self.row.fields.len() {
            return Err(NotPrim);
        }
        *self.row.pos = self.at;
        Ok(Val::Written)
    }
}
