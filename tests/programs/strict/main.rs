//! Every form of `#[file_cache]` the tests cover, in a crate that denies every rustc warning
//! and clippy's pedantic lints: the generated code adds none.
#![deny(warnings)]
#![deny(clippy::all, clippy::pedantic)]
// One-line bodies, as written on purpose: rustc lints the braces of a block on one line.
// (This file is copied into a package by the test, never formatted by `cargo fmt`.)

use file_cache::file_cache;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[file_cache]
fn sq(x: u64) -> u64 { x * x }

#[file_cache]
fn unit() {}

#[file_cache]
fn pair((a, b): (u64, u64)) -> u64 { a + b }

#[file_cache]
fn parse(text: &str) -> Result<u64, std::num::ParseIntError> {
    text.parse()
}

#[file_cache]
fn generic<T: Serialize + std::fmt::Debug>(value: &T) -> String {
    format!("{value:?}")
}

#[file_cache]
fn shout(s: impl AsRef<str> + Serialize) -> String {
    s.as_ref().to_uppercase()
}

#[file_cache]
fn sized<const N: usize>(values: [u8; N]) -> usize {
    values.len()
}

#[file_cache(ignore = [log])]
fn logged(x: u64, log: &mut Vec<String>) -> u64 {
    log.push(x.to_string());
    x
}

#[file_cache]
fn fill(n: u32, out: &mut Vec<u32>) {
    out.extend(0..n);
}

#[file_cache]
fn scale(by: u8, values: &mut [u8]) -> u8 {
    for value in values.iter_mut() {
        *value *= by;
    }
    by
}

#[file_cache]
fn words(set: &BTreeSet<String>) -> usize { set.len() }

#[file_cache]
async fn later(x: u64) -> u64 { x + 1 }

#[file_cache]
async fn later_fill(n: u32, out: &mut Vec<u32>) -> Result<usize, String> {
    out.extend(0..n);
    Ok(out.len())
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Counter {
    total: u64,
}

impl Counter {
    #[file_cache]
    fn get(&self) -> u64 { self.total }

    #[file_cache]
    fn bump(&mut self, by: u64) -> u64 {
        self.total += by;
        self.total
    }

    #[file_cache]
    fn new(total: u64) -> Counter {
        Counter { total }
    }

    #[file_cache]
    async fn bump_later(&mut self, by: u64) -> u64 {
        self.total += by;
        self.total
    }
}

/// Polls a future that never waits.
fn ready<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(value) = future.as_mut().poll(&mut context) {
            return value;
        }
    }
}

fn main() {
    let mut log = Vec::new();
    let mut out = Vec::new();
    let mut values = [1, 2];
    let mut counter = Counter::new(1);
    let set: BTreeSet<String> = ["a".to_owned()].into();
    let results = [
        sq(3),
        pair((1, 2)),
        parse("7").unwrap_or(0),
        logged(4, &mut log),
        u64::from(scale(2, &mut values)),
        ready(later(1)),
        counter.get(),
        counter.bump(1),
        ready(counter.bump_later(1)),
    ];
    unit();
    fill(2, &mut out);
    let filled = ready(later_fill(1, &mut out));
    println!(
        "{results:?} {} {} {} {} {filled:?} {out:?} {values:?}",
        generic(&1u8),
        shout("a"),
        sized([1u8, 2]),
        words(&set)
    );
}
