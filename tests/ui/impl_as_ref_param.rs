use file_cache::file_cache;

#[file_cache]
fn shout(s: impl AsRef<str>) -> String {
    s.as_ref().to_uppercase()
}

fn main() {
    shout("hi");
}
