//! One cached call: its key ([`builder`]), the lookup through the tiers in their one order
//! ([`lookup`]), the checks any stored bytes pass ([`check`]), the run of the body, and the
//! store ([`write`]); the same for an `async fn` ([`asynchronous`]) and for
//! [`crate::is_cached`]'s probe ([`probe`]). Nothing here can make the call fail. The only
//! layer that orders the tiers; `manage` and the public surface sit above it.

mod asynchronous;
mod builder;
mod check;
mod files;
mod lookup;
mod probe;
mod tiers;
mod write;

pub use asynchronous::{
    call_async, call_outputs_async, call_result_async, call_result_outputs_async,
};
pub use builder::{CallKey, KeyArg, KeyBuilder, KeySelf};
pub use check::decode_untrusted;
pub use files::{FilesArg, FilesDigests};
pub use write::write_entry;

use crate::outputs::{OutputRefs, Returned};
use crate::site::Site;
use lookup::Lookup;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Runs a cached function whose return value is cached as a whole.
///
/// [`call_async`] is the same for an `async fn`.
#[doc(hidden)]
pub fn call<T, F>(site: &'static Site, key: Option<CallKey>, body: F) -> T
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> T,
{
    match Lookup::begin(site, key) {
        Lookup::Hit(value) => value,
        Lookup::Miss(mut miss) => {
            let value = miss.run(body);
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
        Lookup::Miss(mut miss) => {
            let result = miss.run(body);
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
        Lookup::Miss(mut miss) => {
            let (value, outputs) = miss.run(body);
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
        Lookup::Miss(mut miss) => {
            let (result, outputs) = miss.run(body);
            match &result {
                Ok(value) => miss.store(&Returned::View(value, &outputs)),
                Err(_) => miss.fail(),
            }
            (result, None)
        }
        Lookup::Bypass => (body().0, None),
    }
}

#[cfg(test)]
mod tests;
