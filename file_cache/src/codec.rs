//! The value codecs, behind one small module: postcard 1.x through serde, and MessagePack
//! with named fields for the values postcard cannot hold. It turns values into payload
//! bytes and back; it knows nothing of entries, files or sites (it borrows the key's
//! serializer only to tell a value's own `Serialize` failure from a codec's).
//!
//! postcard is compact and fast but not self-describing: `skip_serializing_if`,
//! `flatten`, internally tagged and untagged enums and `serde_json::Value` do not survive
//! it. A function whose value fails [`round_trips`] through postcard switches, for the
//! rest of the process, to MessagePack with field names (rmp-serde), which holds all of
//! them; each entry's header records the codec that wrote it, and a hit decodes with that
//! one. MessagePack won against CBOR (ciborium) and JSON (serde_json) on the value types
//! of API clients (`benches/codecs.rs`, figures in the README): it holds every shape CBOR
//! does and the non-finite floats JSON cannot, decodes 1.4 to 3 times faster than CBOR at
//! the same size, and is smaller than JSON.

mod bounded;
pub(crate) mod flat;

use crate::key::KeyHasher;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;

/// The formats a value can be stored in. The entry header records each entry's by its id;
/// `#[file_cache(codec = "...")]` chooses the one a function starts with.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    /// postcard 1.x: compact and fast, not self-describing. The default: a function whose
    /// values it cannot hold switches to [`Codec::MessagePack`].
    Postcard = 1,
    /// MessagePack with named fields (rmp-serde): self-describing.
    MessagePack = 2,
}

/// Codec id of [`Codec::Postcard`] in entry headers.
pub(crate) const POSTCARD: u8 = Codec::Postcard as u8;
/// Codec id of [`Codec::MessagePack`] in entry headers.
pub(crate) const MSGPACK: u8 = Codec::MessagePack as u8;

/// How deep a MessagePack value may nest: deeper bytes are refused rather than recursed
/// into (each level costs stack). JSON parsers stop at 128; values nest a few levels more
/// than the JSON they hold.
const MAX_DEPTH: usize = 256;

impl Codec {
    /// The codec of an entry header's id, if this version knows it.
    pub(crate) fn from_id(id: u8) -> Option<Codec> {
        match id {
            POSTCARD => Some(Codec::Postcard),
            MSGPACK => Some(Codec::MessagePack),
            _ => None,
        }
    }

    /// The id entry headers record.
    pub(crate) const fn id(self) -> u8 {
        self as u8
    }

    /// The name `#[file_cache(codec = "...")]` and messages use.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Codec::Postcard => "postcard",
            Codec::MessagePack => "msgpack",
        }
    }
}

/// Why a value did not encode or decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error {
    /// The error of a payload whose codec id this version does not know.
    pub(crate) fn unknown(id: u8) -> Error {
        Error(format!("unknown codec {id}"))
    }
}

impl From<postcard::Error> for Error {
    fn from(error: postcard::Error) -> Error {
        Error(error.to_string())
    }
}

impl From<rmp_serde::encode::Error> for Error {
    fn from(error: rmp_serde::encode::Error) -> Error {
        Error(error.to_string())
    }
}

impl From<rmp_serde::decode::Error> for Error {
    fn from(error: rmp_serde::decode::Error) -> Error {
        Error(error.to_string())
    }
}

/// Encodes a value with postcard (a flat vector without serde: see [`flat`]; same bytes).
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    match flat::encode(value) {
        Some(bytes) => Ok(bytes),
        None => Ok(postcard::to_stdvec(value)?),
    }
}

/// Encodes a value with `codec`.
pub(crate) fn encode_with<T: Serialize + ?Sized>(
    codec: Codec,
    value: &T,
) -> Result<Vec<u8>, Error> {
    match codec {
        Codec::Postcard => encode(value),
        Codec::MessagePack => {
            let mut out = Vec::new();
            let mut serializer = rmp_serde::Serializer::new(&mut out).with_struct_map();
            value.serialize(&mut serializer)?;
            Ok(out)
        }
    }
}

/// The message of a value's own `Serialize` error, when that is why [`encode`] failed with
/// `error`; `None` when the codec itself cannot represent the value (for every value of its
/// type, then). postcard drops the message of `serde::ser::Error::custom`, so the value is
/// serialized once more into a key hasher, which keeps it. Only on the failure path.
pub(crate) fn own_error<T: Serialize + ?Sized>(value: &T) -> Option<String> {
    KeyHasher::new().write_value(value).err().map(|own| own.0)
}

/// Decodes a postcard value that must use every byte of `bytes`. Never panics, and
/// allocates in proportion to `bytes` (see [`bounded`]), whatever they hold. A flat vector
/// is copied without serde (see [`flat`]).
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    match flat::decode(bytes) {
        Some(value) => Ok(value?),
        None => decode_serde(bytes),
    }
}

/// Decodes a value of `codec` that must use every byte of `bytes`, with the guarantees of
/// [`decode`] (MessagePack also refuses values nested deeper than [`MAX_DEPTH`]).
pub(crate) fn decode_with<T: DeserializeOwned>(codec: Codec, bytes: &[u8]) -> Result<T, Error> {
    match codec {
        Codec::Postcard => decode(bytes),
        Codec::MessagePack => decode_msgpack(bytes),
    }
}

/// [`decode`] through serde, whatever the type.
fn decode_serde<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let mut deserializer = postcard::Deserializer::from_bytes(bytes);
    let value = T::deserialize(bounded::Bounded(&mut deserializer))?;
    let rest = deserializer.finalize()?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(postcard::Error::DeserializeBadEncoding.into())
    }
}

/// [`decode_with`] for MessagePack. Through a cursor, whose position tells whether every
/// byte was used; a string or byte array is read as its bytes arrive, so a declared length
/// allocates nothing the input does not hold.
fn decode_msgpack<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let mut deserializer = rmp_serde::Deserializer::new(std::io::Cursor::new(bytes));
    deserializer.set_max_depth(MAX_DEPTH);
    let value = T::deserialize(bounded::Bounded(&mut deserializer))?;
    if deserializer.position() == bytes.len() as u64 {
        Ok(value)
    } else {
        Err(Error("bytes left after the value".to_owned()))
    }
}

/// Checks that `payload`, the encoding of `value` with `codec`, decodes and encodes back to
/// the same bytes. Non-self-describing formats cannot represent some serde attributes
/// (`flatten`, `untagged`, `skip_serializing_if`, ...): such a value would never hit, or
/// decode wrong. Neither can any format a type whose `Serialize` and `Deserialize` disagree.
///
/// Hash maps encode their entries in iteration order, which differs between two equal maps,
/// so bytes that differ are compared once more as values: by their canonical key digests,
/// which do not depend on the order of map entries.
pub(crate) fn round_trips<T: Serialize + DeserializeOwned>(
    codec: Codec,
    value: &T,
    payload: &[u8],
) -> Result<(), String> {
    if codec == Codec::Postcard && flat::kind::<T>().is_some() {
        // A vector of numbers is its elements' bytes both ways (see `flat`): nothing to
        // check, and a large one would be decoded and encoded again for nothing (twice
        // its size in memory, briefly).
        return Ok(());
    }
    let decoded: T = decode_with(codec, payload).map_err(|e| format!("it does not decode: {e}"))?;
    let again =
        encode_with(codec, &decoded).map_err(|e| format!("it does not encode again: {e}"))?;
    if again == payload || same_value(value, &decoded) {
        Ok(())
    } else {
        Err(
            "it decodes to a different value (a `HashSet` in it, whose order changes, \
             is one cause: a `BTreeSet` keeps one order)"
                .to_owned(),
        )
    }
}

/// Whether two values have the same canonical key digest (map order does not count).
fn same_value<T: Serialize>(a: &T, b: &T) -> bool {
    let digest = |value: &T| {
        let mut hasher = KeyHasher::new();
        hasher.write_value(value).ok()?;
        Some(hasher.finish())
    };
    matches!((digest(a), digest(b)), (Some(a), Some(b)) if a == b)
}

/// Value types of every shape serde has (sequences, maps, strings, options, tuples, enums
/// of each variant kind), for running the decoder on untrusted bytes.
mod samples {
    use serde::Deserialize;
    use std::collections::{BTreeMap, HashMap, HashSet};

    #[derive(Deserialize)]
    #[allow(dead_code)] // only decoded
    pub(super) struct Record {
        id: u32,
        name: String,
        tags: HashSet<String>,
        kind: Kind,
        scores: HashMap<String, f64>,
        pair: Option<(i64, char)>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    pub(super) enum Kind {
        A,
        B(u64),
        C { x: i16, y: Vec<u8> },
        D(u8, String),
    }

    /// The shapes only a self-describing codec holds (internally tagged, untagged,
    /// flattened, skipped), nested without bound.
    #[derive(Deserialize)]
    #[allow(dead_code)]
    #[serde(tag = "type")]
    pub(super) enum Event {
        Text {
            text: String,
            #[serde(default)]
            usage: Option<(u32, u32)>,
        },
        Call {
            name: String,
            #[serde(flatten)]
            rest: BTreeMap<String, Tree>,
        },
        Done,
    }

    /// A tree of any depth, read through `deserialize_any` (as `serde_json::Value` is).
    #[derive(Deserialize)]
    #[allow(dead_code)]
    #[serde(untagged)]
    pub(super) enum Tree {
        Leaf(i64),
        Text(String),
        List(Vec<Tree>),
        Map(BTreeMap<String, Tree>),
    }

    pub(super) type Shapes = (
        Vec<u8>,
        String,
        Vec<u64>,
        HashMap<u64, String>,
        BTreeMap<String, Vec<u32>>,
        Vec<Vec<u8>>,
        Vec<Record>,
    );
}

/// Runs every codec on untrusted `bytes` as each of a few value types; how many decoded.
pub(crate) fn decode_samples(bytes: &[u8]) -> usize {
    use std::collections::HashMap;
    let mut decoded = 0;
    for codec in [Codec::Postcard, Codec::MessagePack] {
        decoded += [
            decode_with::<Vec<u8>>(codec, bytes).is_ok(),
            decode_with::<String>(codec, bytes).is_ok(),
            decode_with::<Vec<u64>>(codec, bytes).is_ok(),
            decode_with::<HashMap<u64, String>>(codec, bytes).is_ok(),
            decode_with::<Vec<Vec<u8>>>(codec, bytes).is_ok(),
            decode_with::<samples::Record>(codec, bytes).is_ok(),
            decode_with::<samples::Kind>(codec, bytes).is_ok(),
            decode_with::<samples::Shapes>(codec, bytes).is_ok(),
            decode_with::<samples::Event>(codec, bytes).is_ok(),
            decode_with::<samples::Tree>(codec, bytes).is_ok(),
        ]
        .iter()
        .filter(|ok| **ok)
        .count();
    }
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::{BTreeMap, HashMap};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Plain {
        a: u32,
        b: String,
        c: Vec<f64>,
    }

    #[derive(Serialize, Deserialize)]
    struct Flattened {
        a: u32,
        #[serde(flatten)]
        rest: BTreeMap<String, u32>,
    }

    #[derive(Serialize, Deserialize)]
    struct Skipping {
        #[serde(skip_serializing_if = "Option::is_none")]
        a: Option<u32>,
        b: u32,
    }

    #[test]
    fn plain_values_round_trip() {
        let value = Plain {
            a: 1,
            b: "two".into(),
            c: vec![3.0, f64::NAN],
        };
        let bytes = encode(&value).unwrap();
        assert!(round_trips(Codec::Postcard, &value, &bytes).is_ok());
        let back: Plain = decode(&bytes).unwrap();
        assert_eq!((back.a, back.b.as_str()), (1, "two"));
    }

    #[test]
    fn hash_containers_round_trip_whatever_their_order() {
        // Enough entries that a decoded map iterates in another order than the original.
        let map: HashMap<String, Vec<u32>> = (0..200).map(|i| (format!("k{i}"), vec![i])).collect();
        let bytes = encode(&map).unwrap();
        let decoded: HashMap<String, Vec<u32>> = decode(&bytes).unwrap();
        assert_ne!(
            encode(&decoded).unwrap(),
            bytes,
            "the orders differ: the test means something"
        );
        assert!(round_trips(Codec::Postcard, &map, &bytes).is_ok());
    }

    #[test]
    fn trailing_bytes_do_not_decode() {
        let mut bytes = encode(&7u32).unwrap();
        bytes.push(0);
        assert!(decode::<u32>(&bytes).is_err());
    }

    #[test]
    fn flatten_and_skip_are_caught() {
        let flat = Flattened {
            a: 1,
            rest: BTreeMap::from([("x".to_owned(), 2)]),
        };
        match encode(&flat) {
            // postcard refuses to encode a map of unknown length: caught even earlier.
            Err(_) => {}
            Ok(bytes) => assert!(round_trips(Codec::Postcard, &flat, &bytes).is_err()),
        }
        let skip = Skipping { a: None, b: 5 };
        let bytes = encode(&skip).unwrap();
        assert!(round_trips(Codec::Postcard, &skip, &bytes).is_err());
    }

    #[test]
    fn messagepack_holds_what_postcard_cannot() {
        let flat = Flattened {
            a: 1,
            rest: BTreeMap::from([("x".to_owned(), 2)]),
        };
        let bytes = encode_with(Codec::MessagePack, &flat).unwrap();
        assert_eq!(round_trips(Codec::MessagePack, &flat, &bytes), Ok(()));
        let back: Flattened = decode_with(Codec::MessagePack, &bytes).unwrap();
        assert_eq!((back.a, back.rest), (1, flat.rest));
        let skip = Skipping { a: None, b: 5 };
        let bytes = encode_with(Codec::MessagePack, &skip).unwrap();
        assert_eq!(round_trips(Codec::MessagePack, &skip, &bytes), Ok(()));
        let map: HashMap<String, Vec<u32>> = (0..200).map(|i| (format!("k{i}"), vec![i])).collect();
        let bytes = encode_with(Codec::MessagePack, &map).unwrap();
        assert_eq!(round_trips(Codec::MessagePack, &map, &bytes), Ok(()));
    }

    #[test]
    fn messagepack_refuses_trailing_bytes_and_deep_nesting() {
        let mut bytes = encode_with(Codec::MessagePack, &7u32).unwrap();
        assert_eq!(decode_with::<u32>(Codec::MessagePack, &bytes), Ok(7));
        bytes.push(0);
        assert!(decode_with::<u32>(Codec::MessagePack, &bytes).is_err());
        // Arrays of one element, each holding the next: refused at the depth limit, without
        // exhausting the stack.
        let deep = vec![0x91; 100_000];
        assert!(decode_with::<samples::Tree>(Codec::MessagePack, &deep).is_err());
        let shallow = [vec![0x91; 10], vec![0x01]].concat();
        assert!(decode_with::<samples::Tree>(Codec::MessagePack, &shallow).is_ok());
    }

    #[test]
    fn a_declared_length_reserves_nothing() {
        // A string of 2^32 - 1 bytes declared, four present: an error, not a reservation.
        let bytes = [0xdb, 0xff, 0xff, 0xff, 0xff, b'a', b'b', b'c', b'd'];
        assert!(decode_with::<String>(Codec::MessagePack, &bytes).is_err());
        assert!(decode_with::<Vec<u8>>(Codec::MessagePack, &bytes).is_err());
    }

    #[test]
    fn codec_ids_are_stable() {
        assert_eq!((POSTCARD, MSGPACK), (1, 2));
        for codec in [Codec::Postcard, Codec::MessagePack] {
            assert_eq!(Codec::from_id(codec.id()), Some(codec));
        }
        assert_eq!(Codec::from_id(0), None);
        assert_eq!(Codec::MessagePack.name(), "msgpack");
    }
}
