use file_cache::file_cache;

#[file_cache(files = [count])]
fn summarize(count: Option<u64>) -> u64 {
    count.unwrap_or(0)
}

fn main() {
    summarize(None);
}
