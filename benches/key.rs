//! Key hashing: the canonical serializer into blake3, against `blake3::hash` over the same
//! raw bytes (the data alone, with no types or lengths: what no canonical key can beat).

use criterion::{black_box, criterion_group, BenchmarkId, Criterion, Throughput};
use file_cache::__private::{KeyBuilder, Site, SiteInfo};
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

mod support;

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

#[derive(Serialize)]
struct Point {
    x: f64,
    y: f64,
    label: Option<String>,
}

#[derive(Serialize)]
enum Kind {
    Dense { weights: Vec<f32> },
    Sparse(Vec<(u32, f32)>),
}

#[derive(Serialize)]
struct Scene {
    name: String,
    points: Vec<Point>,
    kinds: Vec<Kind>,
    tags: Vec<String>,
    scale: (f64, f64, u8),
}

fn scene() -> (Scene, Vec<u8>) {
    let scene = Scene {
        name: "scene".to_owned(),
        points: (0..20_000)
            .map(|i| Point {
                x: f64::from(i),
                y: f64::from(i) * 0.5,
                label: (i % 3 == 0).then(|| format!("p{i}")),
            })
            .collect(),
        kinds: (0..200)
            .map(|i| {
                if i % 2 == 0 {
                    Kind::Dense {
                        weights: (0..64).map(|w| w as f32).collect(),
                    }
                } else {
                    Kind::Sparse((0..32).map(|w| (w, w as f32)).collect())
                }
            })
            .collect(),
        tags: (0..1000).map(|i| format!("tag-{i}")).collect(),
        scale: (1.0, 2.0, 3),
    };
    // Its raw data: the postcard bytes (no names, varint lengths) are the closest stand-in.
    let raw = postcard::to_stdvec(&scene).expect("encode");
    (scene, raw)
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

    let (scene, raw) = scene();
    bench_pair(c, "nested_struct", &scene, &raw, &[]);

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
