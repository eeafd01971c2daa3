use file_cache::file_cache;

#[file_cache]
const fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    square(3);
}
