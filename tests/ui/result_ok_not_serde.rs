use file_cache::file_cache;

struct Report {
    lines: Vec<String>,
}

// The error type needs no serde impls; the `Ok` type does.
struct Failure;

#[file_cache]
fn report(n: u32) -> Result<Report, Failure> {
    if n == 0 {
        return Err(Failure);
    }
    Ok(Report {
        lines: vec![n.to_string()],
    })
}

fn main() {
    let _ = report(1).map(|report| report.lines);
}
