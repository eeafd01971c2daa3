//! Vectors of fixed-width numbers: `Vec<f64>`, `Vec<f32>`, `Vec<u8>` and `Vec<i8>`. It
//! knows postcard's bytes for such vectors, not entries (the entry reader hands `read_into`
//! a file it opened).
//!
//! postcard writes such a vector as its length (a varint) followed by every element's
//! little-endian bytes, so on a little-endian machine the bytes after the length *are* the
//! vector's memory. Through serde, decoding visits one element at a time and, with length
//! hints hidden (see [`super::bounded`]), grows the vector by doubling: for a million
//! `f64`s it cost more than reading the file. Here the elements are copied in one go, and
//! the entry reader reads a large vector from its file straight into the vector's buffer
//! ([`crate::disk::read::read_flat`]). The bytes are postcard's either way, byte for byte: an
//! entry written by one path reads by the other, and a value of any other type goes
//! through serde.
//!
//! A value's type is recognised by its type id (the `typeid` crate, which also answers for
//! types that are not `'static`); on a big-endian machine nothing is.
#![allow(unsafe_code)]

use std::mem::size_of;

pub(crate) use crate::pod::{bytes_of, into_value, kind, slice_of, with_element, Element};

/// Longest varint of a `u64`.
const MAX_VARINT: usize = 10;

/// Length of the varint of `n`.
#[cfg(any(unix, test))] // for reading flat vectors, on Unix
pub(crate) fn varint_len(n: u64) -> usize {
    let bits = 64 - (n | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The varint at the start of `bytes` and its length; `None` if there is none (too short,
/// or longer than a `u64`'s).
pub(crate) fn take_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut n = 0u64;
    for (i, &byte) in bytes.iter().take(MAX_VARINT).enumerate() {
        let bits = u64::from(byte & 0x7f);
        if i == MAX_VARINT - 1 && bits > 1 {
            return None;
        }
        n |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Some((n, i + 1));
        }
    }
    None
}

/// postcard's encoding of a flat vector.
fn to_payload<E: Element>(values: &[E]) -> Vec<u8> {
    let data = bytes_of(values);
    let mut out = Vec::with_capacity(MAX_VARINT + data.len());
    put_varint(&mut out, values.len() as u64);
    out.extend_from_slice(data);
    out
}

/// Decodes postcard's encoding of a `Vec<E>`, which must use every byte.
fn from_payload<E: Element>(bytes: &[u8]) -> Result<Vec<E>, postcard::Error> {
    let (count, at) = take_varint(bytes).ok_or(postcard::Error::DeserializeBadVarint)?;
    let data = &bytes[at..];
    let len = usize::try_from(count)
        .ok()
        .and_then(|count| count.checked_mul(size_of::<E>()))
        .ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
    match data.len().cmp(&len) {
        std::cmp::Ordering::Less => return Err(postcard::Error::DeserializeUnexpectedEnd),
        std::cmp::Ordering::Greater => return Err(postcard::Error::DeserializeBadEncoding),
        std::cmp::Ordering::Equal => {}
    }
    // The count is backed by bytes present: the allocation is bounded by the input.
    let count = len / size_of::<E>();
    let mut out = Vec::<E>::with_capacity(count);
    // SAFETY: `out` has room for `count` elements, which are `len` bytes; `data` holds
    // `len` bytes and does not overlap a new allocation; every byte pattern is an `E`
    // (see `Element`), stored little-endian as this machine is (see `kind`).
    unsafe {
        std::ptr::copy_nonoverlapping(data.as_ptr(), out.as_mut_ptr().cast::<u8>(), len);
        out.set_len(count);
    }
    Ok(out)
}

/// Encodes `value` when it is a flat vector; `None` for any other type.
pub(crate) fn encode<T: ?Sized>(value: &T) -> Option<Vec<u8>> {
    Some(with_element!(kind::<T>()?, E => to_payload(slice_of::<&T, E>(&value)?)))
}

/// Decodes `bytes` as a `T` when it is a flat vector; `None` for any other type.
pub(crate) fn decode<T>(bytes: &[u8]) -> Option<Result<T, postcard::Error>> {
    Some(with_element!(kind::<T>()?, E => from_payload::<E>(bytes).map(into_value)))
}

/// Reads `count` elements from `file`'s current position into a new vector, with no copy
/// between the kernel and the vector's memory; `None` if the file ends first.
#[cfg(unix)]
pub(crate) fn read_into<E: Element>(
    file: &std::fs::File,
    count: usize,
) -> std::io::Result<Option<Vec<E>>> {
    use std::mem::MaybeUninit;
    let mut out = Vec::<E>::new();
    out.try_reserve_exact(count)
        .map_err(std::io::Error::other)?;
    let len = count * size_of::<E>();
    let spare = out
        .spare_capacity_mut()
        .as_mut_ptr()
        .cast::<MaybeUninit<u8>>();
    // SAFETY: the vector has capacity for `count` elements, `len` bytes from `spare`;
    // `MaybeUninit<u8>` needs no initialization and has alignment 1.
    let buf = unsafe { std::slice::from_raw_parts_mut(spare, len) };
    let mut done = 0;
    while done < len {
        match rustix::io::read(file, &mut buf[done..]) {
            Ok(([], _)) => return Ok(None),
            Ok((read, _)) => done += read.len(),
            Err(rustix::io::Errno::INTR) => {}
            Err(error) => return Err(error.into()),
        }
    }
    // SAFETY: all `len` bytes of the `count` elements were written by the reads above, and
    // every byte pattern is an `E` (see `Element`), little-endian as this machine is.
    unsafe { out.set_len(count) };
    Ok(Some(out))
}

/// How a payload of `payload_len` bytes splits into a length varint and `count` elements of
/// `width` bytes: `(varint length, count)`, or `None` when no split fits.
#[cfg(any(unix, test))] // for reading flat vectors, on Unix
pub(crate) fn split(payload_len: u64, width: usize) -> Option<(usize, usize)> {
    (1..=MAX_VARINT).find_map(|prefix| {
        let data = payload_len.checked_sub(prefix as u64)?;
        let count = data / width as u64;
        (data % width as u64 == 0 && varint_len(count) == prefix)
            .then(|| Some((prefix, usize::try_from(count).ok()?)))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::Kind;
    use proptest::prelude::*;

    fn same_as_postcard<E>(values: Vec<E>)
    where
        E: Element + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
        Vec<E>: PartialEq,
    {
        let ours = encode(&values).expect("a flat vector");
        let theirs = postcard::to_stdvec(&values).unwrap();
        assert_eq!(ours, theirs);
        let back: Vec<E> = decode(&theirs).expect("a flat vector").unwrap();
        assert_eq!(bytes_of(&back), bytes_of(&values));
        let (prefix, count) = split(theirs.len() as u64, size_of::<E>()).unwrap();
        assert_eq!((prefix, count), (varint_len(count as u64), values.len()));
    }

    #[test]
    fn only_flat_vectors_are_recognised() {
        assert_eq!(kind::<Vec<f64>>(), Some(Kind::F64));
        assert_eq!(kind::<Vec<u8>>(), Some(Kind::U8));
        assert_eq!(kind::<Vec<u64>>(), None, "postcard writes u64 as varints");
        assert_eq!(kind::<Vec<bool>>(), None);
        assert_eq!(kind::<[f64]>(), None);
        assert_eq!(kind::<Option<Vec<f64>>>(), None);
        assert!(encode(&vec![1u32]).is_none());
        assert!(decode::<String>(b"\x01a").is_none());
    }

    #[test]
    fn a_type_with_lifetimes_is_not_mistaken_for_one() {
        fn check<'a>(_: &'a str) -> Option<Kind> {
            kind::<std::borrow::Cow<'a, [u8]>>()
        }
        assert_eq!(check("x"), None);
    }

    #[test]
    fn varints_round_trip_at_their_boundaries() {
        for n in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, n);
            assert_eq!(out.len(), varint_len(n));
            assert_eq!(take_varint(&out), Some((n, out.len())));
            assert_eq!(out, postcard::to_stdvec(&n).unwrap());
        }
        assert_eq!(take_varint(&[0x80; 11]), None, "longer than a u64's");
        assert_eq!(take_varint(&[0x80]), None, "cut short");
    }

    #[test]
    fn bad_lengths_are_errors_not_panics() {
        // Declares 3 doubles, holds 2.
        let mut bytes = vec![3];
        bytes.extend_from_slice(&[0; 16]);
        assert!(matches!(decode::<Vec<f64>>(&bytes), Some(Err(_))));
        // A byte too many.
        bytes[0] = 2;
        bytes.push(0);
        assert!(matches!(decode::<Vec<f64>>(&bytes), Some(Err(_))));
        // A count whose size overflows.
        let mut huge = Vec::new();
        put_varint(&mut huge, u64::MAX);
        assert!(matches!(decode::<Vec<f64>>(&huge), Some(Err(_))));
        assert!(matches!(decode::<Vec<u8>>(&[]), Some(Err(_))));
    }

    proptest! {
        #[test]
        fn encoding_is_postcards_for_every_flat_vector(
            doubles in proptest::collection::vec(any::<u64>().prop_map(f64::from_bits), 0..300),
            floats in proptest::collection::vec(any::<u32>().prop_map(f32::from_bits), 0..300),
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            signed in proptest::collection::vec(any::<i8>(), 0..300),
        ) {
            same_as_postcard(doubles);
            same_as_postcard(floats);
            same_as_postcard(bytes);
            same_as_postcard(signed);
        }

        #[test]
        fn decoding_agrees_with_postcard_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let ours = decode::<Vec<f32>>(&bytes).unwrap().ok();
            let theirs = super::super::decode_serde::<Vec<f32>>(&bytes).ok();
            prop_assert_eq!(ours.as_deref().map(bytes_of), theirs.as_deref().map(bytes_of));
        }
    }
}
