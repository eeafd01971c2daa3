//! Setup shared by the bench targets.
#![allow(dead_code)] // each bench target uses part of this module

#[path = "contenders.rs"]
pub mod contenders;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Points every contender at its own directory under `target/bench-data/<name>` (emptied
/// first): `FILE_CACHE_DIR` for file_cache, `XDG_CACHE_HOME` for both peers (their redb
/// files go under the user's cache dir). Call first in `main`, before any thread starts.
pub fn isolate(name: &str) -> PathBuf {
    let root = bench_data().join(name);
    // The last run's files are moved aside now and deleted after this run
    // ([`remove_old`]): deleting many files just before creating new ones in the same
    // place made ext4 skip the freshly freed inodes one by one (its "recently deleted"
    // check) on every file created, and a store cost five times what it does.
    if root.exists() {
        let old = bench_data().join(format!("{name}.old"));
        let _ = std::fs::remove_dir_all(&old);
        let _ = std::fs::rename(&root, &old);
    }
    std::fs::create_dir_all(&root).expect("bench data dir");
    settle_disk();
    std::env::set_var("FILE_CACHE_DIR", root.join("file_cache"));
    std::env::set_var("XDG_CACHE_HOME", root.join("xdg"));
    std::env::remove_var("FILE_CACHE");
    root
}

/// Waits for the file system to write out what earlier work left pending (`sync`): a
/// journal still committing the deletion of a previous run's hundred thousand files made
/// every file created in the first measurements wait for it.
pub fn settle_disk() {
    let _ = std::process::Command::new("sync").status();
}

/// Deletes what [`isolate`] moved aside; run after the measurements.
pub fn remove_old(name: &str) {
    let _ = std::fs::remove_dir_all(bench_data().join(format!("{name}.old")));
}

/// The workspace's target directory (`CARGO_TARGET_DIR`, or `target/` at the workspace
/// root, one level above this package).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// `target/bench-data`, beside the build output.
pub fn bench_data() -> PathBuf {
    target_dir().join("bench-data")
}

/// Runs `f` with file descriptor 1 sent to `/dev/null`: smart-cache `println!`s every key,
/// and criterion's own report must still reach the terminal between measurements.
pub fn with_stdout_to_null<R>(f: impl FnOnce() -> R) -> R {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("/dev/null");
    std::io::stdout().flush().expect("flush stdout");
    // SAFETY: plain descriptor duplication on descriptors this function owns or restores.
    let saved = unsafe { libc::dup(1) };
    assert!(saved >= 0, "dup(1)");
    unsafe { libc::dup2(null.as_raw_fd(), 1) };
    let out = f();
    std::io::stdout().flush().expect("flush stdout");
    unsafe {
        libc::dup2(saved, 1);
        libc::close(saved);
    }
    out
}

/// Every entry file under `dir`, recursively: dot files beside the entries are the cache's
/// own (`.current`, locks, temporary files).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if !entry.file_name().to_string_lossy().starts_with('.') {
                out.push(path);
            }
        }
    }
    out
}

/// The one entry file of a function directory whose name ends with `fn_name`.
pub fn entry_file(fn_name: &str) -> PathBuf {
    let root = file_cache::cache_dir();
    let dir = std::fs::read_dir(root)
        .expect("cache root")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(&format!(".{fn_name}")))
        })
        .unwrap_or_else(|| panic!("no directory for {fn_name} under {}", root.display()));
    let files = files_under(&dir);
    assert_eq!(files.len(), 1, "{fn_name}: {files:?}");
    files.into_iter().next().expect("one entry")
}

/// Runs every contender once per round, `rounds` times, in an order shuffled per round;
/// returns each contender's median time. Criterion measures one contender after another,
/// each for seconds, and on the benchmark's VM speed drifts over such spans: contenders
/// measured in the same rounds see the same drift, so their ratios are not skewed by it.
pub fn interleaved(contenders: &[(&str, &dyn Fn())], rounds: usize) -> Vec<(String, Duration)> {
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); contenders.len()];
    let mut order: Vec<usize> = (0..contenders.len()).collect();
    // xorshift64: a fixed seed keeps runs comparable; any order mixing will do.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..rounds {
        for i in (1..order.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            order.swap(i, (state % (i as u64 + 1)) as usize);
        }
        for &at in &order {
            let started = Instant::now();
            (contenders[at].1)();
            times[at].push(started.elapsed());
        }
    }
    contenders
        .iter()
        .zip(&mut times)
        .map(|((name, _), runs)| {
            runs.sort();
            ((*name).to_owned(), runs[runs.len() / 2])
        })
        .collect()
}

/// Writes what [`interleaved`] measured to `target/criterion/<name>_interleaved.json`,
/// where `benches/report.py` reads it, and prints it.
pub fn write_interleaved(name: &str, rounds: usize, medians: &[(String, Duration)]) {
    let fields: Vec<String> = medians
        .iter()
        .map(|(who, median)| format!("\"{who}\": {}", median.as_secs_f64()))
        .collect();
    let json = format!(
        "{{\"rounds\": {rounds}, \"median_seconds\": {{{}}}}}\n",
        fields.join(", ")
    );
    let out = target_dir()
        .join("criterion")
        .join(format!("{name}_interleaved.json"));
    std::fs::create_dir_all(out.parent().expect("a parent")).expect("criterion dir");
    std::fs::write(&out, json).expect("write the interleaved medians");
    println!("{name}, interleaved ({rounds} rounds), medians:");
    for (who, median) in medians {
        println!("  {who}: {median:?}");
    }
}
