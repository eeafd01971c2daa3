//! `file-cache`: see what a `file_cache` root holds, and clear, prune or verify it.
//!
//! ```sh
//! cargo install --path file_cache_cli
//! file-cache list
//! file-cache prune --max-size 2GiB --older-than 30d --stale
//! FILE_CACHE_REMOTE=redis://cache:6379/0 file-cache remote list
//! FILE_CACHE_REMOTE=redis://cache:6379/0 file-cache remote prune --older-than 30d --stale
//! ```
//!
//! Exit status: 0 on success, 1 when something failed (an entry that could not be
//! removed, a function `clear` does not know, a root that cannot be read), 2 for a usage
//! mistake. A root that does not exist is an empty cache.
#![forbid(unsafe_code)]

mod human;
mod scan;

use clap::{ArgGroup, Parser, Subcommand};
use file_cache::inspect;
use scan::{progress, Entry, Function};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(
    name = "file-cache",
    version,
    about = "List, clear, prune and verify the entries of a file_cache root"
)]
struct Cli {
    /// The cache root [default: the runtime's: $FILE_CACHE_DIR, else <temp dir>/file_cache]
    #[arg(long, global = true, env = "FILE_CACHE_DIR", value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One line per cached function: entries, size, oldest and newest entry, hits and the
    /// compute time they saved; largest first. The total counts the entries' bytes, which
    /// `prune --max-size` bounds; a last line counts the bookkeeping files (hit logs, version
    /// records, the size record, locks, temporary files), so the two add up to every byte
    /// under the root. A root that is read-only here (FILE_CACHE_READONLY set, or a root
    /// this user cannot write: programs run so only read it) gets a `read-only:` line saying
    /// why
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Remove every entry, or those of the named functions (`my_crate::module::name`)
    Clear {
        /// Functions to clear, as `list` shows them (or their paths, a method's type as
        /// `std::any::type_name` spells it: `my_crate::Wrapper<u8>::get`); none clears
        /// everything
        #[arg(value_name = "FUNCTION")]
        functions: Vec<String>,
    },
    /// Remove entries that are old, stale, or over a total size (least recently used first)
    #[command(group(ArgGroup::new("criteria").required(true).multiple(true)))]
    Prune {
        /// Then remove the least recently used entries until they take at most this many
        /// bytes (e.g. 2GiB, 500MB): the entries' total, the SIZE column `list` shows. The
        /// bookkeeping files (hit logs, version records, the size record, locks and
        /// temporary files), which `list` shows on a line of their own, are neither counted
        /// nor removed, as under FILE_CACHE_MAX_SIZE
        #[arg(long, value_name = "SIZE", group = "criteria", value_parser = parse_size)]
        max_size: Option<u64>,
        /// Remove entries created longer ago than this: units w (weeks), d (days), h, m
        /// and s, each at most once and largest first (e.g. 30d, 12h, 1h30m, 2w), as
        /// `#[file_cache(ttl = "...")]` takes them
        #[arg(long, value_name = "AGE", group = "criteria", value_parser = parse_age)]
        older_than: Option<Duration>,
        /// Remove entries written by another version of their function's code than the
        /// current one: they can never be hit again
        #[arg(long, group = "criteria")]
        stale: bool,
        /// Say what would be removed, remove nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Check every entry's header and checksums; remove those that are broken
    Verify,
    /// The shared remote tier named by FILE_CACHE_REMOTE: list, clear or prune it
    #[cfg(feature = "remote")]
    Remote {
        #[command(subcommand)]
        command: remote::RemoteCommand,
    },
}

fn parse_size(text: &str) -> Result<u64, String> {
    inspect::parse_size(text).map_err(|e| e.to_string())
}

fn parse_age(text: &str) -> Result<Duration, String> {
    inspect::parse_duration(text).map_err(|e| e.to_string())
}

/// `println!` that ends the program quietly when stdout is closed (`file-cache list | head`)
/// instead of panicking, and with status 1 on any other write error.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            eprintln!("file-cache: error: cannot write to stdout: {e}");
            std::process::exit(1);
        }
    }};
}

#[cfg(feature = "remote")]
mod remote;

/// A failure worth a non-zero exit, already explained on stderr.
struct Failed;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = cli
        .dir
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or_else(|| file_cache::cache_dir().to_path_buf());
    let result = match cli.command {
        Command::List { json } => list(&root, json),
        Command::Clear { functions } => clear(&root, &functions),
        Command::Prune {
            max_size,
            older_than,
            stale,
            dry_run,
        } => prune(&root, max_size, older_than, stale, dry_run),
        Command::Verify => verify(&root),
        #[cfg(feature = "remote")]
        Command::Remote { command } => remote::run(command, &root),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failed) => ExitCode::FAILURE,
    }
}

/// Something the user should know that does not fail the command.
fn warn(message: impl std::fmt::Display) {
    eprintln!("file-cache: warning: {message}");
}

fn error(message: impl std::fmt::Display) -> Failed {
    eprintln!("file-cache: error: {message}");
    Failed
}

fn scan_root(root: &Path, message: &'static str) -> Result<Vec<Function>, Failed> {
    scan::scan(root, message).map_err(|e| error(format!("cannot read {}: {e}", root.display())))
}

/// One row of `list`.
#[derive(Serialize)]
struct Row {
    function: String,
    dir: String,
    entries: u64,
    bytes: u64,
    /// Creation time of the oldest entry, seconds since the Unix epoch.
    oldest: Option<u64>,
    newest: Option<u64>,
    hits: u64,
    time_saved_secs: f64,
    /// The same, for the table: no float ever turns back into a `Duration`.
    #[serde(skip)]
    time_saved: Duration,
    stale_entries: u64,
    invalid_entries: u64,
    /// The entries that recorded files their body read (`depends_on`), each with those
    /// files; entries that recorded none are not listed.
    dependencies: Vec<EntryDependencies>,
}

/// One entry's recorded dependencies, in `list --json`.
#[derive(Serialize)]
struct EntryDependencies {
    /// The entry's key, in hex: its file's name.
    key: String,
    files: Vec<DependencyRow>,
}

/// One recorded dependency: the path as the body named it, and the digest of what it named.
#[derive(Serialize)]
struct DependencyRow {
    path: String,
    digest: String,
}

fn dependencies_of(entries: &[scan::Entry]) -> Vec<EntryDependencies> {
    entries
        .iter()
        .filter_map(|entry| entry.header.as_ref().ok())
        .filter(|info| !info.dependencies.is_empty())
        .map(|info| EntryDependencies {
            key: inspect::to_hex(&info.key),
            files: info
                .dependencies
                .iter()
                .map(|dependency| DependencyRow {
                    path: dependency.path.display().to_string(),
                    digest: inspect::to_hex(&dependency.digest),
                })
                .collect(),
        })
        .collect()
}

fn list(root: &Path, json: bool) -> Result<(), Failed> {
    let functions = scan_root(root, "reading")?;
    let all_bytes = scan::file_bytes(root)
        .map_err(|e| error(format!("cannot read {}: {e}", root.display())))?;
    for function in &functions {
        if let Some(damage) = &function.damaged_hit_log {
            warn(format!(
                "the hit log of {} is damaged ({damage}); its hits are not counted",
                function.dir.function()
            ));
        }
    }
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut rows: Vec<Row> = functions
        .iter()
        .map(|f| {
            let created = f.entries.iter().filter_map(|e| e.header.as_ref().ok());
            Row {
                function: f.dir.function(),
                dir: f.dir.name.clone(),
                entries: f.entries.len() as u64,
                bytes: f.entries.iter().map(|e| e.file.len).sum(),
                oldest: created.clone().map(|i| i.created).min().map(secs),
                newest: created.map(|i| i.created).max().map(secs),
                hits: f.hits.hits,
                time_saved_secs: f.hits.time_saved.as_secs_f64(),
                time_saved: f.hits.time_saved,
                stale_entries: f.entries.iter().filter(|e| e.is_stale(f.current)).count() as u64,
                invalid_entries: f.entries.iter().filter(|e| e.header.is_err()).count() as u64,
                dependencies: dependencies_of(&f.entries),
            }
        })
        .collect();
    rows.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.function.cmp(&b.function)));
    let entry_bytes = rows.iter().fold(0u64, |sum, r| sum.saturating_add(r.bytes));
    // Everything under the root that is not an entry. (Files written or removed between the
    // two walks may make it off by those; it never goes below zero.)
    let bookkeeping_bytes = all_bytes.saturating_sub(entry_bytes);
    // What this process sees: a program run in the same environment only reads the root.
    let read_only = inspect::read_only(root);
    if json {
        #[derive(Serialize)]
        struct Listing<'a> {
            root: &'a Path,
            functions: &'a [Row],
            /// The entries' bytes: what `prune --max-size` counts.
            entry_bytes: u64,
            /// Every other file's bytes under the root.
            bookkeeping_bytes: u64,
            /// Why the root is read-only here, when it is.
            read_only: Option<&'static str>,
        }
        let listing = Listing {
            root,
            functions: &rows,
            entry_bytes,
            bookkeeping_bytes,
            read_only: read_only.map(inspect::ReadOnly::reason),
        };
        match serde_json::to_string_pretty(&listing) {
            Ok(text) => say!("{text}"),
            Err(e) => return Err(error(e)),
        }
        return Ok(());
    }
    print_table(root, &rows, bookkeeping_bytes);
    if let Some(why) = read_only {
        say!(
            "read-only: {} (programs run so serve hits and store nothing)",
            why.reason()
        );
    }
    Ok(())
}

fn print_table(root: &Path, rows: &[Row], bookkeeping_bytes: u64) {
    let now = SystemTime::now();
    let when = |secs: Option<u64>| {
        secs.map_or("-".to_owned(), |s| {
            human::age(UNIX_EPOCH + Duration::from_secs(s), now)
        })
    };
    let mut table = vec![[
        "FUNCTION".to_owned(),
        "ENTRIES".to_owned(),
        "SIZE".to_owned(),
        "OLDEST".to_owned(),
        "NEWEST".to_owned(),
        "HITS".to_owned(),
        "SAVED".to_owned(),
    ]];
    for row in rows {
        let mut entries = row.entries.to_string();
        if row.stale_entries > 0 {
            entries = format!("{entries} ({} stale)", row.stale_entries);
        }
        table.push([
            row.function.clone(),
            entries,
            human::size(row.bytes),
            when(row.oldest),
            when(row.newest),
            row.hits.to_string(),
            human::duration(row.time_saved),
        ]);
    }
    let total_entries = rows
        .iter()
        .fold(0u64, |sum, r| sum.saturating_add(r.entries));
    let total_bytes = rows.iter().fold(0u64, |sum, r| sum.saturating_add(r.bytes));
    let total_saved = rows
        .iter()
        .fold(Duration::ZERO, |sum, r| sum.saturating_add(r.time_saved));
    let total_hits = rows.iter().fold(0u64, |sum, r| sum.saturating_add(r.hits));
    table.push([
        format!("total ({} functions)", rows.len()),
        total_entries.to_string(),
        human::size(total_bytes),
        String::new(),
        String::new(),
        total_hits.to_string(),
        human::duration(total_saved),
    ]);
    let mut bookkeeping = [(); 7].map(|()| String::new());
    bookkeeping[0] = "bookkeeping (not entries)".to_owned();
    bookkeeping[2] = human::size(bookkeeping_bytes);
    table.push(bookkeeping);
    let widths: Vec<usize> = (0..7)
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    say!("{}", root.display());
    for row in &table {
        let mut line = format!("{:<w$}", row[0], w = widths[0]);
        for (cell, width) in row.iter().zip(&widths).skip(1) {
            line.push_str(&format!("  {cell:>width$}"));
        }
        say!("{}", line.trim_end());
    }
}

fn clear(root: &Path, names: &[String]) -> Result<(), Failed> {
    let functions = inspect::functions(root)
        .map_err(|e| error(format!("cannot read {}: {e}", root.display())))?;
    let mut failed = false;
    let chosen: Vec<&inspect::FunctionDir> = if names.is_empty() {
        functions.iter().collect()
    } else {
        let mut chosen = Vec::new();
        for name in names {
            match functions
                .iter()
                .find(|f| f.is_function(name) || f.name == *name)
            {
                Some(function) => chosen.push(function),
                None => {
                    error(format!(
                        "no cached function `{name}` under {}",
                        root.display()
                    ));
                    failed = true;
                }
            }
        }
        chosen
    };
    let mut removed = 0;
    for function in chosen {
        match function.remove() {
            Ok(n) => removed += n,
            Err(e) => {
                error(format!("cannot remove {}: {e}", function.path.display()));
                failed = true;
            }
        }
    }
    say!("removed {removed} entries");
    if failed {
        Err(Failed)
    } else {
        Ok(())
    }
}

fn prune(
    root: &Path,
    max_size: Option<u64>,
    older_than: Option<Duration>,
    stale: bool,
    dry_run: bool,
) -> Result<(), Failed> {
    let functions = scan_root(root, "reading")?;
    let now = SystemTime::now();
    let mut doomed: Vec<(&Entry, &'static str)> = Vec::new();
    let mut kept: Vec<&Entry> = Vec::new();
    for function in &functions {
        for entry in &function.entries {
            let old = match (&entry.header, older_than) {
                (Ok(info), Some(age)) => now.duration_since(info.created).unwrap_or_default() > age,
                _ => false,
            };
            if old {
                doomed.push((entry, "old"));
            } else if stale && entry.is_stale(function.current) {
                doomed.push((entry, "stale"));
            } else {
                kept.push(entry);
            }
        }
    }
    if let Some(max) = max_size {
        // Entries only, as `list` shows them and as FILE_CACHE_MAX_SIZE counts them.
        let mut total = kept.iter().map(|e| e.file.len).sum::<u64>();
        kept.sort_by_key(|e| e.file.modified);
        let mut rest = kept.into_iter();
        for entry in rest.by_ref() {
            if total <= max {
                break;
            }
            total -= entry.file.len;
            doomed.push((entry, "over size"));
        }
    }
    let bar = progress(doomed.len() as u64, "removing");
    let (mut removed, mut bytes, mut failed) = (0u64, 0u64, false);
    for (entry, why) in &doomed {
        if dry_run {
            say!("would remove {} ({why})", entry.file.path.display());
        } else {
            // Its shard goes too when that leaves it empty.
            match entry.file.remove() {
                Ok(()) => {}
                Err(e) => {
                    bar.suspend(|| {
                        error(format!("cannot remove {}: {e}", entry.file.path.display()))
                    });
                    failed = true;
                    continue;
                }
            }
        }
        removed += 1;
        bytes += entry.file.len;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let verb = if dry_run { "would remove" } else { "removed" };
    let count = |why: &str| doomed.iter().filter(|(_, w)| *w == why).count();
    say!(
        "{verb} {removed} entries ({}): {} old, {} stale, {} over size",
        human::size(bytes),
        count("old"),
        count("stale"),
        count("over size")
    );
    if failed {
        Err(Failed)
    } else {
        Ok(())
    }
}

fn verify(root: &Path) -> Result<(), Failed> {
    let functions = inspect::functions(root)
        .map_err(|e| error(format!("cannot read {}: {e}", root.display())))?;
    let mut files = Vec::new();
    for function in &functions {
        // A function cleared since the root was listed holds nothing to verify.
        match scan::entry_files(function) {
            Ok(entries) => files.extend(entries.into_iter().flatten()),
            Err(e) => {
                return Err(error(format!(
                    "cannot read {}: {e}",
                    function.path.display()
                )))
            }
        }
    }
    let bar = progress(files.len() as u64, "verifying");
    let (mut ok, mut broken, mut failed) = (0u64, 0u64, false);
    for file in &files {
        bar.inc(1);
        let problem = match file.read() {
            Ok(Ok(info)) => {
                let named = file
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned());
                if named.as_deref() == Some(inspect::to_hex(&info.key).as_str()) {
                    None
                } else {
                    Some("it holds another key than its name says".to_owned())
                }
            }
            Ok(Err(invalid)) => Some(invalid.to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                bar.suspend(|| error(format!("cannot read {}: {e}", file.path.display())));
                failed = true;
                continue;
            }
        };
        let Some(problem) = problem else {
            ok += 1;
            continue;
        };
        broken += 1;
        match file.remove() {
            Ok(()) => bar.suspend(|| say!("removed {}: {problem}", file.path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                bar.suspend(|| {
                    error(format!(
                        "cannot remove {} ({problem}): {e}",
                        file.path.display()
                    ))
                });
                failed = true;
            }
        }
    }
    bar.finish_and_clear();
    say!(
        "checked {} entries: {ok} ok, {broken} broken and removed",
        ok + broken
    );
    if failed {
        Err(Failed)
    } else {
        Ok(())
    }
}
