//! What a remote store is to the tier: the [`Backend`] trait (get, put, list, delete). Each
//! backend (`redis`, `s3`) imports only this, the tier's errors and settings, and its
//! client library; none knows entries, signatures or calls.

use super::config::RemoteError;

/// One storage engine. Names are `<function dir>/<key hex>`; the backend adds its prefix.
pub(super) trait Backend: Send + Sync {
    /// The object named `name`, or `None` when there is none.
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, RemoteError>;
    /// Writes `bytes` as the whole object `name`.
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), RemoteError>;
    /// Names (and sizes) of the objects under `prefix` (`""` for all, or `"<dir>/"`).
    fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, RemoteError>;
    /// Deletes these objects.
    fn delete(&self, names: &[String]) -> Result<(), RemoteError>;
    /// Where it is, with no credentials, for messages.
    fn describe(&self) -> String;
}
