//! The `file-cache` binary run again and again on a root that another process keeps filling
//! and clearing: a function directory, shard or entry that vanishes while it is read is gone,
//! never an error of the root. This test binary re-runs itself as the child that churns.

use file_cache::file_cache;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Instant;

/// Set in the child that churns a root: the path of the file whose existence stops it.
const CHURN_VAR: &str = "FILE_CACHE_CLI_TEST_CHURN";

/// Runs of each command; the default keeps the test to seconds, a larger count can be asked.
const RUNS_VAR: &str = "FILE_CACHE_CLI_RACE_RUNS";
const DEFAULT_RUNS: usize = 300;

#[file_cache]
fn page(n: u64) -> String {
    format!("page {n}").repeat(50)
}

#[file_cache]
fn square(n: u64) -> u64 {
    n * n
}

/// Lives in a directory of its own under the root.
#[file_cache(dir = "nested")]
fn nested(n: u64) -> u64 {
    n + 1
}

/// Not a test of its own: the body of the child that creates and clears functions until
/// its stop file appears (or its parent's directory of it is gone).
#[test]
fn churn_child() {
    let Some(stop) = std::env::var_os(CHURN_VAR).map(PathBuf::from) else {
        return;
    };
    let started = Instant::now();
    let mut round = 0u64;
    // A bound of its own, so that a parent that died leaves no endless process behind.
    while !stop.exists()
        && stop.parent().is_some_and(Path::exists)
        && started.elapsed().as_secs() < 900
    {
        // Calls on a thread of their own: the thread's end writes the hit logs.
        std::thread::spawn(move || {
            for n in round * 4..round * 4 + 4 {
                page(n);
                page(n);
                square(n);
                square(n);
                nested(n);
            }
        })
        .join()
        .expect("calls");
        match round % 3 {
            0 => drop(file_cache::clear("races::page")),
            1 => drop(file_cache::clear("races::nested")),
            _ => drop(file_cache::clear_all()),
        }
        round += 1;
    }
}

/// Stops and reaps the churning child when the test ends, however it ends.
struct Churn {
    child: Child,
    stop: PathBuf,
}

impl Drop for Churn {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.stop, b"");
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.wait();
        }
    }
}

fn run(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_file-cache"))
        .arg("--dir")
        .arg(root)
        .args(args)
        .env_remove("FILE_CACHE_DIR")
        .output()
        .expect("run file-cache")
}

#[test]
fn commands_never_fail_on_a_root_being_filled_and_cleared() {
    let root = tempfile::tempdir().expect("temp dir");
    let control = tempfile::tempdir().expect("temp dir");
    let stop = control.path().join("stop");
    let child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "churn_child", "--nocapture", "--test-threads=1"])
        .env(CHURN_VAR, &stop)
        .env("FILE_CACHE_DIR", root.path())
        .env_remove("FILE_CACHE")
        .env_remove("FILE_CACHE_MAX_SIZE")
        .spawn()
        .expect("run the churning child");
    let mut churn = Churn { child, stop };

    let runs: usize = std::env::var(RUNS_VAR)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_RUNS);
    let commands: [&[&str]; 4] = [
        &["list"],
        &["list", "--json"],
        &["verify"],
        &["prune", "--older-than", "1d", "--max-size", "4KiB"],
    ];
    let mut failures = vec![Vec::new(); commands.len()];
    // Listings that found functions, and that found none: the churn was seen.
    let (mut full, mut empty) = (0, 0);
    let started = Instant::now();
    for _ in 0..runs {
        for (args, failed) in commands.iter().zip(&mut failures) {
            let output = run(root.path(), args);
            let mut json_ok = true;
            if args == &["list", "--json"] {
                match serde_json::from_slice::<serde_json::Value>(&output.stdout) {
                    Ok(json) if json["functions"].as_array().is_some_and(Vec::is_empty) => {
                        empty += 1
                    }
                    Ok(_) => full += 1,
                    Err(_) => json_ok = false,
                }
            }
            if !output.status.success() || !output.stderr.is_empty() || !json_ok {
                failed.push(format!(
                    "exit {:?}: {}",
                    output.status.code(),
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
        }
    }
    let elapsed = started.elapsed();
    assert!(
        churn.child.try_wait().expect("child status").is_none(),
        "the churning child ended early"
    );
    drop(churn);
    eprintln!(
        "{runs} runs of each of {} commands in {elapsed:?}; {full} listings found functions, \
         {empty} none",
        commands.len()
    );
    assert!(full > 0, "no listing saw a function: nothing raced");
    let report: Vec<String> = commands
        .iter()
        .zip(&failures)
        .filter(|(_, failed)| !failed.is_empty())
        .map(|(args, failed)| {
            format!(
                "`file-cache {}` failed {} of {runs} runs; first: {}",
                args.join(" "),
                failed.len(),
                failed[0]
            )
        })
        .collect();
    assert!(report.is_empty(), "{}", report.join("\n"));
}
