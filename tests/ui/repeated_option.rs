use file_cache::file_cache;

#[file_cache(ignore = [y], ignore = [z])]
fn add(x: u64, y: u64, z: u64) -> u64 {
    x + y + z
}

fn main() {
    add(1, 2, 3);
}
