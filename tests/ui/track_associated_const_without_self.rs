struct Weights;

impl Weights {
    #[file_cache::track]
    const BONUS: u64 = 10;
}

fn main() {
    let _ = Weights::BONUS;
}
