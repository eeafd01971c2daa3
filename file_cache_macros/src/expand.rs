//! Code generation: the user's function, unchanged outside, whose body asks the runtime to
//! read the stored result or compute and store it.
//!
//! Generated code names runtime items only as `::file_cache::__private::...` and std items
//! as `::core::...`; its own bindings start with `__fc_`, so no parameter or import of the
//! user's can collide with them.

use proc_macro2::{Group, Punct, Spacing, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;

use crate::attr::Options;
use crate::cfg;
use crate::code_hash::code_hash;
use crate::deps;
use crate::model::{is_array, Function, Generic, ItemFn, Output, Param};
use crate::valid;

/// The whole attribute: parse, model, check, expand. On any error, the errors and the
/// unchanged item, so one mistake does not cascade into "cannot find function" elsewhere.
pub(crate) fn file_cache(args: TokenStream, item: TokenStream) -> TokenStream {
    let options = Options::from_tokens(args.clone());
    let mut errors = options.errors.clone();
    let mut add = |error: syn::Error| match &mut errors {
        Some(errors) => errors.combine(error),
        None => errors = Some(error),
    };
    let parsed = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(parsed) => Some(parsed),
        Err(_) => {
            add(not_a_function(&item));
            None
        }
    };
    let function = parsed.map(|parsed| {
        let hash = code_hash(&args, &parsed);
        (Function::new(parsed, &options), hash)
    });
    if let Some((function, _)) = &function {
        if let Err(error) = valid::check(function, &options) {
            add(error);
        }
    }
    match (errors, function) {
        (None, Some((function, hash))) => expand(&function, &options, hash),
        (Some(errors), _) => {
            let errors = errors.to_compile_error();
            quote!(#errors #item)
        }
        (None, None) => unreachable!("a failed parse records an error"),
    }
}

/// The error for an attribute on an item that is not a function with a body.
fn not_a_function(item: &TokenStream) -> syn::Error {
    // Name the kind of item when syn recognises it, and point at its first tokens.
    let message = "`#[file_cache]` can only be applied to a function";
    // A method declared in a trait (`fn f(&self) -> u32;`) has no body to cache.
    if let Ok(declared) = syn::parse2::<syn::TraitItemFn>(item.clone()) {
        if declared.default.is_none() {
            return syn::Error::new_spanned(
                item,
                format!(
                    "`#[file_cache]` needs a function with a body, and `{}` is only declared: \
                     put the attribute on the method in each `impl` block, or give the trait \
                     method a default body and put it there",
                    declared.sig.ident
                ),
            );
        }
    }
    match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Verbatim(_)) | Err(_) => syn::Error::new_spanned(item, message),
        Ok(item) => {
            let kind = match &item {
                syn::Item::Struct(i) => i.struct_token.span(),
                syn::Item::Enum(i) => i.enum_token.span(),
                syn::Item::Impl(i) => i.impl_token.span(),
                syn::Item::Trait(i) => i.trait_token.span(),
                syn::Item::Mod(i) => i.mod_token.span(),
                syn::Item::Static(i) => i.static_token.span(),
                syn::Item::Const(i) => i.const_token.span(),
                syn::Item::Type(i) => i.type_token.span(),
                syn::Item::Use(i) => i.use_token.span(),
                syn::Item::Union(i) => i.union_token.span(),
                _ => return syn::Error::new_spanned(item, message),
            };
            syn::Error::new(kind, message)
        }
    }
}

fn expand(function: &Function, options: &Options, hash: [u8; 32]) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        body,
    } = &function.item;
    let name = function.name();
    // Options left at their default are not written: `..DEFAULT` fills them in.
    let memory = options
        .memory
        .as_ref()
        .filter(|memory| !memory.value)
        .map(|memory| quote!(memory: #memory,));
    // Tracked dependencies fold into the site's code hash at compile time; a `static` cannot
    // name `Self`, so those join the key from the body instead.
    let (self_deps, static_deps): (Vec<_>, Vec<_>) =
        options.deps.iter().partition(|path| deps::uses_self(path));
    let code_hash = deps::combined(hash, static_deps);
    let dir = options
        .dir
        .as_ref()
        .map(|dir| quote!(dir: ::core::option::Option::Some(#dir),));
    let ttl = options.ttl.map(|seconds| {
        quote!(ttl: ::core::option::Option::Some(::core::time::Duration::from_secs(#seconds)),)
    });
    let lock = options.lock.as_ref().map(|lock| quote!(lock: #lock,));
    let codec = options
        .codec
        .as_ref()
        .map(|codec| quote!(codec: ::file_cache::__private::Codec::#codec,));
    let cfg = cfg::values(&cfg::predicates(quote!(#(#attrs)* #sig #body)));
    let site = quote! {
        // `..DEFAULT` stays when every field is given, so new fields need no macro change.
        #[allow(clippy::needless_update)]
        static __FC_SITE: ::file_cache::__private::Site =
            ::file_cache::__private::Site::new(::file_cache::__private::SiteInfo {
                module_path: ::core::module_path!(),
                name: #name,
                code_hash: #code_hash,
                #dir
                #ttl
                #memory
                #lock
                #codec
                cfg: #cfg,
                ..::file_cache::__private::SiteInfo::DEFAULT
            });
    };

    let mut feed = Vec::new();
    // Statements before the key is begun (an `async fn` awaits its files' digests there).
    let mut pre_key = Vec::new();
    // Where the function is. A method (or any function whose signature names `Self`) names
    // its `Self` type: its directory is per type and the impl's type arguments are keyed.
    // Every function also keys a closure's type name, which holds the impl and the trait
    // even for an associated function that never names `Self` (see `KeyBuilder::place`).
    if function.receiver.is_some() || function.names_self {
        feed.push(quote! {
            __fc_k.self_type(::core::any::type_name::<Self>());
        });
    }
    feed.push(quote! {
        __fc_k.place(::core::any::type_name_of_val(&|| ()));
    });
    if !self_deps.is_empty() {
        let hashes = self_deps.iter().map(|path| deps::hash_of(path));
        feed.push(quote! { __fc_k.code_deps(&[#(#hashes),*]); });
    }
    for generic in &function.generics {
        match generic {
            Generic::Type(ident) => {
                let name = ident.unraw().to_string();
                feed.push(quote! {
                    __fc_k.type_arg::<#ident>(#name);
                });
            }
            Generic::Const(ident) => {
                let name = ident.unraw().to_string();
                feed.push(quote! { __fc_k.const_param(#name, &#ident); });
            }
            Generic::Lifetime(_) => {}
        }
    }
    if !options.env.is_empty() {
        let names = &options.env;
        feed.push(quote! { __fc_k.env(&[#(#names),*]); });
    }
    if let Some(receiver) = &function.receiver {
        if !options.ignore.iter().any(|name| name == "self") {
            let value = self_value(receiver);
            // Spanned at `self`: a `Self` that is not `Serialize` is reported there.
            let span = receiver.self_token.span;
            feed.push(quote_spanned! {span=> __fc_k.receiver(#value); });
        }
    }
    // Each keyed parameter: its name in the key, and the binding the generated code reads.
    let keyed: Vec<_> = function
        .params
        .iter()
        .filter_map(|param| match param.ident() {
            Some(ident) if options.is_ignored(ident) => None,
            Some(ident) => Some((param, ident.unraw().to_string(), ident.clone())),
            None => Some((param, format!("#{}", param.index), pattern_name(param))),
        })
        .collect();
    // The concrete type of every `impl Trait` argument, ignored ones included: like a named
    // type parameter's, it is part of the key even when the value is not.
    for param in &function.params {
        if param.has_impl_trait {
            let (name, binding) = match param.ident() {
                Some(ident) => (ident.unraw().to_string(), ident.clone()),
                None => (format!("#{}", param.index), pattern_name(param)),
            };
            let cfg = &param.cfg_attrs;
            feed.push(quote! {
                #(#cfg)*
                __fc_k.arg_type(#name, &#binding);
            });
        }
    }
    let type_params: Vec<&syn::Ident> = function
        .generics
        .iter()
        .filter_map(|generic| match generic {
            Generic::Type(ident) => Some(ident),
            Generic::Const(_) | Generic::Lifetime(_) => None,
        })
        .collect();
    for (param, name, binding) in &keyed {
        let cfg = &param.cfg_attrs;
        // Spanned at the parameter: a type that is not `Serialize` is reported on it.
        let span = param.ty.span();
        let value = if is_array(&param.ty) {
            quote_spanned!(span=> &#binding[..])
        } else {
            quote_spanned!(span=> &#binding)
        };
        // A type the user can restrict (a type parameter, `impl Trait`) is checked against
        // `serde::Serialize` itself, so rustc's hint to add a bound names that trait.
        let generic = param.has_impl_trait || mentions_any(&param.ty, &type_params);
        let (method, value) = if param.is_output() {
            // Checked as what it is: an output, which the key reads on entry.
            (
                quote_spanned!(span=> output_param),
                quote_spanned!(span=> &*#binding),
            )
        } else if generic {
            (quote_spanned!(span=> arg), value)
        } else {
            (quote_spanned!(span=> param), value)
        };
        feed.push(quote_spanned! {span=>
            #(#cfg)*
            __fc_k.#method(#name, #value);
        });
        // What a parameter in `files = [...]` names on disk joins the key after its value.
        // A generic one (`P: AsRef<Path>`, `impl AsRef<Path>`) through its `AsRef`; any
        // other through the runtime's `FilesArg`, whose error says what `files` takes.
        if options.files.iter().any(|named| named.unraw() == *name) {
            let paths = if generic {
                quote_spanned! {span=>
                    ::core::convert::AsRef::<::std::path::Path>::as_ref(&#binding)
                }
            } else {
                value.clone()
            };
            if sig.asyncness.is_some() {
                // An `async fn` takes the digests first, off the executor's thread when
                // that means reading files, and builds the key from them.
                let digests = syn::Ident::new(&format!("__fc_files_{}", param.index), span);
                pre_key.push(quote_spanned! {span=>
                    #(#cfg)*
                    let #digests = ::file_cache::__private::KeyBuilder::files_digests(&__FC_SITE, #paths).await;
                });
                feed.push(quote_spanned! {span=>
                    #(#cfg)*
                    __fc_k.files_digested(#name, #paths, &#digests);
                });
            } else if generic {
                feed.push(quote_spanned! {span=>
                    #(#cfg)*
                    __fc_k.file_generic(#name, #paths);
                });
            } else {
                feed.push(quote_spanned! {span=>
                    #(#cfg)*
                    __fc_k.files(#name, #paths);
                });
            }
        }
    }

    // Pattern parameters take a generated name in the signature and are destructured,
    // unchanged, at the top of the body.
    let mut sig = sig.clone();
    let mut destructure = Vec::new();
    for (input, param) in sig
        .inputs
        .iter_mut()
        .filter_map(|input| match input {
            syn::FnArg::Typed(typed) => Some(typed),
            syn::FnArg::Receiver(_) => None,
        })
        .zip(&function.params)
    {
        if param.ident().is_some() {
            continue;
        }
        let binding = pattern_name(param);
        let pat = std::mem::replace(&mut *input.pat, syn::parse_quote!(#binding));
        let cfg = &param.cfg_attrs;
        destructure.push(quote! {
            #(#cfg)*
            #[allow(unused_variables)]
            let #pat = #binding;
        });
    }

    let (ret, ret_span) = match &function.output {
        Output::Unit => (quote!(()), Span::call_site()),
        Output::Value(ty) => (ty.to_token_stream(), ty.span()),
        Output::Result { ty, ok } => (
            ty.to_token_stream(),
            ok.as_ref().map_or(ty.span(), Spanned::span),
        ),
    };
    // An async block's output type is not inferred from what it is passed to: a typed,
    // unreachable `return` pins it, so `?` and `return` in the body infer as they did.
    let infer_async = quote_spanned! {ret_span=>
        #[allow(
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::let_unit_value,
            clippy::needless_return,
            clippy::unreachable
        )]
        if false {
            let __fc_output: #ret = ::core::unreachable!();
            return __fc_output;
        }
    };
    let is_async = sig.asyncness.is_some();
    // Inner attributes of the body (`#![allow(..)]`, `//!`) apply to the function; a
    // closure's block cannot carry them, so they move onto the function, unchanged.
    let (inner_attrs, body) = split_inner_attributes(body);
    let (mut_self, output_params) = function.outputs(options);
    let call = if mut_self || !output_params.is_empty() {
        // The `&mut` parameters, checked one by one at their own tokens, and written back
        // from the stored values on a hit.
        let mut refs = Vec::new();
        let mut write_back = Vec::new();
        let places = function
            .receiver
            .as_ref()
            .filter(|_| mut_self)
            .map(|r| (r.self_token.span, r.self_token.to_token_stream()))
            .into_iter()
            .chain(output_params.iter().filter_map(|param| {
                let ident = param.ident()?;
                Some((param.ty.span(), ident.to_token_stream()))
            }));
        for (index, (span, place)) in places.enumerate() {
            let index = syn::Index::from(index);
            refs.push(quote_spanned!(span=> ::file_cache::__private::output(&mut *#place)));
            write_back.push(quote_spanned! {span=>
                ::file_cache::__private::replace(&mut *#place, __fc_outputs.#index);
            });
        }
        let runtime_call = match (&function.output, is_async) {
            (Output::Result { .. }, false) => quote_spanned!(ret_span=> call_result_outputs),
            (Output::Result { .. }, true) => quote_spanned!(ret_span=> call_result_outputs_async),
            (_, false) => quote_spanned!(ret_span=> call_outputs),
            (_, true) => quote_spanned!(ret_span=> call_outputs_async),
        };
        // The body borrows the `&mut` parameters (its closure or block does not `move`),
        // and hands them to the runtime once it is done, to be stored with its value.
        let computed = if is_async {
            let body = block_with(quote! { #infer_async #(#destructure)* }, &body);
            quote_spanned! {ret_span=>
                ::file_cache::__private::#runtime_call(&__FC_SITE, __fc_key, async {
                    let __fc_value = async #body.await;
                    (__fc_value, (#(#refs,)*))
                })
                .await
            }
        } else {
            let body = block_with(quote! { #(#destructure)* }, &body);
            quote_spanned! {ret_span=>
                ::file_cache::__private::#runtime_call(&__FC_SITE, __fc_key, || {
                    #[allow(clippy::redundant_closure_call)]
                    let __fc_value = (|| -> #ret #body)();
                    (__fc_value, (#(#refs,)*))
                })
            }
        };
        quote! {
            let (__fc_value, __fc_outputs) = #computed;
            if let ::core::option::Option::Some(__fc_outputs) = __fc_outputs {
                #(#write_back)*
            }
            __fc_value
        }
    } else {
        let runtime_call = match (&function.output, is_async) {
            (Output::Result { .. }, false) => quote_spanned!(ret_span=> call_result),
            (Output::Result { .. }, true) => quote_spanned!(ret_span=> call_result_async),
            (_, false) => quote_spanned!(ret_span=> call),
            (_, true) => quote_spanned!(ret_span=> call_async),
        };
        // Spanned at the stored type, so a missing serde impl is reported on it.
        if is_async {
            let body = block_with(quote! { #infer_async #(#destructure)* }, &body);
            quote_spanned! {ret_span=>
                ::file_cache::__private::#runtime_call(&__FC_SITE, __fc_key, async move #body)
                .await
            }
        } else {
            let body = block_with(quote! { #(#destructure)* }, &body);
            quote_spanned! {ret_span=>
                ::file_cache::__private::#runtime_call(&__FC_SITE, __fc_key, move || -> #ret #body)
            }
        }
    };

    quote! {
        #(#attrs)*
        #(#inner_attrs)*
        #vis #sig {
            #site
            #(#pre_key)*
            let __fc_key = match ::file_cache::__private::KeyBuilder::begin(&__FC_SITE) {
                ::core::option::Option::Some(mut __fc_k) => {
                    #(#feed)*
                    __fc_k.finish()
                }
                ::core::option::Option::None => ::core::option::Option::None,
            };
            #call
        }
    }
}

/// The name a pattern parameter takes in the rewritten signature.
fn pattern_name(param: &Param) -> syn::Ident {
    let span = param.tokens.span();
    syn::Ident::new(&format!("__fc_arg{}", param.index), span)
}

/// A `&Self` for every receiver form: `self`, `&self`, `&mut self`, `self: Box<Self>`,
/// `self: Arc<Self>`, `self: Pin<&mut Self>`...
fn self_value(receiver: &syn::Receiver) -> TokenStream {
    let self_token = &receiver.self_token;
    let span = self_token.span;
    let by_value = match &receiver.kind {
        syn::ReceiverKind::Reference(..) => return quote_spanned!(span=> &*#self_token),
        syn::ReceiverKind::Typed(_, ty) => match &**ty {
            syn::Type::Path(path) => path.qself.is_none() && path.path.is_ident("Self"),
            _ => false,
        },
        syn::ReceiverKind::Value => true,
        _ => false,
    };
    if by_value {
        quote_spanned!(span=> &#self_token)
    } else {
        quote_spanned!(span=> ::core::ops::Deref::deref(&#self_token))
    }
}

/// Whether `ty` names one of the type parameters `names`.
fn mentions_any(ty: &syn::Type, names: &[&syn::Ident]) -> bool {
    fn walk(tokens: TokenStream, names: &[&syn::Ident]) -> bool {
        tokens.into_iter().any(|token| match token {
            TokenTree::Ident(ident) => names.iter().any(|name| **name == ident),
            TokenTree::Group(group) => walk(group.stream(), names),
            _ => false,
        })
    }
    !names.is_empty() && walk(ty.to_token_stream(), names)
}

/// The body with `prelude` before its statements, in one block that keeps the body's
/// span: no block nested in another, which rustc would call unnecessary braces (and
/// whose fix it would point at the generated code).
fn block_with(prelude: TokenStream, body: &Group) -> Group {
    if prelude.is_empty() {
        return body.clone();
    }
    let stream = body.stream();
    let mut block = Group::new(body.delimiter(), quote!(#prelude #stream));
    block.set_span(body.span());
    block
}

/// Splits `{ #![a] #![b] rest }` into outer attributes `#[a] #[b]` and `{ rest }`. The body
/// is otherwise left as raw tokens, parsed or not.
fn split_inner_attributes(body: &Group) -> (Vec<TokenStream>, Group) {
    let mut tokens: Vec<TokenTree> = body.stream().into_iter().collect();
    let mut attrs = Vec::new();
    while let [TokenTree::Punct(pound), TokenTree::Punct(bang), TokenTree::Group(group), ..] =
        tokens.as_slice()
    {
        let is_inner = pound.as_char() == '#'
            && bang.as_char() == '!'
            && group.delimiter() == proc_macro2::Delimiter::Bracket;
        if !is_inner {
            break;
        }
        let mut outer_pound = Punct::new('#', Spacing::Alone);
        outer_pound.set_span(pound.span());
        attrs.push(quote!(#outer_pound #group));
        tokens.drain(..3);
    }
    let mut rest = Group::new(body.delimiter(), tokens.into_iter().collect());
    rest.set_span(body.span());
    (attrs, rest)
}
