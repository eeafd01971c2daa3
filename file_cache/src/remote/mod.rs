//! The remote tier: a store shared by machines (Redis, or S3-compatible object storage)
//! behind the local files. It moves verified bytes: it never decodes a value and knows
//! nothing of calls (the call path checks what it fetches exactly as it checks a local
//! file).
//!
//! Local first: on a local miss the remote is asked; a remote hit is checked exactly like a
//! local file and written to the local tier; a computed value is written to both. The
//! remote holds the bytes of a local entry, named `<function dir>/<key hex>`, followed by a
//! signature (a keyed blake3 MAC) when `FILE_CACHE_REMOTE_SECRET` is set.
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
//! | `FILE_CACHE_REMOTE` | `redis://[:password@]host:port/db` or `s3://bucket/prefix` |
//! | `FILE_CACHE_REMOTE_SECRET` | sign entries, refuse unsigned or wrongly signed ones |
//! | `FILE_CACHE_REMOTE_TIMEOUT_MS` | longest wait to connect or for the next bytes (default 200) |
//! | `FILE_CACHE_REMOTE_RETRY_S` | how long a failing remote is skipped (default 30) |
//! | `FILE_CACHE_REMOTE_WRITE` | `background` (default), `sync` or `off` (read only) |
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

mod breaker;
mod mac;
#[cfg(feature = "remote-redis")]
mod redis;
#[cfg(feature = "remote-s3")]
mod s3;
mod upload;

use breaker::{Breaker, Tripped};
use mac::Mac;
use std::ffi::OsString;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Environment variable naming the remote store.
pub const REMOTE_VAR: &str = "FILE_CACHE_REMOTE";
/// Environment variable holding the secret entries are signed with.
pub const SECRET_VAR: &str = "FILE_CACHE_REMOTE_SECRET";
/// Environment variable: the remote's timeout, in milliseconds.
pub const TIMEOUT_VAR: &str = "FILE_CACHE_REMOTE_TIMEOUT_MS";
/// Environment variable: seconds a failing remote is skipped before it is tried again.
pub const RETRY_VAR: &str = "FILE_CACHE_REMOTE_RETRY_S";
/// Environment variable: how values are written to the remote ([`Writes`]).
pub const WRITE_VAR: &str = "FILE_CACHE_REMOTE_WRITE";
/// Environment variable: seconds a thread that queued background uploads waits for them
/// as it ends (the main thread: as the program exits); `0` does not wait.
pub const EXIT_WAIT_VAR: &str = "FILE_CACHE_REMOTE_EXIT_WAIT";

const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);
const DEFAULT_EXIT_WAIT: Duration = Duration::from_secs(5);
/// Listing and clearing are not on a call's path: they may wait this long per step.
/// The longest timeout, retry period or exit wait a setting may ask for (a day): longer ones
/// are clamped to it, so no arithmetic on them can overflow.
const MAX_SETTING: Duration = Duration::from_secs(24 * 3600);
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How computed values reach the remote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writes {
    /// Queued and uploaded by a background thread: the call does not wait. A thread that
    /// queued uploads waits for them as it ends, the main thread as the program exits, for
    /// at most the exit wait ([`Remote::exit_wait`], `FILE_CACHE_REMOTE_EXIT_WAIT`).
    Background,
    /// Uploaded before the call returns (bounded by the timeout while the remote answers).
    Sync,
    /// Never written: this process only reads the remote.
    Off,
}

impl Writes {
    fn parse(value: &str) -> Option<Writes> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "background" => Some(Writes::Background),
            "sync" => Some(Writes::Sync),
            "off" | "read" | "readonly" | "read-only" => Some(Writes::Off),
            _ => None,
        }
    }
}

/// The remote tier's configuration: where it is and how to talk to it.
///
/// ```
/// use std::time::Duration;
/// let remote = file_cache::remote::Remote::new("redis://127.0.0.1:6379/0")
///     .secret("shared by the team")
///     .timeout(Duration::from_millis(100));
/// // file_cache::remote::set(Some(remote)) before the first cached call.
/// # let _ = remote;
/// ```
#[derive(Clone)]
pub struct Remote {
    url: String,
    secret: Option<Vec<u8>>,
    timeout: Duration,
    retry_after: Duration,
    writes: Writes,
    exit_wait: Duration,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("url", &redact(&self.url))
            .field("signed", &self.secret.is_some())
            .field("timeout", &self.timeout)
            .field("retry_after", &self.retry_after)
            .field("writes", &self.writes)
            .field("exit_wait", &self.exit_wait)
            .finish()
    }
}

impl Remote {
    /// A remote at `url` (`redis://host:port/db` or `s3://bucket/prefix`), unsigned, with
    /// the default timeout (200 ms), retry period (30 s), background writes and exit wait
    /// (5 s).
    pub fn new(url: impl Into<String>) -> Remote {
        Remote {
            url: url.into(),
            secret: None,
            timeout: DEFAULT_TIMEOUT,
            retry_after: DEFAULT_RETRY_AFTER,
            writes: Writes::Background,
            exit_wait: DEFAULT_EXIT_WAIT,
        }
    }

    /// Signs written entries and refuses unsigned or wrongly signed ones.
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Remote {
        self.secret = Some(secret.as_ref().to_vec());
        self
    }

    /// The longest wait to connect, or for the remote's next bytes.
    pub fn timeout(mut self, timeout: Duration) -> Remote {
        self.timeout = timeout;
        self
    }

    /// How long the remote is skipped after repeated failures.
    pub fn retry_after(mut self, retry_after: Duration) -> Remote {
        self.retry_after = retry_after;
        self
    }

    /// How computed values are written to the remote.
    pub fn writes(mut self, writes: Writes) -> Remote {
        self.writes = writes;
        self
    }

    /// The longest a thread that queued background uploads waits for them as it ends (the
    /// main thread: as the program exits); what is left then is given up. Zero does not
    /// wait: uploads still queued at exit are lost.
    pub fn exit_wait(mut self, exit_wait: Duration) -> Remote {
        self.exit_wait = exit_wait;
        self
    }

    /// The configuration the `FILE_CACHE_REMOTE*` variables describe; `None` when
    /// `FILE_CACHE_REMOTE` is unset or empty. Unusable values are warnings and keep the
    /// default.
    pub fn from_env() -> Option<Remote> {
        Remote::from_lookup(|name| std::env::var_os(name))
    }

    fn from_lookup(var_os: impl Fn(&str) -> Option<OsString>) -> Option<Remote> {
        let var = |name: &str| -> Option<String> {
            match var_os(name)?.into_string() {
                Ok(text) => Some(text),
                Err(raw) => {
                    log::warn!(
                        "file_cache: ignoring {name}={}: not UTF-8",
                        raw.to_string_lossy()
                    );
                    None
                }
            }
        };
        let url = var(REMOTE_VAR).filter(|url| !url.trim().is_empty())?;
        let mut remote = Remote::new(url.trim());
        // A secret is bytes, whatever they are (`head -c 32 /dev/urandom`); one that is set
        // but cannot be used is refused when the tier starts, which then stays off: never
        // on and unsigned.
        if let Some(secret) = var_os(SECRET_VAR) {
            remote = remote.secret(secret.into_encoded_bytes());
        }
        let number = |name: &str, most: u64| -> Option<u64> {
            let value = var(name)?;
            match value.trim().parse::<u64>() {
                Ok(n) if n <= most => Some(n),
                Ok(_) => {
                    log::warn!("file_cache: {name}={value:?} is more than {most}; using {most}");
                    Some(most)
                }
                Err(_) => {
                    log::warn!("file_cache: ignoring {name}={value:?}: not a whole number");
                    None
                }
            }
        };
        if let Some(ms) = number(TIMEOUT_VAR, MAX_SETTING.as_millis() as u64) {
            remote.timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(s) = number(RETRY_VAR, MAX_SETTING.as_secs()) {
            remote.retry_after = Duration::from_secs(s);
        }
        if let Some(s) = number(EXIT_WAIT_VAR, MAX_SETTING.as_secs()) {
            remote.exit_wait = Duration::from_secs(s);
        }
        if let Some(value) = var(WRITE_VAR) {
            match Writes::parse(&value) {
                Some(writes) => remote.writes = writes,
                None => log::warn!(
                    "file_cache: ignoring {WRITE_VAR}={value:?} (expected `background`, `sync` or `off`)"
                ),
            }
        }
        Some(remote)
    }
}

/// What went wrong talking to, or setting up, the remote tier.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteError {
    /// No remote is configured (`FILE_CACHE_REMOTE` unset and [`set`] not called).
    NotConfigured,
    /// The remote was already chosen: [`set`] must come before the first cached call.
    AlreadySet,
    /// The URL is not one this build can use.
    BadUrl(String),
    /// The store answered with an error, or did not answer.
    Backend(String),
    /// A setting cannot be used (an empty secret, say): the tier stays off.
    BadSetting(String),
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteError::NotConfigured => write!(f, "no remote configured ({REMOTE_VAR} is unset)"),
            RemoteError::AlreadySet => {
                f.write_str("the remote is already chosen: set it before the first cached call")
            }
            RemoteError::BadUrl(reason) => write!(f, "unusable remote URL: {reason}"),
            RemoteError::Backend(reason) => write!(f, "remote error: {reason}"),
            RemoteError::BadSetting(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for RemoteError {}

/// One storage engine. Names are `<function dir>/<key hex>`; the backend adds its prefix.
trait Backend: Send + Sync {
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

/// The configured remote, connected lazily.
struct Tier {
    backend: Box<dyn Backend>,
    mac: Option<Mac>,
    breaker: Breaker,
    writes: Writes,
    uploads: upload::Queue,
    /// How long a thread that queued uploads waits for them as it ends.
    exit_wait: Duration,
    /// The same store with [`ADMIN_TIMEOUT`], for [`list`] and [`clear`]; opened on use.
    admin: OnceLock<Result<Box<dyn Backend>, RemoteError>>,
    url: String,
}

/// What [`set`] or the environment chose; fixed at first use.
static CHOSEN: OnceLock<Option<Remote>> = OnceLock::new();

/// Chooses the remote tier programmatically, instead of `FILE_CACHE_REMOTE*`: `None`
/// turns it off even when the variables are set. Must come before the first cached call
/// (or any other function of this module); later it returns [`RemoteError::AlreadySet`].
/// The URL is checked when the tier is first used.
pub fn set(remote: Option<Remote>) -> Result<(), RemoteError> {
    CHOSEN.set(remote).map_err(|_| RemoteError::AlreadySet)
}

fn chosen() -> Option<&'static Remote> {
    CHOSEN.get_or_init(Remote::from_env).as_ref()
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
        backend: open_backend(&remote.url, remote.timeout.min(MAX_SETTING))?,
        mac: remote.secret.as_deref().map(Mac::new),
        breaker: Breaker::new(remote.retry_after.min(MAX_SETTING)),
        writes: remote.writes,
        uploads: upload::Queue::default(),
        exit_wait: remote.exit_wait,
        admin: OnceLock::new(),
        url: remote.url.clone(),
    })
}

fn open_backend(url: &str, timeout: Duration) -> Result<Box<dyn Backend>, RemoteError> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        #[cfg(feature = "remote-redis")]
        Some("redis" | "rediss" | "redis+unix" | "unix") => {
            Ok(Box::new(redis::Redis::open(url, timeout)?))
        }
        #[cfg(feature = "remote-s3")]
        Some("s3") => Ok(Box::new(s3::S3::open(url, timeout)?)),
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

/// The URL without a password, for messages.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

/// The remote name of the entry at `path` (`<root>/<function dir>/<shard>/<key hex>`).
fn remote_name(path: &Path) -> Option<String> {
    let hex = path.file_name()?.to_str()?;
    let dir = path.parent()?.parent()?.file_name()?.to_str()?;
    Some(format!("{dir}/{hex}"))
}

impl Tier {
    fn admin(&self) -> Result<&dyn Backend, RemoteError> {
        let timeout = ADMIN_TIMEOUT.max(self.timeout());
        match self.admin.get_or_init(|| open_backend(&self.url, timeout)) {
            Ok(backend) => Ok(backend.as_ref()),
            Err(error) => Err(error.clone()),
        }
    }

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

    fn put(&self, name: &str, object: &[u8]) {
        if self
            .guarded("store", || self.backend.put(name, object))
            .is_some()
        {
            log::debug!("file_cache: remote stored {name}");
        }
    }
}

/// What the remote holds for an entry, before any check of the entry itself.
pub(crate) enum Fetched {
    /// The entry's bytes, with its signature checked and removed when entries are signed.
    Entry(Vec<u8>),
    /// An object that is not a usable entry (unsigned, wrongly signed), and why.
    Refused(String),
}

/// Asks the remote for the entry at `path` after a local miss: the object named `name`
/// (see [`remote_name`]) and what it holds; `None` when there is no remote, no object, or
/// the remote failed (logged, and counted by the breaker). The caller checks the entry:
/// this tier moves bytes and never decodes.
pub(crate) fn fetch(path: &Path) -> Option<(String, Fetched)> {
    let tier = tier()?;
    let name = remote_name(path)?;
    let object = tier.guarded("read", || tier.backend.get(&name))??;
    let fetched = match mac::open(tier.mac.as_ref(), &name, object) {
        Ok(entry) => Fetched::Entry(entry),
        Err(refused) => Fetched::Refused(refused.to_string()),
    };
    Some((name, fetched))
}

/// Has `hook` called with the function directory of every upload dropped or given up (for
/// the statistics, which sit above this tier); the first hook set stays.
pub(crate) fn on_dropped(hook: fn(&Path)) {
    upload::on_dropped(hook);
}

/// Writes a newly stored entry (`parts`, concatenated) to the remote, as configured.
pub(crate) fn store(path: &Path, parts: &[&[u8]]) {
    let Some(tier) = tier() else { return };
    if tier.writes == Writes::Off {
        return;
    }
    let Some(name) = remote_name(path) else {
        return;
    };
    let entry = parts.concat();
    let object = match &tier.mac {
        Some(mac) => mac.seal(&name, &entry),
        None => entry,
    };
    match tier.writes {
        Writes::Sync => tier.put(&name, &object),
        Writes::Background => {
            let function_dir = path
                .parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let job = upload::Job {
                name,
                object,
                function_dir,
            };
            tier.uploads.push(tier, job);
        }
        Writes::Off => {}
    }
}

/// Waits until every queued background upload has been tried, for at most `timeout`;
/// returns whether the queue is empty. The thread that queued uploads waits for them
/// anyway as it ends (see [`Remote::exit_wait`]); call this where the uploads were queued
/// by other threads that outlive the program's end (a pool's), or to wait longer.
pub fn flush(timeout: Duration) -> bool {
    match tier() {
        Some(tier) => tier.uploads.wait_empty(timeout),
        None => true,
    }
}

/// The remote in use, without credentials (`None` when there is none or it is unusable).
pub fn describe() -> Option<String> {
    tier().map(|tier| tier.backend.describe())
}

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
/// how many there were.
pub fn clear(function: Option<&str>) -> Result<usize, RemoteError> {
    let tier = tier().ok_or(RemoteError::NotConfigured)?;
    let names: Vec<String> = list(function)?
        .into_iter()
        .map(|e| format!("{}/{}", e.function, e.key))
        .collect();
    tier.admin()?.delete(&names)?;
    Ok(names.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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
        let error = open_backend("ftp://x", DEFAULT_TIMEOUT).err().unwrap();
        assert!(matches!(error, RemoteError::BadUrl(_)), "{error}");
        assert!(open_backend("no scheme", DEFAULT_TIMEOUT).is_err());
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
            self.objects
                .lock()
                .unwrap()
                .insert(name.to_owned(), bytes.to_vec());
            Ok(())
        }
        fn list(&self, _: &str) -> Result<Vec<(String, u64)>, RemoteError> {
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
        let memory: &'static Memory = Box::leak(Box::default());
        let tier = Box::leak(Box::new(Tier {
            backend: Box::new(memory),
            mac: None,
            breaker: Breaker::new(Duration::from_secs(3600)),
            writes,
            uploads: upload::Queue::default(),
            exit_wait,
            admin: OnceLock::new(),
            url: "memory://".into(),
        }));
        (memory, tier)
    }

    fn job(name: &str, object: Vec<u8>) -> upload::Job {
        upload::Job {
            name: name.to_owned(),
            object,
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
        let name = dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace('.', "::");
        crate::stats()
            .into_iter()
            .find(|s| s.function == name)
            .map_or(0, |s| s.uploads_dropped)
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
    fn remote_names_are_function_dir_and_key() {
        let path = Path::new("/root/app.f/ab/abcdef");
        assert_eq!(remote_name(path).as_deref(), Some("app.f/abcdef"));
    }
}
