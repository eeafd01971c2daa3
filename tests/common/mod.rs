//! Helpers shared by the behaviour tests: a private cache root per test binary, a log
//! recorder, and re-running this test binary as a child process.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, Once, OnceLock};

/// Env var set in a child process: the name of the part the child plays.
pub const CHILD_VAR: &str = "FILE_CACHE_TEST_CHILD";

/// Points `FILE_CACHE_DIR` at a fresh directory for this test binary and installs the log
/// recorder. A child process started by [`run_child`] keeps the environment its parent
/// gave it. Call first in every test; returns the root in effect.
pub fn init() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        if child_role().is_none() {
            let dir = tempfile::tempdir().expect("temp dir").keep();
            std::env::set_var("FILE_CACHE_DIR", &dir);
        }
        install_logger();
        file_cache::cache_dir().to_path_buf()
    })
}

/// The part this process plays, when it was started by [`run_child`].
pub fn child_role() -> Option<String> {
    std::env::var(CHILD_VAR).ok()
}

/// Runs one test of this same binary in a new process with extra environment variables.
/// `role` is what [`child_role`] returns there.
pub fn run_child(test: &str, role: &str, envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, role)
        .env_remove("FILE_CACHE")
        .env("RUST_LOG", "debug");
    for (name, value) in envs {
        command.env(name, value);
    }
    let output = command.output().expect("spawn test binary");
    assert!(
        output.status.success(),
        "child {test}/{role} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// What follows `marker` on each line a child printed with it. (The test harness may print
/// `test name ... ` before the first line of a test's output, so the marker is searched.)
pub fn marked_lines(output: &Output, marker: &str) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            line.find(marker)
                .map(|at| line[at + marker.len()..].to_owned())
        })
        .collect()
}

/// Every log record of this process, as `(level, message)`.
static RECORDS: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

struct Recorder;

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let message = record.args().to_string();
        if std::env::var_os(CHILD_VAR).is_some() {
            // Children report their log on stdout, for the parent to read.
            println!("LOG {} {message}", record.level());
        }
        RECORDS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((record.level(), message));
    }

    fn flush(&self) {}
}

fn install_logger() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        log::set_logger(&Recorder).expect("no other logger");
        log::set_max_level(log::LevelFilter::Debug);
    });
}

/// Log records at `level` whose message contains `needle`.
pub fn logged(level: log::Level, needle: &str) -> Vec<String> {
    RECORDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(l, m)| *l == level && m.contains(needle))
        .map(|(_, m)| m.clone())
        .collect()
}

/// Every entry file under `dir` (recursively), temporary files excluded.
pub fn entry_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(read) = std::fs::read_dir(dir) else {
        return out;
    };
    for item in read.flatten() {
        let path = item.path();
        if path.is_dir() {
            out.extend(entry_files(&path));
        } else if !item.file_name().to_string_lossy().starts_with('.') {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The directory of one cached function under the root.
pub fn function_dir(root: &Path, module_path: &str, name: &str) -> PathBuf {
    root.join(format!("{}.{name}", module_path.replace("::", ".")))
}
