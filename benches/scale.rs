//! Scale: hit latency (memory tier off) of one function holding 1,000 entries against one
//! holding 1,000,000, each hit on a pseudo-random entry; and, in the million, hits on 1,000
//! of its entries only (`file_cache_no_memory_1000_keys`): the same working set as the
//! thousand, so that only the cache's size differs.
//!
//! The entries are written directly with the runtime's store (`__private::write_entry`,
//! what a miss writes, without a million calls), in every run, over the previous run's:
//! so both sets are in the page cache when measured, and the comparison is of lookups,
//! not of the disk. (Kept from an earlier run instead, the million files were partly
//! evicted by then on this VM, which gives memory back to its host, and the measurement
//! was of the disk: 71 µs a hit.)
//!
//! After writing, every entry is hit once, as in a cache in use. The first read of a file
//! written since its last read updates its access time (ext4's default `relatime`), an
//! inode write through the journal; later reads do not, for a day. Without this pass, most
//! of the million's measured hits were such first reads and the thousand's were not: 7.0
//! µs a hit, against 3.5 µs in a run on the file system remounted `noatime`.
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
    let start = Instant::now();
    BODY_RAN.store(false, Ordering::Relaxed);
    for i in 0..n {
        hit(site, i);
    }
    assert!(!BODY_RAN.load(Ordering::Relaxed), "a written entry missed");
    eprintln!("scale: {n} entries read once in {:.1?}", start.elapsed());
}

/// The next pseudo-random number of a xorshift sequence.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn benches(c: &mut Criterion) {
    fill(&SMALL, SMALL_NAME, 1_000);
    fill(&LARGE, LARGE_NAME, 1_000_000);
    support::settle_disk();
    let mut group = c.benchmark_group("scale");
    // (contender, site, entries, keys hit: every `stride`-th entry)
    let cases = [
        ("file_cache_no_memory", &SMALL, 1_000u64, 1u64),
        ("file_cache_no_memory", &LARGE, 1_000_000, 1),
        ("file_cache_no_memory_1000_keys", &LARGE, 1_000_000, 1_000),
    ];
    for (contender, site, n, stride) in cases {
        BODY_RAN.store(false, Ordering::Relaxed);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        group.bench_function(BenchmarkId::new(contender, n), |b| {
            b.iter(|| {
                // A different entry on every hit, spread over the keys hit.
                let i = next(&mut state) % (n / stride) * stride;
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
