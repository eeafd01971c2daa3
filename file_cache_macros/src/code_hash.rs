//! The code hash: blake3 of a canonical encoding of the function's tokens, computed at
//! compile time, so that an edit to the function invalidates its entries.
//!
//! Only token kinds and text are encoded: no spans, no `Spacing`, so reformatting never
//! changes the hash; comments are not tokens, and doc attributes (`///`, `//!`, `#[doc]`)
//! are skipped, so documentation never changes it either. Everything else is a real edit.

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use quote::ToTokens;

use crate::model::ItemFn;

/// Bumped whenever the encoding changes, so old entries cannot be mistaken for current ones.
const DOMAIN: &str = "file_cache code hash v1";

// One tag byte per token kind or section; text is length-prefixed, so no two different
// token sequences encode to the same bytes.
const TAG_IDENT: u8 = b'i';
const TAG_PUNCT: u8 = b'p';
const TAG_LITERAL: u8 = b'l';
const TAG_OPEN: u8 = b'(';
const TAG_CLOSE: u8 = b')';
const SECTION_OPTIONS: u8 = b'O';
const SECTION_SIGNATURE: u8 = b'S';
const SECTION_BODY: u8 = b'B';
const SECTION_ITEM: u8 = b'I';

/// The code hash of `item` under the attribute arguments `args` (they change what is keyed).
pub(crate) fn code_hash(args: &TokenStream, item: &ItemFn) -> [u8; 32] {
    let mut encoder = Encoder(blake3::Hasher::new_derive_key(DOMAIN));
    encoder.section(SECTION_OPTIONS, args.clone());
    encoder.section(SECTION_SIGNATURE, item.sig.to_token_stream());
    encoder.section(SECTION_BODY, item.body.stream());
    *encoder.0.finalize().as_bytes()
}

/// The code hash of a tracked struct or enum: its tokens (attributes such as `#[serde(..)]`
/// included, documentation not) under the attribute arguments `args`.
pub(crate) fn item_hash(args: &TokenStream, item: TokenStream) -> [u8; 32] {
    let mut encoder = Encoder(blake3::Hasher::new_derive_key(DOMAIN));
    encoder.section(SECTION_OPTIONS, args.clone());
    encoder.section(SECTION_ITEM, item);
    *encoder.0.finalize().as_bytes()
}

struct Encoder(blake3::Hasher);

impl Encoder {
    fn section(&mut self, tag: u8, tokens: TokenStream) {
        self.0.update(&[tag]);
        self.stream(tokens);
    }

    fn stream(&mut self, tokens: TokenStream) {
        let mut tokens = tokens.into_iter().peekable();
        while let Some(token) = tokens.next() {
            if is_pound(&token) {
                // `#[doc ...]` or `#![doc ...]`: skip the whole attribute.
                let mut lookahead = tokens.clone();
                let bang =
                    matches!(lookahead.peek(), Some(TokenTree::Punct(p)) if p.as_char() == '!');
                if bang {
                    lookahead.next();
                }
                if lookahead
                    .next()
                    .is_some_and(|group| is_doc_attribute(&group))
                {
                    tokens = lookahead;
                    continue;
                }
            }
            self.token(token);
        }
    }

    fn token(&mut self, token: TokenTree) {
        match token {
            TokenTree::Group(group) => {
                let delimiter = match group.delimiter() {
                    Delimiter::Parenthesis => b'(',
                    Delimiter::Brace => b'{',
                    Delimiter::Bracket => b'[',
                    Delimiter::None => b'0',
                };
                self.0.update(&[TAG_OPEN, delimiter]);
                self.stream(group.stream());
                self.0.update(&[TAG_CLOSE, delimiter]);
            }
            TokenTree::Ident(ident) => self.text(TAG_IDENT, &ident.to_string()),
            TokenTree::Punct(punct) => {
                let mut utf8 = [0; 4];
                self.text(TAG_PUNCT, punct.as_char().encode_utf8(&mut utf8));
            }
            TokenTree::Literal(literal) => self.text(TAG_LITERAL, &literal.to_string()),
        }
    }

    fn text(&mut self, tag: u8, text: &str) {
        self.0.update(&[tag]);
        self.0.update(&(text.len() as u64).to_le_bytes());
        self.0.update(text.as_bytes());
    }
}

fn is_pound(token: &TokenTree) -> bool {
    matches!(token, TokenTree::Punct(p) if p.as_char() == '#')
}

/// `[doc = "..."]`, `[doc(hidden)]`: an attribute that changes documentation, not behaviour.
fn is_doc_attribute(token: &TokenTree) -> bool {
    let TokenTree::Group(group) = token else {
        return false;
    };
    if group.delimiter() != Delimiter::Bracket {
        return false;
    }
    let mut inner = group.stream().into_iter();
    let is_doc = matches!(inner.next(), Some(TokenTree::Ident(ident)) if ident == "doc");
    let rest = inner.next();
    let then = matches!(&rest, None | Some(TokenTree::Group(_)))
        || matches!(&rest, Some(TokenTree::Punct(p)) if p.as_char() == '=');
    is_doc && then
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash of a source file holding `#[file_cache(args)]` and a function, as two
    /// compilations of two versions of that function would compute it.
    fn hash(source: &str) -> [u8; 32] {
        let file: TokenStream = source.parse().expect("tokens");
        let mut tokens = file.into_iter().peekable();
        let mut args = TokenStream::new();
        // `#[file_cache(...)]` is the first attribute; the rest is the item.
        let pound = tokens.next().expect("#");
        assert!(is_pound(&pound));
        let Some(TokenTree::Group(attr)) = tokens.next() else {
            panic!("attribute")
        };
        let mut attr = attr.stream().into_iter();
        assert_eq!(attr.next().unwrap().to_string(), "file_cache");
        if let Some(TokenTree::Group(group)) = attr.next() {
            args = group.stream();
        }
        let item: ItemFn = syn::parse2(tokens.collect()).expect("a function");
        code_hash(&args, &item)
    }

    const ORIGINAL: &str = r#"
        #[file_cache(ignore = [logger])]
        /// Adds slowly.
        pub fn slow_add<T: Into<u64>>(x: T, y: u64, logger: &Logger) -> u64 {
            // Pretend to work.
            let x: u64 = x.into();
            x + y * 2
        }
    "#;

    #[test]
    fn the_same_source_hashes_the_same() {
        assert_eq!(hash(ORIGINAL), hash(ORIGINAL));
    }

    #[test]
    fn formatting_comments_and_docs_do_not_count() {
        let variants = [
            // Reformatted: whitespace, line breaks, spacing between punctuation.
            r#"#[file_cache( ignore=[ logger ] )] pub fn slow_add<T:Into<u64>>(x:T,y:u64,logger:&Logger)->u64{let x:u64=x.into();x+y*2}"#,
            // Other comments, block comments, no doc comment.
            r#"
            #[file_cache(ignore = [logger])]
            // A normal comment.
            pub fn slow_add<T: Into<u64>>(x: T, /* the second */ y: u64, logger: &Logger) -> u64 {
                let x: u64 = x.into(); // convert
                x + y * 2
            }"#,
            // Doc comments everywhere: outer, inner, in the body, and `#[doc]` written out.
            r#"
            #[file_cache(ignore = [logger])]
            /// Adds slowly, and documents it at length.
            #[doc = "More docs."]
            pub fn slow_add<T: Into<u64>>(x: T, y: u64, logger: &Logger) -> u64 {
                //! Inner docs.
                #![doc = "even more"]
                /// Docs on a statement.
                let x: u64 = x.into();
                x + y * 2
            }"#,
        ];
        for variant in variants {
            assert_eq!(hash(variant), hash(ORIGINAL), "{variant}");
        }
    }

    #[test]
    fn real_edits_count() {
        let edits = [
            // Body: an operator, a literal, an added statement.
            ORIGINAL.replace("x + y * 2", "x - y * 2"),
            ORIGINAL.replace("y * 2", "y * 3"),
            ORIGINAL.replace("x + y * 2", "println!(); x + y * 2"),
            // Signature: a type, a name, an added parameter, a bound, the return type.
            ORIGINAL.replace("y: u64", "y: u32"),
            ORIGINAL.replace("slow_add", "slower_add"),
            ORIGINAL.replace("logger: &Logger", "logger: &Logger, z: u8"),
            ORIGINAL.replace("T: Into<u64>", "T: Into<u64> + Clone"),
            ORIGINAL.replace("-> u64 {", "-> u128 {"),
            // The attribute's options change what is keyed.
            ORIGINAL.replace("ignore = [logger]", "ignore = [logger, y]"),
            ORIGINAL.replace("ignore = [logger]", "ignore = [logger], result = false"),
            // A non-doc attribute inside the body is behaviour.
            ORIGINAL.replace("let x: u64", "#[allow(unused)] let x: u64"),
        ];
        let original = hash(ORIGINAL);
        for edit in &edits {
            assert_ne!(hash(edit), original, "{edit}");
        }
        // And the edits differ from each other.
        for (i, a) in edits.iter().enumerate() {
            for b in &edits[i + 1..] {
                assert_ne!(hash(a), hash(b), "{a}\n{b}");
            }
        }
    }

    #[test]
    fn token_boundaries_are_unambiguous() {
        let a = r#"#[file_cache] fn f() -> u8 { ab }"#;
        let b = r#"#[file_cache] fn f() -> u8 { a b }"#;
        let c = r#"#[file_cache] fn f() -> u8 { (a) b }"#;
        let d = r#"#[file_cache] fn f() -> u8 { (a b) }"#;
        let all = [hash(a), hash(b), hash(c), hash(d)];
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(x, y);
            }
        }
    }
}
