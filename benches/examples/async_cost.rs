//! What caching an `async fn` costs next to the same function cached blocking: hits and
//! misses timed under tokio (current-thread and multi-thread) and pollster. The lookup and
//! the store run inline in `poll`; this shows what that adds. Prints numbers, asserts none.
//!
//! ```sh
//! cargo run --release --example async_cost
//! ```

use file_cache::file_cache;
use std::time::{Duration, Instant};

#[file_cache]
fn sync_value(x: u64, salt: u64) -> Vec<u64> {
    vec![x ^ salt; 16]
}

#[file_cache]
async fn async_value(x: u64, salt: u64) -> Vec<u64> {
    vec![x ^ salt; 16]
}

/// The same body, uncached: what the executor alone costs.
async fn plain_value(x: u64, salt: u64) -> Vec<u64> {
    vec![x ^ salt; 16]
}

const N: u64 = 2000;

fn per_call(total: Duration) -> f64 {
    total.as_secs_f64() * 1e6 / N as f64
}

/// (miss, hit) µs per call.
fn time(mut run: impl FnMut(u64, u64)) -> (f64, f64) {
    let salt = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let started = Instant::now();
    for x in 0..N {
        run(x, salt);
    }
    let miss = per_call(started.elapsed());
    let started = Instant::now();
    for x in 0..N {
        run(x, salt);
    }
    (miss, per_call(started.elapsed()))
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::env::set_var("FILE_CACHE_DIR", dir.path());
    let current = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");

    let base = time(|x, salt| {
        std::hint::black_box(sync_value(x, salt));
    });
    let rows = [
        (
            "async, pollster",
            time(|x, salt| {
                std::hint::black_box(pollster::block_on(async_value(x, salt)));
            }),
        ),
        (
            "async, tokio current-thread",
            time(|x, salt| {
                std::hint::black_box(current.block_on(async_value(x, salt)));
            }),
        ),
        (
            "async, tokio multi-thread (spawned)",
            time(|x, salt| {
                let task = multi.spawn(async_value(x, salt));
                std::hint::black_box(multi.block_on(task).expect("task"));
            }),
        ),
    ];
    let spawn_only = time(|x, salt| {
        let task = multi.spawn(plain_value(x, salt));
        std::hint::black_box(multi.block_on(task).expect("task"));
    });
    println!(
        "executor alone (uncached, tokio multi-thread spawned): {:.2} µs per call",
        spawn_only.1
    );
    println!("{N} calls each; µs per call (ratio to the blocking call)");
    println!(
        "{:<38} miss {:>7.2}   hit {:>6.2}",
        "blocking", base.0, base.1
    );
    for (name, (miss, hit)) in rows {
        println!(
            "{name:<38} miss {miss:>7.2} ({:.2}x)   hit {hit:>6.2} ({:.2}x)",
            miss / base.0,
            hit / base.1
        );
    }
}
