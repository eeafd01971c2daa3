//! What `FILE_CACHE_MAX_SIZE` adds to a store: the time of each call that misses and stores
//! 10 kB, 1,200 calls back to back (3x a 4 MiB bound), in three fresh processes (the bound
//! is read once per process): without a bound, with one, and with one while the pruning
//! thread is held (a machine too busy to run it: the stores make room themselves, by the
//! queued victims and, when those run out, by a pass of their own). Prints p50, p99 and
//! the maximum of each, how many values were stored and the root's size at the end.
//!
//! ```sh
//! cargo bench --bench store_bound
//! ```

use file_cache::file_cache;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[file_cache]
fn blob(n: u32) -> Vec<u8> {
    vec![n as u8; 10_000]
}

const CALLS: u32 = 1200;
const ROLE: &str = "STORE_BOUND_ROLE";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn root_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|read| {
            read.flatten()
                .map(|item| match item.file_type() {
                    Ok(kind) if kind.is_dir() => root_size(&item.path()),
                    _ => item.metadata().map_or(0, |m| m.len()),
                })
                .sum()
        })
        .unwrap_or(0)
}

fn measure(role: &str) {
    if role == "held" {
        file_cache::__private::hold_pruner(true);
    }
    let written = || -> u64 { file_cache::stats().iter().map(|s| s.bytes_written).sum() };
    let mut times = Vec::with_capacity(CALLS as usize);
    let mut stored = 0;
    for n in 0..CALLS {
        let before = written();
        let call = Instant::now();
        blob(n);
        times.push(call.elapsed());
        stored += u32::from(written() > before);
    }
    times.sort();
    println!(
        "{role:>9}: p50 {:>9.1?}  p99 {:>9.1?}  max {:>9.1?}  stored {stored} of {CALLS}, root ends at {} bytes",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1],
        root_size(file_cache::cache_dir()),
    );
}

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        measure(&role);
        return;
    }
    let exe = std::env::current_exe().expect("bench binary");
    for (role, bound) in [
        ("unbounded", None),
        ("bounded", Some("4MiB")),
        ("held", Some("4MiB")),
    ] {
        let root = tempfile::tempdir().expect("temp dir");
        let mut command = Command::new(&exe);
        command
            .env(ROLE, role)
            .env("FILE_CACHE_DIR", root.path())
            .env_remove("FILE_CACHE_MAX_SIZE")
            .env_remove("FILE_CACHE");
        if let Some(bound) = bound {
            command.env("FILE_CACHE_MAX_SIZE", bound);
        }
        let status = command.status().expect("run the bench");
        assert!(status.success());
    }
}
