//! Redis backend: the `redis` crate's synchronous client, one key per entry. It knows the
//! `redis` client and the backend trait, nothing of entries.
//!
//! Keys are `file_cache/<function dir>/<key hex>`. Connections are kept in a small pool;
//! each has the timeout on connect, on every write and on every read, so a stalled server
//! costs a call about one timeout per step. A connection that saw an error is dropped.
//! Plain `redis://` is unencrypted; use it on a trusted network (and sign entries).

use super::backend::Backend;
use super::config::{redact, RemoteError};
use std::sync::Mutex;
use std::time::Duration;

const PREFIX: &str = "file_cache/";
/// Idle connections kept for reuse.
const POOL: usize = 8;

pub(super) struct Redis {
    client: redis::Client,
    idle: Mutex<Vec<redis::Connection>>,
    timeout: Duration,
    shown: String,
}

fn backend_error(error: redis::RedisError) -> RemoteError {
    RemoteError::Backend(error.to_string())
}

impl Redis {
    pub(super) fn open(url: &str, timeout: Duration) -> Result<Redis, RemoteError> {
        let client = redis::Client::open(url)
            .map_err(|e| RemoteError::BadUrl(format!("{}: {e}", redact(url))))?;
        Ok(Redis {
            client,
            idle: Mutex::new(Vec::new()),
            timeout,
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
            redis::cmd("SET")
                .arg(format!("{PREFIX}{name}"))
                .arg(bytes)
                .query(c)
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, RemoteError> {
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
        for chunk in names.chunks(1000) {
            let sizes: Vec<u64> = self.with(|c| {
                let mut pipe = redis::pipe();
                for key in chunk {
                    pipe.cmd("STRLEN").arg(key);
                }
                pipe.query(c)
            })?;
            for (key, size) in chunk.iter().zip(sizes) {
                if let Some(name) = key.strip_prefix(PREFIX) {
                    out.push((name.to_owned(), size));
                }
            }
        }
        Ok(out)
    }

    fn delete(&self, names: &[String]) -> Result<(), RemoteError> {
        for chunk in names.chunks(1000) {
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
    fn globs_are_escaped() {
        assert_eq!(escape_glob("a.b_c/"), "a.b_c/");
        assert_eq!(escape_glob("a*?[x]\\"), "a\\*\\?\\[x\\]\\\\");
    }

    #[test]
    fn bad_urls_are_refused_without_connecting() {
        assert!(matches!(
            Redis::open("redis://:pw@host:notaport/0", Duration::from_millis(10)),
            Err(RemoteError::BadUrl(message)) if !message.contains("pw")
        ));
    }
}
