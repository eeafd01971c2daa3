//! The `#[file_cache]` attribute macro of the [`file_cache`] crate.
//!
//! Use it through `file_cache`, which re-exports it together with the runtime that the
//! generated code calls: the expansion names runtime items as `::file_cache::__private::...`,
//! so this crate alone is not enough.
//!
//! The crate is laid out as the macro works: `attr` parses the attribute's options,
//! `model` takes the function apart, `valid` checks it, `code_hash` hashes its tokens, `cfg`
//! finds the `cfg` predicates they test, and `expand` writes the new body.
//!
//! [`file_cache`]: https://docs.rs/file_cache
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod attr;
mod cfg;
mod code_hash;
mod deps;
mod expand;
mod model;
mod track;
mod valid;

use proc_macro::TokenStream;

/// Caches a function's results on disk, so later calls with equal arguments, in this process
/// or any later one, return the stored value instead of running the body.
///
// The examples need the `file_cache` crate, which this one cannot depend on: they are left
// out when this crate's doctests are collected, and run as the `file_cache` crate's.
#[cfg_attr(not(doctest), doc = include_str!("file_cache.md"))]
#[proc_macro_attribute]
pub fn file_cache(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::file_cache(args.into(), item.into()).into()
}

/// Publishes the code hash of a function, method, struct, enum, `const` or `static` at
/// compile time, so that cached functions (and other tracked items) can name it in
/// `deps = [...]` and be invalidated when it is edited.
///
#[cfg_attr(not(doctest), doc = include_str!("track.md"))]
#[proc_macro_attribute]
pub fn track(args: TokenStream, item: TokenStream) -> TokenStream {
    track::track(args.into(), item.into()).into()
}
