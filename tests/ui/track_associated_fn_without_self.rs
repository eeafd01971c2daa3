struct Scorer;

impl Scorer {
    // Neither `self` nor `Self`: it cannot be told from a free function.
    #[file_cache::track]
    fn weight() -> u64 {
        2
    }
}

fn main() {
    Scorer::weight();
}
