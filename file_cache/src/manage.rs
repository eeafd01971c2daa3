//! Managing the cache from a program: clearing functions, asking whether a call is cached,
//! and keeping the record of each function's current version.

use crate::call::{self, CallKey};
use crate::config::{config, Mode};
use crate::entry;
use crate::inspect;
use crate::site::Site;
use crate::store;
use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

/// Removes every stored entry of one function, in every process's view: the next call
/// with any arguments runs the body. Returns how many entries were removed (zero for a
/// function with none, or a path that names no cached function).
///
/// `function` is the path of the function as the log and [`stats()`](crate::stats) spell
/// it: `my_crate::module::name`, or `my_crate::module::Type::method` for a method. The
/// function's hit log and version record go with its entries.
///
/// ```
/// use file_cache::file_cache;
///
/// #[file_cache]
/// fn shout(text: String) -> String {
///     text.to_uppercase()
/// }
///
/// # std::env::set_var("FILE_CACHE_DIR", std::env::temp_dir().join("file_cache_doctest_clear"));
/// # file_cache::clear_all()?;
/// shout("hi".into());
/// shout("ho".into());
/// let removed = file_cache::clear(&format!("{}::shout", module_path!()))?;
/// assert_eq!(removed, 2);
/// assert!(!shout_is_cached("hi".into()));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn clear(function: &str) -> io::Result<u64> {
    let (module, name) = function.rsplit_once("::").unwrap_or(("", function));
    let dir = config()
        .root
        .join(store::function_dir_name(module, None, name));
    forget_noted_versions();
    remove_function_dir(&dir)
}

/// Removes every entry of every function under the root ([`cache_dir()`](crate::cache_dir)),
/// and returns how many. The root itself stays. A root that does not exist holds nothing.
///
/// ```
/// # std::env::set_var("FILE_CACHE_DIR", std::env::temp_dir().join("file_cache_doctest_clear_all"));
/// #[file_cache::file_cache]
/// fn twice(x: u32) -> u32 {
///     2 * x
/// }
///
/// twice(1);
/// file_cache::clear_all()?;
/// assert!(!twice_is_cached(1));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn clear_all() -> io::Result<u64> {
    forget_noted_versions();
    let mut removed = 0;
    for function in inspect::functions(&config().root)? {
        removed += remove_function_dir(&function.path)?;
    }
    Ok(removed)
}

/// Removes a function's directory; returns how many entries it held.
fn remove_function_dir(dir: &Path) -> io::Result<u64> {
    inspect::FunctionDir {
        name: String::new(),
        path: dir.to_path_buf(),
    }
    .remove()
}

/// Whether a call with this key would be answered from a stored entry: one is there, it is
/// intact (both checksums), answers this key, holds a value of type `type_name` and has
/// not expired. Runs nothing, counts nothing, and does not decode the value, so it puts no
/// trait bound on the type: a mistake in the function's types is reported once, on the
/// function, not again on this probe.
#[doc(hidden)]
pub fn is_cached(site: &'static Site, key: Option<CallKey>, type_name: &str) -> bool {
    let Some(key) = key else {
        return false;
    };
    if config().mode == Mode::Refresh {
        return false;
    }
    let path = call::entry_path(site, &key);
    let Ok(Some(bytes)) = store::read(&path) else {
        return false;
    };
    if call::is_expired(site, &bytes) {
        return false;
    }
    match entry::parse(&bytes) {
        Ok((header, _)) => header.key == *key.key.as_bytes() && header.type_name == type_name,
        Err(_) => false,
    }
}

/// The name of the `Ok` type of a function returning `Result` behind an alias; the marker
/// only carries the type.
#[doc(hidden)]
pub fn ok_type_name<T, E>(_marker: std::marker::PhantomData<fn() -> Result<T, E>>) -> &'static str {
    std::any::type_name::<T>()
}

/// Function directories whose version record this process has checked.
static NOTED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// Records the site's code hash as its function's current version in the directory of the
/// entry at `path`: on a site's first lookup of the process, and on every store into a
/// directory not seen before (a method has one directory per `Self` type).
pub(crate) fn note_version(site: &'static Site, path: &Path, storing: bool) {
    let first_lookup = !site.state.stats.version_noted.swap(true, Ordering::Relaxed);
    if !(first_lookup || storing) {
        return;
    }
    let Some(dir) = path.parent().and_then(Path::parent) else {
        return;
    };
    {
        let mut noted = NOTED.lock().unwrap_or_else(|e| e.into_inner());
        if !noted
            .get_or_insert_with(HashSet::new)
            .insert(dir.to_path_buf())
        {
            return;
        }
    }
    if storing || dir.exists() {
        inspect::note_current_version(dir, &site.info.code_hash);
    } else {
        // Nothing stored yet: the first store records it, without creating directories for
        // a lookup.
        NOTED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(HashSet::new)
            .remove(dir);
    }
}

fn forget_noted_versions() {
    *NOTED.lock().unwrap_or_else(|e| e.into_inner()) = None;
}
