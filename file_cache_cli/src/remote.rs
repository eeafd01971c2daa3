//! `file-cache remote list|clear|prune`: the shared remote tier named by
//! `FILE_CACHE_REMOTE` (with the backend's usual credentials in the environment).

use crate::{error, human, parse_age, Failed};
use clap::{ArgGroup, Subcommand};
use file_cache::remote::{self, Prune, PruneReason, RemoteEntry};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Subcommand)]
pub(crate) enum RemoteCommand {
    /// One line per function on the remote: entries (and how many are stale, as
    /// `prune --stale` decides), size, oldest and newest entry (by the creation time their
    /// headers record, read without the payloads)
    List {
        /// Print every entry as JSON instead of a table: its size, creation time, the
        /// time the store wrote it (S3), the version of the code that wrote it and whether
        /// that is stale
        #[arg(long)]
        json: bool,
    },
    /// Remove every remote entry, or those of the named functions
    Clear {
        /// Functions to clear: `my_crate::module::name` or the directory name `list` shows;
        /// none clears everything
        #[arg(value_name = "FUNCTION")]
        functions: Vec<String>,
    },
    /// Remove remote entries that are old or stale
    #[command(group(ArgGroup::new("criteria").required(true).multiple(true)))]
    Prune {
        /// Remove entries created longer ago than this (e.g. 30d, 12h, 1h30m, 2w), as
        /// `prune --older-than` takes it
        #[arg(long, value_name = "AGE", group = "criteria", value_parser = parse_age)]
        older_than: Option<Duration>,
        /// Remove entries written by another version of their function's code than the
        /// current one: the version the local root's version record names (the version
        /// that last ran here, under --dir), or else that of the function's newest remote
        /// entry. Entries of other branches' versions are stale too: run it where the code
        /// whose entries should stay last ran
        #[arg(long, group = "criteria")]
        stale: bool,
        /// Say what would be removed, remove nothing
        #[arg(long)]
        dry_run: bool,
    },
}

pub(crate) fn run(command: RemoteCommand, root: &Path) -> Result<(), Failed> {
    let Some(shown) = remote::describe() else {
        return Err(error(format!(
            "no usable remote: set {} (redis://host:port/db or s3://bucket/prefix)",
            remote::REMOTE_VAR
        )));
    };
    match command {
        RemoteCommand::List { json } => list(&shown, root, json),
        RemoteCommand::Clear { functions } => clear(&shown, &functions),
        RemoteCommand::Prune {
            older_than,
            stale,
            dry_run,
        } => prune(&shown, root, older_than, stale, dry_run),
    }
}

/// The directory names `function` may stand for: as `list` shows it, with `.` for `::`
/// (`a::b::c`, `a::caf_-<hash>`), and as the runtime names the function at that path
/// (`a::café`, `a::Wrapper<u8>::get`); one name when they agree.
fn dir_names(function: &str) -> Vec<String> {
    let listed = function.replace("::", ".");
    let named = file_cache::inspect::function_dir_name(function);
    if named == listed {
        vec![listed]
    } else {
        vec![listed, named]
    }
}

/// Seconds since the Unix epoch, for JSON.
fn secs(time: Option<SystemTime>) -> Option<u64> {
    time.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
}

/// One function's row of the table.
#[derive(Default)]
struct Row {
    entries: u64,
    stale: u64,
    bytes: u64,
    oldest: Option<SystemTime>,
    newest: Option<SystemTime>,
}

fn list(shown: &str, root: &Path, json: bool) -> Result<(), Failed> {
    let entries = remote::list(None).map_err(|e| error(format!("{shown}: {e}")))?;
    // Stale as `prune --stale` decides it: against the root's version records, else the
    // function's newest remote entry.
    let stale: BTreeSet<(String, String)> = Prune::new()
        .stale()
        .versions_from(root)
        .select(entries.clone())
        .into_iter()
        .map(|(entry, _)| (entry.function, entry.key))
        .collect();
    let is_stale = |e: &RemoteEntry| stale.contains(&(e.function.clone(), e.key.clone()));
    if json {
        #[derive(Serialize)]
        struct Entry<'a> {
            function: &'a str,
            key: &'a str,
            bytes: u64,
            /// Creation time its header records, seconds since the Unix epoch.
            created: Option<u64>,
            /// When the store wrote the object (S3), seconds since the Unix epoch.
            modified: Option<u64>,
            /// The code hash of the version that wrote it, in hex.
            version: Option<String>,
            /// Written by another version than its function's current one.
            stale: bool,
        }
        let rows: Vec<Entry<'_>> = entries
            .iter()
            .map(|e| Entry {
                function: &e.function,
                key: &e.key,
                bytes: e.size,
                created: secs(e.created),
                modified: secs(e.modified),
                version: e.version.as_ref().map(file_cache::inspect::to_hex),
                stale: is_stale(e),
            })
            .collect();
        return match serde_json::to_string_pretty(&rows) {
            Ok(text) => {
                say!("{text}");
                Ok(())
            }
            Err(e) => Err(error(e)),
        };
    }
    let mut per_function: BTreeMap<&str, Row> = BTreeMap::new();
    for entry in &entries {
        let row = per_function.entry(&entry.function).or_default();
        row.entries += 1;
        row.stale += u64::from(is_stale(entry));
        row.bytes += entry.size;
        // The creation time, or else when the store wrote it.
        if let Some(time) = entry.created.or(entry.modified) {
            row.oldest = Some(row.oldest.map_or(time, |t| t.min(time)));
            row.newest = Some(row.newest.map_or(time, |t| t.max(time)));
        }
    }
    say!("remote {shown}");
    let now = SystemTime::now();
    let when = |time: Option<SystemTime>| time.map_or("-".to_owned(), |t| human::age(t, now));
    let mut table = vec![["FUNCTION", "ENTRIES", "SIZE", "OLDEST", "NEWEST"].map(String::from)];
    for (function, row) in &per_function {
        let mut entries = row.entries.to_string();
        if row.stale > 0 {
            entries = format!("{entries} ({} stale)", row.stale);
        }
        table.push([
            function.to_string(),
            entries,
            human::size(row.bytes),
            when(row.oldest),
            when(row.newest),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &table {
        let mut line = format!("{:<w$}", row[0], w = widths[0]);
        for (cell, width) in row.iter().zip(&widths).skip(1) {
            line.push_str(&format!("  {cell:>width$}"));
        }
        say!("{line}");
    }
    Ok(())
}

fn clear(shown: &str, functions: &[String]) -> Result<(), Failed> {
    if functions.is_empty() {
        let removed = remote::clear(None).map_err(|e| error(format!("{shown}: {e}")))?;
        say!("removed {removed} remote entries from {shown}");
        return Ok(());
    }
    let mut failed = false;
    for function in functions {
        let cleared = dir_names(function)
            .iter()
            .map(|dir| remote::clear(Some(dir)))
            .sum::<Result<usize, _>>();
        match cleared {
            Ok(0) => {
                eprintln!("file-cache: error: {function}: no entries on the remote");
                failed = true;
            }
            Ok(removed) => say!("removed {removed} remote entries of {function}"),
            Err(e) => {
                eprintln!("file-cache: error: {shown}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        Err(Failed)
    } else {
        Ok(())
    }
}

fn prune(
    shown: &str,
    root: &Path,
    older_than: Option<Duration>,
    stale: bool,
    dry_run: bool,
) -> Result<(), Failed> {
    let mut criteria = Prune::new().versions_from(root);
    if let Some(age) = older_than {
        criteria = criteria.older_than(age);
    }
    if stale {
        criteria = criteria.stale();
    }
    if dry_run {
        criteria = criteria.dry_run();
    }
    let removed = remote::prune(&criteria).map_err(|e| error(format!("{shown}: {e}")))?;
    let why = |reason: PruneReason| match reason {
        PruneReason::Old => "old",
        PruneReason::Stale => "stale",
        _ => "other",
    };
    if dry_run {
        for (RemoteEntry { function, key, .. }, reason) in &removed {
            say!("would remove {function}/{key} ({})", why(*reason));
        }
    }
    let count = |reason| removed.iter().filter(|(_, r)| *r == reason).count();
    let bytes = removed.iter().map(|(entry, _)| entry.size).sum();
    say!(
        "{} {} remote entries ({}) from {shown}: {} old, {} stale",
        if dry_run { "would remove" } else { "removed" },
        removed.len(),
        human::size(bytes),
        count(PruneReason::Old),
        count(PruneReason::Stale)
    );
    Ok(())
}
