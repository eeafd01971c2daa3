//! `&mut` parameters that a cached call replays (an output buffer, `&mut self`). It owns
//! the stored pair's shape; how the pair is keyed and stored is the call's.
//!
//! Such a parameter is keyed by its value on entry, like any argument. Its value on exit is
//! stored with the result: the entry holds the pair (result, the parameters' values on exit),
//! and a hit writes those values back through the references, so the caller sees what the
//! body would have done.
//!
//! The pair is stored without cloning anything: a miss serializes a borrowed view,
//! `(&R, (&mut A, &mut B))`, whose bytes are those of the owned `(R, (A, B))` a hit decodes.
//! Both are one type, [`Returned`], so the entry's type name and layout fingerprint (traced
//! from its `Deserialize` impl, which decodes the owned pair) are the same either way.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A place a cached call writes back on a hit: implemented for every `Serialize` and
/// `DeserializeOwned` type, and for slices of them (written back element by element).
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` is changed through `&mut` by a cached function, so it must implement `serde::Serialize` and `serde::Deserialize`",
    label = "its value on entry is part of the key, and its value on exit is stored with the result and written back on a hit",
    note = "if it is a handle rather than data (a logger, a progress bar), leave it out with `#[file_cache(ignore = [name])]`: what the body does to it is then lost on a hit"
)]
pub trait Output: Serialize {
    /// The owned value stored for it.
    type Value: Serialize + DeserializeOwned;

    /// Writes a stored value back.
    fn replace(&mut self, value: Self::Value);
}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> Output for T {
    type Value = T;

    fn replace(&mut self, value: T) {
        *self = value;
    }
}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> Output for [T] {
    type Value = Vec<T>;

    fn replace(&mut self, value: Vec<T>) {
        // The slice's contents on entry are part of the key, so its length is the stored
        // one's; should it differ, the shorter one decides.
        for (slot, value) in self.iter_mut().zip(value) {
            *slot = value;
        }
    }
}

/// A `&mut` parameter as the generated code hands it to the runtime; the bound's error
/// message says how to leave it out.
#[doc(hidden)]
pub fn output<T: ?Sized + Output>(place: &mut T) -> &mut T {
    place
}

/// Writes a stored value back through a `&mut` parameter.
#[doc(hidden)]
pub fn replace<T: ?Sized + Output>(place: &mut T, value: T::Value) {
    place.replace(value);
}

/// The `&mut` parameters of one call, as a tuple of references, and their owned values.
#[doc(hidden)]
pub trait OutputRefs: Serialize {
    /// The tuple of their owned values, as stored.
    type Values: Serialize + DeserializeOwned;
}

macro_rules! output_refs {
    ($($name:ident),+) => {
        impl<'a, $($name: ?Sized + Output),+> OutputRefs for ($(&'a mut $name,)+) {
            type Values = ($($name::Value,)+);
        }
    };
}

output_refs!(A);
output_refs!(A, B);
output_refs!(A, B, C);
output_refs!(A, B, C, D);
output_refs!(A, B, C, D, E);
output_refs!(A, B, C, D, E, F);
output_refs!(A, B, C, D, E, F, G);
output_refs!(A, B, C, D, E, F, G, H);
output_refs!(A, B, C, D, E, F, G, H, I);
output_refs!(A, B, C, D, E, F, G, H, I, J);
output_refs!(A, B, C, D, E, F, G, H, I, J, K);
output_refs!(A, B, C, D, E, F, G, H, I, J, K, L);

/// The most `&mut` parameters a cached function may replay (the longest tuple above).
#[doc(hidden)]
pub const MAX_OUTPUTS: usize = 12;

/// The value stored for a function with `&mut` parameters: its result and their values on
/// exit. A miss stores a view of both; a hit decodes them owned.
pub(crate) enum Returned<'a, R, O: OutputRefs> {
    View(&'a R, &'a O),
    Owned(R, O::Values),
}

impl<R, O: OutputRefs> Returned<'_, R, O> {
    /// The decoded result and values; `None` for a view (which a decode never gives).
    pub(crate) fn into_owned(self) -> Option<(R, O::Values)> {
        match self {
            Returned::Owned(value, outputs) => Some((value, outputs)),
            Returned::View(..) => None,
        }
    }
}

impl<R: Serialize, O: OutputRefs> Serialize for Returned<'_, R, O> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // `(&R, &(&mut A, ..))` and `(R, (A, ..))` serialize to the same bytes.
        match self {
            Returned::View(value, outputs) => (value, outputs).serialize(serializer),
            Returned::Owned(value, outputs) => (value, outputs).serialize(serializer),
        }
    }
}

impl<'de, R: DeserializeOwned, O: OutputRefs> Deserialize<'de> for Returned<'_, R, O> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (value, outputs) = <(R, O::Values)>::deserialize(deserializer)?;
        Ok(Returned::Owned(value, outputs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_encodes_as_the_owned_pair_and_decodes_owned() {
        let mut out = vec![1u32, 2];
        let mut count = 7u8;
        let refs = (&mut out, &mut count);
        let view = crate::codec::encode(&Returned::View(&"r".to_owned(), &refs)).unwrap();
        let owned = crate::codec::encode(&("r".to_owned(), (vec![1u32, 2], 7u8))).unwrap();
        assert_eq!(view, owned);
        let decoded: Returned<'_, String, (&mut Vec<u32>, &mut u8)> =
            crate::codec::decode(&view).unwrap();
        assert_eq!(
            decoded.into_owned(),
            Some(("r".to_owned(), (vec![1, 2], 7)))
        );
    }

    #[test]
    fn the_layout_is_the_owned_pairs() {
        type Stored<'a> = Returned<'a, u64, (&'a mut Vec<u32>,)>;
        assert_eq!(
            crate::fingerprint::trace::<Stored<'_>>(),
            crate::fingerprint::trace::<(u64, (Vec<u32>,))>()
        );
    }

    #[test]
    fn a_slice_is_written_back_in_place() {
        let mut buffer = [0u8; 3];
        replace(&mut buffer[..], vec![4, 5, 6]);
        assert_eq!(buffer, [4, 5, 6]);
        let mut value = String::new();
        replace(&mut value, "x".to_owned());
        assert_eq!(value, "x");
    }
}
