//! A cold key is computed once: by one thread of a process while the others wait for its
//! value, and by one process while the others wait for the entry's lock.

mod common;

use common::{child_role, function_dir, init, lock_files, logged, marked, spawn_child, temp_files};
use file_cache::file_cache;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// Blocks until this process has logged `count` waits for `function`.
fn until_waiting(function: &str, count: usize) {
    let needle = format!("waiting for single_flight::{function}, computed by another caller");
    while logged(log::Level::Debug, &needle).len() < count {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Calls `f` from `threads` threads released at once; returns what each got.
fn from_threads<T: Send + 'static>(
    threads: usize,
    f: impl Fn() -> T + Send + Sync + 'static,
) -> Vec<std::thread::Result<T>> {
    let start = Arc::new(Barrier::new(threads));
    let f = Arc::new(f);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (start, f) = (Arc::clone(&start), Arc::clone(&f));
            std::thread::spawn(move || {
                start.wait();
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f()))
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

const THREADS: usize = 8;

static SHARED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn shared(x: u64) -> Vec<u64> {
    SHARED_RUNS.fetch_add(1, Ordering::SeqCst);
    // Every other thread is waiting for this computation before it ends.
    until_waiting("shared", THREADS - 1);
    vec![x; 1000]
}

#[test]
fn threads_calling_one_cold_key_run_the_body_once() {
    init();
    let results = from_threads(THREADS, || shared(7));
    for result in results {
        assert_eq!(result.unwrap(), vec![7; 1000]);
    }
    assert_eq!(SHARED_RUNS.load(Ordering::SeqCst), 1);
    let from_leader = logged(log::Level::Debug, "hit single_flight::shared (from another");
    assert_eq!(from_leader.len(), THREADS - 1, "the others got its value");
    // Every call is counted: the leader's miss, and the waiters' hits.
    let stats = file_cache::stats();
    let shared = stats
        .iter()
        .find(|s| s.function == "single_flight::shared")
        .expect("stats of shared");
    assert_eq!((shared.misses, shared.hits), (1, THREADS as u64 - 1));
    assert_eq!(
        shared.waited,
        THREADS as u64 - 1,
        "each hit waited for the leader"
    );
    assert_eq!(shared.bytes_read, 0, "waiters read no file");
}

static PANICKY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn panicky(x: u64) -> u64 {
    if PANICKY_RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
        until_waiting("panicky", THREADS - 1);
        panic!("the first computation fails");
    }
    x + 1
}

#[test]
fn a_panic_wakes_the_waiters_and_each_computes_at_once() {
    init();
    let results = from_threads(THREADS, || panicky(1));
    let panicked = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(panicked, 1, "only the leader's call panics");
    for value in results.into_iter().flatten() {
        assert_eq!(value, 2);
    }
    assert_eq!(
        PANICKY_RUNS.load(Ordering::SeqCst),
        THREADS,
        "the panicked run, then each waiter's own (a failed leader shares nothing)"
    );
    // They stored their value: the next call hits it.
    assert_eq!(panicky(1), 2);
    assert_eq!(PANICKY_RUNS.load(Ordering::SeqCst), THREADS);
}

static GATE: std::sync::Mutex<Option<std::sync::mpsc::Receiver<()>>> = std::sync::Mutex::new(None);
static GATED_STARTED: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn gated(x: u64) -> u64 {
    if x == 1 {
        GATED_STARTED.store(1, Ordering::SeqCst);
        let gate = GATE.lock().unwrap().take().unwrap();
        // Released only after gated(2) returned: it must not wait for this key.
        gate.recv_timeout(Duration::from_secs(120))
            .expect("gated(2) was held up by gated(1)");
    }
    x * 10
}

#[test]
fn different_keys_never_wait_for_each_other() {
    init();
    let (release, gate) = std::sync::mpsc::channel();
    *GATE.lock().unwrap() = Some(gate);
    let first = std::thread::spawn(|| gated(1));
    while GATED_STARTED.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(gated(2), 20, "computed while gated(1) is in flight");
    release.send(()).unwrap();
    assert_eq!(first.join().unwrap(), 10);
}

/// Lock files under the function's directory, seen from inside its body.
fn lock_files_now(name: &str) -> usize {
    lock_files(&function_dir(init(), "single_flight", name)).len()
}

#[file_cache]
fn locked(x: u64) -> usize {
    lock_files_now("locked") + x as usize
}

#[file_cache(lock = false)]
fn unlocked(x: u64) -> usize {
    lock_files_now("unlocked") + x as usize
}

#[test]
fn a_miss_holds_the_entry_lock_unless_lock_is_false_and_removes_it_after() {
    let root = init();
    assert_eq!(locked(0), 1, "the body runs under the entry's lock file");
    assert_eq!(unlocked(0), 0, "lock = false takes no lock");
    for name in ["locked", "unlocked"] {
        assert!(lock_files(&function_dir(root, "single_flight", name)).is_empty());
    }
}

/// One of the processes racing for a cold key.
static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn slow(x: u64) -> String {
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
    if child_role().as_deref() == Some("holder") {
        println!("COMPUTING");
        std::thread::sleep(Duration::from_secs(600));
    } else {
        std::thread::sleep(Duration::from_secs(2));
    }
    format!("slow {x}")
}

const CHILD: &str = "child_calls";

#[test]
fn child_calls() {
    init();
    let Some(role) = child_role() else { return };
    let x = std::env::var("SLOW_ARG").unwrap().parse().unwrap();
    let results = from_threads(4, move || slow(x));
    for result in results {
        assert_eq!(result.unwrap(), format!("slow {x}"));
    }
    println!("RUNS {}", SLOW_RUNS.load(Ordering::SeqCst));
    println!("ROLE {role}");
}

fn runs(lines: &[String]) -> usize {
    marked(lines, "RUNS ")[0].parse().unwrap()
}

fn no_leftovers(root: &Path) {
    let dir = function_dir(root, "single_flight", "slow");
    assert!(lock_files(&dir).is_empty(), "{:?}", lock_files(&dir));
    assert!(temp_files(&dir).is_empty(), "{:?}", temp_files(&dir));
}

#[test]
fn processes_racing_for_a_cold_key_compute_it_once() {
    if child_role().is_some() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_str().unwrap();
    let envs = [("FILE_CACHE_DIR", dir), ("SLOW_ARG", "1")];
    let children: Vec<_> = (0..3).map(|_| spawn_child(CHILD, "race", &envs)).collect();
    let total: usize = children.into_iter().map(|c| runs(&c.finish())).sum();
    assert_eq!(total, 1, "3 processes x 4 threads, one computation");
    no_leftovers(root.path());
}

#[test]
fn a_lock_holder_killed_with_sigkill_does_not_block_the_others() {
    if child_role().is_some() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_str().unwrap();
    let envs = [("FILE_CACHE_DIR", dir), ("SLOW_ARG", "2")];
    let mut holder = spawn_child(CHILD, "holder", &envs);
    assert!(holder.wait_for("COMPUTING"));
    let mut waiter = spawn_child(CHILD, "waiter", &envs);
    assert!(waiter.wait_for("waiting for the lock"));
    holder.kill();
    let lines = waiter.finish();
    assert_eq!(runs(&lines), 1, "the waiter computed once the holder died");
    no_leftovers(root.path());
}

static ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
async fn shared_async(x: u64) -> u64 {
    ASYNC_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    x * 3
}

#[test]
fn async_callers_on_one_thread_wait_for_each_other_without_blocking_it() {
    init();
    // One thread for every task: a waiter that blocked it would never let the leader finish.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let values = runtime.block_on(async {
        let tasks: Vec<_> = (0..8).map(|_| tokio::spawn(shared_async(5))).collect();
        let mut values = Vec::new();
        for task in tasks {
            values.push(task.await.unwrap());
        }
        values
    });
    assert_eq!(values, vec![15; 8]);
    assert_eq!(ASYNC_RUNS.load(Ordering::SeqCst), 1);
    let stats = file_cache::stats();
    let shared = stats
        .iter()
        .find(|s| s.function == "single_flight::shared_async")
        .expect("stats of shared_async");
    assert_eq!((shared.misses, shared.hits, shared.waited), (1, 7, 7));
}

/// A client whose retry calls its own cached method again, with the same key.
struct Client {
    tries: u32,
}

impl Client {
    #[file_cache(ignore = [self])]
    fn fetch(&mut self, url: &str) -> String {
        self.tries += 1;
        if self.tries < 3 {
            // A retry: the same key as the call it is inside.
            return self.fetch(url);
        }
        format!("{url} after {} tries", self.tries)
    }

    #[file_cache(ignore = [self])]
    async fn fetch_async(&mut self, url: &str) -> String {
        self.tries += 1;
        if self.tries < 3 {
            return Box::pin(self.fetch_async(url)).await;
        }
        format!("{url} after {} tries", self.tries)
    }
}

/// Runs `f` on another thread and fails the test if it does not return in time (a call
/// that waits on itself would otherwise hang the test binary).
fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || send.send(f()));
    receive
        .recv_timeout(Duration::from_secs(20))
        .expect("a call that re-enters its own key must not wait on itself")
}

fn assert_reentered_once(function: &str) {
    let needle = format!("::{function}: computed by this caller");
    let reentered = logged(log::Level::Debug, &needle);
    assert_eq!(
        reentered.len(),
        2,
        "the two retries ran uncached: {reentered:?}"
    );
    let dir = init().join(format!("single_flight.Client.{function}"));
    assert!(lock_files(&dir).is_empty(), "{:?}", lock_files(&dir));
}

#[test]
fn a_call_that_reenters_its_own_key_runs_uncached_and_the_outer_call_stores() {
    init();
    let first = within(|| Client { tries: 0 }.fetch("https://a"));
    assert_eq!(first, "https://a after 3 tries");
    assert_reentered_once("fetch");
    // The outer call stored its value: another client hits it without running the body.
    let mut again = Client { tries: 0 };
    assert_eq!(again.fetch("https://a"), "https://a after 3 tries");
    assert_eq!(again.tries, 0);
}

#[test]
fn an_async_call_that_reenters_its_own_key_runs_uncached_and_the_outer_call_stores() {
    init();
    let first = within(|| pollster::block_on(Client { tries: 0 }.fetch_async("https://b")));
    assert_eq!(first, "https://b after 3 tries");
    assert_reentered_once("fetch_async");
    let mut again = Client { tries: 0 };
    let second = pollster::block_on(again.fetch_async("https://b"));
    assert_eq!(second, "https://b after 3 tries");
    assert_eq!(again.tries, 0);
}

/// Bodies of `failing` and `failing_async` running right now, and the most at once.
static FAILING_NOW: AtomicUsize = AtomicUsize::new(0);
static FAILING_MOST: AtomicUsize = AtomicUsize::new(0);
static FAILING_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A rate-limited API: 300 ms, then an error. The first run waits until the others wait
/// for it, so that all of them follow one leader.
fn rate_limited(name: &str) -> Result<u64, String> {
    if FAILING_RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
        until_waiting(name, THREADS - 1);
    }
    let now = FAILING_NOW.fetch_add(1, Ordering::SeqCst) + 1;
    FAILING_MOST.fetch_max(now, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    FAILING_NOW.fetch_sub(1, Ordering::SeqCst);
    Err("429 Too Many Requests".to_owned())
}

#[file_cache]
fn failing(x: u64) -> Result<u64, String> {
    let _ = x;
    rate_limited("failing")
}

#[file_cache]
async fn failing_async(x: u64) -> Result<u64, String> {
    let _ = x;
    rate_limited("failing_async")
}

/// Serialises the tests that share the counters above.
static FAILING_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn assert_waiters_ran_at_once(call: impl Fn() -> Result<u64, String> + Send + Sync + 'static) {
    let _one_at_a_time = FAILING_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    FAILING_RUNS.store(0, Ordering::SeqCst);
    FAILING_MOST.store(0, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let results = from_threads(THREADS, call);
    let took = started.elapsed();
    for result in results {
        assert_eq!(result.unwrap(), Err("429 Too Many Requests".to_owned()));
    }
    assert_eq!(FAILING_RUNS.load(Ordering::SeqCst), THREADS);
    // After the leader failed, its seven waiters ran together, not one after another
    // (which took 8 x 300 ms).
    assert_eq!(
        FAILING_MOST.load(Ordering::SeqCst),
        THREADS - 1,
        "took {took:?}"
    );
}

#[test]
fn waiters_of_a_failed_call_run_at_once_instead_of_queueing() {
    init();
    assert_waiters_ran_at_once(|| failing(1));
}

#[test]
fn async_waiters_of_a_failed_call_run_at_once_instead_of_queueing() {
    init();
    assert_waiters_ran_at_once(|| pollster::block_on(failing_async(1)));
}

/// No codec gives back a field skipped when deserializing: values of this type are never
/// stored.
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Unstorable {
    id: u64,
    #[serde(skip_deserializing)]
    extra: u64,
}

static UNSTORABLE_NOW: AtomicUsize = AtomicUsize::new(0);
static UNSTORABLE_MOST: AtomicUsize = AtomicUsize::new(0);
static UNSTORABLE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn unstorable(id: u64) -> Unstorable {
    if UNSTORABLE_RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
        until_waiting("unstorable", THREADS - 1);
    }
    let now = UNSTORABLE_NOW.fetch_add(1, Ordering::SeqCst) + 1;
    UNSTORABLE_MOST.fetch_max(now, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    UNSTORABLE_NOW.fetch_sub(1, Ordering::SeqCst);
    Unstorable { id, extra: 1 }
}

#[test]
fn waiters_of_a_value_that_cannot_be_stored_run_at_once() {
    init();
    let results = from_threads(THREADS, || unstorable(5));
    for result in results {
        assert_eq!(result.unwrap().id, 5);
    }
    assert_eq!(UNSTORABLE_RUNS.load(Ordering::SeqCst), THREADS);
    assert_eq!(UNSTORABLE_MOST.load(Ordering::SeqCst), THREADS - 1);
    // Marked uncacheable: later callers bypass the cache, and never wait for each other.
    let waits = logged(log::Level::Debug, "waiting for single_flight::unstorable").len();
    UNSTORABLE_MOST.store(0, Ordering::SeqCst);
    let results = from_threads(THREADS, || unstorable(5));
    assert!(results.iter().all(|r| r.as_ref().is_ok_and(|v| v.id == 5)));
    assert_eq!(UNSTORABLE_MOST.load(Ordering::SeqCst), THREADS);
    let after = logged(log::Level::Debug, "waiting for single_flight::unstorable").len();
    assert_eq!(after, waits, "nobody waited once it was marked");
}
