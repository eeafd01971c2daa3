//! Persistent memoization: `#[file_cache]` makes a slow function return at once the second
//! time it is called with the same arguments, in this process or any later one.
//!
//! ```
//! # std::env::set_var("FILE_CACHE_DIR", std::env::temp_dir().join("file_cache_doctest_lib"));
//! use file_cache::file_cache;
//!
//! #[file_cache]
//! fn slow_square(x: u64) -> u64 {
//!     std::thread::sleep(std::time::Duration::from_millis(200));
//!     x * x
//! }
//!
//! assert_eq!(slow_square(12), 144); // computed, then stored on disk
//! assert_eq!(slow_square(12), 144); // read back from the file, here and in the next run
//! ```
//!
//! Add `file_cache` and `serde` (with its `derive` feature, for your own argument and return
//! types) to your dependencies; `file_cache` re-exports the attribute.
//!
//! The attribute hashes every argument that is not ignored (they must implement
//! `serde::Serialize`) together with a hash of the function's own tokens, and looks the
//! result up under [`cache_dir()`]. A miss runs the body and stores its value, encoded with
//! postcard, in a checked file written atomically. The cache never makes a call fail: an
//! entry that cannot be read, is damaged or belongs to something else is a miss, and a
//! cache directory that cannot be written only costs the saved time.
//!
//! # The attribute
//!
//! [`#[file_cache]`](macro@file_cache) lists every option with an example: `ignore`,
//! `files`, `env`, `version`, `deps`, `result`, `dir`, `ttl`, `lock`, `memory` and `codec`.
//! [`#[file_cache::track]`](macro@track) marks the helpers, types and constants a cached
//! function names in `deps`, so that editing them invalidates its entries.
//!
//! # Caveats that change results
//!
//! - **Sets**: a `HashSet` serializes in a random order, so a parameter typed `HashSet` is a
//!   compile error, and one inside your own argument type makes calls miss: use a
//!   `BTreeSet`. Maps (`HashMap` included) are hashed order-independently.
//! - **Only the arguments are keyed**, with what the paths listed in `files = [..]` name,
//!   the variables listed in `env = [..]`, and the files the body declares with
//!   [`depends_on`] ([files and environment](crate::guide::inputs)): other files,
//!   environment variables and global state the function reads are not, nor code it calls
//!   unless named in `deps`. Pass what matters as an argument, set a `ttl`, or change
//!   `version`.
//! - **`&mut` parameters are replayed**: their value on entry is keyed, their value on exit
//!   stored and written back on a hit; ignore handles that are not data.
//! - **serde attributes act on keys and values**: a `#[serde(skip)]` field is not keyed, and
//!   comes back as its `Default` on a hit.
//!
//! All of them, with examples: [caveats](crate::guide::caveats).
//!
//! # The guide
//!
//! - [Keys](crate::guide::keys): what a call's key is made of, what a function may take and
//!   return (the `Result` rule, patterns, arrays).
//! - [Inputs](crate::guide::inputs): files, directory trees and environment variables as
//!   parts of the key (`files = [..]`, `env = [..]`), and [`depends_on`].
//! - [Invalidation](crate::guide::invalidation): what invalidates an entry and what does not,
//!   `deps` and `#[file_cache::track]`, the layout fingerprint.
//! - [Configuration](crate::guide::configuration): every `FILE_CACHE_*` environment
//!   variable (`FILE_CACHE_DIR`, `FILE_CACHE=off|refresh`, `FILE_CACHE_MEMORY`,
//!   `FILE_CACHE_MAX_SIZE`, `FILE_CACHE_SHARED`, `FILE_CACHE_REMOTE` and its settings) with
//!   its default and effect; where the files live and how to reset them.
//! - [Guarantees](crate::guide::guarantees): concurrency (one computation per cold key,
//!   across threads and processes), crashes, a shared machine, untrusted bytes, no `fsync`.
//! - [The memory tier](crate::guide::memory_tier): a bounded tier in each process, above the
//!   files.
//! - [The size bound](crate::guide::size_bound): `FILE_CACHE_MAX_SIZE`, least recently used
//!   entries first.
//! - [The remote tier](crate::guide::remote): Redis or S3 shared by machines (feature
//!   `remote`).
//! - [Managing the cache](crate::guide::managing): expiry with `ttl`, [`stats()`],
//!   [`is_cached`], [`clear`] and [`clear_all`], and the `file-cache` command-line tool
//!   (built on [`inspect`], which reads a root from outside a program).
//! - [Logging](crate::guide::logging): everything goes through the [`log`](https://docs.rs/log)
//!   facade (problems at `warn`, hits, misses and stores at `debug`); install any logger,
//!   such as `env_logger` with `RUST_LOG=file_cache=debug`, to see it.
//! - [Async functions and methods](crate::guide::async_and_methods).
//! - [Codecs](crate::guide::codecs): postcard, and MessagePack for the values postcard
//!   cannot hold.
//! - [Performance](crate::guide::performance): measured against a floor and against the
//!   crates users would otherwise pick.
//!
//! # Cargo features
//!
//! None is on by default. `remote` adds the [remote tier](crate::guide::remote) with both
//! backends, TLS included; `remote-redis` (the `redis` crate's synchronous client, about 40
//! more crates to build; `redis://` only), `remote-redis-tls` (the same with `rediss://`)
//! or `remote-s3` (`object_store` on a private tokio runtime) adds one. `mmap` hashes
//! a large input file (`files = [..]`, [`depends_on`]) through a memory map, at `b3sum`'s
//! speed, at the price of a `SIGBUS` should another program truncate it meanwhile
//! ([files and environment](crate::guide::inputs#what-it-costs)).
// `unsafe` is denied everywhere but in the measured hot paths that need it, each allowing it
// for itself with a `SAFETY` comment per block: `pod` (recognising a `Vec<f64>` and friends
// by type id, and viewing numbers as bytes), `codec/flat` (copying such a vector in one go,
// and reading one from its file straight into its memory), `key/hasher` (the sink pool:
// the one static sink, and a sink owned through a pointer), `key/sink` (building a sink in
// place on the heap) and `key/fast` (the prefetch hint for map entries). The `.ci` cycle
// check lists them too, and fails when another module starts using `unsafe`.
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod call;
mod checksum;
mod codec;
mod config;
mod dependencies;
mod disk;
mod entry;
mod fingerprint;
mod flight;
pub mod guide;
mod inputs;
pub mod inspect;
mod key;
mod manage;
mod memory;
mod outputs;
mod pod;
mod probing;
mod site;
mod stats;
mod tracked;
mod verified;

#[cfg(any(feature = "remote-redis", feature = "remote-s3"))]
pub mod remote;
#[cfg(not(any(feature = "remote-redis", feature = "remote-s3")))]
#[path = "remote/off.rs"]
mod remote;

pub use dependencies::depends_on;
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
pub use call::{FilesArg, KeyArg, KeySelf};
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
    pub use crate::call::{FilesArg, FilesDigests, KeyArg, KeySelf};
    pub use crate::codec::Codec;
    pub use crate::inputs::files_hashed;
    pub use crate::outputs::{output, replace, Output, OutputRefs, MAX_OUTPUTS};
    pub use crate::site::{Site, SiteInfo};
    pub use crate::tracked::{combine, Tracked};
    pub use crate::verified::payload_hashes;

    /// How many times this process has written a hit log; for the tests (a hit writes none).
    pub fn hit_log_writes() -> u64 {
        crate::stats::log_writes()
    }

    /// Forgets the digests of `files = [..]` inputs this process remembers, and what it read
    /// of each root's digest index, so that the next key finds them as a new process would;
    /// for the benches.
    pub fn forget_file_digests() {
        crate::inputs::forget();
        crate::disk::digests::forget();
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
