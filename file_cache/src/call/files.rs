//! `files = [...]` parameters: [`FilesArg`], what such a parameter may be (the key's part
//! for one is `KeyBuilder::files`: the digest of every path it names). For an `async fn`,
//! `KeyBuilder::files_digests` takes those digests first, off the executor's thread whenever that
//! means reading files.

use crate::config::{config, Mode};
use crate::inputs;
use crate::site::Site;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// A parameter named in `files = [...]`: something that names paths. Implemented for the
/// path types (`Path`, `PathBuf`, `str`, `String`, `OsStr`, `OsString`, a `Cow` of `Path`,
/// `str` or `OsStr`),
/// references and boxes of those, `Option` of them (`None` names nothing), and slices,
/// arrays and `Vec`s of them; a generic `P: AsRef<Path>` is keyed through its `AsRef`.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot name a file, so it cannot be in `files = [...]`",
    label = "named in `files = [...]`, so its type must be a path (`AsRef<Path>`), an `Option` of one, or a slice or `Vec` of them",
    note = "`files = [...]` keys a parameter by the file or directory it names; a parameter that does not name one belongs in the key as a value only: remove it from `files`"
)]
pub trait FilesArg {
    /// Calls `each` with every path this value names, in order.
    fn each_path(&self, each: &mut dyn FnMut(&std::path::Path));
}

macro_rules! files_arg_as_ref {
    ($($ty:ty),*) => {$(
        impl FilesArg for $ty {
            fn each_path(&self, each: &mut dyn FnMut(&std::path::Path)) {
                each(AsRef::<std::path::Path>::as_ref(self));
            }
        }
    )*};
}

files_arg_as_ref!(
    std::path::Path,
    std::path::PathBuf,
    str,
    String,
    std::ffi::OsStr,
    std::ffi::OsString,
    std::borrow::Cow<'_, std::path::Path>,
    std::borrow::Cow<'_, std::ffi::OsStr>
);

impl FilesArg for std::borrow::Cow<'_, str> {
    fn each_path(&self, each: &mut dyn FnMut(&std::path::Path)) {
        each(std::path::Path::new(&**self));
    }
}

impl<T: ?Sized + FilesArg> FilesArg for &T {
    fn each_path(&self, each: &mut dyn FnMut(&std::path::Path)) {
        (**self).each_path(each);
    }
}

impl<T: ?Sized + FilesArg> FilesArg for &mut T {
    fn each_path(&self, each: &mut dyn FnMut(&std::path::Path)) {
        (**self).each_path(each);
    }
}

impl<T: ?Sized + FilesArg> FilesArg for Box<T> {
    fn each_path(&self, each: &mut dyn FnMut(&std::path::Path)) {
        (**self).each_path(each);
    }
}

impl<T: FilesArg> FilesArg for Option<T> {
    fn each_path(&self, each: &mut dyn FnMut(&std::path::Path)) {
        if let Some(value) = self {
            value.each_path(each);
        }
    }
}

impl<T: FilesArg> FilesArg for [T] {
    fn each_path(&self, each: &mut dyn FnMut(&std::path::Path)) {
        for value in self {
            value.each_path(each);
        }
    }
}

impl<T: FilesArg, const N: usize> FilesArg for [T; N] {
    fn each_path(&self, each: &mut dyn FnMut(&std::path::Path)) {
        self[..].each_path(each);
    }
}

impl<T: FilesArg> FilesArg for Vec<T> {
    fn each_path(&self, each: &mut dyn FnMut(&std::path::Path)) {
        self[..].each_path(each);
    }
}

/// The digests of the paths a `files = [...]` parameter of an `async fn` names, taken
/// without blocking the executor: when every path is answered by a `stat` (a remembered
/// file, a missing path), at once, on the polling thread; when one means reading (a file
/// not seen since it changed, any directory tree), on a thread of its own, which wakes the
/// task when done. The key is then built from them with `KeyBuilder::files_digested`.
pub(crate) fn files_digests<T: ?Sized + FilesArg>(site: &'static Site, value: &T) -> FilesDigests {
    if config().mode == Mode::Off || site.is_uncacheable() {
        // No key will be built.
        return FilesDigests::ready(Vec::new());
    }
    let mut paths: Vec<PathBuf> = Vec::new();
    value.each_path(&mut |path| paths.push(path.to_path_buf()));
    let index = site.digest_index();
    if !paths.iter().any(|path| inputs::needs_reading(path, index)) {
        return FilesDigests::ready(digest_all(site, &paths));
    }
    let handoff = Arc::new(Handoff::default());
    let done = Arc::clone(&handoff);
    let spawned = std::thread::Builder::new()
        .name("file_cache-files".to_owned())
        .spawn(move || {
            for path in &paths {
                log::debug!(
                    "file_cache: {}: keying {} on a thread of its own",
                    site.display_name(),
                    path.display()
                );
            }
            done.finish(digest_all(site, &paths));
        });
    match spawned {
        Ok(_) => FilesDigests {
            state: State::Waiting(handoff),
        },
        // No thread to hash with: hash here rather than not at all.
        Err(error) => {
            log::debug!("file_cache: no thread to hash files with ({error}); hashing inline");
            let mut paths: Vec<PathBuf> = Vec::new();
            value.each_path(&mut |path| paths.push(path.to_path_buf()));
            FilesDigests::ready(digest_all(site, &paths))
        }
    }
}

fn digest_all(site: &'static Site, paths: &[PathBuf]) -> Vec<[u8; 32]> {
    let index = site.digest_index();
    paths
        .iter()
        .map(|path| inputs::digest(path, index))
        .collect()
}

/// The future `KeyBuilder::files_digests` returns: `Send`, and borrowing nothing. It hashes
/// on the polling thread only what a `stat` answers, and otherwise on a thread of its own.
#[doc(hidden)]
pub struct FilesDigests {
    state: State,
}

enum State {
    Ready(Vec<[u8; 32]>),
    Waiting(Arc<Handoff>),
}

impl FilesDigests {
    fn ready(digests: Vec<[u8; 32]>) -> FilesDigests {
        FilesDigests {
            state: State::Ready(digests),
        }
    }
}

/// Where the hashing thread leaves its digests, and whom it wakes.
#[derive(Default)]
struct Handoff {
    slot: Mutex<Slot>,
}

/// The digests once taken, and the waker of the task waiting for them.
#[derive(Default)]
struct Slot {
    digests: Option<Vec<[u8; 32]>>,
    waker: Option<Waker>,
}

impl Handoff {
    fn finish(&self, digests: Vec<[u8; 32]>) {
        let waker = {
            let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            slot.digests = Some(digests);
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Future for FilesDigests {
    type Output = Vec<[u8; 32]>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<[u8; 32]>> {
        match &mut self.get_mut().state {
            State::Ready(digests) => Poll::Ready(std::mem::take(digests)),
            State::Waiting(handoff) => {
                let mut slot = handoff.slot.lock().unwrap_or_else(PoisonError::into_inner);
                match slot.digests.take() {
                    Some(digests) => Poll::Ready(digests),
                    None => {
                        slot.waker = Some(cx.waker().clone());
                        Poll::Pending
                    }
                }
            }
        }
    }
}
