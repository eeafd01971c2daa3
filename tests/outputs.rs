//! `&mut` parameters the cache replays: keyed by their value on entry, stored with the
//! result on exit, and written back on a hit, so a caller sees what the body would have done
//! (in this process and in another).

mod common;

use file_cache::file_cache;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};

static FILLS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn fill(n: u32, out: &mut Vec<u32>) {
    FILLS.fetch_add(1, Ordering::SeqCst);
    out.extend(0..n);
}

fn filled(n: u32) -> Vec<u32> {
    let mut out = Vec::new();
    fill(n, &mut out);
    out
}

#[test]
fn an_output_is_the_same_on_a_miss_and_on_a_hit() {
    common::init();
    let before = FILLS.load(Ordering::SeqCst);
    assert_eq!(filled(4), [0, 1, 2, 3]);
    assert_eq!(filled(4), [0, 1, 2, 3]);
    assert_eq!(
        FILLS.load(Ordering::SeqCst) - before,
        1,
        "the second call is a hit"
    );
}

#[test]
fn an_output_is_written_back_in_another_process() {
    let root = common::init();
    if common::child_role().is_some() {
        println!("OUT {:?}", filled(5));
        println!("RAN {}", FILLS.load(Ordering::SeqCst));
        return;
    }
    let root = root.to_str().expect("utf-8 root");
    let env = [("FILE_CACHE_DIR", root)];
    let test = "an_output_is_written_back_in_another_process";
    let first = common::run_child(test, "first", &env);
    let second = common::run_child(test, "second", &env);
    for output in [&first, &second] {
        assert_eq!(common::marked_lines(output, "OUT "), ["[0, 1, 2, 3, 4]"]);
    }
    assert_eq!(common::marked_lines(&first, "RAN "), ["1"]);
    assert_eq!(common::marked_lines(&second, "RAN "), ["0"], "a hit");
}

static APPENDS: AtomicUsize = AtomicUsize::new(0);

/// Appends to what the caller passes and returns how long it became.
#[file_cache]
fn append(word: &str, out: &mut String, count: &mut u32) -> usize {
    APPENDS.fetch_add(1, Ordering::SeqCst);
    out.push_str(word);
    *count += 1;
    out.len()
}

#[test]
fn initial_contents_are_part_of_the_key() {
    common::init();
    let before = APPENDS.load(Ordering::SeqCst);
    let call = |start: &str, count: u32| {
        let (mut out, mut count) = (start.to_owned(), count);
        let len = append("!", &mut out, &mut count);
        (len, out, count)
    };
    assert_eq!(call("a", 0), (2, "a!".to_owned(), 1));
    assert_eq!(
        call("bb", 0),
        (3, "bb!".to_owned(), 1),
        "other contents: computed"
    );
    assert_eq!(
        call("a", 5),
        (2, "a!".to_owned(), 6),
        "another count: computed"
    );
    assert_eq!(APPENDS.load(Ordering::SeqCst) - before, 3);
    assert_eq!(call("bb", 0), (3, "bb!".to_owned(), 1));
    assert_eq!(call("a", 5), (2, "a!".to_owned(), 6));
    assert_eq!(APPENDS.load(Ordering::SeqCst) - before, 3, "hits");
}

static SCALES: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn scale(by: u8, values: &mut [u8]) -> u32 {
    SCALES.fetch_add(1, Ordering::SeqCst);
    for value in values.iter_mut() {
        *value *= by;
    }
    values.iter().map(|&v| u32::from(v)).sum()
}

#[test]
fn a_slice_is_written_back_element_by_element() {
    common::init();
    let before = SCALES.load(Ordering::SeqCst);
    for _ in 0..2 {
        let mut values = [1, 2, 3];
        assert_eq!(scale(2, &mut values), 12);
        assert_eq!(values, [2, 4, 6]);
    }
    assert_eq!(SCALES.load(Ordering::SeqCst) - before, 1);
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Counter {
    total: u64,
    history: Vec<u64>,
}

static BUMPS: AtomicUsize = AtomicUsize::new(0);
/// The tests that count `BUMPS` run one at a time (the test harness runs tests in parallel
/// threads, and each counts the bodies run since it started).
static BUMPS_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Counter {
    #[file_cache]
    fn bump(&mut self, by: u64) -> u64 {
        BUMPS.fetch_add(1, Ordering::SeqCst);
        self.total += by;
        self.history.push(by);
        self.total
    }

    #[file_cache]
    fn checked_bump(&mut self, by: u64) -> Result<u64, String> {
        BUMPS.fetch_add(1, Ordering::SeqCst);
        if by == 0 {
            self.history.push(0);
            return Err("zero".to_owned());
        }
        self.total += by;
        Ok(self.total)
    }
}

#[test]
fn mut_self_is_replayed() {
    common::init();
    let _serial = BUMPS_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let before = BUMPS.load(Ordering::SeqCst);
    let start = Counter {
        total: 10,
        history: vec![],
    };
    let expected = Counter {
        total: 13,
        history: vec![3],
    };
    for _ in 0..2 {
        let mut counter = start.clone();
        assert_eq!(counter.bump(3), 13);
        assert_eq!(counter, expected);
    }
    assert_eq!(BUMPS.load(Ordering::SeqCst) - before, 1);
    // From the state it left, another entry.
    let mut counter = expected.clone();
    assert_eq!(counter.bump(3), 16);
    assert_eq!(BUMPS.load(Ordering::SeqCst) - before, 2);
}

#[test]
fn with_a_result_only_ok_stores_its_outputs() {
    common::init();
    let _serial = BUMPS_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let before = BUMPS.load(Ordering::SeqCst);
    let start = Counter {
        total: 1,
        history: vec![7],
    };
    for _ in 0..2 {
        let mut counter = start.clone();
        assert_eq!(counter.checked_bump(0), Err("zero".to_owned()));
        assert_eq!(counter.history, [7, 0], "the body ran: its mutation stays");
    }
    assert_eq!(
        BUMPS.load(Ordering::SeqCst) - before,
        2,
        "an `Err` is not stored"
    );
    for _ in 0..2 {
        let mut counter = start.clone();
        assert_eq!(counter.checked_bump(2), Ok(3));
        assert_eq!(counter.total, 3);
    }
    assert_eq!(BUMPS.load(Ordering::SeqCst) - before, 3);
}

static ASYNC_FILLS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
async fn fill_async(n: u32, out: &mut Vec<u32>) -> usize {
    ASYNC_FILLS.fetch_add(1, Ordering::SeqCst);
    std::future::ready(()).await;
    out.extend(0..n);
    out.len()
}

#[file_cache]
async fn checked_fill_async(n: u32, out: &mut Vec<u32>) -> Result<usize, String> {
    ASYNC_FILLS.fetch_add(1, Ordering::SeqCst);
    if n == 0 {
        return Err("empty".to_owned());
    }
    out.extend(0..n);
    Ok(out.len())
}

#[test]
fn async_fns_replay_outputs() {
    common::init();
    let before = ASYNC_FILLS.load(Ordering::SeqCst);
    for _ in 0..2 {
        let mut out = vec![9];
        let future = fill_async(2, &mut out);
        assert_send(&future);
        assert_eq!(pollster::block_on(future), 3);
        assert_eq!(out, [9, 0, 1]);
        let mut out = vec![];
        assert_eq!(pollster::block_on(checked_fill_async(3, &mut out)), Ok(3));
        assert_eq!(out, [0, 1, 2]);
    }
    assert_eq!(ASYNC_FILLS.load(Ordering::SeqCst) - before, 2);
}

fn assert_send<T: Send>(_: &T) {}

static LOGGED: AtomicUsize = AtomicUsize::new(0);

/// A handle that is not data stays ignored: the body's effect on it happens on a miss only.
#[file_cache(ignore = [log])]
fn logged(x: u32, log: &mut Vec<String>, (a, b): (u32, u32)) -> u32 {
    LOGGED.fetch_add(1, Ordering::SeqCst);
    log.push(format!("computed {x}"));
    x + a + b
}

#[test]
fn an_ignored_mut_is_not_replayed() {
    common::init();
    let before = LOGGED.load(Ordering::SeqCst);
    let mut log = Vec::new();
    assert_eq!(logged(1, &mut log, (2, 3)), 6);
    assert_eq!(logged(1, &mut log, (2, 3)), 6);
    assert_eq!(log, ["computed 1"]);
    assert_eq!(LOGGED.load(Ordering::SeqCst) - before, 1);
}

static SHARED: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn shared(n: u32, out: &mut Vec<u32>) {
    SHARED.fetch_add(1, Ordering::SeqCst);
    out.extend((0..n).rev());
}

#[test]
fn concurrent_callers_and_is_cached_see_the_outputs() {
    common::init();
    let mut probe = Vec::new();
    assert!(!file_cache::is_cached(|| shared(6, &mut probe)));
    assert!(probe.is_empty(), "a probe runs nothing");
    // Whether a caller waits for another's value or reads its file, it gets the outputs.
    let outs: Vec<Vec<u32>> = std::thread::scope(|scope| {
        let callers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    shared(6, &mut out);
                    out
                })
            })
            .collect();
        callers.into_iter().map(|c| c.join().unwrap()).collect()
    });
    for out in outs {
        assert_eq!(out, [5, 4, 3, 2, 1, 0]);
    }
    assert_eq!(SHARED.load(Ordering::SeqCst), 1);
    assert!(file_cache::is_cached(|| shared(6, &mut Vec::new())));
}
