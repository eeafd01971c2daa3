//! The version record, `.current` in a function's directory: the code hash (64 hex digits)
//! of the version of the function that ran last, and the set of directories this process
//! has recorded it in already. It knows hashes and directories, not sites or calls.

use crate::disk::files;
use crate::disk::write::write_atomic;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::Mutex;

/// Name of the file recording a function's current code hash.
pub(crate) const CURRENT_VERSION: &str = ".current";

/// Lower-case hex of 32 bytes, as entry names and `.current` spell keys and code hashes.
pub fn to_hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The version a record at `path` names. Read without `fs::read`'s `stat` and final empty
/// read: a process's first hit reads this record, and its system calls are a good part of
/// what a fresh process adds to reading one entry. A record is written whole (renamed into
/// place) and ends with its only newline, so the read stops there.
pub(crate) fn recorded_version(path: &Path) -> Option<[u8; 32]> {
    use std::io::Read;
    let mut file = files::open(fs::OpenOptions::new().read(true), path).ok()?;
    // Room for the record ("<64 hex digits>\n") and a byte more, to see a longer file.
    let mut buf = [0u8; 66];
    let mut len = 0;
    while len < buf.len() && !buf[..len].ends_with(b"\n") {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    parse_hex32(std::str::from_utf8(&buf[..len]).ok()?.trim())
}

/// Records `code_hash` as the current version of the function whose directory is `dir`,
/// unless it already is; when the directory does not exist, only if `create` says so.
/// Returns whether the record names `code_hash` now (best effort: a failed write is
/// logged and counts as recorded).
pub(crate) fn note_current_version(dir: &Path, code_hash: &[u8; 32], create: bool) -> bool {
    let path = dir.join(CURRENT_VERSION);
    if recorded_version(&path).as_ref() == Some(code_hash) {
        return true;
    }
    if !create && !dir.exists() {
        return false;
    }
    let text = format!("{}\n", to_hex(code_hash));
    if let Err(error) = write_atomic(&path, &[text.as_bytes()]) {
        log::debug!(
            "file_cache: cannot record the current version in {} ({error})",
            dir.display()
        );
    }
    true
}

/// Function directories whose version record this process has checked, by their paths'
/// bytes (a `Path` compares component by component, parsing both; every store asks).
/// (A `BTreeSet`: a `HashSet`'s random keys cost a fresh process a `getrandom` call.)
static NOTED: Mutex<BTreeSet<OsString>> = Mutex::new(BTreeSet::new());

/// Records `code_hash` as the current version in the function directory `dir`, once per
/// directory and process; without `create`, only where the directory exists already (a
/// lookup creates no directory: the first store records it).
pub(crate) fn note(dir: &Path, code_hash: &[u8; 32], create: bool) {
    {
        let mut noted = NOTED.lock().unwrap_or_else(|e| e.into_inner());
        // Looked up before inserting: the usual store allocates nothing here.
        if noted.contains(dir.as_os_str()) || !noted.insert(dir.as_os_str().to_owned()) {
            return;
        }
    }
    if !note_current_version(dir, code_hash, create) {
        // Nothing stored yet: the first store records it, without creating directories for
        // a lookup.
        NOTED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(dir.as_os_str());
    }
}

/// Forgets which directories were recorded (they are being removed).
pub(crate) fn forget() {
    NOTED.lock().unwrap_or_else(|e| e.into_inner()).clear();
}
