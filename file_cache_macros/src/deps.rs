//! `deps = [rank, crate::text::tokenize, Self::score]`: naming tracked items, and the
//! expressions that read their code hashes at compile time.
//!
//! `#[file_cache::track]` publishes an item's code hash where a path to it can find it:
//!
//! - a free function `rank`: a hidden, field-less marker type also named `rank` (types and
//!   functions live in separate namespaces, so `use text::rank;` imports both) that
//!   implements `Tracked`; the dependency reads `<rank as Tracked>::CODE_HASH`;
//! - a struct or enum: the type itself implements `Tracked`;
//! - a method or associated function `Type::score`: an associated const
//!   `Type::__file_cache_track_score` beside it (an `impl` block cannot hold a type).
//!
//! A path names a method when its next-to-last segment is `Self` or starts with an upper-case
//! letter (a type, by Rust's naming conventions); otherwise it names a function or a type.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::ParseStream;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{bracketed, Ident, Path, Token};

/// `[a, b::c, Self::d]`, trailing comma allowed.
pub(crate) fn parse_list(input: ParseStream) -> syn::Result<Vec<Path>> {
    let content;
    bracketed!(content in input);
    let paths = Punctuated::<Path, Token![,]>::parse_terminated(&content)?;
    Ok(paths.into_iter().collect())
}

/// The associated const that publishes the code hash of method `name`.
pub(crate) fn method_const(name: &Ident) -> Ident {
    format_ident!("__file_cache_track_{}", name.unraw(), span = name.span())
}

/// Whether `path` names a method or associated function (`Self::score`, `Scorer::score`).
fn is_method(path: &Path) -> bool {
    let segments = &path.segments;
    segments.len() >= 2 && {
        let parent = segments[segments.len() - 2].ident.unraw().to_string();
        parent == "Self" || parent.starts_with(|c: char| c.is_ascii_uppercase())
    }
}

/// Whether the path goes through `Self`, which a `static` cannot name.
pub(crate) fn uses_self(path: &Path) -> bool {
    path.segments.first().is_some_and(|s| s.ident == "Self")
}

/// A const expression of type `[u8; 32]`: the code hash of the tracked item at `path`.
/// Spanned at the path, so an item that is not tracked is reported where it is named.
pub(crate) fn hash_of(path: &Path) -> TokenStream {
    let span = path.span();
    if is_method(path) {
        let mut prefix = path.clone();
        let last = prefix.segments.pop();
        let name = last.map_or_else(|| Ident::new("_", Span::call_site()), |s| s.ident);
        let name = method_const(&name);
        quote_spanned!(span=> #prefix #name)
    } else {
        quote_spanned!(span=> <#path as ::file_cache::__private::Tracked>::CODE_HASH)
    }
}

/// The code hash of an item whose own tokens hash to `own`, with `deps` folded in: a
/// const expression (just the bytes when there are no dependencies).
pub(crate) fn combined<'a>(own: [u8; 32], deps: impl IntoIterator<Item = &'a Path>) -> TokenStream {
    let deps: Vec<TokenStream> = deps.into_iter().map(hash_of).collect();
    if deps.is_empty() {
        quote!([#(#own),*])
    } else {
        quote!(::file_cache::__private::combine([#(#own),*], &[#(#deps),*]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn text(tokens: TokenStream) -> String {
        tokens.to_string().replace(' ', "")
    }

    #[test]
    fn paths_are_told_apart() {
        let cases: [(Path, &str); 5] = [
            (
                parse_quote!(rank),
                "<rankas::file_cache::__private::Tracked>::CODE_HASH",
            ),
            (
                parse_quote!(crate::text::tokenize),
                "<crate::text::tokenizeas::file_cache::__private::Tracked>::CODE_HASH",
            ),
            (
                parse_quote!(Config),
                "<Configas::file_cache::__private::Tracked>::CODE_HASH",
            ),
            (parse_quote!(Self::score), "Self::__file_cache_track_score"),
            (
                parse_quote!(crate::Scorer::r#score),
                "crate::Scorer::__file_cache_track_score",
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(text(hash_of(&path)), expected);
        }
        assert!(uses_self(&parse_quote!(Self::score)));
        assert!(!uses_self(&parse_quote!(Scorer::score)));
    }
}
