//! How long a cached `async fn` with `files = [path]` holds its executor thread while it
//! keys a 1 GiB file. An `async fn` takes its files' digests before its key: on the
//! polling thread when a `stat` answers (an unchanged file), and otherwise on a thread of
//! its own, awaited. Measured on a tokio current-thread runtime with a ticker task that
//! wakes every millisecond: the longest gap between two ticks while the call runs is how
//! long the executor could run nothing else; the same call made inside `spawn_blocking`
//! is the reference. Prints numbers, asserts none.
//!
//! ```sh
//! cargo run --release --example async_inputs
//! ```
//!
//! The file (1 GiB of real bytes) is written under the system's temporary directory and
//! removed at the end.

use file_cache::file_cache;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[file_cache(files = [path])]
async fn length(path: PathBuf) -> u64 {
    std::fs::metadata(&path).map_or(0, |meta| meta.len())
}

const LEN: usize = 1 << 30;

fn write_big(path: &Path) {
    let mut file = std::fs::File::create(path).expect("create");
    let mut stream = blake3::Hasher::new().update(b"async inputs").finalize_xof();
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..LEN / block.len() {
        stream.fill(&mut block);
        file.write_all(&block).expect("write");
    }
}

/// Runs `call` on `runtime` beside a ticker task; (how long the call took, the longest
/// gap between ticks while it ran).
fn measure<F>(runtime: &tokio::runtime::Runtime, call: F) -> (Duration, Duration)
where
    F: std::future::Future<Output = u64>,
{
    runtime.block_on(async {
        let done = Arc::new(AtomicBool::new(false));
        let gap = Arc::new(Mutex::new(Duration::ZERO));
        let ticker = tokio::spawn({
            let done = done.clone();
            let gap = gap.clone();
            async move {
                let mut last = Instant::now();
                while !done.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    let now = Instant::now();
                    if let Ok(mut gap) = gap.lock() {
                        *gap = (*gap).max(now - last);
                    }
                    last = now;
                }
            }
        });
        // Let the ticker start ticking before the call.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = Instant::now();
        std::hint::black_box(call.await);
        let took = started.elapsed();
        tokio::time::sleep(Duration::from_millis(5)).await;
        done.store(true, Ordering::Relaxed);
        ticker.await.expect("ticker");
        let gap = *gap.lock().expect("gap");
        (took, gap)
    })
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::env::set_var("FILE_CACHE_DIR", dir.path().join("cache"));
    let big = dir.path().join("big");
    write_big(&big);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .expect("open");
    let mut n = 0u64;
    let mut change = || {
        n += 1;
        file.write_all_at(&n.to_le_bytes(), 0).expect("write");
    };

    // Settled (2 s old), hashed once: its digest is remembered.
    std::thread::sleep(Duration::from_millis(2100));
    runtime.block_on(length(big.clone()));
    let mut rows = Vec::new();
    for _ in 0..3 {
        rows.push((
            "unchanged file (digest remembered)",
            measure(&runtime, length(big.clone())),
        ));
    }
    for _ in 0..3 {
        change();
        rows.push((
            "changed file, awaited (read on another thread)",
            measure(&runtime, length(big.clone())),
        ));
    }
    // The same call moved to tokio's blocking pool, the way to keep any blocking work off
    // the executor: the reference.
    for _ in 0..3 {
        change();
        let path = big.clone();
        rows.push((
            "changed file, call in spawn_blocking",
            measure(&runtime, async move {
                tokio::task::spawn_blocking(move || pollster::block_on(length(path)))
                    .await
                    .expect("blocking task")
            }),
        ));
    }
    println!(
        "1 GiB file, tokio current-thread runtime, a ticker task every 1 ms; {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<46} {:>10} {:>22}",
        "case", "call", "longest executor stall"
    );
    for (case, (took, gap)) in rows {
        println!(
            "{case:<46} {:>8.1}ms {:>20.1}ms",
            took.as_secs_f64() * 1e3,
            gap.as_secs_f64() * 1e3
        );
    }
}
