use file_cache::file_cache;
use std::pin::Pin;

#[derive(serde::Serialize, serde::Deserialize)]
struct Counter {
    calls: u64,
}

impl Counter {
    #[file_cache]
    fn bump(self: Pin<&mut Self>, by: u64) -> u64 {
        self.get_mut().calls += by;
        by
    }
}

fn main() {
    let mut counter = Counter { calls: 0 };
    Pin::new(&mut counter).bump(1);
}
