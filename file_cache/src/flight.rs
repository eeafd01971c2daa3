//! Single-flight within a process: one caller computes a cold key, the others wait for it.
//! It knows keys and encoded values, not files, locks or tiers.
//!
//! A miss registers its key in a sharded map of flights. A caller that finds its key there
//! is a *follower*: it waits (blocking on a condition variable, or through a `Waker` for an
//! async call) until the *leader* finishes, then takes the leader's encoded value, or, if
//! the leader gave none (its body panicked, returned `Err`, or its future was dropped),
//! looks again, and one of the followers becomes the new leader. No lock is held while a
//! body runs, and keys in different flights never wait for each other.

use crate::key::Key;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};

/// Shards of the map; a power of two, indexed by the key's first byte.
const SHARDS: usize = 32;

type Flights = HashMap<Key, Arc<Flight>, BuildHasherDefault<KeyBytes>>;
type Shard = Mutex<Flights>;

fn shards() -> &'static [Shard; SHARDS] {
    static SHARDS_MAP: OnceLock<[Shard; SHARDS]> = OnceLock::new();
    SHARDS_MAP.get_or_init(|| std::array::from_fn(|_| Mutex::new(HashMap::default())))
}

/// Hashes a key by its bytes as they are: a key is a blake3 digest already, evenly spread,
/// so hashing it again (SipHash, on every miss's join and finish) buys nothing.
#[derive(Default)]
struct KeyBytes(u64);

impl Hasher for KeyBytes {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Folds in what it is given (the key's 32 bytes, and its length before them).
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }
}

fn shard(key: &Key) -> MutexGuard<'static, Flights> {
    let index = usize::from(key.as_bytes()[0]) % SHARDS;
    // A panic never happens while a shard is locked; recover from poison all the same.
    shards()[index]
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// How a flight ended.
#[derive(Clone)]
pub(crate) enum Outcome {
    /// The leader's value, encoded exactly as an entry's payload, its type, the id of its
    /// codec, and the dependencies its body recorded (encoded, opaque here).
    Value {
        type_name: &'static str,
        codec: u8,
        payload: Arc<[u8]>,
        dependencies: Arc<[u8]>,
    },
    /// The leader went away before its body finished (a dropped future): look again, and
    /// one waiter computes for the others.
    Abandoned,
    /// The leader's body failed (an `Err`, a panic) or its value cannot be stored: nothing
    /// can be shared, and a waiter that led the next try could fail as slowly, with the
    /// others queued behind it. Each waiter computes for itself, at once, as it would with
    /// the cache off, and stores what it can.
    Failed,
}

/// One key being computed.
struct Flight {
    state: Mutex<State>,
    done: Condvar,
}

struct State {
    outcome: Option<Outcome>,
    wakers: Vec<Waker>,
}

impl Flight {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What joining a key's flight made of the caller.
pub(crate) enum Joined {
    /// Nobody was computing the key: the caller does, and must end the flight.
    Leader(Leader),
    /// Someone is: wait for them.
    Follower(Follower),
}

/// Joins the flight of `key`, starting it when there is none.
pub(crate) fn join(key: &Key) -> Joined {
    let mut map = shard(key);
    if let Some(flight) = map.get(key) {
        return Joined::Follower(Follower {
            flight: Arc::clone(flight),
        });
    }
    let flight = Arc::new(Flight {
        state: Mutex::new(State {
            outcome: None,
            wakers: Vec::new(),
        }),
        done: Condvar::new(),
    });
    map.insert(*key, Arc::clone(&flight));
    Joined::Leader(Leader {
        key: *key,
        flight: Some(flight),
    })
}

/// The caller computing a key. Dropping it without [`Leader::finish`] abandons the
/// flight (a panic unwinding through the body does exactly that) and wakes the followers.
pub(crate) struct Leader {
    key: Key,
    flight: Option<Arc<Flight>>,
}

impl Leader {
    /// Whether anyone is waiting, so the caller can skip preparing a value nobody takes.
    /// Call only after [`Leader::close`]: from then on no follower can join.
    fn has_followers(flight: &Arc<Flight>) -> bool {
        Arc::strong_count(flight) > 1
    }

    /// Takes the flight out of the map: callers arriving from now on look for the entry.
    fn close(&mut self) -> Option<Arc<Flight>> {
        let flight = self.flight.take()?;
        let mut map = shard(&self.key);
        if map.get(&self.key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            map.remove(&self.key);
        }
        Some(flight)
    }

    /// Ends the flight; `value` is asked for only if some follower is waiting.
    pub(crate) fn finish(mut self, value: impl FnOnce() -> Outcome) {
        if let Some(flight) = self.close() {
            wake(&flight, value);
        }
    }
}

impl Leader {
    /// Ends the flight with nothing to share: see [`Outcome::Failed`].
    pub(crate) fn fail(mut self) {
        if let Some(flight) = self.close() {
            wake(&flight, || Outcome::Failed);
        }
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if let Some(flight) = self.close() {
            // Dropped while unwinding: the body panicked, which is a failure.
            let outcome = if std::thread::panicking() {
                Outcome::Failed
            } else {
                Outcome::Abandoned
            };
            wake(&flight, || outcome);
        }
    }
}

/// Hands the flight's `outcome` to its followers, if it has any: a closed flight nobody
/// follows is dropped as it is (waking nobody still costs a system call).
fn wake(flight: &Arc<Flight>, outcome: impl FnOnce() -> Outcome) {
    if !Leader::has_followers(flight) {
        return;
    }
    let outcome = outcome();
    let wakers = {
        let mut state = flight.state();
        state.outcome = Some(outcome);
        std::mem::take(&mut state.wakers)
    };
    flight.done.notify_all();
    for waker in wakers {
        waker.wake();
    }
}

/// A caller waiting for another's computation of the same key.
pub(crate) struct Follower {
    flight: Arc<Flight>,
}

impl Follower {
    /// Blocks the thread until the leader is done.
    pub(crate) fn wait(&self) -> Outcome {
        let mut state = self.flight.state();
        loop {
            if let Some(outcome) = &state.outcome {
                return outcome.clone();
            }
            state = self
                .flight
                .done
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The async form of [`Follower::wait`]: registers the task's waker instead of blocking.
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<Outcome> {
        let mut state = self.flight.state();
        match &state.outcome {
            Some(outcome) => Poll::Ready(outcome.clone()),
            None => {
                if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    state.wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

/// The keys whose bodies are running on this thread right now, innermost last: a call for
/// one of them is the body calling itself (a retry, a recursion on ignored arguments) and
/// must not wait for its own flight.
fn computing() -> &'static std::thread::LocalKey<std::cell::RefCell<Vec<Key>>> {
    thread_local! {
        static COMPUTING: std::cell::RefCell<Vec<Key>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    &COMPUTING
}

/// Whether the body of `key` is running on this thread, around this call.
pub(crate) fn computing_here(key: &Key) -> bool {
    computing()
        .try_with(|keys| keys.borrow().contains(key))
        .unwrap_or(false)
}

/// Marks `key`'s body as running on this thread until dropped. For an async body, held
/// around each poll: the body's own calls run inside the poll that drives them.
pub(crate) struct Computing {
    entered: bool,
}

impl Computing {
    pub(crate) fn enter(key: &Key) -> Computing {
        let entered = computing()
            .try_with(|keys| keys.borrow_mut().push(*key))
            .is_ok();
        Computing { entered }
    }
}

impl Drop for Computing {
    fn drop(&mut self) {
        if self.entered {
            let _ = computing().try_with(|keys| keys.borrow_mut().pop());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    fn value(bytes: &[u8]) -> Outcome {
        Outcome::Value {
            type_name: "t",
            codec: 1,
            payload: bytes.into(),
            dependencies: Arc::from(&[][..]),
        }
    }

    fn payload(outcome: Outcome) -> Option<Vec<u8>> {
        match outcome {
            Outcome::Value { payload, .. } => Some(payload.to_vec()),
            Outcome::Abandoned | Outcome::Failed => None,
        }
    }

    #[test]
    fn a_failed_or_panicking_leader_tells_its_followers_it_failed() {
        let key = Key([6; 32]);
        let Joined::Leader(leader) = join(&key) else {
            panic!()
        };
        let Joined::Follower(follower) = join(&key) else {
            panic!()
        };
        leader.fail();
        assert!(matches!(follower.wait(), Outcome::Failed));
        let Joined::Leader(leader) = join(&key) else {
            panic!("the key is free again")
        };
        let Joined::Follower(follower) = join(&key) else {
            panic!()
        };
        let panicked = std::thread::spawn(move || {
            let _leader = leader;
            panic!("the body panics");
        });
        assert!(panicked.join().is_err());
        assert!(matches!(follower.wait(), Outcome::Failed));
    }

    #[test]
    fn computing_marks_nest_and_end_with_their_guard() {
        let (a, b) = (Key([7; 32]), Key([8; 32]));
        assert!(!computing_here(&a));
        let outer = Computing::enter(&a);
        {
            let _inner = Computing::enter(&b);
            assert!(computing_here(&a) && computing_here(&b));
        }
        assert!(computing_here(&a) && !computing_here(&b));
        drop(outer);
        assert!(!computing_here(&a));
        // Another thread computes nothing.
        let _here = Computing::enter(&a);
        assert!(!std::thread::spawn(move || computing_here(&a))
            .join()
            .unwrap());
    }

    #[test]
    fn followers_get_the_leaders_value_and_the_key_is_free_after() {
        let key = Key([1; 32]);
        let Joined::Leader(leader) = join(&key) else {
            panic!("first caller leads")
        };
        let Joined::Follower(follower) = join(&key) else {
            panic!("second caller follows")
        };
        let waiting = std::thread::spawn(move || follower.wait());
        leader.finish(|| value(b"v"));
        assert_eq!(payload(waiting.join().unwrap()), Some(b"v".to_vec()));
        assert!(matches!(join(&key), Joined::Leader(_)));
    }

    #[test]
    fn a_dropped_leader_abandons_and_a_value_nobody_waits_for_is_not_made() {
        let key = Key([2; 32]);
        let Joined::Leader(leader) = join(&key) else {
            panic!()
        };
        let Joined::Follower(follower) = join(&key) else {
            panic!()
        };
        drop(leader);
        assert_eq!(payload(follower.wait()), None);
        let Joined::Leader(leader) = join(&key) else {
            panic!()
        };
        leader.finish(|| panic!("no follower: the value is not asked for"));
    }

    #[test]
    fn other_keys_are_independent() {
        let a = join(&Key([3; 32]));
        let b = join(&Key([4; 32]));
        assert!(matches!((a, b), (Joined::Leader(_), Joined::Leader(_))));
    }

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn async_followers_are_woken_through_their_waker() {
        let key = Key([5; 32]);
        let Joined::Leader(leader) = join(&key) else {
            panic!()
        };
        let Joined::Follower(follower) = join(&key) else {
            panic!()
        };
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        assert!(follower.poll(&mut cx).is_pending());
        assert!(follower.poll(&mut cx).is_pending(), "registered once");
        leader.finish(|| value(b"w"));
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        match follower.poll(&mut cx) {
            Poll::Ready(outcome) => assert_eq!(payload(outcome), Some(b"w".to_vec())),
            Poll::Pending => panic!("woken but not ready"),
        }
    }
}
