//! The remote tier's settings: the `FILE_CACHE_REMOTE*` variables, [`Remote`] (the same
//! settings in code), the choice fixed at first use ([`set`], or the environment), and the
//! tier's errors ([`RemoteError`], most of them about settings). A leaf of the tier: nothing
//! here connects or moves bytes.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

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

/// Environment variable: a PEM file of the CA certificates the server's certificate
/// (`rediss://`, S3 over HTTPS) must chain to, instead of the system's trusted roots.
pub const CA_VAR: &str = "FILE_CACHE_REMOTE_CA";

/// Environment variable: seconds a thread that queued background uploads waits for them
/// as it ends (the main thread: as the program exits); `0` does not wait.
pub const EXIT_WAIT_VAR: &str = "FILE_CACHE_REMOTE_EXIT_WAIT";

/// Environment variable: how long a remote entry lives (`30d`, `12h`...): Redis expires
/// the key, S3 objects written longer ago are misses.
pub const TTL_VAR: &str = "FILE_CACHE_REMOTE_TTL";

pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);

pub(super) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

pub(super) const DEFAULT_EXIT_WAIT: Duration = Duration::from_secs(5);

/// The longest timeout, retry period or exit wait a setting may ask for (a day): longer ones
/// are clamped to it, so no arithmetic on them can overflow.
pub(super) const MAX_SETTING: Duration = Duration::from_secs(24 * 3600);

/// The longest remote time to live (about 136 years): longer ones are clamped to it, so
/// that Redis accepts it and no arithmetic on it can overflow.
pub(super) const MAX_TTL: Duration = Duration::from_secs(u32::MAX as u64);

/// How computed values reach the remote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writes {
    /// Queued and uploaded by a background thread: the call does not wait. A thread that
    /// queued uploads waits for them as it ends, the main thread as the program exits, for
    /// at most the exit wait ([`Remote::exit_wait`], `FILE_CACHE_REMOTE_EXIT_WAIT`).
    Background,
    /// Uploaded before the call returns (bounded by the timeout while the remote answers).
    Sync,
    /// Never written: this process only reads the remote. `FILE_CACHE_READONLY=1` (the
    /// whole cache read-only) makes every process's writes `Off`, whatever is chosen here.
    Off,
}

impl Writes {
    pub(super) fn parse(value: &str) -> Option<Writes> {
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
    pub(super) url: String,
    pub(super) secret: Option<Vec<u8>>,
    pub(super) timeout: Duration,
    pub(super) retry_after: Duration,
    pub(super) writes: Writes,
    pub(super) exit_wait: Duration,
    pub(super) ca: Option<PathBuf>,
    pub(super) ttl: Option<Duration>,
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
            .field("ca", &self.ca)
            .field("ttl", &self.ttl)
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
            ca: None,
            ttl: None,
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

    /// Trusts only the CA certificates in `pem_file` (PEM, one or more) for the server's
    /// certificate (`rediss://`, or S3 over HTTPS), instead of the system's trusted roots:
    /// for a server whose certificate a private CA signed. A file that cannot be read, or
    /// holds no certificate, keeps the remote tier off (with a warning) when it starts; so
    /// does a CA for a remote that is not TLS (`redis://`, an `http://` S3 endpoint).
    pub fn ca(mut self, pem_file: impl Into<PathBuf>) -> Remote {
        self.ca = Some(pem_file.into());
        self
    }

    /// How long a remote entry lives after it is written: Redis stores the key with this
    /// expiry (`SET ... EX`); an S3 object written longer ago (its `Last-Modified`, against
    /// this machine's clock) is a miss, and the call's new value overwrites it (deleting old
    /// objects is the bucket's lifecycle rules' job, or `file-cache remote prune`). Zero,
    /// like the default, is no expiry; more than 136 years is clamped to that.
    pub fn ttl(mut self, ttl: Duration) -> Remote {
        self.ttl = (!ttl.is_zero()).then_some(ttl.min(MAX_TTL));
        self
    }

    /// The configuration the `FILE_CACHE_REMOTE*` variables describe; `None` when
    /// `FILE_CACHE_REMOTE` is unset or empty. Unusable values are warnings and keep the
    /// default.
    pub fn from_env() -> Option<Remote> {
        Remote::from_lookup(|name| std::env::var_os(name))
    }

    pub(super) fn from_lookup(var_os: impl Fn(&str) -> Option<OsString>) -> Option<Remote> {
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
        // A path, whatever its bytes.
        if let Some(ca) = var_os(CA_VAR).filter(|path| !path.is_empty()) {
            remote = remote.ca(ca);
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
        if let Some(value) = var(TTL_VAR).filter(|value| !value.trim().is_empty()) {
            match crate::config::parse_duration(&value) {
                Ok(ttl) if ttl.is_zero() => log::warn!(
                    "file_cache: ignoring {TTL_VAR}={value:?}: a time to live of zero would keep \
                     nothing; entries do not expire"
                ),
                Ok(ttl) => remote = remote.ttl(ttl),
                Err(e) => log::warn!("file_cache: ignoring {TTL_VAR}: {e}; entries do not expire"),
            }
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

/// The PEM bytes of the CA file `path` ([`CA_VAR`]); a file that cannot be read, or holds
/// no certificate, is a setting that keeps the tier off, never a fallback to other roots.
#[cfg_attr(
    not(any(feature = "remote-redis-tls", feature = "remote-s3")),
    allow(dead_code)
)]
pub(super) fn read_ca(path: &Path) -> Result<Vec<u8>, RemoteError> {
    let refused = |why: String| {
        RemoteError::BadSetting(format!(
            "{CA_VAR}={}: {why}; the remote tier stays off rather than trust other certificates",
            path.display()
        ))
    };
    let pem = std::fs::read(path).map_err(|e| refused(format!("cannot read it ({e})")))?;
    if !pem
        .windows(CERTIFICATE_PEM.len())
        .any(|window| window == CERTIFICATE_PEM)
    {
        return Err(refused("it holds no PEM certificate".to_owned()));
    }
    Ok(pem)
}

const CERTIFICATE_PEM: &[u8] = b"-----BEGIN CERTIFICATE-----";

/// What [`set`] or the environment chose; fixed at first use.
pub(super) static CHOSEN: OnceLock<Option<Remote>> = OnceLock::new();

/// Chooses the remote tier programmatically, instead of `FILE_CACHE_REMOTE*`: `None`
/// turns it off even when the variables are set. Must come before the first cached call
/// (or any other function of this module); later it returns [`RemoteError::AlreadySet`].
/// The URL is checked when the tier is first used.
pub fn set(remote: Option<Remote>) -> Result<(), RemoteError> {
    CHOSEN.set(remote).map_err(|_| RemoteError::AlreadySet)
}

pub(super) fn chosen() -> Option<&'static Remote> {
    CHOSEN.get_or_init(Remote::from_env).as_ref()
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

/// The URL without a password, for messages.
pub(super) fn redact(url: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> Remote {
        Remote::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        })
        .unwrap()
    }

    #[test]
    fn the_time_to_live_takes_the_ttl_grammar() {
        let url = (REMOTE_VAR, "redis://h:1/0");
        assert_eq!(with(&[url]).ttl, None, "unset: no expiry");
        for (text, secs) in [("30d", 30 * 86_400), ("12h", 12 * 3600), (" 1h30m ", 5400)] {
            assert_eq!(
                with(&[url, (TTL_VAR, text)]).ttl,
                Some(Duration::from_secs(secs)),
                "{text}"
            );
        }
        for ignored in ["", "0s", "3 days", "12", "-1h", "30m1h"] {
            assert_eq!(with(&[url, (TTL_VAR, ignored)]).ttl, None, "{ignored:?}");
        }
        assert_eq!(
            with(&[url, (TTL_VAR, "999999999w")]).ttl,
            Some(MAX_TTL),
            "clamped"
        );
        let remote = Remote::new("s3://b").ttl(Duration::from_secs(60));
        assert_eq!(remote.ttl, Some(Duration::from_secs(60)));
        assert_eq!(remote.ttl(Duration::ZERO).ttl, None);
        assert!(format!("{:?}", Remote::new("s3://b").ttl(Duration::from_secs(9))).contains("9s"));
    }
}
