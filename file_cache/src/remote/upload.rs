//! Background uploads: a store queues its entry and returns; one thread writes the queue to
//! the remote in order. The queue is bounded (entries and bytes): when it is full an upload
//! is dropped, never waited for. It knows objects and their function directories; what a
//! dropped upload counts for is a hook from above (`on_dropped`).
//!
//! A thread that queued uploads waits for them when it ends, for at most the tier's exit
//! wait (`FILE_CACHE_REMOTE_EXIT_WAIT`). The main thread's thread-locals are
//! destroyed when `main` returns and when the program calls `std::process::exit` (on the
//! platforms whose `exit` runs them, glibc's among them), so a short-lived program uploads
//! what it computed before it ends. What that thread queued and is still not sent at the
//! deadline is given up; other threads' uploads are theirs to wait for.
//! Every upload dropped or given up is counted in the statistics of its function, and the
//! first one of the process is a warning; the local tier has the values either way.

use super::Tier;
use std::cell::Cell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Most entries waiting at once.
pub(super) const MAX_QUEUED: usize = 256;
/// Most bytes waiting at once.
const MAX_QUEUED_BYTES: usize = 256 << 20;

/// Called with the function directory of each upload dropped or given up.
static ON_DROPPED: OnceLock<fn(&Path)> = OnceLock::new();

pub(super) fn on_dropped(hook: fn(&Path)) {
    let _ = ON_DROPPED.set(hook);
}

/// Called with the function directory and size of each object the remote stored.
static ON_UPLOADED: OnceLock<fn(&Path, u64)> = OnceLock::new();

pub(super) fn on_uploaded(hook: fn(&Path, u64)) {
    let _ = ON_UPLOADED.set(hook);
}

/// Counts an object of `bytes` bytes of `function_dir` stored by the remote.
pub(super) fn uploaded(function_dir: &Path, bytes: usize) {
    if let Some(hook) = ON_UPLOADED.get() {
        hook(function_dir, bytes as u64);
    }
}

/// One upload: the remote object's name, the entry it holds (compressed and signed as it
/// is sent), and the local directory of its function (what names the function in the
/// statistics).
pub(super) struct Job {
    pub(super) name: String,
    pub(super) entry: Vec<u8>,
    pub(super) function_dir: PathBuf,
}

/// A queued job, and the thread that queued it.
struct Queued {
    job: Job,
    thread: u64,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Queued>,
    /// Bytes of the queued jobs and of the one being uploaded.
    bytes: usize,
    /// The function directory of the job being uploaded, and the thread that queued it.
    uploading: Option<(PathBuf, u64)>,
}

impl State {
    fn is_empty(&self) -> bool {
        self.jobs.is_empty() && self.uploading.is_none()
    }

    /// Whether an upload queued by `thread` is waiting or under way.
    fn holds(&self, thread: u64) -> bool {
        self.uploading.as_ref().is_some_and(|(_, t)| *t == thread)
            || self.jobs.iter().any(|queued| queued.thread == thread)
    }
}

/// The queue of uploads not yet tried; its thread starts with the first upload.
#[derive(Default)]
pub(super) struct Queue {
    started: OnceLock<bool>,
    state: Mutex<State>,
    /// Signalled when a job is queued (the upload thread waits on it).
    work: Condvar,
    /// Signalled after every upload.
    progress: Condvar,
    /// Uploads dropped or given up by this process.
    dropped: AtomicU64,
}

impl Queue {
    /// Queues an upload to `tier`, or drops it (counted, and logged) when the queue is
    /// full. The calling thread will wait for the queue when it ends (see the module docs).
    pub(super) fn push(&self, tier: &'static Tier, job: Job) {
        if !*self.started.get_or_init(|| spawn(tier)) {
            return;
        }
        let size = job.entry.len();
        {
            let mut state = self.lock();
            let full = state.jobs.len() >= MAX_QUEUED
                || (state.bytes.saturating_add(size) > MAX_QUEUED_BYTES && !state.is_empty());
            if full {
                drop(state);
                self.dropped(
                    std::slice::from_ref(&job.function_dir),
                    &format!(
                        "the remote upload queue is full ({MAX_QUEUED} entries or {} MiB \
                         waiting); not uploading {}",
                        MAX_QUEUED_BYTES >> 20,
                        job.name
                    ),
                );
                return;
            }
            state.bytes += size;
            // `try_with`: a store from another thread-local's destructor has nothing to
            // register with; its upload is tried, or lost at exit, as before.
            let thread = EXIT_WAIT
                .try_with(|wait| {
                    if !tier.exit_wait.is_zero() {
                        wait.tier.set(Some(tier));
                    }
                    wait.thread
                })
                .unwrap_or(0);
            state.jobs.push_back(Queued { job, thread });
        }
        self.work.notify_one();
    }

    /// The upload thread's loop: one job at a time, in order.
    fn run(&self, tier: &Tier) {
        loop {
            let job = {
                let mut state = self.lock();
                loop {
                    if let Some(Queued { job, thread }) = state.jobs.pop_front() {
                        state.uploading = Some((job.function_dir.clone(), thread));
                        break job;
                    }
                    state = self.work.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            };
            tier.send(&job.name, &job.entry, &job.function_dir);
            let mut state = self.lock();
            state.uploading = None;
            state.bytes = state.bytes.saturating_sub(job.entry.len());
            drop(state);
            self.progress.notify_all();
        }
    }

    /// Waits until nothing is queued or being uploaded, for at most `timeout`.
    pub(super) fn wait_empty(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, State::is_empty)
    }

    /// Waits until `done` holds, for at most `timeout`; returns whether it does.
    fn wait_until(&self, timeout: Duration, done: impl Fn(&State) -> bool) -> bool {
        // No deadline when it is past what an `Instant` holds: wait as long as it takes.
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.lock();
        while !done(&state) {
            state = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    self.progress
                        .wait_timeout(state, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.progress.wait(state).unwrap_or_else(|e| e.into_inner()),
            };
        }
        true
    }

    /// Waits for the uploads `thread` queued, as it ends, for at most `wait`; gives up
    /// those left then (the one under way included: the process may be exiting).
    fn finish(&self, thread: u64, wait: Duration) {
        if self.wait_until(wait, |state| !state.holds(thread)) {
            return;
        }
        let given_up: Vec<PathBuf> = {
            let mut state = self.lock();
            let (mine, others) = std::mem::take(&mut state.jobs)
                .into_iter()
                .partition::<VecDeque<Queued>, _>(|queued| queued.thread == thread);
            state.jobs = others;
            for queued in &mine {
                state.bytes = state.bytes.saturating_sub(queued.job.entry.len());
            }
            let uploading = match &state.uploading {
                Some((dir, t)) if *t == thread => Some(dir.clone()),
                _ => None,
            };
            mine.into_iter()
                .map(|queued| queued.job.function_dir)
                .chain(uploading)
                .collect()
        };
        if given_up.is_empty() {
            return;
        }
        self.dropped(
            &given_up,
            &format!(
                "{} remote upload(s) not sent after waiting {:.1} s for them as a thread \
                 ended ({}); given up",
                given_up.len(),
                wait.as_secs_f64(),
                super::EXIT_WAIT_VAR
            ),
        );
    }

    /// Uploads dropped or given up so far.
    #[cfg(test)]
    pub(super) fn dropped_count(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Counts uploads that will not happen, per function, and says so: a warning the first
    /// time in the process, then at debug level.
    fn dropped(&self, function_dirs: &[PathBuf], what: &str) {
        static WARNED: AtomicBool = AtomicBool::new(false);
        self.dropped
            .fetch_add(function_dirs.len() as u64, Ordering::Relaxed);
        if let Some(hook) = ON_DROPPED.get() {
            for dir in function_dirs {
                hook(dir);
            }
        }
        let message = format!(
            "file_cache: {what} (the values stay in the local cache; `stats()` counts \
             uploads not sent)"
        );
        if WARNED.swap(true, Ordering::Relaxed) {
            log::debug!("{message}");
        } else {
            log::warn!("{message}");
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Counters and a queue, valid after any panic: ignore poisoning.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A thread's number among those that queued uploads, and the tier it queued to: its
/// destructor waits for them.
struct ExitWait {
    thread: u64,
    tier: Cell<Option<&'static Tier>>,
}

impl Drop for ExitWait {
    fn drop(&mut self) {
        if let Some(tier) = self.tier.get() {
            tier.uploads.finish(self.thread, tier.exit_wait);
        }
    }
}

thread_local! {
    static EXIT_WAIT: ExitWait = {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ExitWait {
            thread: NEXT.fetch_add(1, Ordering::Relaxed),
            tier: Cell::new(None),
        }
    };
}

fn spawn(tier: &'static Tier) -> bool {
    let started = std::thread::Builder::new()
        .name("file_cache-upload".to_owned())
        .spawn(move || tier.uploads.run(tier));
    match started {
        Ok(_) => true,
        Err(error) => {
            log::warn!(
                "file_cache: cannot start the remote upload thread ({error}); values are not uploaded"
            );
            false
        }
    }
}
