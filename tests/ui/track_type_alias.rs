#[file_cache::track]
type Score = u64;

fn main() {
    let _: Score = 1;
}
