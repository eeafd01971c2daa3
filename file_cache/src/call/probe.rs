//! The answer to [`crate::is_cached`]'s question: whether a call would be answered without
//! running its body. The probed call asks the tiers in the order a call reads them, without
//! counting or keeping anything, and unwinds with the answer (see `probing`). It knows the
//! tiers' reads, not how a miss is computed or stored.

use super::builder::CallKey;
use super::check::{decode_entry_from, dependencies_hold, is_expired};
use super::tiers::{entry_path, memory_of, remote_entry};
use crate::codec::{self, Codec};
use crate::config::{config, Mode};
use crate::disk::read;
use crate::probing;
use crate::site::{root_of, Site};
use serde::de::DeserializeOwned;

/// Whether the next call with `key` would be answered without running the body: the tiers
/// in the order a call reads them, memory, the entry file, then the remote, read without
/// being counted or kept. For [`crate::is_cached`].
pub(crate) fn would_hit<T: DeserializeOwned>(site: &'static Site, key: &CallKey) -> bool {
    if config().mode == Mode::Refresh || !root_of(site).usable() {
        return false;
    }
    if let Some(memory) = memory_of(site) {
        let held = memory.get(key.key.as_bytes());
        if held.is_some_and(|(bytes, meta)| {
            let (recorded, payload) = bytes.split_at(meta.dependencies_len.min(bytes.len()));
            dependencies_hold(site, recorded)
                && Codec::from_id(meta.codec)
                    .is_some_and(|codec| codec::decode_with::<T>(codec, payload).is_ok())
        }) {
            return true;
        }
    }
    let path = entry_path(site, key);
    if let Ok(Some(bytes)) = read::read(&path, 0) {
        let usable = !is_expired(site, &bytes)
            && decode_entry_from::<T>(&bytes, None, key, &site.fingerprint::<T>())
                .is_ok_and(|(_, recorded)| dependencies_hold(site, recorded));
        if usable {
            return true;
        }
    }
    remote_entry::<T>(site, key, &path).is_some()
}

/// Called at the start of every cached call: when [`crate::is_cached`] is asking, answers it
/// (by unwinding) instead of returning. One thread-local read otherwise.
#[inline]
pub(crate) fn answer_probe<T: DeserializeOwned>(site: &'static Site, key: Option<&CallKey>) {
    if !probing::asked() {
        return;
    }
    let cached = key.is_some_and(|key| would_hit::<T>(site, key));
    probing::answer(cached);
}
