use file_cache::file_cache;

#[file_cache]
fn evens(n: u32) -> impl Iterator<Item = u32> {
    (0..n).filter(|x| x % 2 == 0)
}

fn main() {
    let _ = evens(3).count();
}
