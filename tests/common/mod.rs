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

/// A child started by [`spawn_child`], still running; its stdout is read line by line.
pub struct Running {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every line read so far.
    pub seen: Vec<String>,
}

/// Starts one test of this binary in a new process, like [`run_child`], without waiting.
pub fn spawn_child(test: &str, role: &str, envs: &[(&str, &str)]) -> Running {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, role)
        .env_remove("FILE_CACHE")
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    for (name, value) in envs {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("spawn test binary");
    let stdout = child.stdout.take().expect("piped stdout");
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    Running {
        child,
        lines,
        seen: Vec::new(),
    }
}

/// Generous bound on any wait for a child: reached only if something hangs.
const HANG: std::time::Duration = std::time::Duration::from_secs(300);

impl Running {
    /// Reads the child's output until a line contains `needle`; false if it ended first.
    pub fn wait_for(&mut self, needle: &str) -> bool {
        if self.seen.iter().any(|line| line.contains(needle)) {
            return true;
        }
        while let Ok(line) = self.lines.recv_timeout(HANG) {
            let found = line.contains(needle);
            self.seen.push(line);
            if found {
                return true;
            }
        }
        false
    }

    /// Kills the child with `SIGKILL` and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the child to end successfully; returns every line it printed.
    pub fn finish(mut self) -> Vec<String> {
        while let Ok(line) = self.lines.recv_timeout(HANG) {
            self.seen.push(line);
        }
        let status = self.child.wait().expect("wait for child");
        assert!(status.success(), "child failed:\n{}", self.seen.join("\n"));
        self.seen
    }
}

/// What follows `marker` on each of `lines` that has it.
pub fn marked(lines: &[String], marker: &str) -> Vec<String> {
    lines
        .iter()
        .filter_map(|line| {
            line.find(marker)
                .map(|at| line[at + marker.len()..].to_owned())
        })
        .collect()
}

/// Every file under `dir` (recursively) whose name satisfies `keep`.
pub fn files_named(dir: &Path, keep: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(read) = std::fs::read_dir(dir) else {
        return out;
    };
    for item in read.flatten() {
        let path = item.path();
        if path.is_dir() {
            out.extend(files_named(&path, keep));
        } else if keep(&item.file_name().to_string_lossy()) {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Lock files (`.<key>.lock`) under `dir`.
pub fn lock_files(dir: &Path) -> Vec<PathBuf> {
    files_named(dir, &|name| {
        name.starts_with('.') && name.ends_with(".lock")
    })
}

/// Temporary files (`.<key>.<pid>-<n>.tmp`) under `dir`.
pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
    files_named(dir, &|name| name.starts_with('.') && name.ends_with(".tmp"))
}

/// Bytes of every file under `dir`, recursively (links counted as themselves; a missing
/// directory is empty).
pub fn root_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|read| {
            read.flatten()
                .map(|item| match item.file_type() {
                    Ok(kind) if kind.is_dir() => root_size(&item.path()),
                    _ => item.metadata().map_or(0, |m| m.len()),
                })
                .sum()
        })
        .unwrap_or(0)
}
