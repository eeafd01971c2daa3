use file_cache::file_cache;
use std::path::Path;

#[file_cache(ignore = [path], files = [path])]
fn summarize(path: &Path) -> u64 {
    path.as_os_str().len() as u64
}

fn main() {
    summarize(Path::new("a"));
}
