//! Managing the cache from a program: clearing functions, and asking whether a call is
//! cached. It asks through the call itself (`probing`) and imports nothing of the call
//! path; nothing below imports it.

use crate::config::config;
use crate::disk::{gate, scan, versions};
#[cfg(panic = "unwind")]
use crate::probing::probe;
use std::io;

/// Removes every stored entry of one function: the next call with any arguments runs the
/// body, in this process and in every process started after. Returns how many entries were
/// removed (zero for a function with none, or a path that names no cached function).
///
/// It also empties this process's memory tier. Other processes already running keep the
/// values their own memory tier holds until they evict them or end (see
/// [the memory tier](crate::guide::memory_tier)); [`is_cached`] in such a process says so,
/// since it asks the tiers in the order a call does.
///
/// `function` is the path of the function as [`stats()`](crate::stats) and the `file-cache`
/// tool spell it: `my_crate::module::name`, or `my_crate::module::Type::method` for a
/// method. A path that is not plain ASCII identifiers (`my_crate::café`, a method of
/// `Wrapper<u8>`) has a hash of the whole path in its name (`my_crate::caf_-<16 hex
/// digits>`): pass that name, or the path itself as `std::any::type_name` spells its type
/// (`my_crate::café`, `my_crate::Wrapper<u8>::get`). Either names one function only. A
/// function with a relative `dir = "..."` is found in it; one with an absolute `dir`
/// lives outside the root and is not. The function's hit log and version record go with
/// its entries.
///
/// Other processes may keep storing while it clears: entries they write meanwhile may
/// survive, everything that was there when it looked is removed, and the clear succeeds.
///
/// A read-only cache (`FILE_CACHE_READONLY=1`, or a root this process found it cannot
/// write) is not cleared: the error, of kind
/// [`ReadOnlyFilesystem`](std::io::ErrorKind::ReadOnlyFilesystem), says why, and nothing
/// is removed, this process's memory tier included.
///
/// ```
/// use file_cache::file_cache;
///
/// #[file_cache]
/// fn shout(text: String) -> String {
///     text.to_uppercase()
/// }
///
/// # std::env::set_var("FILE_CACHE_DIR", std::env::temp_dir().join("file_cache_doctest_clear"));
/// # file_cache::clear_all()?;
/// shout("hi".into());
/// shout("ho".into());
/// let stats = file_cache::stats();
/// let shout_stats = stats.iter().find(|s| s.function.ends_with("::shout")).unwrap();
/// assert_eq!(file_cache::clear(&shout_stats.function)?, 2);
/// assert!(!file_cache::is_cached(|| shout("hi".into())));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn clear(function: &str) -> io::Result<u64> {
    gate::check(&config().root)?;
    // Local copies of remote hits still queued would land after the clear.
    crate::disk::later::flush(crate::disk::later::END_WAIT);
    versions::forget();
    // The memory tier does not know which function a key belongs to: it is emptied whole.
    crate::memory::clear_global();
    let chosen = scan::functions(&config().root)?
        .into_iter()
        .filter(|found| found.is_function(function));
    remove_all(chosen)
}

/// Removes each function's directory; a failure does not stop the others, and the first
/// is returned once all were tried.
fn remove_all(functions: impl IntoIterator<Item = scan::FunctionDir>) -> io::Result<u64> {
    let mut removed = 0;
    let mut failure = None;
    for function in functions {
        match function.remove() {
            Ok(n) => removed += n,
            Err(error) => {
                log::debug!(
                    "file_cache: cannot remove {} ({error})",
                    function.path.display()
                );
                failure.get_or_insert(error);
            }
        }
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(removed),
    }
}

/// Removes every entry of every function under the root ([`cache_dir()`](crate::cache_dir)),
/// and returns how many. The root itself stays. A root that does not exist holds nothing.
/// As with [`clear`], other processes may store meanwhile: what they write during the
/// clear may survive it, and the clear still succeeds. A read-only cache refuses, as
/// [`clear`] does.
///
/// ```
/// # std::env::set_var("FILE_CACHE_DIR", std::env::temp_dir().join("file_cache_doctest_clear_all"));
/// #[file_cache::file_cache]
/// fn twice(x: u32) -> u32 {
///     2 * x
/// }
///
/// twice(1);
/// file_cache::clear_all()?;
/// assert!(!file_cache::is_cached(|| twice(1)));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn clear_all() -> io::Result<u64> {
    gate::check(&config().root)?;
    crate::disk::later::flush(crate::disk::later::END_WAIT);
    versions::forget();
    crate::memory::clear_global();
    remove_all(scan::functions(&config().root)?)
}

/// Whether a call would be answered from the cache, asked without running the function.
///
/// `call` is a closure that makes the call, arguments and all, exactly as the program would:
/// `file_cache::is_cached(|| render(&page, 2))`, `is_cached(|| client.ask(&question))`. The
/// first cached function it calls does not run: it builds its key as usual, looks the entry
/// up through the tiers a call reads, in the same order (this process's memory tier, the
/// entry file, then the remote tier when one is set: present, intact, of the right type,
/// not expired, and decodable), and returns the answer straight to `is_cached`. Nothing is
/// stored or counted. A closure that calls no
/// cached function runs to the end, and the answer is `false`.
///
/// Why a closure: the key of a call is made by the function's own generated code from its
/// parameters, generics and `Self` type. Asking through the real call keeps the question
/// exactly the call's, for free functions, methods, trait implementations and generic
/// functions alike, with no second generated item (which a trait implementation could not
/// hold) and no key to rebuild by hand.
///
/// The answer travels back by unwinding, without a panic message, so this needs
/// `panic = "unwind"` (the default); with `panic = "abort"` it does not exist. Arguments
/// are evaluated first, as in any call: compute them outside the closure if they are
/// themselves cached calls, since the first cached call is the one asked about. For an
/// `async fn`, use [`is_cached_async`].
///
/// ```
/// use file_cache::file_cache;
///
/// #[file_cache]
/// fn slow_square(x: u64) -> u64 {
///     std::thread::sleep(std::time::Duration::from_millis(100));
///     x * x
/// }
///
/// # std::env::set_var("FILE_CACHE_DIR", std::env::temp_dir().join("file_cache_doctest_is_cached"));
/// # file_cache::clear_all()?;
/// assert!(!file_cache::is_cached(|| slow_square(7))); // returns at once: nothing ran
/// slow_square(7);
/// assert!(file_cache::is_cached(|| slow_square(7)));
/// # Ok::<(), std::io::Error>(())
/// ```
#[cfg(panic = "unwind")]
pub fn is_cached<R>(call: impl FnOnce() -> R) -> bool {
    probe(|| {
        call();
    })
}

/// [`is_cached`] for an `async fn`: `is_cached_async(|| client.fetch(&url))`. The future
/// is polled once, on this thread, up to the cache lookup that opens every cached
/// `async fn`; it is not awaited and needs no executor.
///
/// ```
/// # std::env::set_var("FILE_CACHE_DIR", std::env::temp_dir().join("file_cache_doctest_is_cached_async"));
/// # file_cache::clear_all()?;
/// #[file_cache::file_cache]
/// async fn fetch(id: u32) -> String {
///     format!("item {id}")
/// }
///
/// assert!(!file_cache::is_cached_async(|| fetch(1)));
/// # Ok::<(), std::io::Error>(())
/// ```
#[cfg(panic = "unwind")]
pub fn is_cached_async<F: std::future::Future>(call: impl FnOnce() -> F) -> bool {
    probe(|| {
        let mut future = std::pin::pin!(call());
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        let _ = future.as_mut().poll(&mut context);
    })
}
