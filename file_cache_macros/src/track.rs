//! `#[file_cache::track]`: publishes an item's code hash at compile time, for the
//! `deps = [...]` of cached functions and of other tracked items (see `deps`).
//!
//! The item itself is emitted unchanged; beside it goes a marker type implementing
//! `Tracked` (a free function), an associated const (a method or associated function), or
//! a `Tracked` impl on the type (a struct or enum). Its hash is blake3 of the item's tokens
//! (as for a cached function: formatting, comments and docs do not count) combined, in a
//! `const`, with the hashes of its own `deps`.

use proc_macro2::{TokenStream, TokenTree};
use quote::{quote, ToTokens};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Ident, Token};

use crate::code_hash::{code_hash, item_hash};
use crate::deps;
use crate::model::ItemFn;

/// The whole attribute. On any error: the errors and the unchanged item.
pub(crate) fn track(args: TokenStream, item: TokenStream) -> TokenStream {
    let (deps, mut errors) = parse_options(args.clone());
    let expanded = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(function) => Ok(track_fn(&args, &function, &deps)),
        Err(_) => match syn::parse2::<syn::Item>(item.clone()) {
            Ok(syn::Item::Struct(s)) => Ok(track_type(&args, &s.ident, &s.generics, &item, &deps)),
            Ok(syn::Item::Enum(e)) => Ok(track_type(&args, &e.ident, &e.generics, &item, &deps)),
            Ok(syn::Item::Const(c)) => Ok(track_value(&args, &c.vis, &c.ident, &item, &deps)),
            Ok(syn::Item::Static(s)) => Ok(track_value(&args, &s.vis, &s.ident, &item, &deps)),
            Ok(syn::Item::Impl(i)) => Err(syn::Error::new(
                i.impl_token.span(),
                "`#[file_cache::track]` is not supported on `impl` blocks; put it on the \
                 inherent methods to track, and for a trait impl, on the functions or \
                 types its methods use",
            )),
            _ => Err(syn::Error::new_spanned(
                &item,
                "`#[file_cache::track]` applies to a function, a method, a struct, an enum, a \
                 `const` or a `static`",
            )),
        },
    };
    let expanded = match expanded {
        Ok(expanded) => expanded,
        Err(error) => {
            push(&mut errors, error);
            TokenStream::new()
        }
    };
    match errors {
        None => quote!(#item #expanded),
        Some(errors) => {
            let errors = errors.to_compile_error();
            quote!(#errors #item)
        }
    }
}

fn track_fn(args: &TokenStream, function: &ItemFn, deps: &[syn::Path]) -> TokenStream {
    let hash = deps::combined(code_hash(args, function), deps);
    let name = &function.sig.ident;
    let vis = &function.vis;
    let in_impl = function.sig.receiver().is_some()
        || mentions_self(function.sig.to_token_stream())
        || mentions_self(function.body.stream());
    publish(vis, name, in_impl, hash)
}

/// A `const` or `static`: its hash covers its type and its value's expression, published
/// as a function's is (a marker type in the type namespace, or an associated const beside
/// an associated const that mentions `Self`).
fn track_value(
    args: &TokenStream,
    vis: &syn::Visibility,
    name: &Ident,
    item: &TokenStream,
    deps: &[syn::Path],
) -> TokenStream {
    let hash = deps::combined(item_hash(args, item.clone()), deps);
    publish(vis, name, mentions_self(item.clone()), hash)
}

/// The hash of the item `name` where `deps` finds it: an associated const inside an impl
/// (`Self::name`, `Type::name`), a marker type named `name` anywhere else.
fn publish(vis: &syn::Visibility, name: &Ident, in_impl: bool, hash: TokenStream) -> TokenStream {
    if in_impl {
        let constant = deps::method_const(name);
        quote! {
            #[doc(hidden)]
            #[allow(non_upper_case_globals)]
            #vis const #constant: [u8; 32] = #hash;
        }
    } else {
        // Named like the item, in the type namespace: a `use` of the item imports it.
        let marker = name;
        quote! {
            #[doc(hidden)]
            #[allow(non_camel_case_types, dead_code)]
            #vis struct #marker {}

            impl ::file_cache::__private::Tracked for #marker {
                const CODE_HASH: [u8; 32] = #hash;
            }
        }
    }
}

fn track_type(
    args: &TokenStream,
    ident: &Ident,
    generics: &syn::Generics,
    item: &TokenStream,
    deps: &[syn::Path],
) -> TokenStream {
    let hash = deps::combined(item_hash(args, item.clone()), deps);
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    quote! {
        impl #impl_generics ::file_cache::__private::Tracked for #ident #ty_generics #where_clause {
            const CODE_HASH: [u8; 32] = #hash;
        }
    }
}

/// Whether `Self` appears anywhere: only items inside an `impl` (or trait) can say it.
fn mentions_self(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|token| match token {
        TokenTree::Ident(ident) => ident == "Self",
        TokenTree::Group(group) => mentions_self(group.stream()),
        _ => false,
    })
}

/// `deps = [...]`, the only option. Never fails: mistakes are returned combined.
fn parse_options(args: TokenStream) -> (Vec<syn::Path>, Option<syn::Error>) {
    let mut deps = Vec::new();
    let mut errors = None;
    let parsed = (|input: ParseStream| {
        let mut seen = false;
        while !input.is_empty() {
            let name = input.call(Ident::parse_any)?;
            if name != "deps" {
                return Err(syn::Error::new(
                    name.span(),
                    format!("unknown option `{name}`; expected `deps = [path, ...]`"),
                ));
            }
            if seen {
                push(
                    &mut errors,
                    syn::Error::new(name.span(), "option `deps` is given more than once"),
                );
            }
            seen = true;
            input.parse::<Token![=]>()?;
            deps.extend(input.call(deps::parse_list)?);
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(())
    })
    .parse2(args);
    if let Err(error) = parsed {
        push(&mut errors, error);
    }
    (deps, errors)
}

fn push(errors: &mut Option<syn::Error>, error: syn::Error) {
    match errors {
        Some(errors) => errors.combine(error),
        None => *errors = Some(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(args: TokenStream, item: TokenStream) -> String {
        track(args, item).to_string().replace(' ', "")
    }

    #[test]
    fn a_free_function_gets_a_marker_type() {
        let out = expand(
            quote!(),
            quote!(
                pub fn rank(x: u32) -> u32 {
                    x
                }
            ),
        );
        assert!(out.contains("pubstructrank{}"), "{out}");
        assert!(out.contains("Trackedforrank"), "{out}");
    }

    #[test]
    fn a_method_gets_an_associated_const() {
        let out = expand(
            quote!(deps = [rank]),
            quote!(
                fn score(&self) -> u32 {
                    1
                }
            ),
        );
        assert!(
            out.contains("const__file_cache_track_score:[u8;32]"),
            "{out}"
        );
        assert!(out.contains("combine"), "{out}");
        let out = expand(
            quote!(),
            quote!(
                fn new() -> Self {
                    Self
                }
            ),
        );
        assert!(out.contains("const__file_cache_track_new"), "{out}");
    }

    #[test]
    fn types_implement_tracked() {
        let out = expand(
            quote!(),
            quote!(
                struct Config<T: Clone> {
                    a: T,
                }
            ),
        );
        assert!(
            out.contains("impl<T:Clone>::file_cache::__private::TrackedforConfig<T>"),
            "{out}"
        );
    }

    #[test]
    fn consts_and_statics_get_a_marker_type() {
        let out = expand(
            quote!(),
            quote!(
                pub const SCALE: u64 = 2;
            ),
        );
        assert!(out.starts_with("pubconstSCALE:u64=2;"), "{out}");
        assert!(out.contains("pubstructSCALE{}"), "{out}");
        assert!(out.contains("TrackedforSCALE"), "{out}");
        let out = expand(
            quote!(deps = [SCALE]),
            quote!(
                static LIMIT: u32 = 10;
            ),
        );
        assert!(out.contains("structLIMIT{}"), "{out}");
        assert!(out.contains("combine"), "{out}");
        // An associated const that names `Self` is in an impl.
        let out = expand(
            quote!(),
            quote!(
                const TWICE: u64 = Self::ONCE * 2;
            ),
        );
        assert!(
            out.contains("const__file_cache_track_TWICE:[u8;32]"),
            "{out}"
        );
    }

    #[test]
    fn a_const_hashes_its_type_and_value() {
        let hash = |item: TokenStream| {
            let out = expand(quote!(), item);
            let start = out.find("CODE_HASH:[u8;32]=").expect("a hash");
            out[start..].to_owned()
        };
        let two = hash(quote!(
            const SCALE: u64 = 2;
        ));
        assert_eq!(
            two,
            hash(quote!(
                const SCALE: u64 = /* same */ 2;
            ))
        );
        assert_ne!(
            two,
            hash(quote!(
                const SCALE: u64 = 3;
            ))
        );
        assert_ne!(
            two,
            hash(quote!(
                const SCALE: u32 = 2;
            ))
        );
        assert_ne!(
            two,
            hash(quote!(
                static SCALE: u64 = 2;
            ))
        );
    }

    #[test]
    fn mistakes_are_errors_beside_the_unchanged_item() {
        for (args, item) in [
            (
                quote!(deps = rank),
                quote!(
                    fn f() {}
                ),
            ),
            (
                quote!(ignore = [x]),
                quote!(
                    fn f() {}
                ),
            ),
            (quote!(), quote!(impl Trait for X {})),
            (
                quote!(),
                quote!(
                    mod m {}
                ),
            ),
            (
                quote!(),
                quote!(
                    type Alias = u8;
                ),
            ),
        ] {
            let out = expand(args, item);
            assert!(out.contains("compile_error"), "{out}");
        }
    }
}
