//! What the annotated function is: its parts as the user wrote them, plus the facts the
//! expansion and the checks need (parameters, receiver, generics, what it returns).

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{
    Attribute, FnArg, GenericArgument, GenericParam, Ident, Lifetime, Pat, PatType, PathArguments,
    Receiver, ReturnType, Signature, Type, Visibility,
};

use crate::attr::Options;

/// A function whose body is kept as raw tokens, so a body that does not parse still expands
/// and rustc reports the user's own mistake.
pub(crate) struct ItemFn {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub sig: Signature,
    /// The `{ ... }` group, braces included.
    pub body: Group,
}

impl Parse for ItemFn {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig: Signature = input.parse()?;
        let body = match input.parse::<TokenTree>() {
            Ok(TokenTree::Group(group)) if group.delimiter() == Delimiter::Brace => group,
            _ => {
                return Err(syn::Error::new(
                    sig.ident.span(),
                    "`#[file_cache]` needs a function with a body",
                ))
            }
        };
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the function body"));
        }
        Ok(ItemFn {
            attrs,
            vis,
            sig,
            body,
        })
    }
}

/// The annotated function, taken apart.
pub(crate) struct Function {
    pub item: ItemFn,
    /// `self`, `&self`, `mut self: Box<Self>`, ...
    pub receiver: Option<Receiver>,
    /// Whether the signature names `Self`: then the function is in an impl or a trait
    /// (a free function cannot name it), and the generated code may name `Self` too.
    pub names_self: bool,
    pub params: Vec<Param>,
    pub generics: Vec<Generic>,
    pub output: Output,
}

/// One typed parameter.
pub(crate) struct Param {
    /// Its position among the typed parameters (the receiver not counted).
    pub index: usize,
    pub binding: Binding,
    pub ty: Type,
    /// `#[cfg(...)]` attributes on the parameter, repeated on the code that hashes it.
    pub cfg_attrs: Vec<Attribute>,
    /// The whole `pattern: Type`, for error messages.
    pub tokens: TokenStream,
    /// Whether `ty` contains `impl Trait`, whose concrete type joins the key by name.
    pub has_impl_trait: bool,
    /// The first `&mut` inside `ty`, if any.
    pub mut_ref: Option<Span>,
}

/// How a parameter binds its value.
pub(crate) enum Binding {
    /// `x`, `mut x`, `ref x`: hashed under the name `x`.
    Ident(Ident),
    /// `_`: hashed as a whole value, like a pattern.
    Wild,
    /// `(a, b)`, `Point { x, y }`, `x @ ..`: hashed as a whole value. The expansion binds
    /// the value to a generated name and destructures it at the top of the body.
    Pattern(Box<Pat>),
}

/// A generic parameter of the function.
pub(crate) enum Generic {
    /// Its concrete type's name joins the key.
    Type(Ident),
    /// Its value joins the key.
    Const(Ident),
    /// Erased at run time; nothing to hash.
    Lifetime(#[allow(dead_code)] Lifetime),
}

/// What the function returns, which decides how the runtime stores it.
pub(crate) enum Output {
    /// No return type: the stored value is `()`.
    Unit,
    /// Any value, stored as is.
    Value(Box<Type>),
    /// `Result<T, E>` (by the last path segment, or forced by `result = true`): only `Ok` is
    /// stored. `ok` is `T` when written out (not behind an alias).
    Result {
        ty: Box<Type>,
        ok: Option<Box<Type>>,
    },
}

impl Output {
    /// The return type, if the function names one.
    pub(crate) fn ty(&self) -> Option<&Type> {
        match self {
            Output::Unit => None,
            Output::Value(ty) | Output::Result { ty, .. } => Some(ty),
        }
    }
}

impl Function {
    pub(crate) fn new(item: ItemFn, options: &Options) -> Function {
        let mut receiver = None;
        let mut params = Vec::new();
        for input in &item.sig.inputs {
            match input {
                FnArg::Receiver(r) => receiver = Some(r.clone()),
                FnArg::Typed(pat_type) => params.push(Param::new(params.len(), pat_type)),
            }
        }
        let generics = item
            .sig
            .generics
            .params
            .iter()
            .map(|param| match param {
                GenericParam::Type(t) => Generic::Type(t.ident.clone()),
                GenericParam::Const(c) => Generic::Const(c.ident.clone()),
                GenericParam::Lifetime(l) => Generic::Lifetime(l.lifetime.clone()),
            })
            .collect();
        let output = match &item.sig.output {
            ReturnType::Default => Output::Unit,
            ReturnType::Type(_, ty) => {
                let is_result = match &options.result {
                    Some(forced) => forced.value,
                    None => is_result_type(ty),
                };
                if is_result {
                    Output::Result {
                        ok: ok_type(ty).cloned().map(Box::new),
                        ty: ty.clone(),
                    }
                } else {
                    Output::Value(ty.clone())
                }
            }
        };
        let names_self = names_self(item.sig.to_token_stream());
        Function {
            item,
            receiver,
            names_self,
            params,
            generics,
            output,
        }
    }

    /// Whether the receiver is `&mut self` (or `self: &mut Self`), which the cache replays
    /// unless ignored.
    pub(crate) fn has_mut_self(&self) -> bool {
        self.receiver
            .as_ref()
            .is_some_and(|receiver| is_mut_ref(&receiver_type(receiver)))
    }

    /// The parameters the cache replays (see [`Param::is_output`]), unless `ignore`d, with
    /// `&mut self` first when there is one: `(receiver?, params)`.
    pub(crate) fn outputs<'a>(&'a self, options: &'a Options) -> (bool, Vec<&'a Param>) {
        let mut_self = self.has_mut_self() && !options.ignore.iter().any(|name| name == "self");
        let params = self
            .params
            .iter()
            .filter(|param| param.is_output())
            .filter(|param| !param.ident().is_some_and(|ident| options.is_ignored(ident)))
            .collect();
        (mut_self, params)
    }

    /// The function's name without any `r#`.
    pub(crate) fn name(&self) -> String {
        self.item.sig.ident.unraw().to_string()
    }
}

impl Param {
    fn new(index: usize, pat_type: &PatType) -> Param {
        let binding = match &*pat_type.pat {
            Pat::Ident(pat) if pat.subpat.is_none() => Binding::Ident(pat.ident.clone()),
            Pat::Wild(_) => Binding::Wild,
            other => Binding::Pattern(Box::new(other.clone())),
        };
        let mut finder = TypeFinder::default();
        finder.visit_type(&pat_type.ty);
        Param {
            index,
            binding,
            ty: (*pat_type.ty).clone(),
            cfg_attrs: pat_type
                .attrs
                .iter()
                .filter(|attr| attr.path().is_ident("cfg"))
                .cloned()
                .collect(),
            tokens: pat_type.to_token_stream(),
            has_impl_trait: finder.impl_trait.is_some(),
            mut_ref: finder.mut_ref,
        }
    }

    /// The parameter's name, if it binds one.
    pub(crate) fn ident(&self) -> Option<&Ident> {
        match &self.binding {
            Binding::Ident(ident) => Some(ident),
            Binding::Wild | Binding::Pattern(_) => None,
        }
    }

    /// Whether the cache replays this parameter: a named `&mut T` (not under `#[cfg]`), whose
    /// value on exit is stored with the result and written back on a hit.
    pub(crate) fn is_output(&self) -> bool {
        self.ident().is_some() && self.cfg_attrs.is_empty() && is_mut_ref(&self.ty)
    }

    /// The names a pattern parameter binds (`a`, `b` in `(a, b): (u8, u8)`).
    pub(crate) fn bound_names(&self) -> Vec<Ident> {
        #[derive(Default)]
        struct Names(Vec<Ident>);
        impl<'ast> Visit<'ast> for Names {
            fn visit_pat_ident(&mut self, node: &'ast syn::PatIdent) {
                self.0.push(node.ident.clone());
                syn::visit::visit_pat_ident(self, node);
            }
        }
        let mut names = Names::default();
        if let Binding::Pattern(pat) = &self.binding {
            names.visit_pat(pat);
        }
        names.0
    }
}

/// Whether `Self` appears anywhere in these tokens.
fn names_self(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|token| match token {
        TokenTree::Ident(ident) => ident == "Self",
        TokenTree::Group(group) => names_self(group.stream()),
        _ => false,
    })
}

/// `Result<..>`, `io::Result<..>`, `std::result::Result<..>`, ...: the last segment decides,
/// so aliases named `Result` count and anything else can opt in with `result = true`.
fn is_result_type(ty: &Type) -> bool {
    match ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .is_some_and(|last| last.ident == "Result" && !last.arguments.is_none()),
        Type::Paren(inner) => is_result_type(&inner.elem),
        Type::Group(inner) => is_result_type(&inner.elem),
        _ => false,
    }
}

/// `T` of `Result<T, ..>` as written, through parentheses.
fn ok_type(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Path(path) => match &path.path.segments.last()?.arguments {
            PathArguments::AngleBracketed(args) => args.args.iter().find_map(|arg| match arg {
                GenericArgument::Type(ok) => Some(ok),
                _ => None,
            }),
            _ => None,
        },
        Type::Paren(inner) => ok_type(&inner.elem),
        Type::Group(inner) => ok_type(&inner.elem),
        _ => None,
    }
}

/// Finds `impl Trait` and `&mut` anywhere inside a type.
#[derive(Default)]
pub(crate) struct TypeFinder {
    pub impl_trait: Option<Span>,
    pub mut_ref: Option<Span>,
}

impl<'ast> Visit<'ast> for TypeFinder {
    fn visit_type_impl_trait(&mut self, node: &'ast syn::TypeImplTrait) {
        self.impl_trait.get_or_insert(node.impl_token.span);
        syn::visit::visit_type_impl_trait(self, node);
    }

    fn visit_type_reference(&mut self, node: &'ast syn::TypeReference) {
        if let Some(mutability) = node.mutability {
            self.mut_ref.get_or_insert(mutability.span());
        }
        syn::visit::visit_type_reference(self, node);
    }

    // A function pointer's `&mut` parameters are not a mutation by the cached call.
    fn visit_type_fn_ptr(&mut self, _: &'ast syn::TypeFnPtr) {}
}

/// Whether the type is an array, through references and parentheses: serde implements
/// `Serialize` for arrays up to 32 long only, and not for `[T; N]` with a const generic `N`,
/// so the generated code hashes arrays as slices (`N` is keyed as a const parameter).
pub(crate) fn is_array(ty: &Type) -> bool {
    match ty {
        Type::Array(_) => true,
        Type::Reference(reference) => is_array(&reference.elem),
        Type::Paren(inner) => is_array(&inner.elem),
        Type::Group(inner) => is_array(&inner.elem),
        _ => false,
    }
}

/// Whether the type is `&mut T` itself (through parentheses).
/// The type of `self` for every receiver form: `Self` for `self`, `&'a mut Self` for
/// `&'a mut self`, the written type for `self: Box<Self>`.
pub(crate) fn receiver_type(receiver: &syn::Receiver) -> Type {
    let span = receiver.self_token.span;
    match &receiver.kind {
        syn::ReceiverKind::Typed(_, ty) => (**ty).clone(),
        syn::ReceiverKind::Reference(and, lifetime, mutability) => {
            syn::parse_quote_spanned!(span=> #and #lifetime #mutability Self)
        }
        _ => syn::parse_quote_spanned!(span=> Self),
    }
}

pub(crate) fn is_mut_ref(ty: &Type) -> bool {
    reference_in(ty).is_some_and(|reference| reference.mutability.is_some())
}

/// Whether the type is a reference (through parentheses), which a stored value cannot be.
pub(crate) fn reference_in(ty: &Type) -> Option<&syn::TypeReference> {
    match ty {
        Type::Reference(reference) => Some(reference),
        Type::Paren(inner) => reference_in(&inner.elem),
        Type::Group(inner) => reference_in(&inner.elem),
        _ => None,
    }
}
