//! `file-cache remote list|clear`: the shared remote tier named by `FILE_CACHE_REMOTE`
//! (with the backend's usual credentials in the environment).

use crate::{error, human, Failed};
use clap::Subcommand;
use file_cache::remote::{self, RemoteEntry};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Subcommand)]
pub(crate) enum RemoteCommand {
    /// One line per function on the remote: entries and size
    List {
        /// Print every entry as JSON instead of a table
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
}

pub(crate) fn run(command: RemoteCommand) -> Result<(), Failed> {
    let Some(shown) = remote::describe() else {
        return Err(error(format!(
            "no usable remote: set {} (redis://host:port/db or s3://bucket/prefix)",
            remote::REMOTE_VAR
        )));
    };
    match command {
        RemoteCommand::List { json } => list(&shown, json),
        RemoteCommand::Clear { functions } => clear(&shown, &functions),
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

fn list(shown: &str, json: bool) -> Result<(), Failed> {
    let entries = remote::list(None).map_err(|e| error(format!("{shown}: {e}")))?;
    if json {
        #[derive(Serialize)]
        struct Entry<'a> {
            function: &'a str,
            key: &'a str,
            bytes: u64,
        }
        let rows: Vec<Entry<'_>> = entries
            .iter()
            .map(|e| Entry {
                function: &e.function,
                key: &e.key,
                bytes: e.size,
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
    let mut per_function: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for RemoteEntry { function, size, .. } in &entries {
        let row = per_function.entry(function).or_default();
        row.0 += 1;
        row.1 += size;
    }
    say!("remote {shown}");
    let width = per_function
        .keys()
        .map(|f| f.len())
        .max()
        .unwrap_or(0)
        .max(8);
    say!("{:<width$}  {:>7}  {:>9}", "FUNCTION", "ENTRIES", "SIZE");
    for (function, (count, bytes)) in &per_function {
        say!("{function:<width$}  {count:>7}  {:>9}", human::size(*bytes));
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
