//! What `files = [..]` costs to key a call: an unchanged file against one `stat` plus one
//! small read (the floor of noticing a change at all), an unchanged tree of 10,000 small
//! files against a plain recursive `stat` walk, and the same tree with one file changed on
//! every iteration against that walk plus hashing the one file.

use criterion::{black_box, criterion_group, Criterion};
use file_cache::__private::{KeyBuilder, Site, SiteInfo};
use std::fs;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

static SITE: Site = Site::new(SiteInfo {
    module_path: "bench::inputs",
    name: "f",
    ..SiteInfo::DEFAULT
});

fn key_of(path: &Path) -> file_cache::__private::CallKey {
    let mut builder = KeyBuilder::begin(&SITE).expect("cache on");
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

/// Waits until files written now are settled (their digests are remembered only then).
fn settle() {
    std::thread::sleep(Duration::from_millis(2100));
}

fn inputs(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("FILE_CACHE_DIR", dir.path().join("cache"));
    let big = dir.path().join("big");
    fs::write(&big, vec![7u8; 256 << 20]).unwrap();
    let tree = dir.path().join("tree");
    for i in 0..100 {
        let sub = tree.join(format!("d{i}"));
        fs::create_dir_all(&sub).unwrap();
        for j in 0..100 {
            fs::write(sub.join(format!("f{j}")), format!("file {i} {j}")).unwrap();
        }
    }
    settle();
    key_of(&big);
    key_of(&tree);

    let mut group = c.benchmark_group("inputs");
    group.bench_function("file 256 MiB unchanged: key", |b| {
        b.iter(|| key_of(black_box(&big)))
    });
    group.bench_function("file: one stat and a 4 KiB read (floor)", |b| {
        b.iter(|| stat_and_read(black_box(&big)))
    });
    group.bench_function("tree 10,000 files unchanged: key", |b| {
        b.iter(|| key_of(black_box(&tree)))
    });
    group.bench_function("tree: recursive stat walk (floor)", |b| {
        b.iter(|| stat_walk(black_box(&tree)))
    });
    let changing = tree.join("d50/f50");
    let mut n = 0u64;
    group.bench_function("tree, one file changed: key", |b| {
        b.iter(|| {
            n += 1;
            fs::write(&changing, format!("changed {n}")).unwrap();
            key_of(black_box(&tree))
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
