use file_cache::file_cache;

#[derive(Default)]
struct Settings {
    level: u8,
}

#[file_cache(deps = [Settings])]
fn level() -> u8 {
    Settings::default().level
}

fn main() {
    level();
}
