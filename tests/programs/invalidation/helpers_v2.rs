//! A library crate beside the program (version 2): a tracked function in another crate.

#[file_cache::track]
pub fn normalize(text: &str) -> String {
    // EDIT: a tracked function in another crate.
    text.to_uppercase()
}
