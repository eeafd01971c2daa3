use file_cache::file_cache;

#[file_cache(codec = "cbor")]
fn expensive(x: u64) -> u64 {
    x
}

fn main() {
    expensive(1);
}
