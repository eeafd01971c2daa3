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
/// See the `file_cache` crate's documentation of this re-exported attribute for a runnable
/// example.
///
/// # The key
///
/// An entry is found by a key hashed from:
///
/// - every parameter that is not ignored, by name and value; each must implement
///   `serde::Serialize` (references, `&str`, `&[T]`, `&Path`, `Option<&T>` all do when
///   what they point to does). A parameter that does not is a compile error on it;
/// - the concrete type of every generic type parameter (its name and its `TypeId`, so two
///   closures are two types though their names print alike), including one used only in
///   the return type (`parse::<u32>("7")` and `parse::<String>("7")` are separate entries),
///   the value of every const generic parameter, and the concrete type of every
///   `impl Trait` argument, ignored or not;
/// - how the function was compiled: `cfg!(debug_assertions)`, and the value of every `cfg`
///   predicate in its tokens (`cfg!(..)`, `#[cfg(..)]`, `#[cfg_attr(..)]`), evaluated in the
///   crate that defines it, so debug and release builds, or builds with different features,
///   never share entries;
/// - the *code hash*: a hash of the function's tokens computed at compile time. Editing the
///   signature, the body, or the attribute's options changes it and so invalidates every
///   entry of the function; reformatting, comments and doc comments do not. Code the
///   function *calls* is not part of it, unless named in `deps = [...]`: editing another
///   helper does not invalidate entries.
///
/// - for a method, `self` (the `Self` value, behind any receiver form) unless
///   `ignore = [self]`, and the `Self` type; for every function, where it is defined (impl
///   and trait included), so same-named functions of two impls or modules never share
///   entries.
///
/// Parameters bound by a pattern (`(a, b): (u32, u32)`, `Point { x, .. }: Point`, `_: u8`)
/// are hashed as whole values; arrays are hashed as slices.
///
/// # Options
///
/// - `ignore = [a, b]`: these parameters are not hashed and need no trait bounds, for
///   values that do not change the result (a logger, a progress bar, a connection). A name
///   that is not a parameter is a compile error.
/// - `version = "2"`: a salt in the code hash; change it to invalidate every entry of the
///   function by hand (after a change the cache cannot see, such as data the function reads).
/// - `deps = [rank, crate::text::tokenize, Scorer::score, Config]`: items marked
///   `#[file_cache::track]` whose code hashes are folded into this function's, so that
///   editing them invalidates its entries too (transitively, through their own `deps`).
///   Naming an item that is not tracked is a compile error.
/// - `result = true | false`: a return type whose last path segment is `Result` (including
///   aliases such as `io::Result<T>`) is treated as a result: only `Ok` values are stored and
///   the error type needs no serde impls; every call that failed runs again. `result = false`
///   stores the whole value instead (errors included, which then need serde impls);
///   `result = true` treats a return type with another name (an alias) as a result.
/// - `dir = "path"`: this function's root directory. An absolute path is used as is (it
///   wins over `FILE_CACHE_DIR`); a relative one is joined onto the root in force.
/// - `ttl = "12h"`: entries older than this are a miss, and are replaced. Units `w`
///   (weeks), `d`, `h`, `m` and `s`, each at most once and largest first (`"1h30m"`,
///   `"2w"`), the grammar `file-cache prune --older-than` and
///   `file_cache::inspect::parse_duration` take; anything else, or zero, is a compile error
///   on the string.
///
/// # Forms
///
/// `async fn` (no executor assumed; the future is `Send` when the uncached one is; the
/// small-file I/O runs inline in `poll`), methods with any receiver, associated functions,
/// generic and trait impls, lifetimes and const generics.
///
/// # `&mut` parameters
///
/// A `&mut T` parameter (and `&mut self`, and `&mut [T]`) is replayed: `T` must implement
/// `Serialize` and `DeserializeOwned`; its value on entry is part of the key, its value on
/// exit is stored with the result, and a hit writes it back, so the caller sees what the
/// body would have done. With a `Result`, only `Ok` calls store. Ignore a `&mut` handle that
/// is not data (a logger): what the body does to it then happens on a miss only.
///
/// # The return value
///
/// It must implement `serde::Serialize` and `serde::de::DeserializeOwned` (for a result,
/// its `Ok` type), checked at compile time with the error on the return type. A function
/// without a return type caches `()`: it runs once per key. A panic in the body stores
/// nothing and propagates.
///
/// # What cannot be cached (compile errors)
///
/// - anything that is not a function with a body;
/// - a `&mut` that is not ignored and is not a whole `&mut T` parameter or `&mut self`
///   (`Option<&mut T>`, `self: Pin<&mut Self>`, a pattern containing `&mut`, one under
///   `#[cfg]`), or more than 12 replayed ones;
/// - a closure parameter that is not ignored (`impl Fn(..)`, `dyn FnMut(..)`, a type
///   parameter bounded by a closure trait): no closure implements `Serialize`; ignored, its
///   type is still keyed;
/// - a parameter whose type names a `HashSet` or an `IndexSet` (its items serialize in an
///   order that differs between equal sets, so the key would differ every time): take a
///   `BTreeSet` or a sorted `Vec`, or ignore it;
/// - `ignore` naming something that is not a whole parameter (a name bound inside a
///   pattern, `_`, `self` of a function without one);
/// - a function returning a reference or `impl Trait`: a value read back from disk must
///   be an owned, named type;
/// - a `const fn`, an `extern "ABI"` function, a C-variadic function;
/// - `dir = ""`; a `ttl` that is not a duration.
///
/// Every mistake is reported at once, each on the tokens that cause it, and the function
/// is emitted unchanged beside the errors so its callers still compile.
#[proc_macro_attribute]
pub fn file_cache(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::file_cache(args.into(), item.into()).into()
}

/// Publishes the code hash of a function, method, struct, enum, `const` or `static` at
/// compile time, so that cached functions (and other tracked items) can name it in
/// `deps = [...]` and be invalidated when it is edited.
///
/// `#[file_cache::track(deps = [other, ...])]` folds the named items' hashes into this one's,
/// transitively; a cycle of `deps` is a compile error. The item is left unchanged.
///
/// - On a free function `rank` (in any module or crate), a hidden marker type named `rank`
///   is added beside it: name it as `rank`, `crate::text::rank`, `other_crate::rank`, or
///   import it with the function (`use text::rank;`).
/// - On a method or associated function in an inherent `impl` (one with `self`, or one
///   that mentions `Self`), a hidden associated const is added: name it as `Self::score`
///   or `Scorer::score`. An associated function that mentions neither cannot be told from
///   a free function; give it a `self` or name `Self` in it. Methods of trait impls are
///   not supported (a trait impl cannot hold the extra const): track the functions and
///   types they use instead.
/// - On a struct or enum, the type implements the hidden `Tracked` trait: list it in `deps`
///   when its serde attributes or `Default`s matter beyond what the layout check sees.
/// - On a `const` or `static` (`const SCALE: u64 = 2;`), its type and value expression are
///   hashed, and it is published as a free function is: name it as `SCALE`,
///   `crate::config::SCALE`, or import it. An associated const is published beside it only
///   when it mentions `Self` (then name it as `Self::SCALE` or `Type::SCALE`), for the
///   same reason as an associated function.
#[proc_macro_attribute]
pub fn track(args: TokenStream, item: TokenStream) -> TokenStream {
    track::track(args.into(), item.into()).into()
}
