//! A loop of hits for profilers: `strace -c -f` counts a hit's system calls and
//! `valgrind --tool=callgrind` its instructions, repeatably on a noisy machine.
//!
//! ```sh
//! cargo build --release --example profile_hit
//! strace -c -f target/release/examples/profile_hit small 1000
//! valgrind --tool=callgrind target/release/examples/profile_hit key_map 3
//! ```
//!
//! Cases: `small`, `small_memory` (hits of a 3-field tuple without and with the memory
//! tier), `floats` (1M `f64`), `bytes` (16 MiB), and key hashing alone: `key_f64` (1M),
//! `key_bytes` (16 MiB, plain `Vec<u8>`), `key_strings` (100k), `key_map` (100k entries).

use file_cache::file_cache;
use std::collections::HashMap;
use std::hint::black_box;

#[file_cache(memory = false)]
fn small(x: u64, s: &str) -> (u64, String, u64) {
    (x, s.to_owned(), x * 2)
}

#[file_cache]
fn small_memory(x: u64, s: &str) -> (u64, String, u64) {
    (x, s.to_owned(), x * 2)
}

#[file_cache(memory = false)]
fn floats(n: u64) -> Vec<f64> {
    (0..n).map(|i| i as f64 * 0.5).collect()
}

#[file_cache]
fn floats_memory(n: u64) -> Vec<f64> {
    (0..n).map(|i| i as f64 * 0.5).collect()
}

#[file_cache(memory = false)]
fn bytes(n: u64) -> serde_bytes::ByteBuf {
    serde_bytes::ByteBuf::from((0..n).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>())
}

/// A small value keyed by a big argument: after the first call, each call is the key's
/// hashing plus a small hit.
#[file_cache(memory = false)]
fn keyed<T: serde::Serialize>(value: &T) -> u8 {
    let _ = value;
    0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "small".to_owned());
    let n: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    std::env::set_var(
        "FILE_CACHE_DIR",
        std::env::temp_dir().join("file_cache_profile_hit"),
    );
    match case.as_str() {
        "small" => (0..n).for_each(|_| drop(black_box(small(7, "key")))),
        "small_memory" => (0..n).for_each(|_| drop(black_box(small_memory(7, "key")))),
        "floats" => (0..n).for_each(|_| drop(black_box(floats(1_000_000)))),
        "floats_memory" => (0..n).for_each(|_| drop(black_box(floats_memory(1_000_000)))),
        "bytes" => (0..n).for_each(|_| drop(black_box(bytes(16 << 20)))),
        "key_f64" => {
            let v: Vec<f64> = (0..1_000_000).map(|i| f64::from(i) * 0.1).collect();
            (0..n).for_each(|_| {
                black_box(keyed(&v));
            });
        }
        "key_bytes" => {
            let v: Vec<u8> = (0..16u32 << 20).map(|i| (i * 31 % 251) as u8).collect();
            (0..n).for_each(|_| {
                black_box(keyed(&v));
            });
        }
        "key_strings" => {
            let v: Vec<String> = (0..100_000).map(|i| format!("string number {i}")).collect();
            (0..n).for_each(|_| {
                black_box(keyed(&v));
            });
        }
        "key_map" => {
            let v: HashMap<String, u64> = (0..100_000u64)
                .map(|i| (format!("key-{i}"), i * 7))
                .collect();
            (0..n).for_each(|_| {
                black_box(keyed(&v));
            });
        }
        other => panic!("unknown case {other}"),
    }
}
