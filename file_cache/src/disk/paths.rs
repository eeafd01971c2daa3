//! Where entries live: `<root>/<crate>.<module path>.<fn>/<first two hex digits of the
//! key>/<key hex>`. Directory names keep only characters portable to every common file
//! system, and are each function's own (a name that is not plain ASCII identifiers ends
//! with a hash of the whole path, see [`function_dir_name`]); the shard level keeps any one
//! directory to a few thousand entries at a million. A leaf: it names paths and touches no
//! file.

use crate::key::Key;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Longest directory name we produce; longer names are cut and suffixed with a hash.
const MAX_DIR_NAME: usize = 120;

/// Hex digits of the identity's hash appended to a name that does not spell it exactly.
const HASH_DIGITS: usize = 16;

/// The directory name of one function: its path with `::` turned into `.`.
///
/// `self_ty` is the `Self` type of a method (from `std::any::type_name`), less its module
/// when that is the function's own module. The name is readable, and it is the function's
/// alone: a path of plain ASCII identifiers is spelled as it is (`app.text.summarize`);
/// any other (non-ASCII or raw identifiers, a `Self` type with generic arguments or
/// punctuation, a name Windows reserves, one over [`MAX_DIR_NAME`] bytes) keeps its
/// readable part, generic arguments dropped and every non-portable character replaced,
/// followed by `-` and a hash of the whole path: `app.Wrapper.get-<16 hex digits>` for
/// `app::Wrapper<u8>::get`, another for `app::Wrapper<u64>::get`, and `app.caf_-<...>` for
/// `app::café`, another for `app::cafè`. A plain name never holds a `-`, so the two forms
/// never meet.
pub(crate) fn function_dir_name(module_path: &str, self_ty: Option<&str>, name: &str) -> String {
    let mut path = module_path.to_owned();
    if let Some(ty) = self_ty {
        let ty = ty
            .strip_prefix(module_path)
            .and_then(|rest| rest.strip_prefix("::"))
            .unwrap_or(ty);
        path.push_str("::");
        path.push_str(ty);
    }
    path.push_str("::");
    path.push_str(name);
    let mut out: String = without_generics(&path)
        .replace("::", ".")
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '.' => c,
            _ => '_',
        })
        .collect();
    let reserved = is_reserved_on_windows(&out);
    if reserved {
        out.insert(0, '_');
    }
    if reserved || !is_plain_path(&path) || out.len() > MAX_DIR_NAME {
        let digest = blake3::hash(path.as_bytes()).to_hex();
        out.truncate(MAX_DIR_NAME - HASH_DIGITS - 1);
        out.push('-');
        out.push_str(&digest[..HASH_DIGITS]);
    }
    out
}

/// `path` without its generic arguments (`a::B<c::D<E>>::f` is `a::B::f`).
fn without_generics(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut depth = 0usize;
    for c in path.chars() {
        match c {
            '<' => depth += 1,
            '>' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whether `path` is ASCII identifiers joined by `::`: then its directory name, with `.`
/// for `::`, spells it exactly.
fn is_plain_path(path: &str) -> bool {
    path.split("::").all(|part| {
        !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// Windows refuses `CON`, `NUL`, `COM1`... as a name or as the part before a dot.
fn is_reserved_on_windows(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name).to_ascii_uppercase();
    matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit())
}

/// The file of one entry inside its function's directory: `<dir>/<first two hex
/// digits>/<hex digits>`.
pub(crate) fn entry_path(function_dir: &Path, key: &Key) -> PathBuf {
    use std::path::MAIN_SEPARATOR_STR as SEPARATOR;
    let hex = key.hex_bytes();
    let hex = std::str::from_utf8(&hex).unwrap_or_default();
    // One allocation of the final size, and the parts appended as they are (a function's
    // directory never ends with a separator): this runs on every hit, and
    // `PathBuf::push` looks each part over for separators and roots first.
    let mut path = OsString::with_capacity(function_dir.as_os_str().len() + 68);
    path.push(function_dir);
    path.push(SEPARATOR);
    path.push(&hex[..2]);
    path.push(SEPARATOR);
    path.push(hex);
    PathBuf::from(path)
}

/// The directory of the file at `path`, as [`Path::parent`] gives it, found by looking for
/// the last separator rather than by parsing every component: a store asks it of its entry
/// several times. Paths it cannot cut plainly (see [`plain_cut`]) take [`Path::parent`].
pub(crate) fn dir_of(path: &Path) -> Option<&Path> {
    match path.to_str().and_then(plain_cut) {
        Some((dir, _)) => Some(Path::new(dir)),
        None => path.parent(),
    }
}

/// `<directory of path>/.<name of path><suffix>`: the name of a file kept beside another
/// (an entry's lock), built without parsing the path's components for the usual path.
pub(crate) fn dot_sibling(path: &Path, suffix: &str) -> PathBuf {
    if let Some((dir, name)) = path.to_str().and_then(plain_cut) {
        let mut sibling = String::with_capacity(dir.len() + name.len() + suffix.len() + 2);
        // The separator `dir` was cut at, as the path spells it.
        sibling.push_str(&path.to_str().unwrap_or_default()[..=dir.len()]);
        sibling.push('.');
        sibling.push_str(name);
        sibling.push_str(suffix);
        return PathBuf::from(sibling);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}{suffix}"))
}

/// `text` cut at its last separator into a directory and a name, where both are plain:
/// a name that is not empty, `.` or `..`, and a directory that is `.` or ends with a plain
/// name (not empty, not a root or a drive, `.` or `..`). Cut so, they are what [`Path::parent`] and
/// [`Path::file_name`] give.
fn plain_cut(text: &str) -> Option<(&str, &str)> {
    let cut = text.rfind(std::path::is_separator)?;
    let (dir, name) = (&text[..cut], &text[cut + 1..]);
    let plain_name = !matches!(name, "" | "." | "..");
    let last = dir
        .rsplit(std::path::is_separator)
        .next()
        .unwrap_or_default();
    let plain_dir = !matches!(last, "" | ".." | ".") && !dir.ends_with(':') || dir == ".";
    (plain_name && plain_dir).then_some((dir, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn a_directory_and_a_sibling_are_cut_as_path_parses_them() {
        let paths = [
            "/r/f/ab/abcd",
            "r/f/ab/abcd",
            "abcd",
            "/abcd",
            "/",
            "",
            "a/b/",
            "a/b/.",
            "a/b/..",
            "a//b",
            "./a",
            "r/./x",
            "r/../x",
            "../x",
            "r/.x",
        ];
        for path in paths.map(Path::new) {
            assert_eq!(dir_of(path), path.parent(), "{path:?}");
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            assert_eq!(
                dot_sibling(path, ".lock"),
                path.with_file_name(format!(".{name}.lock")),
                "{path:?}"
            );
        }
    }

    #[test]
    fn dir_names_are_portable() {
        assert_eq!(
            function_dir_name("app::text", None, "summarize"),
            "app.text.summarize"
        );
        assert_eq!(
            function_dir_name("app::text", Some("app::text::Client"), "ask"),
            "app.text.Client.ask"
        );
        assert_eq!(
            function_dir_name("app", Some("other::Client"), "ask"),
            "app.other.Client.ask"
        );
        let hashed = |name: &str, readable: &str| {
            let (head, hash) = name.rsplit_once('-').unwrap();
            assert_eq!(head, readable, "{name}");
            assert_eq!(hash.len(), HASH_DIGITS, "{name}");
            assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
        };
        hashed(
            &function_dir_name("app::text", Some("app::text::Client<u32>"), "ask"),
            "app.text.Client.ask",
        );
        hashed(&function_dir_name("con", None, "f"), "_con.f");
        hashed(&function_dir_name("app", Some("&str"), "f"), "app._str.f");
        hashed(&function_dir_name("app", None, "café"), "app.caf_");
        let long = "m".repeat(300);
        let name = function_dir_name(&long, None, "f");
        assert_eq!(name.len(), MAX_DIR_NAME);
        assert_ne!(name, function_dir_name(&format!("{long}x"), None, "f"));
    }

    #[test]
    fn every_function_has_a_directory_of_its_own() {
        let names = [
            function_dir_name("app", Some("app::Wrapper<u8>"), "get"),
            function_dir_name("app", Some("app::Wrapper<u64>"), "get"),
            function_dir_name("app", Some("app::Wrapper"), "get"),
            function_dir_name("app", None, "café"),
            function_dir_name("app", None, "cafè"),
            function_dir_name("app", None, "caf_"),
            function_dir_name("app", Some("(u8, u16)"), "f"),
            function_dir_name("app", Some("(u8,u16)"), "f"),
            function_dir_name("app", Some("app::A"), "f"),
            function_dir_name("app::A", None, "f"),
        ];
        let distinct: HashSet<&String> = names.iter().collect();
        // The last two are one function, spelled as a method and as `clear` spells it.
        assert_eq!(distinct.len(), names.len() - 1, "{names:?}");
        assert_eq!(names[8], names[9]);
        // `clear` spells a generic method's path as `stats()` and `type_name` do.
        assert_eq!(names[0], function_dir_name("app::Wrapper<u8>", None, "get"));
    }

    #[test]
    fn entries_are_sharded_by_key() {
        let key = Key([0xab; 32]);
        let path = entry_path(Path::new("/r/f"), &key);
        assert_eq!(path, Path::new("/r/f/ab").join("ab".repeat(32)));
        // Exactly these bytes, not only the same components.
        assert_eq!(
            path.as_os_str(),
            Path::new("/r/f/ab").join("ab".repeat(32)).as_os_str()
        );
    }
}
