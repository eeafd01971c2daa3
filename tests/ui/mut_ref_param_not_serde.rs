use file_cache::file_cache;

struct Progress {
    done: u32,
}

#[file_cache]
fn fill(n: u32, progress: &mut Progress) -> Vec<u32> {
    progress.done += n;
    (0..n).collect()
}

fn main() {
    fill(3, &mut Progress { done: 0 });
}
