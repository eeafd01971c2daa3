//! blake3 of a large payload on two cores: the calling thread hashes the left half of the
//! blake3 tree while a helper thread hashes the right half, and the two chaining values
//! are merged into the root, the same digest as `blake3::hash` of the whole (blake3's
//! tree makes this exact; the tests compare the two on many lengths and splits). A leaf:
//! it knows bytes, nothing of what they hold.
//!
//! Checking a payload is the largest part of a remote hit of a few hundred KiB after the
//! request itself, and of the first hit of a large entry file. The helper is one thread,
//! started on first use, that waits for work; it is a help, never a wait: a caller that
//! finds it busy (another thread's payload), or that finishes its own half before the
//! helper has taken the other, hashes the other half itself. So on a busy or one-core
//! machine a payload costs what `blake3::hash` costs, plus a lock or two.
//!
//! It lends the helper the caller's bytes by address, hence `unsafe`: the caller does not
//! return while the helper may read them.
#![allow(unsafe_code)]

use blake3::hazmat::{left_subtree_len, merge_subtrees_root, ChainingValue, HasherExt, Mode};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

/// Payloads at least this long are hashed on two cores: below it, waking the helper costs
/// about what it saves.
pub(crate) const TWO_CORES_FROM: usize = 128 << 10;

/// The blake3 digest of `parts`, concatenated.
pub(crate) fn blake3(parts: &[&[u8]]) -> [u8; 32] {
    let len: usize = parts.iter().map(|part| part.len()).sum();
    if len >= TWO_CORES_FROM && helper_ready() {
        if let Some(digest) = on_two_cores(parts, len) {
            return digest;
        }
    }
    let mut hasher = blake3::Hasher::new();
    for part in parts {
        hasher.update(part);
    }
    *hasher.finalize().as_bytes()
}

/// The right half's bytes, as the helper reads them. They belong to the caller, which
/// does not return before the helper is done with them (see [`on_two_cores`]).
struct Job {
    ptr: *const u8,
    len: usize,
    /// Where they start in the whole input.
    offset: u64,
}

// SAFETY: a `Job` only carries the address of bytes the posting thread keeps borrowed,
// unmoved and unmodified until the helper has reported its result (see `on_two_cores`).
unsafe impl Send for Job {}

#[derive(Default)]
struct Slot {
    /// Posted, not yet taken by the helper (the caller may take it back).
    job: Option<Job>,
    /// The helper is hashing a job.
    taken: bool,
    /// The helper's chaining value for the job it took (`None` inside: it failed).
    result: Option<Option<ChainingValue>>,
}

impl Slot {
    fn busy(&self) -> bool {
        self.job.is_some() || self.taken || self.result.is_some()
    }
}

struct Helper {
    slot: Mutex<Slot>,
    /// Signalled when a job is posted.
    work: Condvar,
    /// Signalled when the helper has a result.
    done: Condvar,
}

static HELPER: Helper = Helper {
    slot: Mutex::new(Slot {
        job: None,
        taken: false,
        result: None,
    }),
    work: Condvar::new(),
    done: Condvar::new(),
};

fn lock() -> MutexGuard<'static, Slot> {
    HELPER.slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether a helper runs (started on the first call): not on a one-core machine, nor
/// where no thread can be started.
fn helper_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        cores > 1
            && std::thread::Builder::new()
                .name("file_cache-checksum".into())
                .spawn(helper)
                .is_ok()
    })
}

fn helper() {
    loop {
        let job = {
            let mut slot = lock();
            loop {
                if let Some(job) = slot.job.take() {
                    slot.taken = true;
                    break job;
                }
                slot = HELPER
                    .work
                    .wait(slot)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        // SAFETY: the posting thread keeps these bytes borrowed and unchanged until it
        // has the result below (it waits for it once `taken` is set).
        let bytes = unsafe { std::slice::from_raw_parts(job.ptr, job.len) };
        let cv = catch_unwind(AssertUnwindSafe(|| {
            blake3::Hasher::new()
                .set_input_offset(job.offset)
                .update(bytes)
                .finalize_non_root()
        }))
        .ok();
        let mut slot = lock();
        slot.taken = false;
        slot.result = Some(cv);
        drop(slot);
        HELPER.done.notify_all();
    }
}

/// [`blake3`] with the right half on the helper; `None` when the helper is busy or the
/// right half straddles two parts (the caller then hashes it all).
fn on_two_cores(parts: &[&[u8]], len: usize) -> Option<[u8; 32]> {
    let split = usize::try_from(left_subtree_len(len as u64)).ok()?;
    // The part the split falls in holds the whole right half: a flat entry's values, or
    // the one buffer of a fetched entry.
    let mut start = 0;
    let mut at = None;
    for (i, part) in parts.iter().enumerate() {
        if split >= start && split < start + part.len() {
            at = Some((i, split - start));
            break;
        }
        start += part.len();
    }
    let (index, within) = at?;
    if index + 1 != parts.len() {
        return None;
    }
    let (left_last, right) = parts[index].split_at(within);
    {
        let mut slot = lock();
        if slot.busy() {
            return None;
        }
        slot.job = Some(Job {
            ptr: right.as_ptr(),
            len: right.len(),
            offset: split as u64,
        });
    }
    HELPER.work.notify_one();
    let mut left = blake3::Hasher::new();
    for part in &parts[..index] {
        left.update(part);
    }
    left.update(left_last);
    let left = left.finalize_non_root();
    let right_cv = {
        let mut slot = lock();
        if slot.job.take().is_some() {
            // Not taken yet: ours to hash.
            None
        } else {
            // Taken: wait for it (the helper reads `right` until it reports).
            loop {
                if let Some(result) = slot.result.take() {
                    break result;
                }
                slot = HELPER
                    .done
                    .wait(slot)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
    };
    let right_cv = right_cv.unwrap_or_else(|| {
        blake3::Hasher::new()
            .set_input_offset(split as u64)
            .update(right)
            .finalize_non_root()
    });
    Some(*merge_subtrees_root(&left, &right_cv, Mode::Hash).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
            .collect()
    }

    #[test]
    fn the_digest_is_blake3_of_the_whole_for_every_length_and_split() {
        let lengths = [
            0,
            1,
            1024,
            TWO_CORES_FROM - 1,
            TWO_CORES_FROM,
            TWO_CORES_FROM + 1,
            TWO_CORES_FROM + 1023,
            256 << 10,
            (256 << 10) + 1025,
            3 << 20,
        ];
        for len in lengths {
            let whole = bytes(len, len as u8);
            let expected = *blake3::hash(&whole).as_bytes();
            assert_eq!(blake3(&[&whole]), expected, "one part of {len}");
            // A small head and the rest, as a flat entry is read.
            for head in [0, 1, 7, 150.min(len)] {
                let (a, b) = whole.split_at(head.min(len));
                assert_eq!(blake3(&[a, b]), expected, "{len} split at {head}");
            }
            // The split of the tree inside the first part: hashed on one core, the same.
            let (a, b) = whole.split_at(len - len / 8);
            assert_eq!(blake3(&[a, b]), expected, "{len}, a long head");
        }
    }

    #[test]
    fn threads_hashing_at_once_all_get_their_own_digest() {
        let inputs: Vec<Vec<u8>> = (0..4)
            .map(|i| bytes((300 << 10) + i * 4099, i as u8))
            .collect();
        std::thread::scope(|scope| {
            for input in &inputs {
                scope.spawn(move || {
                    let expected = *blake3::hash(input).as_bytes();
                    for _ in 0..50 {
                        assert_eq!(blake3(&[input]), expected);
                    }
                });
            }
        });
    }
}
