//! Background uploads: a store queues its entry and returns; one thread writes the queue
//! to the remote in order. The queue is bounded (entries and bytes): when it is full an
//! upload is dropped, never waited for. What is still queued when the process exits is
//! lost unless the program calls [`super::flush`]; the local tier has it either way.

use super::Tier;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Most entries waiting at once.
pub(super) const MAX_QUEUED: usize = 256;
/// Most bytes waiting at once.
const MAX_QUEUED_BYTES: usize = 256 << 20;

struct Job {
    name: String,
    object: Vec<u8>,
}

#[derive(Default)]
struct Pending {
    jobs: usize,
    bytes: usize,
}

/// The queue of uploads not yet tried; its thread starts with the first upload.
#[derive(Default)]
pub(super) struct Queue {
    sender: OnceLock<Option<SyncSender<Job>>>,
    pending: Mutex<Pending>,
    idle: Condvar,
}

impl Queue {
    /// Queues an upload to `tier`, or drops it (logged) when the queue is full.
    pub(super) fn push(&self, tier: &'static Tier, name: String, object: Vec<u8>) {
        let Some(sender) = self.sender.get_or_init(|| spawn(tier)) else {
            return;
        };
        let size = object.len();
        {
            let mut pending = self.lock();
            if pending.bytes.saturating_add(size) > MAX_QUEUED_BYTES && pending.jobs > 0 {
                log::debug!("file_cache: remote upload queue full, not uploading {name}");
                return;
            }
            pending.jobs += 1;
            pending.bytes += size;
        }
        if let Err(error) = sender.try_send(Job { name, object }) {
            let job = match error {
                TrySendError::Full(job) | TrySendError::Disconnected(job) => job,
            };
            log::debug!(
                "file_cache: remote upload queue full, not uploading {}",
                job.name
            );
            self.done(size);
        }
    }

    fn done(&self, size: usize) {
        let mut pending = self.lock();
        pending.jobs = pending.jobs.saturating_sub(1);
        pending.bytes = pending.bytes.saturating_sub(size);
        if pending.jobs == 0 {
            self.idle.notify_all();
        }
    }

    /// Waits until nothing is queued or being uploaded, for at most `timeout`.
    pub(super) fn wait_empty(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut pending = self.lock();
        while pending.jobs > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            pending = self
                .idle
                .wait_timeout(pending, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        // Two counters, valid after any panic: ignore poisoning.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn spawn(tier: &'static Tier) -> Option<SyncSender<Job>> {
    let (sender, receiver) = sync_channel::<Job>(MAX_QUEUED);
    let started = std::thread::Builder::new()
        .name("file_cache-upload".to_owned())
        .spawn(move || {
            for job in receiver {
                tier.put(&job.name, &job.object);
                tier.uploads.done(job.object.len());
            }
        });
    match started {
        Ok(_) => Some(sender),
        Err(error) => {
            log::warn!(
                "file_cache: cannot start the remote upload thread ({error}); values are not uploaded"
            );
            None
        }
    }
}
