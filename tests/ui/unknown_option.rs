use file_cache::file_cache;

#[file_cache(ignore = [y], timeout = 60)]
fn add(x: u64, y: u64) -> u64 {
    x + y
}

fn main() {
    add(1, 2);
}
