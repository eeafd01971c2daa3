//! The `file-cache` binary, driven as a user would, on roots filled by real cached functions:
//! this test binary re-runs itself as a child process that calls them.

use file_cache::file_cache;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Set in the child process that fills a root.
const FILL_VAR: &str = "FILE_CACHE_CLI_TEST_FILL";

#[file_cache]
fn render(page: u32) -> String {
    std::thread::sleep(Duration::from_millis(20));
    format!("<h1>page {page}</h1>").repeat(200)
}

#[file_cache]
fn score(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(5));
    x * 7
}

/// Lives in a directory of its own under the root.
#[file_cache(dir = "embeddings")]
fn embed(text: &str) -> Vec<f32> {
    text.bytes().map(f32::from).collect()
}

/// Stored as MessagePack, the codec of values postcard cannot hold.
#[file_cache(codec = "msgpack")]
fn words(n: u32) -> Vec<String> {
    (0..n).map(|i| format!("word {i}")).collect()
}

/// Not a test of its own: the body of the child that fills a root with `words` entries.
#[test]
fn fill_msgpack_child() {
    if std::env::var_os(FILL_VAR).is_none() {
        return;
    }
    for n in 1..=3 {
        words(n);
    }
}

/// Not a test of its own: the body of the child that fills a root.
#[test]
fn fill_child() {
    if std::env::var_os(FILL_VAR).is_none() {
        return;
    }
    for page in 0..5 {
        render(page);
        render(page);
    }
    for x in 0..3 {
        score(x);
    }
    embed("hello");
}

/// Set in the child that fills a root with functions whose directory names once met.
const COLLIDE_VAR: &str = "FILE_CACHE_CLI_TEST_COLLIDE";

struct Holder<T>(std::marker::PhantomData<T>);

impl Holder<u8> {
    #[file_cache]
    fn get() -> u64 {
        8
    }
}

impl Holder<u64> {
    #[file_cache]
    fn get() -> u64 {
        64
    }
}

#[file_cache]
fn café(x: u64) -> u64 {
    x + 1
}

#[file_cache]
fn cafè(x: u64) -> u64 {
    x + 2
}

/// Not a test of its own: the body of the child that fills a root with functions that
/// sanitise to the same name (two impls' `get`, `café` and `cafè`).
#[test]
fn collide_child() {
    if std::env::var_os(COLLIDE_VAR).is_none() {
        return;
    }
    assert_eq!(Holder::<u8>::get(), 8);
    assert_eq!(Holder::<u64>::get(), 64);
    assert_eq!(café(1), 2);
    assert_eq!(cafè(1), 3);
}

/// A new root filled by the child: 5 entries of `render` (hit once each), 3 of `score`,
/// 1 of `embed` (in `<root>/embeddings`).
fn filled_root() -> tempfile::TempDir {
    root_filled_by("fill_child", FILL_VAR)
}

/// A new root filled by the child test `child`, which runs when `var` is set.
fn root_filled_by(child: &str, var: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("temp dir");
    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", child, "--nocapture", "--test-threads=1"])
        .env(var, "1")
        .env("FILE_CACHE_DIR", root.path())
        .env_remove("FILE_CACHE")
        .env_remove("FILE_CACHE_MAX_SIZE")
        .output()
        .expect("run the filling child");
    assert!(output.status.success(), "{output:?}");
    root
}

fn file_cache_cmd(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_file-cache"))
        .arg("--dir")
        .arg(root)
        .args(args)
        .env_remove("FILE_CACHE_DIR")
        .output()
        .expect("run file-cache")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn succeeds(output: Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        stdout(&output),
        String::from_utf8_lossy(&output.stderr)
    );
    // Not a terminal: no progress bar, nothing on stderr.
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    stdout(&output)
}

fn listing(root: &Path) -> serde_json::Value {
    let text = succeeds(file_cache_cmd(root, &["list", "--json"]));
    serde_json::from_str(&text).expect("list --json prints JSON")
}

fn function<'a>(listing: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    listing["functions"]
        .as_array()
        .expect("functions")
        .iter()
        .find(|f| f["function"] == name)
}

fn entries_of(root: &Path, function: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let dir = root.join(function.replace("::", "."));
    for shard in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if shard.path().is_dir() {
            for file in std::fs::read_dir(shard.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if !file.file_name().to_string_lossy().starts_with('.') {
                    out.push(file.path());
                }
            }
        }
    }
    out.sort();
    out
}

/// Rewrites header fields of an entry (and the header checksum), as another version of the
/// function or an older run would have written it. Returns the new file's path.
fn forge(path: &Path, code_hash: Option<[u8; 32]>, age: Option<Duration>) -> PathBuf {
    let mut bytes = std::fs::read(path).unwrap();
    let mut target = path.to_path_buf();
    if let Some(hash) = code_hash {
        bytes[44..76].copy_from_slice(&hash);
        // Another version computes another key: give it its own file.
        bytes[12] ^= 0xff;
        let hex: String = bytes[12..44].iter().map(|b| format!("{b:02x}")).collect();
        target = path.parent().unwrap().parent().unwrap().join(&hex[..2]);
        std::fs::create_dir_all(&target).unwrap();
        target = target.join(hex);
    }
    if let Some(age) = age {
        let ms = (SystemTime::now() - age)
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        bytes[92..100].copy_from_slice(&ms.to_le_bytes());
    }
    // Entry format 3: the type name's length at 148, the name from 150, then XXH3-128
    // of everything before it.
    let end = 150 + u16::from_le_bytes([bytes[148], bytes[149]]) as usize;
    let sum = xxhash_rust::xxh3::xxh3_128(&bytes[..end]);
    bytes[end..end + 16].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&target, bytes).unwrap();
    target
}

#[test]
fn list_shows_functions_largest_first_with_hits_and_time_saved() {
    let root = filled_root();
    let text = succeeds(file_cache_cmd(root.path(), &["list"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], root.path().display().to_string());
    assert!(lines[1].starts_with("FUNCTION"), "{text}");
    assert!(
        lines[2].starts_with("cli::render "),
        "largest first:\n{text}"
    );
    assert!(lines[3].starts_with("cli::score "), "{text}");
    assert!(lines[4].starts_with("cli::embed "), "{text}");
    assert!(lines[5].starts_with("total (3 functions)"), "{text}");
    let render_row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(render_row[1], "5", "{text}");

    let json = listing(root.path());
    let render = function(&json, "cli::render").expect("render listed");
    assert_eq!(render["entries"], 5);
    assert_eq!(render["hits"], 5);
    assert_eq!(render["stale_entries"], 0);
    // Each hit saved at least the 20 ms its entry took to compute.
    assert!(
        render["time_saved_secs"].as_f64().unwrap() >= 0.1,
        "{render}"
    );
    let on_disk: u64 = entries_of(root.path(), "cli::render")
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(render["bytes"], on_disk);
    let score = function(&json, "cli::score").expect("score listed");
    assert_eq!(
        (score["entries"].as_u64(), score["hits"].as_u64()),
        (Some(3), Some(0))
    );
    assert!(render["oldest"].as_u64() <= render["newest"].as_u64());
    let embed = function(&json, "cli::embed").expect("a function with its own dir is listed");
    assert_eq!(embed["dir"], "embeddings/cli.embed");
}

#[test]
fn list_says_when_the_root_is_read_only_here_and_clear_refuses_then() {
    let root = filled_root();
    let text = succeeds(file_cache_cmd(root.path(), &["list"]));
    assert!(!text.contains("read-only"), "{text}");
    assert_eq!(listing(root.path())["read_only"], serde_json::Value::Null);

    let read_only = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_file-cache"))
            .arg("--dir")
            .arg(root.path())
            .args(args)
            .env_remove("FILE_CACHE_DIR")
            .env("FILE_CACHE_READONLY", "1")
            .output()
            .expect("run file-cache")
    };
    let text = succeeds(read_only(&["list"]));
    assert!(
        text.lines()
            .last()
            .unwrap()
            .starts_with("read-only: FILE_CACHE_READONLY is set"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&succeeds(read_only(&["list", "--json"])))
        .expect("list --json prints JSON");
    assert_eq!(json["read_only"], "FILE_CACHE_READONLY is set");
    // Clearing a read-only root fails, saying why, and removes nothing.
    let entries = entries_of(root.path(), "cli::render").len();
    let output = read_only(&["clear"]);
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("FILE_CACHE_READONLY"), "{said}");
    assert_eq!(entries_of(root.path(), "cli::render").len(), entries);
}

#[test]
fn a_missing_root_is_an_empty_cache() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("never/created");
    let text = succeeds(file_cache_cmd(&missing, &["list"]));
    assert!(text.contains("total (0 functions)"), "{text}");
    assert_eq!(listing(&missing)["functions"], serde_json::json!([]));
    assert!(succeeds(file_cache_cmd(&missing, &["verify"])).contains("checked 0 entries"));
    assert!(succeeds(file_cache_cmd(&missing, &["clear"])).contains("removed 0 entries"));
    succeeds(file_cache_cmd(&missing, &["prune", "--stale"]));
    assert!(!missing.exists(), "looking creates nothing");
}

#[test]
fn the_root_comes_from_file_cache_dir_without_dir() {
    let root = filled_root();
    let output = Command::new(env!("CARGO_BIN_EXE_file-cache"))
        .args(["list", "--json"])
        .env("FILE_CACHE_DIR", root.path())
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&succeeds(output)).unwrap();
    assert!(function(&json, "cli::render").is_some());
}

#[test]
fn clear_removes_named_functions_or_everything() {
    let root = filled_root();
    let text = succeeds(file_cache_cmd(root.path(), &["clear", "cli::render"]));
    assert_eq!(text.trim(), "removed 5 entries");
    let json = listing(root.path());
    assert!(function(&json, "cli::render").is_none());
    assert!(function(&json, "cli::score").is_some());

    let output = file_cache_cmd(root.path(), &["clear", "cli::nothing"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no cached function `cli::nothing`"));

    // Directory names work too.
    assert_eq!(
        succeeds(file_cache_cmd(root.path(), &["clear", "cli.score"])).trim(),
        "removed 3 entries"
    );
    let root = filled_root();
    assert_eq!(
        succeeds(file_cache_cmd(root.path(), &["clear"])).trim(),
        "removed 9 entries"
    );
    assert_eq!(listing(root.path())["functions"], serde_json::json!([]));
}

#[test]
fn prune_stale_removes_entries_of_other_versions_only() {
    let root = filled_root();
    let current = entries_of(root.path(), "cli::render");
    let stale = forge(&current[0], Some([0xee; 32]), None);
    let json = listing(root.path());
    assert_eq!(function(&json, "cli::render").unwrap()["stale_entries"], 1);
    assert!(succeeds(file_cache_cmd(root.path(), &["list"])).contains("6 (1 stale)"));

    let dry = succeeds(file_cache_cmd(
        root.path(),
        &["prune", "--stale", "--dry-run"],
    ));
    assert!(
        dry.contains(&format!("would remove {} (stale)", stale.display())),
        "{dry}"
    );
    assert!(stale.exists());

    let text = succeeds(file_cache_cmd(root.path(), &["prune", "--stale"]));
    assert!(text.contains("removed 1 entries"), "{text}");
    assert!(!stale.exists());
    assert_eq!(entries_of(root.path(), "cli::render"), current);
}

#[test]
fn prune_older_than_goes_by_creation_time() {
    let root = filled_root();
    let entries = entries_of(root.path(), "cli::score");
    forge(&entries[0], None, Some(Duration::from_secs(3 * 86_400)));
    let text = succeeds(file_cache_cmd(
        root.path(),
        &["prune", "--older-than", "2d"],
    ));
    assert!(text.contains("removed 1 entries"), "{text}");
    assert!(!entries[0].exists() && entries[1].exists());
}

#[test]
fn prune_max_size_keeps_the_most_recently_used() {
    let root = filled_root();
    // `render`'s entries were last used an hour ago; `score`'s just now.
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for path in entries_of(root.path(), "cli::render") {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(hour_ago).unwrap();
    }
    let json = listing(root.path());
    let bytes = |name| function(&json, name).unwrap()["bytes"].as_u64().unwrap();
    // The size `list` shows is the size `prune` holds to: hit logs and version records
    // count in neither.
    let listed = bytes("cli::score") + bytes("cli::render") + bytes("cli::embed");
    let text = succeeds(file_cache_cmd(
        root.path(),
        &["prune", "--max-size", &listed.to_string()],
    ));
    assert!(text.contains("0 old, 0 stale, 0 over size"), "{text}");
    let max = bytes("cli::score") + bytes("cli::render") / 2;
    let text = succeeds(file_cache_cmd(
        root.path(),
        &["prune", "--max-size", &max.to_string()],
    ));
    assert!(text.contains("0 old, 0 stale, 3 over size"), "{text}");
    let json = listing(root.path());
    let left: u64 = json["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["bytes"].as_u64().unwrap())
        .sum();
    assert!(left <= max, "{left} left, max {max}");
    assert_eq!(function(&json, "cli::score").unwrap()["entries"], 3);
    assert_eq!(function(&json, "cli::render").unwrap()["entries"], 2);
}

#[test]
fn verify_removes_broken_entries_and_counts_them() {
    let root = filled_root();
    let render = entries_of(root.path(), "cli::render");
    let mut bytes = std::fs::read(&render[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1; // a flipped bit in the payload
    std::fs::write(&render[0], &bytes).unwrap();
    std::fs::write(&render[1], &bytes[..100]).unwrap(); // truncated
    let text = succeeds(file_cache_cmd(root.path(), &["verify"]));
    assert!(
        text.contains("checked 9 entries: 7 ok, 2 broken and removed"),
        "{text}"
    );
    assert!(text.contains("payload checksum mismatch"), "{text}");
    assert!(!render[0].exists() && !render[1].exists() && render[2].exists());
    let text = succeeds(file_cache_cmd(root.path(), &["verify"]));
    assert!(text.contains("checked 7 entries: 7 ok, 0 broken"), "{text}");
}

#[test]
fn verify_checks_messagepack_entries_alike() {
    let root = tempfile::tempdir().expect("temp dir");
    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "fill_msgpack_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FILL_VAR, "1")
        .env("FILE_CACHE_DIR", root.path())
        .env_remove("FILE_CACHE")
        .env_remove("FILE_CACHE_MAX_SIZE")
        .output()
        .expect("run the filling child");
    assert!(output.status.success(), "{output:?}");
    let words = entries_of(root.path(), "cli::words");
    assert_eq!(words.len(), 3);
    for file in &words {
        assert_eq!(
            std::fs::read(file).unwrap()[10],
            2,
            "the MessagePack codec id"
        );
    }
    let text = succeeds(file_cache_cmd(root.path(), &["verify"]));
    assert!(text.contains("checked 3 entries: 3 ok, 0 broken"), "{text}");
    let mut bytes = std::fs::read(&words[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&words[0], &bytes).unwrap();
    let text = succeeds(file_cache_cmd(root.path(), &["verify"]));
    assert!(
        text.contains("checked 3 entries: 2 ok, 1 broken and removed"),
        "{text}"
    );
    assert!(text.contains("payload checksum mismatch"), "{text}");
    assert!(!words[0].exists() && words[1].exists());
}

#[test]
fn usage_mistakes_exit_with_2() {
    let root = tempfile::tempdir().unwrap();
    for args in [
        &["prune"][..],
        &["prune", "--max-size", "lots"],
        &["prune", "--older-than", "soon"],
        &["frobnicate"],
    ] {
        let output = file_cache_cmd(root.path(), args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!output.stderr.is_empty());
    }
}

#[test]
fn functions_whose_names_sanitise_alike_are_listed_pruned_and_cleared_apart() {
    let root = root_filled_by("collide_child", COLLIDE_VAR);
    let json = listing(root.path());
    let functions = json["functions"].as_array().expect("functions");
    assert_eq!(functions.len(), 4, "{json:#}");
    for function in functions {
        assert_eq!(function["entries"], 1, "{function}");
        assert_eq!(function["stale_entries"], 0, "{function}");
    }
    // Each function's version record is its own: nothing is stale.
    let text = succeeds(file_cache_cmd(root.path(), &["prune", "--stale"]));
    assert!(text.contains("removed 0 entries"), "{text}");
    assert_eq!(listing(root.path())["functions"], json["functions"]);

    // Clearing one by its path leaves the function whose name sanitises alike.
    let text = succeeds(file_cache_cmd(root.path(), &["clear", "cli::café"]));
    assert_eq!(text.trim(), "removed 1 entries");
    let text = succeeds(file_cache_cmd(
        root.path(),
        &["clear", "cli::Holder<u64>::get"],
    ));
    assert_eq!(text.trim(), "removed 1 entries");
    let left: Vec<String> = listing(root.path())["functions"]
        .as_array()
        .expect("functions")
        .iter()
        .map(|f| f["dir"].as_str().expect("dir").to_owned())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert_eq!(
        left.iter().filter(|d| d.starts_with("cli.caf_-")).count(),
        1,
        "{left:?}"
    );
    assert_eq!(
        left.iter()
            .filter(|d| d.starts_with("cli.Holder.get-"))
            .count(),
        1,
        "{left:?}"
    );
    // The two left are cafè and Holder<u8>::get.
    for other in ["cli::cafè", "cli::Holder<u8>::get"] {
        let text = succeeds(file_cache_cmd(root.path(), &["clear", other]));
        assert_eq!(text.trim(), "removed 1 entries", "{other}");
    }
    assert_eq!(listing(root.path())["functions"], serde_json::json!([]));
}

#[test]
fn a_damaged_hit_log_is_skipped_with_one_warning() {
    let root = filled_root();
    let log = root.path().join("cli.render").join(".hits");
    assert!(log.exists(), "render was hit");
    // As `head -c 160 /dev/urandom > .hits` leaves it.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let garbage: Vec<u8> = (0..160)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(&log, &garbage).unwrap();
    for args in [&["list"][..], &["list", "--json"]] {
        let output = file_cache_cmd(root.path(), args);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let warnings: Vec<&str> = stderr.lines().collect();
        assert_eq!(warnings.len(), 1, "{args:?}: {stderr}");
        assert!(
            warnings[0].starts_with("file-cache: warning: the hit log of cli::render is damaged"),
            "{stderr}"
        );
        assert!(
            warnings[0].ends_with("its hits are not counted"),
            "{stderr}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_slice(&file_cache_cmd(root.path(), &["list", "--json"]).stdout).unwrap();
    let render = function(&json, "cli::render").expect("render listed");
    assert_eq!(
        (render["hits"].as_u64(), render["entries"].as_u64()),
        (Some(0), Some(5))
    );
    assert_eq!(render["time_saved_secs"].as_f64(), Some(0.0));
    let text = stdout(&file_cache_cmd(root.path(), &["list"]));
    let total = text
        .lines()
        .find(|line| line.starts_with("total ("))
        .unwrap();
    let total: Vec<&str> = total.split_whitespace().collect();
    assert_eq!(total[total.len() - 2], "0", "no hits counted:\n{text}");
    // Commands that do not show hits say nothing of it.
    succeeds(file_cache_cmd(root.path(), &["verify"]));
    succeeds(file_cache_cmd(root.path(), &["prune", "--stale"]));

    // Each damage alone, in a log the runtime compacted to its largest plausible record.
    let record = |hits: u64, saved_us: u64| {
        let mut bytes = hits.to_le_bytes().to_vec();
        bytes.extend_from_slice(&saved_us.to_le_bytes());
        bytes
    };
    let century_us = 36_525 * 86_400 * 1_000_000u64;
    std::fs::write(&log, record(1 << 53, century_us)).unwrap();
    let json = listing(root.path());
    assert_eq!(function(&json, "cli::render").unwrap()["hits"], 1u64 << 53);
    for damaged in [
        record(0, 0),
        record((1 << 53) + 1, 0),
        record(1, century_us + 1),
        record(u64::MAX, u64::MAX),
        record(3, 5)[..15].to_vec(),
    ] {
        std::fs::write(&log, &damaged).unwrap();
        let output = file_cache_cmd(root.path(), &["list"]);
        assert_eq!(output.status.code(), Some(0), "{damaged:?}: {output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stderr).lines().count(),
            1,
            "{damaged:?}: {output:?}"
        );
    }
}

/// The directories under `dir`, recursively.
fn dirs_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for item in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if item.file_type().unwrap().is_dir() {
            out.push(item.path());
            out.extend(dirs_under(&item.path()));
        }
    }
    out
}

/// Bytes of every file under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    for item in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = item.metadata().unwrap();
        total += if meta.is_dir() {
            bytes_under(&item.path())
        } else {
            meta.len()
        };
    }
    total
}

#[test]
fn clear_leaves_no_empty_directory_behind() {
    let root = filled_root();
    assert_eq!(
        succeeds(file_cache_cmd(root.path(), &["clear", "cli::embed"])).trim(),
        "removed 1 entries"
    );
    // `embed` lived in `<root>/embeddings`, which held nothing else.
    assert!(!root.path().join("embeddings").exists());
    assert!(function(&listing(root.path()), "cli::embed").is_none());
    assert_eq!(
        succeeds(file_cache_cmd(root.path(), &["clear"])).trim(),
        "removed 8 entries"
    );
    assert_eq!(dirs_under(root.path()), Vec::<PathBuf>::new());
}

#[test]
fn prune_and_verify_remove_the_shards_they_empty() {
    let root = filled_root();
    // An entry alone in its shard.
    let broken = entries_of(root.path(), "cli::score")
        .into_iter()
        .find(|entry| std::fs::read_dir(entry.parent().unwrap()).unwrap().count() == 1)
        .expect("an entry alone in its shard");
    std::fs::write(&broken, b"not an entry").unwrap();
    succeeds(file_cache_cmd(root.path(), &["verify"]));
    assert!(
        !broken.parent().unwrap().exists(),
        "verify emptied its shard"
    );

    let text = succeeds(file_cache_cmd(root.path(), &["prune", "--max-size", "0"]));
    assert!(text.contains("removed 8 entries"), "{text}");
    let shards: Vec<PathBuf> = dirs_under(root.path())
        .into_iter()
        .filter(|dir| dir.file_name().unwrap().len() == 2)
        .collect();
    assert_eq!(shards, Vec::<PathBuf>::new(), "pruning emptied every shard");
}

#[test]
fn list_accounts_for_every_byte_under_the_root_and_prune_bounds_its_entries() {
    let root = filled_root();
    let json = listing(root.path());
    let rows: u64 = json["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["bytes"].as_u64().unwrap())
        .sum();
    let entries = json["entry_bytes"].as_u64().expect("entry_bytes");
    let bookkeeping = json["bookkeeping_bytes"]
        .as_u64()
        .expect("bookkeeping_bytes");
    assert_eq!(entries, rows);
    assert!(bookkeeping > 0, "version records and a hit log: {json}");
    assert_eq!(entries + bookkeeping, bytes_under(root.path()));

    let text = succeeds(file_cache_cmd(root.path(), &["list"]));
    let last = text.lines().last().unwrap();
    assert!(last.starts_with("bookkeeping (not entries)"), "{text}");

    // What `--help` promises: the bound is on the entries' bytes, as `list` totals them.
    let help = succeeds(file_cache_cmd(root.path(), &["prune", "--help"]));
    assert!(help.contains("the SIZE column `list` shows"), "{help}");
    let text = succeeds(file_cache_cmd(
        root.path(),
        &["prune", "--max-size", &entries.to_string()],
    ));
    assert!(text.contains("removed 0 entries"), "{text}");
    let text = succeeds(file_cache_cmd(
        root.path(),
        &["prune", "--max-size", &(entries - 1).to_string()],
    ));
    assert!(text.contains("removed 1 entries"), "{text}");
}

/// `--older-than` takes exactly the durations `#[file_cache(ttl = "...")]` takes: the
/// table both parsers are tested against.
#[test]
fn older_than_takes_the_durations_ttl_takes() {
    let root = tempfile::tempdir().unwrap();
    let table = include_str!("../../file_cache_macros/src/durations.txt");
    for line in table.lines().filter(|line| !line.starts_with('#')) {
        let (input, expected) = line.rsplit_once('|').unwrap();
        let output = file_cache_cmd(
            root.path(),
            &["prune", &format!("--older-than={input}"), "--dry-run"],
        );
        if expected == "error" {
            assert_eq!(output.status.code(), Some(2), "{input:?} accepted");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                stderr.contains("units are w (weeks), d (days), h, m and s"),
                "{input:?}: {stderr}"
            );
        } else {
            succeeds(output);
        }
    }
}

/// Set in the child that fills a root with an entry that records a dependency: the file.
const DEPENDENCY_VAR: &str = "FILE_CACHE_CLI_TEST_DEPENDENCY";

#[file_cache]
fn configured(name: &str) -> String {
    let config = std::env::var_os(DEPENDENCY_VAR).expect("set by the parent");
    file_cache::depends_on(&config);
    format!("{name}: {}", std::fs::read_to_string(&config).unwrap())
}

/// Not a test of its own: the body of the child that stores `configured` entries.
#[test]
fn fill_dependency_child() {
    if std::env::var_os(DEPENDENCY_VAR).is_none() {
        return;
    }
    configured("a");
    configured("b");
}

#[test]
fn list_json_shows_the_files_an_entry_depends_on() {
    let root = tempfile::tempdir().unwrap();
    let inputs = tempfile::tempdir().unwrap();
    let config = inputs.path().join("model.toml");
    std::fs::write(&config, "temperature = 0.2").unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "fill_dependency_child", "--nocapture"])
        .env(DEPENDENCY_VAR, &config)
        .env("FILE_CACHE_DIR", root.path())
        .env_remove("FILE_CACHE")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let json = listing(root.path());
    let configured = function(&json, "cli::configured").expect("configured listed");
    let entries = configured["dependencies"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{configured}");
    for entry in entries {
        assert_eq!(entry["key"].as_str().unwrap().len(), 64, "{entry}");
        let files = entry["files"].as_array().unwrap();
        assert_eq!(files.len(), 1, "{entry}");
        assert_eq!(files[0]["path"], config.display().to_string());
        assert_eq!(files[0]["digest"].as_str().unwrap().len(), 64);
    }
    let render = function(&listing(filled_root().path()), "cli::render")
        .unwrap()
        .clone();
    assert_eq!(render["dependencies"], serde_json::json!([]));
}
