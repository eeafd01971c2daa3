//! Version 1 of a program; `v2.rs` is the same program after everyday edits. Built and run
//! one after the other against one cache by `tests/invalidation.rs`.
//!
//! Every cached function has the same tokens in both versions (its code hash does not
//! change): the values are built by helpers outside it, so only the edit under test can
//! make an entry stale. Each line printed is `name ran=<body runs> value=<Debug>`.

use file_cache::file_cache;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

static RUNS: AtomicUsize = AtomicUsize::new(0);

mod types {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug)]
    pub struct Reordered {
        pub score: f32,
        pub id: u32,
    }

    #[derive(Serialize, Deserialize, Debug)]
    pub struct Retyped {
        pub score: f32,
        pub id: u32,
    }

    #[derive(Serialize, Deserialize, Debug)]
    pub struct Renamed {
        pub score: f32,
        pub id: u32,
    }

    #[derive(Serialize, Deserialize, Debug)]
    pub enum Kind {
        Word,
        Number(u64),
        Pair { left: u8, right: u8 },
    }

    #[derive(Serialize, Deserialize, Debug)]
    pub struct Inner {
        pub a: u16,
        pub b: u16,
    }

    #[derive(Serialize, Deserialize, Debug)]
    pub struct Outer {
        pub name: String,
        pub inner: Inner,
    }

    #[derive(Serialize, Deserialize, Debug)]
    pub struct Stable {
        pub label: String,
        pub values: Vec<(u8, Option<i32>)>,
    }

    #[derive(Serialize, Deserialize, Debug)]
    pub struct Query {
        pub a: u32,
        pub b: u32,
    }
}

/// Builds the values; not tracked, so editing these never invalidates anything.
mod make {
    use crate::types::*;

    pub fn reordered() -> Reordered {
        Reordered { score: 0.5, id: 7 }
    }

    pub fn retyped() -> Retyped {
        Retyped { score: 0.5, id: 7 }
    }

    pub fn renamed() -> Renamed {
        Renamed { score: 0.5, id: 7 }
    }

    pub fn kind() -> Kind {
        Kind::Number(7)
    }

    pub fn outer() -> Outer {
        Outer {
            name: "x".to_owned(),
            inner: Inner { a: 1, b: 300 },
        }
    }

    pub fn stable() -> Stable {
        Stable {
            label: "same".to_owned(),
            values: vec![(1, Some(-1)), (2, None)],
        }
    }

    pub fn query() -> Query {
        Query { a: 1, b: 2 }
    }

    pub fn helper(x: u64) -> u64 {
        x + 1
    }
}

#[file_cache]
fn reordered() -> types::Reordered {
    RUNS.fetch_add(1, SeqCst);
    make::reordered()
}

#[file_cache]
fn retyped() -> types::Retyped {
    RUNS.fetch_add(1, SeqCst);
    make::retyped()
}

#[file_cache]
fn renamed() -> types::Renamed {
    RUNS.fetch_add(1, SeqCst);
    make::renamed()
}

#[file_cache]
fn kind() -> types::Kind {
    RUNS.fetch_add(1, SeqCst);
    make::kind()
}

#[file_cache]
fn outer() -> types::Outer {
    RUNS.fetch_add(1, SeqCst);
    make::outer()
}

#[file_cache]
fn stable() -> types::Stable {
    RUNS.fetch_add(1, SeqCst);
    make::stable()
}

#[file_cache]
fn by_query(query: types::Query) -> u32 {
    RUNS.fetch_add(1, SeqCst);
    query.a * 10 + query.b
}

#[file_cache]
fn untracked(x: u64) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    make::helper(x)
}

mod text {
    #[file_cache::track]
    pub fn tokenize(text: &str) -> Vec<&str> {
        text.split(' ').collect()
    }
}

use text::tokenize;

/// Tracked, unchanged, with a tracked dependency that changes: invalidates transitively.
#[file_cache::track(deps = [tokenize])]
fn rank(text: &str) -> u64 {
    tokenize(text).len() as u64
}

#[file_cache(deps = [rank])]
fn summarize(text: String) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    rank(&text) * 10
}

pub struct Scorer {
    weight: u64,
}

impl Scorer {
    #[file_cache::track]
    pub fn score(&self, x: u64) -> u64 {
        x * self.weight
    }

    #[file_cache(deps = [Self::score])]
    fn best(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        Scorer { weight: 3 }.score(x)
    }
}

#[file_cache(deps = [Scorer::score])]
fn scored(x: u64) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    Scorer { weight: 2 }.score(x)
}

#[file_cache::track]
#[derive(serde::Serialize, serde::Deserialize, Debug)]
pub struct Settings {
    /// A level.
    pub level: u8,
}

#[file_cache(deps = [Settings])]
fn configured() -> u8 {
    RUNS.fetch_add(1, SeqCst);
    Settings { level: 4 }.level
}

#[file_cache(deps = [helpers::normalize])]
fn normalized(text: String) -> String {
    RUNS.fetch_add(1, SeqCst);
    helpers::normalize(&text)
}

#[file_cache(version = "1")]
fn versioned() -> u64 {
    RUNS.fetch_add(1, SeqCst);
    5
}

// Tracked constants and statics: editing a value invalidates the functions that name it.

#[file_cache::track]
const SCALE: u64 = 2;

#[file_cache(deps = [SCALE])]
fn scaled(x: u64) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    x * SCALE
}

#[file_cache::track]
static GREETING: &str = "hello";

#[file_cache(deps = [GREETING, helpers::SEPARATOR])]
fn greeted(name: String) -> String {
    RUNS.fetch_add(1, SeqCst);
    format!("{GREETING}{}{name}", helpers::SEPARATOR)
}

mod limits {
    /// Tracked, in a module, and unchanged.
    #[file_cache::track]
    pub const STEADY: u32 = 9;
}

#[file_cache(deps = [limits::STEADY, helpers::SEPARATOR])]
fn steady() -> u32 {
    RUNS.fetch_add(1, SeqCst);
    limits::STEADY + helpers::SEPARATOR.len() as u32
}

struct Weights;

impl Weights {
    const BASE: u64 = 1;

    #[file_cache::track]
    const BONUS: u64 = Self::BASE * 10;
}

#[file_cache(deps = [Weights::BONUS])]
fn bonus() -> u64 {
    RUNS.fetch_add(1, SeqCst);
    Weights::BONUS
}

#[file_cache(ignore = [f])]
fn apply<F: Fn(u64) -> u64>(f: F, x: u64) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    f(x)
}

fn report<T: std::fmt::Debug>(name: &str, call: impl FnOnce() -> T) {
    let before = RUNS.load(SeqCst);
    let value = call();
    let ran = RUNS.load(SeqCst) - before;
    println!("{name} ran={ran} value={value:?}");
}

fn main() {
    report("reordered", reordered);
    report("retyped", retyped);
    report("renamed", renamed);
    report("kind", kind);
    report("outer", outer);
    report("stable", stable);
    report("by_query", || by_query(make::query()));
    report("untracked", || untracked(1));
    report("summarize", || summarize("a b  c".to_owned()));
    report("scored", || scored(5));
    report("best", || Scorer::best(5));
    report("configured", configured);
    report("normalized", || normalized("MiXed".to_owned()));
    report("versioned", versioned);
    report("scaled", || scaled(5));
    report("greeted", || greeted("you".to_owned()));
    report("steady", steady);
    report("bonus", bonus);
    report("closure", || apply(|x| x + 1, 5));
}
