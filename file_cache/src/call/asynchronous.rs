//! Cached `async fn`s: the same lookup and store as a blocking call, around a future. It
//! drives the lookup's steps from `poll`; it knows no tier of its own.
//!
//! No executor is assumed: these are plain `async fn`s, so they run under tokio, smol,
//! async-std or a hand-rolled `block_on` alike. The lookup (one small file read) and the
//! store (one small write and a rename) run inline, inside `poll`, on whatever thread polls
//! the future. They take microseconds, less than a scheduler round trip to a blocking pool
//! would, so they are not moved off the executor's thread (see the README for the measured
//! cost). A future dropped before its body finishes stores nothing.
//!
//! Waiting never blocks the executor's thread: a call whose key another caller of this
//! process is computing waits through its `Waker`, and one whose entry's lock another
//! process holds tries again after a short, growing delay ([`BeginFuture`]).

use super::builder::CallKey;
use super::lookup::{BeginFuture, Lookup, Miss};
use crate::outputs::{OutputRefs, Returned};
use crate::site::Site;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;

/// Runs a cached `async fn` whose return value is cached as a whole.
///
/// The returned future is `Send` when `body` and `T` are.
#[doc(hidden)]
pub async fn call_async<T, F>(site: &'static Site, key: Option<CallKey>, body: F) -> T
where
    T: Serialize + DeserializeOwned,
    F: Future<Output = T>,
{
    match BeginFuture::new(site, key).await {
        Lookup::Hit(value) => value,
        Lookup::Miss(mut miss) => {
            let value = computing(&mut miss, body).await;
            miss.store(&value);
            value
        }
        Lookup::Bypass => body.await,
    }
}

/// Runs a cached `async fn` returning `Result`: only `Ok` values are stored.
#[doc(hidden)]
pub async fn call_result_async<T, E, F>(
    site: &'static Site,
    key: Option<CallKey>,
    body: F,
) -> Result<T, E>
where
    T: Serialize + DeserializeOwned,
    F: Future<Output = Result<T, E>>,
{
    match BeginFuture::new(site, key).await {
        Lookup::Hit(value) => Ok(value),
        Lookup::Miss(mut miss) => {
            let result = computing(&mut miss, body).await;
            match &result {
                Ok(value) => miss.store(value),
                Err(_) => miss.fail(),
            }
            result
        }
        Lookup::Bypass => body.await,
    }
}

/// Runs a cached `async fn` with `&mut` parameters: see [`call_outputs`](crate::call::call_outputs).
#[doc(hidden)]
pub async fn call_outputs_async<T, O, F>(
    site: &'static Site,
    key: Option<CallKey>,
    body: F,
) -> (T, Option<O::Values>)
where
    T: Serialize + DeserializeOwned,
    O: OutputRefs,
    F: Future<Output = (T, O)>,
{
    match BeginFuture::<Returned<'_, T, O>>::new(site, key).await {
        Lookup::Hit(stored) => match stored.into_owned() {
            Some((value, outputs)) => (value, Some(outputs)),
            None => (body.await.0, None),
        },
        Lookup::Miss(mut miss) => {
            let (value, outputs) = computing(&mut miss, body).await;
            miss.store(&Returned::View(&value, &outputs));
            (value, None)
        }
        Lookup::Bypass => (body.await.0, None),
    }
}

/// [`call_outputs_async`] for an `async fn` returning `Result`: only `Ok` values are stored.
#[doc(hidden)]
pub async fn call_result_outputs_async<T, E, O, F>(
    site: &'static Site,
    key: Option<CallKey>,
    body: F,
) -> (Result<T, E>, Option<O::Values>)
where
    T: Serialize + DeserializeOwned,
    O: OutputRefs,
    F: Future<Output = (Result<T, E>, O)>,
{
    match BeginFuture::<Returned<'_, T, O>>::new(site, key).await {
        Lookup::Hit(stored) => match stored.into_owned() {
            Some((value, outputs)) => (Ok(value), Some(outputs)),
            None => (body.await.0, None),
        },
        Lookup::Miss(mut miss) => {
            let (result, outputs) = computing(&mut miss, body).await;
            match &result {
                Ok(value) => miss.store(&Returned::View(value, &outputs)),
                Err(_) => miss.fail(),
            }
            (result, None)
        }
        Lookup::Bypass => (body.await.0, None),
    }
}

/// Runs `body` as [`Miss::run`] runs a blocking one, around each poll: its key marked as
/// computed on whichever thread polls it, for as long as the poll lasts (a call the body
/// makes to the same key runs inside such a poll), and its dependency frame on that
/// thread's stack, so that what it records follows the task, not the thread.
async fn computing<F: Future>(miss: &mut Miss, body: F) -> F::Output {
    let mut body = std::pin::pin!(body);
    std::future::poll_fn(move |cx| miss.run(|| body.as_mut().poll(cx))).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::SiteInfo;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    /// The smallest executor: polls on this thread until the future is ready.
    fn block_on<F: Future>(future: F) -> F::Output {
        struct Noop;
        impl Wake for Noop {
            fn wake(self: Arc<Self>) {}
        }
        let waker = Waker::from(Arc::new(Noop));
        let mut context = Context::from_waker(&waker);
        let mut future = pin!(future);
        loop {
            if let Poll::Ready(value) = future.as_mut().poll(&mut context) {
                return value;
            }
        }
    }

    fn assert_send<T: Send>(_: &T) {}

    static SITE: Site = Site::new(SiteInfo {
        module_path: "file_cache::call_async::tests",
        name: "f",
        ..SiteInfo::DEFAULT
    });

    #[test]
    fn without_a_key_the_body_runs() {
        let future = call_async(&SITE, None, async { 7u32 });
        assert_send(&future);
        assert_eq!(block_on(future), 7);
        let result: Result<u32, String> = block_on(call_result_async(&SITE, None, async {
            Err("no".to_owned())
        }));
        assert_eq!(result, Err("no".to_owned()));
    }
}
