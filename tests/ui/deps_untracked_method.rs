use file_cache::file_cache;

struct Scorer;

impl Scorer {
    fn score(&self, x: u64) -> u64 {
        x + 1
    }
}

#[file_cache(deps = [Scorer::score])]
fn scored(x: u64) -> u64 {
    Scorer.score(x)
}

fn main() {
    scored(1);
}
