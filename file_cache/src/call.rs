//! One cached call: key, lookup, run, store. Nothing here can make the call fail.

use crate::codec::{self, flat, Codec};
use crate::config::{config, Mode};
use crate::disk::lock::{self, EntryLock};
use crate::disk::root::{Access, Root};
use crate::disk::size_limit;
use crate::disk::{paths, read, versions};
use crate::entry::{self, Header};
use crate::flight::{self, Follower, Joined, Leader, Outcome};
use crate::key::{Key, KeyError, KeyHasher};
use crate::layout::{self, Fingerprint};
use crate::memory::{self, Memory};
use crate::outputs::{Output, OutputRefs, Returned};
use crate::site::{root_of, Problem, Site};
use crate::verified::FileId;
use crate::{manage, stats};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::borrow::Cow;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Builds the key of one call from the function's identity and its arguments.
#[doc(hidden)]
pub struct KeyBuilder {
    site: &'static Site,
    hasher: KeyHasher,
    self_ty: Option<&'static str>,
    failure: Option<(&'static str, KeyError)>,
}

/// The key of one call, with what is needed to find its entry.
#[doc(hidden)]
pub struct CallKey {
    pub(crate) key: Key,
    self_ty: Option<&'static str>,
}

impl KeyBuilder {
    /// Starts a key, or returns `None` when this call should bypass the cache.
    pub fn begin(site: &'static Site) -> Option<KeyBuilder> {
        if config().mode == Mode::Off || site.is_uncacheable() {
            return None;
        }
        // What every key of the function starts with (the key format's label, which
        // `KeyHasher::new` writes, the code hash, the names and how the function was
        // compiled), hashed once; each call's stream starts from its digest. That keeps a
        // small call's stream within one blake3 block, where the whole prefix took a second
        // one.
        let prefix = site.state.key_prefix.get_or_init(|| {
            let mut hasher = KeyHasher::new();
            hasher.write_raw(&site.info.code_hash);
            hasher.write_label(site.info.module_path);
            hasher.write_label(site.info.name);
            // Absent from sites written by hand, whose keys stay as they were.
            if !site.info.cfg.is_empty() {
                let cfg: Vec<u8> = site.info.cfg.iter().map(|&value| u8::from(value)).collect();
                hasher.write_label("cfg");
                hasher.write_raw(&cfg);
            }
            *hasher.finish().as_bytes()
        });
        let hasher = KeyHasher::continuing(prefix);
        Some(KeyBuilder {
            site,
            hasher,
            self_ty: None,
            failure: None,
        })
    }

    /// Adds the `Self` type of a method (its concrete name, generic arguments included).
    pub fn self_type(&mut self, type_name: &'static str) {
        self.self_ty = Some(type_name);
        self.hasher.write_label("Self");
        self.hasher.write_label(type_name);
    }

    /// Adds the code hashes of tracked dependencies named through `Self`, which the site's
    /// `static` cannot name.
    pub fn code_deps(&mut self, hashes: &[[u8; 32]]) {
        self.hasher.write_label("deps");
        for hash in hashes {
            self.hasher.write_raw(hash);
        }
    }

    /// The `Self` type added so far, if any.
    pub(crate) fn self_ty(&self) -> Option<&'static str> {
        self.self_ty
    }

    /// The function this key is for.
    pub(crate) fn site(&self) -> &'static Site {
        self.site
    }

    /// Adds the concrete type `T` of a generic type parameter: its name, and its `TypeId`,
    /// since names can print alike (every closure's is `path::{{closure}}`).
    pub fn type_arg<T: ?Sized>(&mut self, name: &'static str) {
        self.write_type::<T>(name);
    }

    /// Adds a type's name alone, under `name` (where the function is: see `place`).
    pub(crate) fn type_param(&mut self, name: &'static str, type_name: &'static str) {
        self.hasher.write_label(name);
        self.hasher.write_label(type_name);
    }

    /// Adds the value of a const generic parameter.
    pub fn const_param<T: ?Sized + Serialize>(&mut self, name: &'static str, value: &T) {
        self.arg(name, value);
    }

    /// Adds the concrete type behind an `impl Trait` argument, as [`Self::type_arg`] does.
    pub fn arg_type<T: ?Sized>(&mut self, name: &'static str, _value: &T) {
        self.write_type::<T>(name);
    }

    fn write_type<T: ?Sized>(&mut self, name: &'static str) {
        /// Collects the bytes `TypeId`'s `Hash` impl writes (64 of its bits today).
        struct TypeIdBytes {
            bytes: [u8; 16],
            len: usize,
        }
        impl std::hash::Hasher for TypeIdBytes {
            fn write(&mut self, bytes: &[u8]) {
                for &byte in bytes {
                    // Folded, should a later std write more than 16 bytes.
                    self.bytes[self.len % 16] ^= byte;
                    self.len += 1;
                }
            }
            fn finish(&self) -> u64 {
                0
            }
        }
        // `typeid::of`, unlike `TypeId::of`, accepts types that are not `'static`, such as
        // a closure that borrows.
        let mut id = TypeIdBytes {
            bytes: [0; 16],
            len: 0,
        };
        std::hash::Hash::hash(&typeid::of::<T>(), &mut id);
        self.hasher.write_label(name);
        self.hasher.write_label(std::any::type_name::<T>());
        self.hasher.write_raw(&id.bytes[..id.len.min(16)]);
    }

    /// Adds one argument by name.
    pub fn arg<T: ?Sized + Serialize>(&mut self, name: &'static str, value: &T) {
        if self.failure.is_some() {
            return;
        }
        self.hasher.write_label(name);
        if let Err(error) = self.hasher.write_value(value) {
            self.failure = Some((name, error));
        }
    }

    /// Adds a `&mut` parameter's value on entry; its bound is the one the parameter must
    /// meet anyway, so a type that is not serde data is reported once, with what to do.
    pub fn output_param<T: ?Sized + Output>(&mut self, name: &'static str, value: &T) {
        self.arg(name, value);
    }

    /// The finished key, or `None` (logged) when an argument could not be hashed.
    pub fn finish(self) -> Option<CallKey> {
        if let Some((name, error)) = self.failure {
            self.site.warn_once(Problem::Key, || {
                format!(
                    "{}: argument `{name}` cannot be hashed ({error}); calling without the cache",
                    self.site.display_name()
                )
            });
            return None;
        }
        Some(CallKey {
            key: self.hasher.finish(),
            self_ty: self.self_ty,
        })
    }
}

/// Runs a cached function whose return value is cached as a whole.
///
/// [`call_async`](crate::call_async::call_async) is the same for an `async fn`.
#[doc(hidden)]
pub fn call<T, F>(site: &'static Site, key: Option<CallKey>, body: F) -> T
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> T,
{
    match Lookup::begin(site, key) {
        Lookup::Hit(value) => value,
        Lookup::Miss(miss) => {
            let value = {
                let _here = miss.computing();
                body()
            };
            miss.store(&value);
            value
        }
        Lookup::Bypass => body(),
    }
}

/// Runs a cached function returning `Result`: only `Ok` values are stored.
#[doc(hidden)]
pub fn call_result<T, E, F>(site: &'static Site, key: Option<CallKey>, body: F) -> Result<T, E>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Result<T, E>,
{
    match Lookup::begin(site, key) {
        Lookup::Hit(value) => Ok(value),
        Lookup::Miss(miss) => {
            let result = {
                let _here = miss.computing();
                body()
            };
            match &result {
                Ok(value) => miss.store(value),
                Err(_) => miss.fail(),
            }
            result
        }
        Lookup::Bypass => body(),
    }
}

/// Runs a cached function with `&mut` parameters: `body` runs the function's body and hands
/// back the references, whose values are stored with its result. Returns the result, and on
/// a hit the stored values, which the caller writes back through the references.
#[doc(hidden)]
pub fn call_outputs<T, O, F>(
    site: &'static Site,
    key: Option<CallKey>,
    body: F,
) -> (T, Option<O::Values>)
where
    T: Serialize + DeserializeOwned,
    O: OutputRefs,
    F: FnOnce() -> (T, O),
{
    match Lookup::<Returned<'_, T, O>>::begin(site, key) {
        Lookup::Hit(stored) => match stored.into_owned() {
            Some((value, outputs)) => (value, Some(outputs)),
            None => (body().0, None),
        },
        Lookup::Miss(miss) => {
            let (value, outputs) = {
                let _here = miss.computing();
                body()
            };
            miss.store(&Returned::View(&value, &outputs));
            (value, None)
        }
        Lookup::Bypass => (body().0, None),
    }
}

/// [`call_outputs`] for a function returning `Result`: only `Ok` values are stored, with
/// the `&mut` parameters' values.
#[doc(hidden)]
pub fn call_result_outputs<T, E, O, F>(
    site: &'static Site,
    key: Option<CallKey>,
    body: F,
) -> (Result<T, E>, Option<O::Values>)
where
    T: Serialize + DeserializeOwned,
    O: OutputRefs,
    F: FnOnce() -> (Result<T, E>, O),
{
    match Lookup::<Returned<'_, T, O>>::begin(site, key) {
        Lookup::Hit(stored) => match stored.into_owned() {
            Some((value, outputs)) => (Ok(value), Some(outputs)),
            None => (body().0, None),
        },
        Lookup::Miss(miss) => {
            let (result, outputs) = {
                let _here = miss.computing();
                body()
            };
            match &result {
                Ok(value) => miss.store(&Returned::View(value, &outputs)),
                Err(_) => miss.fail(),
            }
            (result, None)
        }
        Lookup::Bypass => (body().0, None),
    }
}

/// Writes the entry of `key` exactly as a miss would, without looking anything up.
/// Benchmarks fill a cache with it (a million entries without a million calls).
#[doc(hidden)]
pub fn write_entry<T: Serialize + DeserializeOwned>(site: &'static Site, key: CallKey, value: &T) {
    let path = entry_path(site, &key);
    store(site, root_of(site), &key, &path, value, Duration::ZERO);
}

/// The first half of a cached call: what the cache has for its key.
///
/// Every form of call (plain, `Result`, async) is `begin`, then either the stored value or
/// the body followed by [`Miss::store`]; they differ only in how the body runs.
///
/// A cold key is computed once: within the process, the first caller leads and the others
/// wait for its value ([`crate::flight`]); across processes, the leader takes the entry's
/// lock and looks again once it holds it ([`crate::lock`]).
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
    site: &'static Site,
    root: &'static Root,
    key: CallKey,
    path: PathBuf,
    started: Instant,
    // Field order is drop order: the flight ends after the lock is released.
    lock: Option<EntryLock>,
    /// `None` for a caller whose leader failed: it computes alongside the other waiters.
    leader: Option<Leader>,
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
    site: &'static Site,
    root: &'static Root,
    key: Option<CallKey>,
    /// The memory tier, when this call may use it.
    memory: Option<&'static Memory>,
    /// The entry's file: empty until the memory tier has missed (a memory hit needs none).
    path: PathBuf,
    /// Set once this caller leads the key's flight but has not taken the entry's lock.
    leader: Option<Leader>,
    _value: PhantomData<fn() -> T>,
}

/// What one step of a [`Pending`] lookup came to.
pub(crate) enum Step<T> {
    /// Done: a hit, a miss to compute, or a bypass.
    Ready(Lookup<T>),
    /// Another caller of this process computes the key: wait for it, then hand its outcome
    /// to [`Pending::followed`].
    Follow(Follower),
    /// Another process holds the entry's lock (non-blocking steps only): step again later.
    LockBusy,
}

impl<T: DeserializeOwned> Pending<T> {
    /// Starts a lookup; `None` when the call bypasses the cache.
    pub(crate) fn new(site: &'static Site, key: Option<CallKey>) -> Option<Pending<T>> {
        manage::answer_probe::<T>(site, key.as_ref());
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
    pub(crate) fn step(&mut self, block: bool) -> Step<T> {
        let Some(key) = &self.key else {
            return Step::Ready(Lookup::Bypass);
        };
        if self.leader.is_none() {
            // The memory tier first: a hit there waits for no other caller, takes no lock
            // and makes no system call.
            if let Some(memory) = self.memory {
                if let Some(value) = memory_hit(self.site, memory, key) {
                    return Step::Ready(Lookup::Hit(value));
                }
            }
            if self.path.as_os_str().is_empty() {
                self.path = entry_path(self.site, key);
                note_version(self.site, &self.path, false);
            }
            if let Some(value) = lookup(self.site, key, &self.path, self.memory) {
                return Step::Ready(Lookup::Hit(value));
            }
            if flight::computing_here(&key.key) {
                // Waiting for this flight would wait for ourselves, forever.
                log::debug!(
                    "file_cache: {}: computed by this caller already (its body calls it again \
                     with the same key); running that call uncached",
                    self.site.display_name()
                );
                return Step::Ready(Lookup::Bypass);
            }
            match flight::join(&key.key) {
                Joined::Follower(follower) => {
                    log::debug!(
                        "file_cache: waiting for {}, computed by another caller",
                        self.site.display_name()
                    );
                    return Step::Follow(follower);
                }
                Joined::Leader(leader) => self.leader = Some(leader),
            }
        }
        let mut lock = None;
        let root = self.root;
        if self.site.info.lock && root.locks() && root.access() == Access::ReadWrite {
            match lock::acquire(&self.path, block, config().faults) {
                Ok(Some(held)) => lock = Some(held),
                Ok(None) => return Step::LockBusy,
                Err(error) if error.kind() == io::ErrorKind::Unsupported => {
                    root.locks_failed(&error)
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
                    return Step::Ready(Lookup::Bypass);
                }
                // The directory cannot be written: the store will say so.
                Err(error) => log::debug!(
                    "file_cache: {}: cannot lock {} ({error})",
                    self.site.display_name(),
                    self.path.display()
                ),
            }
        }
        // Another caller may have stored the value since the first look: while we were
        // joining the flight, or while we waited for the lock.
        if let Some(value) = lookup(self.site, key, &self.path, self.memory) {
            return Step::Ready(Lookup::Hit(value));
        }
        // Only the caller that would compute asks the remote (under the entry's lock): its
        // hit is written locally, where the others find it.
        if config().mode != Mode::Refresh {
            if let Some(value) = crate::remote::lookup(self.site, key, &self.path) {
                return Step::Ready(Lookup::Hit(value));
            }
        }
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
            lock,
            leader: Some(leader),
        }))
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
            } if type_name == std::any::type_name::<T>() => {
                log::debug!(
                    "file_cache: hit {} (from another caller)",
                    self.site.display_name()
                );
                let codec = Codec::from_id(codec)?;
                codec::decode_with(codec, &payload).ok().map(Lookup::Hit)
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
                    lock: None,
                    leader: None,
                }))
            }
            _ => None,
        }
    }
}

impl Miss {
    /// Marks this key's body as running on the current thread while the guard lives, so
    /// that the body calling itself with the same key does not wait for itself.
    pub(crate) fn computing(&self) -> flight::Computing {
        flight::Computing::enter(&self.key.key)
    }

    /// The key this miss computes.
    pub(crate) fn key(&self) -> &Key {
        &self.key.key
    }

    /// Stores the body's value and hands it to callers waiting for it; problems are logged,
    /// never returned.
    pub(crate) fn store<T: Serialize + DeserializeOwned>(self, value: &T) {
        let payload = store(
            self.site,
            self.root,
            &self.key,
            &self.path,
            value,
            self.started.elapsed(),
        );
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
            }),
            None => leader.fail(),
        }
    }

    /// Ends a miss whose body failed (an `Err`): its waiters compute at once, for
    /// themselves, instead of queueing behind one another (see [`Outcome::Failed`]).
    pub(crate) fn fail(self) {
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
/// `call_async` is `match BeginFuture::new(site, key).await`, then as in [`call`]. A
/// dropped future (a cancelled call) drops its [`Miss`], which lets another caller compute.
pub(crate) struct BeginFuture<T> {
    /// `None` for a call that bypasses the cache.
    pending: Option<Pending<T>>,
    following: Option<Follower>,
    retry_after: Duration,
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
fn wake_after(delay: Duration, waker: Waker) {
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

pub(crate) fn entry_path(site: &'static Site, key: &CallKey) -> PathBuf {
    let dir = |self_ty| {
        let name = paths::function_dir_name(site.info.module_path, self_ty, site.info.name);
        site.root().join(name)
    };
    match key.self_ty {
        // A method's directory depends on `Self`, which may differ between calls.
        Some(ty) => paths::entry_path(&dir(Some(ty)), &key.key),
        // Built once; every hit runs this.
        None => paths::entry_path(site.state.dir.get_or_init(|| dir(None)), &key.key),
    }
}

/// The memory tier, when it is on for this function and this call reads the cache.
/// (`refresh` skips reading it; its store replaces the entry.)
fn memory_of(site: &'static Site) -> Option<&'static Memory> {
    // Expiry is decided from the file's creation time: a `ttl` function reads the file.
    if !site.info.memory || site.info.ttl.is_some() {
        return None;
    }
    memory::global()
}

/// Decodes the payload the memory tier holds for the key, as a file hit decodes its file.
fn memory_hit<T: DeserializeOwned>(
    site: &'static Site,
    memory: &Memory,
    key: &CallKey,
) -> Option<T> {
    if config().mode == Mode::Refresh {
        return None;
    }
    let (payload, meta) = memory.get(key.key.as_bytes())?;
    let decoded = match Codec::from_id(meta.codec) {
        Some(codec) => codec::decode_with(codec, &payload),
        None => Err(codec::Error::unknown(meta.codec)),
    };
    match decoded {
        Ok(value) => {
            log::debug!("file_cache: memory hit {}", site.display_name());
            // Counted like a file hit; the function's directory was noted when the entry
            // came into memory (the empty path notes nothing).
            stats::record_hit(site, Path::new(""), meta.file_len, meta.compute_us);
            if size_limit::is_bounded() {
                // Under a size bound a hit keeps its file recent, from memory too.
                size_limit::touch(&entry_path(site, key), key.key.as_bytes());
            }
            Some(value)
        }
        Err(_) => {
            // Bytes it held decoded once; another type under the same key cannot happen
            // (the key covers the function and its generic types), but stay safe.
            memory.remove(key.key.as_bytes());
            None
        }
    }
}

/// Reads, checks and decodes the entry, and keeps its payload in `memory`; `None` (logged)
/// for a miss of any kind.
fn lookup<T: DeserializeOwned>(
    site: &'static Site,
    key: &CallKey,
    path: &Path,
    memory: Option<&Memory>,
) -> Option<T> {
    if config().mode == Mode::Refresh {
        log::debug!("file_cache: refresh {}", site.display_name());
        return None;
    }
    let guess = site.state.entry_len.load(Ordering::Relaxed);
    // A fresh process knows no size yet (0): the entry may be large, so a vector of numbers
    // takes the path whose first read is a `stat` too.
    // (Only postcard stores a flat vector as its elements' bytes.)
    #[cfg(unix)]
    if (guess == 0 || guess > read::SMALL_READ) && site.codec() == Codec::Postcard {
        if let Some(kind) = flat::kind::<T>() {
            // A large vector of numbers, read straight into its memory.
            let layout = layout::of::<T>(site);
            let found = flat::with_element!(kind, E => {
                lookup_flat::<E>(site, key, path, memory, &layout, std::any::type_name::<T>())
                    .map(flat::into_value::<T, E>)
            });
            return match found {
                Found::Hit(value) => Some(value),
                Found::Miss => None,
                Found::Whole(bytes, file_id) => {
                    lookup_bytes(site, key, path, memory, &bytes, file_id)
                }
            };
        }
    }
    let (bytes, file_id) = match read::read_with_id(path, guess) {
        Ok(Some(read)) => read,
        Ok(None) => {
            log::debug!("file_cache: miss {}", site.display_name());
            return None;
        }
        Err(error) => {
            warn_read_failure(site, path, &error);
            return None;
        }
    };
    lookup_bytes(site, key, path, memory, &bytes, file_id)
}

/// [`lookup`] once the entry's bytes are read (from the file `file_id`).
fn lookup_bytes<T: DeserializeOwned>(
    site: &'static Site,
    key: &CallKey,
    path: &Path,
    memory: Option<&Memory>,
    bytes: &[u8],
    file_id: Option<FileId>,
) -> Option<T> {
    note_entry_len(site, bytes.len());
    if is_expired(site, bytes) {
        log::debug!("file_cache: expired {}", site.display_name());
        return None;
    }
    match decode_entry_from(bytes, file_id, key, &layout::of::<T>(site)) {
        Ok(value) => {
            let meta = note_hit(site, key, path, bytes, bytes.len() as u64);
            let payload = entry::payload(bytes);
            keep_in_memory(memory, key, meta, payload.len(), || Cow::Borrowed(payload));
            Some(value)
        }
        Err(reason) => {
            warn_bad_entry(site, path, &reason);
            None
        }
    }
}

/// What a lookup of a flat vector found.
#[cfg(unix)]
enum Found<V> {
    Hit(V),
    Miss,
    /// The entry, read whole: not the flat vector expected (the usual checks say why).
    Whole(Vec<u8>, Option<FileId>),
}

#[cfg(unix)]
impl<V> Found<V> {
    fn map<W>(self, f: impl FnOnce(V) -> W) -> Found<W> {
        match self {
            Found::Hit(value) => Found::Hit(f(value)),
            Found::Miss => Found::Miss,
            Found::Whole(bytes, id) => Found::Whole(bytes, id),
        }
    }
}

/// [`lookup`] for a value of type `type_name` that is a `Vec<E>` (see `codec::flat`): the
/// same checks, on an entry read in two parts, and the same bookkeeping.
#[cfg(unix)]
fn lookup_flat<E: flat::Element>(
    site: &'static Site,
    key: &CallKey,
    path: &Path,
    memory: Option<&Memory>,
    layout: &Fingerprint,
    type_name: &str,
) -> Found<Vec<E>> {
    let header_len = entry::header_len(type_name);
    let (head, values, file_id) = match read::read_flat::<E>(path, header_len) {
        Ok(Some(read::FlatRead::Split { head, values, id })) => (head, values, id),
        Ok(Some(read::FlatRead::Whole(bytes, id))) => return Found::Whole(bytes, id),
        Ok(None) => {
            log::debug!("file_cache: miss {}", site.display_name());
            return Found::Miss;
        }
        Err(error) => {
            warn_read_failure(site, path, &error);
            return Found::Miss;
        }
    };
    let elements = flat::bytes_of(&values);
    if entry::peek_codec(&head) != Some(codec::POSTCARD) {
        // Another codec's entry: its payload is not the elements' bytes.
        return Found::Whole([&head[..], elements].concat(), file_id);
    }
    note_entry_len(site, head.len() + elements.len());
    if is_expired(site, &head) {
        log::debug!("file_cache: expired {}", site.display_name());
        return Found::Miss;
    }
    let checked = entry::parse_parts(&head, elements, file_id)
        .map_err(|e| e.to_string())
        .and_then(|header| check_header(&header, key, layout, type_name))
        .and_then(|_postcard| match flat::take_varint(&head[header_len..]) {
            Some((count, _)) if count == values.len() as u64 => Ok(()),
            _ => Err("its value does not decode: a length that does not fit".to_owned()),
        });
    match checked {
        Ok(()) => {
            log::debug!(
                "file_cache: {} read straight into a `{type_name}`",
                site.display_name()
            );
            let meta = note_hit(site, key, path, &head, (head.len() + elements.len()) as u64);
            let payload_len = head.len() - header_len + elements.len();
            keep_in_memory(memory, key, meta, payload_len, || {
                Cow::Owned([&head[header_len..], elements].concat())
            });
            Found::Hit(values)
        }
        Err(reason) => {
            warn_bad_entry(site, path, &reason);
            Found::Miss
        }
    }
}

/// Remembers the length of the entry last read, the next read's first guess.
fn note_entry_len(site: &Site, len: usize) {
    if site.state.entry_len.load(Ordering::Relaxed) != len {
        site.state.entry_len.store(len, Ordering::Relaxed);
    }
}

/// The bookkeeping of a file hit: stats and the size bound's recency. `head` starts the
/// entry, which is `file_len` bytes long. Returns what the memory tier records with it.
fn note_hit(
    site: &'static Site,
    key: &CallKey,
    path: &Path,
    head: &[u8],
    file_len: u64,
) -> memory::Meta {
    log::debug!("file_cache: hit {}", site.display_name());
    let saved_us = entry::peek_times(head).map_or(0, |(_, compute_us)| compute_us);
    stats::record_hit(site, path, file_len, saved_us);
    size_limit::touch(path, key.key.as_bytes());
    memory::Meta {
        compute_us: saved_us,
        file_len,
        codec: entry::peek_codec(head).unwrap_or(0),
    }
}

/// Keeps a file hit's payload of `len` bytes in `memory`, built by `payload` only when
/// the tier keeps payloads that big (a bigger one drops what the tier held for the key).
fn keep_in_memory<'a>(
    memory: Option<&Memory>,
    key: &CallKey,
    meta: memory::Meta,
    len: usize,
    payload: impl FnOnce() -> Cow<'a, [u8]>,
) {
    if let Some(memory) = memory {
        if memory.keeps(len) {
            memory.insert(key.key.as_bytes(), &payload(), meta);
        } else {
            memory.remove(key.key.as_bytes());
        }
    }
}

fn warn_read_failure(site: &Site, path: &Path, error: &io::Error) {
    site.warn_once(Problem::Read, || {
        format!(
            "{}: cannot read {} ({error}); calling without the cache",
            site.display_name(),
            path.display()
        )
    });
}

fn warn_bad_entry(site: &Site, path: &Path, reason: &str) {
    site.warn_once(Problem::BadEntry, || {
        format!(
            "{}: unusable entry {} ({reason}); recomputing and rewriting it",
            site.display_name(),
            path.display()
        )
    });
}

pub(crate) fn decode_entry<T: DeserializeOwned>(
    bytes: &[u8],
    key: &CallKey,
    layout: &Fingerprint,
) -> Result<T, String> {
    decode_entry_from(bytes, None, key, layout)
}

/// [`decode_entry`] for bytes read from the file `id` (see [`entry::parse_from`]).
fn decode_entry_from<T: DeserializeOwned>(
    bytes: &[u8],
    id: Option<FileId>,
    key: &CallKey,
    layout: &Fingerprint,
) -> Result<T, String> {
    let (header, payload) = entry::parse_from(bytes, id).map_err(|e| e.to_string())?;
    let codec = check_header(&header, key, layout, std::any::type_name::<T>())?;
    codec::decode_with(codec, payload).map_err(|e| format!("its value does not decode: {e}"))
}

/// Whether a checked header is the entry of `key` for a value of type `expected` of
/// layout `layout`, in a codec this version reads: that codec.
fn check_header(
    header: &Header<'_>,
    key: &CallKey,
    layout: &Fingerprint,
    expected: &str,
) -> Result<Codec, String> {
    if header.key != *key.key.as_bytes() {
        return Err("it holds another key".to_owned());
    }
    let Some(codec) = Codec::from_id(header.codec) else {
        return Err(format!("unknown codec {}", header.codec));
    };
    if header.type_name != expected {
        return Err(format!(
            "it holds a `{}`, not a `{expected}`",
            header.type_name
        ));
    }
    // postcard bytes carry no names: bytes of an older layout could decode, wrongly.
    if header.layout != *layout {
        return Err(format!(
            "the layout of `{expected}` changed since it was written"
        ));
    }
    Ok(codec)
}

/// Whether the entry in `bytes` is older than the site's `ttl`. Read from the header before
/// it is checked: a damaged time can only cause a miss, and the full check follows.
pub(crate) fn is_expired(site: &Site, bytes: &[u8]) -> bool {
    let Some(ttl) = site.info.ttl else {
        return false;
    };
    let Some((created_ms, _)) = entry::peek_times(bytes) else {
        return false;
    };
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let now = unix_millis();
    if created_ms > now.saturating_add(FUTURE_TOLERANCE_MS) {
        // Written by a clock that is ahead: its age cannot be known, and reading it as zero
        // would keep the entry fresh past its ttl by however far that clock was ahead.
        return true;
    }
    now.saturating_sub(created_ms) >= ttl_ms
}

/// How far in the future an entry's creation time may be (clocks of machines sharing a
/// remote tier, or a clock stepped back) before the entry counts as expired.
const FUTURE_TOLERANCE_MS: u64 = 2_000;

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
            && decode_entry::<T>(&bytes, key, &layout::of::<T>(site)).is_ok();
        if usable {
            return true;
        }
    }
    crate::remote::would_hit::<T>(site, key, &path)
}

/// Runs the whole decoder on untrusted bytes: [`entry::parse`], then the codec, as a few
/// value types of every shape, on the parsed payload and on the raw bytes (which, unlike a
/// mutated entry, reach the codec without a valid checksum). Returns how many decodes
/// succeeded. For the fuzz target and the decoder's property tests only.
#[doc(hidden)]
pub fn decode_untrusted(bytes: &[u8]) -> usize {
    let from_entry = match entry::parse(bytes) {
        Ok((_, payload)) => 1 + codec::decode_samples(payload),
        Err(_) => 0,
    };
    from_entry + codec::decode_samples(bytes)
}

/// Encodes and writes the entry; problems are logged, never returned. Returns the encoded
/// value and its codec's id unless it cannot be cached at all.
fn store<T>(
    site: &'static Site,
    root: &Root,
    key: &CallKey,
    path: &Path,
    value: &T,
    took: Duration,
) -> Option<(u8, Vec<u8>)>
where
    T: Serialize + DeserializeOwned,
{
    let type_name = std::any::type_name::<T>();
    let (codec, payload) = encode_value(site, value)?;
    let compute_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    let header = Header {
        codec: codec.id(),
        key: *key.key.as_bytes(),
        code_hash: site.info.code_hash,
        layout: layout::of::<T>(site),
        created_ms: unix_millis(),
        compute_us,
        type_name,
    };
    let header = match header.encode(&payload) {
        Ok(header) => header,
        Err(error) => {
            refuse::<T>(site, error.to_string());
            return None;
        }
    };
    if root.access() != Access::ReadWrite {
        // Said once, when the root was checked.
        return Some((codec.id(), payload));
    }
    let len = (header.len() + payload.len()) as u64;
    if !size_limit::admit(path, len) {
        return Some((codec.id(), payload));
    }
    site.state
        .entry_len
        .store(header.len() + payload.len(), Ordering::Relaxed);
    match crate::disk::write::write_atomic(path, &[&header, &payload]) {
        Ok(()) => {
            log::debug!("file_cache: stored {}", site.display_name());
            stats::record_store(site, len);
            size_limit::stored(path, len);
            note_version(site, path, true);
            if let Some(memory) = memory_of(site) {
                stats::note_dir(site, path);
                let meta = memory::Meta {
                    compute_us,
                    file_len: len,
                    codec: codec.id(),
                };
                memory.insert(key.key.as_bytes(), &payload, meta);
            }
        }
        Err(error) => warn_write_failure(site, path, &error),
    }
    crate::remote::store(path, &[&header, &payload]);
    Some((codec.id(), payload))
}

/// Encodes a value with the site's codec, and checks that it round-trips; a value that
/// does not is encoded with the other codec. A value postcard cannot hold is so stored as
/// MessagePack, and the site stores with MessagePack from then on. `None` when this value
/// cannot be stored (its own `Serialize` failed: logged) or no codec holds it (the site is
/// then marked uncacheable).
fn encode_value<T>(site: &'static Site, value: &T) -> Option<(Codec, Vec<u8>)>
where
    T: Serialize + DeserializeOwned,
{
    let first = site.codec();
    let first_failed = match encode_checked(site, first, value)? {
        Ok(payload) => return Some((first, payload)),
        Err(reason) => reason,
    };
    let other = match first {
        Codec::Postcard => Codec::MessagePack,
        Codec::MessagePack => Codec::Postcard,
    };
    match encode_checked(site, other, value)? {
        Ok(payload) => {
            if other == Codec::MessagePack {
                site.switch_codec(other);
                log::debug!(
                    "file_cache: {}: values of type `{}` do not round-trip through postcard \
                     ({first_failed}); stored as {} from now on",
                    site.display_name(),
                    std::any::type_name::<T>(),
                    other.name()
                );
            }
            Some((other, payload))
        }
        Err(reason) => {
            refuse::<T>(
                site,
                format!(
                    "{}: {first_failed}; {}: {reason}",
                    first.name(),
                    other.name()
                ),
            );
            None
        }
    }
}

/// Encodes `value` with `codec` and checks that it round-trips: `Ok(Ok(payload))`,
/// `Ok(Err(why))` when `codec` cannot hold it, `None` (logged) when the value's own
/// `Serialize` impl failed.
fn encode_checked<T>(
    site: &'static Site,
    codec: Codec,
    value: &T,
) -> Option<Result<Vec<u8>, String>>
where
    T: Serialize + DeserializeOwned,
{
    let payload = match codec::encode_with(codec, value) {
        Ok(payload) => payload,
        Err(error) => match codec::own_error(value) {
            // This value only: the function's other values may well serialize.
            Some(own) => {
                site.warn_once(Problem::Encode, || {
                    format!(
                        "{}: a value of type `{}` cannot be serialized ({own}); that call's \
                         result is not stored, the function's other results still are",
                        site.display_name(),
                        std::any::type_name::<T>()
                    )
                });
                return None;
            }
            None => return Some(Err(format!("it does not encode: {error}"))),
        },
    };
    Some(codec::round_trips(codec, value, &payload).map(|()| payload))
}

/// Marks the site as one whose values of type `T` cannot be cached, for `reason`, and says
/// so once.
fn refuse<T: ?Sized>(site: &'static Site, reason: String) {
    let message = format!(
        "{}: values of type `{}` cannot be cached ({reason}); no codec gives back the value \
         that was stored (do its `Serialize` and `Deserialize` agree?). The function keeps \
         working, uncached",
        site.display_name(),
        std::any::type_name::<T>()
    );
    site.set_uncacheable(reason, || message);
}

/// A root that cannot be written usually fails every function alike: warn once per process.
pub(crate) fn warn_write_failure(site: &Site, path: &Path, error: &std::io::Error) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    let message = format!(
        "file_cache: {}: cannot write {} ({error}); results are not being cached",
        site.display_name(),
        path.display()
    );
    if WARNED.swap(true, Ordering::Relaxed) {
        log::debug!("{message}");
    } else {
        log::warn!("{message}");
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Records the site's code hash as its function's current version in the directory of the
/// entry at `path`: on a site's first lookup of the process, and on every store into a
/// directory not seen before (a method has one directory per `Self` type).
fn note_version(site: &'static Site, path: &Path, storing: bool) {
    let first_lookup = !site.state.stats.version_noted.swap(true, Ordering::Relaxed);
    if first_lookup {
        stats::note_dir(site, path);
    }
    if !(first_lookup || storing) {
        return;
    }
    if let Some(dir) = path.parent().and_then(Path::parent) {
        versions::note(dir, &site.info.code_hash, storing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> CallKey {
        CallKey {
            key: Key([byte; 32]),
            self_ty: None,
        }
    }

    const LAYOUT: Fingerprint = [5; 16];

    fn entry_file(key: u8, codec: u8, type_name: &str, payload: &[u8]) -> Vec<u8> {
        entry_with_layout(key, codec, type_name, payload, LAYOUT)
    }

    fn entry_with_layout(
        key: u8,
        codec: u8,
        type_name: &str,
        payload: &[u8],
        layout: Fingerprint,
    ) -> Vec<u8> {
        let header = Header {
            codec,
            key: [key; 32],
            code_hash: [0; 32],
            layout,
            created_ms: 0,
            compute_us: 0,
            type_name,
        };
        let mut bytes = header.encode(payload).unwrap();
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn a_good_entry_decodes() {
        let payload = codec::encode(&vec![1u64, 2, 3]).unwrap();
        let file = entry_file(1, codec::POSTCARD, "alloc::vec::Vec<u64>", &payload);
        assert_eq!(
            decode_entry::<Vec<u64>>(&file, &key(1), &LAYOUT),
            Ok(vec![1, 2, 3])
        );
    }

    #[test]
    fn an_entry_for_something_else_is_refused_before_decoding() {
        let payload = codec::encode(&7u64).unwrap();
        let other_key = entry_file(2, codec::POSTCARD, "u64", &payload);
        assert_eq!(
            decode_entry::<u64>(&other_key, &key(1), &LAYOUT),
            Err("it holds another key".to_owned())
        );
        let other_codec = entry_file(1, 9, "u64", &payload);
        assert_eq!(
            decode_entry::<u64>(&other_codec, &key(1), &LAYOUT),
            Err("unknown codec 9".to_owned())
        );
        let other_type = entry_file(1, codec::POSTCARD, "i64", &payload);
        assert_eq!(
            decode_entry::<u64>(&other_type, &key(1), &LAYOUT),
            Err("it holds a `i64`, not a `u64`".to_owned())
        );
    }

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Reply {
        id: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        usage: Option<u32>,
    }

    #[test]
    fn a_messagepack_entry_decodes_with_the_codec_its_header_names() {
        let value = Reply { id: 3, usage: None };
        let payload = codec::encode_with(Codec::MessagePack, &value).unwrap();
        let type_name = std::any::type_name::<Reply>();
        let file = entry_file(1, codec::MSGPACK, type_name, &payload);
        assert_eq!(decode_entry::<Reply>(&file, &key(1), &LAYOUT), Ok(value));
        // The same bytes under postcard's id do not decode.
        let file = entry_file(1, codec::POSTCARD, type_name, &payload);
        assert!(decode_entry::<Reply>(&file, &key(1), &LAYOUT).is_err());
    }

    #[test]
    fn a_messagepack_entry_keeps_every_check() {
        let payload =
            codec::encode_with(Codec::MessagePack, &Reply { id: 3, usage: None }).unwrap();
        let type_name = std::any::type_name::<Reply>();
        let mut file = entry_file(1, codec::MSGPACK, type_name, &payload);
        let last = file.len() - 1;
        file[last] ^= 1;
        assert_eq!(
            decode_entry::<Reply>(&file, &key(1), &LAYOUT),
            Err("payload checksum mismatch".to_owned())
        );
        let file = entry_with_layout(1, codec::MSGPACK, type_name, &payload, [6; 16]);
        assert_eq!(
            decode_entry::<Reply>(&file, &key(1), &LAYOUT),
            Err(format!(
                "the layout of `{type_name}` changed since it was written"
            ))
        );
        let file = entry_file(2, codec::MSGPACK, type_name, &payload);
        assert!(decode_entry::<Reply>(&file, &key(1), &LAYOUT).is_err());
    }

    struct Woken(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Woken {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll<T: DeserializeOwned>(
        future: &mut BeginFuture<T>,
        woken: &std::sync::Arc<Woken>,
    ) -> Poll<Lookup<T>> {
        let waker = Waker::from(std::sync::Arc::clone(woken));
        Pin::new(future).poll(&mut Context::from_waker(&waker))
    }

    fn wait_until_woken(woken: &Woken, times: usize) {
        while woken.0.load(Ordering::SeqCst) < times {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn unique_key() -> CallKey {
        let mut hasher = KeyHasher::new();
        hasher.write_label(&format!("{:?}{}", Instant::now(), std::process::id()));
        CallKey {
            key: hasher.finish(),
            self_ty: None,
        }
    }

    static ASYNC_SITE: Site = Site::new(crate::site::SiteInfo {
        module_path: "unit",
        name: "async_waits",
        ..crate::site::SiteInfo::DEFAULT
    });

    #[test]
    fn async_lookups_wait_for_a_lock_and_a_flight_without_blocking() {
        let woken = std::sync::Arc::new(Woken(std::sync::atomic::AtomicUsize::new(0)));
        // Another process holds the entry's lock: pending, then woken to try again.
        let key = unique_key();
        let path = entry_path(&ASYNC_SITE, &key);
        let other_process = lock::acquire(&path, true, Default::default()).unwrap();
        let mut future = BeginFuture::<u64>::new(&ASYNC_SITE, Some(key));
        assert!(poll(&mut future, &woken).is_pending());
        drop(other_process);
        wait_until_woken(&woken, 1);
        let Poll::Ready(Lookup::Miss(miss)) = poll(&mut future, &woken) else {
            panic!("the lock is free: a miss")
        };
        // This caller leads; an async caller of the same key follows it.
        let again = CallKey {
            key: miss.key.key,
            self_ty: None,
        };
        let mut follower = BeginFuture::<u64>::new(&ASYNC_SITE, Some(again));
        assert!(poll(&mut follower, &woken).is_pending());
        let before = woken.0.load(Ordering::SeqCst);
        miss.store(&42u64);
        wait_until_woken(&woken, before + 1);
        assert!(matches!(
            poll(&mut follower, &woken),
            Poll::Ready(Lookup::Hit(42))
        ));
    }

    static MEMORY_SITE: Site = Site::new(crate::site::SiteInfo {
        module_path: "unit",
        name: "memory_first",
        ..crate::site::SiteInfo::DEFAULT
    });

    #[test]
    fn a_memory_hit_waits_for_no_flight_and_no_lock_and_reads_no_file() {
        if memory::global().is_none() {
            return; // FILE_CACHE_MEMORY=0
        }
        let woken = std::sync::Arc::new(Woken(std::sync::atomic::AtomicUsize::new(0)));
        let key = unique_key();
        let again = |key: &CallKey| CallKey {
            key: key.key,
            self_ty: None,
        };
        let path = entry_path(&MEMORY_SITE, &key);
        let Lookup::Miss(miss) = Lookup::<u64>::begin(&MEMORY_SITE, Some(again(&key))) else {
            panic!("a new key: a miss")
        };
        miss.store(&7u64);
        // Another caller of this process leads a flight for the key, another process holds
        // its lock, and the file is gone: the memory tier answers all the same, at once.
        let Joined::Leader(flight) = flight::join(&key.key) else {
            panic!("nobody else computes this key")
        };
        let other_process = lock::acquire(&path, true, Default::default()).unwrap();
        std::fs::remove_file(&path).unwrap();
        let mut future = BeginFuture::<u64>::new(&MEMORY_SITE, Some(again(&key)));
        assert!(matches!(
            poll(&mut future, &woken),
            Poll::Ready(Lookup::Hit(7))
        ));
        assert!(matches!(
            Lookup::<u64>::begin(&MEMORY_SITE, Some(key)),
            Lookup::Hit(7)
        ));
        drop((other_process, flight));
    }

    #[test]
    fn a_payload_that_does_not_decode_is_refused() {
        // Checksums are right; the bytes are not a `u64` (an overlong varint).
        let file = entry_file(1, codec::POSTCARD, "u64", &[0xff; 11]);
        let error = decode_entry::<u64>(&file, &key(1), &LAYOUT).unwrap_err();
        assert!(error.starts_with("its value does not decode"), "{error}");
        // A length prefix far larger than the file: refused without allocating it.
        let file = entry_file(
            1,
            codec::POSTCARD,
            "alloc::vec::Vec<u64>",
            &[0xff, 0xff, 0xff, 0xff, 0x0f],
        );
        assert!(decode_entry::<Vec<u64>>(&file, &key(1), &LAYOUT).is_err());
    }

    mod old {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        pub struct Hit {
            pub score: f32,
            pub id: u32,
        }
    }

    mod new {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        pub struct Hit {
            pub id: u32,
            pub score: f32,
        }
    }

    #[test]
    fn an_entry_of_another_layout_is_refused_and_never_decoded() {
        let payload = codec::encode(&old::Hit { score: 0.5, id: 7 }).unwrap();
        // What the check prevents: the old bytes decode, into a wrong value.
        let wrong: new::Hit = codec::decode(&payload).unwrap();
        assert_ne!(wrong, new::Hit { id: 7, score: 0.5 });
        let written = layout::trace::<old::Hit>().unwrap();
        let expected = layout::trace::<new::Hit>().unwrap();
        let type_name = std::any::type_name::<new::Hit>();
        let file = entry_with_layout(1, codec::POSTCARD, type_name, &payload, written);
        assert_eq!(
            decode_entry::<new::Hit>(&file, &key(1), &expected),
            Err(format!(
                "the layout of `{type_name}` changed since it was written"
            ))
        );
    }
}
