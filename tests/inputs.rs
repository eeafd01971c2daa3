//! What a function reads besides its arguments: files and directory trees named by the
//! parameters in `#[file_cache(files = [...])]` join the key by their contents, and
//! environment variables named in `env = [...]` by their values, read at each call. Each
//! case that changes the environment runs in a child process, so no thread of this binary
//! sees it change.

mod common;

use common::{child_role, init, marked_lines, run_child};
use file_cache::file_cache;
use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

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

static SUMMARIES: AtomicUsize = AtomicUsize::new(0);

/// A file's length and first byte: a file edited in place keeping its size and mtime
/// summarizes alike by metadata, not by contents.
#[file_cache(files = [path])]
fn summarize(path: &Path) -> Option<(u64, u8)> {
    SUMMARIES.fetch_add(1, Ordering::SeqCst);
    let bytes = fs::read(path).ok()?;
    Some((bytes.len() as u64, *bytes.first()?))
}

fn summarize_counted(path: &Path) -> (Option<(u64, u8)>, usize) {
    let before = SUMMARIES.load(Ordering::SeqCst);
    let value = summarize(path);
    (value, SUMMARIES.load(Ordering::SeqCst) - before)
}

fn set_mtime(path: &Path, mtime: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

#[test]
fn a_file_is_keyed_by_its_bytes_not_its_metadata() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.txt");
    fs::write(&path, b"alpha").unwrap();
    assert_eq!(
        summarize_counted(&path),
        (Some((5, b'a')), 1),
        "first: miss"
    );
    assert_eq!(summarize_counted(&path), (Some((5, b'a')), 0), "again: hit");

    // Touched, bytes unchanged: a hit.
    set_mtime(&path, SystemTime::now() + Duration::from_secs(3600));
    assert_eq!(
        summarize_counted(&path),
        (Some((5, b'a')), 0),
        "touched: hit"
    );

    // Edited to the same size, its mtime put back: a miss all the same.
    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    fs::write(&path, b"omega").unwrap();
    set_mtime(&path, mtime);
    assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), mtime);
    assert_eq!(
        summarize_counted(&path),
        (Some((5, b'o')), 1),
        "edited: miss"
    );
    assert_eq!(summarize_counted(&path), (Some((5, b'o')), 0));

    // The same bytes at another path: the path is part of the key too.
    let other = dir.path().join("copy.txt");
    fs::copy(&path, &other).unwrap();
    assert_eq!(
        summarize_counted(&other),
        (Some((5, b'o')), 1),
        "another path: miss"
    );
}

#[test]
fn a_missing_path_is_keyed_as_missing() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("later.txt");
    assert_eq!(summarize_counted(&path), (None, 1));
    assert_eq!(summarize_counted(&path), (None, 0), "still missing: hit");
    fs::write(&path, b"now").unwrap();
    assert_eq!(
        summarize_counted(&path),
        (Some((3, b'n')), 1),
        "created: miss"
    );
    fs::remove_file(&path).unwrap();
    assert_eq!(
        summarize_counted(&path),
        (None, 0),
        "missing again: the first entry"
    );
}

static INDEXES: AtomicUsize = AtomicUsize::new(0);

/// Counts the files of a tree (a repository to index, say).
#[file_cache(files = [root])]
fn index(root: PathBuf) -> usize {
    INDEXES.fetch_add(1, Ordering::SeqCst);
    fn count(dir: &Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_dir() {
                    count(&entry.path())
                } else {
                    1
                }
            })
            .sum()
    }
    count(&root)
}

fn index_runs(root: &Path) -> usize {
    let before = INDEXES.load(Ordering::SeqCst);
    index(root.to_path_buf());
    INDEXES.load(Ordering::SeqCst) - before
}

#[test]
fn a_directory_is_keyed_by_its_whole_tree() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let deep = root.join("src/a/b/c");
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("lib.rs"), b"fn main() {}").unwrap();
    fs::write(root.join("README"), b"hello").unwrap();
    assert_eq!(index_runs(&root), 1);
    assert_eq!(index_runs(&root), 0, "unchanged: hit");

    fs::write(deep.join("new.rs"), b"").unwrap();
    assert_eq!(index_runs(&root), 1, "a file added deep in the tree: miss");
    assert_eq!(index_runs(&root), 0);
    fs::rename(deep.join("new.rs"), deep.join("old.rs")).unwrap();
    assert_eq!(index_runs(&root), 1, "renamed: miss");
    fs::remove_file(deep.join("old.rs")).unwrap();
    assert_eq!(
        index_runs(&root),
        0,
        "removed: the tree of the first call again"
    );
    fs::write(deep.join("lib.rs"), b"fn main() {1}").unwrap();
    assert_eq!(index_runs(&root), 1, "a file edited deep in the tree: miss");
    std::os::unix::fs::symlink("../README", deep.join("link")).unwrap();
    assert_eq!(index_runs(&root), 1, "a link added: miss");
    fs::remove_file(deep.join("link")).unwrap();
    std::os::unix::fs::symlink("../../README", deep.join("link")).unwrap();
    assert_eq!(index_runs(&root), 1, "a link's target changed: miss");
    // Touching a file (mtime only) changes nothing.
    set_mtime(
        &deep.join("lib.rs"),
        SystemTime::now() + Duration::from_secs(60),
    );
    assert_eq!(index_runs(&root), 0, "touched: hit");
}

static MANY: AtomicUsize = AtomicUsize::new(0);

/// Every form `files` takes: `&str`, `String`, `Option`, a slice and a `Vec`, and a
/// generic `AsRef<Path>`.
#[file_cache(files = [a, b, c, d, e, f])]
fn many<P: AsRef<Path> + serde::Serialize>(
    a: &str,
    b: String,
    c: Option<PathBuf>,
    d: &[&Path],
    e: Vec<String>,
    f: P,
) -> usize {
    MANY.fetch_add(1, Ordering::SeqCst);
    let _ = (a, b, c, d, e, f.as_ref());
    0
}

#[test]
fn every_path_form_is_keyed_by_contents() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = (0..6).map(|i| dir.path().join(format!("{i}"))).collect();
    for path in &paths {
        fs::write(path, b"x").unwrap();
    }
    let text = |i: usize| paths[i].to_str().unwrap().to_owned();
    let call = || {
        let before = MANY.load(Ordering::SeqCst);
        many(
            &text(0),
            text(1),
            Some(paths[2].clone()),
            &[paths[3].as_path()],
            vec![text(4)],
            paths[5].as_path(),
        );
        MANY.load(Ordering::SeqCst) - before
    };
    assert_eq!(call(), 1);
    assert_eq!(call(), 0);
    for (i, path) in paths.iter().enumerate() {
        fs::write(path, format!("changed {i}")).unwrap();
        assert_eq!(call(), 1, "parameter {i} changed: miss");
        assert_eq!(call(), 0);
    }
}

/// In a child: one call of `summarize` on the file the parent names, printing how many
/// files this process hashed.
#[test]
fn child_summarize() {
    init();
    if child_role().as_deref() != Some("index") {
        return;
    }
    let path = PathBuf::from(std::env::var_os("FC_TEST_INPUT").unwrap());
    let (value, runs) = summarize_counted(&path);
    println!("VALUE {value:?}");
    println!("RUNS {runs}");
    println!("HASHED {}", file_cache::__private::files_hashed());
}

/// A file hashed settled by one process is trusted by the next through the root's index,
/// without a read; once it changes, it is hashed again.
#[test]
fn a_fresh_process_trusts_the_persisted_digest() {
    init();
    if child_role().is_some() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    fs::write(&input, b"settled").unwrap();
    // Setup, not an assertion: the index keeps only files whose last change is 2 s old.
    std::thread::sleep(Duration::from_millis(2100));
    let run = || {
        let output = run_child(
            "child_summarize",
            "index",
            &[
                ("FILE_CACHE_DIR", root.path().to_str().unwrap()),
                ("FC_TEST_INPUT", input.to_str().unwrap()),
            ],
        );
        let field = |name: &str| marked_lines(&output, name)[0].parse::<usize>().unwrap();
        (field("RUNS "), field("HASHED "))
    };
    assert_eq!(run(), (1, 1), "first process: a miss, the file hashed");
    assert!(root.path().join(".inputs-index").exists());
    assert_eq!(run(), (0, 0), "next process: a hit, nothing read to key it");
    fs::write(&input, b"SETTLED").unwrap();
    assert_eq!(run(), (1, 1), "changed: hashed again, a miss");
    assert_eq!(
        run(),
        (0, 1),
        "young: hashed on every call until it settles, a hit"
    );
}

static LOADS: AtomicUsize = AtomicUsize::new(0);

struct Loader {
    prefix: String,
}

impl serde::Serialize for Loader {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.prefix.serialize(serializer)
    }
}

impl Loader {
    /// A method and an async fn take `files` as a free function does.
    #[file_cache(files = [path])]
    fn load(&self, path: &Path) -> String {
        LOADS.fetch_add(1, Ordering::SeqCst);
        format!(
            "{}{}",
            self.prefix,
            fs::read_to_string(path).unwrap_or_default()
        )
    }

    #[file_cache(files = [path])]
    async fn load_async(&self, path: PathBuf) -> String {
        LOADS.fetch_add(1, Ordering::SeqCst);
        format!(
            "{}{}",
            self.prefix,
            fs::read_to_string(path).unwrap_or_default()
        )
    }
}

#[test]
fn methods_and_async_fns_key_files_by_contents() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    fs::write(&path, "one").unwrap();
    let loader = Loader {
        prefix: "> ".into(),
    };
    let loads = || LOADS.load(Ordering::SeqCst);
    let both = || {
        let sync = loader.load(&path);
        let not_sync = pollster::block_on(loader.load_async(path.clone()));
        assert_eq!(sync, not_sync);
        sync
    };
    assert_eq!(both(), "> one");
    let after_first = loads();
    assert_eq!(both(), "> one");
    assert_eq!(
        loads(),
        after_first,
        "unchanged: both hit (memory tier included)"
    );
    fs::write(&path, "two").unwrap();
    assert_eq!(both(), "> two", "edited while the process runs: both miss");
    assert_eq!(loads(), after_first + 2);
}

static PROBED: AtomicUsize = AtomicUsize::new(0);

#[file_cache(files = [path])]
fn probed(path: &Path) -> usize {
    PROBED.fetch_add(1, Ordering::SeqCst);
    fs::read(path).map_or(0, |bytes| bytes.len())
}

/// `is_cached` builds the key as a call does, so it answers for what the file holds now.
#[test]
fn is_cached_sees_a_file_edited_since() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input");
    fs::write(&path, b"one").unwrap();
    assert!(!file_cache::is_cached(|| probed(&path)));
    probed(&path);
    assert!(file_cache::is_cached(|| probed(&path)));
    fs::write(&path, b"two").unwrap();
    assert!(
        !file_cache::is_cached(|| probed(&path)),
        "edited: not cached"
    );
    assert_eq!(PROBED.load(Ordering::SeqCst), 1, "is_cached runs no body");
}

static SETTINGS_READS: AtomicUsize = AtomicUsize::new(0);

/// A body that reads a configuration file it is not handed as an argument.
#[file_cache]
fn configured(name: &str, config: &Path) -> String {
    file_cache::depends_on(config);
    SETTINGS_READS.fetch_add(1, Ordering::SeqCst);
    let settings = fs::read_to_string(config).unwrap_or_else(|_| "none".into());
    format!("{name} with {settings}")
}

fn configured_counted(name: &str, config: &Path) -> (String, usize) {
    let before = SETTINGS_READS.load(Ordering::SeqCst);
    let value = configured(name, config);
    (value, SETTINGS_READS.load(Ordering::SeqCst) - before)
}

#[test]
fn a_file_the_body_declares_it_reads_is_checked_on_every_hit() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("model.toml");
    fs::write(&config, "temperature 1").unwrap();
    let first = "a with temperature 1".to_owned();
    assert_eq!(configured_counted("a", &config), (first.clone(), 1));
    assert_eq!(
        configured_counted("a", &config),
        (first.clone(), 0),
        "untouched: a hit (from memory)"
    );
    set_mtime(&config, SystemTime::now() + Duration::from_secs(60));
    assert_eq!(
        configured_counted("a", &config),
        (first.clone(), 0),
        "touched, same bytes: a hit"
    );
    // Edited to the same size, its mtime put back: the memory tier re-checks it too.
    let mtime = fs::metadata(&config).unwrap().modified().unwrap();
    fs::write(&config, "temperature 2").unwrap();
    set_mtime(&config, mtime);
    assert_eq!(
        configured_counted("a", &config),
        ("a with temperature 2".into(), 1),
        "edited: a miss"
    );
    assert_eq!(
        configured_counted("a", &config),
        ("a with temperature 2".into(), 0)
    );
    fs::remove_file(&config).unwrap();
    assert_eq!(
        configured_counted("a", &config),
        ("a with none".into(), 1),
        "removed: a miss"
    );
    // One entry per key: the miss replaced it, and it now records the file as missing.
    fs::write(&config, "temperature 2").unwrap();
    assert_eq!(
        configured_counted("a", &config),
        ("a with temperature 2".into(), 1),
        "created again: a miss"
    );
    // The entry records the dependency, as the tools list it.
    let listed = file_cache::inspect::functions(file_cache::cache_dir())
        .unwrap()
        .into_iter()
        .filter(|function| function.name.ends_with("configured"))
        .flat_map(|function| function.entries().unwrap())
        .filter_map(|entry| entry.read_header().unwrap().ok())
        .flat_map(|info| info.dependencies)
        .any(|dependency| dependency.path == config);
    assert!(listed, "the entry lists {}", config.display());
}

#[test]
fn child_configured() {
    init();
    if child_role().as_deref() != Some("configured") {
        return;
    }
    let config = PathBuf::from(std::env::var_os("FC_TEST_INPUT").unwrap());
    let (value, runs) = configured_counted("fresh", &config);
    println!("VALUE {value}");
    println!("RUNS {runs}");
}

/// A fresh process finds the dependency in the entry file and checks it there.
#[test]
fn a_fresh_process_checks_the_dependencies_an_entry_recorded() {
    init();
    if child_role().is_some() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    fs::write(&config, "one").unwrap();
    let run = || {
        let output = run_child(
            "child_configured",
            "configured",
            &[
                ("FILE_CACHE_DIR", root.path().to_str().unwrap()),
                ("FC_TEST_INPUT", config.to_str().unwrap()),
            ],
        );
        let value = marked_lines(&output, "VALUE ").remove(0);
        let runs = marked_lines(&output, "RUNS ")[0].parse::<usize>().unwrap();
        (value, runs)
    };
    assert_eq!(run(), ("fresh with one".into(), 1));
    assert_eq!(run(), ("fresh with one".into(), 0), "untouched: a hit");
    fs::write(&config, "two").unwrap();
    assert_eq!(run(), ("fresh with two".into(), 1), "edited: a miss");
    assert_eq!(run(), ("fresh with two".into(), 0));
}

static INNER_RUNS: AtomicUsize = AtomicUsize::new(0);
static OUTER_RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn inner_reads(config: &Path) -> String {
    file_cache::depends_on(config);
    INNER_RUNS.fetch_add(1, Ordering::SeqCst);
    fs::read_to_string(config).unwrap_or_default()
}

#[file_cache]
fn outer_calls(config: &Path, suffix: &str) -> String {
    OUTER_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{}{suffix}", inner_reads(config))
}

#[file_cache]
fn outer_summarizes(path: &Path) -> String {
    OUTER_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{:?}", summarize(path))
}

fn runs() -> (usize, usize) {
    (
        OUTER_RUNS.load(Ordering::SeqCst),
        INNER_RUNS.load(Ordering::SeqCst),
    )
}

/// An outer entry is made from its inner calls' values, so it depends on what they read:
/// whether the inner call ran or hit, and whether it declared the file or took it in
/// `files = [...]`.
#[test]
fn an_outer_entry_is_invalidated_by_a_file_an_inner_call_read() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    fs::write(&config, "v1").unwrap();

    // The inner call first, alone: stored. Then the outer: its body hits the inner entry.
    assert_eq!(inner_reads(&config), "v1");
    let (outer, inner) = runs();
    assert_eq!(outer_calls(&config, "!"), "v1!");
    assert_eq!(runs(), (outer + 1, inner), "the inner call hit");
    assert_eq!(outer_calls(&config, "!"), "v1!");
    assert_eq!(runs(), (outer + 1, inner), "the outer call hit");
    fs::write(&config, "v2").unwrap();
    assert_eq!(
        outer_calls(&config, "!"),
        "v2!",
        "the inner call's file changed: the outer misses"
    );
    assert_eq!(runs(), (outer + 2, inner + 1));

    // Both run the first time: the outer records what the inner recorded.
    assert_eq!(outer_calls(&config, "?"), "v2?");
    assert_eq!(outer_calls(&config, "?"), "v2?");
    fs::write(&config, "v3").unwrap();
    assert_eq!(outer_calls(&config, "?"), "v3?");

    // An inner `files = [...]` parameter counts as well.
    let input = dir.path().join("input");
    fs::write(&input, "abc").unwrap();
    assert_eq!(outer_summarizes(&input), "Some((3, 97))");
    let (outer, _) = runs();
    assert_eq!(outer_summarizes(&input), "Some((3, 97))");
    assert_eq!(runs().0, outer, "unchanged: the outer hit");
    fs::write(&input, "xbc").unwrap();
    assert_eq!(outer_summarizes(&input), "Some((3, 120))");
    assert_eq!(
        runs().0,
        outer + 1,
        "the inner's file changed: the outer misses"
    );
}

static VECTOR_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A vector of numbers (read straight into memory when its entry has no dependencies).
#[file_cache]
fn weights(config: &Path) -> Vec<f64> {
    file_cache::depends_on(config);
    VECTOR_RUNS.fetch_add(1, Ordering::SeqCst);
    let scale = fs::read(config).map_or(0, |bytes| bytes.len()) as f64;
    (0..20_000).map(|i| i as f64 * scale).collect()
}

#[file_cache(memory = false)]
fn weights_from_disk(config: &Path) -> Vec<f64> {
    weights(config)
}

#[test]
fn async_bodies_and_vectors_of_numbers_record_dependencies_too() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("scale");
    fs::write(&config, "xx").unwrap();
    let runs = || VECTOR_RUNS.load(Ordering::SeqCst);
    let before = runs();
    assert_eq!(weights_from_disk(&config)[1], 2.0);
    assert_eq!(weights_from_disk(&config)[1], 2.0);
    assert_eq!(runs(), before + 1, "a hit from the file");
    fs::write(&config, "xxx").unwrap();
    assert_eq!(weights_from_disk(&config)[1], 3.0, "edited: a miss");

    let loader = AsyncLoader;
    let path = dir.path().join("async-config");
    fs::write(&path, "one").unwrap();
    let before = ASYNC_RUNS.load(Ordering::SeqCst);
    assert_eq!(pollster::block_on(loader.load(path.clone())), "one");
    assert_eq!(pollster::block_on(loader.load(path.clone())), "one");
    assert_eq!(ASYNC_RUNS.load(Ordering::SeqCst), before + 1);
    fs::write(dir.path().join("after-await"), "later").unwrap();
    assert_eq!(pollster::block_on(loader.load(path.clone())), "one");
    assert_eq!(
        ASYNC_RUNS.load(Ordering::SeqCst),
        before + 2,
        "a file declared after an await point is a dependency"
    );
    fs::write(&path, "two").unwrap();
    assert_eq!(pollster::block_on(loader.load(path.clone())), "two");
    assert!(
        file_cache::is_cached(|| weights(&config)),
        "is_cached re-checks dependencies"
    );
    fs::write(&config, "x").unwrap();
    assert!(!file_cache::is_cached(|| weights(&config)));
}

static ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

struct AsyncLoader;

impl serde::Serialize for AsyncLoader {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_unit()
    }
}

impl AsyncLoader {
    #[file_cache]
    async fn load(&self, path: PathBuf) -> String {
        file_cache::depends_on(&path);
        ASYNC_RUNS.fetch_add(1, Ordering::SeqCst);
        Yield(false).await;
        file_cache::depends_on(path.with_file_name("after-await"));
        fs::read_to_string(&path).unwrap_or_default()
    }
}

/// Returns `Pending` once, so the body is polled twice.
struct Yield(bool);

impl std::future::Future for Yield {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            std::task::Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
}

#[file_cache(files = [path])]
async fn length_of(path: PathBuf) -> u64 {
    fs::metadata(&path).map_or(0, |meta| meta.len())
}

/// A waker that counts its wakes.
struct Counted(AtomicUsize);

impl std::task::Wake for Counted {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Reading a large file the process has not seen since it changed is handed to another
/// thread, which wakes the task when the digest is ready; a small file is hashed where it
/// is asked for.
#[test]
fn an_async_fn_reads_a_large_changed_file_off_the_polling_thread() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    fs::write(&path, vec![7u8; 4 << 20]).unwrap();
    let counted = std::sync::Arc::new(Counted(AtomicUsize::new(0)));
    let waker = std::task::Waker::from(counted.clone());
    let mut context = std::task::Context::from_waker(&waker);
    let future = length_of(path.clone());
    fn assert_send<T: Send>(_: &T) {}
    assert_send(&future);
    let mut future = std::pin::pin!(future);
    if future.as_mut().poll(&mut context).is_pending() {
        // Waits for the wake (the deadline only keeps a lost wake from hanging the test).
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while counted.0.load(Ordering::SeqCst) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the task was never woken"
            );
            std::thread::yield_now();
        }
        assert_eq!(
            future.as_mut().poll(&mut context),
            std::task::Poll::Ready(4 << 20)
        );
    }
    // (Ready at once too when the other thread was done before the first poll ended.)
    let handed = |path: &Path| {
        common::logged(
            log::Level::Debug,
            &format!("{} on a thread", path.display()),
        )
    };
    assert_eq!(handed(&path).len(), 1, "read on a thread of its own");

    let small = dir.path().join("small");
    fs::write(&small, b"abc").unwrap();
    let mut future = std::pin::pin!(length_of(small.clone()));
    assert_eq!(
        future.as_mut().poll(&mut context),
        std::task::Poll::Ready(3),
        "a small file: the first poll is the whole call"
    );
    assert!(handed(&small).is_empty());
}
