use file_cache::file_cache;

trait Score {
    #[file_cache]
    fn score(&self) -> u32;
}

fn main() {}
