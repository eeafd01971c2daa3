//! [`crate::is_cached`]'s question: whether a call would be answered without running its
//! body. The probed call asks the tiers in the order a call reads them, without counting
//! or keeping anything, and unwinds with the answer. It knows the tiers' reads, not how a
//! miss is computed or stored.

use super::builder::CallKey;
use super::check::{decode_entry, is_expired};
use super::tiers::{entry_path, memory_of, remote_entry};
use crate::codec::{self, Codec};
use crate::config::{config, Mode};
use crate::disk::read;
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
        if held.is_some_and(|(payload, meta)| {
            Codec::from_id(meta.codec)
                .is_some_and(|codec| codec::decode_with::<T>(codec, &payload).is_ok())
        }) {
            return true;
        }
    }
    let path = entry_path(site, key);
    if let Ok(Some(bytes)) = read::read(&path, 0) {
        let usable = !is_expired(site, &bytes)
            && decode_entry::<T>(&bytes, key, &site.fingerprint::<T>()).is_ok();
        if usable {
            return true;
        }
    }
    remote_entry::<T>(site, key, &path).is_some()
}

/// Runs `run` with the probe armed on this thread: the first cached call it makes answers
/// [`crate::is_cached`] by unwinding, with [`would_hit`]'s answer.
#[cfg(panic = "unwind")]
pub(crate) fn probe(run: impl FnOnce()) -> bool {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            PROBING.with(|probing| probing.set(self.0));
        }
    }
    let _restore = Restore(PROBING.with(|probing| probing.replace(true)));
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(()) => false,
        Err(payload) => match payload.downcast::<ProbeAnswer>() {
            Ok(answer) => answer.0,
            // A real panic while evaluating the call: it is the caller's.
            Err(payload) => std::panic::resume_unwind(payload),
        },
    }
}

thread_local! {
    /// Whether [`is_cached`] is asking, on this thread.
    static PROBING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// What unwinds from a probed call to [`crate::is_cached`].
struct ProbeAnswer(bool);

/// Called at the start of every cached call: when [`crate::is_cached`] is asking, answers it
/// (by unwinding) instead of returning. One thread-local read otherwise.
pub(crate) fn answer_probe<T: DeserializeOwned>(site: &'static Site, key: Option<&CallKey>) {
    // `try_with`: a call from a thread-local's destructor is never a probe, and must not
    // panic.
    if !PROBING
        .try_with(|probing| probing.replace(false))
        .unwrap_or(false)
    {
        return;
    }
    let cached = key.is_some_and(|key| would_hit::<T>(site, key));
    std::panic::resume_unwind(Box::new(ProbeAnswer(cached)));
}
