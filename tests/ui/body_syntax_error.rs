// A mistake inside the body is reported as the user's own, not as the macro's.
use file_cache::file_cache;

#[file_cache]
fn add(x: u64, y: u64) -> u64 {
    let sum = x + ;
    sum + y
}

fn main() {
    add(1, 2);
}
