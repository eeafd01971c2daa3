//! Redis backend: the `redis` crate's synchronous client, one key per entry. It knows the
//! `redis` client and the backend trait, nothing of entries.
//!
//! Keys are `file_cache/<function dir>/<key hex>`. Connections are kept in a small pool;
//! each has the timeout on connect, on every write and on every read, so a stalled server
//! costs a call about one timeout per step (the TLS handshake included: it runs within the
//! connect timeout). A connection that saw an error is dropped. With a time to live, keys
//! are written with `SET ... EX` and Redis deletes them when they expire.
//!
//! Plain `redis://` is unencrypted; use it on a trusted network (and sign entries).
//! `rediss://` (feature `remote-redis-tls`) is TLS through rustls: the server's certificate
//! must chain to the system's trusted roots, or to the CAs of `FILE_CACHE_REMOTE_CA` instead.

use super::backend::{Backend, Listed};
use super::config::{redact, RemoteError, CA_VAR};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

const PREFIX: &str = "file_cache/";
/// Idle connections kept for reuse.
const POOL: usize = 8;

pub(super) struct Redis {
    client: redis::Client,
    idle: Mutex<Vec<redis::Connection>>,
    timeout: Duration,
    /// The expiry of written keys, in whole seconds (at least one).
    expire_secs: Option<u64>,
    shown: String,
}

fn backend_error(error: redis::RedisError) -> RemoteError {
    RemoteError::Backend(error.to_string())
}

fn bad_url(url: &str, error: redis::RedisError) -> RemoteError {
    RemoteError::BadUrl(format!("{}: {error}", redact(url)))
}

/// A `rediss://` client: the system's trusted roots, or only the CAs in `ca`.
#[cfg(feature = "remote-redis-tls")]
fn tls_client(url: &str, ca: Option<&Path>) -> Result<redis::Client, RemoteError> {
    // The URL alone first, so that a bad one is reported as such.
    let client = redis::Client::open(url).map_err(|e| bad_url(url, e))?;
    // rustls takes its crypto provider from the process; one that picked none, or whose
    // build enables two, would make rustls panic. Installing ours is what rustls does itself
    // when it has one, and a provider the program installed first stays.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
    let Some(ca) = ca else { return Ok(client) };
    let certificates = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(super::config::read_ca(ca)?),
    };
    redis::Client::build_with_tls(url, certificates).map_err(|e| {
        RemoteError::BadSetting(format!(
            "{CA_VAR}={}: {e}; the remote tier stays off rather than trust other certificates",
            ca.display()
        ))
    })
}

#[cfg(not(feature = "remote-redis-tls"))]
fn tls_client(url: &str, _ca: Option<&Path>) -> Result<redis::Client, RemoteError> {
    Err(RemoteError::BadUrl(format!(
        "{}: this build has no TLS for Redis (feature `remote-redis-tls`, part of `remote`)",
        redact(url)
    )))
}

impl Redis {
    /// A client for `url`; `ca` is the PEM file of the only CAs a `rediss://` server's
    /// certificate may chain to; written keys expire after `ttl`. Nothing connects yet.
    pub(super) fn open(
        url: &str,
        timeout: Duration,
        ca: Option<&Path>,
        ttl: Option<Duration>,
    ) -> Result<Redis, RemoteError> {
        let tls = url
            .split_once("://")
            .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("rediss"));
        let client = match (tls, ca) {
            (true, ca) => tls_client(url, ca)?,
            (false, None) => redis::Client::open(url).map_err(|e| bad_url(url, e))?,
            (false, Some(_)) => {
                return Err(RemoteError::BadSetting(format!(
                    "{CA_VAR} is set but {} is not TLS (rediss://): the remote tier stays off \
                     rather than send in the clear what was meant to be encrypted",
                    redact(url)
                )))
            }
        };
        Ok(Redis {
            client,
            idle: Mutex::new(Vec::new()),
            timeout,
            expire_secs: ttl.map(expire_secs),
            shown: redact(url),
        })
    }

    /// Runs `request` on a pooled connection, or a new one. A pooled connection the
    /// server has since closed (idle timeout, restart) is retried once on a new one, so a
    /// stale pool is not mistaken for a failing remote.
    fn with<R>(
        &self,
        request: impl Fn(&mut redis::Connection) -> redis::RedisResult<R>,
    ) -> Result<R, RemoteError> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        if let Some(mut connection) = pooled {
            match request(&mut connection) {
                Ok(result) => {
                    self.give_back(connection);
                    return Ok(result);
                }
                Err(error) if error.is_connection_dropped() => {}
                Err(error) => return Err(backend_error(error)),
            }
        }
        let mut connection = self.connect().map_err(backend_error)?;
        let result = request(&mut connection).map_err(backend_error)?;
        self.give_back(connection);
        Ok(result)
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let connection = self.client.get_connection_with_timeout(self.timeout)?;
        connection.set_read_timeout(Some(self.timeout))?;
        connection.set_write_timeout(Some(self.timeout))?;
        Ok(connection)
    }

    fn give_back(&self, connection: redis::Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < POOL {
            idle.push(connection);
        }
    }
}

/// A time to live in whole seconds for `EX`: rounded up, at least one.
fn expire_secs(ttl: Duration) -> u64 {
    ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)
}

/// Keys whose start `heads` asks for in one pipeline; also the chunk of `STRLEN`s and
/// `DEL`s.
const BATCH: usize = 1000;

/// `*`, `?`, `[` and `\` are glob syntax in `SCAN MATCH`.
fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Backend for Redis {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, RemoteError> {
        self.with(|c| redis::cmd("GET").arg(format!("{PREFIX}{name}")).query(c))
    }

    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), RemoteError> {
        self.with(|c| {
            let mut set = redis::cmd("SET");
            set.arg(format!("{PREFIX}{name}")).arg(bytes);
            if let Some(secs) = self.expire_secs {
                set.arg("EX").arg(secs);
            }
            set.query(c)
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<Listed>, RemoteError> {
        let pattern = format!("{}*", escape_glob(&format!("{PREFIX}{prefix}")));
        let mut names = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = self.with(|c| {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(c)
            })?;
            names.extend(keys);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        names.sort();
        names.dedup(); // SCAN may return a key twice
        let mut out = Vec::with_capacity(names.len());
        for chunk in names.chunks(BATCH) {
            let sizes: Vec<u64> = self.with(|c| {
                let mut pipe = redis::pipe();
                for key in chunk {
                    pipe.cmd("STRLEN").arg(key);
                }
                pipe.query(c)
            })?;
            for (key, size) in chunk.iter().zip(sizes) {
                if let Some(name) = key.strip_prefix(PREFIX) {
                    out.push(Listed {
                        name: name.to_owned(),
                        size,
                        modified: None,
                    });
                }
            }
        }
        Ok(out)
    }

    fn heads(&self, wanted: &[(String, u64)]) -> Result<Vec<Vec<u8>>, RemoteError> {
        let mut out = Vec::with_capacity(wanted.len());
        for chunk in wanted.chunks(BATCH) {
            let starts: Vec<Vec<u8>> = self.with(|c| {
                let mut pipe = redis::pipe();
                for (name, len) in chunk {
                    // GETRANGE's end is inclusive; a key that is gone answers "".
                    let end = len.saturating_sub(1).min(i64::MAX as u64);
                    pipe.cmd("GETRANGE")
                        .arg(format!("{PREFIX}{name}"))
                        .arg(0)
                        .arg(end);
                }
                pipe.query(c)
            })?;
            for ((_, len), start) in chunk.iter().zip(starts) {
                out.push(if *len == 0 { Vec::new() } else { start });
            }
        }
        Ok(out)
    }

    fn delete(&self, names: &[String]) -> Result<(), RemoteError> {
        for chunk in names.chunks(BATCH) {
            let keys: Vec<String> = chunk.iter().map(|n| format!("{PREFIX}{n}")).collect();
            self.with(|c| redis::cmd("DEL").arg(&keys).query::<u64>(c))?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_whole_seconds_rounded_up() {
        assert_eq!(expire_secs(Duration::from_secs(3600)), 3600);
        assert_eq!(expire_secs(Duration::from_millis(1500)), 2);
        assert_eq!(expire_secs(Duration::from_millis(1)), 1);
    }

    #[test]
    fn globs_are_escaped() {
        assert_eq!(escape_glob("a.b_c/"), "a.b_c/");
        assert_eq!(escape_glob("a*?[x]\\"), "a\\*\\?\\[x\\]\\\\");
    }

    #[test]
    fn a_ca_is_for_tls_only_and_must_hold_a_certificate() {
        use super::super::config::{Remote, REMOTE_VAR};
        let remote = Remote::from_lookup(|name| match name {
            REMOTE_VAR => Some("rediss://h:1/0".into()),
            CA_VAR => Some("/etc/team-ca.pem".into()),
            _ => None,
        });
        assert_eq!(
            remote.and_then(|r| r.ca),
            Some(std::path::PathBuf::from("/etc/team-ca.pem"))
        );
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let timeout = Duration::from_millis(10);
        // Plain redis:// with a CA: sent in the clear what was meant to be encrypted.
        std::fs::write(&ca, b"-----BEGIN CERTIFICATE-----\n").unwrap();
        assert!(matches!(
            Redis::open("redis://h:1/0", timeout, Some(&ca), None),
            Err(RemoteError::BadSetting(message)) if message.contains(CA_VAR)
        ));
        if cfg!(feature = "remote-redis-tls") {
            for (bytes, why) in [
                (&b"not a certificate"[..], "no PEM certificate"),
                (b"", "no PEM"),
            ] {
                std::fs::write(&ca, bytes).unwrap();
                assert!(matches!(
                    Redis::open("rediss://h:1/0", timeout, Some(&ca), None),
                    Err(RemoteError::BadSetting(message)) if message.contains(why)
                ));
            }
            let missing = dir.path().join("missing.pem");
            assert!(matches!(
                Redis::open("rediss://h:1/0", timeout, Some(&missing), None),
                Err(RemoteError::BadSetting(message)) if message.contains("cannot read")
            ));
            assert!(Redis::open("rediss://h:1/0", timeout, None, None).is_ok());
            // The `#insecure` suffix (no verification) is not built: it fails, never skips
            // the checks.
            let insecure =
                Redis::open("rediss://127.0.0.1:1/0#insecure", timeout, None, None).unwrap();
            assert!(matches!(
                insecure.get("x"),
                Err(RemoteError::Backend(message)) if message.contains("insecure")
            ));
        } else {
            assert!(matches!(
                Redis::open("rediss://h:1/0", timeout, None, None),
                Err(RemoteError::BadUrl(message)) if message.contains("remote-redis-tls")
            ));
        }
    }

    #[test]
    fn bad_urls_are_refused_without_connecting() {
        assert!(matches!(
            Redis::open("redis://:pw@host:notaport/0", Duration::from_millis(10), None, None),
            Err(RemoteError::BadUrl(message)) if !message.contains("pw")
        ));
    }
}
