//! The cost of the layout fingerprint: tracing a nested type of 50 fields and 3 enums (paid
//! once per cached function per process), and hits of a function returning that type (which
//! compare 16 bytes after the first call). Compare the hit numbers with a build before the
//! fingerprint to see that it adds nothing measurable.
//!
//! `cargo bench -p file_cache --bench layout`

use criterion::{criterion_group, criterion_main, Criterion};
use file_cache::file_cache;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::hint::black_box;

#[derive(Serialize, Deserialize, Clone, Default)]
struct Header {
    id: u64,
    name: String,
    version: u32,
    created: i64,
    updated: i64,
    owner: String,
    tags: Vec<String>,
    public: bool,
    score: f64,
    checksum: [u8; 4],
}

#[derive(Serialize, Deserialize, Clone, Default)]
enum Kind {
    #[default]
    Word,
    Number(f64),
    Range {
        from: u32,
        to: u32,
    },
    Pair(u16, u16),
}

#[derive(Serialize, Deserialize, Clone, Default)]
struct Item {
    offset: u32,
    length: u32,
    text: String,
    kind: Kind,
    weight: f32,
    flags: u8,
    parent: Option<u32>,
    children: Vec<u32>,
    note: Option<String>,
    rank: i16,
}

#[derive(Serialize, Deserialize, Clone, Default)]
struct Stats {
    count: u64,
    mean: f64,
    min: f64,
    max: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    histogram: Vec<u32>,
    by_kind: BTreeMap<String, u64>,
    elapsed_us: u128,
}

#[derive(Serialize, Deserialize, Clone, Default)]
enum Level {
    #[default]
    Low,
    Medium(u8),
    High {
        reason: String,
    },
}

#[derive(Serialize, Deserialize, Clone, Default)]
enum Status {
    #[default]
    Pending,
    Running {
        progress: f32,
        level: Level,
    },
    Done(Stats),
    Failed {
        code: i32,
        message: String,
    },
    Skipped,
}

#[derive(Serialize, Deserialize, Clone, Default)]
struct Extra {
    source: String,
    language: String,
    encoding: String,
    line_count: u32,
    word_count: u32,
    char_count: u64,
    level: Level,
    hints: Vec<(String, f32)>,
    retries: u8,
}

/// 50 fields in all (10 + 10 + 10 + 9 + these 11), and three enums (`Kind`, `Level`,
/// `Status`), nested in structs, vectors and options.
#[derive(Serialize, Deserialize, Clone, Default)]
struct Report {
    header: Header,
    items: Vec<Item>,
    stats: Stats,
    status: Status,
    extra: Option<Extra>,
    a: u8,
    b: u16,
    c: u32,
    d: i8,
    e: char,
    f: Option<Vec<Option<Kind>>>,
}

#[file_cache]
fn report(seed: u64) -> Report {
    let mut report = Report::default();
    report.header.id = seed;
    report.items = vec![Item::default(); 4];
    report
}

#[file_cache]
fn number(seed: u64) -> u64 {
    seed * 2
}

fn benches(c: &mut Criterion) {
    let root = tempfile::tempdir().expect("temp dir");
    std::env::set_var("FILE_CACHE_DIR", root.path());

    c.bench_function("layout: trace a type of 50 fields and 3 enums", |b| {
        b.iter(file_cache::__private::trace_layout::<Report>)
    });

    report(1);
    number(1);
    c.bench_function("hit: a 50-field nested struct", |b| {
        b.iter(|| report(black_box(1)))
    });
    c.bench_function("hit: u64", |b| b.iter(|| number(black_box(1))));
}

criterion_group!(layout, benches);
criterion_main!(layout);
