// A type error inside the body points at the user's tokens.
use file_cache::file_cache;

#[file_cache]
fn add(x: u64, y: u64) -> u64 {
    let label: String = x + y;
    label
}

fn main() {
    add(1, 2);
}
