use file_cache::file_cache;

#[file_cache(version = 2)]
fn seven() -> u64 {
    7
}

fn main() {
    seven();
}
