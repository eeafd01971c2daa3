//! Files a cached body reads without taking them as arguments: [`depends_on`] records a
//! path, with the digest of what it names, in the entry the body's value goes into, and a
//! hit re-checks every recorded path before it is used. A leaf: it knows digests of paths
//! (`inputs`) and a thread's stack of bodies being computed, not keys, entries or tiers.
//!
//! Each body being computed on a thread has a *frame* on that thread's stack: the call
//! layer pushes one around the body ([`collect`]; an `async` body's frame is pushed around
//! each poll, so it follows the task from thread to thread), and [`depends_on`] records into
//! the top one. Nested cached calls record into the innermost; what an inner call depended
//! on, whether it ran or hit, is added to the frame below it ([`inherit`]), since the outer
//! body's value was made from the inner's.
//!
//! Recorded dependencies travel with the entry as bytes ([`Recorded::encode`]): for each
//! path, its bytes as the caller named it (a relative path is resolved against the working
//! directory of the process that checks it) and the 32-byte digest of what it named.

use crate::inputs::{self, Persisted};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One recorded dependency of an entry: a path as the body named it, and the digest of what
/// it named then (a file's bytes, a directory's tree, or "missing").
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Dependency {
    /// The path, as the body passed it to [`depends_on`].
    pub path: PathBuf,
    /// What the path named when the value was computed, hashed.
    pub digest: [u8; 32],
}

/// Declares that the cached body running on this thread reads `path` (a file or a whole
/// directory tree), so that its result is recomputed when what `path` names changes.
///
/// The path's content is hashed now (a file by its bytes, a directory by its tree, a
/// missing path as missing) and recorded with the value; every later hit re-checks it,
/// from the file's identity first (device, inode, size and times: one `stat`) and from its
/// content when that moved, and is a miss when it changed. Call it **before** reading the
/// file: what the body reads afterwards is then at least as new as what was recorded, so
/// an edit in between can only cause a recomputation, never a stale hit.
///
/// Outside a cached body it does nothing (one thread-local read). Inside nested cached
/// calls it records into the innermost, and the outer call depends on it as well. In an
/// `async fn`, call it from the cached function's own task: work spawned onto other tasks
/// or threads is not part of the body's frame.
///
/// ```
/// use file_cache::{depends_on, file_cache};
/// # let dir = tempfile::tempdir().unwrap();
/// # std::env::set_var("FILE_CACHE_DIR", dir.path().join("cache"));
/// # let config = dir.path().join("model.toml");
/// # std::fs::write(&config, "temperature = 0.2").unwrap();
///
/// #[file_cache]
/// fn answer(question: &str, config: &std::path::Path) -> String {
///     depends_on(config);
///     let settings = std::fs::read_to_string(config).unwrap_or_default();
///     format!("{question} under {settings}")
/// }
///
/// let first = answer("why?", &config);
/// std::fs::write(&config, "temperature = 0.9").unwrap();
/// // The file changed: the body runs again.
/// assert_eq!(answer("why?", &config), "why? under temperature = 0.9");
/// # assert_ne!(first, answer("why?", &config));
/// ```
pub fn depends_on(path: impl AsRef<Path>) {
    let path = path.as_ref();
    let Ok(Some(persisted)) = FRAMES.try_with(|frames| frames.borrow().last().map(|f| f.index))
    else {
        return;
    };
    // Hashed outside the borrow: hashing a tree takes time, and touches no frame.
    let digest = inputs::digest(path, persisted);
    record(path, digest);
}

/// Records that the body computing on this thread depends on `path`, whose content had
/// `digest`; nothing outside a body. Also what a `files = [...]` parameter of a nested call
/// records into the body that made the call.
pub(crate) fn record(path: &Path, digest: [u8; 32]) {
    let _ = FRAMES.try_with(|frames| {
        if let Some(top) = frames.borrow_mut().last_mut() {
            top.recorded.add(path, digest);
        }
    });
}

/// Whether a body is being computed on this thread: what [`record`] needs to do anything.
pub(crate) fn in_body() -> bool {
    FRAMES
        .try_with(|frames| !frames.borrow().is_empty())
        .unwrap_or(false)
}

/// Adds dependencies, as [`Recorded::encode`] wrote them, to the body computing on this
/// thread (a nested call's, which the body's value was made from).
pub(crate) fn inherit(encoded: &[u8]) {
    if encoded.is_empty() || !in_body() {
        return;
    }
    for (path, digest) in records(encoded).map_while(|record| record) {
        record(&path, digest);
    }
}

/// The dependencies recorded by one body: each path once, with the digest it had when it
/// was first recorded (a later different digest means the file changed during the body;
/// the first then makes the next check miss).
/// Boxed, and only once something is recorded: a call that records nothing carries one
/// word for it.
#[derive(Default, Debug)]
pub(crate) struct Recorded {
    paths: Option<Box<Paths>>,
}

/// Each recorded path, with its digest.
type Paths = BTreeMap<PathBuf, [u8; 32]>;

impl Recorded {
    fn add(&mut self, path: &Path, digest: [u8; 32]) {
        let paths = self.paths.get_or_insert_with(Default::default);
        if !paths.contains_key(path) {
            paths.insert(path.to_path_buf(), digest);
        }
    }

    /// The bytes an entry records: for each path, its length (u32 LE), its bytes, and its
    /// digest. Empty for none.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (path, digest) in self.paths.iter().flat_map(|paths| paths.iter()) {
            let bytes = path_bytes(path);
            let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&bytes[..len as usize]);
            out.extend_from_slice(digest);
        }
        out
    }
}

/// One body's frame: where [`depends_on`] records, and the digest index it consults.
struct Frame {
    index: Option<&'static dyn Persisted>,
    recorded: Recorded,
}

thread_local! {
    /// The bodies computing on this thread, innermost last.
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

/// Runs `body` with a frame of its own on this thread's stack, continuing `recorded` (what
/// earlier polls of the same `async` body recorded), and puts what it recorded back into
/// `recorded`, also when `body` panics. `index` is the root's digest index, consulted by
/// [`depends_on`] before hashing.
pub(crate) fn collect<R>(
    index: Option<&'static dyn Persisted>,
    recorded: &mut Recorded,
    body: impl FnOnce() -> R,
) -> R {
    /// Pops the frame it pushed, into the body's record.
    struct Pop<'a> {
        depth: Option<usize>,
        into: &'a mut Recorded,
    }
    impl Drop for Pop<'_> {
        fn drop(&mut self) {
            let Some(depth) = self.depth else {
                return;
            };
            let _ = FRAMES.try_with(|frames| {
                let mut frames = frames.borrow_mut();
                // Frames above this one were pushed by bodies inside it, which popped them;
                // anything left there belongs to no body any more.
                frames.truncate(depth + 1);
                if frames.len() == depth + 1 {
                    if let Some(frame) = frames.pop() {
                        *self.into = frame.recorded;
                    }
                }
            });
        }
    }
    let frame = Frame {
        index,
        recorded: std::mem::take(recorded),
    };
    let depth = FRAMES
        .try_with(|frames| {
            let mut frames = frames.borrow_mut();
            frames.push(frame);
            frames.len() - 1
        })
        .ok();
    let _pop = Pop {
        depth,
        into: recorded,
    };
    body()
}

/// The dependencies [`Recorded::encode`] wrote; `None` for bytes it did not write.
pub(crate) fn decode(bytes: &[u8]) -> Option<Vec<Dependency>> {
    records(bytes)
        .map(|record| {
            record.map(|(path, digest)| Dependency {
                path: path.into_owned(),
                digest,
            })
        })
        .collect()
}

/// Each record [`Recorded::encode`] wrote, borrowed from `bytes` where the platform allows;
/// `None` for one that does not parse (and nothing after it).
fn records(mut bytes: &[u8]) -> impl Iterator<Item = Option<(Cow<'_, Path>, [u8; 32])>> {
    std::iter::from_fn(move || {
        if bytes.is_empty() {
            return None;
        }
        let mut next = || {
            let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
            let path = path_from(bytes.get(4..4 + len)?)?;
            let digest = bytes.get(4 + len..4 + len + 32)?.try_into().ok()?;
            bytes = &bytes[4 + len + 32..];
            Some((path, digest))
        };
        let record = next();
        if record.is_none() {
            bytes = &[];
        }
        Some(record)
    })
}

/// Whether every dependency in `encoded` still names what it named when recorded: `Err`
/// with the first path that changed (or why the bytes cannot be read). `index` is the
/// root's digest index: an unchanged file is known by its identity, without a read.
pub(crate) fn check(encoded: &[u8], index: Option<&dyn Persisted>) -> Result<(), String> {
    for record in records(encoded) {
        let Some((path, digest)) = record else {
            return Err("its list of dependencies does not parse".to_owned());
        };
        if inputs::digest(&path, index) != digest {
            return Err(format!("{} changed since it was computed", path.display()));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn path_bytes(path: &Path) -> Cow<'_, [u8]> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().into()
}

#[cfg(unix)]
fn path_from(bytes: &[u8]) -> Option<Cow<'_, Path>> {
    use std::os::unix::ffi::OsStrExt;
    Some(Cow::Borrowed(Path::new(std::ffi::OsStr::from_bytes(bytes))))
}

/// Elsewhere a path is recorded as UTF-8: one that is not (rare outside Unix) is recorded
/// lossily, names no file when checked, and so makes its entry a miss, never a wrong hit.
#[cfg(not(unix))]
fn path_bytes(path: &Path) -> Cow<'_, [u8]> {
    match path.to_string_lossy() {
        Cow::Borrowed(text) => text.as_bytes().into(),
        Cow::Owned(text) => text.into_bytes().into(),
    }
}

#[cfg(not(unix))]
fn path_from(bytes: &[u8]) -> Option<Cow<'_, Path>> {
    std::str::from_utf8(bytes)
        .ok()
        .map(|text| Cow::Borrowed(Path::new(text)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn outside_a_body_nothing_is_recorded_or_hashed() {
        let before = inputs::files_hashed();
        depends_on("/no/such/file/anywhere");
        assert!(!in_body());
        assert_eq!(inputs::files_hashed(), before);
    }

    #[test]
    fn a_body_records_each_path_once_with_its_first_digest() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        let same_as_first = dir.path().join("copy");
        fs::write(&config, "a").unwrap();
        fs::write(&same_as_first, "a").unwrap();
        let mut recorded = Recorded::default();
        collect(None, &mut recorded, || {
            depends_on(&config);
            fs::write(&config, "b").unwrap();
            depends_on(&config);
            depends_on(dir.path().join("missing"));
        });
        let encoded = recorded.encode();
        let dependencies = decode(&encoded).unwrap();
        assert_eq!(dependencies.len(), 2);
        let first = dependencies.iter().find(|d| d.path == config).unwrap();
        assert_eq!(first.digest, inputs::digest(&same_as_first, None));
        // The file changed during the body: the entry's check misses, naming it.
        let error = check(&encoded, None).unwrap_err();
        assert!(error.contains("config"), "{error}");
        fs::write(&config, "a").unwrap();
        assert_eq!(check(&encoded, None), Ok(()));
    }

    #[test]
    fn nested_bodies_record_into_the_innermost_and_the_outer_inherits() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let mut outer = Recorded::default();
        let mut inner = Recorded::default();
        collect(None, &mut outer, || {
            depends_on(&a);
            collect(None, &mut inner, || depends_on(&b));
            assert_eq!(decode(&inner.encode()).unwrap().len(), 1);
            inherit(&inner.encode());
        });
        let paths: Vec<_> = decode(&inner.encode())
            .unwrap()
            .into_iter()
            .map(|d| d.path)
            .collect();
        assert_eq!(paths, std::slice::from_ref(&b));
        let paths: Vec<_> = decode(&outer.encode())
            .unwrap()
            .into_iter()
            .map(|d| d.path)
            .collect();
        assert_eq!(paths, [a, b]);
        assert!(!in_body());
    }

    #[test]
    fn a_body_that_panics_leaves_no_frame_behind() {
        let mut recorded = Recorded::default();
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            collect(None, &mut recorded, || {
                depends_on("some/file");
                panic!("the body failed");
            })
        }));
        assert!(unwound.is_err());
        assert!(!in_body());
        assert_eq!(decode(&recorded.encode()).unwrap().len(), 1);
    }

    #[test]
    fn a_body_resumed_in_several_polls_keeps_what_it_recorded() {
        let mut recorded = Recorded::default();
        collect(None, &mut recorded, || depends_on("first"));
        collect(None, &mut recorded, || depends_on("second"));
        assert_eq!(decode(&recorded.encode()).unwrap().len(), 2);
    }

    #[test]
    fn bytes_that_are_no_list_are_refused() {
        assert_eq!(decode(&[]), Some(Vec::new()));
        assert_eq!(decode(&[9, 0, 0, 0, b'x']), None);
        assert!(check(&[1, 2, 3], None).is_err());
        let mut recorded = Recorded::default();
        recorded.add(Path::new("x"), [1; 32]);
        let encoded = recorded.encode();
        assert!(decode(&encoded[..encoded.len() - 1]).is_none());
    }
}
