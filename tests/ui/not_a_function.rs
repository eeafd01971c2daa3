use file_cache::file_cache;

#[file_cache]
struct Settings {
    depth: u32,
}

fn main() {
    let _ = Settings { depth: 1 };
}
