//! The attribute's own options: `#[file_cache(ignore = [a, b], result = false)]`.
//!
//! Parsing keeps going after a bad option so that every mistake is reported at once, each on
//! the tokens that caused it.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{bracketed, Ident, LitBool, Token};

/// The options written in `#[file_cache(...)]`.
#[derive(Default)]
pub(crate) struct Options {
    /// `ignore = [a, b]`: parameters that are neither hashed nor bound by any trait.
    pub ignore: Vec<Ident>,
    /// `result = true|false`: overrides detecting a `Result` return by its last path segment.
    pub result: Option<LitBool>,
    /// `memory = true|false`: whether the per-process memory tier may keep this function's
    /// values (default: yes).
    pub memory: Option<LitBool>,
    /// Mistakes found while parsing, combined; parsing does not stop at the first one.
    pub errors: Option<syn::Error>,
}

impl Options {
    /// Parses the attribute's arguments. Never fails: mistakes land in `errors`.
    pub(crate) fn from_tokens(args: TokenStream) -> Options {
        let mut options = Options::default();
        let parsed = (|input: ParseStream| options.parse_all(input)).parse2(args);
        if let Err(error) = parsed {
            options.push_error(error);
        }
        options
    }

    fn parse_all(&mut self, input: ParseStream) -> syn::Result<()> {
        let mut seen: Vec<Ident> = Vec::new();
        while !input.is_empty() {
            let name = input.call(Ident::parse_any)?;
            if seen.contains(&name) {
                self.push_error(syn::Error::new(
                    name.span(),
                    format!("option `{name}` is given more than once"),
                ));
            }
            match name.to_string().as_str() {
                "ignore" => {
                    input.parse::<Token![=]>()?;
                    let list = input.call(parse_ident_list)?;
                    self.add_ignored(list);
                }
                "result" => {
                    input.parse::<Token![=]>()?;
                    let value: LitBool = input.parse()?;
                    self.result.get_or_insert(value);
                }
                "memory" => {
                    input.parse::<Token![=]>()?;
                    let value: LitBool = input.parse()?;
                    self.memory.get_or_insert(value);
                }
                _ => {
                    self.push_error(syn::Error::new(
                        name.span(),
                        format!(
                            "unknown option `{name}`; expected `ignore = [param, ...]`, `result = true|false` or `memory = true|false`"
                        ),
                    ));
                    skip_to_next_option(input)?;
                }
            }
            seen.push(name);
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(())
    }

    fn add_ignored(&mut self, list: Vec<Ident>) {
        for name in list {
            if self.ignore.contains(&name) {
                self.push_error(syn::Error::new(
                    name.span(),
                    format!("`{name}` is ignored more than once"),
                ));
            } else {
                self.ignore.push(name);
            }
        }
    }

    fn push_error(&mut self, error: syn::Error) {
        match &mut self.errors {
            Some(errors) => errors.combine(error),
            None => self.errors = Some(error),
        }
    }

    /// Whether `name` is in `ignore = [...]`.
    pub(crate) fn is_ignored(&self, name: &Ident) -> bool {
        self.ignore.iter().any(|ignored| ignored == name)
    }
}

/// `[a, b, c]`, trailing comma allowed; `self` parses too so a receiver can be named later.
fn parse_ident_list(input: ParseStream) -> syn::Result<Vec<Ident>> {
    let content;
    bracketed!(content in input);
    let names = Punctuated::<Ident, Token![,]>::parse_terminated_with(&content, Ident::parse_any)?;
    Ok(names.into_iter().collect())
}

/// Skips an unknown option's value (`= anything`) up to the next top-level comma, so the
/// options after it are still checked.
fn skip_to_next_option(input: ParseStream) -> syn::Result<()> {
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<proc_macro2::TokenTree>()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn messages(options: &Options) -> Vec<String> {
        options
            .errors
            .iter()
            .flat_map(|e| e.clone().into_iter())
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn empty_is_default() {
        let options = Options::from_tokens(quote!());
        assert!(options.ignore.is_empty());
        assert!(options.result.is_none());
        assert!(options.errors.is_none());
    }

    #[test]
    fn ignore_and_result() {
        let options = Options::from_tokens(quote!(
            ignore = [logger, progress,],
            result = false,
            memory = false
        ));
        let names: Vec<String> = options.ignore.iter().map(|i| i.to_string()).collect();
        assert_eq!(names, ["logger", "progress"]);
        assert!(!options.result.as_ref().unwrap().value);
        assert!(!options.memory.as_ref().unwrap().value);
        assert!(options.errors.is_none());
    }

    #[test]
    fn unknown_and_repeated_are_all_reported() {
        let options =
            Options::from_tokens(quote!(verbose = true, ignore = [a], ttl(5), ignore = [b]));
        let messages = messages(&options);
        assert!(
            messages[0].contains("unknown option `verbose`"),
            "{messages:?}"
        );
        assert!(messages[1].contains("unknown option `ttl`"), "{messages:?}");
        assert!(
            messages[2].contains("`ignore` is given more than once"),
            "{messages:?}"
        );
        // The options that were valid are still applied.
        assert_eq!(options.ignore.len(), 2);
    }

    #[test]
    fn ignored_twice() {
        let options = Options::from_tokens(quote!(ignore = [a, a]));
        assert!(messages(&options)[0].contains("`a` is ignored more than once"));
    }

    #[test]
    fn malformed_values_are_errors() {
        for args in [
            quote!(ignore = a),
            quote!(result = 1),
            quote!(memory = "no"),
            quote!(ignore[a]),
            quote!(ignore = [a] b),
        ] {
            let options = Options::from_tokens(args.clone());
            assert!(options.errors.is_some(), "accepted `{args}`");
        }
    }
}
