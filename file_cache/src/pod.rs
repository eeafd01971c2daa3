//! Plain old data: fixed-width numbers, and the vectors and slices of them a generic
//! function is handed, recognised by type id (the `typeid` crate, which also answers for
//! types that are not `'static`); on a big-endian machine nothing is. The key hashes such a
//! slice in bulk, the codec copies such a vector in one go, and the entry reader reads one
//! straight from its file. A leaf: it knows nothing of keys, codecs or files.
#![allow(unsafe_code)]

use std::mem::ManuallyDrop;

/// A fixed-width number: no padding, every byte pattern a value, stored in memory as the
/// machine's endianness has it.
pub(crate) trait Plain: Copy + 'static {}

macro_rules! plain {
    ($($ty:ty),*) => { $(impl Plain for $ty {})* };
}
plain!(u8, i8, u16, i16, u32, i32, u64, i64, usize, isize, f32, f64);

/// A number whose postcard encoding is its little-endian bytes (so no `bool`, `char`, or
/// varint-encoded integer).
pub(crate) trait Element: Plain {}

impl Element for f64 {}
impl Element for f32 {}
impl Element for u8 {}
impl Element for i8 {}

/// The numbers `seq` holds when it is a `&Vec<E>` or a `&[E]` (what serde hands a
/// serializer's `collect_seq` for a vector or a slice); `None` for anything else, and on a
/// big-endian machine. The key's serializer hashes such a slice in bulk.
pub(crate) fn slice_of<I, E: Plain>(seq: &I) -> Option<&[E]> {
    if cfg!(target_endian = "big") {
        return None;
    }
    elements_of(seq)
}

/// The elements `seq` holds when it is a `&Vec<E>` or a `&[E]`, for an element type
/// without lifetimes (`'static`); `None` for anything else.
pub(crate) fn elements_of<'s, I, E: 'static>(seq: &'s I) -> Option<&'s [E]> {
    let id = typeid::of::<I>();
    if id == typeid::of::<&Vec<E>>() {
        // SAFETY: `I` is `&'a Vec<E>` for some `'a` (type ids are equal only for types
        // that differ at most in lifetimes, and `Vec<E>` has none, `E` being `'static`),
        // so the copy is that reference. `&'s I` implies `'a: 's`: the slice lives as
        // long as the result.
        let vec: &'s Vec<E> = unsafe { std::mem::transmute_copy::<I, &'s Vec<E>>(seq) };
        Some(vec.as_slice())
    } else if id == typeid::of::<&[E]>() {
        // SAFETY: as above, `I` is `&'a [E]` with `'a: 's`.
        Some(unsafe { std::mem::transmute_copy::<I, &'s [E]>(seq) })
    } else {
        None
    }
}

/// Which flat vector a type is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    F64,
    F32,
    U8,
    I8,
}

/// The flat vector `T` is, if it is one (never on a big-endian machine).
#[inline]
pub(crate) fn kind<T: ?Sized>() -> Option<Kind> {
    if cfg!(target_endian = "big") {
        return None;
    }
    let id = typeid::of::<T>();
    [
        (typeid::of::<Vec<f64>>(), Kind::F64),
        (typeid::of::<Vec<f32>>(), Kind::F32),
        (typeid::of::<Vec<u8>>(), Kind::U8),
        (typeid::of::<Vec<i8>>(), Kind::I8),
    ]
    .into_iter()
    .find_map(|(vec_id, kind)| (vec_id == id).then_some(kind))
}

/// Evaluates `$body` with the type `$element` standing for the element type of `$kind`.
macro_rules! with_element {
    ($kind:expr, $element:ident => $body:expr) => {
        match $kind {
            $crate::pod::Kind::F64 => {
                type $element = f64;
                $body
            }
            $crate::pod::Kind::F32 => {
                type $element = f32;
                $body
            }
            $crate::pod::Kind::U8 => {
                type $element = u8;
                $body
            }
            $crate::pod::Kind::I8 => {
                type $element = i8;
                $body
            }
        }
    };
}
pub(crate) use with_element;

/// `vec` as a `T`, which the caller found to be `Vec<E>`.
///
/// # Panics
/// If `T` is not `Vec<E>`.
pub(crate) fn into_value<T, E: Element>(vec: Vec<E>) -> T {
    assert!(typeid::of::<T>() == typeid::of::<Vec<E>>());
    let vec = ManuallyDrop::new(vec);
    // SAFETY: `T` has the type id of `Vec<E>`. Type ids differ between any two types
    // but ones that differ only in lifetimes, and `Vec<E>` has none (`E: 'static`): `T`
    // is `Vec<E>`. The vector is read once and not dropped here.
    unsafe { std::ptr::read((&*vec as *const Vec<E>).cast::<T>()) }
}

/// The bytes of a slice of numbers.
pub(crate) fn bytes_of<E: Plain>(values: &[E]) -> &[u8] {
    // SAFETY: elements are plain numbers without padding: every byte is initialized, and
    // `u8` has alignment 1. The length is that of the same memory.
    unsafe {
        std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values))
    }
}
