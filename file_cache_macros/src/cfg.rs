//! How the function was compiled: the `cfg` predicates its tokens test, which the generated
//! code evaluates in the user's crate (`cfg!(PRED)`) into the key.
//!
//! One source can hold different bodies: `cfg!(debug_assertions)`, `#[cfg(feature = "x")]`
//! on a statement, `#[cfg_attr(..)]`, `debug_assert!` and overflow checks all change what
//! the same tokens do. Its code hash cannot see that, so a debug and a release build (or a
//! build with a feature and one without) would share entries on one root. The key holds
//! `cfg!(debug_assertions)` always, and every predicate found here.

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use quote::quote;

/// The predicates tested in `tokens`, recursively through groups, each once, in the order
/// they first appear: `cfg!(PRED)`, `#[cfg(PRED)]`, `#![cfg(PRED)]`, and
/// `#[cfg_attr(PRED, attrs)]` (with the predicates of `cfg`s and `cfg_attr`s in `attrs`).
pub(crate) fn predicates(tokens: TokenStream) -> Vec<TokenStream> {
    let mut found = Found::default();
    found.scan(tokens);
    found.list
}

/// The values of `cfg!(debug_assertions)` and of `predicates` in the user's crate: a
/// `&'static [bool]` expression.
pub(crate) fn values(predicates: &[TokenStream]) -> TokenStream {
    let predicates = predicates
        .iter()
        .filter(|predicate| predicate.to_string() != "debug_assertions");
    quote!(&[::core::cfg!(debug_assertions) #(, ::core::cfg!(#predicates))*])
}

#[derive(Default)]
struct Found {
    list: Vec<TokenStream>,
    seen: Vec<String>,
}

impl Found {
    fn add(&mut self, predicate: TokenStream) {
        // Only what `cfg!` accepts: in a `macro_rules!` of the body, `cfg!($x)` is a
        // template, and so is `#[cfg(#x)]` in a `quote!`.
        if !is_predicate(predicate.clone()) {
            return;
        }
        // `#[cfg(unix,)]`: the comma is not part of the predicate.
        let mut tokens: Vec<TokenTree> = predicate.into_iter().collect();
        if matches!(tokens.last(), Some(TokenTree::Punct(comma)) if comma.as_char() == ',') {
            tokens.pop();
        }
        let predicate: TokenStream = tokens.into_iter().collect();
        let text = predicate.to_string();
        if !self.seen.contains(&text) {
            self.seen.push(text);
            self.list.push(predicate);
        }
    }

    fn scan(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, token) in tokens.iter().enumerate() {
            match token {
                // `cfg!(PRED)`, also as `::core::cfg!(PRED)`.
                TokenTree::Ident(ident) if ident == "cfg" => {
                    if let [TokenTree::Punct(bang), TokenTree::Group(args), ..] = &tokens[i + 1..] {
                        if bang.as_char() == '!' {
                            self.add(args.stream());
                        }
                    }
                }
                TokenTree::Group(group) => {
                    let is = |token: &TokenTree, c: char| matches!(token, TokenTree::Punct(punct) if punct.as_char() == c);
                    let after_pound = match &tokens[..i] {
                        [.., pound, bang] if is(pound, '#') && is(bang, '!') => true,
                        [.., pound] => is(pound, '#'),
                        [] => false,
                    };
                    if after_pound && group.delimiter() == Delimiter::Bracket {
                        self.attribute(group.stream());
                    }
                    self.scan(group.stream());
                }
                _ => {}
            }
        }
    }

    /// The inside of `#[...]`: `cfg(PRED)` or `cfg_attr(PRED, attr, ...)`; others are
    /// scanned as any tokens are.
    fn attribute(&mut self, tokens: TokenStream) {
        let mut tokens = tokens.into_iter();
        let (Some(TokenTree::Ident(name)), Some(TokenTree::Group(args)), None) =
            (tokens.next(), tokens.next(), tokens.next())
        else {
            return;
        };
        if args.delimiter() != Delimiter::Parenthesis {
            return;
        }
        if name == "cfg" {
            self.add(args.stream());
        } else if name == "cfg_attr" {
            // `PRED, attr, attr`: commas inside nested groups are not at this level.
            let mut parts = vec![TokenStream::new()];
            for token in args.stream() {
                match &token {
                    TokenTree::Punct(comma) if comma.as_char() == ',' => {
                        parts.push(TokenStream::new())
                    }
                    _ => {
                        if let Some(part) = parts.last_mut() {
                            part.extend([token]);
                        }
                    }
                }
            }
            let mut parts = parts.into_iter();
            if let Some(predicate) = parts.next() {
                self.add(predicate);
            }
            for attribute in parts {
                self.attribute(attribute);
            }
        }
    }
}

/// `name`, `name = "value"` or `name(predicate, ...)` (a literal allowed in the list, as in
/// `version("1.80")`), with an optional trailing comma.
fn is_predicate(tokens: TokenStream) -> bool {
    let mut tokens = tokens.into_iter().peekable();
    if !matches!(tokens.next(), Some(TokenTree::Ident(_))) {
        return false;
    }
    let valid = match tokens.next() {
        None => true,
        Some(TokenTree::Punct(eq)) if eq.as_char() == '=' => {
            matches!(tokens.next(), Some(TokenTree::Literal(_)))
        }
        Some(TokenTree::Group(list)) if list.delimiter() == Delimiter::Parenthesis => {
            is_list(list.stream())
        }
        Some(TokenTree::Punct(comma)) if comma.as_char() == ',' => return tokens.next().is_none(),
        Some(_) => false,
    };
    let trailing = match tokens.next() {
        None => true,
        Some(TokenTree::Punct(comma)) => comma.as_char() == ',' && tokens.next().is_none(),
        Some(_) => false,
    };
    valid && trailing
}

/// The inside of `all(..)`, `any(..)`, `not(..)`: predicates or literals, comma-separated.
fn is_list(tokens: TokenStream) -> bool {
    let mut item = TokenStream::new();
    let mut items = Vec::new();
    for token in tokens {
        match &token {
            TokenTree::Punct(comma) if comma.as_char() == ',' => {
                items.push(std::mem::take(&mut item));
            }
            _ => item.extend([token]),
        }
    }
    if !item.is_empty() {
        items.push(item);
    }
    items.into_iter().all(|item| {
        let mut tokens = item.clone().into_iter();
        let literal = matches!(
            (tokens.next(), tokens.next()),
            (Some(TokenTree::Literal(_)), None)
        );
        literal || is_predicate(item)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(tokens: TokenStream) -> Vec<String> {
        predicates(tokens)
            .iter()
            .map(|p| p.to_string().replace(' ', ""))
            .collect()
    }

    #[test]
    fn every_form_is_found_once_in_order() {
        let tokens = quote! {
            fn f(#[cfg(unix)] a: u8, b: u8) -> &'static str {
                #![cfg_attr(feature = "inner", allow(unused))]
                if cfg!(debug_assertions) { return "debug"; }
                #[cfg(feature = "extra")]
                let x = 1;
                #[cfg_attr(all(unix, not(test)), cfg_attr(target_os = "linux", inline), cfg(any(a, b)))]
                fn g() {}
                let s = format!("{}", ::core::cfg!(target_pointer_width = "64"));
                { { if std::cfg!(feature = "extra") {} } }
                #[cfg(unix,)]
                let y = 2;
                "x"
            }
        };
        assert_eq!(
            found(tokens),
            [
                "unix",
                "feature=\"inner\"",
                "debug_assertions",
                "feature=\"extra\"",
                "all(unix,not(test))",
                "target_os=\"linux\"",
                "any(a,b)",
                "target_pointer_width=\"64\"",
            ]
        );
    }

    #[test]
    fn look_alikes_are_not_predicates() {
        let tokens = quote! {
            fn f(cfg: Config) -> u8 {
                let cfg_attr = cfg(1);
                let v = [cfg];
                #[allow(cfg)]
                let w = cfg.x;
                #[derive(Debug)]
                struct S;
                macro_rules! on {
                    ($name:ident) => {
                        cfg!(all($name))
                    };
                }
                0
            }
        };
        assert!(found(tokens).is_empty());
        // A `quote!` in the body, as in a function that generates code.
        let tokens = "fn f() -> T { quote! { #[cfg(#name)] fn g() {} } }".parse();
        assert!(found(tokens.expect("tokens")).is_empty());
    }

    #[test]
    fn only_what_cfg_accepts_is_a_predicate() {
        let valid = [
            quote!(unix),
            quote!(feature = "x"),
            quote!(all(unix, not(feature = "x"), any()),),
            quote!(version("1.80")),
            quote!(all(unix,)),
        ];
        for tokens in valid {
            assert!(is_predicate(tokens.clone()), "{tokens}");
        }
        let invalid = [
            quote!(),
            quote!($x),
            quote!(all($x)),
            "#name".parse().expect("tokens"),
            quote!(feature = x),
            quote!(a b),
            quote!(a, b),
            quote!(all[unix]),
        ];
        for tokens in invalid {
            assert!(!is_predicate(tokens.clone()), "{tokens}");
        }
    }

    #[test]
    fn debug_assertions_is_always_first_and_once() {
        let text = |tokens: TokenStream| values(&predicates(tokens)).to_string().replace(' ', "");
        assert_eq!(
            text(quote!(
                fn f() {}
            )),
            "&[::core::cfg!(debug_assertions)]"
        );
        assert_eq!(
            text(quote!(
                fn f() {
                    cfg!(unix);
                    cfg!(debug_assertions)
                }
            )),
            "&[::core::cfg!(debug_assertions),::core::cfg!(unix)]"
        );
    }
}
