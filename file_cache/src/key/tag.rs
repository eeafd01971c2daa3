//! Type tags: the first byte of every value and frame in the stream. Part of the key
//! format: never renumber (change [`super::KEY_FORMAT`] instead). A leaf: it knows only the
//! byte values.

pub(crate) const BOOL: u8 = 0x01;
pub(crate) const I8: u8 = 0x02;
pub(crate) const I16: u8 = 0x03;
pub(crate) const I32: u8 = 0x04;
pub(crate) const I64: u8 = 0x05;
pub(crate) const I128: u8 = 0x06;
pub(crate) const U8: u8 = 0x07;
pub(crate) const U16: u8 = 0x08;
pub(crate) const U32: u8 = 0x09;
pub(crate) const U64: u8 = 0x0a;
pub(crate) const U128: u8 = 0x0b;
pub(crate) const F32: u8 = 0x0c;
pub(crate) const F64: u8 = 0x0d;
pub(crate) const CHAR: u8 = 0x0e;
pub(crate) const STR: u8 = 0x0f;
pub(crate) const BYTES: u8 = 0x10;
pub(crate) const NONE: u8 = 0x11;
pub(crate) const SOME: u8 = 0x12;
pub(crate) const UNIT: u8 = 0x13;
pub(crate) const UNIT_STRUCT: u8 = 0x14;
pub(crate) const UNIT_VARIANT: u8 = 0x15;
pub(crate) const NEWTYPE_STRUCT: u8 = 0x16;
pub(crate) const NEWTYPE_VARIANT: u8 = 0x17;
pub(crate) const SEQ: u8 = 0x18;
pub(crate) const TUPLE: u8 = 0x19;
pub(crate) const TUPLE_STRUCT: u8 = 0x1a;
pub(crate) const TUPLE_VARIANT: u8 = 0x1b;
pub(crate) const MAP: u8 = 0x1c;
pub(crate) const STRUCT: u8 = 0x1d;
pub(crate) const STRUCT_VARIANT: u8 = 0x1e;
/// Closes a sequence, tuple or struct; followed by the element count.
pub(crate) const END: u8 = 0x1f;
/// A name: type, field or variant name, or a [`super::KeyHasher::write_label`].
pub(crate) const LABEL: u8 = 0x20;
/// Bytes fed by [`super::KeyHasher::write_raw`].
pub(crate) const RAW: u8 = 0x21;
/// A run of same-typed primitive elements: element tag, `u16` count, the values.
pub(crate) const RUN: u8 = 0x22;
/// A map entry too long to inline, by its blake3 digest.
pub(crate) const DIGEST: u8 = 0x23;
/// Closes a struct or struct variant; followed by its shape's number.
pub(crate) const SHAPE: u8 = 0x24;
/// A chunk of rows: field count, `u16` row count, shape number, field tags, the rows.
pub(crate) const ROWS: u8 = 0x25;
/// A shape's definition, right before the first token that names the shape by number.
pub(crate) const DEF: u8 = 0x26;
