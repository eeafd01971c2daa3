use file_cache::file_cache;

#[file_cache]
fn describe<T: std::fmt::Debug>(value: T) -> String {
    format!("{value:?}")
}

fn main() {
    describe(1u8);
}
