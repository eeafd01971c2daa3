use file_cache::file_cache;

#[derive(serde::Serialize)]
struct Counter {
    calls: u64,
}

impl Counter {
    #[file_cache]
    fn bump(&mut self, by: u64) -> u64 {
        self.calls += by;
        self.calls
    }
}

fn main() {
    let mut counter = Counter { calls: 0 };
    counter.bump(1);
}
