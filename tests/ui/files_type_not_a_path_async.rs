use file_cache::file_cache;

#[derive(serde::Serialize)]
struct Settings {
    path: String,
}

// An `async fn` takes its files' digests before the key: the error is on the parameter too.
#[file_cache(files = [settings])]
async fn summarize(settings: &Settings) -> usize {
    settings.path.len()
}

fn main() {
    let _ = summarize(&Settings { path: "a".into() });
}
