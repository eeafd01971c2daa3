//! Small programs that use this workspace's `file_cache`, built with cargo and run against
//! one cache directory by the behaviour tests that need more than one build of a program
//! (`tests/invalidation.rs`, `tests/builds.rs`). Each program's sources live in a directory
//! beside this file.
//!
//! Every program is its own package (and workspace) under `CARGO_TARGET_TMPDIR`, with a path
//! dependency on `file_cache`; all share one target directory, so only the first build of
//! each profile compiles the dependencies. They build offline, from the dependencies this
//! workspace already fetched, with this workspace's lock file.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (this test package lives in its `tests/` folder).
const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// `name -> (ran, value)` from each line `name ran=<n> value=<debug>` a program printed.
pub type Report = BTreeMap<String, (u32, String)>;

/// One program: a package directory and the shared target directory.
pub struct Program {
    package: String,
    dir: PathBuf,
    target: PathBuf,
}

impl Program {
    /// A package named `package` depending on `file_cache` and `serde`; `manifest` is
    /// appended to its `Cargo.toml` after those dependencies (more dependencies, then any
    /// other section).
    pub fn new(package: &str, manifest: &str) -> Program {
        let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("programs");
        let dir = work.join(package);
        std::fs::create_dir_all(dir.join("src")).expect("program dir");
        let manifest = format!(
            r#"[package]
name = "{package}"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
file_cache = {{ path = {:?} }}
serde = {{ version = "1", features = ["derive"] }}
{manifest}
[workspace]
"#,
            file_cache_path()
        );
        std::fs::write(dir.join("Cargo.toml"), manifest).expect("manifest");
        std::fs::copy(Path::new(REPO).join("Cargo.lock"), dir.join("Cargo.lock"))
            .expect("lock file");
        Program {
            package: package.to_owned(),
            dir,
            target: work.join("target"),
        }
    }

    /// Writes `text` to `path` in the package (`src/main.rs`, `helpers/Cargo.toml`).
    pub fn write(&self, path: &str, text: &str) {
        let path = self.dir.join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("dir");
        std::fs::write(path, text).expect("write");
    }

    /// Copies `source`, under `tests/programs/`, to `path` in the package.
    pub fn copy(&self, source: &str, path: &str) {
        let sources = Path::new(REPO).join("tests/programs");
        let text = std::fs::read_to_string(sources.join(source)).expect("source");
        self.write(path, &text);
    }

    /// Runs `cargo build` with `args` (`--release`, `--features x`) and returns a copy of
    /// the binary named after `label`, which later builds do not overwrite.
    pub fn build(&self, args: &[&str], label: &str) -> PathBuf {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let output = Command::new(cargo)
            .args(["build", "--offline", "--quiet"])
            .args(args)
            .current_dir(&self.dir)
            .env("CARGO_TARGET_DIR", &self.target)
            .output()
            .expect("run cargo");
        assert!(
            output.status.success(),
            "building {label} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let profile = if args.contains(&"--release") {
            "release"
        } else {
            "debug"
        };
        let built = self.target.join(profile).join(&self.package);
        let copy = self.target.join(format!("{}-{label}", self.package));
        std::fs::copy(built, &copy).expect("copy the binary");
        copy
    }
}

impl Program {
    /// Runs `cargo <command> --offline` with `args` in the package (`clippy`, `check`) and
    /// returns whether it succeeded, with what it printed on stderr.
    pub fn cargo(&self, command: &str, args: &[&str]) -> (bool, String) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let output = Command::new(cargo)
            .args([command, "--offline"])
            .args(args)
            .current_dir(&self.dir)
            .env("CARGO_TARGET_DIR", &self.target)
            .env_remove("RUSTFLAGS")
            .output()
            .expect("run cargo");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

/// Where the programs and their shared target directory live.
pub fn work_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("programs")
}

/// The path of this workspace's `file_cache` crate, for a manifest.
pub fn file_cache_path() -> PathBuf {
    Path::new(REPO).join("file_cache")
}

/// Runs `binary` with `cache` as its root and reads its report.
pub fn run(binary: &Path, cache: &Path) -> Report {
    let output = Command::new(binary)
        .env("FILE_CACHE_DIR", cache)
        .env_remove("FILE_CACHE")
        .output()
        .expect("run the program");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let (name, rest) = line.split_once(" ran=").expect("a report line");
            let (ran, value) = rest.split_once(" value=").expect("a value");
            (
                name.to_owned(),
                (ran.parse().expect("runs"), value.to_owned()),
            )
        })
        .collect()
}
