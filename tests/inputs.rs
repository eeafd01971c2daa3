//! What a function reads besides its arguments: environment variables named in
//! `#[file_cache(env = [...])]` join the key, read at each call. Each case that changes the
//! environment runs in a child process, so no thread of this binary sees it change.

mod common;

use common::{child_role, init, marked_lines, run_child};
use file_cache::file_cache;
use std::sync::atomic::{AtomicUsize, Ordering};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache(env = ["FC_TEST_MODEL", "FC_TEST_UNSET"])]
fn answer(question: &str) -> String {
    RUNS.fetch_add(1, Ordering::SeqCst);
    let model = std::env::var("FC_TEST_MODEL").unwrap_or_default();
    format!("{model}: {question}")
}

/// In a child: one call of `answer` under the environment the parent gave, printing the
/// value and whether the body ran.
#[test]
fn child_answer() {
    init();
    if child_role().as_deref() != Some("env") {
        return;
    }
    let value = answer("why");
    println!("VALUE {value}");
    println!("RUNS {}", RUNS.load(Ordering::SeqCst));
}

fn answer_in(root: &std::path::Path, model: Option<&str>) -> (String, usize) {
    let mut envs = vec![("FILE_CACHE_DIR", root.to_str().unwrap())];
    if let Some(model) = model {
        envs.push(("FC_TEST_MODEL", model));
    }
    let output = run_child("child_answer", "env", &envs);
    let value = marked_lines(&output, "VALUE ").remove(0);
    let runs = marked_lines(&output, "RUNS ")[0].parse().unwrap();
    (value, runs)
}

#[test]
fn an_environment_variable_named_in_env_joins_the_key() {
    init();
    if child_role().is_some() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    assert_eq!(
        answer_in(root.path(), Some("a")),
        ("a: why".into(), 1),
        "a: miss"
    );
    assert_eq!(
        answer_in(root.path(), Some("b")),
        ("b: why".into(), 1),
        "b: miss"
    );
    assert_eq!(
        answer_in(root.path(), Some("a")),
        ("a: why".into(), 0),
        "back to a: the first entry"
    );
    assert_eq!(answer_in(root.path(), Some("b")), ("b: why".into(), 0));
    // Unset and set to nothing are two keys, each a miss once.
    assert_eq!(
        answer_in(root.path(), None),
        (": why".into(), 1),
        "unset: miss"
    );
    assert_eq!(
        answer_in(root.path(), Some("")),
        (": why".into(), 1),
        "empty: miss"
    );
    assert_eq!(
        answer_in(root.path(), None),
        (": why".into(), 0),
        "unset: hit"
    );
}
