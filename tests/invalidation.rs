//! What invalidates an entry across two builds of one program: `tests/programs/invalidation/`
//! holds version 1 and version 2 of a program and of a library crate it uses (v2 is v1 after
//! everyday edits, each marked `EDIT`). Both are built with cargo as the same crates, run one
//! after the other against one cache directory, and what each cached call did is compared
//! (see `tests/programs/program.rs` for how they are built).

#[path = "programs/program.rs"]
mod program;

use program::{file_cache_path, run, Program};

/// The program, with the library crate beside it, at `version` (`v1`, `v2`).
fn build(program: &Program, version: &str) -> std::path::PathBuf {
    program.copy(&format!("invalidation/{version}.rs"), "src/main.rs");
    program.copy(
        &format!("invalidation/helpers_{version}.rs"),
        "helpers/src/lib.rs",
    );
    program.build(&[], version)
}

#[test]
fn edits_between_two_builds_invalidate_exactly_what_they_should() {
    let program = Program::new("program", "helpers = { path = \"helpers\" }\n");
    program.write(
        "helpers/Cargo.toml",
        &format!(
            r#"[package]
name = "helpers"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
file_cache = {{ path = {:?} }}
"#,
            file_cache_path()
        ),
    );
    let v1 = build(&program, "v1");
    let v2 = build(&program, "v2");
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
        // Tracked consts and statics changed value: their dependents miss; those naming
        // only unchanged ones (one in another crate) hit.
        ("scaled", 1, "15"),
        ("greeted", 1, "\"hi, you\""),
        ("steady", 0, "11"),
        ("bonus", 1, "20"),
        // An ignored closure edited in place is the same type: the stored value stays, as
        // the README says; it was keyed the same in every run and both builds.
        ("closure", 0, "6"),
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
