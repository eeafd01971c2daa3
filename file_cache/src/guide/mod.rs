//! The guide: how the cache behaves, topic by topic.
//!
//! These pages hold no items: each one is a chapter, to read in any order. The attribute
//! itself, with every option, is documented on [`file_cache`](macro@crate::file_cache).
//!
//! - [`keys`]: what a call's key is made of, and what a function may take and return.
//! - [`invalidation`]: what invalidates an entry and what does not (code, types, `cfg`,
//!   `deps`, `version`, `ttl`).
//! - [`inputs`]: files, directory trees and environment variables as keys (`files`, `env`).
//! - [`caveats`]: what changes results (sets, files and environment, `&mut`, serde
//!   attributes).
//! - [`configuration`]: every `FILE_CACHE_*` environment variable, with its default and
//!   effect; where the files live and how to reset them.
//! - [`guarantees`]: concurrency, crashes, a shared machine, untrusted bytes, no `fsync`.
//! - [`memory_tier`]: the per-process tier above the files.
//! - [`size_bound`]: `FILE_CACHE_MAX_SIZE`, least recently used entries first.
//! - [`remote`]: a remote tier shared by machines (Redis, S3).
//! - [`managing`]: expiry, `stats()`, `is_cached`, clearing, the `file-cache` tool.
//! - [`logging`]: what is logged through the `log` facade, at which level, and how to see it.
//! - [`async_and_methods`]: `async fn`, methods and receivers.
//! - [`codecs`]: how values are encoded, and the values postcard cannot hold.
//! - [`performance`]: what the cache costs, measured against a floor and other crates.

#[doc = include_str!("keys.md")]
pub mod keys {}

#[doc = include_str!("invalidation.md")]
pub mod invalidation {}

#[doc = include_str!("inputs.md")]
pub mod inputs {}

#[doc = include_str!("caveats.md")]
pub mod caveats {}

#[doc = include_str!("configuration.md")]
pub mod configuration {}

#[doc = include_str!("guarantees.md")]
pub mod guarantees {}

#[doc = include_str!("memory_tier.md")]
pub mod memory_tier {}

#[doc = include_str!("size_bound.md")]
pub mod size_bound {}

#[doc = include_str!("remote.md")]
pub mod remote {}

#[doc = include_str!("managing.md")]
pub mod managing {}

#[doc = include_str!("logging.md")]
pub mod logging {}

#[doc = include_str!("async_and_methods.md")]
pub mod async_and_methods {}

#[doc = include_str!("codecs.md")]
pub mod codecs {}

#[doc = include_str!("performance.md")]
pub mod performance {}

/// The examples of the `#[file_cache]` attribute's page, run as doctests: the macro crate
/// that documents it cannot depend on this one, so its own doctests leave them out.
#[cfg(doctest)]
#[doc = include_str!("../../../file_cache_macros/src/file_cache.md")]
pub struct AttributeDoctests;

/// The examples of the `#[file_cache::track]` attribute's page, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../file_cache_macros/src/track.md")]
pub struct TrackDoctests;
