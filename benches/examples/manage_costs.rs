//! What a size bound costs a call: how long a store can be delayed by pruning, and how
//! many system calls the recency touch adds to a hit.
//!
//! ```sh
//! # delays of stores while pruning runs (bound 4 MiB, writes 3x that)
//! FILE_CACHE_DIR=$(mktemp -d) FILE_CACHE_MAX_SIZE=4MiB cargo run --release --example manage_costs -- stores
//! # system calls of hits: compare with and without a bound
//! FILE_CACHE_DIR=$(mktemp -d) FILE_CACHE_MAX_SIZE=1GiB strace -c -f cargo run --release --example manage_costs -- hits
//! ```

use file_cache::file_cache;
use std::time::{Duration, Instant};

#[file_cache]
fn blob(n: u32) -> Vec<u8> {
    vec![n as u8; 10_000]
}

#[file_cache]
fn small(n: u32) -> u32 {
    n
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("stores") => {
            // Each call misses and stores ~10 kB: 1200 calls write ~12 MB.
            let mut times = Vec::new();
            let started = Instant::now();
            for n in 0..1200 {
                let call = Instant::now();
                blob(n);
                times.push(call.elapsed());
            }
            let total = started.elapsed();
            times.sort();
            let stored: u64 = file_cache::stats().iter().map(|s| s.bytes_written).sum();
            println!(
                "stores: {} calls ({} stored; a store under a bound is skipped only when no room \
                 can be made) in {total:?}; \
                 p50 {:?}, p99 {:?}, max {:?}",
                times.len(),
                stored / 10_250,
                percentile(&times, 0.5),
                percentile(&times, 0.99),
                times[times.len() - 1]
            );
        }
        Some("hits") => {
            for n in 0..100 {
                small(n);
            }
            // 100 entries, each hit 100 times: 10,000 hits.
            let started = Instant::now();
            for _ in 0..100 {
                for n in 0..100 {
                    small(n);
                }
            }
            println!("hits: 10000 in {:?}", started.elapsed());
        }
        _ => eprintln!("usage: manage_costs stores|hits"),
    }
}
