//! A library crate beside the program (version 1): a tracked function in another crate.

#[file_cache::track]
pub fn normalize(text: &str) -> String {
    text.to_lowercase()
}
