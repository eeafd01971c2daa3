use file_cache::file_cache;

#[file_cache]
fn fill(n: u32, out: Option<&mut Vec<u32>>) -> usize {
    if let Some(out) = out {
        out.extend(0..n);
    }
    n as usize
}

fn main() {
    fill(3, Some(&mut Vec::new()));
}
