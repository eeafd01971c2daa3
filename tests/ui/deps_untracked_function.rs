use file_cache::file_cache;

fn rank(x: u64) -> u64 {
    x * 2
}

#[file_cache(deps = [rank])]
fn summarize(x: u64) -> u64 {
    rank(x)
}

fn main() {
    summarize(1);
}
