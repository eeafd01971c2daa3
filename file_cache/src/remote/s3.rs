//! S3-compatible object storage: the `object_store` crate, driven by a private one-thread
//! tokio runtime so the call path stays synchronous and no runtime is asked of the user. It
//! knows the `object_store` client and the backend trait, nothing of entries.
//!
//! Objects are `<prefix>/<function dir>/<key hex>`. Credentials, region and endpoint come
//! from the usual `AWS_*` variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL`...). The timeout bounds connecting and each read
//! (waiting for the response, and for each next piece of its body); retries are off, the
//! circuit breaker decides when to try again.
//!
//! HTTPS verifies the server's certificate against the system's trusted roots, or only
//! against the CAs of `FILE_CACHE_REMOTE_CA`. With a time to live, an object whose
//! `Last-Modified` is older than that is a miss (S3 itself deletes nothing: that is the
//! bucket's lifecycle rules' job).

use super::backend::{Backend, Listed};
use super::config::{read_ca, RemoteError, CA_VAR};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    Certificate, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use std::future::Future;
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest a caller waits for any one request, whatever the client does.
const SAFETY_CAP: Duration = Duration::from_secs(120);

/// Ranged reads `heads` has in flight at once.
const CONCURRENT_HEADS: usize = 32;

pub(super) struct S3 {
    store: Arc<AmazonS3>,
    prefix: String,
    runtime: tokio::runtime::Runtime,
    ttl: Option<Duration>,
    shown: String,
}

/// An object's `Last-Modified` as a time of this machine's clock.
fn modified(meta: &object_store::ObjectMeta) -> Option<SystemTime> {
    let ms = meta.last_modified.timestamp_millis();
    match u64::try_from(ms) {
        Ok(ms) => UNIX_EPOCH.checked_add(Duration::from_millis(ms)),
        Err(_) => UNIX_EPOCH.checked_sub(Duration::from_millis(ms.unsigned_abs())),
    }
}

/// Whether an object written at `modified` has outlived `ttl` at `now` (one from a clock
/// ahead of this machine's has not).
fn expired(modified: Option<SystemTime>, ttl: Option<Duration>, now: SystemTime) -> bool {
    match (modified, ttl) {
        (Some(modified), Some(ttl)) => now.duration_since(modified).is_ok_and(|age| age > ttl),
        _ => false,
    }
}

/// The client options for `ca` (the PEM file of the only CAs trusted, or the system's
/// roots), refusing a CA for a plain-HTTP endpoint.
fn client_options(
    timeout: Duration,
    plain_http: bool,
    ca: Option<&std::path::Path>,
) -> Result<ClientOptions, RemoteError> {
    let mut options = ClientOptions::new()
        .with_connect_timeout(timeout)
        .with_read_timeout(timeout)
        .with_timeout_disabled()
        .with_allow_http(plain_http);
    let Some(ca) = ca else { return Ok(options) };
    if plain_http {
        return Err(RemoteError::BadSetting(format!(
            "{CA_VAR} is set but the S3 endpoint is plain http://: the remote tier stays off \
             rather than send in the clear what was meant to be encrypted"
        )));
    }
    let certificates = Certificate::from_pem_bundle(&read_ca(ca)?).map_err(|e| {
        RemoteError::BadSetting(format!(
            "{CA_VAR}={}: {e}; the remote tier stays off rather than trust other certificates",
            ca.display()
        ))
    })?;
    if certificates.is_empty() {
        return Err(RemoteError::BadSetting(format!(
            "{CA_VAR}={}: it holds no certificate; the remote tier stays off rather than trust \
             other certificates",
            ca.display()
        )));
    }
    for certificate in certificates {
        options = options.with_root_certificate(certificate);
    }
    // These CAs only, as for `rediss://`: not added to the system's roots.
    Ok(options.with_no_system_certificates(true))
}

/// The error with its causes: what failed under "error sending request" (a certificate
/// that does not verify, a refused connection) is in them.
fn backend_error(error: object_store::Error) -> RemoteError {
    let mut message = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(error) = cause {
        let text = error.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = error.source();
    }
    RemoteError::Backend(message)
}

impl S3 {
    /// A client for `url`; `ca` is the PEM file of the only CAs an HTTPS endpoint's
    /// certificate may chain to; objects older than `ttl` are misses. Nothing connects yet.
    pub(super) fn open(
        url: &str,
        timeout: Duration,
        ca: Option<&std::path::Path>,
        ttl: Option<Duration>,
    ) -> Result<S3, RemoteError> {
        let bad = |reason: &str| RemoteError::BadUrl(format!("{url}: {reason}"));
        let rest = url
            .split_once("://")
            .map(|(_, rest)| rest)
            .ok_or_else(|| bad("expected s3://bucket/prefix"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket"));
        }
        let prefix = prefix.trim_matches('/').to_owned();
        let endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
            .iter()
            .find_map(|name| std::env::var(name).ok());
        let plain_http = endpoint
            .as_deref()
            .is_some_and(|e| e.to_ascii_lowercase().starts_with("http://"));
        let options = client_options(timeout, plain_http, ca)?;
        let retry = RetryConfig {
            max_retries: 0,
            retry_timeout: timeout,
            ..RetryConfig::default()
        };
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_client_options(options)
            .with_retry(retry)
            .build()
            .map_err(|e| bad(&e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("file_cache-s3")
            .enable_all()
            .build()
            .map_err(|e| RemoteError::Backend(format!("cannot start the S3 client: {e}")))?;
        Ok(S3 {
            store: Arc::new(store),
            prefix,
            runtime,
            ttl,
            shown: format!("s3://{bucket}/{}", prefix_shown(rest)),
        })
    }

    fn path(&self, name: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(name)
        } else {
            Path::from(format!("{}/{name}", self.prefix))
        }
    }

    /// Runs `request` on the private runtime and waits for it. Spawning (not `block_on`)
    /// works from any thread, including one inside the user's own tokio runtime.
    fn run<R, F>(&self, request: F) -> Result<R, RemoteError>
    where
        F: Future<Output = Result<R, RemoteError>> + Send + 'static,
        R: Send + 'static,
    {
        let (sender, receiver) = sync_channel(1);
        self.runtime.spawn(async move {
            // The caller may have gone; nothing to do then.
            let _ = sender.send(request.await);
        });
        // The client's timeouts end a stalled request; this cap only guards against one
        // that never ends at all (a large value may legitimately take a while).
        match receiver.recv_timeout(SAFETY_CAP) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(RemoteError::Backend(format!(
                "no answer from S3 in {} s",
                SAFETY_CAP.as_secs()
            ))),
            Err(RecvTimeoutError::Disconnected) => {
                Err(RemoteError::Backend("the S3 request was dropped".into()))
            }
        }
    }
}

/// `bucket/prefix` as given, for messages (an S3 URL carries no credentials).
fn prefix_shown(rest: &str) -> &str {
    rest.split_once('/').map_or("", |(_, prefix)| prefix)
}

impl Backend for S3 {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, RemoteError> {
        let store = Arc::clone(&self.store);
        let path = self.path(name);
        let ttl = self.ttl;
        self.run(async move {
            match store.get(&path).await {
                Ok(result) if expired(modified(&result.meta), ttl, SystemTime::now()) => {
                    log::debug!(
                        "file_cache: remote object {path} is older than the remote time to \
                         live: a miss"
                    );
                    Ok(None)
                }
                Ok(result) => Ok(Some(result.bytes().await.map_err(backend_error)?.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(error) => Err(backend_error(error)),
            }
        })
    }

    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), RemoteError> {
        let store = Arc::clone(&self.store);
        let path = self.path(name);
        let payload = PutPayload::from(bytes.to_vec());
        self.run(async move {
            store.put(&path, payload).await.map_err(backend_error)?;
            Ok(())
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<Listed>, RemoteError> {
        use futures_util::TryStreamExt;
        let store = Arc::clone(&self.store);
        let root = self.prefix.clone();
        let under = match (root.is_empty(), prefix.trim_end_matches('/')) {
            (_, "") if root.is_empty() => None,
            (_, "") => Some(Path::from(root.clone())),
            (true, dir) => Some(Path::from(dir)),
            (false, dir) => Some(Path::from(format!("{root}/{dir}"))),
        };
        self.run(async move {
            let objects: Vec<_> = store
                .list(under.as_ref())
                .try_collect()
                .await
                .map_err(backend_error)?;
            let strip = if root.is_empty() {
                String::new()
            } else {
                format!("{root}/")
            };
            Ok(objects
                .into_iter()
                .filter_map(|meta| {
                    let name = meta.location.as_ref().strip_prefix(&strip)?.to_owned();
                    Some(Listed {
                        name,
                        size: meta.size,
                        modified: modified(&meta),
                    })
                })
                .collect())
        })
    }

    fn heads(&self, wanted: &[(String, u64)]) -> Result<Vec<Vec<u8>>, RemoteError> {
        let mut out = Vec::with_capacity(wanted.len());
        for chunk in wanted.chunks(CONCURRENT_HEADS) {
            let reads: Vec<(Path, u64)> = chunk
                .iter()
                .map(|(name, len)| (self.path(name), *len))
                .collect();
            let store = Arc::clone(&self.store);
            let starts = self.run(async move {
                let tasks: Vec<_> = reads
                    .into_iter()
                    .map(|(path, len)| {
                        let store = Arc::clone(&store);
                        tokio::spawn(async move {
                            if len == 0 {
                                return Ok(Vec::new());
                            }
                            match store.get_range(&path, 0..len).await {
                                Ok(bytes) => Ok(bytes.to_vec()),
                                Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
                                Err(error) => Err(backend_error(error)),
                            }
                        })
                    })
                    .collect();
                let mut starts = Vec::with_capacity(tasks.len());
                for task in tasks {
                    let start = task
                        .await
                        .map_err(|e| RemoteError::Backend(format!("a ranged read failed: {e}")))?;
                    starts.push(start?);
                }
                Ok(starts)
            })?;
            out.extend(starts);
        }
        Ok(out)
    }

    fn delete(&self, names: &[String]) -> Result<(), RemoteError> {
        use futures_util::TryStreamExt;
        if names.is_empty() {
            return Ok(());
        }
        let store = Arc::clone(&self.store);
        let paths: Vec<Path> = names.iter().map(|name| self.path(name)).collect();
        // Bulk deletes (`DeleteObjects`), a thousand objects a request.
        self.run(async move {
            let paths = futures_util::stream::iter(paths.into_iter().map(Ok));
            let _: Vec<Path> = store
                .delete_stream(Box::pin(paths))
                .try_collect()
                .await
                .map_err(backend_error)?;
            Ok(())
        })
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_expires_once_older_than_the_time_to_live() {
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        let written = |ago: Duration| Some(now - ago);
        assert!(!expired(written(hour * 2), None, now), "no time to live");
        assert!(!expired(None, Some(hour), now), "no Last-Modified");
        assert!(!expired(written(hour / 2), Some(hour), now));
        assert!(expired(written(hour * 2), Some(hour), now));
        // Written by a clock ahead of this one: not old.
        assert!(!expired(Some(now + hour), Some(hour), now));
    }

    #[test]
    fn a_ca_is_the_only_trust_for_https_and_refused_for_http() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let timeout = Duration::from_millis(10);
        std::fs::write(&ca, b"no certificate here").unwrap();
        assert!(matches!(
            client_options(timeout, false, Some(&ca)),
            Err(RemoteError::BadSetting(message)) if message.contains("no PEM certificate")
        ));
        // Marked as one, but not a certificate.
        std::fs::write(
            &ca,
            b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(matches!(
            client_options(timeout, false, Some(&ca)),
            Err(RemoteError::BadSetting(message)) if message.contains(CA_VAR)
        ));
        assert!(matches!(
            client_options(timeout, true, Some(&ca)),
            Err(RemoteError::BadSetting(message)) if message.contains("http://")
        ));
        assert!(matches!(
            client_options(timeout, false, Some(&dir.path().join("missing.pem"))),
            Err(RemoteError::BadSetting(message)) if message.contains("cannot read")
        ));
        assert!(client_options(timeout, true, None).is_ok());
    }

    #[test]
    fn a_ca_replaces_the_system_roots() {
        use object_store::ClientConfigKey::NoSystemCertificates;
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, TEST_CA).unwrap();
        let timeout = Duration::from_millis(10);
        let options = client_options(timeout, false, Some(&ca)).unwrap();
        assert_eq!(
            options.get_config_value(&NoSystemCertificates).as_deref(),
            Some("true")
        );
        let system = client_options(timeout, false, None).unwrap();
        assert_eq!(
            system.get_config_value(&NoSystemCertificates).as_deref(),
            Some("false")
        );
    }

    /// A self-signed CA certificate (made once with openssl; its key is gone).
    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBkTCCATegAwIBAgIUTHzOXBUMYslJLvNFr1Nm7b6godAwCgYIKoZIzj0EAwIw
HTEbMBkGA1UEAwwSZmlsZV9jYWNoZSB0ZXN0IENBMCAXDTI2MTIwNjE2MDQyMloY
DzIxMjYxMTEyMTYwNDIyWjAdMRswGQYDVQQDDBJmaWxlX2NhY2hlIHRlc3QgQ0Ew
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAS5lzsVmAOThMofW3PC2LLzCIQJ4eBL
xZ6aUfLX8jyBhXZEl1Z2zuG6j77vONZD8TGsqiP8OnDu/JWEmdIEUmuDo1MwUTAd
BgNVHQ4EFgQUDRC5/MaUw54y7e6aR62PBRDNRRswHwYDVR0jBBgwFoAUDRC5/MaU
w54y7e6aR62PBRDNRRswDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBF
AiEAxRiF9czTfE7Et7DSZjp1h8ukwu5U7OkeH0mekFa75i8CICXDvNzdqDMSqS+b
4pVhz4d4Lf/TZI4fxduriFIJr21h
-----END CERTIFICATE-----
";
}
