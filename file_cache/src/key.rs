//! Keys: a canonical, streaming serde serializer into a blake3 hasher.
//!
//! PLACEHOLDER INTERFACE: the implementation is being written; see the module contract.

use serde::Serialize;
use std::fmt;

/// The 32-byte blake3 digest that names one entry of one function.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(pub(crate) [u8; 32]);

impl Key {
    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex of the digest (64 characters).
    pub fn to_hex(&self) -> String {
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        out
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.to_hex())
    }
}

/// A value could not be serialized into a key (its `Serialize` impl returned an error).
#[derive(Debug)]
pub struct KeyError(pub(crate) String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot hash value: {}", self.0)
    }
}

impl std::error::Error for KeyError {}

/// Streaming canonical hasher.
pub(crate) struct KeyHasher {}

impl KeyHasher {
    pub(crate) fn new() -> KeyHasher {
        todo!()
    }

    /// Feeds a framed label (a name, a type name, a format tag).
    pub(crate) fn write_label(&mut self, _label: &str) {
        todo!()
    }

    /// Feeds raw framed bytes (e.g. a code hash).
    pub(crate) fn write_raw(&mut self, _bytes: &[u8]) {
        todo!()
    }

    /// Feeds a value through the canonical serializer.
    pub(crate) fn write_value<T: ?Sized + Serialize>(
        &mut self,
        _value: &T,
    ) -> Result<(), KeyError> {
        todo!()
    }

    pub(crate) fn finish(self) -> Key {
        todo!()
    }
}
