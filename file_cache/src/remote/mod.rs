//! The remote tier: a store shared by machines (Redis, or S3-compatible object storage)
//! behind the local files. It moves verified bytes: it never decodes a value and knows
//! nothing of calls (the call path checks what it fetches exactly as it checks a local
//! file).
//!
//! Local first: on a local miss the remote is asked; a remote hit is checked exactly like a
//! local file and written to the local tier (off the call's path); a computed value is
//! written to both. The
//! remote holds the bytes of a local entry, named `<function dir>/<key hex>`, followed by a
//! signature (a keyed blake3 MAC) when `FILE_CACHE_REMOTE_SECRET` is set. An entry whose
//! payload is 4 KiB or more is sent with its payload compressed (zstd) when that saves an
//! eighth of it (see `compress`); a fetched object is made plain again before anything
//! checks it, so the local copy of a remote hit is a plain entry.
//!
//! Nothing here can fail a call: every remote error is a miss, the first is logged as a
//! warning, and after 3 failures in a row the remote is skipped for a while
//! (`FILE_CACHE_REMOTE_RETRY_S`), then probed again.
//!
//! Configure with `FILE_CACHE_REMOTE` (and the variables below), or with [`set`] before
//! the first cached call (the guide's [remote tier](crate::guide::remote) page tells how it
//! behaves and what to trust):
//!
//! | variable | meaning |
//! |---|---|
//! | `FILE_CACHE_REMOTE` | `redis://[:password@]host:port/db`, `rediss://...` (TLS) or `s3://bucket/prefix` |
//! | `FILE_CACHE_REMOTE_SECRET` | sign entries, refuse unsigned or wrongly signed ones |
//! | `FILE_CACHE_REMOTE_CA` | a PEM file of the CAs the server's certificate must chain to (`rediss://`, S3 over HTTPS), instead of the system's roots |
//! | `FILE_CACHE_REMOTE_TTL` | how long an entry lives on the remote (`30d`, `12h`; default: no expiry): Redis expires the key, an older S3 object is a miss |
//! | `FILE_CACHE_REMOTE_TIMEOUT_MS` | longest wait to connect or for the next bytes (default 200) |
//! | `FILE_CACHE_REMOTE_RETRY_S` | how long a failing remote is skipped (default 30) |
//! | `FILE_CACHE_REMOTE_WRITE` | `background` (default), `sync` or `off` (read only; `FILE_CACHE_READONLY=1` makes it `off`) |
//! | `FILE_CACHE_REMOTE_COMPRESS` | `off`: send entries uncompressed (default on: payloads of 4 KiB or more, with zstd, when that saves an eighth; compressed entries are read either way) |
//! | `FILE_CACHE_REMOTE_EXIT_WAIT` | seconds a thread that queued background uploads waits for them as it ends, the main thread at exit (default 5; 0: no wait) |
//!
//! Background uploads still queued when the program ends (`main` returns, or it calls
//! `std::process::exit`) are sent first, for at most `FILE_CACHE_REMOTE_EXIT_WAIT`: a
//! silent remote delays exit by that much at most. Uploads dropped because the queue was
//! full, or given up at that deadline, are counted in
//! [`FunctionStats::uploads_dropped`](crate::FunctionStats::uploads_dropped), and the first
//! of the process is a warning. The wait is made by the thread that queued the uploads
//! (a thread-local's destructor): a program whose cached calls ran on other threads, such
//! as a pool's that outlive `main`, calls [`flush`] before it ends.

mod admin;
mod backend;
mod breaker;
mod compress;
mod config;
mod mac;
#[cfg(feature = "remote-redis")]
mod redis;
#[cfg(feature = "remote-s3")]
mod s3;
mod upload;

pub use admin::{clear, list, prune, Prune, PruneReason, RemoteEntry};
pub use compress::COMPRESS_VAR;
pub use config::{
    set, Remote, RemoteError, Writes, CA_VAR, EXIT_WAIT_VAR, REMOTE_VAR, RETRY_VAR, SECRET_VAR,
    TIMEOUT_VAR, TTL_VAR, WRITE_VAR,
};

use backend::Backend;
use breaker::{Breaker, Tripped};
use config::{chosen, redact, DEFAULT_TIMEOUT, MAX_SETTING};
use mac::Mac;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The configured remote, connected lazily.
struct Tier {
    backend: Box<dyn Backend>,
    mac: Option<Mac>,
    /// Whether uploads are compressed (`FILE_CACHE_REMOTE_COMPRESS`).
    compress: bool,
    breaker: Breaker,
    writes: Writes,
    uploads: upload::Queue,
    /// How long a thread that queued uploads waits for them as it ends.
    exit_wait: Duration,
    /// The same store with [`ADMIN_TIMEOUT`], for [`list`] and [`clear`]; opened on use.
    admin: OnceLock<Result<Box<dyn Backend>, RemoteError>>,
    url: String,
    ca: Option<PathBuf>,
    ttl: Option<Duration>,
}

fn tier() -> Option<&'static Tier> {
    static TIER: OnceLock<Option<Tier>> = OnceLock::new();
    TIER.get_or_init(|| {
        let remote = chosen()?;
        match connect(remote) {
            Ok(tier) => {
                log::debug!("file_cache: remote tier {}", tier.backend.describe());
                Some(tier)
            }
            Err(error) => {
                log::warn!("file_cache: {error}; continuing with the local cache only");
                None
            }
        }
    })
    .as_ref()
}

fn connect(remote: &Remote) -> Result<Tier, RemoteError> {
    if remote.secret.as_ref().is_some_and(Vec::is_empty) {
        return Err(RemoteError::BadSetting(format!(
            "{SECRET_VAR} is set but empty: the remote tier stays off rather than run unsigned"
        )));
    }
    Ok(Tier {
        backend: open_backend(
            &remote.url,
            remote.timeout.min(MAX_SETTING),
            remote.ca.as_deref(),
            remote.ttl,
        )?,
        mac: remote.secret.as_deref().map(Mac::new),
        compress: compress::enabled_by_env(),
        breaker: Breaker::new(remote.retry_after.min(MAX_SETTING)),
        // A read-only cache writes nowhere, the remote included.
        writes: if crate::config::config().read_only {
            Writes::Off
        } else {
            remote.writes
        },
        uploads: upload::Queue::default(),
        exit_wait: remote.exit_wait,
        admin: OnceLock::new(),
        url: remote.url.clone(),
        ca: remote.ca.clone(),
        ttl: remote.ttl,
    })
}

/// The backend `url` names; `ca` is [`Remote::ca`], `ttl` [`Remote::ttl`].
fn open_backend(
    url: &str,
    timeout: Duration,
    ca: Option<&Path>,
    ttl: Option<Duration>,
) -> Result<Box<dyn Backend>, RemoteError> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        #[cfg(feature = "remote-redis")]
        Some("redis" | "rediss" | "redis+unix" | "unix") => {
            Ok(Box::new(redis::Redis::open(url, timeout, ca, ttl)?))
        }
        #[cfg(feature = "remote-s3")]
        Some("s3") => Ok(Box::new(s3::S3::open(url, timeout, ca, ttl)?)),
        #[cfg(not(feature = "remote-redis"))]
        Some("redis" | "rediss") => Err(RemoteError::BadUrl(format!(
            "{}: this build has no Redis support (feature `remote-redis`)",
            redact(url)
        ))),
        #[cfg(not(feature = "remote-s3"))]
        Some("s3") => Err(RemoteError::BadUrl(format!(
            "{}: this build has no S3 support (feature `remote-s3`)",
            redact(url)
        ))),
        _ => Err(RemoteError::BadUrl(format!(
            "{}: expected redis://host:port/db or s3://bucket/prefix",
            redact(url)
        ))),
    }
}

/// The remote name of the entry at `path` (`<root>/<function dir>/<shard>/<key hex>`).
fn remote_name(path: &Path) -> Option<String> {
    let hex = path.file_name()?.to_str()?;
    let dir = path.parent()?.parent()?.file_name()?.to_str()?;
    Some(format!("{dir}/{hex}"))
}

impl Tier {
    fn timeout(&self) -> Duration {
        chosen().map_or(DEFAULT_TIMEOUT, |remote| remote.timeout)
    }

    /// Runs one request unless the breaker is open; failures are logged and counted.
    fn guarded<R>(
        &self,
        what: &str,
        request: impl FnOnce() -> Result<R, RemoteError>,
    ) -> Option<R> {
        if !self.breaker.allow(Instant::now()) {
            return None;
        }
        match request() {
            Ok(result) => {
                if self.breaker.success() {
                    log::info!(
                        "file_cache: remote {} answers again",
                        self.backend.describe()
                    );
                }
                Some(result)
            }
            Err(error) => {
                self.failed(what, &error);
                None
            }
        }
    }

    fn failed(&self, what: &str, error: &RemoteError) {
        static WARNED: AtomicBool = AtomicBool::new(false);
        let tripped = self.breaker.failure(Instant::now());
        let message = format!(
            "file_cache: remote {} failed to {what} ({error}); continuing with the local cache only",
            self.backend.describe()
        );
        if WARNED.swap(true, Ordering::Relaxed) {
            log::debug!("{message}");
        } else {
            log::warn!("{message}");
        }
        if tripped == Tripped::Now {
            log::debug!(
                "file_cache: remote {} skipped after {} failures in a row",
                self.backend.describe(),
                breaker::THRESHOLD
            );
        }
    }

    /// Stores the entry `entry` as `name`, compressed and signed as configured; see
    /// [`Tier::put`].
    fn send(&self, name: &str, entry: &[u8], function_dir: &Path) {
        let compressed = if self.compress {
            compress::compress(entry)
        } else {
            None
        };
        let entry = compressed.as_deref().unwrap_or(entry);
        match &self.mac {
            Some(mac) => self.put(name, &mac.seal(name, entry), function_dir),
            None => self.put(name, entry, function_dir),
        }
    }

    /// Stores `object` as `name`, an entry of the function whose directory is
    /// `function_dir` (what counts the upload in the statistics).
    fn put(&self, name: &str, object: &[u8], function_dir: &Path) {
        if self
            .guarded("store", || self.backend.put(name, object))
            .is_some()
        {
            log::debug!("file_cache: remote stored {name}");
            upload::uploaded(function_dir, object.len());
        }
    }
}

/// What the remote holds for an entry, before any check of the entry itself.
pub(crate) enum Fetched {
    /// The entry's bytes, with its signature checked and removed when entries are signed,
    /// and its payload decompressed when it was stored compressed: a plain entry (not
    /// checked yet beyond the checksums of what was stored).
    Entry(Vec<u8>),
    /// An object that is not a usable entry (unsigned, wrongly signed), and why.
    Refused(String),
}

/// Asks the remote for the entry at `path` after a local miss: the object named `name`
/// (see [`remote_name`]) and what it holds; `None` when there is no remote, no object, or
/// the remote failed (logged, and counted by the breaker), and how many bytes were fetched
/// (the stored object: compressed, signature included). The caller checks the entry: this
/// tier moves bytes and never decodes.
pub(crate) fn fetch(path: &Path) -> Option<(String, Fetched, u64)> {
    let tier = tier()?;
    let name = remote_name(path)?;
    let object = tier.guarded("read", || tier.backend.get(&name))??;
    let fetched_len = object.len() as u64;
    let fetched = match mac::open(tier.mac.as_ref(), &name, object) {
        Ok(entry) if crate::entry::peek_compressed(&entry) => match compress::decompress(&entry) {
            Ok(plain) => Fetched::Entry(plain),
            Err(error) => Fetched::Refused(error.to_string()),
        },
        Ok(entry) => Fetched::Entry(entry),
        Err(refused) => Fetched::Refused(refused.to_string()),
    };
    Some((name, fetched, fetched_len))
}

/// Has `hook` called with the function directory of every upload dropped or given up (for
/// the statistics, which sit above this tier); the first hook set stays.
pub(crate) fn on_dropped(hook: fn(&Path)) {
    upload::on_dropped(hook);
}

/// Has `hook` called with the function directory and the size of every object the remote
/// stored, in the call or in the background; the first hook set stays.
pub(crate) fn on_uploaded(hook: fn(&Path, u64)) {
    upload::on_uploaded(hook);
}

/// Whether a remote tier is configured and usable (it may still be skipped for a while
/// after failures).
pub(crate) fn enabled() -> bool {
    tier().is_some()
}

/// Writes a newly stored entry (`parts`, concatenated) to the remote, as configured:
/// compressed and signed where it is sent (in the background, by default).
pub(crate) fn store(path: &Path, parts: &[&[u8]]) {
    let Some(tier) = tier() else { return };
    if tier.writes == Writes::Off {
        return;
    }
    let Some(name) = remote_name(path) else {
        return;
    };
    let entry = parts.concat();
    let function_dir = path
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    match tier.writes {
        Writes::Sync => tier.send(&name, &entry, &function_dir),
        Writes::Background => {
            let job = upload::Job {
                name,
                entry,
                function_dir,
            };
            tier.uploads.push(tier, job);
        }
        Writes::Off => {}
    }
}

/// Waits until every queued background upload has been tried and the local copy of every
/// remote hit so far is written, for at most `timeout` in all; returns whether both
/// queues are empty. The thread that queued uploads or hits waits for them anyway as it
/// ends (see [`Remote::exit_wait`]); call this where they were queued by other threads
/// that outlive the program's end (a pool's), or to wait longer, or to have the local
/// copies written now rather than after a burst of remote hits.
pub fn flush(timeout: Duration) -> bool {
    let start = Instant::now();
    let uploaded = match tier() {
        Some(tier) => tier.uploads.wait_empty(timeout),
        None => true,
    };
    let left = timeout.saturating_sub(start.elapsed());
    crate::disk::later::flush(left) && uploaded
}

/// The remote in use, without credentials (`None` when there is none or it is unusable).
pub fn describe() -> Option<String> {
    tier().map(|tier| tier.backend.describe())
}

#[cfg(test)]
mod tests {
    use super::config::{DEFAULT_EXIT_WAIT, DEFAULT_RETRY_AFTER};
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;

    fn from(vars: &[(&str, &str)]) -> Option<Remote> {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Remote::from_lookup(|name| vars.get(name).cloned())
    }

    #[cfg(unix)]
    #[test]
    fn a_secret_is_bytes_and_an_empty_one_keeps_the_tier_off() {
        use std::os::unix::ffi::OsStringExt;
        let random = vec![0xff, 0x00, 0xc3, 0x28, 0x80, 0x9f];
        let raw = OsString::from_vec(random.clone());
        let remote = Remote::from_lookup(|name| match name {
            REMOTE_VAR => Some("redis://127.0.0.1:1/0".into()),
            SECRET_VAR => Some(raw.clone()),
            _ => None,
        })
        .unwrap();
        assert_eq!(remote.secret.as_deref(), Some(&random[..]));
        let empty = from(&[(REMOTE_VAR, "redis://127.0.0.1:1/0"), (SECRET_VAR, "")]).unwrap();
        assert!(matches!(connect(&empty), Err(RemoteError::BadSetting(_))));
        let programmatic = Remote::new("redis://127.0.0.1:1/0").secret(b"");
        assert!(matches!(
            connect(&programmatic),
            Err(RemoteError::BadSetting(_))
        ));
    }

    #[test]
    fn numeric_settings_are_bounded() {
        let url = (REMOTE_VAR, "redis://127.0.0.1:1/0");
        for bad in ["1e19", "-1", "NaN", "", "18446744073709551616"] {
            let remote = from(&[
                url,
                (RETRY_VAR, bad),
                (TIMEOUT_VAR, bad),
                (EXIT_WAIT_VAR, bad),
            ])
            .unwrap();
            assert_eq!(remote.retry_after, DEFAULT_RETRY_AFTER, "{bad}");
            assert_eq!(remote.timeout, DEFAULT_TIMEOUT, "{bad}");
            assert_eq!(remote.exit_wait, DEFAULT_EXIT_WAIT, "{bad}");
        }
        let most = u64::MAX.to_string();
        let remote = from(&[
            url,
            (RETRY_VAR, &most),
            (TIMEOUT_VAR, &most),
            (EXIT_WAIT_VAR, &most),
        ])
        .unwrap();
        assert_eq!(remote.retry_after, MAX_SETTING);
        assert_eq!(remote.timeout, MAX_SETTING);
        assert_eq!(remote.exit_wait, MAX_SETTING);
        // A programmatic Duration::MAX is clamped where it is used: tripping the breaker
        // cannot overflow an Instant.
        let tier =
            connect(&Remote::new("redis://127.0.0.1:1/0").retry_after(Duration::MAX)).unwrap();
        let now = Instant::now();
        for _ in 0..breaker::THRESHOLD + 1 {
            tier.breaker.failure(now);
        }
        assert!(!tier.breaker.allow(now));
    }

    #[test]
    fn environment_configures_the_remote() {
        assert!(from(&[]).is_none());
        assert!(from(&[(REMOTE_VAR, " ")]).is_none());
        let remote = from(&[(REMOTE_VAR, "redis://h:1/2")]).unwrap();
        assert_eq!(remote.url, "redis://h:1/2");
        assert_eq!(remote.timeout, DEFAULT_TIMEOUT);
        assert_eq!(remote.retry_after, DEFAULT_RETRY_AFTER);
        assert_eq!(remote.writes, Writes::Background);
        assert_eq!(remote.exit_wait, DEFAULT_EXIT_WAIT);
        assert!(remote.secret.is_none());
        let remote = from(&[
            (REMOTE_VAR, "s3://bucket/prefix"),
            (SECRET_VAR, "s3cret"),
            (TIMEOUT_VAR, "50"),
            (RETRY_VAR, "5"),
            (WRITE_VAR, "sync"),
            (EXIT_WAIT_VAR, "0"),
        ])
        .unwrap();
        assert_eq!(remote.exit_wait, Duration::ZERO);
        assert_eq!(remote.secret.as_deref(), Some(&b"s3cret"[..]));
        assert_eq!(remote.timeout, Duration::from_millis(50));
        assert_eq!(remote.retry_after, Duration::from_secs(5));
        assert_eq!(remote.writes, Writes::Sync);
        let remote = from(&[
            (REMOTE_VAR, "s3://b"),
            (TIMEOUT_VAR, "soon"),
            (WRITE_VAR, "sometimes"),
        ])
        .unwrap();
        assert_eq!(remote.timeout, DEFAULT_TIMEOUT);
        assert_eq!(remote.writes, Writes::Background);
    }

    #[test]
    fn debug_and_messages_hide_credentials() {
        let remote = Remote::new("redis://user:hunter2@host:6379/0").secret("topsecret");
        let shown = format!("{remote:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("topsecret"),
            "{shown}"
        );
        assert_eq!(redact("redis://:pw@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redact("s3://bucket/a@b"), "s3://bucket/a@b");
    }

    #[test]
    fn unknown_schemes_are_refused() {
        let error = open_backend("ftp://x", DEFAULT_TIMEOUT, None, None)
            .err()
            .unwrap();
        assert!(matches!(error, RemoteError::BadUrl(_)), "{error}");
        assert!(open_backend("no scheme", DEFAULT_TIMEOUT, None, None).is_err());
    }

    /// A backend in memory that can fail on demand or hold its puts at a gate.
    #[derive(Default)]
    struct Memory {
        objects: std::sync::Mutex<HashMap<String, Vec<u8>>>,
        calls: std::sync::atomic::AtomicUsize,
        failing: AtomicBool,
        gate: std::sync::Mutex<()>,
    }

    impl Backend for &'static Memory {
        fn get(&self, name: &str) -> Result<Option<Vec<u8>>, RemoteError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.failing.load(Ordering::SeqCst) {
                return Err(RemoteError::Backend("down".into()));
            }
            Ok(self.objects.lock().unwrap().get(name).cloned())
        }
        fn put(&self, name: &str, bytes: &[u8]) -> Result<(), RemoteError> {
            drop(self.gate.lock().unwrap());
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.failing.load(Ordering::SeqCst) {
                return Err(RemoteError::Backend("down".into()));
            }
            self.objects
                .lock()
                .unwrap()
                .insert(name.to_owned(), bytes.to_vec());
            Ok(())
        }
        fn list(&self, _: &str) -> Result<Vec<backend::Listed>, RemoteError> {
            Ok(Vec::new())
        }
        fn delete(&self, _: &[String]) -> Result<(), RemoteError> {
            Ok(())
        }
        fn describe(&self) -> String {
            "memory".into()
        }
    }

    fn memory_tier(writes: Writes) -> (&'static Memory, &'static Tier) {
        memory_tier_waiting(writes, Duration::from_secs(60))
    }

    fn memory_tier_waiting(
        writes: Writes,
        exit_wait: Duration,
    ) -> (&'static Memory, &'static Tier) {
        memory_tier_with(writes, exit_wait, true, None)
    }

    fn memory_tier_with(
        writes: Writes,
        exit_wait: Duration,
        compress: bool,
        mac: Option<Mac>,
    ) -> (&'static Memory, &'static Tier) {
        let memory: &'static Memory = Box::leak(Box::default());
        let tier = Box::leak(Box::new(Tier {
            backend: Box::new(memory),
            mac,
            compress,
            breaker: Breaker::new(Duration::from_secs(3600)),
            writes,
            uploads: upload::Queue::default(),
            exit_wait,
            admin: OnceLock::new(),
            url: "memory://".into(),
            ca: None,
            ttl: None,
        }));
        (memory, tier)
    }

    fn job(name: &str, entry: Vec<u8>) -> upload::Job {
        upload::Job {
            name: name.to_owned(),
            entry,
            function_dir: std::path::PathBuf::from("/nowhere/f"),
        }
    }

    /// A site whose statistics name the function directory `dir`.
    fn site_in(dir: &Path) -> &'static crate::site::Site {
        let site: &'static crate::site::Site =
            Box::leak(Box::new(crate::site::Site::new(crate::site::SiteInfo {
                module_path: "remote_test",
                name: "f",
                ..crate::site::SiteInfo::DEFAULT
            })));
        crate::stats::record_miss(site);
        crate::stats::note_dir(site, &dir.join("ab").join("abcd"));
        site
    }

    fn uploads_dropped(dir: &Path) -> u64 {
        stats_of(dir).map_or(0, |s| s.uploads_dropped)
    }

    /// The stats of the function whose directory is `dir`, if it is registered.
    fn stats_of(dir: &Path) -> Option<crate::FunctionStats> {
        let name = dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace('.', "::");
        crate::stats().into_iter().find(|s| s.function == name)
    }

    #[test]
    fn a_thread_waits_for_the_uploads_it_queued_as_it_ends() {
        let (memory, tier) = memory_tier(Writes::Background);
        std::thread::spawn(move || {
            for i in 0..20 {
                tier.uploads.push(tier, job(&format!("f/{i}"), vec![i; 10]));
            }
        })
        .join()
        .unwrap();
        // No flush: the thread's end waited for the queue.
        assert_eq!(memory.objects.lock().unwrap().len(), 20);
        assert_eq!(tier.uploads.dropped_count(), 0);
    }

    #[test]
    fn uploads_left_at_the_exit_wait_are_given_up_and_counted() {
        let (memory, tier) = memory_tier_waiting(Writes::Background, Duration::from_millis(50));
        let dir = Path::new("/nowhere/remote_test.given_up");
        site_in(dir);
        let gate = memory.gate.lock().unwrap();
        std::thread::spawn(move || {
            for i in 0..3 {
                let mut job = job(&format!("g/{i}"), vec![i; 10]);
                job.function_dir = dir.to_path_buf();
                tier.uploads.push(tier, job);
            }
        })
        .join()
        .unwrap();
        // One held at the gate, two queued: all three given up when the wait ended.
        assert_eq!(tier.uploads.dropped_count(), 3);
        assert_eq!(uploads_dropped(dir), 3);
        drop(gate);
        assert!(tier.uploads.wait_empty(Duration::from_secs(60)));
        assert!(
            memory.objects.lock().unwrap().len() <= 1,
            "the queue was emptied"
        );
    }

    #[test]
    fn a_thread_gives_up_only_the_uploads_it_queued() {
        let (memory, tier) = memory_tier_waiting(Writes::Background, Duration::from_millis(50));
        let gate = memory.gate.lock().unwrap();
        // This thread's two uploads: one held at the gate, one queued.
        for i in 0..2 {
            tier.uploads
                .push(tier, job(&format!("mine/{i}"), vec![i; 10]));
        }
        std::thread::spawn(move || tier.uploads.push(tier, job("other/0", vec![0; 10])))
            .join()
            .unwrap();
        assert_eq!(tier.uploads.dropped_count(), 1, "the ended thread's own");
        drop(gate);
        assert!(tier.uploads.wait_empty(Duration::from_secs(60)));
        let mut names: Vec<String> = memory.objects.lock().unwrap().keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["mine/0", "mine/1"]);
    }

    #[test]
    fn an_endless_exit_wait_or_flush_waits_without_overflowing() {
        let (memory, tier) = memory_tier_waiting(Writes::Background, Duration::MAX);
        std::thread::spawn(move || tier.uploads.push(tier, job("f/endless", vec![1; 10])))
            .join()
            .unwrap();
        assert!(tier.uploads.wait_empty(Duration::MAX));
        assert_eq!(memory.objects.lock().unwrap().len(), 1);
    }

    #[test]
    fn background_uploads_arrive_and_flush_waits_for_them() {
        let (memory, tier) = memory_tier(Writes::Background);
        for i in 0..20 {
            tier.uploads.push(tier, job(&format!("f/{i}"), vec![i; 10]));
        }
        assert!(tier.uploads.wait_empty(Duration::from_secs(60)));
        assert_eq!(memory.objects.lock().unwrap().len(), 20);
    }

    fn function_stats(dir: &Path) -> crate::FunctionStats {
        stats_of(dir).unwrap()
    }

    #[test]
    fn uploads_are_counted_with_their_bytes_for_their_function() {
        let (memory, tier) = memory_tier(Writes::Background);
        let dir = Path::new("/nowhere/remote_test.counted");
        site_in(dir);
        tier.put("counted/sync", &[1; 7], dir);
        for i in 0..3 {
            let mut job = job(&format!("counted/{i}"), vec![0; 10]);
            job.function_dir = dir.to_path_buf();
            tier.uploads.push(tier, job);
        }
        assert!(tier.uploads.wait_empty(Duration::from_secs(60)));
        let stats = function_stats(dir);
        assert_eq!((stats.uploads, stats.remote_bytes_written), (4, 37));
        // A failed upload is not one.
        memory.failing.store(true, Ordering::SeqCst);
        tier.put("counted/failed", &[1; 7], dir);
        assert_eq!(function_stats(dir).uploads, 4);
    }

    #[test]
    fn a_full_upload_queue_drops_instead_of_blocking_the_call() {
        let (memory, tier) = memory_tier(Writes::Background);
        let gate = memory.gate.lock().unwrap();
        let dir = Path::new("/nowhere/remote_test.full");
        site_in(dir);
        // The upload thread holds one job at the gate; the queue fills, the rest drop.
        for i in 0..upload::MAX_QUEUED + 50 {
            let mut job = job(&format!("f/{i}"), vec![0; 4]);
            job.function_dir = dir.to_path_buf();
            tier.uploads.push(tier, job);
        }
        let dropped = tier.uploads.dropped_count();
        assert!((49..=50).contains(&dropped), "{dropped}");
        assert_eq!(uploads_dropped(dir), dropped, "counted for the function");
        assert!(!tier.uploads.wait_empty(Duration::from_millis(1)));
        drop(gate);
        assert!(tier.uploads.wait_empty(Duration::from_secs(60)));
        let stored = memory.objects.lock().unwrap().len();
        assert!(stored <= upload::MAX_QUEUED + 1, "{stored}");
        assert!(stored >= upload::MAX_QUEUED, "{stored}");
    }

    #[test]
    fn a_failing_backend_is_skipped_after_three_failures() {
        let (memory, tier) = memory_tier(Writes::Sync);
        memory.failing.store(true, Ordering::SeqCst);
        for _ in 0..10 {
            assert_eq!(tier.guarded("read", || tier.backend.get("f/x")), None);
        }
        assert_eq!(
            memory.calls.load(Ordering::SeqCst),
            breaker::THRESHOLD as usize
        );
    }

    #[test]
    fn entries_are_compressed_then_signed_as_they_are_sent() {
        let text = "{\"id\": 1, \"name\": \"a record\"}, ".repeat(2000);
        let entry = crate::entry::samples::entry(text.as_bytes());
        let dir = Path::new("/nowhere/remote_test.compressed");
        for (compress, mac) in [(true, None), (true, Some(Mac::new(b"s"))), (false, None)] {
            let (memory, tier) =
                memory_tier_with(Writes::Sync, Duration::from_secs(60), compress, mac.clone());
            tier.send("f/k", &entry, dir);
            let object = memory.objects.lock().unwrap()["f/k"].clone();
            let opened = mac::open(mac.as_ref(), "f/k", object.clone()).unwrap();
            assert_eq!(crate::entry::peek_compressed(&opened), compress);
            if compress {
                assert!(object.len() < entry.len() / 4, "{}", object.len());
                assert_eq!(compress::decompress(&opened).unwrap(), entry);
            } else {
                assert_eq!(object, entry);
            }
        }
    }

    #[test]
    fn remote_names_are_function_dir_and_key() {
        let path = Path::new("/root/app.f/ab/abcdef");
        assert_eq!(remote_name(path).as_deref(), Some("app.f/abcdef"));
    }
}
