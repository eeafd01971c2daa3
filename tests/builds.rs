//! How a function was compiled is part of its key: one program (`tests/programs/builds/`),
//! built in debug and in release and with a cargo feature on and off, run in turn against one
//! cache directory (as `cargo run` and `cargo run --release` share the default root). Each
//! build reads only what a build like it stored, never another build's values.

#[path = "programs/program.rs"]
mod program;

use program::{run, Program, Report};

/// `(name, body runs, value)` of every line a run printed.
fn check(report: &Report, expected: &[(&str, u32, &str)], run: &str) {
    for (name, ran, value) in expected {
        assert_eq!(
            report.get(*name),
            Some(&(*ran, (*value).to_owned())),
            "{run}: {name}: {report:#?}"
        );
    }
    assert_eq!(report.len(), expected.len(), "{run}: {report:#?}");
}

/// What each build's functions return: the same source, different bodies.
fn values(build: &str) -> [(&'static str, &'static str); 5] {
    let (profile, asserted, overflow) = match build {
        "release" => ("\"release\"", "\"unchecked\"", "\"wrapped to 0\""),
        _ => ("\"debug\"", "\"checked\"", "\"panicked\""),
    };
    let feature = match build {
        "extra" => "\"extra\"",
        _ => "\"plain\"",
    };
    [
        ("profile", profile),
        ("asserted", asserted),
        ("overflow", overflow),
        ("feature", feature),
        ("attribute", feature),
    ]
}

/// Every function of `build`, with its value and whether its body ran (`hit` lists the
/// functions that read a stored value).
fn expect(build: &str, ran: u32) -> Vec<(&'static str, u32, &'static str)> {
    values(build)
        .into_iter()
        .map(|(name, value)| (name, ran, value))
        .collect()
}

#[test]
fn debug_release_and_feature_builds_never_share_entries() {
    let program = Program::new(
        "builds",
        r#"
[features]
extra = []

# What tells a release build from a debug one here is its debug assertions and overflow
# checks; optimizing would only make the test's build of the dependencies slower.
[profile.release]
opt-level = 0
"#,
    );
    program.copy("builds/main.rs", "src/main.rs");
    let debug = program.build(&[], "debug");
    let extra = program.build(&["--features", "extra"], "extra");
    let release = program.build(&["--release"], "release");
    let cache = tempfile::tempdir().expect("cache dir");

    check(&run(&debug, cache.path()), &expect("debug", 1), "debug");
    // Release misses everything: `cfg!(debug_assertions)` is in every key.
    check(
        &run(&release, cache.path()),
        &expect("release", 1),
        "release",
    );
    // And debug's entries were not replaced by release's.
    check(
        &run(&debug, cache.path()),
        &expect("debug", 0),
        "debug again",
    );

    // The feature changes only the functions whose tokens test it.
    let mut with_feature = expect("extra", 0);
    for (name, ran, _) in &mut with_feature {
        if ["feature", "attribute"].contains(name) {
            *ran = 1;
        }
    }
    check(&run(&extra, cache.path()), &with_feature, "extra");

    // Every build now reads its own values.
    check(
        &run(&release, cache.path()),
        &expect("release", 0),
        "release again",
    );
    check(
        &run(&extra, cache.path()),
        &expect("extra", 0),
        "extra again",
    );
    check(
        &run(&debug, cache.path()),
        &expect("debug", 0),
        "debug last",
    );
}
