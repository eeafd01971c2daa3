//! The generated code is warning-free: a program using every form of `#[file_cache]`
//! (`tests/programs/strict/`), with `#![deny(warnings)]` and `#![deny(clippy::pedantic)]`,
//! builds under clippy without one warning, one-line bodies included.

#[path = "programs/program.rs"]
mod program;

use program::Program;

#[test]
fn generated_code_passes_deny_warnings_and_clippy_pedantic() {
    let program = Program::new("strict", "");
    program.copy("strict/main.rs", "src/main.rs");
    let (has_clippy, _) = program.cargo("clippy", &["--version"]);
    // Clippy is a rustup component: without it, rustc's own warnings are still denied.
    let command = if has_clippy { "clippy" } else { "check" };
    let (ok, stderr) = program.cargo(command, &["--quiet", "--all-targets"]);
    assert!(ok, "cargo {command} failed:\n{stderr}");
    assert!(
        !stderr.contains("warning"),
        "cargo {command} warned:\n{stderr}"
    );
    // And it runs.
    let binary = program.build(&[], "strict");
    let output = std::process::Command::new(binary)
        .env("FILE_CACHE_DIR", program::work_dir().join("strict-cache"))
        .output()
        .expect("run");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "[9, 3, 7, 4, 2, 2, 1, 2, 3] 1 A 2 1 Ok(3) [0, 1, 0] [2, 4]"
    );
}
