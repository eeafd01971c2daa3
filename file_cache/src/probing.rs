//! The question [`crate::is_cached`] asks: a flag on this thread that makes the next cached
//! call answer instead of running its body, and the unwinding that carries the answer back.
//! A leaf: it knows neither the call that answers (`call::probe`) nor the tiers it asks, so
//! the public functions that ask (`manage`) need nothing of the call path.

thread_local! {
    /// Whether [`crate::is_cached`] is asking, on this thread.
    static PROBING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// What unwinds from a probed call to [`probe`].
struct ProbeAnswer(bool);

/// Runs `run` with the question armed on this thread: the first cached call it makes
/// answers by unwinding ([`answer`]); `false` when it makes none.
#[cfg(panic = "unwind")]
pub(crate) fn probe(run: impl FnOnce()) -> bool {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            PROBING.with(|probing| probing.set(self.0));
        }
    }
    let _restore = Restore(PROBING.with(|probing| probing.replace(true)));
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(()) => false,
        Err(payload) => match payload.downcast::<ProbeAnswer>() {
            Ok(answer) => answer.0,
            // A real panic while evaluating the call: it is the caller's.
            Err(payload) => std::panic::resume_unwind(payload),
        },
    }
}

/// Whether this call is the one asked about; asking disarms the question, so only the first
/// cached call answers. One thread-local read.
#[inline]
pub(crate) fn asked() -> bool {
    // `try_with`: a call from a thread-local's destructor is never a probe, and must not
    // panic.
    PROBING
        .try_with(|probing| probing.replace(false))
        .unwrap_or(false)
}

/// Answers the question by unwinding to [`probe`].
pub(crate) fn answer(cached: bool) -> ! {
    std::panic::resume_unwind(Box::new(ProbeAnswer(cached)))
}
