//! Writes made off the caller's path: a job queued here (the local copy of a remote hit)
//! is run by one background thread, in order, and the call returns without waiting for
//! the file system. It runs what it is given (each job writes through the same atomic
//! write, and so the gate, as any store); it knows nothing of what the jobs write.
//!
//! The writer lets a burst of calls go by before it writes: it starts once no job has
//! been queued for [`PAUSE`], or once the oldest waiting job is [`MAX_DELAY`] old, or
//! once [`START_BYTES`] wait. A program that pulls many entries from a remote in a row
//! gets them at the remote's speed, with no file written beside its requests (on a small
//! machine the writer's work slows the calls it runs beside), and a caller queues a job
//! without a system call while the writer waits out a burst.
//!
//! A crash between a call's return and its job loses only that job's write (the local
//! copy of something the remote still holds). Otherwise nothing is lost or left racing:
//! when the queue is full the caller runs its job itself; a thread that queued jobs waits
//! for the queue as it ends (the main thread when `main` returns or the program calls
//! `std::process::exit`, where `exit` runs its thread-locals' destructors, as glibc's
//! does), for at most [`END_WAIT`]; and [`flush`] waits for every job queued so far
//! (clearing the cache calls it first, so that no write queued before a clear lands after
//! it). Whoever waits for the queue has the writer start at once.

use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Most jobs waiting at once; past that, the caller runs its own.
const MAX_QUEUED: usize = 1024;
/// Most bytes (as the jobs declare them) waiting at once.
const MAX_QUEUED_BYTES: usize = 64 << 20;
/// The writer starts once no job has been queued for this long,
pub(crate) const PAUSE: Duration = Duration::from_millis(2);
/// or once its oldest job has waited this long,
pub(crate) const MAX_DELAY: Duration = Duration::from_millis(100);
/// or once this many bytes (or a quarter of [`MAX_QUEUED`] jobs) wait.
const START_BYTES: usize = MAX_QUEUED_BYTES / 4;
/// Longest an ending thread waits for the queue.
pub(crate) const END_WAIT: Duration = Duration::from_secs(10);

/// One write to make later, and the bytes it holds.
type Job = Box<dyn FnOnce() + Send>;

struct State {
    jobs: VecDeque<(Job, usize)>,
    /// Bytes of the queued jobs and of the one running.
    bytes: usize,
    /// A job is running.
    running: bool,
    /// The writer sleeps until woken: a new job wakes it. (A writer waiting out a burst,
    /// or busy, takes the next job without being woken, sparing the caller a system call.)
    asleep: bool,
    /// When the last job was queued.
    last_queued: Option<Instant>,
    /// Threads waiting for the queue to empty: the writer does not wait for a pause.
    hurry: usize,
    /// The writer thread: not started, running, or not startable (jobs then run inline).
    writer: Writer,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Writer {
    NotStarted,
    Running,
    Failed,
}

struct Queue {
    state: Mutex<State>,
    /// Signalled when a job is queued to a sleeping writer, or someone hurries it.
    work: Condvar,
    /// Signalled when the queue is empty and no job runs.
    idle: Condvar,
}

static QUEUE: Queue = Queue {
    state: Mutex::new(State {
        jobs: VecDeque::new(),
        bytes: 0,
        running: false,
        asleep: false,
        last_queued: None,
        hurry: 0,
        writer: Writer::NotStarted,
    }),
    work: Condvar::new(),
    idle: Condvar::new(),
};

fn lock() -> MutexGuard<'static, State> {
    QUEUE.state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `job` (a write of about `bytes` bytes) on the writer thread, soon; runs it at once
/// on this thread when the queue is full or no thread can be started.
pub(crate) fn run_later(bytes: usize, job: impl FnOnce() + Send + 'static) {
    let mut state = lock();
    if state.writer == Writer::NotStarted {
        let started = std::thread::Builder::new()
            .name("file_cache-writer".into())
            .spawn(writer);
        state.writer = match started {
            Ok(_) => Writer::Running,
            Err(error) => {
                log::debug!("file_cache: no writer thread ({error}); writing in the call");
                Writer::Failed
            }
        };
    }
    let full =
        state.jobs.len() >= MAX_QUEUED || state.bytes.saturating_add(bytes) > MAX_QUEUED_BYTES;
    if state.writer != Writer::Running || full {
        drop(state);
        job();
        return;
    }
    state.bytes += bytes;
    state.jobs.push_back((Box::new(job), bytes));
    state.last_queued = Some(Instant::now());
    let wake = state.asleep;
    drop(state);
    if wake {
        QUEUE.work.notify_one();
    }
    // This thread waits for the queue as it ends. `try_with`: from another thread-local's
    // destructor there is nothing to register with; `flush` still covers the job.
    let _ = END.try_with(|end| end.queued.set(true));
}

/// Until when the writer, holding jobs since `first`, waits before it writes; `None` to
/// write now.
fn start_at(state: &State, first: Instant) -> Option<Instant> {
    if state.hurry > 0 || state.bytes >= START_BYTES || state.jobs.len() >= MAX_QUEUED / 4 {
        return None;
    }
    let quiet = state.last_queued.unwrap_or(first).checked_add(PAUSE)?;
    let at = quiet.min(first.checked_add(MAX_DELAY)?);
    (at > Instant::now()).then_some(at)
}

/// The writer thread: waits for jobs, lets their burst go by, then runs every job queued,
/// one at a time, in order.
fn writer() {
    let mut state = lock();
    loop {
        while state.jobs.is_empty() {
            state.asleep = true;
            state = QUEUE
                .work
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.asleep = false;
        }
        let first = Instant::now();
        while let Some(at) = start_at(&state, first) {
            let left = at.saturating_duration_since(Instant::now());
            state = QUEUE
                .work
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        while let Some((job, bytes)) = state.jobs.pop_front() {
            state.running = true;
            drop(state);
            // A job that panics loses its own write, not the thread.
            if catch_unwind(AssertUnwindSafe(job)).is_err() {
                log::debug!("file_cache: a background write panicked");
            }
            state = lock();
            state.running = false;
            state.bytes = state.bytes.saturating_sub(bytes);
        }
        QUEUE.idle.notify_all();
    }
}

/// Waits until every job queued so far has run, for at most `timeout`; returns whether
/// the queue is empty. The writer starts at once.
pub(crate) fn flush(timeout: Duration) -> bool {
    let deadline = Instant::now().checked_add(timeout);
    let mut state = lock();
    state.hurry += 1;
    QUEUE.work.notify_one();
    let mut empty = true;
    while !state.jobs.is_empty() || state.running {
        let left = match deadline {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        };
        if left.is_zero() {
            empty = false;
            break;
        }
        state = QUEUE
            .idle
            .wait_timeout(state, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    state.hurry -= 1;
    empty
}

/// Set in a thread that queued a job: it waits for the queue as it ends.
struct End {
    queued: Cell<bool>,
}

impl Drop for End {
    fn drop(&mut self) {
        if self.queued.get() && !flush(END_WAIT) {
            log::warn!(
                "file_cache: local copies of remote hits still unwritten after {} s; \
                 going on without them",
                END_WAIT.as_secs()
            );
        }
    }
}

thread_local! {
    static END: End = const { End { queued: Cell::new(false) } };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn jobs_run_in_order_and_flush_waits_for_them() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        for i in 0..50 {
            let seen = Arc::clone(&seen);
            run_later(10, move || seen.lock().unwrap().push(i));
        }
        assert!(flush(Duration::from_secs(60)));
        let seen = seen.lock().unwrap();
        let mine: Vec<i32> = seen.iter().copied().collect();
        assert_eq!(mine, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn a_thread_waits_for_its_jobs_as_it_ends() {
        let ran = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&ran);
        std::thread::spawn(move || {
            for _ in 0..20 {
                let counted = Arc::clone(&counted);
                run_later(1, move || {
                    std::thread::sleep(Duration::from_millis(1));
                    counted.fetch_add(1, Ordering::SeqCst);
                });
            }
        })
        .join()
        .unwrap();
        // No flush: the thread's end waited.
        assert_eq!(ran.load(Ordering::SeqCst), 20);
    }

    #[test]
    fn a_panicking_job_does_not_stop_the_writer() {
        run_later(1, || panic!("a job that fails"));
        let ran = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&ran);
        run_later(1, move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        assert!(flush(Duration::from_secs(60)));
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }

    fn state(jobs: usize, bytes: usize, last_queued: Instant) -> State {
        let mut queued: VecDeque<(Job, usize)> = VecDeque::new();
        for _ in 0..jobs {
            queued.push_back((Box::new(|| {}), bytes / jobs.max(1)));
        }
        State {
            jobs: queued,
            bytes,
            running: false,
            asleep: false,
            last_queued: Some(last_queued),
            hurry: 0,
            writer: Writer::Running,
        }
    }

    #[test]
    fn the_writer_waits_out_a_burst_within_bounds() {
        let now = Instant::now();
        // A job just queued: wait for a pause after it.
        let at = start_at(&state(3, 300, now), now).expect("waits");
        assert!(at > now && at <= now + PAUSE, "{:?}", at - now);
        // The last job queued a pause ago: start.
        let then = now - PAUSE;
        assert!(start_at(&state(3, 300, then), then).is_none());
        // Jobs keep coming, but the first has waited long enough.
        let first = now - MAX_DELAY;
        assert!(start_at(&state(3, 300, now), first).is_none());
        // A burst past its bytes or jobs bounds: start.
        assert!(start_at(&state(3, START_BYTES, now), now).is_none());
        assert!(start_at(&state(MAX_QUEUED / 4, 300, now), now).is_none());
        // Someone waits for the queue: start.
        let mut hurried = state(3, 300, now);
        hurried.hurry = 1;
        assert!(start_at(&hurried, now).is_none());
    }

    #[test]
    fn a_job_nobody_waits_for_is_written_after_its_burst() {
        let (sender, receiver) = std::sync::mpsc::channel();
        run_later(1, move || sender.send(()).unwrap());
        // (Tests beside this one may flush: then it runs sooner.)
        receiver
            .recv_timeout(Duration::from_secs(30))
            .expect("the writer ran the job without a flush");
    }

    #[test]
    fn a_job_too_big_for_the_queue_runs_in_the_call() {
        let here = std::thread::current().id();
        let ran_on = Arc::new(Mutex::new(None));
        let seen = Arc::clone(&ran_on);
        run_later(MAX_QUEUED_BYTES + 1, move || {
            *seen.lock().unwrap() = Some(std::thread::current().id());
        });
        assert_eq!(*ran_on.lock().unwrap(), Some(here));
    }
}
