//! Measures a remote hit against a local hit and against the backend's own floor (a plain
//! GET of the same bytes with the same client library), on a real server it starts on a
//! loopback port (`redis-server`, or `moto_server` for S3).
//!
//! The memory tier is off (`FILE_CACHE_MEMORY=0`): it would answer both rows from this
//! process's memory. So the local row reads entry files, and the remote row, run after the
//! function's directory is removed, asks the remote for every call. Each row checks, from
//! `file_cache::stats()`, that every call was answered by the tier it names.
//!
//! ```sh
//! cargo run --release -p file_cache_benches --features remote --example remote_latency -- redis   # or: s3
//! ```

#[path = "../../tests/remote_servers/mod.rs"]
mod remote_servers;

use file_cache::file_cache;
use file_cache::remote::{self, Remote, Writes};
use object_store::ObjectStoreExt;
use remote_servers::{s3_env, Kind, Server, BUCKET, PREFIX};
use std::time::{Duration, Instant};

#[file_cache]
fn value(i: u64, size: usize) -> Vec<u8> {
    (0..size).map(|b| (b as u64 ^ i) as u8).collect()
}

const CALLS: u64 = 300;

fn micros(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.9))
}

fn main() {
    let kind = Kind::parse(&std::env::args().nth(1).unwrap_or_else(|| "redis".into()));
    let root = tempfile::tempdir().expect("temp dir");
    std::env::set_var("FILE_CACHE_DIR", root.path());
    // Before the first cached call: settings are read once.
    std::env::set_var("FILE_CACHE_MEMORY", "0");
    let server = Server::start(kind);
    if kind == Kind::S3 {
        for (k, v) in s3_env(server.port) {
            std::env::set_var(k, v);
        }
    }
    remote::set(Some(Remote::new(server.url()).writes(Writes::Sync))).expect("first use");
    let function_dir = root.path().join("remote_latency.value");

    println!(
        "backend: {} ({CALLS} calls per row; median / p90 in µs; memory tier off: \
         FILE_CACHE_MEMORY=0)",
        kind.name()
    );
    println!("| value size | local hit (file) | remote hit (local tier empty) | backend GET floor | remote / GET |");
    println!("|---|---|---|---|---|");
    for size in [1usize << 10, 256 << 10] {
        let seed = size as u64 * 1000;
        for i in 0..CALLS {
            value(seed + i, size); // computed, stored locally and remotely
        }
        let time = |f: &mut dyn FnMut(u64)| -> Vec<Duration> {
            (0..CALLS)
                .map(|i| {
                    let start = Instant::now();
                    f(seed + i);
                    start.elapsed()
                })
                .collect()
        };
        let before = counters();
        let local = time(&mut |i| {
            std::hint::black_box(value(i, size));
        });
        let after = counters();
        assert_eq!(
            after.misses, before.misses,
            "the local row computed nothing"
        );
        assert_eq!(
            after.hits - before.hits,
            CALLS,
            "every call of the local row hit"
        );
        assert_eq!(
            after.remote_hits, before.remote_hits,
            "none from the remote"
        );
        std::fs::remove_dir_all(&function_dir).expect("drop the local tier");
        // A local miss, then a remote hit: fetched, checked, decoded, kept locally.
        let remote_hit = time(&mut |i| {
            std::hint::black_box(value(i, size));
        });
        let remote_after = counters();
        assert_eq!(
            remote_after.misses, after.misses,
            "the remote row computed nothing"
        );
        assert_eq!(
            remote_after.remote_hits - after.remote_hits,
            CALLS,
            "every call of the remote row was a remote hit"
        );
        let names: Vec<String> = remote::list(Some("remote_latency.value"))
            .expect("list")
            .into_iter()
            .map(|e| format!("{}/{}", e.function, e.key))
            .collect();
        assert!(names.len() >= CALLS as usize);
        let floor = floor(kind, &server, &names[..CALLS as usize]);
        let (l50, l90) = micros(local);
        let (r50, r90) = micros(remote_hit);
        let (f50, f90) = micros(floor);
        println!(
            "| {} KiB | {l50:.0} / {l90:.0} | {r50:.0} / {r90:.0} | {f50:.0} / {f90:.0} | {:.2}x |",
            size >> 10,
            r50 / f50
        );
    }
}

/// The cached function's counters so far.
fn counters() -> file_cache::FunctionStats {
    file_cache::stats()
        .into_iter()
        .find(|s| s.function == "remote_latency::value")
        .expect("the function has been called")
}

/// A plain GET of each object with the backend's client, as file_cache's backend holds it.
fn floor(kind: Kind, server: &Server, names: &[String]) -> Vec<Duration> {
    match kind {
        Kind::Redis => {
            let client =
                redis::Client::open(format!("redis://127.0.0.1:{}/0", server.port)).expect("url");
            let mut connection = client.get_connection().expect("connect");
            names
                .iter()
                .map(|name| {
                    let start = Instant::now();
                    let bytes: Vec<u8> = redis::cmd("GET")
                        .arg(format!("file_cache/{name}"))
                        .query(&mut connection)
                        .expect("GET");
                    std::hint::black_box(bytes);
                    start.elapsed()
                })
                .collect()
        }
        Kind::S3 => {
            let store = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(BUCKET)
                .with_allow_http(true)
                .build()
                .expect("S3 client");
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            names
                .iter()
                .map(|name| {
                    let path = object_store::path::Path::from(format!("{PREFIX}/{name}"));
                    let start = Instant::now();
                    let bytes = runtime
                        .block_on(async { store.get(&path).await?.bytes().await })
                        .expect("GET");
                    std::hint::black_box(bytes);
                    start.elapsed()
                })
                .collect()
        }
    }
}
