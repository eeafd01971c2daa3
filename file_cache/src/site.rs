//! Sites: the static description of one cached function, and its per-process state. Its
//! slots (the root's verdict, the value type's fingerprint, the counters, the codec) are
//! filled by the site itself from the layers below; it knows nothing of calls, tiers or the
//! remote.

use crate::codec::Codec;
use crate::disk::root::{self, Root};
use crate::fingerprint::{self, Fingerprint, Untraceable};
use serde::de::DeserializeOwned;
use std::any::type_name;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// What the macro knows about a cached function at compile time.
#[doc(hidden)]
#[derive(Debug)]
pub struct SiteInfo {
    /// `module_path!()` where the function is defined.
    pub module_path: &'static str,
    /// The function's name.
    pub name: &'static str,
    /// blake3 of the function's tokens (see the macro crate).
    pub code_hash: [u8; 32],
    /// `#[file_cache(dir = "...")]`: this function's root; a relative path is joined onto
    /// the root in force (`FILE_CACHE_DIR` or the default), an absolute one replaces it.
    pub dir: Option<&'static str>,
    /// `#[file_cache(ttl = "12h")]`: entries older than this are a miss and are replaced.
    pub ttl: Option<Duration>,
    /// Whether the per-process memory tier may keep this function's values
    /// (`#[file_cache(memory = false)]` turns it off).
    pub memory: bool,
    /// `lock = true|false`: whether a miss takes the cross-process lock of its entry, so
    /// that concurrent processes compute one cold key once.
    pub lock: bool,
    /// How the function was compiled: `cfg!(debug_assertions)`, then the value of every
    /// `cfg` predicate in its tokens, as evaluated in the crate that defines it. Part of
    /// every key, so a debug and a release build, or builds with different features,
    /// never share entries.
    pub cfg: &'static [bool],
    /// `#[file_cache(codec = "msgpack")]`: the codec the function starts with. From
    /// postcard (the default), a function whose values postcard cannot hold switches to
    /// MessagePack at its first such value.
    pub codec: Codec,
}

impl SiteInfo {
    /// Every field at its default, for `SiteInfo { name, ..SiteInfo::DEFAULT }`: the macro
    /// writes only the fields an option sets, so adding an option touches no other code.
    pub const DEFAULT: SiteInfo = SiteInfo {
        module_path: "",
        name: "",
        code_hash: [0; 32],
        dir: None,
        ttl: None,
        memory: true,
        lock: true,
        cfg: &[],
        codec: Codec::Postcard,
    };
}

/// One cached function: its compile-time description and per-process state.
///
/// The macro places one in a `static` inside the rewritten function.
#[doc(hidden)]
#[derive(Debug)]
pub struct Site {
    pub(crate) info: SiteInfo,
    pub(crate) state: SiteState,
}

impl Site {
    /// Wraps the macro's description; used in a `static` initializer.
    pub const fn new(info: SiteInfo) -> Site {
        let codec = AtomicU8::new(info.codec.id());
        Site {
            info,
            state: SiteState {
                warned: AtomicU8::new(0),
                codec,
                uncacheable: OnceLock::new(),
                dir: OnceLock::new(),
                entry_len: AtomicUsize::new(0),
                layout: OnceLock::new(),
                stats: SiteStats::new(),
                root: OnceLock::new(),
                key_prefix: OnceLock::new(),
                digest_index: OnceLock::new(),
            },
        }
    }

    /// The root this function's directory lives in: the configured root, or the `dir`
    /// option resolved against it.
    pub(crate) fn root(&self) -> Cow<'static, Path> {
        let root = &crate::config::config().root;
        match self.info.dir {
            None => Cow::Borrowed(root.as_path()),
            Some(dir) => Cow::Owned(root.join(dir)),
        }
    }

    /// The root's index of input files' digests (for `files = [...]` and `depends_on`),
    /// when the root is one the cache may use.
    pub(crate) fn digest_index(&self) -> Option<&'static dyn crate::inputs::Persisted> {
        let found = self.state.digest_index.get_or_init(|| {
            let index = root_of(self)
                .usable()
                .then(|| crate::disk::digests::for_root(&self.root()));
            DigestIndex(index)
        });
        found.0.map(|index| index as &dyn crate::inputs::Persisted)
    }

    /// `module::path::name`, as users see the function in logs.
    pub(crate) fn display_name(&self) -> String {
        format!("{}::{}", self.info.module_path, self.info.name)
    }

    /// Logs `message` at `warn` the first time `problem` happens at this site, at `debug`
    /// after that: a broken cache must be visible, but not flood the log.
    pub(crate) fn warn_once(&self, problem: Problem, message: impl FnOnce() -> String) {
        let bit = problem as u8;
        if self.state.warned.fetch_or(bit, Ordering::Relaxed) & bit == 0 {
            log::warn!("file_cache: {}", message());
        } else {
            log::debug!("file_cache: {}", message());
        }
    }

    /// Marks the function as one whose values cannot be cached in this process, for
    /// `reason` (what [`crate::stats()`] reports). `message` is logged at `warn`, and, the
    /// first time, when no logger is installed at all (`log::max_level()` is `Off`: the
    /// default of a program that installs none), also written to stderr as one line: a
    /// function that silently recomputes on every call is the one failure a user must not
    /// miss. Only the first reason counts.
    pub(crate) fn set_uncacheable(&self, reason: String, message: impl FnOnce() -> String) {
        let first = self.state.uncacheable.set(reason).is_ok();
        let message = message();
        if first && log::max_level() == log::LevelFilter::Off {
            eprintln!("file_cache: warning: {message}");
        }
        self.warn_once(Problem::Value, || message);
    }

    pub(crate) fn is_uncacheable(&self) -> bool {
        self.state.uncacheable.get().is_some()
    }

    /// Why the function's values are not cached in this process, if they are not.
    pub(crate) fn uncacheable_reason(&self) -> Option<&str> {
        self.state.uncacheable.get().map(String::as_str)
    }

    /// The codec the function's next value is stored with (a hit decodes with the one its
    /// entry names).
    pub(crate) fn codec(&self) -> Codec {
        Codec::from_id(self.state.codec.load(Ordering::Relaxed)).unwrap_or(Codec::Postcard)
    }

    /// The layout fingerprint of `T` as this function's value type: traced on the first
    /// call, then read from the site (one comparison of the type's name).
    ///
    /// A generic function's site is shared by all its instantiations: the first value type
    /// is kept in the site, any other in a process-wide table.
    pub(crate) fn fingerprint<T: DeserializeOwned>(&self) -> Fingerprint {
        let name = type_name::<T>();
        let known = self.state.layout.get_or_init(|| Known {
            type_name: name,
            fingerprint: self.trace::<T>(),
        });
        if std::ptr::eq(known.type_name, name) || known.type_name == name {
            return known.fingerprint;
        }
        static OTHERS: Mutex<BTreeMap<(usize, &'static str), Fingerprint>> =
            Mutex::new(BTreeMap::new());
        let key = (self as *const Site as usize, name);
        let cached = OTHERS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .copied();
        cached.unwrap_or_else(|| {
            let fingerprint = self.trace::<T>();
            OTHERS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, fingerprint);
            fingerprint
        })
    }

    /// Traces `T`, falling back to its name (with one `info`) when it cannot be traced. A
    /// panicking impl is caught: the cache never fails the call.
    fn trace<T: DeserializeOwned>(&self) -> Fingerprint {
        let name = type_name::<T>();
        let traced = std::panic::catch_unwind(fingerprint::trace::<T>)
            .unwrap_or_else(|_| Err(Untraceable("its `Deserialize` impl panicked".to_owned())));
        traced.unwrap_or_else(|reason| {
            log::info!(
                "file_cache: {}: cannot trace the serde layout of `{name}` ({reason}); its \
                 entries are checked against the type's name only: after editing `{name}`, \
                 change `#[file_cache(version = \"...\")]`",
                self.display_name()
            );
            fingerprint::by_name(name)
        })
    }

    /// Stores the function's values with `codec` from now on, in this process.
    pub(crate) fn switch_codec(&self, codec: Codec) {
        self.state.codec.store(codec.id(), Ordering::Relaxed);
    }
}

/// The verdict on the root of `site`'s function, checked (and the root created) the first
/// time any function uses that root.
pub(crate) fn root_of(site: &Site) -> &'static Root {
    site.state.root.get_or_init(|| root::verdict(&site.root()))
}

/// Mutable per-process state of a site; every field works from a `static`.
#[derive(Debug)]
pub(crate) struct SiteState {
    warned: AtomicU8,
    /// The id of the codec new values are stored with: the `codec` option's, until a value
    /// that postcard cannot hold switches it to MessagePack.
    codec: AtomicU8,
    /// Why the function's values cannot be cached, once one could not be.
    uncacheable: OnceLock<String>,
    /// The function's directory under the root, computed on first use.
    pub(crate) dir: OnceLock<PathBuf>,
    /// Size of the last entry file read or written: the size of the next read's buffer.
    pub(crate) entry_len: AtomicUsize,
    /// The value type's layout fingerprint, traced on first use.
    pub(crate) layout: OnceLock<Known>,
    /// Counters for [`crate::stats()`], and what they still owe the function's hit log.
    pub(crate) stats: SiteStats,
    /// The verdict on the function's root, looked up on first use.
    pub(crate) root: OnceLock<&'static Root>,
    /// The digest of the constant start of every key of this function (see
    /// `KeyBuilder::begin`), computed on first use.
    pub(crate) key_prefix: OnceLock<[u8; 32]>,
    /// The root's index of input files' digests, looked up on first use.
    digest_index: OnceLock<DigestIndex>,
}

/// [`Site::digest_index`]'s answer, kept.
struct DigestIndex(Option<&'static crate::disk::digests::Index>);

impl std::fmt::Debug for DigestIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "DigestIndex(Some)"
        } else {
            "DigestIndex(None)"
        })
    }
}

/// The fingerprint a site computed for its value type, kept for the rest of the process.
#[derive(Debug)]
pub(crate) struct Known {
    type_name: &'static str,
    fingerprint: Fingerprint,
}

/// The counters of one site, kept in its per-process state; [`crate::stats`] counts into
/// them and reads them.
///
/// A hit's counters are striped: each thread adds to one of [`STRIPES`] sets, each on its
/// own cache lines, and readers sum them. Two threads hitting one function then never
/// write to the same cache line (with one shared set, the line bounced between the cores
/// on every hit, and two threads did hardly more hits than one).
#[derive(Debug)]
pub(crate) struct SiteStats {
    pub(crate) registered: AtomicBool,
    pub(crate) misses: AtomicU64,
    /// Hits that waited for another caller of this process to compute their value.
    pub(crate) waited: AtomicU64,
    pub(crate) bytes_written: AtomicU64,
    pub(crate) uploads_dropped: AtomicU64,
    /// The remote tier's counts: hits, misses (asked, no usable entry), uploads made, and
    /// the bytes of each way.
    pub(crate) remote_hits: AtomicU64,
    pub(crate) remote_misses: AtomicU64,
    pub(crate) uploads: AtomicU64,
    pub(crate) remote_bytes_read: AtomicU64,
    pub(crate) remote_bytes_written: AtomicU64,
    /// Misses whose value was not stored because the root is read-only.
    pub(crate) not_stored_read_only: AtomicU64,
    pub(crate) stripes: [HitStripe; STRIPES],
    /// The function's directory, from its first lookup: where its hit log is, and what
    /// names it in [`crate::FunctionStats`] (for a method, the directory of its first `Self` type).
    pub(crate) dir: OnceLock<PathBuf>,
    /// Whether the first lookup of this process has recorded the function's version.
    pub(crate) version_noted: AtomicBool,
}

/// Stripes of hit counters per site; a thread's stripe is assigned round-robin.
pub(crate) const STRIPES: usize = 8;

/// One thread stripe's hit counters, alone on its cache lines.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct HitStripe {
    pub(crate) hits: AtomicU64,
    pub(crate) bytes_read: AtomicU64,
    pub(crate) saved_us: AtomicU64,
    pub(crate) unlogged_hits: AtomicU64,
    pub(crate) unlogged_saved_us: AtomicU64,
}

impl HitStripe {
    const fn new() -> HitStripe {
        HitStripe {
            hits: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            saved_us: AtomicU64::new(0),
            unlogged_hits: AtomicU64::new(0),
            unlogged_saved_us: AtomicU64::new(0),
        }
    }
}

/// This thread's stripe.
pub(crate) fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.try_with(|stripe| *stripe).unwrap_or(0)
}

impl SiteStats {
    pub(crate) const fn new() -> SiteStats {
        SiteStats {
            registered: AtomicBool::new(false),
            misses: AtomicU64::new(0),
            waited: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            uploads_dropped: AtomicU64::new(0),
            remote_hits: AtomicU64::new(0),
            remote_misses: AtomicU64::new(0),
            uploads: AtomicU64::new(0),
            remote_bytes_read: AtomicU64::new(0),
            remote_bytes_written: AtomicU64::new(0),
            not_stored_read_only: AtomicU64::new(0),
            stripes: [const { HitStripe::new() }; STRIPES],
            dir: OnceLock::new(),
            version_noted: AtomicBool::new(false),
        }
    }

    pub(crate) fn sum(&self, field: impl Fn(&HitStripe) -> &AtomicU64) -> u64 {
        self.stripes
            .iter()
            .map(|stripe| field(stripe).load(Ordering::Relaxed))
            .sum()
    }
}

/// Kinds of trouble a site warns about once each.
#[derive(Clone, Copy, Debug)]
#[repr(u8)]
pub(crate) enum Problem {
    /// An entry existed but could not be used (corrupt, truncated, foreign, undecodable).
    BadEntry = 1,
    /// An entry could not be read for a reason other than its absence.
    Read = 2,
    /// An argument's `Serialize` impl failed, so no key could be made.
    Key = 4,
    /// The value type does not survive a round trip through any codec.
    Value = 8,
    /// One value's `Serialize` impl failed: that call's result is not stored.
    Encode = 16,
    /// The entry's lock file kept changing under every try to take it.
    Lock = 32,
}

#[cfg(test)]
mod tests {
    use super::*;

    static SITE: Site = Site::new(SiteInfo {
        module_path: "my_crate::a",
        name: "f",
        ..SiteInfo::DEFAULT
    });

    fn new_site() -> &'static Site {
        Box::leak(Box::new(Site::new(SiteInfo {
            module_path: "my_crate",
            name: "f",
            code_hash: [0; 32],
            ..SiteInfo::DEFAULT
        })))
    }

    /// A type whose `Deserialize` impl rejects everything: it cannot be traced.
    struct Odd;

    impl<'de> serde::Deserialize<'de> for Odd {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Odd, D::Error> {
            Err(serde::de::Error::custom("odd"))
        }
    }

    fn traced<T: DeserializeOwned>() -> Fingerprint {
        fingerprint::trace::<T>().unwrap()
    }

    #[test]
    fn a_site_traces_once_and_falls_back_to_the_name() {
        let site = new_site();
        assert_eq!(site.fingerprint::<(u8, String)>(), traced::<(u8, String)>());
        assert_eq!(site.fingerprint::<(u8, String)>(), traced::<(u8, String)>());
        let other = new_site();
        assert_eq!(
            other.fingerprint::<Odd>(),
            fingerprint::by_name(type_name::<Odd>())
        );
    }

    #[test]
    fn a_generic_site_keeps_one_fingerprint_per_type() {
        let site = new_site();
        for _ in 0..2 {
            assert_eq!(site.fingerprint::<u32>(), traced::<u32>());
            assert_eq!(site.fingerprint::<i64>(), traced::<i64>());
            assert_eq!(site.fingerprint::<Option<bool>>(), traced::<Option<bool>>());
        }
    }

    #[test]
    fn warns_once_per_problem() {
        SITE.warn_once(Problem::BadEntry, || "first".into());
        assert_eq!(SITE.state.warned.load(Ordering::Relaxed), 1);
        SITE.warn_once(Problem::BadEntry, || "second".into());
        SITE.warn_once(Problem::Read, || "other".into());
        assert_eq!(SITE.state.warned.load(Ordering::Relaxed), 3);
        assert_eq!(SITE.display_name(), "my_crate::a::f");
    }

    static SWITCHING: Site = Site::new(SiteInfo {
        module_path: "my_crate::a",
        name: "g",
        ..SiteInfo::DEFAULT
    });

    #[test]
    fn the_codec_starts_as_the_option_says_and_switches() {
        assert_eq!(SWITCHING.codec(), Codec::Postcard);
        SWITCHING.switch_codec(Codec::MessagePack);
        assert_eq!(SWITCHING.codec(), Codec::MessagePack);
        static CHOSEN: Site = Site::new(SiteInfo {
            codec: Codec::MessagePack,
            ..SiteInfo::DEFAULT
        });
        assert_eq!(CHOSEN.codec(), Codec::MessagePack);
    }

    #[test]
    fn the_first_reason_for_not_caching_is_kept() {
        assert_eq!(SWITCHING.uncacheable_reason(), None);
        SWITCHING.set_uncacheable("first".into(), || "message".into());
        SWITCHING.set_uncacheable("second".into(), || "message".into());
        assert!(SWITCHING.is_uncacheable());
        assert_eq!(SWITCHING.uncacheable_reason(), Some("first"));
    }
}
