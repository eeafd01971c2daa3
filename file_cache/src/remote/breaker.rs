//! A circuit breaker: after a run of failures the remote is skipped for a while, then one
//! call probes it again. It counts failures and time; it knows no backend.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Consecutive failures that open the breaker.
pub(crate) const THRESHOLD: u32 = 3;

/// What a failure did to the breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tripped {
    /// Still closed: later calls keep trying.
    No,
    /// This failure opened it: the remote is skipped until the retry time.
    Now,
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    /// While set and in the future, the remote is skipped.
    open_until: Option<Instant>,
}

/// `now + wait`, or as far as an `Instant` reaches: a wait too long to add is as good as
/// forever, never a panic.
fn until_after(now: Instant, wait: Duration) -> Instant {
    let mut wait = wait;
    loop {
        if let Some(until) = now.checked_add(wait) {
            return until;
        }
        wait /= 2;
    }
}

/// Consecutive-failure breaker; time is passed in so tests need no clock.
#[derive(Debug)]
pub(crate) struct Breaker {
    state: Mutex<State>,
    retry_after: Duration,
}

impl Breaker {
    pub(crate) fn new(retry_after: Duration) -> Breaker {
        Breaker {
            state: Mutex::new(State::default()),
            retry_after,
        }
    }

    /// Whether a request may go to the remote now. Once the open period is over, one
    /// caller is let through as a probe and the others keep skipping until it reports.
    pub(crate) fn allow(&self, now: Instant) -> bool {
        let mut state = self.lock();
        match state.open_until {
            None => true,
            Some(until) if now < until => false,
            Some(_) => {
                state.open_until = Some(until_after(now, self.retry_after));
                true
            }
        }
    }

    /// Records a success; returns whether the remote had been failing.
    pub(crate) fn success(&self) -> bool {
        let mut state = self.lock();
        let was_failing = state.failures > 0;
        *state = State::default();
        was_failing
    }

    /// Records a failure.
    pub(crate) fn failure(&self, now: Instant) -> Tripped {
        let mut state = self.lock();
        state.failures = state.failures.saturating_add(1);
        if state.failures >= THRESHOLD {
            let was_open = state.open_until.is_some();
            state.open_until = Some(until_after(now, self.retry_after));
            if !was_open {
                return Tripped::Now;
            }
        }
        Tripped::No
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is two plain fields, valid after any panic: ignore poisoning.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_repeated_failures_then_probes_once() {
        let breaker = Breaker::new(Duration::from_secs(30));
        let t0 = Instant::now();
        assert!(breaker.allow(t0));
        assert_eq!(breaker.failure(t0), Tripped::No);
        assert_eq!(breaker.failure(t0), Tripped::No);
        assert!(breaker.allow(t0), "two failures do not open it");
        assert_eq!(breaker.failure(t0), Tripped::Now);
        assert!(!breaker.allow(t0 + Duration::from_secs(29)));
        // Retry time: one probe goes through, the next caller still skips.
        let later = t0 + Duration::from_secs(31);
        assert!(breaker.allow(later));
        assert!(!breaker.allow(later));
        // The probe fails: open again for a full period, without "tripping" anew.
        assert_eq!(breaker.failure(later), Tripped::No);
        assert!(!breaker.allow(later + Duration::from_secs(29)));
        // The next probe succeeds: closed.
        let much_later = later + Duration::from_secs(31);
        assert!(breaker.allow(much_later));
        assert!(breaker.success());
        assert!(breaker.allow(much_later));
        assert!(!breaker.success(), "already healthy");
    }

    #[test]
    fn a_success_resets_the_count() {
        let breaker = Breaker::new(Duration::from_secs(30));
        let t0 = Instant::now();
        breaker.failure(t0);
        breaker.failure(t0);
        breaker.success();
        breaker.failure(t0);
        breaker.failure(t0);
        assert!(breaker.allow(t0));
    }
}
