use file_cache::file_cache;

#[file_cache]
async fn fetch(id: u64) -> String {
    id.to_string()
}

fn main() {
    let _ = fetch(1);
}
