//! The rows a Python benchmark of the Python memoizers prints, for file_cache: (a) a hit of
//! `f(x: int, s: str) -> small tuple` in µs, (b) a miss + store of it in µs, (c) a hit
//! returning 1,000,000 floats in ms, (d) a hit whose argument is 100,000 floats in ms.
//! Same counts as the Python script (2000 calls for (a) and (b), 15 for (c) and (d)),
//! medians, each hit checked not to run the body.
//!
//! ```sh
//! cargo run --release --example python_rows
//! ```

use file_cache::file_cache;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn f_small(x: u64, s: &str) -> (u64, String, u64) {
    CALLS.fetch_add(1, Ordering::Relaxed);
    (x, s.to_owned(), x * 2)
}

#[file_cache(memory = false)]
fn f_small_files(x: u64, s: &str) -> (u64, String, u64) {
    CALLS.fetch_add(1, Ordering::Relaxed);
    (x, s.to_owned(), x * 2)
}

#[file_cache]
fn g_bigret(n: u64) -> Vec<f64> {
    CALLS.fetch_add(1, Ordering::Relaxed);
    (0..n).map(|i| i as f64 * 0.5).collect()
}

#[file_cache(memory = false)]
fn g_bigret_files(n: u64) -> Vec<f64> {
    CALLS.fetch_add(1, Ordering::Relaxed);
    (0..n).map(|i| i as f64 * 0.5).collect()
}

#[file_cache]
fn h_bigarg(xs: &[f64]) -> (usize, f64, f64) {
    CALLS.fetch_add(1, Ordering::Relaxed);
    (xs.len(), xs[0], xs[xs.len() - 1])
}

#[file_cache(memory = false)]
fn h_bigarg_files(xs: &[f64]) -> (usize, f64, f64) {
    CALLS.fetch_add(1, Ordering::Relaxed);
    (xs.len(), xs[0], xs[xs.len() - 1])
}

const N: u64 = 2000;
const REPS: u64 = 15;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Times `n` calls of `f(i)` one by one; the median, in `unit` seconds.
fn time<R>(n: u64, mut f: impl FnMut(u64) -> R, unit: f64) -> f64 {
    let samples = (0..n)
        .map(|i| {
            let start = Instant::now();
            black_box(f(i));
            start.elapsed().as_secs_f64() / unit
        })
        .collect();
    median(samples)
}

fn no_body_runs<R>(f: impl FnOnce() -> R) -> R {
    let before = CALLS.load(Ordering::Relaxed);
    let out = f();
    assert_eq!(CALLS.load(Ordering::Relaxed), before, "a hit ran the body");
    out
}

type Small = fn(u64, &str) -> (u64, String, u64);

fn row(
    name: &str,
    small: Small,
    bigret: fn(u64) -> Vec<f64>,
    bigarg: fn(&[f64]) -> (usize, f64, f64),
) {
    let (us, ms) = (1e-6, 1e-3);
    let miss = time(N, |x| small(x, "key"), us);
    let hit = no_body_runs(|| time(N, |x| small(x, "key"), us));
    bigret(1_000_000);
    let big = no_body_runs(|| time(REPS, |_| bigret(1_000_000), ms));
    let xs: Vec<f64> = (0..100_000).map(|i| f64::from(i) * 0.1).collect();
    bigarg(&xs);
    let arg = no_body_runs(|| time(REPS, |_| bigarg(&xs), ms));
    println!("| {name} | {hit:.2} | {miss:.1} | {big:.2} | {arg:.3} |");
}

fn main() {
    let dir = tempfile_dir();
    std::env::set_var("FILE_CACHE_DIR", &dir);
    println!("| library | (a) hit µs | (b) miss+store µs | (c) 1M-float return ms | (d) 100k-float arg ms |");
    println!("|---|---|---|---|---|");
    row("file_cache (memory tier)", f_small, g_bigret, h_bigarg);
    row(
        "file_cache (files only)",
        f_small_files,
        g_bigret_files,
        h_bigarg_files,
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("file_cache_python_rows_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
