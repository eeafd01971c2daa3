//! Misses on fresh keys, each computed and stored, for profilers and for a steady
//! comparison with the floor: `strace -c -f` counts a miss + store's system calls and
//! `valgrind --tool=callgrind` its instructions.
//!
//! ```sh
//! cargo build --release --example profile_store
//! strace -c -f target/release/examples/profile_store small 1000
//! target/release/examples/profile_store compare 300
//! ```
//!
//! Cases: `small` (a 3-field tuple, without the memory tier) and `small_memory` (with it),
//! under the system's temporary directory; `floor` (the floor below, alone); and
//! `compare N`: N rounds of a batch of 20 misses of each and of the floor of `hit`'s
//! `miss_store` group (encode, write a new temporary file, rename it into its shard), so
//! that all three meet the same moments of a shared machine. It prints each one's median
//! and lowest batch, and the median of its batches' ratios to the floor's batch of the same
//! round. Its files go under `target/bench-data/profile_store/<process id>` (beside this
//! program's `release` directory), removed at the end unless a third argument says `keep`.
//!
//! On a file system that looks over recently freed inodes before creating a file (ext4
//! without a journal), files freed by an earlier run slow every file created for a minute
//! or more after: leave a pause between runs, or keep their files (and remove them later).

use file_cache::file_cache;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

type Small = (u64, String, u64);

#[file_cache(memory = false)]
fn small(x: u64, s: &str) -> Small {
    (x, s.to_owned(), x * 2)
}

#[file_cache]
fn small_memory(x: u64, s: &str) -> Small {
    (x, s.to_owned(), x * 2)
}

/// What a store cannot avoid: encode, write a new temporary file, rename it into its
/// place under one of 256 shard directories (made on first use), as `hit`'s floor does.
fn floor(dir: &Path, n: u64, total: usize) {
    let payload = postcard::to_stdvec(&(n, "key", n * 2)).expect("encode");
    let mut bytes = vec![0u8; total.saturating_sub(payload.len())];
    bytes.extend_from_slice(&payload);
    let dir = dir.join(format!("{:02x}", n % 256));
    let _ = std::fs::create_dir_all(&dir);
    let temp = dir.join(format!(".{n}.tmp"));
    std::fs::write(&temp, &bytes).expect("write");
    std::fs::rename(&temp, dir.join(n.to_string())).expect("rename");
}

/// `target/`, from this program's own path (`target/release/examples/profile_store`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("exe");
    exe.ancestors().nth(3).expect("target dir").to_path_buf()
}

fn compare(batches: usize, keep: bool) {
    const BATCH: u64 = 20;
    let data = target_dir()
        .join("bench-data")
        .join("profile_store")
        .join(std::process::id().to_string());
    std::fs::create_dir_all(&data).expect("data dir");
    std::env::set_var("FILE_CACHE_DIR", data.join("file_cache"));
    let floor_dir = data.join("floor");
    let mut next = 1_000_000u64;
    // Every shard directory made (and swept) first, as the bench's warm-up does; and the
    // entry's size, for the floor's file.
    for n in 0..1024 {
        small(n, "warm");
        small_memory(n, "warm");
    }
    let total = std::fs::read_dir(data.join("file_cache"))
        .expect("root")
        .flatten()
        .find(|d| d.file_name().to_string_lossy().ends_with(".small"))
        .and_then(|d| std::fs::read_dir(d.path()).ok())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|d| d.path().is_dir())
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .find_map(|f| f.metadata().ok().map(|m| m.len() as usize))
        .expect("an entry");
    for n in 0..1024 {
        floor(&floor_dir, n, total);
    }
    let names = ["file_cache", "file_cache_no_memory", "floor"];
    let mut times: [Vec<f64>; 3] = Default::default();
    for _ in 0..batches {
        for (which, times) in times.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..BATCH {
                next += 1;
                match which {
                    0 => drop(black_box(small_memory(next, "key"))),
                    1 => drop(black_box(small(next, "key"))),
                    _ => floor(&floor_dir, next, total),
                }
            }
            times.push(start.elapsed().as_secs_f64() * 1e6 / BATCH as f64);
        }
    }
    let median = |t: &mut Vec<f64>| {
        t.sort_by(f64::total_cmp);
        (t[t.len() / 2], t[0])
    };
    // Each batch against the floor's batch of the same round: the machine's slow drift
    // cancels out.
    let mut ratios: Vec<Vec<f64>> = times
        .iter()
        .map(|t| t.iter().zip(&times[2]).map(|(a, f)| a / f).collect())
        .collect();
    for ((name, times), ratios) in names.iter().zip(times.iter_mut()).zip(&mut ratios) {
        let (mid, low) = median(times);
        let (ratio, _) = median(ratios);
        println!(
            "{name:22} median {mid:7.2} µs  lowest {low:7.2} µs  {ratio:.2}x the floor \
             (median of the rounds' ratios)"
        );
    }
    if !keep {
        let _ = std::fs::remove_dir_all(&data);
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "small".to_owned());
    let n: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    if case == "compare" {
        return compare(n as usize, args.next().as_deref() == Some("keep"));
    }
    let dir = std::env::temp_dir().join("file_cache_profile_store");
    std::env::set_var("FILE_CACHE_DIR", &dir);
    // Keys no earlier run stored.
    let first = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    if case == "floor" {
        let floor_dir = dir.join("floor");
        (0..=n).for_each(|i| floor(&floor_dir, first + i, 221));
        return;
    }
    let call: fn(u64, &str) -> Small = match case.as_str() {
        "small" => small,
        "small_memory" => small_memory,
        other => panic!("unknown case {other}"),
    };
    black_box(call(first, "warm"));
    (1..=n).for_each(|i| drop(black_box(call(first + i, "key"))));
}
