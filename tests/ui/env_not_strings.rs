use file_cache::file_cache;

const MODEL: &str = "MODEL";

#[file_cache(env = [MODEL, "HOME", 3])]
fn expensive(x: u64) -> u64 {
    x
}

fn main() {
    expensive(1);
}
