//! The compile errors of `#[file_cache]`: one mistake per file in `tests/ui/`, each pinned
//! with the `.stderr` a user sees. Regenerate with `TRYBUILD=overwrite` and read the diff.

#[test]
fn compile_errors() {
    trybuild::TestCases::new().compile_fail("ui/*.rs");
}

/// No compile error sends a user into the macro's hidden runtime module: rustc names the
/// traits and functions whose bounds fail by their shortest path, which is outside it.
#[test]
fn compile_errors_never_name_private_items() {
    for entry in std::fs::read_dir("ui").expect("tests/ui") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|ext| ext == "stderr") {
            let text = std::fs::read_to_string(&path).expect("stderr");
            assert!(!text.contains("__private"), "{}:\n{text}", path.display());
        }
    }
}
