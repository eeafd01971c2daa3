use file_cache::file_cache;

#[file_cache(result = true)]
fn count(n: u32) -> u32 {
    n
}

fn main() {
    count(1);
}
