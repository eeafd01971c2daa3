use file_cache::file_cache;

struct Point {
    x: i32,
    y: i32,
}

#[file_cache]
fn norm(Point { x, y }: Point) -> i32 {
    x.abs() + y.abs()
}

fn main() {
    norm(Point { x: 1, y: 2 });
}
