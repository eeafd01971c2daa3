use file_cache::file_cache;

struct Logger;

#[file_cache(ignore = [loger])]
fn add(x: u64, y: u64, logger: &Logger) -> u64 {
    let _ = logger;
    x + y
}

fn main() {
    add(1, 2, &Logger);
}
