use file_cache::file_cache;

struct Job {
    id: u64,
}

impl Job {
    #[file_cache]
    fn run(self: Box<Self>) -> u64 {
        self.id
    }
}

fn main() {
    Box::new(Job { id: 1 }).run();
}
