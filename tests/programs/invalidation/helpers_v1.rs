//! A library crate beside the program (version 1): a tracked function in another crate.
// Generated items must not trip a user's lints.
#![deny(missing_docs, warnings)]

/// Normalizes the case of `text`.
#[file_cache::track]
pub fn normalize(text: &str) -> String {
    text.to_lowercase()
}

/// What joins the parts of a label; tracked, and the same in both versions.
#[file_cache::track]
pub static SEPARATOR: &str = ", ";
