//! The attribute's own options: `#[file_cache(ignore = [a, b], result = false, dir = "x",
//! version = "2", deps = [rank], lock = false, memory = false, codec = "msgpack")]`.
//!
//! Parsing keeps going after a bad option so that every mistake is reported at once, each on
//! the tokens that caused it.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{bracketed, Ident, LitBool, LitStr, Token};

use crate::deps;

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
    /// `dir = "path"`: this function's own root directory.
    pub dir: Option<LitStr>,
    /// `version = "2"`: a salt. The options are part of the code hash, so changing it
    /// invalidates every entry of the function.
    pub version: Option<LitStr>,
    /// `deps = [rank, crate::text::tokenize, Self::score]`: tracked items whose code hashes
    /// fold into this function's.
    pub deps: Vec<syn::Path>,
    /// `ttl = "12h"`: entries older than this many seconds are a miss.
    pub ttl: Option<u64>,
    /// `lock = true|false`: whether a miss takes the entry's cross-process lock (default on).
    pub lock: Option<LitBool>,
    /// `codec = "msgpack"`: the codec the function starts with, as the name of a variant of
    /// the runtime's `Codec` (default: postcard, which switches when it must).
    pub codec: Option<Ident>,
    /// `env = ["MODEL", ...]`: environment variables whose values (or absence) join the key,
    /// read at each call.
    pub env: Vec<LitStr>,
    /// `files = [path, ...]`: parameters keyed by what they name on disk (a file's bytes, a
    /// directory's tree) as well as by their value.
    pub files: Vec<Ident>,
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
                "ttl" => {
                    input.parse::<Token![=]>()?;
                    let value = input.parse::<syn::Lit>()?;
                    self.set_ttl(value);
                }
                "dir" => {
                    input.parse::<Token![=]>()?;
                    let value: LitStr = input.parse()?;
                    self.dir.get_or_insert(value);
                }
                "version" => {
                    input.parse::<Token![=]>()?;
                    let value = input.parse::<syn::Lit>()?;
                    self.set_version(value);
                }
                "deps" => {
                    input.parse::<Token![=]>()?;
                    let list = input.call(deps::parse_list)?;
                    self.deps.extend(list);
                }
                "env" => {
                    input.parse::<Token![=]>()?;
                    let list = input.call(parse_token_list)?;
                    self.add_env(list);
                }
                "files" => {
                    input.parse::<Token![=]>()?;
                    let list = input.call(parse_token_list)?;
                    self.add_files(list);
                }
                "lock" => {
                    input.parse::<Token![=]>()?;
                    let value: LitBool = input.parse()?;
                    self.lock.get_or_insert(value);
                }
                "codec" => {
                    input.parse::<Token![=]>()?;
                    let value = input.parse::<syn::Lit>()?;
                    self.set_codec(value);
                }
                _ => {
                    self.push_error(syn::Error::new(
                        name.span(),
                        format!(
                            "unknown option `{name}`; expected `ignore = [param, ...]`, \
                             `result = true|false`, `dir = \"path\"`, `version = \"...\"`, \
                             `deps = [path, ...]`, `ttl = \"12h\"`, `lock = true|false`, \
                             `memory = true|false`, `codec = \"msgpack\"`, `env = [\"NAME\", ...]` \
                             or `files = [param, ...]`"
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

    /// `codec = "postcard"` or `codec = "msgpack"`; any other name or literal is an error
    /// on it.
    fn set_codec(&mut self, value: syn::Lit) {
        let syn::Lit::Str(text) = value else {
            return self.push_error(syn::Error::new(
                value.span(),
                "`codec` takes a codec's name as a string: `codec = \"msgpack\"`",
            ));
        };
        let variant = match text.value().as_str() {
            "postcard" => "Postcard",
            "msgpack" => "MessagePack",
            other => {
                return self.push_error(syn::Error::new(
                    text.span(),
                    format!(
                        "unknown codec \"{other}\"; expected \"postcard\" (the default: \
                         compact, and a function whose values it cannot hold switches to \
                         MessagePack) or \"msgpack\" (MessagePack with field names, which \
                         holds `skip_serializing_if`, `flatten`, tagged and untagged enums \
                         and `serde_json::Value`)"
                    ),
                ))
            }
        };
        self.codec.get_or_insert(Ident::new(variant, text.span()));
    }

    /// `version = "2"`; any other literal is an error on it that shows the string to write.
    fn set_version(&mut self, value: syn::Lit) {
        let syn::Lit::Str(text) = value else {
            let written = match &value {
                syn::Lit::Int(int) => int.base10_digits().to_owned(),
                syn::Lit::Float(float) => float.base10_digits().to_owned(),
                syn::Lit::Bool(boolean) => boolean.value.to_string(),
                syn::Lit::Char(c) => c.value().to_string(),
                other => quote::ToTokens::to_token_stream(other).to_string(),
            };
            return self.push_error(syn::Error::new(
                value.span(),
                format!("`version` must be a string literal: write `version = {written:?}`"),
            ));
        };
        self.version.get_or_insert(text);
    }

    /// `ttl = "1h30m"`; any other literal, or a string that is not a duration, is an error
    /// on it.
    fn set_ttl(&mut self, value: syn::Lit) {
        let syn::Lit::Str(text) = value else {
            return self.push_error(syn::Error::new(
                value.span(),
                "`ttl` takes a duration as a string, with its unit: `ttl = \"60s\"`",
            ));
        };
        match parse_duration(&text.value()) {
            // Zero is a duration, but a ttl of zero would cache nothing.
            Ok(0) => self.push_error(syn::Error::new(
                text.span(),
                format!(
                    "invalid ttl {:?}: it must be longer than zero",
                    text.value()
                ),
            )),
            Ok(seconds) => {
                self.ttl.get_or_insert(seconds);
            }
            Err(reason) => self.push_error(syn::Error::new(
                text.span(),
                format!(
                    "invalid ttl {:?}: {reason}; units are {DURATION_UNITS}, e.g. \"90s\", \
                     \"15m\", \"12h\", \"7d\", \"2w\" or \"1h30m\"",
                    text.value()
                ),
            )),
        }
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

    /// `env = ["A", "B"]`: each element must be a string literal naming a variable; anything
    /// else is an error on its tokens.
    fn add_env(&mut self, list: Vec<TokenStream>) {
        for tokens in list {
            match syn::parse2::<LitStr>(tokens.clone()) {
                Ok(name) if name.value().is_empty() || name.value().contains(['=', '\0']) => self
                    .push_error(syn::Error::new(
                        name.span(),
                        format!(
                            "{:?} is not an environment variable's name: a name is not empty \
                             and holds no `=` or NUL",
                            name.value()
                        ),
                    )),
                Ok(name) => {
                    if self.env.iter().any(|seen| seen.value() == name.value()) {
                        self.push_error(syn::Error::new(
                            name.span(),
                            format!("{:?} is named more than once in `env`", name.value()),
                        ));
                    } else {
                        self.env.push(name);
                    }
                }
                Err(_) => {
                    let written = tokens.to_string();
                    self.push_error(syn::Error::new_spanned(
                        &tokens,
                        format!(
                            "`env` takes environment variables' names as string literals: \
                             write `env = [{:?}]`",
                            written.trim_matches('"')
                        ),
                    ))
                }
            }
        }
    }

    /// `files = [a, b]`: each element must be a parameter's name (checked against the
    /// function in `valid.rs`).
    fn add_files(&mut self, list: Vec<TokenStream>) {
        for tokens in list {
            match syn::parse2::<Ident>(tokens.clone()) {
                Ok(name) if self.files.contains(&name) => self.push_error(syn::Error::new(
                    name.span(),
                    format!("`{name}` is named more than once in `files`"),
                )),
                Ok(name) => self.files.push(name),
                Err(_) => self.push_error(syn::Error::new_spanned(
                    &tokens,
                    "`files` takes parameters' names: `files = [path, ...]`",
                )),
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

/// `[x, y, ...]` as each element's tokens (split at top-level commas), so that a wrong kind of
/// element is reported on its own tokens rather than as a parse error.
fn parse_token_list(input: ParseStream) -> syn::Result<Vec<TokenStream>> {
    let content;
    bracketed!(content in input);
    let mut items = Vec::new();
    let mut current = TokenStream::new();
    while !content.is_empty() {
        if content.peek(Token![,]) {
            content.parse::<Token![,]>()?;
            items.push(std::mem::take(&mut current));
            continue;
        }
        let token: proc_macro2::TokenTree = content.parse()?;
        current.extend([token]);
    }
    if !current.is_empty() {
        items.push(current);
    }
    Ok(items)
}

/// The units a duration may use, as error messages list them.
pub(crate) const DURATION_UNITS: &str = "w (weeks), d (days), h, m and s";

/// Parses a duration such as `"90s"`, `"12h"`, `"2w"` or `"1h30m"` into seconds: one or
/// more `<digits><unit>` parts, units `w`, `d`, `h`, `m` and `s`, each at most once and
/// largest first, spaces around the whole ignored.
///
/// The runtime has the same parser (`file_cache::inspect::parse_duration`, which the
/// `file-cache` tool's `--older-than` uses); a proc-macro crate cannot share code with the
/// crates that depend on it, so both are checked against one table of cases,
/// `durations.txt`, in their tests.
pub(crate) fn parse_duration(text: &str) -> Result<u64, &'static str> {
    let text = text.trim();
    if text.is_empty() {
        return Err("it is empty");
    }
    let mut seconds: u64 = 0;
    let mut number: Option<u64> = None;
    let mut last_unit = u64::MAX;
    for c in text.chars() {
        if let Some(digit) = c.to_digit(10) {
            let n = number.unwrap_or(0);
            number = Some(
                n.checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(digit)))
                    .ok_or("it is too large")?,
            );
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err("it is not digits followed by a unit"),
        };
        let n = number.take().ok_or("a unit needs a number before it")?;
        if unit >= last_unit {
            return Err("each unit comes once, largest first");
        }
        last_unit = unit;
        seconds = n
            .checked_mul(unit)
            .and_then(|s| s.checked_add(seconds))
            .ok_or("it is too large")?;
    }
    if number.is_some() {
        return Err("a number needs a unit after it");
    }
    Ok(seconds)
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
        assert!(options.dir.is_none());
        assert!(options.errors.is_none());
    }

    #[test]
    fn ignore_result_and_dir() {
        let options = Options::from_tokens(quote!(
            ignore = [logger, progress,],
            result = false,
            dir = "models",
            memory = false
        ));
        assert_eq!(options.dir.as_ref().unwrap().value(), "models");
        let names: Vec<String> = options.ignore.iter().map(|i| i.to_string()).collect();
        assert_eq!(names, ["logger", "progress"]);
        assert!(!options.result.as_ref().unwrap().value);
        assert!(!options.memory.as_ref().unwrap().value);
        assert!(options.lock.is_none());
        assert!(options.errors.is_none());
    }

    #[test]
    fn codec() {
        let options = Options::from_tokens(quote!(codec = "msgpack"));
        assert_eq!(options.codec.as_ref().unwrap().to_string(), "MessagePack");
        let options = Options::from_tokens(quote!(codec = "postcard"));
        assert_eq!(options.codec.as_ref().unwrap().to_string(), "Postcard");
        let options = Options::from_tokens(quote!(codec = "cbor"));
        assert!(options.codec.is_none());
        assert!(messages(&options)[0].contains("unknown codec \"cbor\""));
        assert!(Options::from_tokens(quote!(codec = msgpack))
            .errors
            .is_some());
        assert!(Options::from_tokens(quote!(codec = 2)).errors.is_some());
    }

    #[test]
    fn lock() {
        let options = Options::from_tokens(quote!(lock = false));
        assert!(!options.lock.as_ref().unwrap().value);
        assert!(options.errors.is_none());
        let options = Options::from_tokens(quote!(lock = true, lock = false));
        assert!(
            options.lock.as_ref().unwrap().value,
            "the first one is kept"
        );
        assert!(messages(&options)[0].contains("`lock` is given more than once"));
        assert!(Options::from_tokens(quote!(lock = "no")).errors.is_some());
    }

    #[test]
    fn unknown_and_repeated_are_all_reported() {
        let options =
            Options::from_tokens(quote!(verbose = true, ignore = [a], tll(5), ignore = [b]));
        let messages = messages(&options);
        assert!(
            messages[0].contains("unknown option `verbose`"),
            "{messages:?}"
        );
        assert!(messages[1].contains("unknown option `tll`"), "{messages:?}");
        assert!(
            messages[2].contains("`ignore` is given more than once"),
            "{messages:?}"
        );
        // The options that were valid are still applied.
        assert_eq!(options.ignore.len(), 2);
    }

    #[test]
    fn version_and_deps() {
        let options = Options::from_tokens(quote!(
            version = "2",
            deps = [rank, crate::text::tokenize, Self::score]
        ));
        assert_eq!(options.version.as_ref().unwrap().value(), "2");
        let deps: Vec<String> = options
            .deps
            .iter()
            .map(|p| quote!(#p).to_string().replace(' ', ""))
            .collect();
        assert_eq!(deps, ["rank", "crate::text::tokenize", "Self::score"]);
        assert!(options.errors.is_none());
        for args in [quote!(version = 2), quote!(deps = rank), quote!(deps = [1])] {
            assert!(
                Options::from_tokens(args.clone()).errors.is_some(),
                "accepted `{args}`"
            );
        }
    }

    /// Every case of the table the runtime's parser is checked against too.
    #[test]
    fn durations_follow_the_shared_table() {
        let table = include_str!("durations.txt");
        let mut cases = 0;
        for line in table.lines().filter(|line| !line.starts_with('#')) {
            let (input, expected) = line.rsplit_once('|').expect("input|result");
            let got = parse_duration(input);
            match expected {
                "error" => assert!(got.is_err(), "{input:?} parsed as {got:?}"),
                seconds => assert_eq!(got, Ok(seconds.parse().unwrap()), "{input:?}"),
            }
            cases += 1;
        }
        assert!(cases > 20, "the table is read: {cases} cases");
    }

    #[test]
    fn ttl_durations() {
        let options = Options::from_tokens(quote!(ttl = "1h30m"));
        assert_eq!(options.ttl, Some(5400));
        let options = Options::from_tokens(quote!(ttl = "2w"));
        assert_eq!(options.ttl, Some(14 * 86_400));
        let options = Options::from_tokens(quote!(ttl = "soon"));
        let message = &messages(&options)[0];
        assert!(message.contains("invalid ttl \"soon\""), "{message}");
        assert!(message.contains(DURATION_UNITS), "{message}");
        let options = Options::from_tokens(quote!(ttl = "0s"));
        assert!(messages(&options)[0].contains("longer than zero"));
    }

    #[test]
    fn a_version_that_is_not_a_string_says_which_string_to_write() {
        for (args, hint) in [
            (quote!(version = 2), "write `version = \"2\"`"),
            (quote!(version = 1.5), "write `version = \"1.5\"`"),
        ] {
            let message = &messages(&Options::from_tokens(args))[0];
            assert!(
                message.contains("`version` must be a string literal"),
                "{message}"
            );
            assert!(message.contains(hint), "{message}");
        }
    }

    #[test]
    fn env_and_files() {
        let options = Options::from_tokens(quote!(env = ["MODEL", "HOME",], files = [p, q]));
        assert!(options.errors.is_none());
        let env: Vec<String> = options.env.iter().map(LitStr::value).collect();
        assert_eq!(env, ["MODEL", "HOME"]);
        let files: Vec<String> = options.files.iter().map(Ident::to_string).collect();
        assert_eq!(files, ["p", "q"]);
        for args in [
            quote!(env = [MODEL]),
            quote!(env = [1]),
            quote!(env = ["A", "A"]),
            quote!(env = [""]),
            quote!(env = ["A=B"]),
            quote!(env = "A"),
            quote!(files = ["p"]),
            quote!(files = [p, p]),
            quote!(files = [a::b]),
        ] {
            assert!(
                Options::from_tokens(args.clone()).errors.is_some(),
                "accepted `{args}`"
            );
        }
        let options = Options::from_tokens(quote!(env = [MODEL, "OK", 3]));
        let messages = messages(&options);
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(
            messages[0].contains("write `env = [\"MODEL\"]`"),
            "{messages:?}"
        );
        assert_eq!(options.env.len(), 1, "the valid name is kept");
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
            quote!(dir = 1),
            quote!(dir = some::path),
            quote!(ignore[a]),
            quote!(ignore = [a] b),
        ] {
            let options = Options::from_tokens(args.clone());
            assert!(options.errors.is_some(), "accepted `{args}`");
        }
    }
}
