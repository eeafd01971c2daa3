use file_cache::file_cache;

#[file_cache]
fn push((list, value): (&mut Vec<u32>, u32)) -> usize {
    list.push(value);
    list.len()
}

fn main() {
    push((&mut Vec::new(), 1));
}
