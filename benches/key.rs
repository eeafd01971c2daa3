//! Key hashing: the canonical serializer into blake3, against `blake3::hash` over the same
//! raw bytes (the data alone, with no types or lengths: what no canonical key can beat).
//! For structured data (`scene`, `records_100k`, `plain_1m`) also against the key a
//! hand-written cache would use (`floor`: `postcard::to_stdvec`, then `blake3::hash` of
//! those bytes; not canonical: no names, no types, a map in its iteration order) and the
//! one `cached` users write (`cached_debug`: `format!("{:?}")`, hashed with std's
//! `DefaultHasher`, as a `HashMap` of such keys does).

use criterion::{black_box, criterion_group, BenchmarkId, Criterion, Throughput};
use file_cache::__private::{KeyBuilder, Site, SiteInfo};
use serde::Serialize;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

mod key_values;
mod support;

use key_values::{plain, records, scene};

static SITE: Site = Site::new(SiteInfo {
    module_path: "bench::key",
    name: "f",
    ..SiteInfo::DEFAULT
});

fn key_of<T: ?Sized + Serialize>(value: &T) -> file_cache::__private::CallKey {
    let mut builder = KeyBuilder::begin(&SITE).expect("cache on");
    builder.arg("value", value);
    builder.finish().expect("hashes")
}

/// A structured value against the floor (postcard, then blake3), raw blake3 of the
/// postcard bytes, and `cached`'s usual key.
fn bench_structured<T: Serialize + std::fmt::Debug>(c: &mut Criterion, case: &str, value: &T) {
    let raw = postcard::to_stdvec(value).expect("encode");
    let mut group = c.benchmark_group("key");
    group.throughput(Throughput::Bytes(raw.len() as u64));
    group.bench_function(BenchmarkId::new("file_cache", case), |b| {
        b.iter(|| key_of(black_box(value)))
    });
    group.bench_function(BenchmarkId::new("floor", case), |b| {
        b.iter(|| blake3::hash(&postcard::to_stdvec(black_box(value)).expect("encode")))
    });
    group.bench_function(BenchmarkId::new("blake3_raw", case), |b| {
        b.iter(|| blake3::hash(black_box(&raw)))
    });
    group.bench_function(BenchmarkId::new("cached_debug", case), |b| {
        b.iter(|| {
            let mut hasher = DefaultHasher::new();
            format!("{:?}", black_box(value)).hash(&mut hasher);
            hasher.finish()
        })
    });
    group.finish();
    if !wanted(case) {
        return;
    }
    // The key and the floor again, interleaved (see `support::interleaved`): on the shared
    // VM their criterion windows drifted apart by up to 1.5x between runs.
    let rounds = (200_000_000 / raw.len()).clamp(30, 1000);
    let medians = support::interleaved(
        &[
            ("file_cache", &|| {
                black_box(key_of(black_box(value)));
            }),
            ("floor", &|| {
                black_box(blake3::hash(
                    &postcard::to_stdvec(black_box(value)).expect("encode"),
                ));
            }),
        ],
        rounds,
    );
    support::write_interleaved(&format!("key_{case}"), rounds, &medians);
}

fn bench_pair<T: ?Sized + Serialize>(
    c: &mut Criterion,
    case: &str,
    value: &T,
    raw: &[u8],
    extra: &[(&str, &dyn Fn())],
) {
    let mut group = c.benchmark_group("key");
    group.throughput(Throughput::Bytes(raw.len() as u64));
    group.bench_function(BenchmarkId::new("file_cache", case), |b| {
        b.iter(|| key_of(black_box(value)))
    });
    group.bench_function(BenchmarkId::new("blake3_raw", case), |b| {
        b.iter(|| blake3::hash(black_box(raw)))
    });
    for (name, f) in extra {
        group.bench_function(BenchmarkId::new(*name, case), |b| b.iter(f));
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    let bytes: Vec<u8> = (0..16u32 << 20).map(|i| (i * 31 % 251) as u8).collect();
    bench_pair(c, "vec_u8_16MiB", &bytes, &bytes, &[]);
    bench_pair(
        c,
        "serde_bytes_16MiB",
        &serde_bytes::Bytes::new(&bytes),
        &bytes,
        &[],
    );
    drop(bytes);

    let floats: Vec<f64> = (0..1_000_000).map(|i| f64::from(i) * 0.1).collect();
    let raw: Vec<u8> = floats.iter().flat_map(|f| f.to_le_bytes()).collect();
    bench_pair(c, "vec_f64_1M", &floats, &raw, &[]);

    let strings: Vec<String> = (0..100_000).map(|i| format!("string number {i}")).collect();
    let raw: Vec<u8> = strings.iter().flat_map(|s| s.bytes()).collect();
    bench_pair(c, "vec_string_100k", &strings, &raw, &[]);

    let scene = scene();
    bench_structured(c, "scene", &scene);
    drop(scene);
    let records = records();
    bench_structured(c, "records_100k", &records);
    drop(records);
    let plain = plain();
    bench_structured(c, "plain_1m", &plain);
    drop(plain);

    let pairs: Vec<(String, u64)> = (0..100_000u64)
        .map(|i| (format!("key-{i}"), i * 7))
        .collect();
    let map: HashMap<String, u64> = pairs.iter().cloned().collect();
    let raw: Vec<u8> = pairs
        .iter()
        .flat_map(|(k, v)| k.bytes().chain(v.to_le_bytes()))
        .collect();
    // The map's own entries, in its iteration order: the same strings read in the same
    // scattered order as the map's key reads them, so against this the map pays only for
    // its order independence (the vector of pairs also reads its strings in the order they
    // were allocated).
    let in_map_order: Vec<(&String, &u64)> = map.iter().collect();
    // The map against the same pairs as a vector: the cost of order independence.
    bench_pair(
        c,
        "hashmap_string_u64_100k",
        &map,
        &raw,
        &[
            ("file_cache_vec_of_pairs", &|| {
                black_box(key_of(black_box(&pairs)));
            }),
            ("file_cache_vec_in_map_order", &|| {
                black_box(key_of(black_box(&in_map_order)));
            }),
        ],
    );
    // The same three, interleaved (see `support::interleaved`): the map's key reads memory
    // all over the heap and moved most with the VM's drift between criterion's windows.
    if !wanted("hashmap") {
        return;
    }
    let medians = support::interleaved(
        &[
            ("file_cache", &|| {
                black_box(key_of(black_box(&map)));
            }),
            ("file_cache_vec_of_pairs", &|| {
                black_box(key_of(black_box(&pairs)));
            }),
            ("file_cache_vec_in_map_order", &|| {
                black_box(key_of(black_box(&in_map_order)));
            }),
        ],
        MAP_ROUNDS,
    );
    support::write_interleaved("key_hashmap", MAP_ROUNDS, &medians);
}

/// Whether the command line's filters (if any) name a case (its first word): the interleaved
/// measurements run outside criterion, which knows nothing of them.
fn wanted(case: &str) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let word = case.split('_').next().unwrap_or(case);
    filters.is_empty() || filters.iter().any(|f| f.contains(word))
}

/// Rounds of the map's interleaved measurement (about 20 ms a round).
const MAP_ROUNDS: usize = 150;

criterion_group! {
    name = group;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}

fn main() {
    std::env::remove_var("FILE_CACHE");
    group();
    Criterion::default().configure_from_args().final_summary();
}
