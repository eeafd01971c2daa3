use file_cache::file_cache;

#[file_cache(ttl = "12 hours")]
fn expensive(x: u64) -> u64 {
    x
}

fn main() {
    expensive(1);
}
