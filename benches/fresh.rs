//! First hit in a fresh process: each contender is a small example binary run many times
//! as a whole process, after another process filled its cache. Against a process that
//! reads one file (the floor) and one that does nothing (the cost of any process).
//!
//! The examples are built here with `cargo build --release` (cargo bench does not build
//! examples) and run from copies (see `build`); their output goes to /dev/null.
//!
//! Criterion measures one contender after another, each for a few seconds; on the
//! benchmark's VM the speed of process creation drifts over such spans (in one run the
//! process that does nothing measured 30% slower than the floor, which does more). So the
//! same binaries are also run interleaved (`support::interleaved`): rounds that run every
//! contender once, in a shuffled order, timing each; the medians go to
//! `target/criterion/fresh_process_interleaved.json`, and the report's fresh-process
//! targets use them (both sets are in the report).

mod support;

use criterion::{criterion_group, Criterion};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const CONTENDERS: [&str; 5] = [
    "fresh_empty",
    "fresh_floor",
    "fresh_file_cache",
    "fresh_cached",
    "fresh_smart_cache",
];

fn build() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new(env!("CARGO"));
    // Without this package's `remote` feature: file_cache with its default features, as a
    // user builds it (see examples/fresh_file_cache.rs).
    command.current_dir(manifest).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "file_cache_benches",
    ]);
    for name in CONTENDERS {
        command.args(["--example", name]);
    }
    let status = command.status().expect("cargo runs");
    assert!(
        status.success(),
        "building the fresh-process examples failed"
    );
    let target = support::target_dir();
    let built = target.join("release").join("examples");
    // Each contender runs from a copy, as an installed or deployed binary would: on this
    // VM, exec of the file the linker wrote measured slower than of a copy of the same
    // bytes in the same directory, by ~30-40 µs for file_cache's binary and ~80-90 µs for
    // `cached`'s (also after the file was dropped from the page cache and read back; the
    // cause was not pinned down).
    let bins = support::bench_data().join("fresh-bin");
    let _ = std::fs::remove_dir_all(&bins);
    std::fs::create_dir_all(&bins).expect("bench bin dir");
    for name in CONTENDERS {
        std::fs::copy(built.join(name), bins.join(name)).expect("copy a contender");
    }
    bins
}

fn run(bin: &Path, fill: bool, envs: &[(&str, String)]) {
    let mut command = Command::new(bin);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (name, value) in envs {
        command.env(name, value);
    }
    if fill {
        command.env("FRESH_FILL", "1");
    } else {
        command.env_remove("FRESH_FILL");
    }
    let status = command.status().expect("example runs");
    assert!(status.success(), "{} failed: {status}", bin.display());
}

fn benches(c: &mut Criterion) {
    let bins = build();
    let root = support::bench_data().join("fresh");
    let _ = std::fs::remove_dir_all(&root);
    let envs = vec![
        (
            "FILE_CACHE_DIR",
            root.join("file_cache").display().to_string(),
        ),
        ("XDG_CACHE_HOME", root.join("xdg").display().to_string()),
    ];
    for name in ["fresh_file_cache", "fresh_cached", "fresh_smart_cache"] {
        run(&bins.join(name), true, &envs);
    }
    // The floor reads file_cache's own entry file and decodes its payload.
    let entry = support::files_under(&root.join("file_cache"))
        .into_iter()
        .next()
        .expect("file_cache wrote an entry");
    let payload = postcard::to_stdvec(&(7u64, "key", 14u64)).expect("encode");
    let mut envs = envs;
    envs.push(("FRESH_FILE", entry.display().to_string()));
    envs.push(("FRESH_PAYLOAD_LEN", payload.len().to_string()));

    let mut group = c.benchmark_group("fresh_process");
    group.sample_size(40);
    for name in CONTENDERS {
        let bin = bins.join(name);
        let label = name.strip_prefix("fresh_").unwrap_or(name);
        group.bench_function(label, |b| b.iter(|| run(&bin, false, &envs)));
    }
    group.finish();
    interleaved(&bins, &envs);
}

/// Rounds of the interleaved measurement (about 10 ms a round).
const ROUNDS: usize = 600;

/// The same binaries, interleaved (see the module docs).
fn interleaved(bins: &Path, envs: &[(&str, String)]) {
    let paths: Vec<PathBuf> = CONTENDERS.iter().map(|name| bins.join(name)).collect();
    let runs: Vec<Box<dyn Fn() + '_>> = paths
        .iter()
        .map(|bin| Box::new(move || run(bin, false, envs)) as Box<dyn Fn()>)
        .collect();
    let contenders: Vec<(&str, &dyn Fn())> = CONTENDERS
        .iter()
        .zip(&runs)
        .map(|(name, run)| (name.strip_prefix("fresh_").unwrap_or(name), &**run))
        .collect();
    let medians = support::interleaved(&contenders, ROUNDS);
    support::write_interleaved("fresh_process", ROUNDS, &medians);
}

criterion_group! {
    name = group;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    targets = benches
}

fn main() {
    group();
    Criterion::default().configure_from_args().final_summary();
}
