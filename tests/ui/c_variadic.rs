use file_cache::file_cache;

#[file_cache]
unsafe extern "C" fn count(n: u32, _: ...) -> u32 {
    n
}

fn main() {}
