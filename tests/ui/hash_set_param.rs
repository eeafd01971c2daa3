use file_cache::file_cache;
use std::collections::HashSet;

#[file_cache]
fn count(words: &HashSet<String>, extra: std::collections::HashSet<u8>) -> usize {
    words.len() + extra.len()
}

fn main() {
    count(&HashSet::new(), HashSet::new());
}
