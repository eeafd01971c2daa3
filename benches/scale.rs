//! Scale: hit latency (memory tier off) of one function holding 1,000 entries against one
//! holding 1,000,000, each hit on a pseudo-random entry.
//!
//! The entries are written directly with the runtime's store (`__private::write_entry`,
//! what a miss writes, without a million calls), in every run, over the previous run's:
//! so both sets are in the page cache when measured, and the comparison is of lookups,
//! not of the disk. (Kept from an earlier run instead, the million files were partly
//! evicted by then on this VM, which gives memory back to its host, and the measurement
//! was of the disk: 71 µs a hit.)
//! Both functions are called as the macro's generated code calls them.

mod support;

use criterion::{black_box, criterion_group, BenchmarkId, Criterion};
use file_cache::__private::{call, write_entry, CallKey, KeyBuilder, Site, SiteInfo};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The two functions' names, which also name their directories.
const SMALL_NAME: &str = "thousand";
const LARGE_NAME: &str = "million";

static SMALL: Site = Site::new(SiteInfo {
    module_path: "bench::scale",
    name: SMALL_NAME,
    memory: false,
    ..SiteInfo::DEFAULT
});

static LARGE: Site = Site::new(SiteInfo {
    module_path: "bench::scale",
    name: LARGE_NAME,
    memory: false,
    ..SiteInfo::DEFAULT
});

fn key(site: &'static Site, i: u64) -> Option<CallKey> {
    let mut builder = KeyBuilder::begin(site).expect("cache on");
    builder.arg("i", &i);
    builder.finish()
}

static BODY_RAN: AtomicBool = AtomicBool::new(false);

fn hit(site: &'static Site, i: u64) -> u64 {
    call(site, key(site, i), || {
        BODY_RAN.store(true, Ordering::Relaxed);
        i * 3
    })
}

/// Writes `n` entries, each over the one a previous run wrote under the same key. A set
/// written with another key format (its last key misses) is removed first, so that the
/// function's directory holds this set alone.
fn fill(site: &'static Site, name: &str, n: u64) {
    BODY_RAN.store(false, Ordering::Relaxed);
    hit(site, n - 1);
    if BODY_RAN.load(Ordering::Relaxed) {
        let dir = file_cache::cache_dir().join(format!("bench.scale.{name}"));
        let _ = std::fs::remove_dir_all(dir);
    }
    let start = Instant::now();
    std::thread::scope(|scope| {
        for part in 0..2 {
            scope.spawn(move || {
                for i in (part..n).step_by(2) {
                    let key = key(site, i).expect("key");
                    write_entry(site, key, &(i * 3));
                }
            });
        }
    });
    eprintln!("scale: {n} entries written in {:.1?}", start.elapsed());
}

fn benches(c: &mut Criterion) {
    fill(&SMALL, SMALL_NAME, 1_000);
    fill(&LARGE, LARGE_NAME, 1_000_000);
    support::settle_disk();
    let mut group = c.benchmark_group("scale");
    for (site, n) in [(&SMALL, 1_000u64), (&LARGE, 1_000_000)] {
        BODY_RAN.store(false, Ordering::Relaxed);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        group.bench_function(BenchmarkId::new("file_cache_no_memory", n), |b| {
            b.iter(|| {
                // xorshift: a different entry on every hit, spread over the whole set.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let i = state % n;
                assert_eq!(hit(site, black_box(i)), i * 3);
            })
        });
        assert!(!BODY_RAN.load(Ordering::Relaxed), "a hit ran the body");
    }
    group.finish();
}

criterion_group! {
    name = group;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}

fn main() {
    let root = support::bench_data().join("scale");
    std::fs::create_dir_all(&root).expect("scale dir");
    std::env::set_var("FILE_CACHE_DIR", &root);
    std::env::remove_var("FILE_CACHE");
    group();
    Criterion::default().configure_from_args().final_summary();
}
