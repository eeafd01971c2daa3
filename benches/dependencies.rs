//! What `depends_on` costs: a call outside any cached body (it must do nothing), and a hit
//! of a function whose entry recorded one dependency, against the same hit with none (the
//! difference is the re-check: one `stat` and a lookup of the remembered digest, against
//! the floor of one `stat`), from the memory tier and from the entry file.

use criterion::{black_box, criterion_group, Criterion};
use file_cache::{depends_on, file_cache};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn plain(x: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::Relaxed);
    x * 2
}

#[file_cache]
fn declared(x: u64, config: &Path) -> u64 {
    depends_on(config);
    RUNS.fetch_add(1, Ordering::Relaxed);
    x * 2
}

#[file_cache(memory = false)]
fn plain_disk(x: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::Relaxed);
    x * 2
}

#[file_cache(memory = false)]
fn declared_disk(x: u64, config: &Path) -> u64 {
    depends_on(config);
    RUNS.fetch_add(1, Ordering::Relaxed);
    x * 2
}

fn dependencies(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("FILE_CACHE_DIR", dir.path().join("cache"));
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "temperature = 0.2").unwrap();
    // Digests are remembered once the file is 2 s old (see the inputs guide).
    std::thread::sleep(Duration::from_millis(2100));
    plain(1);
    declared(1, &config);
    plain_disk(1);
    declared_disk(1, &config);
    let runs = RUNS.load(Ordering::Relaxed);

    let mut group = c.benchmark_group("depends_on");
    group.bench_function("outside a cached body", |b| {
        b.iter(|| depends_on(black_box(&config)))
    });
    group.bench_function("one stat of the file (floor of a re-check)", |b| {
        b.iter(|| std::fs::metadata(black_box(&config)).map(|meta| meta.len()))
    });
    group.bench_function("memory hit, no dependency", |b| {
        b.iter(|| plain(black_box(1)))
    });
    group.bench_function("memory hit, one dependency", |b| {
        b.iter(|| declared(black_box(1), black_box(&config)))
    });
    group.bench_function("file hit, no dependency", |b| {
        b.iter(|| plain_disk(black_box(1)))
    });
    group.bench_function("file hit, one dependency", |b| {
        b.iter(|| declared_disk(black_box(1), black_box(&config)))
    });
    group.finish();
    assert_eq!(
        RUNS.load(Ordering::Relaxed),
        runs,
        "every measured call hit"
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = dependencies
}

fn main() {
    std::env::remove_var("FILE_CACHE");
    benches();
    Criterion::default().configure_from_args().final_summary();
}
