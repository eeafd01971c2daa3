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
use crate::code_hash::code_hash;
use crate::model::{Function, Generic, ItemFn, Output};
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
    let site = quote! {
        // `..DEFAULT` stays even when every field is written, so new fields break nothing.
        #[allow(clippy::needless_update)]
        static __FC_SITE: ::file_cache::__private::Site =
            ::file_cache::__private::Site::new(::file_cache::__private::SiteInfo {
                module_path: ::core::module_path!(),
                name: #name,
                code_hash: [#(#hash),*],
                #memory
                ..::file_cache::__private::SiteInfo::DEFAULT
            });
    };

    let mut feed = Vec::new();
    for generic in &function.generics {
        match generic {
            Generic::Type(ident) => {
                let name = ident.unraw().to_string();
                feed.push(quote! {
                    __fc_k.type_param(#name, ::core::any::type_name::<#ident>());
                });
            }
            Generic::Const(ident) => {
                let name = ident.unraw().to_string();
                feed.push(quote! { __fc_k.const_param(#name, &#ident); });
            }
            Generic::Lifetime(_) => {}
        }
    }
    let keyed: Vec<_> = function
        .params
        .iter()
        .filter_map(|param| Some((param, param.ident()?)))
        .filter(|(_, ident)| !options.is_ignored(ident))
        .collect();
    for (param, ident) in &keyed {
        if param.has_impl_trait {
            let name = ident.unraw().to_string();
            let cfg = &param.cfg_attrs;
            feed.push(quote! {
                #(#cfg)*
                __fc_k.arg_type(#name, ::core::any::type_name_of_val(&#ident));
            });
        }
    }
    for (param, ident) in &keyed {
        let name = ident.unraw().to_string();
        let cfg = &param.cfg_attrs;
        // Spanned at the parameter: a type that is not `Serialize` is reported on it.
        let span = param.ty.span();
        let value = quote_spanned!(span=> &#ident);
        feed.push(quote_spanned! {span=>
            #(#cfg)*
            __fc_k.arg(#name, #value);
        });
    }
    let builder = if feed.is_empty() {
        quote!(__fc_k)
    } else {
        quote!(mut __fc_k)
    };

    let (runtime_call, ret) = match &function.output {
        Output::Unit => (quote!(call), quote!(())),
        Output::Value(ty) => (quote_spanned!(ty.span()=> call), ty.to_token_stream()),
        Output::Result { ty, ok } => (
            quote_spanned!(ok.as_ref().map_or(ty.span(), Spanned::span)=> call_result),
            ty.to_token_stream(),
        ),
    };
    // Spanned at the stored type, so a missing serde impl is reported on it.
    let ret_span = match &function.output {
        Output::Unit => Span::call_site(),
        Output::Value(ty) => ty.span(),
        Output::Result { ty, ok } => ok.as_ref().map_or(ty.span(), Spanned::span),
    };
    // Inner attributes of the body (`#![allow(..)]`, `//!`) apply to the function; a
    // closure's block cannot carry them, so they move onto the function, unchanged.
    let (inner_attrs, body) = split_inner_attributes(body);
    let call = quote_spanned! {ret_span=>
        ::file_cache::__private::#runtime_call(&__FC_SITE, __fc_key, move || -> #ret #body)
    };

    quote! {
        #(#attrs)*
        #(#inner_attrs)*
        #vis #sig {
            #site
            let __fc_key = match ::file_cache::__private::KeyBuilder::begin(&__FC_SITE) {
                ::core::option::Option::Some(#builder) => {
                    #(#feed)*
                    __fc_k.finish()
                }
                ::core::option::Option::None => ::core::option::Option::None,
            };
            #call
        }
    }
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
