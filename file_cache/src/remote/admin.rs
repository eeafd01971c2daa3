//! Administration of the remote tier, off any call's path: listing and clearing its
//! entries, over a connection of its own with a longer timeout. It knows object names, not
//! what they hold.

use super::backend::Backend;
use super::config::RemoteError;
use super::{open_backend, tier, Tier};
use std::time::Duration;

/// Listing and clearing are not on a call's path: they may wait this long per step.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// One entry of the remote tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteEntry {
    /// The function's directory name (as under the local root).
    pub function: String,
    /// The key, in hex.
    pub key: String,
    /// Size of the stored object, in bytes (signature included).
    pub size: u64,
}

/// The entries of the remote tier: of one function (its directory name) or of all.
pub fn list(function: Option<&str>) -> Result<Vec<RemoteEntry>, RemoteError> {
    let tier = tier().ok_or(RemoteError::NotConfigured)?;
    let prefix = match function {
        Some(function) => format!("{function}/"),
        None => String::new(),
    };
    let mut entries: Vec<RemoteEntry> = tier
        .admin()?
        .list(&prefix)?
        .into_iter()
        .filter_map(|(name, size)| {
            let (function, key) = name.split_once('/')?;
            Some(RemoteEntry {
                function: function.to_owned(),
                key: key.to_owned(),
                size,
            })
        })
        .collect();
    entries.sort_by(|a, b| (&a.function, &a.key).cmp(&(&b.function, &b.key)));
    Ok(entries)
}

/// Deletes the remote entries of one function (its directory name) or of all; returns
/// how many there were. A read-only cache (`FILE_CACHE_READONLY=1`) refuses, saying so.
pub fn clear(function: Option<&str>) -> Result<usize, RemoteError> {
    let tier = tier().ok_or(RemoteError::NotConfigured)?;
    if crate::config::config().read_only {
        return Err(RemoteError::BadSetting(
            "the cache is read-only (FILE_CACHE_READONLY is set): the remote tier is not \
             cleared"
                .to_owned(),
        ));
    }
    let names: Vec<String> = list(function)?
        .into_iter()
        .map(|e| format!("{}/{}", e.function, e.key))
        .collect();
    tier.admin()?.delete(&names)?;
    Ok(names.len())
}

impl Tier {
    /// The same store with [`ADMIN_TIMEOUT`], opened on first use.
    fn admin(&self) -> Result<&dyn Backend, RemoteError> {
        let timeout = ADMIN_TIMEOUT.max(self.timeout());
        match self
            .admin
            .get_or_init(|| open_backend(&self.url, timeout, self.ca.as_deref()))
        {
            Ok(backend) => Ok(backend.as_ref()),
            Err(error) => Err(error.clone()),
        }
    }
}
