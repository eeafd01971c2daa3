//! Persistent memoization: `#[file_cache]` makes a slow function return at once the second
//! time it is called with the same arguments, in this process or any later one.
//!
//! ```
//! use file_cache::file_cache;
//!
//! #[file_cache]
//! fn slow_square(x: u64) -> u64 {
//!     std::thread::sleep(std::time::Duration::from_millis(200));
//!     x * x
//! }
//!
//! # std::env::set_var("FILE_CACHE_DIR", std::env::temp_dir().join("file_cache_doctest_lib"));
//! assert_eq!(slow_square(12), 144); // computed, then stored on disk
//! assert_eq!(slow_square(12), 144); // read back from the file
//! ```
//!
//! The attribute hashes every argument that is not ignored (they must implement
//! `serde::Serialize`) together with a hash of the function's own tokens, and looks the
//! result up under [`cache_dir()`]. A miss runs the body and stores its value, encoded with
//! postcard, in a checked file written atomically. The cache never makes a call fail: an
//! entry that cannot be read, is damaged or belongs to something else is a miss, and a
//! cache directory that cannot be written only costs the saved time. See the README for
//! what invalidates an entry, where the files live and how to reset them.
//!
//! Living with a cache: [`stats()`] counts hits, misses, bytes and saved time per function,
//! [`is_cached`] asks whether a call would be answered without running it, [`clear`] and
//! [`clear_all`] remove entries, `#[file_cache(ttl = "12h")]` expires them,
//! `FILE_CACHE_MAX_SIZE` bounds the root, and [`inspect`] reads a root from outside (the
//! `file-cache` command-line tool is built on it).
// The one measured hot path that needs it, reading numbers straight into a vector, allows it
// in its own module (codec/flat.rs), with a `SAFETY` comment per block.
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod call;
mod codec;
mod config;
mod disk;
mod entry;
mod fingerprint;
mod flight;
pub mod inspect;
mod key;
mod manage;
mod memory;
mod outputs;
mod pod;
mod site;
mod stats;
mod tracked;
mod verified;

#[cfg(any(feature = "remote-redis", feature = "remote-s3"))]
pub mod remote;
#[cfg(not(any(feature = "remote-redis", feature = "remote-s3")))]
#[path = "remote/off.rs"]
mod remote;

/// Caches a function's results on disk.
///
/// ```
/// use file_cache::file_cache;
///
/// # std::env::set_var("FILE_CACHE_DIR", std::env::temp_dir().join("file_cache_doctest_attr"));
/// /// Doc comments, attributes, visibility and the signature stay as written.
/// #[file_cache(ignore = [logger])]
/// pub fn slow_sum(values: &[u64], scale: u64, logger: &Logger) -> u64 {
///     logger.info("computing");
///     values.iter().sum::<u64>() * scale
/// }
///
/// # struct Logger; impl Logger { fn info(&self, _: &str) {} }
/// let logger = Logger;
/// assert_eq!(slow_sum(&[1, 2, 3], 2, &logger), 12); // runs the body, stores 12
/// assert_eq!(slow_sum(&[1, 2, 3], 2, &logger), 12); // reads 12 back
/// ```
#[doc(inline)]
pub use file_cache_macros::file_cache;
#[doc(inline)]
pub use file_cache_macros::track;
pub use key::{Key, KeyError};
pub use manage::{clear, clear_all};
#[cfg(panic = "unwind")]
pub use manage::{is_cached, is_cached_async};
pub use stats::{stats, FunctionStats};

/// The root directory entries are stored under: `FILE_CACHE_DIR` if set, else
/// `std::env::temp_dir()/file_cache`. Read once, on first use; a relative `FILE_CACHE_DIR`
/// is resolved against the working directory of that moment, so a later change of
/// directory does not move the root.
///
/// Deleting this directory resets every cached function.
///
/// ```
/// let root = file_cache::cache_dir();
/// assert!(root.is_absolute() || std::env::var_os("FILE_CACHE_DIR").is_some());
/// ```
pub fn cache_dir() -> &'static std::path::Path {
    &config::config().root
}

// What compile errors about a cached function's types name (the traits whose bounds are not
// met, and the items whose bounds they are), also reachable outside `__private`: rustc names
// an item by its shortest public path, and a user should never be pointed into `__private`.
// The generated code still names them through `__private`; none of them is public API.
#[doc(hidden)]
pub use call::{call, call_outputs, call_result, call_result_outputs, KeyBuilder};
#[doc(hidden)]
pub use call::{call_async, call_outputs_async, call_result_async, call_result_outputs_async};
#[doc(hidden)]
pub use call::{KeyArg, KeySelf};
#[doc(hidden)]
pub use outputs::{output, replace, Output};
#[doc(hidden)]
pub use tracked::Tracked;

/// The README's examples, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// What the generated code calls. Not public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::call::{call, call_result, decode_untrusted, write_entry, CallKey, KeyBuilder};
    pub use crate::call::{call_async, call_result_async};
    pub use crate::call::{call_outputs, call_result_outputs};
    pub use crate::call::{call_outputs_async, call_result_outputs_async};
    pub use crate::call::{KeyArg, KeySelf};
    pub use crate::codec::Codec;
    pub use crate::outputs::{output, replace, Output, OutputRefs, MAX_OUTPUTS};
    pub use crate::site::{Site, SiteInfo};
    pub use crate::tracked::{combine, Tracked};
    pub use crate::verified::payload_hashes;

    /// How many times this process has written a hit log; for the tests (a hit writes none).
    pub fn hit_log_writes() -> u64 {
        crate::stats::log_writes()
    }

    /// Pruning passes this process has made under `FILE_CACHE_MAX_SIZE`; for the tests.
    pub fn prune_passes() -> u64 {
        crate::disk::size_limit::passes()
    }

    /// Holds (`true`) or releases the background pruning thread, as a scheduler that does
    /// not run it would; for the tests.
    pub fn hold_pruner(held: bool) {
        crate::disk::size_limit::hold_pruner(held)
    }

    /// Traces `T`'s layout fingerprint, as a cached function does once; for the benches.
    pub fn trace_layout<T: serde::de::DeserializeOwned>() -> Option<[u8; 16]> {
        crate::fingerprint::trace::<T>().ok()
    }
}
