//! Fresh-process benchmark (`benches/fresh.rs`): a process that does nothing, the cost of
//! starting one.

fn main() {}
