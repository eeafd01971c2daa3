use file_cache::file_cache;

#[file_cache]
fn apply(x: u32, f: impl Fn(u32) -> u32) -> u32 {
    f(x)
}

fn main() {
    apply(2, |x| x + 1);
}
