//! The tier order, written once: [`Pending::step`] reads memory, the entry file, the
//! key's flight in this process, the remote tier, the entry's lock across processes, the
//! entry file again, and otherwise hands the caller a [`Miss`] to run the body and
//! store. Each tier's own reading and bookkeeping (what a hit counts, what it keeps in
//! memory, what a remote hit writes back to the file) sits below it. It owns no format:
//! checks are `check`'s, writes are `write`'s, bytes come from `disk` and `remote`.

use super::builder::CallKey;
use super::tiers::{
    disk_hit, entry_path, keep_locally, memory_hit, memory_of, note_version, pending_hit,
    remote_hit,
};
use super::write::store;
use crate::codec::{self, Codec};
use crate::config::config;
use crate::dependencies::{self, Recorded};
use crate::disk::lock::{self, EntryLock};
use crate::disk::root::{Access, Root};
use crate::flight::{self, Follower, Joined, Leader, Outcome};
use crate::memory::Memory;
use crate::site::{root_of, Problem, Site};
use crate::stats;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The first half of a cached call: what the cache has for its key.
///
/// Every form of call (plain, `Result`, async) is `begin`, then either the stored value or
/// the body followed by [`Miss::store`]; they differ only in how the body runs.
///
/// A cold key is computed once: within the process, the first caller leads and the others
/// wait for its value ([`crate::flight`]); across processes, the leader takes the entry's
/// lock and looks again once it holds it ([`crate::disk::lock`]).
// A lookup lives on the stack for one call: boxing the miss would cost an allocation per
// miss and save nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Lookup<T> {
    /// A stored value, checked and decoded (or the value another caller just computed).
    Hit(T),
    /// Nothing usable is stored: run the body and store its value.
    Miss(Miss),
    /// The cache is off for this call: run the body, store nothing.
    Bypass,
}

/// A call that missed: remembers where its value goes and when the body started. While it
/// lives, it leads its key's flight and holds its entry's lock; dropping it without
/// [`Miss::store`] (a panic, an `Err`, a dropped future) lets another caller compute.
pub(crate) struct Miss {
    pub(super) site: &'static Site,
    pub(super) root: &'static Root,
    pub(super) key: CallKey,
    pub(super) path: PathBuf,
    pub(super) started: Instant,
    /// What the body recorded with `depends_on` (and nested calls' files), so far.
    pub(super) recorded: Recorded,
    // Field order is drop order: the flight ends after the lock is released.
    pub(super) lock: Option<EntryLock>,
    /// `None` for a caller whose leader failed: it computes alongside the other waiters.
    pub(super) leader: Option<Leader>,
}

impl<T: DeserializeOwned> Lookup<T> {
    /// Looks the key up, waiting (blocking the thread) while another caller computes it.
    pub(crate) fn begin(site: &'static Site, key: Option<CallKey>) -> Lookup<T> {
        let Some(mut pending) = Pending::new(site, key) else {
            return Lookup::Bypass;
        };
        loop {
            match pending.step(true) {
                Step::Ready(lookup) => return lookup,
                Step::Follow(follower) => {
                    if let Some(lookup) = pending.followed(follower.wait()) {
                        return lookup;
                    }
                }
                // Only a non-blocking step finds the lock busy.
                Step::LockBusy => {}
            }
        }
    }
}

/// A lookup under way. [`Lookup::begin`] drives it to the end on one thread; an async call
/// drives it with [`Pending::step`]`(false)`, waiting on [`Follower::poll`] and retrying
/// after a delay on [`Step::LockBusy`], so that no executor thread is ever blocked.
pub(crate) struct Pending<T> {
    pub(super) site: &'static Site,
    pub(super) root: &'static Root,
    pub(super) key: Option<CallKey>,
    /// The memory tier, when this call may use it.
    pub(super) memory: Option<&'static Memory>,
    /// The entry's file: empty until the memory tier has missed (a memory hit needs none).
    pub(super) path: PathBuf,
    /// Set once this caller leads the key's flight but has not taken the entry's lock.
    pub(super) leader: Option<Leader>,
    pub(super) _value: PhantomData<fn() -> T>,
}

/// What one step of a [`Pending`] lookup came to.
// Returned at once and matched, as a `Lookup` is (see there): boxing it would cost an
// allocation per call.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Step<T> {
    /// Done: a hit, a miss to compute, or a bypass.
    Ready(Lookup<T>),
    /// Another caller of this process computes the key: wait for it, then hand its outcome
    /// to [`Pending::followed`].
    Follow(Follower),
    /// Another process holds the entry's lock (non-blocking steps only): step again later.
    LockBusy,
}

/// What a step does instead of going on to the next tier (a small [`Step`]).
enum Detour {
    /// Wait for the caller of this process computing the key.
    Follow(Follower),
    /// Another process holds the entry's lock: step again later.
    LockBusy,
    /// Call without the cache.
    Bypass,
}

impl<T> From<Detour> for Step<T> {
    fn from(detour: Detour) -> Step<T> {
        match detour {
            Detour::Follow(follower) => Step::Follow(follower),
            Detour::LockBusy => Step::LockBusy,
            Detour::Bypass => Step::Ready(Lookup::Bypass),
        }
    }
}

impl<T: DeserializeOwned> Pending<T> {
    /// Starts a lookup; `None` when the call bypasses the cache.
    pub(crate) fn new(site: &'static Site, key: Option<CallKey>) -> Option<Pending<T>> {
        super::probe::answer_probe::<T>(site, key.as_ref());
        let key = key?;
        let root = root_of(site);
        if !root.usable() {
            return None;
        }
        Some(Pending {
            site,
            root,
            key: Some(key),
            memory: memory_of(site),
            path: PathBuf::new(),
            leader: None,
            _value: PhantomData,
        })
    }

    /// Advances the lookup; `block` says whether it may wait for another process's lock.
    ///
    /// The one place that orders the tiers, read top to bottom. A caller that followed
    /// another's flight comes back at the top (the entry may be there now, or it leads the
    /// next flight); a leader that found the lock busy comes back at the lock.
    pub(crate) fn step(&mut self, block: bool) -> Step<T> {
        let Some(key) = &self.key else {
            return Step::Ready(Lookup::Bypass);
        };
        if self.leader.is_none() {
            // 1. Memory: a hit there waits for no other caller, takes no lock and makes no
            //    system call.
            if let Some(memory) = self.memory {
                if let Some(value) = memory_hit(self.site, memory, key) {
                    return Step::Ready(Lookup::Hit(value));
                }
            }
            // 2. The entry file.
            if self.path.as_os_str().is_empty() {
                self.path = entry_path(self.site, key);
                note_version(self.site, &self.path, false);
            }
            if let Some(value) = disk_hit(self.site, key, &self.path, self.memory) {
                return Step::Ready(Lookup::Hit(value));
            }
            // 3. The key's flight: the first caller of this process leads, the others wait
            //    for its value.
            match self.join_flight(key) {
                Ok(leader) => self.leader = Some(leader),
                Err(detour) => return detour.into(),
            }
            // 4. The remote tier, asked once by the flight's leader, before the entry's lock
            //    (a lock is a file to create and remove, dearer than the request itself): its
            //    value goes to this process's waiters, its entry to the file, written off the
            //    call's path. Another process asks the remote for itself, as it would have
            //    found the file.
            //    A leader that came after another flight finds what that one left: its value
            //    in memory, its entry waiting to be written to the file.
            if let Some(memory) = self.memory {
                if let Some(value) = memory_hit(self.site, memory, key) {
                    return Step::Ready(Lookup::Hit(value));
                }
            }
            if let Some(value) = pending_hit(self.site, key, &self.path, self.memory) {
                return Step::Ready(Lookup::Hit(value));
            }
            if let Some((value, entry)) = remote_hit(self.site, key, &self.path, self.memory) {
                // Waiting to be written before the flight ends: the next leader finds it.
                let entry = keep_locally(self.site, &self.path, entry);
                if let Some(leader) = self.leader.take() {
                    leader.finish(|| shared::<T>(&entry));
                }
                return Step::Ready(Lookup::Hit(value));
            }
        }
        // 5. The entry's lock: the leader of one process computes, the others wait for it.
        let lock = match self.lock_entry(block) {
            Ok(lock) => lock,
            Err(detour) => return detour.into(),
        };
        // 6. The entry file again: another caller may have stored the value since the first
        //    look, while we joined the flight or waited for the lock.
        if let Some(value) = disk_hit(self.site, key, &self.path, self.memory) {
            return Step::Ready(Lookup::Hit(value));
        }
        // 7. The body: a miss, whose caller runs it and stores its value ([`Miss::store`]).
        let (Some(key), Some(leader)) = (self.key.take(), self.leader.take()) else {
            return Step::Ready(Lookup::Bypass);
        };
        stats::record_miss(self.site);
        Step::Ready(Lookup::Miss(Miss {
            site: self.site,
            root: self.root,
            key,
            path: std::mem::take(&mut self.path),
            started: Instant::now(),
            recorded: Recorded::default(),
            lock,
            leader: Some(leader),
        }))
    }

    /// Joins the key's flight in this process: leads it, or follows its leader, or bypasses
    /// the cache when this very caller is computing the key.
    fn join_flight(&self, key: &CallKey) -> Result<Leader, Detour> {
        if flight::computing_here(&key.key) {
            // Waiting for this flight would wait for ourselves, forever.
            log::debug!(
                "file_cache: {}: computed by this caller already (its body calls it again \
                 with the same key); running that call uncached",
                self.site.display_name()
            );
            return Err(Detour::Bypass);
        }
        match flight::join(&key.key) {
            Joined::Follower(follower) => {
                log::debug!(
                    "file_cache: waiting for {}, computed by another caller",
                    self.site.display_name()
                );
                Err(Detour::Follow(follower))
            }
            Joined::Leader(leader) => Ok(leader),
        }
    }

    /// Takes the entry's lock when the function and its root use locks: the lock (or
    /// `None`, computing unlocked), or what to do instead (step again later, or bypass).
    fn lock_entry(&self, block: bool) -> Result<Option<EntryLock>, Detour> {
        let root = self.root;
        if !(self.site.info.lock && root.locks() && root.access() == Access::ReadWrite) {
            return Ok(None);
        }
        match lock::acquire(&self.path, block, config().faults) {
            Ok(Some(held)) => Ok(Some(held)),
            Ok(None) => Err(Detour::LockBusy),
            Err(error) if error.kind() == io::ErrorKind::Unsupported => {
                root.locks_failed(&error);
                Ok(None)
            }
            // Something keeps replacing the lock file: compute without the cache rather
            // than wait for it.
            Err(error) if lock::gave_up(&error) => {
                self.site.warn_once(Problem::Lock, || {
                    format!(
                        "{}: cannot lock {} ({error}); calling without the cache",
                        self.site.display_name(),
                        self.path.display()
                    )
                });
                Err(Detour::Bypass)
            }
            // The directory cannot be written: the store will say so.
            Err(error) => {
                log::debug!(
                    "file_cache: {}: cannot lock {} ({error})",
                    self.site.display_name(),
                    self.path.display()
                );
                Ok(None)
            }
        }
    }

    /// What the followed caller's outcome makes of this call: its value, a miss this call
    /// computes alongside the other waiters (the leader failed), or `None`: then step again
    /// (the entry may be there, or this caller may lead the next flight).
    pub(crate) fn followed(&mut self, outcome: Outcome) -> Option<Lookup<T>> {
        match outcome {
            Outcome::Value {
                type_name,
                codec,
                payload,
                dependencies,
            } if type_name == std::any::type_name::<T>() => {
                log::debug!(
                    "file_cache: hit {} (from another caller)",
                    self.site.display_name()
                );
                let codec = Codec::from_id(codec)?;
                let value = codec::decode_with(codec, &payload).ok()?;
                dependencies::inherit(&dependencies);
                stats::record_waited(self.site, &self.path);
                Some(Lookup::Hit(value))
            }
            Outcome::Failed => {
                log::debug!(
                    "file_cache: {}: the caller computing it failed; computing this call at \
                     once, alongside the other waiters",
                    self.site.display_name()
                );
                let key = self.key.take()?;
                stats::record_miss(self.site);
                Some(Lookup::Miss(Miss {
                    site: self.site,
                    root: self.root,
                    key,
                    path: std::mem::take(&mut self.path),
                    started: Instant::now(),
                    recorded: Recorded::default(),
                    lock: None,
                    leader: None,
                }))
            }
            _ => None,
        }
    }
}

/// What a flight's waiters get from a remote hit's entry (checked whole already): its
/// payload, codec and recorded dependencies, as a computed value would give them.
fn shared<T>(entry: &[u8]) -> Outcome {
    let dependencies = crate::entry::parse_header(entry)
        .map(|parsed| parsed.header.dependencies)
        .unwrap_or_default();
    Outcome::Value {
        type_name: std::any::type_name::<T>(),
        codec: crate::entry::peek_codec(entry).unwrap_or(0),
        payload: crate::entry::payload(entry).into(),
        dependencies: dependencies.into(),
    }
}

impl Miss {
    /// Runs (a poll of) the body: marked as computing this key on the current thread, so
    /// that the body calling itself with the same key does not wait for itself, and with a
    /// frame of its own for what it declares it reads (`depends_on`).
    pub(crate) fn run<R>(&mut self, body: impl FnOnce() -> R) -> R {
        let _here = flight::Computing::enter(&self.key.key);
        dependencies::collect(self.site.digest_index(), &mut self.recorded, body)
    }

    /// Stores the body's value and hands it to callers waiting for it; problems are logged,
    /// never returned.
    pub(crate) fn store<T: Serialize + DeserializeOwned>(mut self, value: &T) {
        let recorded = self.recorded.encode();
        let payload = store(
            self.site,
            self.root,
            &self.key,
            &self.path,
            value,
            &recorded,
            self.started.elapsed(),
            self.lock.as_mut(),
        );
        // The body calling this one made its value from this one's.
        dependencies::inherit(&recorded);
        // Remove the lock file while holding the lock, then wake this process's followers.
        drop(self.lock);
        let Some(leader) = self.leader else {
            return;
        };
        match payload {
            Some((codec, payload)) => leader.finish(|| Outcome::Value {
                type_name: std::any::type_name::<T>(),
                codec,
                payload: payload.into(),
                dependencies: recorded.into(),
            }),
            None => leader.fail(),
        }
    }

    /// Ends a miss whose body failed (an `Err`): its waiters compute at once, for
    /// themselves, instead of queueing behind one another (see [`Outcome::Failed`]).
    pub(crate) fn fail(self) {
        dependencies::inherit(&self.recorded.encode());
        drop(self.lock);
        if let Some(leader) = self.leader {
            leader.fail();
        }
    }
}

/// [`Lookup::begin`] for async calls, never blocking its thread: it waits for another
/// caller of this process through its waker, and for another process's lock by trying
/// again after a delay (a helper thread wakes it), so no runtime is needed.
///
/// `call_async` is `match BeginFuture::new(site, key).await`, then as in [`super::call`]. A
/// dropped future (a cancelled call) drops its [`Miss`], which lets another caller compute.
pub(crate) struct BeginFuture<T> {
    /// `None` for a call that bypasses the cache.
    pub(super) pending: Option<Pending<T>>,
    pub(super) following: Option<Follower>,
    pub(super) retry_after: Duration,
}

impl<T: DeserializeOwned> BeginFuture<T> {
    pub(crate) fn new(site: &'static Site, key: Option<CallKey>) -> BeginFuture<T> {
        BeginFuture {
            pending: Pending::new(site, key),
            following: None,
            retry_after: Duration::from_millis(5),
        }
    }
}

impl<T: DeserializeOwned> Future for BeginFuture<T> {
    type Output = Lookup<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Lookup<T>> {
        let this = self.get_mut();
        let Some(pending) = &mut this.pending else {
            return Poll::Ready(Lookup::Bypass);
        };
        loop {
            if let Some(following) = &this.following {
                let Poll::Ready(outcome) = following.poll(cx) else {
                    return Poll::Pending;
                };
                this.following = None;
                if let Some(lookup) = pending.followed(outcome) {
                    return Poll::Ready(lookup);
                }
            }
            match pending.step(false) {
                Step::Ready(lookup) => return Poll::Ready(lookup),
                Step::Follow(follower) => this.following = Some(follower),
                Step::LockBusy => {
                    wake_after(this.retry_after, cx.waker().clone());
                    this.retry_after = (this.retry_after * 2).min(Duration::from_millis(500));
                    return Poll::Pending;
                }
            }
        }
    }
}

/// Wakes `waker` after `delay`, from a short-lived helper thread (only while another
/// process holds a lock this task wants; at most two a second per waiting task).
pub(super) fn wake_after(delay: Duration, waker: Waker) {
    let spare = waker.clone();
    let spawned = std::thread::Builder::new()
        .name("file_cache-lock-wait".to_owned())
        .spawn(move || {
            std::thread::sleep(delay);
            waker.wake();
        });
    if spawned.is_err() {
        // No thread to wait with: poll again at once rather than never.
        spare.wake();
    }
}
