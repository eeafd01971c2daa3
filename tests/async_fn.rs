//! `async fn`: cached under any executor (tokio, pollster, and a hand-rolled `block_on`),
//! with `?`, `return` and the `Send`-ness of the returned future kept as written.

mod common;

use file_cache::file_cache;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

fn runs(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

/// The smallest executor there is: no runtime, no reactor.
fn spin_block_on<F: Future>(future: F) -> F::Output {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut context) {
            return value;
        }
        std::thread::yield_now();
    }
}

/// A future that is pending once, so a cached body really suspends.
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

static SQUARE: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
async fn slow_square(x: u64) -> u64 {
    yield_once().await;
    SQUARE.fetch_add(1, Ordering::SeqCst);
    x * x
}

#[test]
fn cached_under_tokio_pollster_and_a_hand_rolled_executor() {
    common::init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    assert_eq!(runtime.block_on(slow_square(3)), 9);
    assert_eq!(runs(&SQUARE), 1);
    assert_eq!(runtime.block_on(slow_square(3)), 9);
    assert_eq!(pollster::block_on(slow_square(3)), 9);
    assert_eq!(spin_block_on(slow_square(3)), 9);
    assert_eq!(runs(&SQUARE), 1, "one body run, whatever the executor");
    assert_eq!(pollster::block_on(slow_square(4)), 16);
    assert_eq!(spin_block_on(slow_square(4)), 16);
    assert_eq!(runtime.block_on(slow_square(4)), 16);
    assert_eq!(runs(&SQUARE), 2);
}

static SPAWNED: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
async fn spawned(text: String) -> usize {
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    SPAWNED.fetch_add(1, Ordering::SeqCst);
    text.len()
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

#[test]
fn the_future_stays_send_and_spawns_on_a_multi_threaded_runtime() {
    common::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let first = tokio::spawn(assert_send(spawned("four".into())));
        assert_eq!(first.await.expect("task"), 4);
        let again: Vec<_> = (0..4)
            .map(|_| tokio::spawn(spawned("four".into())))
            .collect();
        for task in again {
            assert_eq!(task.await.expect("task"), 4);
        }
    });
    assert_eq!(runs(&SPAWNED), 1);
}

static PARSED: AtomicUsize = AtomicUsize::new(0);

/// `?` converts errors and `return` returns early, as in the uncached function.
#[file_cache]
async fn parse_sum(text: &str) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    PARSED.fetch_add(1, Ordering::SeqCst);
    if text.is_empty() {
        return Ok(0);
    }
    let mut sum = 0;
    for part in text.split(',') {
        sum += part.trim().parse::<u64>()?;
    }
    Ok(sum)
}

static OPTIONAL: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
async fn find(id: u32) -> Option<String> {
    OPTIONAL.fetch_add(1, Ordering::SeqCst);
    id.is_multiple_of(2).then(|| format!("user {id}"))
}

static UNIT: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
async fn notify(_: u8) {
    UNIT.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn question_mark_return_option_and_unit() {
    common::init();
    assert_eq!(pollster::block_on(parse_sum("1, 2, 3")).unwrap(), 6);
    assert_eq!(pollster::block_on(parse_sum("1, 2, 3")).unwrap(), 6);
    assert_eq!(pollster::block_on(parse_sum("")).unwrap(), 0);
    assert_eq!(pollster::block_on(parse_sum("")).unwrap(), 0);
    assert_eq!(runs(&PARSED), 2);
    assert!(pollster::block_on(parse_sum("1, x")).is_err());
    assert!(pollster::block_on(parse_sum("1, x")).is_err());
    assert_eq!(runs(&PARSED), 4, "errors are not stored");

    assert_eq!(pollster::block_on(find(2)).as_deref(), Some("user 2"));
    assert_eq!(pollster::block_on(find(3)), None);
    assert_eq!(pollster::block_on(find(2)).as_deref(), Some("user 2"));
    assert_eq!(pollster::block_on(find(3)), None);
    assert_eq!(runs(&OPTIONAL), 2, "`None` is cached too");

    pollster::block_on(notify(1));
    pollster::block_on(notify(1));
    assert_eq!(runs(&UNIT), 1);
}

static DROPPED: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
async fn cancellable(x: u32) -> u32 {
    yield_once().await;
    DROPPED.fetch_add(1, Ordering::SeqCst);
    x
}

#[test]
fn a_future_dropped_before_it_finishes_stores_nothing() {
    common::init();
    {
        let waker = Waker::from(Arc::new(NoopWake));
        let mut context = Context::from_waker(&waker);
        let mut future = Box::pin(cancellable(7));
        assert!(future.as_mut().poll(&mut context).is_pending());
    }
    assert_eq!(runs(&DROPPED), 0);
    assert_eq!(pollster::block_on(cancellable(7)), 7);
    assert_eq!(runs(&DROPPED), 1, "the dropped call stored nothing");
    assert_eq!(pollster::block_on(cancellable(7)), 7);
    assert_eq!(runs(&DROPPED), 1);
}

struct NoopWake;

impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

/// Per run: whether the leader's body started, and whether its gate is open.
static GATED_STARTED: [std::sync::atomic::AtomicBool; 2] =
    [const { std::sync::atomic::AtomicBool::new(false) }; 2];
static GATE_OPEN: [std::sync::atomic::AtomicBool; 2] =
    [const { std::sync::atomic::AtomicBool::new(false) }; 2];

#[file_cache]
async fn gated(run: usize, key: u32) -> u32 {
    GATED_STARTED[run].store(true, Ordering::SeqCst);
    // Pending until a timer thread opens the gate.
    std::future::poll_fn(|cx| {
        if GATE_OPEN[run].load(Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
    key
}

/// On a current-thread runtime, a task computes `gated(run, 1)` while another task's
/// synchronous helper blocks the thread on `gated(run, key)`; the gate opens 300 ms in.
/// Returns the sum, or `None` when it has not finished after 3 s.
fn block_inside_the_runtime(run: usize, key: u32) -> Option<u32> {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let value = runtime.block_on(async move {
            let leader = tokio::spawn(gated(run, 1));
            while !GATED_STARTED[run].load(Ordering::SeqCst) {
                tokio::task::yield_now().await;
            }
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(300));
                GATE_OPEN[run].store(true, Ordering::SeqCst);
            });
            let blocked = tokio::spawn(async move { pollster::block_on(gated(run, key)) });
            leader.await.unwrap() + blocked.await.unwrap()
        });
        let _ = done.send(value);
    });
    finished
        .recv_timeout(std::time::Duration::from_secs(3))
        .ok()
}

/// What the README's async section warns about, shown: on a current-thread runtime, a task
/// that blocks its thread on a cached future (a synchronous helper calling `block_on`) while
/// another task of the same runtime computes the same key never finishes: the computing
/// task needs the thread the waiter blocks, as with any shared future. Another key, which
/// it computes itself, finishes.
#[test]
fn blocking_on_a_key_that_the_same_current_thread_runtime_computes_deadlocks() {
    common::init();
    assert_eq!(
        block_inside_the_runtime(0, 2),
        Some(3),
        "another key finishes"
    );
    assert_eq!(
        block_inside_the_runtime(1, 1),
        None,
        "the same key finished: the README's warning would no longer be true"
    );
}
