use file_cache::file_cache;

#[file_cache(ignore = [self])]
fn double(x: u32) -> u32 {
    x * 2
}

fn main() {
    double(1);
}
