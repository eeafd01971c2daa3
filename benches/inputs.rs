//! What `files = [..]` costs to key a call, each case against its floor in the same run:
//!
//! - a 1 GiB file unchanged, as a fresh process keys it (no digest remembered in the
//!   process, the root's digest index read from disk), against one `stat` plus one 4 KiB
//!   read (the floor of noticing a change at all); and as the same process keys it again;
//! - a 1 GiB file changed before every key (a few bytes rewritten in place), against
//!   hashing it as `b3sum` does (blake3's `update_mmap_rayon`: mapped, on every core), with
//!   a single-threaded read-and-hash for reference. With `--features mmap` the key maps the
//!   file too (file_cache's `mmap` feature), and the floor runs in this process; without
//!   it, the floor is the `b3sum` program (`cargo install b3sum`), and the case is left out
//!   when that is not installed. (The default build does not turn on blake3's `rayon`
//!   feature: this package shares the workspace's feature resolution with the quickstart
//!   example, whose first build would compile rayon for nothing.)
//! - a tree of 10,000 small files unchanged against a plain recursive `stat` walk, and the
//!   same tree with one file changed on every iteration against that walk plus hashing the
//!   one file; and the unchanged tree as a fresh process keys it (its index read: 10,000
//!   records).
//!
//! The 1 GiB file is written once (real bytes, not sparse) and removed at the end.
//!
//! Criterion measures one case after another, each for seconds, and on the benchmark's VM
//! speed drifts over such spans (a floor of two microseconds measured 1.6 µs in one run
//! and 2.1 µs in the next). So each case and its floor are also run interleaved
//! (`support::interleaved`: every contender once per round, in a shuffled order); the
//! medians go to `target/criterion/inputs_{file,tree,big}_interleaved.json`, and the
//! ratios are printed.
//! There the fresh-process key includes forgetting what the process remembered.

mod support;

use criterion::{black_box, criterion_group, BatchSize, Criterion};
use file_cache::__private::{forget_file_digests, KeyBuilder, Site, SiteInfo};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

/// Three functions with roots of their own, so that each root's digest index holds only
/// what its case put there.
static BIG: Site = Site::new(SiteInfo {
    module_path: "bench::inputs",
    name: "big",
    dir: Some("big"),
    ..SiteInfo::DEFAULT
});
static CHANGED: Site = Site::new(SiteInfo {
    module_path: "bench::inputs",
    name: "changed",
    dir: Some("changed"),
    ..SiteInfo::DEFAULT
});
static TREE: Site = Site::new(SiteInfo {
    module_path: "bench::inputs",
    name: "tree",
    dir: Some("tree"),
    ..SiteInfo::DEFAULT
});

const BIG_LEN: usize = 1 << 30;

fn key_of(site: &'static Site, path: &Path) -> file_cache::__private::CallKey {
    let mut builder = KeyBuilder::begin(site).expect("cache on");
    builder.files("path", path);
    builder.finish().expect("hashes")
}

/// One `stat` and a read of the first 4 KiB.
fn stat_and_read(path: &Path) -> usize {
    let len = fs::metadata(path).map_or(0, |meta| meta.len() as usize);
    let mut buf = [0u8; 4096];
    let read = fs::File::open(path)
        .and_then(|mut file| file.read(&mut buf))
        .unwrap_or(0);
    len + read
}

/// A plain recursive `stat` walk: what noticing any change in a tree costs at least.
fn stat_walk(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += meta.len();
        if meta.is_dir() {
            total += stat_walk(&entry.path());
        }
    }
    total
}

/// 1 GiB of bytes that no two MiB of repeat (blake3's output stream).
fn write_big(path: &Path) {
    let mut file = fs::File::create(path).unwrap();
    let mut stream = blake3::Hasher::new().update(b"inputs bench").finalize_xof();
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..BIG_LEN / block.len() {
        stream.fill(&mut block);
        file.write_all(&block).unwrap();
    }
    file.sync_all().unwrap();
}

/// What `b3sum` does to a file: blake3's `update_mmap_rayon`, in this process.
#[cfg(feature = "mmap")]
fn b3sum_style(path: &Path) -> Option<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_mmap_rayon(path).unwrap();
    Some(*hasher.finalize().as_bytes())
}

/// What `b3sum` does to a file, done by `b3sum` itself; `None` when it is not installed.
#[cfg(not(feature = "mmap"))]
fn b3sum_style(path: &Path) -> Option<[u8; 32]> {
    let output = std::process::Command::new("b3sum")
        .arg("--no-names")
        .arg(path)
        .output()
        .ok()?;
    assert!(
        output.status.success(),
        "b3sum failed on {}",
        path.display()
    );
    let hex = std::str::from_utf8(&output.stdout).unwrap().trim();
    Some(*blake3::Hash::from_hex(hex).unwrap().as_bytes())
}

/// Waits until files written now are settled (their digests are remembered only then).
fn settle() {
    std::thread::sleep(Duration::from_millis(2100));
}

fn inputs(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("FILE_CACHE_DIR", dir.path().join("cache"));
    let big = dir.path().join("big");
    write_big(&big);
    let tree = dir.path().join("tree");
    for i in 0..100 {
        let sub = tree.join(format!("d{i}"));
        fs::create_dir_all(&sub).unwrap();
        for j in 0..100 {
            fs::write(sub.join(format!("f{j}")), format!("file {i} {j}")).unwrap();
        }
    }
    settle();
    // Hashed once, settled: the digests are in the process and in each root's index.
    key_of(&BIG, &big);
    key_of(&TREE, &tree);

    let mut group = c.benchmark_group("inputs");
    group.bench_function("file 1 GiB unchanged, fresh process: key", |b| {
        b.iter_batched(
            forget_file_digests,
            |()| key_of(&BIG, black_box(&big)),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("file 1 GiB unchanged, same process: key", |b| {
        b.iter(|| key_of(&BIG, black_box(&big)))
    });
    group.bench_function("file: one stat and a 4 KiB read (floor)", |b| {
        b.iter(|| stat_and_read(black_box(&big)))
    });
    group.bench_function("tree 10,000 files unchanged: key", |b| {
        b.iter(|| key_of(&TREE, black_box(&tree)))
    });
    group.bench_function("tree: recursive stat walk (floor)", |b| {
        b.iter(|| stat_walk(black_box(&tree)))
    });
    group.bench_function("tree 10,000 files unchanged, fresh process: key", |b| {
        b.iter_batched(
            forget_file_digests,
            |()| key_of(&TREE, black_box(&tree)),
            BatchSize::PerIteration,
        )
    });
    let changing = tree.join("d50/f50");
    let mut n = 0u64;
    group.bench_function("tree, one file changed: key", |b| {
        b.iter(|| {
            n += 1;
            fs::write(&changing, format!("changed {n}")).unwrap();
            key_of(&TREE, black_box(&tree))
        })
    });
    group.bench_function("tree, one file changed: walk + hash it (floor)", |b| {
        b.iter(|| {
            n += 1;
            fs::write(&changing, format!("changed {n}")).unwrap();
            let walked = stat_walk(black_box(&tree));
            (walked, blake3::hash(&fs::read(&changing).unwrap()))
        })
    });
    group.finish();

    // A few samples: each iteration hashes 1 GiB.
    let mut group = c.benchmark_group("inputs_changed_1gib");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(2));
    let file = fs::OpenOptions::new().write(true).open(&big).unwrap();
    let mut touch = || {
        n += 1;
        file.write_all_at(&n.to_le_bytes(), 0).unwrap();
    };
    group.bench_function("file 1 GiB changed: key", |b| {
        b.iter(|| {
            touch();
            key_of(&CHANGED, black_box(&big))
        })
    });
    let has_floor = b3sum_style(&big).is_some();
    if has_floor {
        group.bench_function(
            "file 1 GiB changed: b3sum-style mmap + rayon (floor)",
            |b| {
                b.iter(|| {
                    touch();
                    b3sum_style(black_box(&big))
                })
            },
        );
    } else {
        println!("inputs: the b3sum-style floor is left out: install `b3sum` (cargo install b3sum) or pass --features mmap");
    }
    group.bench_function(
        "file 1 GiB changed: one thread, read + hash (reference)",
        |b| {
            b.iter(|| {
                touch();
                let mut hasher = blake3::Hasher::new();
                hasher
                    .update_reader(fs::File::open(black_box(&big)).unwrap())
                    .unwrap();
                hasher.finalize()
            })
        },
    );
    group.finish();

    interleaved(&big, &tree, &file, n, has_floor);
}

/// Each case and its floor, interleaved; the medians written and their ratios printed.
fn interleaved(big: &Path, tree: &Path, file: &fs::File, n: u64, has_floor: bool) {
    let n = std::cell::Cell::new(n);
    let bump = || {
        n.set(n.get() + 1);
        n.get()
    };
    // Settled again, and remembered: the unchanged cases start as the others did.
    let changing = tree.join("d50/f50");
    fs::write(&changing, "file 50 50").unwrap();
    settle();
    key_of(&BIG, big);
    key_of(&TREE, tree);
    let mut medians = Vec::new();
    let file_cases: [(&str, &dyn Fn()); 3] = [
        ("file_fresh_key", &|| {
            forget_file_digests();
            black_box(key_of(&BIG, big));
        }),
        ("file_same_process_key", &|| {
            black_box(key_of(&BIG, big));
        }),
        ("file_stat_and_read", &|| {
            black_box(stat_and_read(big));
        }),
    ];
    let file_medians = support::interleaved(&file_cases, 3000);
    support::write_interleaved("inputs_file", 3000, &file_medians);
    medians.extend(file_medians);
    let tree_cases: [(&str, &dyn Fn()); 5] = [
        ("tree_key", &|| {
            black_box(key_of(&TREE, tree));
        }),
        ("tree_walk", &|| {
            black_box(stat_walk(tree));
        }),
        ("tree_fresh_key", &|| {
            forget_file_digests();
            black_box(key_of(&TREE, tree));
        }),
        ("tree_changed_key", &|| {
            fs::write(&changing, format!("changed {}", bump())).unwrap();
            black_box(key_of(&TREE, tree));
        }),
        ("tree_changed_walk_and_hash", &|| {
            fs::write(&changing, format!("changed {}", bump())).unwrap();
            black_box(stat_walk(tree));
            black_box(blake3::hash(&fs::read(&changing).unwrap()));
        }),
    ];
    let tree_medians = support::interleaved(&tree_cases, 40);
    support::write_interleaved("inputs_tree", 40, &tree_medians);
    medians.extend(tree_medians);
    let touch = || file.write_all_at(&bump().to_le_bytes(), 0).unwrap();
    let big_cases: [(&str, &dyn Fn()); 2] = [
        ("big_changed_key", &|| {
            touch();
            black_box(key_of(&CHANGED, big));
        }),
        ("big_changed_b3sum_style", &|| {
            touch();
            black_box(b3sum_style(big));
        }),
    ];
    let big_cases = if has_floor {
        &big_cases[..]
    } else {
        &big_cases[..1]
    };
    let big_medians = support::interleaved(big_cases, 7);
    support::write_interleaved("inputs_big", 7, &big_medians);
    medians.extend(big_medians);
    let median = |name: &str| {
        medians
            .iter()
            .find(|(who, _)| who == name)
            .map_or(f64::NAN, |(_, at)| at.as_secs_f64())
    };
    println!("inputs, interleaved ratios:");
    for (case, floor) in [
        ("file_fresh_key", "file_stat_and_read"),
        ("file_same_process_key", "file_stat_and_read"),
        ("tree_key", "tree_walk"),
        ("tree_fresh_key", "tree_walk"),
        ("tree_changed_key", "tree_changed_walk_and_hash"),
        ("big_changed_key", "big_changed_b3sum_style"),
    ] {
        if median(floor).is_nan() {
            println!("  {case}: no {floor} to compare with");
            continue;
        }
        println!("  {case} / {floor}: {:.2}", median(case) / median(floor));
    }
    if has_floor {
        println!(
            "  1 GiB changed, throughput against b3sum-style: {:.0}%",
            100.0 * median("big_changed_b3sum_style") / median("big_changed_key")
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = inputs
}

fn main() {
    std::env::remove_var("FILE_CACHE");
    benches();
    Criterion::default().configure_from_args().final_summary();
}
