//! The value codec: postcard 1.x through serde, behind one small module so that a
//! second format can be added without touching anything else.

mod bounded;
pub(crate) mod flat;

use crate::key::KeyHasher;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Codec id recorded in every entry header.
pub(crate) const POSTCARD: u8 = 1;

/// Encodes a value (a flat vector without serde: see [`flat`]; same bytes).
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    match flat::encode(value) {
        Some(bytes) => Ok(bytes),
        None => postcard::to_stdvec(value),
    }
}

/// The message of a value's own `Serialize` error, when that is why [`encode`] failed with
/// `error`; `None` when the codec itself cannot represent the value (for every value of its
/// type, then). postcard drops the message of `serde::ser::Error::custom`, so the value is
/// serialized once more into a key hasher, which keeps it. Only on the failure path.
pub(crate) fn own_error<T: Serialize + ?Sized>(value: &T) -> Option<String> {
    KeyHasher::new().write_value(value).err().map(|own| own.0)
}

/// Decodes a value that must use every byte of `bytes`. Never panics, and allocates in
/// proportion to `bytes` (see [`bounded`]), whatever they hold. A flat vector is copied
/// without serde (see [`flat`]).
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, postcard::Error> {
    match flat::decode(bytes) {
        Some(value) => value,
        None => decode_serde(bytes),
    }
}

/// [`decode`] through serde, whatever the type.
fn decode_serde<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, postcard::Error> {
    let mut deserializer = postcard::Deserializer::from_bytes(bytes);
    let value = T::deserialize(bounded::Bounded(&mut deserializer))?;
    let rest = deserializer.finalize()?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(postcard::Error::DeserializeBadEncoding)
    }
}

/// Checks that `payload`, the encoding of `value`, decodes and encodes back to the same
/// bytes. Non-self-describing formats cannot represent some serde attributes (`flatten`,
/// `untagged`, `skip_serializing_if`, ...): such a value would never hit, or decode wrong.
///
/// Hash maps encode their entries in iteration order, which differs between two equal maps,
/// so bytes that differ are compared once more as values: by their canonical key digests,
/// which do not depend on the order of map entries.
pub(crate) fn round_trips<T: Serialize + DeserializeOwned>(
    value: &T,
    payload: &[u8],
) -> Result<(), String> {
    if flat::kind::<T>().is_some() {
        // A vector of numbers is its elements' bytes both ways (see `flat`): nothing to
        // check, and a large one would be decoded and encoded again for nothing (twice
        // its size in memory, briefly).
        return Ok(());
    }
    let decoded: T = decode(payload).map_err(|e| format!("it does not decode: {e}"))?;
    let again = encode(&decoded).map_err(|e| format!("it does not encode again: {e}"))?;
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

/// Runs the codec on untrusted `bytes` as each of a few value types; how many decoded.
pub(crate) fn decode_samples(bytes: &[u8]) -> usize {
    use std::collections::HashMap;
    [
        decode::<Vec<u8>>(bytes).is_ok(),
        decode::<String>(bytes).is_ok(),
        decode::<Vec<u64>>(bytes).is_ok(),
        decode::<HashMap<u64, String>>(bytes).is_ok(),
        decode::<Vec<Vec<u8>>>(bytes).is_ok(),
        decode::<samples::Record>(bytes).is_ok(),
        decode::<samples::Kind>(bytes).is_ok(),
        decode::<samples::Shapes>(bytes).is_ok(),
    ]
    .iter()
    .filter(|ok| **ok)
    .count()
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
        assert!(round_trips(&value, &bytes).is_ok());
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
        assert!(round_trips(&map, &bytes).is_ok());
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
            Ok(bytes) => assert!(round_trips(&flat, &bytes).is_err()),
        }
        let skip = Skipping { a: None, b: 5 };
        let bytes = encode(&skip).unwrap();
        assert!(round_trips(&skip, &bytes).is_err());
    }
}
