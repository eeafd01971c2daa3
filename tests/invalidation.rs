//! What invalidates an entry across two builds of one program: `tests/programs/invalidation/`
//! holds version 1 and version 2 of a program and of a library crate it uses (v2 is v1 after
//! everyday edits, each marked `EDIT`). Both are built with cargo as the same crates, run one
//! after the other against one cache directory, and what each cached call did is compared.
//!
//! The build shares a target directory under `CARGO_TARGET_TMPDIR` between runs of this test,
//! so only the first run compiles the dependencies; it builds offline, from the dependencies
//! this workspace already fetched, with this workspace's lock file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// `name -> (ran, value)` from each line `name ran=<n> value=<debug>`.
type Report = BTreeMap<String, (u32, String)>;

struct Program {
    dir: PathBuf,
    target: PathBuf,
}

impl Program {
    fn new(name: &str) -> Program {
        let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        let dir = work.join("crate");
        std::fs::create_dir_all(dir.join("src")).expect("program dir");
        std::fs::create_dir_all(dir.join("helpers/src")).expect("library dir");
        let repo = Path::new(REPO);
        let manifest = format!(
            r#"[package]
name = "program"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
file_cache = {{ path = {:?} }}
helpers = {{ path = "helpers" }}
serde = {{ version = "1", features = ["derive"] }}

[workspace]
"#,
            repo.join("file_cache")
        );
        std::fs::write(dir.join("Cargo.toml"), manifest).expect("manifest");
        let library = format!(
            r#"[package]
name = "helpers"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
file_cache = {{ path = {:?} }}
"#,
            repo.join("file_cache")
        );
        std::fs::write(dir.join("helpers/Cargo.toml"), library).expect("library manifest");
        std::fs::copy(repo.join("Cargo.lock"), dir.join("Cargo.lock")).expect("lock file");
        Program {
            dir,
            target: work.join("target"),
        }
    }

    /// Builds version `version` (`v1`, `v2`) and returns the binary's path.
    fn build(&self, version: &str) -> PathBuf {
        let sources = Path::new(REPO).join("tests/programs/invalidation");
        for (source, to) in [
            (format!("{version}.rs"), "src/main.rs"),
            (format!("helpers_{version}.rs"), "helpers/src/lib.rs"),
        ] {
            let text = std::fs::read_to_string(sources.join(source)).expect("source");
            std::fs::write(self.dir.join(to), text).expect("write source");
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let output = Command::new(cargo)
            .args(["build", "--offline", "--quiet"])
            .current_dir(&self.dir)
            .env("CARGO_TARGET_DIR", &self.target)
            .output()
            .expect("run cargo");
        assert!(
            output.status.success(),
            "building {version} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let built = self.target.join("debug").join("program");
        let copy = self.target.join(format!("program-{version}"));
        std::fs::copy(built, &copy).expect("copy the binary");
        copy
    }
}

fn run(binary: &Path, cache: &Path) -> Report {
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

#[test]
fn edits_between_two_builds_invalidate_exactly_what_they_should() {
    let program = Program::new("invalidation");
    let v1 = program.build("v1");
    let v2 = program.build("v2");
    let cache = tempfile::tempdir().expect("cache dir");

    let first = run(&v1, cache.path());
    assert!(first.values().all(|(ran, _)| *ran == 1), "{first:#?}");
    let again = run(&v1, cache.path());
    assert!(again.values().all(|(ran, _)| *ran == 0), "{again:#?}");
    assert_eq!(
        first.values().map(|(_, v)| v).collect::<Vec<_>>(),
        again.values().map(|(_, v)| v).collect::<Vec<_>>()
    );

    let second = run(&v2, cache.path());
    let expected: &[(&str, u32, &str)] = &[
        // The return type's layout changed: a miss, and the new value, never the old bytes
        // decoded into the new layout.
        ("reordered", 1, "Reordered { id: 7, score: 0.5 }"),
        ("retyped", 1, "Retyped { score: 0.5, id: 7 }"),
        ("renamed", 1, "Renamed { score: 0.5, ident: 7 }"),
        ("kind", 1, "Number(7)"),
        (
            "outer",
            1,
            r#"Outer { name: "x", inner: Inner { a: 1, b: 300 } }"#,
        ),
        // The same type, reformatted, in a reformatted function: still a hit.
        (
            "stable",
            0,
            r#"Stable { label: "same", values: [(1, Some(-1)), (2, None)] }"#,
        ),
        // An argument's type changed: another key.
        ("by_query", 1, "12"),
        // A helper that is not tracked changed: nothing notices (the README says so).
        ("untracked", 0, "2"),
        // Tracked items changed: their dependents miss, transitively (`summarize` names
        // `rank`, unchanged, which names `tokenize`), through `Self::`, a type's path, in
        // another crate, and for a tracked type whose layout did not change.
        ("summarize", 1, "30"),
        ("scored", 1, "11"),
        ("best", 1, "16"),
        ("configured", 1, "4"),
        ("normalized", 1, "\"MIXED\""),
        // `version = "1"` became `"2"`.
        ("versioned", 1, "5"),
    ];
    for (name, ran, value) in expected {
        assert_eq!(
            second.get(*name),
            Some(&(*ran, (*value).to_owned())),
            "{name}: {second:#?}"
        );
    }
    assert_eq!(second.len(), expected.len(), "{second:#?}");
    // And version 2's entries hit from now on.
    let again = run(&v2, cache.path());
    assert!(again.values().all(|(ran, _)| *ran == 0), "{again:#?}");
}
