use file_cache::file_cache;

const SCALE: u64 = 2;

#[file_cache(deps = [SCALE])]
fn scaled(x: u64) -> u64 {
    x * SCALE
}

fn main() {
    scaled(1);
}
