//! Struct shapes: a struct's name (an enum's name and variant, for a struct variant) and its
//! field names, which a key stream spells out once and then names by number (see the key's
//! module docs). It owns the numbering and the per-sink table that predicts a struct's
//! field names from its name, so a struct's fields are checked against the prediction by
//! address instead of being written out; it knows nothing of serde.
//!
//! The numbers are the stream's own: a shape gets the next number where it first closes a
//! struct in the stream, whatever the table held before. The table only makes the common
//! case cheap; a value's key never depends on what it predicted.

use std::collections::BTreeMap;

/// No shape (a struct whose name the table does not know).
pub(super) const NO_SHAPE: u32 = u32::MAX;

/// Slots of the table from a struct's name to its last shape.
const SLOTS: usize = 64;

/// The table forgets every shape when it knows more than this many at the end of a
/// stream (a `Serialize` impl that makes up field lists could otherwise grow it forever).
const MAX_SHAPES: usize = 4096;

/// A struct's or struct variant's name and field names.
pub(super) struct Shape {
    pub(super) name: &'static str,
    /// For a struct variant: the variant's index and name.
    variant: Option<(u32, &'static str)>,
    pub(super) fields: Box<[&'static str]>,
    /// Its definition in the stream (see [`definition`]).
    def: Box<[u8]>,
    /// The stream in which it has a number ([`Shapes::stream`]), and that number.
    stream: u64,
    number: u32,
}

/// The shapes one sink has seen, unique by definition.
pub(super) struct Shapes {
    known: Vec<Shape>,
    by_def: BTreeMap<Box<[u8]>, u32>,
    /// By the address of a struct's name (and its variant): `known`'s index + 1, or 0.
    slots: [u32; SLOTS],
    /// The current stream; shapes numbered in an earlier one are not numbered in it.
    stream: u64,
    /// Shapes numbered in the current stream.
    numbered: u32,
}

/// Whether two names are the same `&'static str` (same address and length, so the same
/// text: a static is never freed or changed).
#[inline(always)]
pub(super) fn same_name(a: &'static str, b: &'static str) -> bool {
    std::ptr::eq(a.as_ptr(), b.as_ptr()) && a.len() == b.len()
}

#[inline(always)]
fn slot(name: &'static str, variant: Option<(u32, &'static str)>) -> usize {
    let index = variant.map_or(0, |(index, _)| index as usize + 1);
    let at = (name.as_ptr() as usize >> 3) ^ index.wrapping_mul(0x9e37_79b9);
    (at ^ (at >> 6)) % SLOTS
}

/// `n` in LEB128 (as the sink writes lengths).
fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The shape's definition: its kind (`tag::STRUCT` or `tag::STRUCT_VARIANT`), its name,
/// for a variant the variant's `u32` index and name, the number of fields and their names;
/// every name as its LEB128 length and its bytes.
fn definition(
    name: &'static str,
    variant: Option<(u32, &'static str)>,
    fields: &[&'static str],
) -> Box<[u8]> {
    let mut out = Vec::new();
    let text = |out: &mut Vec<u8>, text: &str| {
        varint(text.len() as u64, out);
        out.extend_from_slice(text.as_bytes());
    };
    match variant {
        None => {
            out.push(super::tag::STRUCT);
            text(&mut out, name);
        }
        Some((index, variant)) => {
            out.push(super::tag::STRUCT_VARIANT);
            text(&mut out, name);
            out.extend_from_slice(&index.to_le_bytes());
            text(&mut out, variant);
        }
    }
    varint(fields.len() as u64, &mut out);
    for field in fields {
        text(&mut out, field);
    }
    out.into_boxed_slice()
}

impl Shapes {
    pub(super) const fn new() -> Shapes {
        Shapes {
            known: Vec::new(),
            by_def: BTreeMap::new(),
            slots: [0; SLOTS],
            stream: 1,
            numbered: 0,
        }
    }

    /// Starts a new stream: no shape has a number in it.
    pub(super) fn new_stream(&mut self) {
        self.stream += 1;
        self.numbered = 0;
        if self.known.len() > MAX_SHAPES {
            *self = Shapes {
                stream: self.stream,
                ..Shapes::new()
            };
        }
    }

    /// The shape last seen for a struct of this name (and variant), if any.
    #[inline(always)]
    pub(super) fn predict(&self, name: &'static str, variant: Option<(u32, &'static str)>) -> u32 {
        let at = self.slots[slot(name, variant)];
        let Some(shape) = self.known.get(at.wrapping_sub(1) as usize) else {
            return NO_SHAPE;
        };
        let same_variant = match (shape.variant, variant) {
            (None, None) => true,
            (Some((i, a)), Some((j, b))) => i == j && same_name(a, b),
            _ => false,
        };
        if same_name(shape.name, name) && same_variant {
            at - 1
        } else {
            NO_SHAPE
        }
    }

    /// A shape from [`Shapes::predict`] or [`Shapes::resolve`].
    #[inline(always)]
    pub(super) fn get(&self, shape: u32) -> Option<&Shape> {
        self.known.get(shape as usize)
    }

    /// The `i`th field name of a shape from [`Shapes::predict`].
    #[inline(always)]
    pub(super) fn field(&self, shape: u32, i: usize) -> Option<&'static str> {
        self.known.get(shape as usize)?.fields.get(i).copied()
    }

    /// The shape of a struct with these names, added if new; it becomes the prediction
    /// for its name.
    #[inline(never)]
    pub(super) fn resolve(
        &mut self,
        name: &'static str,
        variant: Option<(u32, &'static str)>,
        fields: &[&'static str],
    ) -> u32 {
        let def = definition(name, variant, fields);
        let at = match self.by_def.get(&def) {
            Some(&at) => at,
            None => {
                // At most MAX_SHAPES + 1 per stream, or the stream's own fields: a stream
                // of more than u32::MAX shapes would not fit in memory.
                let at = u32::try_from(self.known.len()).unwrap_or(NO_SHAPE - 1);
                self.known.push(Shape {
                    name,
                    variant,
                    fields: fields.into(),
                    def: def.clone(),
                    stream: 0,
                    number: 0,
                });
                self.by_def.insert(def, at);
                at
            }
        };
        self.slots[slot(name, variant)] = at + 1;
        at
    }

    /// The shape's number in this stream, and its definition if this is its first use
    /// (numbered now).
    #[inline(always)]
    pub(super) fn number(&mut self, shape: u32) -> (u32, Option<Box<[u8]>>) {
        let stream = self.stream;
        match self.known.get_mut(shape as usize) {
            Some(s) if s.stream == stream => (s.number, None),
            _ => self.first_use(shape),
        }
    }

    #[inline(never)]
    fn first_use(&mut self, shape: u32) -> (u32, Option<Box<[u8]>>) {
        let number = self.numbered;
        self.numbered += 1;
        match self.known.get_mut(shape as usize) {
            Some(s) => {
                s.stream = self.stream;
                s.number = number;
                (number, Some(s.def.clone()))
            }
            // Never: shapes come from `resolve` or `predict`.
            None => (number, Some(Box::new([]))),
        }
    }
}
