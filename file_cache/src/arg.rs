//! What the generated code feeds into a key beyond plain arguments: the receiver, the place
//! of the function, and arguments checked by traits whose errors tell the user what to do.

use crate::call::KeyBuilder;
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
