//! The test harness of the binaries that start real servers (`harness = false`), declared by
//! each of them beside `remote_servers` as `mod harness`: each test
//! says which server it needs; when that server is not on the PATH, the test is reported as
//! ignored, and a note after the summary names the server and how to install it. With
//! `FILE_CACHE_TEST_SERVERS=require` (as `.ci/run` sets), a missing server fails the test.
//!
//! Arguments are the standard harness's (filters, `--exact`, `--list`, `--test-threads`,
//! `--nocapture`, `--format`...), parsed by `libtest-mimic`.

use crate::remote_servers::Kind;
use libtest_mimic::{Arguments, Completion, Failed, FormatSetting, Trial};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The environment variable that makes a missing server a failure (`require`) rather than
/// a skipped test (`skip`, the default).
pub const REQUIRE_VAR: &str = "FILE_CACHE_TEST_SERVERS";

/// One test: its name, the server it needs, its body.
pub struct Test {
    pub name: &'static str,
    pub needs: Option<Kind>,
    pub body: fn(),
}

/// The tests of a binary, each a function name, optionally followed by `: Redis` or `: S3`
/// for the server it needs (attributes such as `#[cfg(unix)]` go before the name):
/// `tests![child, redis_share: Redis, s3_share: S3]`.
macro_rules! tests {
    (@needs) => { None };
    (@needs $kind:ident) => { Some($crate::remote_servers::Kind::$kind) };
    ($($(#[$attr:meta])* $name:ident $(: $kind:ident)?),* $(,)?) => {
        vec![$(
            $(#[$attr])*
            $crate::harness::Test {
                name: stringify!($name),
                needs: $crate::harness::tests!(@needs $($kind)?),
                body: $name,
            }
        ),*]
    };
}
pub(crate) use tests;

const KINDS: [Kind; 2] = [Kind::Redis, Kind::S3];

/// How many tests found their server missing, per kind (`Kind as usize`).
static MISSING: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// Whether `program` is an executable file in one of the PATH's directories (what
/// `std::process::Command` will look for).
fn on_path(program: &str) -> bool {
    let Some(paths) = std::env::var_os("PATH") else {
        return false;
    };
    let file = format!("{program}{}", std::env::consts::EXE_SUFFIX);
    std::env::split_paths(&paths).any(|dir| executable(&dir.join(&file)))
}

#[cfg(unix)]
fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn executable(path: &Path) -> bool {
    path.is_file()
}

/// Whether a missing server fails its tests, from [`REQUIRE_VAR`].
fn required() -> bool {
    match std::env::var(REQUIRE_VAR).as_deref() {
        Ok("require") => true,
        Ok("skip") | Ok("") | Err(_) => false,
        Ok(other) => panic!("{REQUIRE_VAR}={other}: expected `require` or `skip`"),
    }
}

fn missing_message(kind: Kind) -> String {
    format!(
        "`{}` is not on the PATH; install it with `{}`",
        kind.program(),
        kind.install()
    )
}

fn trial(test: Test, require: bool) -> Trial {
    let Test { name, needs, body } = test;
    let Some(kind) = needs else {
        return Trial::test(name, move || {
            body();
            Ok(())
        });
    };
    Trial::ignorable_test(name, move || {
        if on_path(kind.program()) {
            body();
            return Ok(Completion::Completed);
        }
        MISSING[kind as usize].fetch_add(1, Ordering::SeqCst);
        if require {
            Err(Failed::from(format!(
                "{} ({REQUIRE_VAR}=require)",
                missing_message(kind)
            )))
        } else {
            Ok(Completion::ignored_with(format!(
                "needs `{}`",
                kind.program()
            )))
        }
    })
}

/// Runs `tests` as the standard harness would, then notes each missing server.
pub fn run(tests: Vec<Test>) -> ExitCode {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        // The standard harness's variable, which libtest-mimic does not read.
        args.test_threads = std::env::var("RUST_TEST_THREADS")
            .ok()
            .and_then(|n| n.parse().ok());
    }
    let require = required();
    let trials = tests.into_iter().map(|t| trial(t, require)).collect();
    let conclusion = libtest_mimic::run(&args, trials);

    let mut note = String::new();
    for kind in KINDS {
        let count = MISSING[kind as usize].load(Ordering::SeqCst);
        if count > 0 {
            let outcome = if require { "failed" } else { "ignored" };
            note.push_str(&format!(
                "note: {count} test(s) {outcome}: {}\n",
                missing_message(kind)
            ));
        }
    }
    if !note.is_empty() && !require {
        note.push_str(&format!(
            "note: with {REQUIRE_VAR}=require, a missing server fails its tests\n"
        ));
    }
    if !note.is_empty() {
        // After the summary; on stderr when stdout is JSON events for a tool to read.
        if matches!(args.format, Some(FormatSetting::Json)) {
            eprint!("{note}");
        } else {
            println!("{note}");
        }
    }
    conclusion.exit_code()
}
