//! The canonical serializer: a `serde::Serializer` over the sink that writes every value
//! with its type tag and length, sequences and structs closed by `END` and a count, runs
//! of fixed-width numbers in bulk. It owns the encoding of values (see the key's module
//! docs); a map's entries are buffered in the sink and ordered by `order`, and the fast
//! lanes (`fast`) are tried first.

use super::*;
use super::{fast::*, order::*, shape::*, sink::*};

impl<'a> ser::Serializer for &'a mut Sink {
    type Ok = Val;
    type Error = Error;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = MapEntries<'a>;
    type SerializeStruct = Fields<'a>;
    type SerializeStructVariant = Fields<'a>;

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
        self.byte(tag::NONE);
        Ok(Val::Written)
    }

    #[inline]
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<Val, Error> {
        self.byte(tag::SOME);
        let value = value.serialize(&mut *self)?;
        self.place(value);
        Ok(Val::Written)
    }

    #[inline]
    fn serialize_unit(self) -> Result<Val, Error> {
        self.byte(tag::UNIT);
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
        self.byte(tag::SEQ);
        Ok(Compound::new(self))
    }

    #[inline]
    fn serialize_tuple(self, _len: usize) -> Result<Compound<'a>, Error> {
        // A tuple that starts a sequence's element: the elements after it are offered to
        // the tuple lane (see `lane`).
        let element = self.element == self.at_stream();
        self.byte(tag::TUPLE);
        let mut tuple = Compound::new(self);
        tuple.element_tuple = element;
        Ok(tuple)
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

    #[inline(always)]
    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Fields<'a>, Error> {
        Ok(Fields::new(self, tag::STRUCT, name, None))
    }

    #[inline]
    fn serialize_struct_variant(
        self,
        name: &'static str,
        variant_index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Fields<'a>, Error> {
        Ok(Fields::new(
            self,
            tag::STRUCT_VARIANT,
            name,
            Some((variant_index, variant)),
        ))
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
    ///
    /// Likewise, once an item turns out to be a row (see `row`), the items after it are
    /// offered to `row::RowOnly` while the row chunk has room; one it
    /// refuses is serialized again into the sink.
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
        self.byte(tag::SEQ);
        let mut count = 0u64;
        let mut iter = iter.into_iter();
        // Whether the shape lane may take elements (see `lane`).
        let mut lane = true;
        // The next item, and whether a fast lane counted it already.
        let mut next = iter.next().map(|item| (item, false));
        while let Some((item, counted)) = next.take() {
            if !counted {
                count += 1;
            }
            let mut value = self.element_value(&item)?;
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
                    value = self.element_value(&item)?;
                }
            }
            next = if self.run.tag == tag::ROWS {
                self.row_lane(&mut iter, &mut count)
            } else if lane && self.lane != NO_SHAPE {
                self.shape_lane(&mut iter, &mut count, &mut lane)
            } else if lane && self.lane_tuple {
                self.tuple_lane(&mut iter, &mut count, &mut lane)
            } else {
                iter.next().map(|item| (item, false))
            };
        }
        self.end_count(count);
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

/// A sequence, tuple or struct in progress: elements, then `END` and their count.
pub(super) struct Compound<'a> {
    pub(super) sink: &'a mut Sink,
    pub(super) count: u64,
    /// Whether it is a tuple that starts a sequence's element (see `Sink::lane_tuple`).
    pub(super) element_tuple: bool,
}

impl<'a> Compound<'a> {
    pub(super) fn new(sink: &'a mut Sink) -> Compound<'a> {
        Compound {
            sink,
            count: 0,
            element_tuple: false,
        }
    }

    /// An element of a sequence or tuple (of any kind): it may join a run, or be a row.
    #[inline]
    pub(super) fn element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.count += 1;
        if let Val::Prim { tag, width, bytes } = self.sink.element_value(value)? {
            self.sink.run_value(tag, width, bytes);
        }
        Ok(())
    }

    #[inline]
    pub(super) fn end(self) -> Result<Val, Error> {
        self.sink.end_count(self.count);
        self.sink.lane_tuple = self.element_tuple;
        Ok(Val::Written)
    }
}

/// A struct or struct variant in progress: its tag, its fields' values (tagged, never in
/// runs), then `SHAPE` and the number of its shape (see `shape`).
///
/// The field names are not written: each is checked against the shape the sink's table
/// predicts for the struct's name, by address, and only a struct that leaves the
/// prediction (the first of its name, or one whose impl skipped or added a field) has its
/// names collected and its shape looked up by content.
pub(super) struct Fields<'a> {
    sink: &'a mut Sink,
    name: &'static str,
    variant: Option<(u32, &'static str)>,
    /// The predicted shape ([`NO_SHAPE`] if none).
    shape: u32,
    /// Its field names ([`Sink::names`]; empty if none).
    expected: Names,
    count: usize,
    /// Every name so far, once a name left the prediction.
    names: Option<Vec<&'static str>>,
    /// Where it starts if it may become a row (see `row`), else [`NO_CANDIDATE`].
    cand: usize,
    /// Whether it starts a sequence's element (see `Sink::lane`).
    element: bool,
}

impl<'a> Fields<'a> {
    #[inline(always)]
    fn new(
        sink: &'a mut Sink,
        tag: u8,
        name: &'static str,
        variant: Option<(u32, &'static str)>,
    ) -> Fields<'a> {
        // A struct that starts a sequence's element may be a row.
        let element = variant.is_none() && sink.element == sink.at_stream();
        let cand = if element {
            sink.start_candidate();
            sink.cand
        } else {
            sink.byte(tag);
            NO_CANDIDATE
        };
        let shape = sink.shapes.predict(name, variant);
        Fields {
            cand,
            names: (shape == NO_SHAPE).then(Vec::new),
            expected: sink.names(shape),
            element,
            sink,
            name,
            variant,
            shape,
            count: 0,
        }
    }

    #[inline(always)]
    fn field<T: ?Sized + Serialize>(&mut self, name: &'static str, value: &T) -> Result<(), Error> {
        match &mut self.names {
            None => {
                if !self.expected.is(self.count, name) {
                    self.leave(name);
                }
            }
            Some(names) => names.push(name),
        }
        self.count += 1;
        let value = value.serialize(&mut *self.sink)?;
        if self.cand != NO_CANDIDATE {
            if self.sink.is_candidate(self.cand) {
                match value {
                    Val::Prim { tag, width, bytes } if self.count <= MAX_ROW_FIELDS => {
                        self.sink.candidate_field(tag, width, bytes);
                        return Ok(());
                    }
                    // Not a row after all: the bytes so far are a struct's (and an open
                    // row chunk before them was closed by the field's first write).
                    _ => {
                        self.sink.close_run();
                        self.sink.cand = NO_CANDIDATE;
                    }
                }
            }
            self.cand = NO_CANDIDATE;
        }
        self.sink.place(value);
        Ok(())
    }

    /// The struct's names so far: the prediction's first `count`.
    fn predicted_names(&self) -> Vec<&'static str> {
        (0..self.count)
            .filter_map(|i| self.sink.shapes.field(self.shape, i))
            .collect()
    }

    #[inline(never)]
    fn leave(&mut self, name: &'static str) {
        let mut names = self.predicted_names();
        names.push(name);
        self.names = Some(names);
    }

    #[inline(always)]
    fn end(mut self) -> Result<Val, Error> {
        let shape = match &self.names {
            None if self.expected.len() == self.count => self.shape,
            _ => self.resolve(),
        };
        if self.cand != NO_CANDIDATE && self.sink.is_candidate(self.cand) {
            if self.count > 0 {
                self.sink.end_row(shape, self.cand, self.count);
                return Ok(Val::Written);
            }
            self.sink.close_struct(shape);
            self.sink.cand = NO_CANDIDATE;
        } else {
            self.sink.close_struct(shape);
        }
        if self.element {
            self.sink.lane = shape;
        }
        Ok(Val::Written)
    }

    #[inline(never)]
    fn resolve(&mut self) -> u32 {
        let names = match &self.names {
            Some(names) => names.clone(),
            None => self.predicted_names(),
        };
        self.sink.shapes.resolve(self.name, self.variant, &names)
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

impl ser::SerializeStruct for Fields<'_> {
    type Ok = Val;
    type Error = Error;

    #[inline(always)]
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }

    #[inline(always)]
    fn end(self) -> Result<Val, Error> {
        Fields::end(self)
    }
}

impl ser::SerializeStructVariant for Fields<'_> {
    type Ok = Val;
    type Error = Error;

    #[inline(always)]
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }

    #[inline(always)]
    fn end(self) -> Result<Val, Error> {
        Fields::end(self)
    }
}

/// A sequence serde hands `collect_seq` that is a vector or slice of fixed-width numbers
/// (see `pod::slice_of`): its element tag, width and bytes, which are its encoding.
pub(super) fn number_slice<I>(seq: &I) -> Option<(u8, usize, &[u8])> {
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
pub(super) struct MapEntries<'a> {
    pub(super) sink: &'a mut Sink,
    pub(super) parts: Box<MapParts>,
    pub(super) key_pending: bool,
    /// Where the pending key starts in `MapParts::bytes`, if it went there directly (see
    /// `serialize_key`); `None` if it went into the entry sink.
    pub(super) direct_key: Option<usize>,
}

impl MapEntries<'_> {
    pub(super) fn new(sink: &mut Sink, len: Option<usize>) -> MapEntries<'_> {
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
