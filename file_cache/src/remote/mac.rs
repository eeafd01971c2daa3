//! Signing remote entries with `FILE_CACHE_REMOTE_SECRET`: a keyed blake3 MAC over the
//! entry's name and bytes, appended as a trailer. It knows names and bytes, not what an
//! entry holds.
//!
//! ```text
//! entry bytes (a local entry, its payload compressed or not) | b"FCMAC1\r\n" | 32-byte keyed blake3
//! ```
//!
//! The name is covered so that a signed entry cannot be copied under another key or
//! function; the entry's own header names its key too, but the MAC does not rely on it.

/// Marks a signed entry; lets a reader tell "unsigned" from "wrongly signed".
const TRAILER_MAGIC: [u8; 8] = *b"FCMAC1\r\n";
const MAC_LEN: usize = 32;
/// Bytes a signature adds to an entry.
pub(crate) const TRAILER_LEN: usize = TRAILER_MAGIC.len() + MAC_LEN;

/// The MAC key, derived from the user's secret (of any length).
#[derive(Clone)]
pub(crate) struct Mac {
    key: [u8; 32],
}

impl std::fmt::Debug for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mac(<secret>)")
    }
}

/// Why a remote entry's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    Unsigned,
    WrongSignature,
    /// Signed, but this process has no secret to check it with.
    NoSecret,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refused::Unsigned => "it is not signed and FILE_CACHE_REMOTE_SECRET is set",
            Refused::WrongSignature => "its signature does not match FILE_CACHE_REMOTE_SECRET",
            Refused::NoSecret => "it is signed, and FILE_CACHE_REMOTE_SECRET is not set here",
        })
    }
}

impl Mac {
    pub(crate) fn new(secret: &[u8]) -> Mac {
        Mac {
            key: blake3::derive_key("file_cache remote entry MAC v1", secret),
        }
    }

    fn tag(&self, name: &str, entry: &[u8]) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        hasher.update(&(name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update(entry);
        hasher.finalize()
    }

    /// The entry followed by its trailer.
    pub(crate) fn seal(&self, name: &str, entry: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(entry.len() + TRAILER_LEN);
        out.extend_from_slice(entry);
        out.extend_from_slice(&TRAILER_MAGIC);
        out.extend_from_slice(self.tag(name, entry).as_bytes());
        out
    }
}

/// Checks a remote object and strips its trailer: the entry bytes it vouches for.
pub(crate) fn open(mac: Option<&Mac>, name: &str, mut object: Vec<u8>) -> Result<Vec<u8>, Refused> {
    let signed = object.len() >= TRAILER_LEN
        && object[object.len() - TRAILER_LEN..object.len() - MAC_LEN] == TRAILER_MAGIC;
    match (mac, signed) {
        (None, false) => Ok(object),
        // An unsigned entry that happens to end like a trailer still parses as an entry
        // only if it is one; the caller's checks refuse anything else.
        (None, true) => {
            if crate::entry::is_stored_entry(&object) {
                Ok(object)
            } else {
                Err(Refused::NoSecret)
            }
        }
        (Some(_), false) => Err(Refused::Unsigned),
        (Some(mac), true) => {
            let entry_len = object.len() - TRAILER_LEN;
            let mut tag = [0; MAC_LEN];
            tag.copy_from_slice(&object[entry_len + TRAILER_MAGIC.len()..]);
            // `blake3::Hash` compares in constant time.
            if mac.tag(name, &object[..entry_len]) == blake3::Hash::from(tag) {
                object.truncate(entry_len);
                Ok(object)
            } else {
                Err(Refused::WrongSignature)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_entries_open_with_the_same_secret_only() {
        let mac = Mac::new(b"team secret");
        let sealed = mac.seal("f/ab", b"entry bytes");
        assert_eq!(sealed.len(), b"entry bytes".len() + TRAILER_LEN);
        assert_eq!(
            open(Some(&mac), "f/ab", sealed.clone()).unwrap(),
            b"entry bytes"
        );
        let other = Mac::new(b"another secret");
        assert_eq!(
            open(Some(&other), "f/ab", sealed.clone()),
            Err(Refused::WrongSignature)
        );
        assert_eq!(
            open(Some(&mac), "f/cd", sealed.clone()),
            Err(Refused::WrongSignature),
            "a signed entry moved to another name"
        );
        assert_eq!(open(None, "f/ab", sealed), Err(Refused::NoSecret));
    }

    #[test]
    fn every_flipped_bit_of_a_sealed_entry_is_refused() {
        let mac = Mac::new(b"s");
        let sealed = mac.seal("n", b"some entry");
        for at in 0..sealed.len() {
            let mut damaged = sealed.clone();
            damaged[at] ^= 0x10;
            assert!(open(Some(&mac), "n", damaged).is_err(), "byte {at}");
        }
    }

    #[test]
    fn unsigned_entries_are_refused_when_a_secret_is_set() {
        let mac = Mac::new(b"s");
        assert_eq!(
            open(Some(&mac), "n", b"plain".to_vec()),
            Err(Refused::Unsigned)
        );
        assert_eq!(open(None, "n", b"plain".to_vec()).unwrap(), b"plain");
    }
}
