use file_cache::file_cache;

struct Reply {
    text: String,
}

#[file_cache]
async fn ask(prompt: String) -> Reply {
    Reply { text: prompt }
}

fn main() {
    let _ = ask("hi".into());
}
