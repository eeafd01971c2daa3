//! What a remote store is to the tier: the [`Backend`] trait (get, put, list, the start of
//! objects, delete). Each backend (`redis`, `s3`) imports only this, the tier's errors and
//! settings, and its client library; none knows entries, signatures or calls.

use super::config::RemoteError;
use std::time::SystemTime;

/// One object under a prefix, as a listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Listed {
    /// `<function dir>/<key hex>`, without the backend's prefix.
    pub(super) name: String,
    /// Bytes of the whole object.
    pub(super) size: u64,
    /// When the store last wrote it, if the store says (S3 does, Redis does not).
    pub(super) modified: Option<SystemTime>,
}

/// One storage engine. Names are `<function dir>/<key hex>`; the backend adds its prefix.
pub(super) trait Backend: Send + Sync {
    /// The object named `name`, or `None` when there is none (or, with a time to live, it
    /// is older than that).
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, RemoteError>;
    /// Writes `bytes` as the whole object `name` (to expire after the time to live, if any).
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), RemoteError>;
    /// The objects under `prefix` (`""` for all, or `"<dir>/"`).
    fn list(&self, prefix: &str) -> Result<Vec<Listed>, RemoteError>;
    /// The first bytes of each object: as many as asked of each (fewer when the object is
    /// shorter), in order; empty for an object that is gone. For reading entries' headers
    /// without their payloads.
    fn heads(&self, wanted: &[(String, u64)]) -> Result<Vec<Vec<u8>>, RemoteError> {
        wanted
            .iter()
            .map(|(name, len)| {
                let mut bytes = self.get(name)?.unwrap_or_default();
                bytes.truncate(usize::try_from(*len).unwrap_or(usize::MAX));
                Ok(bytes)
            })
            .collect()
    }
    /// Deletes these objects.
    fn delete(&self, names: &[String]) -> Result<(), RemoteError>;
    /// Where it is, with no credentials, for messages.
    fn describe(&self) -> String;
}
