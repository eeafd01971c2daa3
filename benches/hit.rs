//! Hits, misses and large values: file_cache against the floor (what reading one file
//! costs) and against the crates users would otherwise pick, in one run.
//!
//! Every peer runs as shipped, except that smart-cache's `println!` of every key goes to
//! `/dev/null` (file descriptor 1 redirected around the measured loop): its figures still
//! include formatting the key and one `write(2)` per call.

mod support;

use criterion::measurement::WallTime;
use criterion::{black_box, criterion_group, BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use std::hint;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::contenders::*;

const BIG_F64: u64 = 1_000_000;
const BIG_BYTES: u64 = 16 << 20;
const ARG_F64: usize = 100_000;

/// A file whose last `payload.len()` bytes are `payload`, `total` bytes long: the floor
/// reads it whole and decodes the payload, as a hit of the same entry must at least.
fn floor_file(dir: &Path, name: &str, total: usize, payload: &[u8]) -> PathBuf {
    let mut bytes = vec![0u8; total - payload.len()];
    bytes.extend_from_slice(payload);
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("floor file");
    path
}

fn floor_read<T: serde::de::DeserializeOwned>(path: &Path, payload_len: usize) -> T {
    let bytes = std::fs::read(path).expect("floor read");
    postcard::from_bytes(&bytes[bytes.len() - payload_len..]).expect("floor decode")
}

fn assert_no_body_runs<R>(f: impl FnOnce() -> R) -> R {
    let before = BODY_RUNS.load(Ordering::Relaxed);
    let out = f();
    assert_eq!(
        BODY_RUNS.load(Ordering::Relaxed),
        before,
        "a hit ran the body"
    );
    out
}

/// Returns the size of the small entry's file.
fn small_hit(c: &mut Criterion, data: &Path) -> usize {
    let s = "key";
    // Fill every cache once.
    fc_small(7, s);
    fc_small_disk(7, s);
    c_small(7, s).expect("cached fills");
    support::with_stdout_to_null(|| sc_small(7, s));
    let entry = support::entry_file("fc_small_disk");
    let total = std::fs::metadata(&entry).expect("entry").len() as usize;
    let payload = postcard::to_stdvec(&small_value(7, s)).expect("encode");
    let floor = floor_file(data, "floor-small", total, &payload);

    let mut group = c.benchmark_group("small_hit");
    group.bench_function("file_cache", |b| {
        assert_no_body_runs(|| b.iter(|| fc_small(black_box(7), black_box(s))))
    });
    group.bench_function("file_cache_no_memory", |b| {
        assert_no_body_runs(|| b.iter(|| fc_small_disk(black_box(7), black_box(s))))
    });
    group.bench_function("floor", |b| {
        b.iter(|| floor_read::<Small>(&floor, payload.len()))
    });
    group.bench_function("cached", |b| {
        assert_no_body_runs(|| b.iter(|| c_small(black_box(7), black_box(s))))
    });
    group.bench_function("smart_cache", |b| {
        assert_no_body_runs(|| {
            b.iter_custom(|iters| {
                support::with_stdout_to_null(|| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(sc_small(black_box(7), black_box(s)));
                    }
                    start.elapsed()
                })
            })
        })
    });
    group.finish();
    total
}

fn miss_store(c: &mut Criterion, total: usize) {
    let mut group = c.benchmark_group("miss_store");
    group.sample_size(30);
    let s = "key";
    // Fresh keys on every call: each starts far from the others.
    let mut next = 1_000_000u64;
    let mut fresh = move || {
        next += 1;
        next
    };
    group.bench_function("file_cache", |b| b.iter(|| fc_small(fresh(), s)));
    group.bench_function("file_cache_no_memory", |b| {
        b.iter(|| fc_small_disk(fresh(), s))
    });
    // New files, in this run's own directory beside the cache's (`support::isolate`): a
    // floor that rewrote an earlier run's files would free one on every store, which makes
    // ext4 without a journal look over it before every file it creates for a minute after.
    let floor_dir = support::bench_data().join("hit").join("floor-miss");
    group.bench_function("floor", |b| {
        b.iter(|| {
            // What a store cannot avoid: encode, write a new temporary file, rename it
            // into its place (under one of 256 shard directories, made on first use).
            let n = fresh();
            let payload = postcard::to_stdvec(&small_value(n, s)).expect("encode");
            let mut bytes = vec![0u8; total - payload.len()];
            bytes.extend_from_slice(&payload);
            let dir = floor_dir.join(format!("{:02x}", n % 256));
            let _ = std::fs::create_dir_all(&dir);
            let temp = dir.join(format!(".{n}.tmp"));
            std::fs::write(&temp, &bytes).expect("write");
            std::fs::rename(&temp, dir.join(n.to_string())).expect("rename");
        })
    });
    group.bench_function("cached", |b| b.iter(|| c_small(fresh(), s)));
    group.bench_function("smart_cache", |b| {
        b.iter_custom(|iters| {
            support::with_stdout_to_null(|| {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(sc_small(fresh(), s));
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

/// Hits timed one by one, each after the entry's file was touched in place (which moves its
/// change time): every one of them hashes the payload to verify it, as the first hits of
/// an entry in a process do, and as every hit did before file identities were remembered.
fn verifying_each_hit(b: &mut criterion::Bencher<'_>, entry: &Path, hit: impl Fn()) {
    b.iter_custom(|iters| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let file = std::fs::File::options()
                .write(true)
                .open(entry)
                .expect("entry");
            let mtime = file.metadata().and_then(|m| m.modified()).expect("mtime");
            file.set_modified(mtime).expect("touch");
            drop(file);
            let start = Instant::now();
            hit();
            total += start.elapsed();
        }
        total
    })
}

/// Waits until entries just written are settled: a process remembers the identity of a
/// large entry file it verified only once the file's last change is this old
/// (`file_cache`'s `verified` module), as an entry written by an earlier run always is.
fn settle() {
    std::thread::sleep(Duration::from_millis(2100));
}

/// One large value's contenders: the cached functions that return it, and the floor's.
struct Large<T, S> {
    case: &'static str,
    n: u64,
    /// Bytes of the value, for GB/s.
    bytes: u64,
    value: fn(u64) -> T,
    file_cache: fn(u64) -> T,
    file_cache_no_memory: fn(u64) -> T,
    /// The name of `file_cache_no_memory`, whose entry the floor's file copies in size.
    no_memory_name: &'static str,
    cached: fn(u64) -> Result<T, PeerError>,
    smart_cache: fn(u64) -> S,
}

fn large_case<T, S>(group: &mut BenchmarkGroup<'_, WallTime>, data: &Path, large: Large<T, S>)
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let n = large.n;
    (large.file_cache)(n);
    (large.file_cache_no_memory)(n);
    (large.cached)(n).expect("cached fills");
    support::with_stdout_to_null(|| (large.smart_cache)(n));
    let entry = support::entry_file(large.no_memory_name);
    let total = std::fs::metadata(&entry).expect("entry").len() as usize;
    settle();
    let payload = postcard::to_stdvec(&(large.value)(n)).expect("encode");
    let floor = floor_file(data, &format!("floor-{}", large.case), total, &payload);
    group.throughput(Throughput::Bytes(large.bytes));
    let id = |who: &str| BenchmarkId::new(who, large.case);
    group.bench_function(id("file_cache"), |b| {
        assert_no_body_runs(|| b.iter(|| (large.file_cache)(black_box(n))))
    });
    group.bench_function(id("file_cache_no_memory"), |b| {
        assert_no_body_runs(|| b.iter(|| (large.file_cache_no_memory)(black_box(n))))
    });
    group.bench_function(id("file_cache_verify_each"), |b| {
        assert_no_body_runs(|| {
            verifying_each_hit(b, &entry, || {
                black_box((large.file_cache_no_memory)(black_box(n)));
            })
        })
    });
    group.bench_function(id("floor"), |b| {
        b.iter(|| floor_read::<T>(&floor, payload.len()))
    });
    group.bench_function(id("cached"), |b| {
        assert_no_body_runs(|| b.iter(|| (large.cached)(black_box(n))))
    });
    group.bench_function(id("smart_cache"), |b| {
        assert_no_body_runs(|| {
            b.iter_custom(|iters| {
                support::with_stdout_to_null(|| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box((large.smart_cache)(black_box(n)));
                    }
                    start.elapsed()
                })
            })
        })
    });
}

fn large_hit(c: &mut Criterion, data: &Path) {
    let mut group = c.benchmark_group("large_hit");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(4));
    // 1M f64: 8 MB.
    large_case(
        &mut group,
        data,
        Large {
            case: "f64_1M",
            n: BIG_F64,
            bytes: BIG_F64 * 8,
            value: floats,
            file_cache: fc_floats,
            file_cache_no_memory: fc_floats_disk,
            no_memory_name: "fc_floats_disk",
            cached: c_floats,
            smart_cache: sc_floats,
        },
    );
    // 16 MiB of bytes, through serde_bytes.
    large_case(
        &mut group,
        data,
        Large {
            case: "bytes_16MiB",
            n: BIG_BYTES,
            bytes: BIG_BYTES,
            value: |n| serde_bytes::ByteBuf::from(bytes(n)),
            file_cache: fc_bytes,
            file_cache_no_memory: fc_bytes_disk,
            no_memory_name: "fc_bytes_disk",
            cached: c_bytes,
            smart_cache: sc_bytes,
        },
    );
    group.finish();
}

fn big_arg(c: &mut Criterion, data: &Path) {
    let mut group = c.benchmark_group("big_arg_hit");
    group.sample_size(20);
    let xs: Vec<f64> = (0..ARG_F64).map(|i| i as f64 * 0.1).collect();
    fc_bigarg(&xs);
    c_bigarg(&xs).expect("cached fills");
    support::with_stdout_to_null(|| sc_bigarg(&xs));
    let payload = postcard::to_stdvec(&summary(&xs)).expect("encode");
    let floor = floor_file(data, "floor-bigarg", 256, &payload);
    group.throughput(Throughput::Bytes(ARG_F64 as u64 * 8));
    let id = |who: &str| BenchmarkId::new(who, "f64_100k");
    group.bench_function(id("file_cache"), |b| {
        assert_no_body_runs(|| b.iter(|| fc_bigarg(black_box(&xs))))
    });
    group.bench_function(id("floor"), |b| {
        // Key: postcard of the argument, blake3 of that; then a small file's read.
        b.iter(|| {
            let key = blake3::hash(&postcard::to_stdvec(black_box(&xs)).expect("encode"));
            black_box(key);
            floor_read::<(usize, f64, f64)>(&floor, payload.len())
        })
    });
    group.bench_function(id("cached"), |b| {
        assert_no_body_runs(|| b.iter(|| c_bigarg(black_box(&xs))))
    });
    group.bench_function(id("smart_cache"), |b| {
        assert_no_body_runs(|| {
            b.iter_custom(|iters| {
                support::with_stdout_to_null(|| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(sc_bigarg(black_box(&xs)));
                    }
                    start.elapsed()
                })
            })
        })
    });
    group.finish();
}

/// Hit throughput with 1 and 2 threads, each on its own key.
/// Keys each thread of the threads bench cycles through: its own, so the threads never
/// share a key, and many, so they meet in one of the memory tier's 16 shards about as often
/// as any two threads of a program would (two fixed keys share a shard, or do not, by luck).
const THREAD_KEYS: u64 = 32;

fn threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("threads");
    for key in 0..2 * THREAD_KEYS {
        fc_small(100 + key, "t");
        fc_small_disk(100 + key, "t");
    }
    for threads in [1u64, 2] {
        group.throughput(Throughput::Elements(threads));
        for (name, hit) in [
            ("file_cache", fc_small as fn(u64, &str) -> Small),
            ("file_cache_no_memory", fc_small_disk),
        ] {
            group.bench_function(BenchmarkId::new(name, threads), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    std::thread::scope(|scope| {
                        for thread in 0..threads {
                            scope.spawn(move || {
                                let first = 100 + thread * THREAD_KEYS;
                                for i in 0..iters {
                                    let key = first + i % THREAD_KEYS;
                                    hint::black_box(hit(key, "t"));
                                }
                            });
                        }
                    });
                    start.elapsed()
                })
            });
        }
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    let data = support::bench_data().join("hit-floor");
    std::fs::create_dir_all(&data).expect("floor dir");
    let small_entry_len = small_hit(c, &data);
    miss_store(c, small_entry_len);
    large_hit(c, &data);
    big_arg(c, &data);
    threads(c);
}

criterion_group! {
    name = group;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}

fn main() {
    support::isolate("hit");
    group();
    Criterion::default().configure_from_args().final_summary();
    support::remove_old("hit");
}
