//! Checks that the function can be cached, each failure on the tokens that cause it. All
//! failures are combined so the user sees every one at once.

use syn::visit::Visit;

use crate::attr::Options;
use crate::model::{reference_in, Binding, Function, TypeFinder};

/// Every reason `function` with `options` cannot be expanded, combined; `Ok` if none.
pub(crate) fn check(function: &Function, options: &Options) -> syn::Result<()> {
    let mut errors = Errors::default();
    let sig = &function.item.sig;
    let name = &sig.ident;

    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new(
            constness.span,
            "`#[file_cache]` cannot cache a `const fn`: a const fn runs at compile time, \
             where there is no cache to read or write",
        ));
    }
    // A C-variadic function always has an ABI: one error says it.
    if let (Some(abi), None) = (&sig.abi, &sig.variadic) {
        errors.push(syn::Error::new_spanned(
            abi,
            "`#[file_cache]` cannot cache an `extern` ABI function; cache a Rust function \
             and call it from the `extern` one",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "`#[file_cache]` cannot cache a C-variadic function: its `...` arguments cannot be hashed",
        ));
    }
    if let Some(receiver) = &function.receiver {
        let mut finder = TypeFinder::default();
        finder.visit_type(&crate::model::receiver_type(receiver));
        let ignored = options.ignore.iter().any(|name| name == "self");
        if finder.mut_ref.is_some() && !ignored && !function.has_mut_self() {
            errors.push(syn::Error::new_spanned(
                receiver,
                "a cached call can replay `&mut self` (stored with the result, written back on \
                 a hit), but not `self` behind another type around `&mut`; if the result does \
                 not depend on `self`, add `self` to `ignore = [...]` (the body then runs, and \
                 mutates `self`, only on a miss)",
            ));
        }
    }

    let closure_params = closure_type_params(&sig.generics);
    for param in &function.params {
        let ignored = param.ident().is_some_and(|ident| options.is_ignored(ident));
        // `_` binds nothing, so nothing can be mutated through it: it is hashed like a value.
        let observed = !matches!(param.binding, Binding::Wild);
        if param.mut_ref.is_some() && observed && !ignored && !param.is_output() {
            let message = match param.ident() {
                Some(ident) if !param.cfg_attrs.is_empty() => format!(
                    "a cached call cannot replay a `&mut` parameter under `#[cfg]`; add \
                     `{ident}` to `ignore = [...]` if it is a handle rather than data: what the \
                     body does through it is then lost on a hit"
                ),
                Some(ident) => format!(
                    "a cached call replays a `&mut` parameter only when its type is `&mut T` \
                     (`T` is stored with the result and written back on a hit), not a `&mut` \
                     inside another type; add `{ident}` to `ignore = [...]` if it is a handle \
                     rather than data: what the body does through it is then lost on a hit"
                ),
                None => "a cached call cannot replay a mutation through a `&mut` in a pattern, \
                         and a pattern cannot be ignored: bind the parameter to a name \
                         (`name: &mut T`) and destructure it in the body"
                    .to_owned(),
            };
            errors.push(syn::Error::new_spanned(&param.tokens, message));
        }
        if !ignored {
            if let Some(closure) = closure_in(&param.ty, &closure_params) {
                let advice = match param.ident() {
                    Some(ident) => format!("add `{ident}` to `ignore = [...]`"),
                    None => "bind it to a name and add that to `ignore = [...]`".to_owned(),
                };
                errors.push(syn::Error::new_spanned(
                    closure,
                    format!(
                        "a closure cannot be part of the cache key: it does not implement \
                         `serde::Serialize`; {advice} (its type stays in the key, so two \
                         different closures are still two entries)"
                    ),
                ));
            }
            if let Some(set) = hash_set_in(&param.ty) {
                let advice = match param.ident() {
                    Some(ident) => format!(
                        "; or, if it does not change the result, add `{ident}` to `ignore = [...]`"
                    ),
                    None => String::new(),
                };
                errors.push(syn::Error::new_spanned(
                    set,
                    format!(
                        "a set that keeps no sorted order cannot be part of the cache key: its \
                         items serialize in an order that differs between equal sets (a \
                         `HashSet`'s changes in every process), so calls would miss every time; \
                         take a `BTreeSet`, or sort the items into a `Vec`{advice}"
                    ),
                ));
            }
        }
    }

    let (mut_self, outputs) = function.outputs(options);
    let count = outputs.len() + usize::from(mut_self);
    if count > MAX_OUTPUTS {
        errors.push(syn::Error::new_spanned(
            &outputs[MAX_OUTPUTS - usize::from(mut_self)].tokens,
            format!(
                "a cached function replays at most {MAX_OUTPUTS} `&mut` parameters; group them \
                 into one struct, or ignore the ones that are handles rather than data"
            ),
        ));
    }

    for ignored in &options.ignore {
        let is_param = function.params.iter().any(|p| p.ident() == Some(ignored))
            || (ignored == "self" && function.receiver.is_some());
        if is_param {
            continue;
        }
        let in_pattern = function
            .params
            .iter()
            .find(|p| p.bound_names().contains(ignored));
        let message = if let Some(param) = in_pattern {
            let ty = &param.ty;
            format!(
                "`ignore` names whole parameters, and `{ignored}` is bound inside a pattern, \
                 which is hashed as one value; bind the parameter to a name instead \
                 (`name: {}`), ignore `name`, and destructure it in the body",
                quote::quote!(#ty)
            )
        } else if ignored == "_" {
            "`ignore` cannot name a `_` parameter; give it a name (`_name: Type`) and \
             ignore `_name`"
                .to_owned()
        } else if ignored == "self" {
            format!("`{name}` has no `self` parameter")
        } else {
            format!("`{ignored}` is not a parameter of `{name}`")
        };
        errors.push(syn::Error::new(ignored.span(), message));
    }

    for named in &options.files {
        let param = function.params.iter().find(|p| p.ident() == Some(named));
        let message = match param {
            _ if named == "self" => Some(format!(
                "`files` names path parameters, and `self` is not one; pass the path as a \
                 parameter of `{name}`"
            )),
            None => Some(format!(
                "`{named}` is not a parameter of `{name}`; `files = [...]` names the parameters \
                 whose files are keyed by their contents"
            )),
            Some(_) if options.is_ignored(named) => Some(format!(
                "`{named}` is ignored, so it is not part of the key and what it names cannot \
                 be either; remove it from `ignore` or from `files`"
            )),
            Some(param) => not_a_path(&param.ty).map(|why| {
                format!(
                    "`{named}` cannot name a file: {why}; `files = [...]` takes parameters \
                     whose type is a path (`&Path`, `PathBuf`, `&str`, `String`, anything \
                     `AsRef<Path>`), an `Option` of one, or a slice or `Vec` of them"
                )
            }),
        };
        if let Some(message) = message {
            // A type that is not a path is reported on the type; anything else on the name.
            let error = match param {
                Some(param) if !options.is_ignored(named) && named != "self" => {
                    syn::Error::new_spanned(&param.ty, message)
                }
                _ => syn::Error::new(named.span(), message),
            };
            errors.push(error);
        }
    }

    if let Some(dir) = &options.dir {
        if dir.value().is_empty() {
            errors.push(syn::Error::new(
                dir.span(),
                "`dir` needs a path: a relative one is joined onto the cache root, an \
                 absolute one replaces it",
            ));
        }
    }

    if let Some(forced) = options.result.as_ref().filter(|forced| forced.value) {
        if !function.output.ty().is_some_and(may_be_result) {
            let mut error = syn::Error::new(
                forced.span(),
                "`result = true` needs a return type that is a `Result` or an alias of one",
            );
            if let Some(ty) = function.output.ty() {
                error.combine(syn::Error::new_spanned(ty, "this is not a `Result`"));
            }
            errors.push(error);
        }
    }

    if let Some(ty) = function.output.ty() {
        if let Some(reference) = reference_in(ty) {
            errors.push(syn::Error::new_spanned(
                reference,
                "`#[file_cache]` cannot cache a function that returns a reference: a value read \
                 back from disk has nothing to borrow from; return an owned type",
            ));
        } else {
            let mut finder = TypeFinder::default();
            finder.visit_type(ty);
            if let Some(impl_trait) = finder.impl_trait {
                errors.push(syn::Error::new(
                    impl_trait,
                    "`#[file_cache]` cannot cache a function that returns `impl Trait`: a value \
                     read back from disk needs a concrete type; name it",
                ));
            }
        }
    }

    errors.finish()
}

/// The most `&mut` parameters a function may have replayed: the runtime's longest tuple.
const MAX_OUTPUTS: usize = 12;

/// Whether a bound is one of the closure traits (`Fn`, `FnMut`, `FnOnce`, their async forms).
/// Why `ty` can be seen, from its tokens alone, not to name paths: a number, `bool`, `char`,
/// a tuple, a function pointer, or a container of one of those. `None` when it may (the
/// trait bound on the generated call then decides, with its own message).
fn not_a_path(ty: &syn::Type) -> Option<String> {
    const SCALARS: &[&str] = &[
        "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
        "f32", "f64", "bool", "char",
    ];
    match ty {
        syn::Type::Reference(reference) => not_a_path(&reference.elem),
        syn::Type::Paren(inner) => not_a_path(&inner.elem),
        syn::Type::Group(inner) => not_a_path(&inner.elem),
        syn::Type::Slice(slice) => not_a_path(&slice.elem),
        syn::Type::Array(array) => not_a_path(&array.elem),
        syn::Type::Tuple(tuple) if tuple.elems.is_empty() => Some("`()` names nothing".into()),
        syn::Type::Tuple(_) => Some("a tuple is not a path".into()),
        syn::Type::FnPtr(_) => Some("a function pointer is not a path".into()),
        syn::Type::Never(_) => Some("`!` is not a path".into()),
        syn::Type::Path(path) if path.qself.is_none() => {
            let last = path.path.segments.last()?;
            let ident = last.ident.to_string();
            if path.path.segments.len() == 1 && SCALARS.contains(&ident.as_str()) {
                return Some(format!("`{ident}` is not a path"));
            }
            // `Option<T>`, `Vec<T>`, `Box<T>`: look inside.
            if matches!(ident.as_str(), "Option" | "Vec" | "Box") {
                if let syn::PathArguments::AngleBracketed(args) = &last.arguments {
                    if let Some(syn::GenericArgument::Type(inner)) = args.args.first() {
                        return not_a_path(inner);
                    }
                }
            }
            None
        }
        _ => None,
    }
}

fn is_closure_bound(bound: &syn::TypeParamBound) -> bool {
    match bound {
        syn::TypeParamBound::Trait(bound) => bound.path.segments.last().is_some_and(|last| {
            [
                "Fn",
                "FnMut",
                "FnOnce",
                "AsyncFn",
                "AsyncFnMut",
                "AsyncFnOnce",
            ]
            .iter()
            .any(|name| last.ident == name)
        }),
        _ => false,
    }
}

/// The type parameters bounded by a closure trait, in their list or the `where` clause.
fn closure_type_params(generics: &syn::Generics) -> Vec<syn::Ident> {
    let mut names: Vec<syn::Ident> = generics
        .type_params()
        .filter(|param| param.bounds.iter().any(is_closure_bound))
        .map(|param| param.ident.clone())
        .collect();
    for predicate in generics.where_clause.iter().flat_map(|w| &w.predicates) {
        if let syn::WherePredicate::Type(predicate) = predicate {
            if let syn::Type::Path(path) = &predicate.bounded_ty {
                if let Some(ident) = path.path.get_ident() {
                    if predicate.bounds.iter().any(is_closure_bound) {
                        names.push(ident.clone());
                    }
                }
            }
        }
    }
    names
}

/// The first closure in `ty`: `impl Fn(..)`, `dyn FnMut(..)`, or a type parameter bounded
/// by a closure trait (`closure_params`). None implements `Serialize`.
fn closure_in(ty: &syn::Type, closure_params: &[syn::Ident]) -> Option<proc_macro2::TokenStream> {
    struct Closures<'a, 'ast>(&'a [syn::Ident], Option<&'ast syn::Type>);
    impl<'ast> Visit<'ast> for Closures<'_, 'ast> {
        fn visit_type(&mut self, node: &'ast syn::Type) {
            if self.1.is_some() {
                return;
            }
            let closure = match node {
                syn::Type::ImplTrait(t) => t.bounds.iter().any(is_closure_bound),
                syn::Type::TraitObject(t) => t.bounds.iter().any(is_closure_bound),
                syn::Type::Path(path) => path
                    .path
                    .get_ident()
                    .is_some_and(|ident| self.0.contains(ident)),
                _ => false,
            };
            if closure {
                self.1 = Some(node);
            } else {
                syn::visit::visit_type(self, node);
            }
        }
        // A function pointer's own parameters are not closures passed in.
        fn visit_type_fn_ptr(&mut self, _: &'ast syn::TypeFnPtr) {}
    }
    let mut closures = Closures(closure_params, None);
    closures.visit_type(ty);
    closures.1.map(quote::ToTokens::into_token_stream)
}

/// The first set type written in `ty` whose items serialize in no stable order: `HashSet`
/// (by its last path segment, so `std::collections::HashSet` and `FxHashSet` count) or
/// `IndexSet` (insertion order).
fn hash_set_in(ty: &syn::Type) -> Option<&syn::TypePath> {
    #[derive(Default)]
    struct Sets<'ast>(Option<&'ast syn::TypePath>);
    impl<'ast> Visit<'ast> for Sets<'ast> {
        fn visit_type_path(&mut self, node: &'ast syn::TypePath) {
            let unordered = node.path.segments.last().is_some_and(|last| {
                let name = last.ident.to_string();
                name.ends_with("HashSet") || name == "IndexSet"
            });
            if unordered && self.0.is_none() {
                self.0 = Some(node);
            }
            syn::visit::visit_type_path(self, node);
        }
    }
    let mut sets = Sets::default();
    sets.visit_type(ty);
    sets.0
}

/// False for types that certainly are not a `Result`: anything but a path, and the
/// standard types everyone knows. Any other path may be an alias of a `Result`.
fn may_be_result(ty: &syn::Type) -> bool {
    const NOT_RESULTS: &[&str] = &[
        "bool", "char", "str", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32",
        "i64", "i128", "isize", "f32", "f64", "String", "Vec", "Option", "Box",
    ];
    match ty {
        syn::Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|last| !NOT_RESULTS.iter().any(|name| last.ident == name)),
        syn::Type::Paren(inner) => may_be_result(&inner.elem),
        syn::Type::Group(inner) => may_be_result(&inner.elem),
        _ => false,
    }
}

#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(errors) => errors.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Function, ItemFn};
    use quote::quote;

    fn errors(args: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> Vec<String> {
        let options = Options::from_tokens(args);
        let function = Function::new(syn::parse2::<ItemFn>(item).unwrap(), &options);
        match check(&function, &options) {
            Ok(()) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn plain_functions_pass() {
        let ok = [
            quote!(
                fn f() {}
            ),
            quote!(
                pub(crate) fn f<'a, T: Clone, const N: usize>(
                    x: &'a [T; N],
                    y: Option<&str>,
                ) -> Vec<T>
                where
                    T: Default,
                {
                    unreachable!("only parsed")
                }
            ),
            quote!(
                fn f(
                    mut x: u64,
                    _: u8,
                    z: impl Into<u8>,
                    w: &std::path::Path,
                ) -> Result<u8, String> {
                    x += 1;
                    Ok(1)
                }
            ),
            quote!(
                unsafe fn f(callback: fn(&mut u8)) -> u8 {
                    1
                }
            ),
        ];
        for item in ok {
            assert_eq!(
                errors(quote!(), item.clone()),
                Vec::<String>::new(),
                "{item}"
            );
        }
    }

    #[test]
    fn every_mistake_is_reported() {
        let found = errors(
            quote!(ignore = [nope]),
            quote!(
                const async extern "C" fn f(
                    self: Pin<&mut Self>,
                    (a, b): (u8, &mut u8),
                    v: Vec<&mut u8>,
                    s: &HashSet<u8>,
                    ...
                ) -> &u8 {
                    unreachable!("only parsed")
                }
            ),
        );
        let expected = [
            "const fn",
            "C-variadic",
            "`&mut self`",
            "a pattern cannot be ignored",
            "not a `&mut` inside another type",
            "take a `BTreeSet`",
            "`nope` is not a parameter of `f`",
            "returns a reference",
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for (message, expected) in found.iter().zip(expected) {
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }

    #[test]
    fn methods_async_and_patterns_pass() {
        for (args, item) in [
            (
                quote!(),
                quote!(
                    async fn f(&self, (a, b): (u8, u8), _: u8) -> u8 {
                        a
                    }
                ),
            ),
            (
                quote!(ignore = [self]),
                quote!(
                    fn f(&mut self) -> u8 {
                        1
                    }
                ),
            ),
            (
                quote!(),
                quote!(
                    fn f(self: Box<Self>, _: &mut u8) -> u8 {
                        1
                    }
                ),
            ),
            (
                quote!(ignore = [self]),
                quote!(
                    fn f(self: Pin<&mut Self>) -> u8 {
                        1
                    }
                ),
            ),
        ] {
            assert_eq!(errors(args, item.clone()), Vec::<String>::new(), "{item}");
        }
        let found = errors(
            quote!(),
            quote!(
                fn f(self: Pin<&mut Self>) -> u8 {
                    1
                }
            ),
        );
        assert!(found[0].contains("`&mut self`"), "{found:?}");
    }

    #[test]
    fn ignore_names_whole_parameters() {
        let found = errors(
            quote!(ignore = [b, _, self]),
            quote!(
                fn f((a, b): (u8, u8), _: u8) -> u8 {
                    a
                }
            ),
        );
        assert!(found[0].contains("bound inside a pattern"), "{found:?}");
        assert!(found[0].contains("`name: (u8 , u8)`"), "{found:?}");
        assert!(
            found[1].contains("cannot name a `_` parameter"),
            "{found:?}"
        );
        assert!(found[2].contains("has no `self` parameter"), "{found:?}");
    }

    #[test]
    fn dir_needs_a_path() {
        let found = errors(
            quote!(dir = ""),
            quote!(
                fn f() {}
            ),
        );
        assert!(found[0].contains("`dir` needs a path"), "{found:?}");
    }

    #[test]
    fn ignored_mut_ref_is_fine() {
        let found = errors(
            quote!(ignore = [log]),
            quote!(
                fn f(x: u8, log: &mut Vec<String>) -> u8 {
                    x
                }
            ),
        );
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn result_option_needs_a_result() {
        for item in [
            quote!(
                fn f() -> u32 {
                    1
                }
            ),
            quote!(
                fn f() {}
            ),
            quote!(
                fn f() -> (u8, u8) {
                    (1, 2)
                }
            ),
        ] {
            let found = errors(quote!(result = true), item.clone());
            assert!(
                found[0].contains("`result = true` needs"),
                "{item}: {found:?}"
            );
        }
        for item in [
            quote!(
                fn f() -> Outcome {
                    unreachable!("only parsed")
                }
            ),
            quote!(
                fn f() -> io::Result<u8> {
                    unreachable!("only parsed")
                }
            ),
        ] {
            assert!(
                errors(quote!(result = true), item.clone()).is_empty(),
                "{item}"
            );
        }
        assert!(errors(
            quote!(result = false),
            quote!(
                fn f() -> u32 {
                    1
                }
            )
        )
        .is_empty());
    }

    #[test]
    fn nested_mut_ref_and_impl_trait_return() {
        let found = errors(
            quote!(),
            quote!(
                fn f(x: Option<&mut u8>) -> Vec<impl Clone> {
                    unreachable!("only parsed")
                }
            ),
        );
        assert!(found[0].contains("inside another type"), "{found:?}");
        assert!(found[1].contains("impl Trait"), "{found:?}");
    }

    #[test]
    fn mut_refs_and_mut_self_are_replayed() {
        let found = errors(
            quote!(),
            quote!(
                fn f(&mut self, n: u32, out: &mut Vec<u32>, buffer: &mut [u8], _: &mut u8) {}
            ),
        );
        assert!(found.is_empty(), "{found:?}");
        let found = errors(
            quote!(),
            quote!(
                fn f(#[cfg(unix)] out: &mut Vec<u32>) {}
            ),
        );
        assert!(found[0].contains("under `#[cfg]`"), "{found:?}");
    }

    #[test]
    fn at_most_twelve_outputs() {
        let params: Vec<_> = (0..13).map(|i| quote::format_ident!("o{i}")).collect();
        let found = errors(quote!(), quote!(fn f(#(#params: &mut u8),*) {}));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("at most 12"), "{found:?}");
        let found = errors(
            quote!(ignore = [o0]),
            quote!(fn f(#(#params: &mut u8),*) {}),
        );
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn closures_must_be_ignored() {
        for item in [
            quote!(
                fn f(x: u32, f: impl Fn(u32) -> u32) {}
            ),
            quote!(
                fn f<F: FnMut()>(x: u32, f: F) {}
            ),
            quote!(
                fn f<F>(x: u32, f: &F)
                where
                    F: FnOnce() -> u8,
                {
                }
            ),
            quote!(
                fn f(x: u32, f: Box<dyn Fn()>) {}
            ),
        ] {
            let found = errors(quote!(), item.clone());
            assert_eq!(found.len(), 1, "{item}: {found:?}");
            assert!(found[0].contains("add `f` to `ignore"), "{found:?}");
            assert!(
                errors(quote!(ignore = [f]), item.clone()).is_empty(),
                "{item}"
            );
        }
        let found = errors(
            quote!(),
            quote!(
                fn f<T: Clone>(x: T, g: fn(u32) -> u32) {}
            ),
        );
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn unordered_sets_are_refused_wherever_they_are_written() {
        for ty in [
            quote!(HashSet<String>),
            quote!(&std::collections::HashSet<u8>),
            quote!(Option<Vec<indexmap::IndexSet<u8>>>),
            quote!(FxHashSet<u8>),
        ] {
            let found = errors(quote!(), quote!(fn f(s: #ty) {}));
            assert_eq!(found.len(), 1, "{ty}: {found:?}");
            assert!(found[0].contains("take a `BTreeSet`, or sort"), "{found:?}");
            assert!(found[0].contains("add `s` to `ignore"), "{found:?}");
            assert!(errors(quote!(ignore = [s]), quote!(fn f(s: #ty) {})).is_empty());
        }
        let found = errors(
            quote!(),
            quote!(
                fn f(s: BTreeSet<u8>, m: HashMap<u8, u8>) {}
            ),
        );
        assert!(found.is_empty(), "{found:?}");
    }
}
