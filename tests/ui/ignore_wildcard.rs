use file_cache::file_cache;

#[file_cache(ignore = [_])]
fn double(x: u32, _: u8) -> u32 {
    x * 2
}

fn main() {
    double(1, 2);
}
