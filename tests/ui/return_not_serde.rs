use file_cache::file_cache;

struct Report {
    lines: Vec<String>,
}

#[file_cache]
fn report(n: u32) -> Report {
    Report {
        lines: vec![n.to_string()],
    }
}

fn main() {
    let _ = report(1).lines;
}
