use file_cache::file_cache;

#[file_cache(ignore = [b])]
fn add((a, b): (u32, u32)) -> u32 {
    a + b
}

fn main() {
    add((1, 2));
}
