use file_cache::file_cache;

#[file_cache::track(deps = [parse])]
fn tokenize(text: &str) -> usize {
    text.len()
}

#[file_cache::track(deps = [tokenize])]
fn parse(text: &str) -> usize {
    tokenize(text)
}

#[file_cache(deps = [parse])]
fn count(text: String) -> usize {
    parse(&text)
}

fn main() {
    count(String::new());
}
