//! Soak: 4 processes x 4 threads x 10,000 mixed calls over 200 keys, values of 1 B to
//! 4 MiB, every value checked against a recomputation: no mismatch, no error.
//!
//! `FILE_CACHE_SOAK_SCALE` scales the number of calls (default 0.1, so CI stays fast;
//! `FILE_CACHE_SOAK_SCALE=1` is the full run).

mod common;

use common::{child_role, init, marked, spawn_child};
use file_cache::file_cache;
use std::sync::atomic::{AtomicUsize, Ordering};

const PROCESSES: usize = 4;
const THREADS: usize = 4;
const CALLS: usize = 10_000;
const KEYS: u64 = 200;

/// The value of key `k`: from 1 byte (k = 0) to 4 MiB (k = 199), spread log-uniformly.
fn expected(k: u64) -> Vec<u8> {
    let len = 2f64.powf(22.0 * k as f64 / (KEYS - 1) as f64).round() as usize;
    let mut value = vec![(k as u8).wrapping_mul(31); len];
    for (i, byte) in value.iter_mut().enumerate().step_by(4093) {
        *byte = (i as u64 ^ k) as u8;
    }
    value
}

#[file_cache]
fn plain(k: u64) -> Vec<u8> {
    expected(k)
}

#[file_cache]
fn fallible(k: u64) -> Result<Vec<u8>, String> {
    if k.is_multiple_of(7) {
        Err(format!("no value for {k}"))
    } else {
        Ok(expected(k))
    }
}

#[file_cache(lock = false)]
fn unlocked(k: u64) -> Vec<u8> {
    expected(k)
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Panics on one call in three for keys divisible by 13: nothing is stored then.
#[file_cache]
fn sometimes_panics(k: u64) -> Vec<u8> {
    if k.is_multiple_of(13) && PANICS.fetch_add(1, Ordering::Relaxed).is_multiple_of(3) {
        panic!("soak panic");
    }
    expected(k)
}

fn scale() -> f64 {
    std::env::var("FILE_CACHE_SOAK_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.1)
}

fn random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// One thread's calls; returns (calls, mismatches, errors).
fn soak_thread(seed: u64, calls: usize) -> (usize, usize, usize) {
    let mut state = seed | 1;
    let (mut mismatches, mut errors) = (0, 0);
    for _ in 0..calls {
        let k = random(&mut state) % KEYS;
        let (got, want) = match random(&mut state) % 20 {
            0..=11 => (Ok(plain(k)), Ok(expected(k))),
            12..=15 => (
                fallible(k),
                if k.is_multiple_of(7) {
                    Err(format!("no value for {k}"))
                } else {
                    Ok(expected(k))
                },
            ),
            16..=17 => (Ok(unlocked(k)), Ok(expected(k))),
            _ => match std::panic::catch_unwind(|| sometimes_panics(k)) {
                Ok(value) => (Ok(value), Ok(expected(k))),
                // An expected panic of the body; anything else is an error.
                Err(_) if k.is_multiple_of(13) => continue,
                Err(_) => {
                    errors += 1;
                    continue;
                }
            },
        };
        if got != want {
            mismatches += 1;
        }
    }
    (calls, mismatches, errors)
}

#[test]
fn child_calls() {
    init();
    let Some(role) = child_role() else { return };
    std::panic::set_hook(Box::new(|_| {})); // the expected panics stay quiet
    let calls = ((CALLS as f64 * scale()) as usize).max(1);
    let seed: u64 = role.parse().unwrap();
    let threads: Vec<_> = (0..THREADS as u64)
        .map(|t| std::thread::spawn(move || soak_thread(seed * 1000 + t + 1, calls)))
        .collect();
    let (mut calls, mut mismatches, mut errors) = (0, 0, 0);
    for thread in threads {
        match thread.join() {
            Ok((c, m, e)) => {
                calls += c;
                mismatches += m;
                errors += e;
            }
            Err(_) => errors += 1,
        }
    }
    println!("SOAK {calls} {mismatches} {errors}");
}

#[test]
fn processes_and_threads_hammering_200_keys_always_get_right_values() {
    if child_role().is_some() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_str().unwrap();
    let started = std::time::Instant::now();
    let children: Vec<_> = (0..PROCESSES)
        .map(|p| {
            spawn_child(
                "child_calls",
                &(p + 1).to_string(),
                &[("FILE_CACHE_DIR", dir), ("RUST_LOG", "warn")],
            )
        })
        .collect();
    let (mut calls, mut mismatches, mut errors) = (0, 0, 0);
    for child in children {
        let lines = child.finish();
        let report = marked(&lines, "SOAK ");
        let numbers: Vec<usize> = report[0].split(' ').map(|n| n.parse().unwrap()).collect();
        calls += numbers[0];
        mismatches += numbers[1];
        errors += numbers[2];
    }
    println!(
        "soak: {calls} calls in {:.1?} (scale {}): {mismatches} mismatches, {errors} errors",
        started.elapsed(),
        scale()
    );
    let per_thread = ((CALLS as f64 * scale()) as usize).max(1);
    assert_eq!(calls, PROCESSES * THREADS * per_thread);
    assert_eq!((mismatches, errors), (0, 0));
}
