trait Score {
    fn score(&self) -> u64;
}

struct Bm25;

impl Score for Bm25 {
    #[file_cache::track]
    fn score(&self) -> u64 {
        1
    }
}

fn main() {
    Bm25.score();
}
