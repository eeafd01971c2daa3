//! The hasher and its sink pool: [`KeyHasher`] frames labels, raw bytes and values into one
//! stream through a [`Sink`], reused per thread (and one static sink for the first, so a
//! fresh process allocates none). It owns the pool and the key's framing; the stream's
//! bytes are the sink's, a value's encoding the serializer's.

use super::sink::*;
use super::*;

/// Streaming canonical hasher: labels, raw bytes and values in, one [`Key`] out.
///
/// After [`KeyHasher::write_value`] returns an error, the stream holds part of that value:
/// discard the hasher.
pub(crate) struct KeyHasher {
    // Boxed (a sink is its buffer plus a ~2 KB blake3 hasher) and reused: dropping a
    // hasher hands its sink back to its thread (see `SPARE`), so a call allocates none.
    pub(super) sink: Option<SinkBox>,
}

thread_local! {
    /// One idle sink per thread, reused by the next [`KeyHasher`] built on it.
    pub(super) static SPARE: std::cell::Cell<Option<SinkBox>> = const { std::cell::Cell::new(None) };
}

/// An owned sink: on the heap like a `Box<Sink>`, or the one in [`STATIC_SINK`].
///
/// Why a static one: a process's first call builds its first sink, and a heap sink's
/// 64 KiB buffer is zeroed when it is built: 16 pages touched, each a page fault (2.3 µs
/// each on the benchmark's VM), with the heap grown for it, for a key of a few bytes. A
/// static that starts as zeros lives in the zero-filled part of the program's image: the
/// kernel provides each page on its first touch, so a small key touches one page of the
/// buffer. One sink at a time can use it (the first thread to ask, in practice the main
/// thread, which keeps it in `SPARE`); others come from the heap.
pub(super) struct SinkBox {
    pub(super) sink: std::ptr::NonNull<Sink>,
    /// Whether `sink` is [`STATIC_SINK`]'s (else it came from `Box::leak`).
    pub(super) is_static: bool,
}

/// Room for one sink, all zeros until first used (see [`SinkBox`]).
pub(super) struct StaticSink(pub(super) std::cell::UnsafeCell<std::mem::MaybeUninit<Sink>>);

// SAFETY: only the `SinkBox` that holds `STATIC_SINK_TAKEN` touches the sink.
#[allow(unsafe_code)]
unsafe impl Sync for StaticSink {}

pub(super) static STATIC_SINK: StaticSink =
    StaticSink(std::cell::UnsafeCell::new(std::mem::MaybeUninit::zeroed()));

/// Whether a `SinkBox` holds [`STATIC_SINK`].
pub(super) static STATIC_SINK_TAKEN: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

// SAFETY: a `SinkBox` owns its sink as a `Box` would (the static one through
// `STATIC_SINK_TAKEN`), and `Sink` is `Send`.
#[allow(unsafe_code)]
unsafe impl Send for SinkBox {}

impl SinkBox {
    #[allow(unsafe_code)]
    pub(super) fn new() -> SinkBox {
        use std::sync::atomic::Ordering;
        if !STATIC_SINK_TAKEN.load(Ordering::Relaxed)
            && !STATIC_SINK_TAKEN.swap(true, Ordering::Acquire)
        {
            let at = STATIC_SINK.0.get().cast::<Sink>();
            // SAFETY: taking the flag makes this the only user of the static sink, whose
            // last user (if any) dropped its fields before giving the flag back. Its
            // buffer is initialized: zeros from the start, or the bytes a last user
            // wrote; `init_fields` writes the rest.
            unsafe { Sink::init_fields(at) };
            return SinkBox {
                sink: std::ptr::NonNull::new(at).expect("a static is not null"),
                is_static: true,
            };
        }
        SinkBox {
            sink: std::ptr::NonNull::from(Box::leak(Sink::boxed())),
            is_static: false,
        }
    }
}

impl std::ops::Deref for SinkBox {
    type Target = Sink;

    #[inline]
    #[allow(unsafe_code)]
    fn deref(&self) -> &Sink {
        // SAFETY: `sink` is initialized and owned by `self` for its whole life.
        unsafe { self.sink.as_ref() }
    }
}

impl std::ops::DerefMut for SinkBox {
    #[inline]
    #[allow(unsafe_code)]
    fn deref_mut(&mut self) -> &mut Sink {
        // SAFETY: as in `deref`, and `&mut self` makes this the only reference.
        unsafe { self.sink.as_mut() }
    }
}

impl Drop for SinkBox {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        let at = self.sink.as_ptr();
        if self.is_static {
            // SAFETY: the sink is initialized and this is its only user: its fields are
            // dropped once, then the static is given back (the buffer stays initialized).
            unsafe { std::ptr::drop_in_place(at) };
            STATIC_SINK_TAKEN.store(false, std::sync::atomic::Ordering::Release);
        } else {
            // SAFETY: `at` came from `Box::leak` and is given back once.
            drop(unsafe { Box::from_raw(at) });
        }
    }
}

impl KeyHasher {
    pub(crate) fn new() -> KeyHasher {
        KeyHasher::with_buffer_len(FLUSH_AT)
    }

    /// A hasher that hands blake3 at most `buf_len` buffered bytes at once (0: every
    /// write goes to blake3 as is). The key does not depend on it; tests use it to prove
    /// that.
    pub(crate) fn with_buffer_len(buf_len: usize) -> KeyHasher {
        let mut hasher = KeyHasher::bare(buf_len);
        // A label rather than blake3's derive-key mode: same separation, and no
        // compression of a context string on every call.
        hasher.write_label(KEY_FORMAT);
        hasher
    }

    /// A hasher whose stream starts with `prefix`, the digest of another key stream
    /// (which started with the format's label), framed as raw bytes: what a cached
    /// function's calls continue from (see `KeyBuilder::begin`).
    #[inline]
    pub(crate) fn continuing(prefix: &[u8; 32]) -> KeyHasher {
        let mut hasher = KeyHasher::bare(FLUSH_AT);
        hasher.write_raw(prefix);
        hasher
    }

    pub(super) fn bare(buf_len: usize) -> KeyHasher {
        let mut sink = SPARE
            .try_with(std::cell::Cell::take)
            .ok()
            .flatten()
            .unwrap_or_else(SinkBox::new);
        sink.limit = buf_len.min(BUF_LEN);
        KeyHasher { sink: Some(sink) }
    }

    #[inline]
    pub(super) fn sink(&mut self) -> &mut Sink {
        // Only `finish` and `drop` take it out, and both consume the hasher.
        self.sink.get_or_insert_with(SinkBox::new)
    }

    /// Feeds a framed label (a name, a type name, a format tag).
    #[inline]
    pub(crate) fn write_label(&mut self, label: &str) {
        self.sink().framed(tag::LABEL, label.as_bytes());
    }

    /// Feeds raw framed bytes (e.g. a code hash).
    #[inline]
    pub(crate) fn write_raw(&mut self, bytes: &[u8]) {
        self.sink().framed(tag::RAW, bytes);
    }

    /// Feeds a value through the canonical serializer.
    pub(crate) fn write_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), KeyError> {
        let sink = self.sink();
        match value.serialize(&mut *sink) {
            Ok(value) => {
                sink.place(value);
                Ok(())
            }
            Err(Error(msg)) => Err(KeyError(msg.into())),
        }
    }

    #[inline]
    pub(crate) fn finish(mut self) -> Key {
        Key(self.sink().digest())
    }
}

impl Drop for KeyHasher {
    fn drop(&mut self) {
        if let Some(mut sink) = self.sink.take() {
            sink.reset();
            // During thread teardown the slot may be gone: then the sink is just freed.
            let _ = SPARE.try_with(|spare| spare.set(Some(sink)));
        }
    }
}
