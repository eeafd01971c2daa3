//! Living with a cache from a program: expiry, counters, clearing, and asking whether a call
//! is cached.

mod common;

use common::{entry_files, function_dir, init};
use file_cache::file_cache;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn runs(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

/// Rewrites the creation time in an entry's header (and its checksum), as if it had been
/// written `age` ago.
fn age_entry(path: &std::path::Path, age: Duration) {
    stamp_entry(path, SystemTime::now() - age);
}

/// Rewrites the creation time in an entry's header (and its checksum) to `created`.
fn stamp_entry(path: &std::path::Path, created: SystemTime) {
    let mut bytes = std::fs::read(path).unwrap();
    let ms = created.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    bytes[92..100].copy_from_slice(&ms.to_le_bytes());
    let name_len = u16::from_le_bytes([bytes[148], bytes[149]]) as usize;
    let end = 150 + name_len;
    // The header checksum (entry format 3): XXH3-128 of the header, little-endian.
    let sum = xxhash_rust::xxh3::xxh3_128(&bytes[..end]);
    bytes[end..end + 16].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

static FRESH_RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache(ttl = "1h")]
fn fresh(x: u64) -> u64 {
    FRESH_RUNS.fetch_add(1, Ordering::SeqCst);
    x + 1
}

#[test]
fn an_entry_older_than_its_ttl_is_a_miss_and_is_replaced() {
    let root = init();
    assert_eq!(fresh(1), 2);
    assert_eq!(fresh(1), 2);
    assert_eq!(runs(&FRESH_RUNS), 1, "young entry: a hit");
    let dir = function_dir(root, module_path!(), "fresh");
    let files = entry_files(&dir);
    assert_eq!(files.len(), 1);
    age_entry(&files[0], Duration::from_secs(59 * 60));
    assert_eq!(fresh(1), 2);
    assert_eq!(runs(&FRESH_RUNS), 1, "59 minutes old, ttl 1h: still a hit");
    assert!(file_cache::is_cached(|| fresh(1)));
    age_entry(&files[0], Duration::from_secs(61 * 60));
    assert!(
        !file_cache::is_cached(|| fresh(1)),
        "expired entries are not cached"
    );
    assert_eq!(fresh(1), 2);
    assert_eq!(runs(&FRESH_RUNS), 2, "61 minutes old: a miss");
    let info = file_cache::inspect::parse_entry(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert!(
        info.created > SystemTime::now() - Duration::from_secs(60),
        "the entry was replaced"
    );
    assert_eq!(fresh(1), 2);
    assert_eq!(runs(&FRESH_RUNS), 2, "the replacement hits");
}

static SKEWED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache(ttl = "1h", memory = false)]
fn skewed(x: u64) -> u64 {
    SKEWED_RUNS.fetch_add(1, Ordering::SeqCst);
    x + 2
}

fn misses_of(function: &str) -> u64 {
    file_cache::stats()
        .into_iter()
        .find(|s| s.function.ends_with(function))
        .map_or(0, |s| s.misses)
}

#[test]
fn an_entry_created_in_the_future_is_expired_not_fresh() {
    let root = init();
    assert_eq!(skewed(1), 3);
    let files = entry_files(&function_dir(root, module_path!(), "skewed"));
    assert_eq!(files.len(), 1);
    // A clock a second ahead (within the tolerance): still fresh.
    stamp_entry(&files[0], SystemTime::now() + Duration::from_secs(1));
    assert_eq!(skewed(1), 3);
    assert_eq!(runs(&SKEWED_RUNS), 1, "a second ahead: a hit");
    // Written by a machine whose clock is 50 minutes ahead: with a 1h ttl, its own reading
    // of the age would keep it fresh for 1h50.
    stamp_entry(&files[0], SystemTime::now() + Duration::from_secs(50 * 60));
    assert!(!file_cache::is_cached(|| skewed(1)));
    let misses = misses_of("::skewed");
    assert_eq!(skewed(1), 3);
    assert_eq!(
        runs(&SKEWED_RUNS),
        2,
        "created in the future: expired, a miss"
    );
    assert_eq!(misses_of("::skewed"), misses + 1, "counted as a miss");
    assert_eq!(skewed(1), 3);
    assert_eq!(runs(&SKEWED_RUNS), 2, "the replacement, stamped now, hits");
}

static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn slow(x: u64) -> Vec<u64> {
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(30));
    vec![x; 100]
}

#[test]
fn counters_know_hits_misses_bytes_and_the_time_saved() {
    let root = init();
    slow(1);
    slow(1);
    slow(1);
    slow(2);
    let stats = file_cache::stats();
    let slow_stats = stats
        .iter()
        .find(|s| s.function == format!("{}::slow", module_path!()))
        .expect("slow was counted");
    assert_eq!((slow_stats.hits, slow_stats.misses), (2, 2));
    let dir = function_dir(root, module_path!(), "slow");
    let sizes: u64 = entry_files(&dir)
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert_eq!(slow_stats.bytes_written, sizes);
    // Both entries have the same size; the two hits read the first one twice.
    assert_eq!(slow_stats.bytes_read, sizes);
    // Each hit saved what the body took when it was stored: at least the 30 ms sleep.
    assert!(
        slow_stats.time_saved >= Duration::from_millis(60),
        "{slow_stats:?}"
    );
    let entry =
        file_cache::inspect::parse_entry(&std::fs::read(&entry_files(&dir)[0]).unwrap()).unwrap();
    assert!(entry.compute_time >= Duration::from_millis(30));
}

static CLEARED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn cleared(x: u64) -> u64 {
    CLEARED_RUNS.fetch_add(1, Ordering::SeqCst);
    x
}

#[file_cache]
fn kept(x: u64) -> u64 {
    x
}

#[test]
fn clearing_one_function_leaves_the_others() {
    let root = init();
    cleared(1);
    cleared(2);
    kept(1);
    assert!(
        file_cache::is_cached(|| cleared(1))
            && file_cache::is_cached(|| cleared(2))
            && file_cache::is_cached(|| kept(1))
    );
    let removed = file_cache::clear(&format!("{}::cleared", module_path!())).unwrap();
    assert_eq!(removed, 2);
    assert!(!function_dir(root, module_path!(), "cleared").exists());
    assert!(!file_cache::is_cached(|| cleared(1)));
    assert!(file_cache::is_cached(|| kept(1)));
    cleared(1);
    assert_eq!(runs(&CLEARED_RUNS), 3, "a cleared call runs again");
    assert_eq!(file_cache::clear("no::such::function").unwrap(), 0);
}

static PROBED_RUNS: AtomicUsize = AtomicUsize::new(0);

struct Logger;

#[file_cache(ignore = [logger])]
fn probed<T: serde::Serialize>(label: &str, value: T, logger: &Logger) -> Result<String, String> {
    let _ = logger;
    PROBED_RUNS.fetch_add(1, Ordering::SeqCst);
    if label.is_empty() {
        return Err("no label".into());
    }
    let _ = value;
    Ok(format!("{label}!"))
}

#[test]
fn is_cached_takes_the_same_arguments_and_runs_nothing() {
    init();
    assert!(!file_cache::is_cached(|| probed("a", 1u8, &Logger)));
    assert_eq!(runs(&PROBED_RUNS), 0, "asking runs nothing");
    probed("a", 1u8, &Logger).unwrap();
    assert!(file_cache::is_cached(|| probed("a", 1u8, &Logger)));
    assert!(
        !file_cache::is_cached(|| probed("a", 1u16, &Logger)),
        "another type, another entry"
    );
    assert!(!file_cache::is_cached(|| probed("b", 1u8, &Logger)));
    probed("", 1u8, &Logger).unwrap_err();
    assert!(
        !file_cache::is_cached(|| probed("", 1u8, &Logger)),
        "errors are not stored"
    );
    assert_eq!(runs(&PROBED_RUNS), 2);
}

#[test]
fn clearing_everything() {
    // In a child process, so that clearing does not race the other tests' entries.
    if common::child_role().is_none() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().to_str().unwrap();
        common::run_child("clearing_everything", "clear", &[("FILE_CACHE_DIR", dir)]);
        assert!(common::entry_files(root.path()).is_empty());
        return;
    }
    init();
    kept(7);
    cleared(7);
    assert!(file_cache::clear_all().unwrap() >= 2);
    assert!(!file_cache::is_cached(|| kept(7)) && !file_cache::is_cached(|| cleared(7)));
}

static SHAPE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[derive(serde::Serialize)]
struct Square(f64);

trait Shape {
    fn area(&self) -> f64;
    fn name() -> String;
}

impl Shape for Square {
    #[file_cache]
    fn area(&self) -> f64 {
        SHAPE_RUNS.fetch_add(1, Ordering::SeqCst);
        self.0 * self.0
    }

    #[file_cache]
    fn name() -> String {
        SHAPE_RUNS.fetch_add(1, Ordering::SeqCst);
        "square".into()
    }
}

#[file_cache]
async fn fetch(id: u32) -> String {
    SHAPE_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("item {id}")
}

#[test]
fn is_cached_asks_methods_trait_impls_and_async_fns_alike() {
    init();
    let square = Square(3.0);
    assert!(!file_cache::is_cached(|| square.area()));
    assert!(!file_cache::is_cached(Square::name));
    assert!(!file_cache::is_cached_async(|| fetch(1)));
    assert_eq!(runs(&SHAPE_RUNS), 0, "asking ran nothing");
    assert_eq!(square.area(), 9.0);
    assert_eq!(Square::name(), "square");
    assert_eq!(pollster::block_on(fetch(1)), "item 1");
    assert!(file_cache::is_cached(|| square.area()));
    assert!(!file_cache::is_cached(|| Square(4.0).area()));
    assert!(file_cache::is_cached(Square::name));
    assert!(file_cache::is_cached_async(|| fetch(1)));
    assert!(!file_cache::is_cached_async(|| fetch(2)));
    assert_eq!(runs(&SHAPE_RUNS), 3);
    // A closure that calls no cached function runs, and the answer is no.
    assert!(!file_cache::is_cached(|| 1 + 1));
    // A real panic on the way to the call is the caller's.
    let panicked = std::panic::catch_unwind(|| file_cache::is_cached(|| -> u64 { panic!("boom") }));
    assert!(panicked.is_err());
    // After all that, calls run normally.
    assert_eq!(square.area(), 9.0);
}

static HELD_RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn held(x: u64) -> u64 {
    HELD_RUNS.fetch_add(1, Ordering::SeqCst);
    x * 3
}

#[test]
fn is_cached_answers_what_the_next_call_does_memory_tier_included() {
    let root = init();
    assert!(!file_cache::is_cached(|| held(2)));
    assert_eq!(held(2), 6);
    // Another process clears the function: its files go, this process's memory keeps the
    // value, and the next call here is answered from memory.
    for file in entry_files(&function_dir(root, module_path!(), "held")) {
        std::fs::remove_file(file).unwrap();
    }
    let answer = file_cache::is_cached(|| held(2));
    assert_eq!(held(2), 6);
    let ran = runs(&HELD_RUNS) > 1;
    assert_eq!(
        answer, !ran,
        "is_cached said {answer}, and the body ran: {ran}"
    );
}

static STORED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn stored(x: u64) -> Vec<u64> {
    STORED_RUNS.fetch_add(1, Ordering::SeqCst);
    vec![x; 64]
}

/// Env var: a file whose existence tells the writing child to stop.
const STOP_VAR: &str = "TEST_STOP_FILE";

#[test]
fn clearing_while_another_process_stores() {
    match common::child_role().as_deref() {
        // The test: a clearing child on a root of its own (clearing the test binary's root
        // would race the other tests), which starts a writing child on the same root.
        None => {
            let root = tempfile::tempdir().unwrap();
            let dir = root.path().to_str().unwrap();
            let output = common::run_child(
                "clearing_while_another_process_stores",
                "clearer",
                &[("FILE_CACHE_DIR", dir)],
            );
            assert_eq!(common::marked_lines(&output, "DONE").len(), 1);
        }
        Some("clearer") => {
            init();
            let stop = tempfile::tempdir().unwrap().keep().join("stop");
            let mut writer = common::spawn_child(
                "clearing_while_another_process_stores",
                "writer",
                &[(STOP_VAR, stop.to_str().unwrap())],
            );
            assert!(writer.wait_for("WRITING"));
            // Clears until a hundred entries were removed from under the writer.
            let (mut clears, mut removed) = (0, 0);
            for round in 0.. {
                if removed >= 100 {
                    break;
                }
                let cleared = if round % 2 == 0 {
                    file_cache::clear_all()
                } else {
                    file_cache::clear(&format!("{}::stored", module_path!()))
                };
                match cleared {
                    Ok(n) => removed += n,
                    Err(error) => panic!("clear {round} failed: {error}"),
                }
                clears += 1;
            }
            std::fs::write(&stop, b"").unwrap();
            let lines = writer.finish();
            let warnings = common::marked(&lines, "LOG WARN ");
            assert!(warnings.is_empty(), "the writer warned: {warnings:?}");
            let writes: u64 = common::marked(&lines, "WRITES ")[0].parse().unwrap();
            assert!(writes >= removed, "{removed} removed, {writes} written");
            println!("DONE {clears} clears removed {removed} of {writes} writes");
        }
        Some("writer") => {
            init();
            let stop = std::path::PathBuf::from(std::env::var(STOP_VAR).unwrap());
            let mut x = 0;
            while !stop.exists() {
                assert_eq!(stored(x), vec![x; 64]);
                if x == 0 {
                    println!("WRITING");
                }
                x += 1;
            }
            println!("WRITES {}", runs(&STORED_RUNS));
        }
        Some(other) => panic!("unknown role {other}"),
    }
}
