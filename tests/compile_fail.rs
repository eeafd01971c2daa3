//! The compile errors of `#[file_cache]`: one mistake per file in `tests/ui/`, each pinned
//! with the `.stderr` a user sees. Regenerate with `TRYBUILD=overwrite` and read the diff.

#[test]
fn compile_errors() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
