use file_cache::file_cache;

#[file_cache]
fn fill(n: u32, out: &mut Vec<u32>) -> usize {
    out.extend(0..n);
    out.len()
}

fn main() {
    fill(3, &mut Vec::new());
}
