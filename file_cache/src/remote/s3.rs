//! S3-compatible object storage: the `object_store` crate, driven by a private one-thread
//! tokio runtime so the call path stays synchronous and no runtime is asked of the user. It
//! knows the `object_store` client and the backend trait, nothing of entries.
//!
//! Objects are `<prefix>/<function dir>/<key hex>`. Credentials, region and endpoint come
//! from the usual `AWS_*` variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL`...). The timeout bounds connecting and each read
//! (waiting for the response, and for each next piece of its body); retries are off, the
//! circuit breaker decides when to try again.

use super::backend::Backend;
use super::config::RemoteError;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use std::future::Future;
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

/// Longest a caller waits for any one request, whatever the client does.
const SAFETY_CAP: Duration = Duration::from_secs(120);

pub(super) struct S3 {
    store: Arc<AmazonS3>,
    prefix: String,
    runtime: tokio::runtime::Runtime,
    shown: String,
}

fn backend_error(error: object_store::Error) -> RemoteError {
    RemoteError::Backend(error.to_string())
}

impl S3 {
    pub(super) fn open(url: &str, timeout: Duration) -> Result<S3, RemoteError> {
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
        let options = ClientOptions::new()
            .with_connect_timeout(timeout)
            .with_read_timeout(timeout)
            .with_timeout_disabled()
            .with_allow_http(plain_http);
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
        self.run(async move {
            match store.get(&path).await {
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

    fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, RemoteError> {
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
                    Some((name, meta.size))
                })
                .collect())
        })
    }

    fn delete(&self, names: &[String]) -> Result<(), RemoteError> {
        for name in names {
            let store = Arc::clone(&self.store);
            let path = self.path(name);
            self.run(async move { store.delete(&path).await.map_err(backend_error) })?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }
}
