//! Walking a root: every function, every entry, with a progress bar on a terminal.

use file_cache::inspect::{self, EntryFile, EntryInfo, FunctionDir, HitTotals};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{self, IsTerminal};
use std::path::Path;

/// One function directory and what its entries' headers say.
pub struct Function {
    pub dir: FunctionDir,
    pub entries: Vec<Entry>,
    /// The hits its log counts (none when the log is damaged).
    pub hits: HitTotals,
    /// Why its hit log cannot be counted: a log no process could have written.
    pub damaged_hit_log: Option<String>,
    /// The code hash of the function's current version: recorded by the runtime in the
    /// directory, or else that of the newest entry.
    pub current: Option<[u8; 32]>,
}

/// One entry file, with its header when it could be read and checked.
pub struct Entry {
    pub file: EntryFile,
    pub header: Result<EntryInfo, String>,
}

impl Entry {
    pub fn is_stale(&self, current: Option<[u8; 32]>) -> bool {
        matches!((&self.header, current), (Ok(info), Some(current)) if info.code_hash != current)
    }
}

/// A progress bar over `len` steps, drawn on stderr only when it is a terminal.
pub fn progress(len: u64, message: &'static str) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>9} [{bar:40}] {human_pos}/{human_len} entries")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message);
    bar
}

/// Every function under `root` with its entries' headers (a missing root is empty).
///
/// Another process may clear or prune the root meanwhile: a function whose directory
/// vanishes after it was listed is gone, and so is an entry that vanishes before its header
/// is read; neither is an error.
pub fn scan(root: &Path, message: &'static str) -> io::Result<Vec<Function>> {
    let mut listed = Vec::new();
    for dir in inspect::functions(root)? {
        let Some(files) = entry_files(&dir)? else {
            continue;
        };
        listed.push((dir, files));
    }
    let total = listed.iter().map(|(_, files)| files.len() as u64).sum();
    let bar = progress(total, message);
    let mut out = Vec::new();
    for (dir, files) in listed {
        let mut entries = Vec::with_capacity(files.len());
        for file in files {
            let header = match file.read_header() {
                Ok(Ok(info)) => Ok(info),
                Ok(Err(invalid)) => Err(invalid.to_string()),
                // Removed since it was listed (a concurrent prune): not an entry any more.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => Err(e.to_string()),
            };
            entries.push(Entry { file, header });
            bar.inc(1);
        }
        let current = dir.current_version().or_else(|| {
            entries
                .iter()
                .filter_map(|e| e.header.as_ref().ok())
                .max_by_key(|info| info.created)
                .map(|info| info.code_hash)
        });
        let (hits, damaged_hit_log) = match dir.hits() {
            Ok(hits) => (hits, None),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                (HitTotals::default(), Some(e.to_string()))
            }
            Err(e) => return Err(e),
        };
        out.push(Function {
            hits,
            damaged_hit_log,
            dir,
            entries,
            current,
        });
    }
    bar.finish_and_clear();
    Ok(out)
}

/// The entry files of a function, or `None` when its directory is gone (removed since the
/// root was listed).
pub fn entry_files(dir: &FunctionDir) -> io::Result<Option<Vec<EntryFile>>> {
    match dir.entries() {
        Ok(files) => Ok(Some(files)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Bytes of every file under `root` (a missing root holds none): entries and bookkeeping
/// alike. Files and directories that vanish while they are walked are skipped; links are
/// not followed.
pub fn file_bytes(root: &Path) -> io::Result<u64> {
    let mut total = 0u64;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let items = match std::fs::read_dir(&dir) {
            Ok(items) => items,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for item in items {
            let item = match item {
                Ok(item) => item,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let meta = match std::fs::symlink_metadata(item.path()) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if meta.is_dir() {
                dirs.push(item.path());
            } else if meta.is_file() {
                total = total.saturating_add(meta.len());
            }
        }
    }
    Ok(total)
}
