//! Building the key of one call: [`KeyBuilder`] hashes the function's identity (code hash,
//! names, how it was compiled), its `Self` type, generic types and arguments into a
//! [`CallKey`], and the traits here check arguments with errors that tell the user what to
//! do. It knows the key's inputs, not where an entry lives or how a value is stored.

use super::files::FilesArg;
use crate::config::{config, Mode};
use crate::key::{Key, KeyError, KeyHasher};
use crate::outputs::Output;
use crate::site::{Problem, Site};
use serde::Serialize;

/// An argument that can be part of a cache key. Implemented for every `Serialize` type; it
/// exists for its error message, which says how to leave an argument out of the key.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of the cache key: it does not implement `serde::Serialize`",
    label = "this argument is hashed into the key, so it must implement `serde::Serialize`",
    note = "if the argument does not change the result (a client, a logger), leave it out of the key with `#[file_cache(ignore = [name])]`"
)]
pub trait KeyArg: Serialize {}

#[diagnostic::do_not_recommend]
impl<T: ?Sized + Serialize> KeyArg for T {}

/// A method's `self`, hashed like any argument unless ignored. Implemented for every
/// `Serialize` type; it exists for its error message.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`self` is part of the cache key, but `{Self}` does not implement `serde::Serialize`",
    label = "`self` is hashed into the key like any argument",
    note = "if the result does not depend on `self`'s fields (a client, a connection), leave it out of the key with `#[file_cache(ignore = [self])]`"
)]
pub trait KeySelf: Serialize {}

#[diagnostic::do_not_recommend]
impl<T: ?Sized + Serialize> KeySelf for T {}

impl KeyBuilder {
    /// Adds what a parameter named in `files = [...]` names on disk: for each of its paths,
    /// the digest of the file's bytes, the directory's tree, or "missing". The parameter's
    /// own value (the path as written) is keyed as any argument, separately.
    pub fn files<T: ?Sized + FilesArg>(&mut self, name: &'static str, value: &T) {
        self.files_digested(name, value, &[]);
    }

    /// The digests of the paths a `files = [...]` parameter of an `async fn` names, taken
    /// before its key is begun without blocking the executor's thread (see
    /// [`FilesDigests`](super::FilesDigests)); [`Self::files_digested`] keys them.
    pub fn files_digests<T: ?Sized + FilesArg>(
        site: &'static Site,
        value: &T,
    ) -> super::FilesDigests {
        super::files::files_digests(site, value)
    }

    /// [`Self::files`] with the digests of the parameter's paths taken already, in order
    /// (by [`Self::files_digests`]); a path without one is hashed here.
    pub fn files_digested<T: ?Sized + FilesArg>(
        &mut self,
        name: &'static str,
        value: &T,
        digests: &[[u8; 32]],
    ) {
        self.hasher.write_label("files");
        self.hasher.write_label(name);
        let index = self.site.digest_index();
        // A call made from inside a cached body: that body's value depends on these paths
        // too, since a hit of this call skips nothing the body would see.
        let in_body = crate::dependencies::in_body();
        let hasher = &mut self.hasher;
        let mut given = digests.iter();
        value.each_path(&mut |path| {
            let digest = match given.next() {
                Some(digest) => *digest,
                None => crate::inputs::digest(path, index),
            };
            hasher.write_raw(&digest);
            if in_body {
                crate::dependencies::record(path, digest);
            }
        });
    }

    /// [`Self::files`] for a parameter whose type is generic (`P: AsRef<Path>`,
    /// `impl AsRef<Path>`): the one path its `AsRef` gives.
    pub fn file_generic(&mut self, name: &'static str, path: &std::path::Path) {
        self.files(name, path);
    }
}

impl KeyBuilder {
    /// Adds one named argument; the bound's error message says how to ignore it.
    pub fn param<T: ?Sized + KeyArg>(&mut self, name: &'static str, value: &T) {
        self.arg(name, value);
    }

    /// Adds a method's `self` (the `Self` value behind any receiver form).
    pub fn receiver<T: ?Sized + KeySelf>(&mut self, value: &T) {
        self.arg("self", value);
    }

    /// Adds where the function is defined, as the type name of a closure in its body:
    /// `crate::m::f::{{closure}}`, `crate::m::Foo<u32>::new::{{closure}}`,
    /// `<crate::Foo as crate::Tr>::new::{{closure}}`. The macro cannot tell an associated
    /// function from a free one, but this name can: it holds the impl (with its type
    /// arguments) and the trait, so two `fn new` in two impls of one module are two
    /// functions, in the key and on disk.
    pub fn place(&mut self, place: &'static str) {
        self.type_param("place", place);
        let info = &self.site().info;
        if self.self_ty().is_none() {
            if let Some(owner) = impl_part(info.module_path, info.name, place) {
                self.self_type(owner);
            }
        }
    }
}

/// The impl part of a function's place (`Foo<u32>` in `m::Foo<u32>::new::{{closure}}`, with
/// `module_path` `m` and `name` `new`); `None` for a free function. A trait impl's place
/// (`<m::Foo as m::Tr>::new`) gives its type, `m::Foo`: the trait is in the key by the
/// whole place, and the function's directory is its type's, as for a method.
fn impl_part(module_path: &str, name: &str, place: &'static str) -> Option<&'static str> {
    let mut path = place;
    while let Some(rest) = path.strip_suffix("::{{closure}}") {
        path = rest;
    }
    let path = strip_generic_args(path);
    let owner_and_module = path.strip_suffix(name)?.strip_suffix("::")?;
    if owner_and_module == module_path {
        return None;
    }
    let owner = owner_and_module
        .strip_prefix(module_path)
        .and_then(|rest| rest.strip_prefix("::"))
        .unwrap_or(owner_and_module);
    // `<impl m::Bar>`, printed for an impl of a type from another module.
    let owner = owner
        .strip_prefix("<impl ")
        .and_then(|rest| rest.strip_suffix('>'))
        .unwrap_or(owner);
    // `<m::Foo<u8> as m::Tr>`: the type.
    let owner = match owner
        .strip_prefix('<')
        .and_then(|rest| rest.strip_suffix('>'))
    {
        Some(inner) => top_level_as(inner).map_or(inner, |at| &inner[..at]),
        None => owner,
    };
    (!owner.is_empty()).then_some(owner)
}

/// `a::f` for `a::f<B<C>, D>`.
fn strip_generic_args(path: &'static str) -> &'static str {
    if !path.ends_with('>') {
        return path;
    }
    let mut depth = 0usize;
    for (at, c) in path.char_indices().rev() {
        match c {
            '>' => depth += 1,
            '<' => {
                depth -= 1;
                if depth == 0 {
                    return &path[..at];
                }
            }
            _ => {}
        }
    }
    path
}

/// Where ` as ` stands outside any `<...>` in `inner`.
fn top_level_as(inner: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (at, c) in inner.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            ' ' if depth == 0 && inner[at..].starts_with(" as ") => return Some(at),
            _ => {}
        }
    }
    None
}

/// Builds the key of one call from the function's identity and its arguments.
#[doc(hidden)]
pub struct KeyBuilder {
    pub(super) site: &'static Site,
    pub(super) hasher: KeyHasher,
    pub(super) self_ty: Option<&'static str>,
    pub(super) failure: Option<(&'static str, KeyError)>,
}

/// The key of one call, with what is needed to find its entry.
#[doc(hidden)]
pub struct CallKey {
    pub(crate) key: Key,
    pub(super) self_ty: Option<&'static str>,
}

impl KeyBuilder {
    /// Starts a key, or returns `None` when this call should bypass the cache.
    pub fn begin(site: &'static Site) -> Option<KeyBuilder> {
        if config().mode == Mode::Off || site.is_uncacheable() {
            return None;
        }
        // What every key of the function starts with (the key format's label, which
        // `KeyHasher::new` writes, the code hash, the names and how the function was
        // compiled), hashed once; each call's stream starts from its digest. That keeps a
        // small call's stream within one blake3 block, where the whole prefix took a second
        // one.
        let prefix = site.state.key_prefix.get_or_init(|| {
            let mut hasher = KeyHasher::new();
            hasher.write_raw(&site.info.code_hash);
            hasher.write_label(site.info.module_path);
            hasher.write_label(site.info.name);
            // Absent from sites written by hand, whose keys stay as they were.
            if !site.info.cfg.is_empty() {
                let cfg: Vec<u8> = site.info.cfg.iter().map(|&value| u8::from(value)).collect();
                hasher.write_label("cfg");
                hasher.write_raw(&cfg);
            }
            *hasher.finish().as_bytes()
        });
        let hasher = KeyHasher::continuing(prefix);
        Some(KeyBuilder {
            site,
            hasher,
            self_ty: None,
            failure: None,
        })
    }

    /// Adds the `Self` type of a method (its concrete name, generic arguments included).
    pub fn self_type(&mut self, type_name: &'static str) {
        self.self_ty = Some(type_name);
        self.hasher.write_label("Self");
        self.hasher.write_label(type_name);
    }

    /// Adds the code hashes of tracked dependencies named through `Self`, which the site's
    /// `static` cannot name.
    pub fn code_deps(&mut self, hashes: &[[u8; 32]]) {
        self.hasher.write_label("deps");
        for hash in hashes {
            self.hasher.write_raw(hash);
        }
    }

    /// Adds the values of the environment variables `names` as they are now (each call reads
    /// them again): a variable that is set, even to nothing, is keyed by its bytes; one that
    /// is not set is keyed as unset, which no value equals.
    pub fn env(&mut self, names: &[&'static str]) {
        self.hasher.write_label("env");
        for name in names {
            self.hasher.write_label(name);
            match std::env::var_os(name) {
                Some(value) => self.hasher.write_raw(value.as_encoded_bytes()),
                // A label where a value's raw bytes would be: a different tag, so unset
                // never reads as any value, the empty one included.
                None => self.hasher.write_label("unset"),
            }
        }
    }

    /// The `Self` type added so far, if any.
    pub(crate) fn self_ty(&self) -> Option<&'static str> {
        self.self_ty
    }

    /// The function this key is for.
    pub(crate) fn site(&self) -> &'static Site {
        self.site
    }

    /// Adds the concrete type `T` of a generic type parameter: its name, and its `TypeId`,
    /// since names can print alike (every closure's is `path::{{closure}}`).
    pub fn type_arg<T: ?Sized>(&mut self, name: &'static str) {
        self.write_type::<T>(name);
    }

    /// Adds a type's name alone, under `name` (where the function is: see `place`).
    pub(crate) fn type_param(&mut self, name: &'static str, type_name: &'static str) {
        self.hasher.write_label(name);
        self.hasher.write_label(type_name);
    }

    /// Adds the value of a const generic parameter.
    pub fn const_param<T: ?Sized + Serialize>(&mut self, name: &'static str, value: &T) {
        self.arg(name, value);
    }

    /// Adds the concrete type behind an `impl Trait` argument, as [`Self::type_arg`] does.
    pub fn arg_type<T: ?Sized>(&mut self, name: &'static str, _value: &T) {
        self.write_type::<T>(name);
    }

    fn write_type<T: ?Sized>(&mut self, name: &'static str) {
        /// Collects the bytes `TypeId`'s `Hash` impl writes (64 of its bits today).
        struct TypeIdBytes {
            bytes: [u8; 16],
            len: usize,
        }
        impl std::hash::Hasher for TypeIdBytes {
            fn write(&mut self, bytes: &[u8]) {
                for &byte in bytes {
                    // Folded, should a later std write more than 16 bytes.
                    self.bytes[self.len % 16] ^= byte;
                    self.len += 1;
                }
            }
            fn finish(&self) -> u64 {
                0
            }
        }
        // `typeid::of`, unlike `TypeId::of`, accepts types that are not `'static`, such as
        // a closure that borrows.
        let mut id = TypeIdBytes {
            bytes: [0; 16],
            len: 0,
        };
        std::hash::Hash::hash(&typeid::of::<T>(), &mut id);
        self.hasher.write_label(name);
        self.hasher.write_label(std::any::type_name::<T>());
        self.hasher.write_raw(&id.bytes[..id.len.min(16)]);
    }

    /// Adds one argument by name.
    pub fn arg<T: ?Sized + Serialize>(&mut self, name: &'static str, value: &T) {
        if self.failure.is_some() {
            return;
        }
        self.hasher.write_label(name);
        if let Err(error) = self.hasher.write_value(value) {
            self.failure = Some((name, error));
        }
    }

    /// Adds a `&mut` parameter's value on entry; its bound is the one the parameter must
    /// meet anyway, so a type that is not serde data is reported once, with what to do.
    pub fn output_param<T: ?Sized + Output>(&mut self, name: &'static str, value: &T) {
        self.arg(name, value);
    }

    /// The finished key, or `None` (logged) when an argument could not be hashed.
    pub fn finish(self) -> Option<CallKey> {
        if let Some((name, error)) = self.failure {
            self.site.warn_once(Problem::Key, || {
                format!(
                    "{}: argument `{name}` cannot be hashed ({error}); calling without the cache",
                    self.site.display_name()
                )
            });
            return None;
        }
        Some(CallKey {
            key: self.hasher.finish(),
            self_ty: self.self_ty,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::impl_part;

    #[test]
    fn impl_parts() {
        assert_eq!(impl_part("c::m", "f", "c::m::f::{{closure}}"), None);
        assert_eq!(impl_part("c::m", "f", "c::m::f<u32>::{{closure}}"), None);
        assert_eq!(
            impl_part("c", "f", "c::f::{{closure}}::{{closure}}"),
            None,
            "inside an async fn"
        );
        assert_eq!(
            impl_part("c::m", "new", "c::m::Foo<u32>::new::{{closure}}"),
            Some("Foo<u32>")
        );
        assert_eq!(
            impl_part("c", "new", "c::<impl c::m::Bar>::new::{{closure}}"),
            Some("c::m::Bar")
        );
        assert_eq!(
            impl_part("c", "new", "<c::Foo<u8> as c::Tr>::new::{{closure}}"),
            Some("c::Foo<u8>")
        );
        assert_eq!(impl_part("c", "f", "c::f<c::m::f::X>::{{closure}}"), None);
    }
}
