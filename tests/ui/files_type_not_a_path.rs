use file_cache::file_cache;

#[derive(serde::Serialize)]
struct Settings {
    path: String,
}

#[file_cache(files = [settings])]
fn summarize(settings: &Settings) -> usize {
    settings.path.len()
}

fn main() {
    summarize(&Settings { path: "a".into() });
}
