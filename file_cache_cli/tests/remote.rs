//! `file-cache remote list|clear|prune` against a real `redis-server` on a loopback port.

#[path = "../../tests/remote_servers/harness.rs"]
mod harness;
#[path = "../../tests/remote_servers/mod.rs"]
mod remote_servers;

use remote_servers::{Kind, Server};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The tests and the server each needs: a test whose server is not on the PATH is reported
/// as ignored (see `tests/remote_servers/harness.rs`).
fn main() -> std::process::ExitCode {
    harness::run(harness::tests![
        lists_and_clears_the_remote_tier: Redis,
        lists_ages_and_prunes_old_and_stale_entries: Redis,
    ])
}

fn file_cache(server: Option<&Server>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_file-cache"));
    command.args(args).env_remove("FILE_CACHE_REMOTE");
    if let Some(server) = server {
        command.envs(server.env());
    }
    command.output().expect("run file-cache")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn lists_and_clears_the_remote_tier() {
    let server = Server::start(Kind::Redis);
    for (function, key, len) in [
        ("app.render", 1u8, 100usize),
        ("app.render", 2, 300),
        ("app.score", 3, 50),
    ] {
        server.put(
            &format!("{function}/{}", format!("{key:02x}").repeat(32)),
            &vec![0; len],
        );
    }

    let table = stdout(&file_cache(Some(&server), &["remote", "list"]));
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {table}"))
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(table.starts_with("remote redis://127.0.0.1:"), "{table}");
    // Objects that are not entries: no creation time to show.
    assert_eq!(row("app.render"), "2 400 B - -");
    assert_eq!(row("app.score"), "1 50 B - -");

    let json = stdout(&file_cache(Some(&server), &["remote", "list", "--json"]));
    assert_eq!(json.matches("\"function\"").count(), 3, "{json}");
    assert!(
        json.contains(&format!("\"key\": \"{}\"", "03".repeat(32))),
        "{json}"
    );

    let cleared = stdout(&file_cache(
        Some(&server),
        &["remote", "clear", "app::render"],
    ));
    assert_eq!(cleared.trim(), "removed 2 remote entries of app::render");
    let unknown = file_cache(Some(&server), &["remote", "clear", "app::nothing"]);
    assert_eq!(unknown.status.code(), Some(1));

    // Two functions whose names sanitise alike: each is cleared alone, by its path or by
    // the directory name `list` shows.
    let (acute, grave) = (
        file_cache::inspect::function_dir_name("app::café"),
        file_cache::inspect::function_dir_name("app::cafè"),
    );
    for dir in [&acute, &grave] {
        server.put(&format!("{dir}/{}", "04".repeat(32)), &[0; 10]);
    }
    let cleared = stdout(&file_cache(
        Some(&server),
        &["remote", "clear", "app::café"],
    ));
    assert_eq!(cleared.trim(), "removed 1 remote entries of app::café");
    assert!(server
        .get(&format!("{grave}/{}", "04".repeat(32)))
        .is_some());
    let listed = grave.replace('.', "::");
    let cleared = stdout(&file_cache(Some(&server), &["remote", "clear", &listed]));
    assert_eq!(
        cleared.trim(),
        format!("removed 1 remote entries of {listed}")
    );

    let all = stdout(&file_cache(Some(&server), &["remote", "clear"]));
    assert!(all.starts_with("removed 1 remote entries"), "{all}");
    assert!(server
        .get(&format!("app.score/{}", "03".repeat(32)))
        .is_none());

    let none = file_cache(None, &["remote", "list"]);
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("FILE_CACHE_REMOTE"));
}

/// An entry of format 3 holding a `u64`: key `[key; 32]`, written by the version
/// `[version; 32]` at `created`.
fn entry(key: u8, version: u8, created: SystemTime) -> Vec<u8> {
    let payload = 7u64.to_le_bytes();
    let name = b"u64";
    let mut bytes = b"FCACHE\r\n".to_vec();
    bytes.extend_from_slice(&3u16.to_le_bytes());
    bytes.extend_from_slice(&[1, 0]); // codec, flags
    bytes.extend_from_slice(&[key; 32]);
    bytes.extend_from_slice(&[version; 32]);
    bytes.extend_from_slice(&[0; 16]); // layout
    let ms = created.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    bytes.extend_from_slice(&ms.to_le_bytes());
    bytes.extend_from_slice(&1000u64.to_le_bytes()); // compute time
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(blake3::hash(&payload).as_bytes());
    bytes.extend_from_slice(&(name.len() as u16).to_le_bytes());
    bytes.extend_from_slice(name);
    let sum = xxhash_rust::xxh3::xxh3_128(&bytes);
    bytes.extend_from_slice(&sum.to_le_bytes());
    bytes.extend_from_slice(&payload);
    bytes
}

fn hex(byte: u8) -> String {
    format!("{byte:02x}").repeat(32)
}

fn lists_ages_and_prunes_old_and_stale_entries() {
    let server = Server::start(Kind::Redis);
    let now = SystemTime::now();
    let ago = |secs: u64| now - Duration::from_secs(secs);
    let day = 86_400;
    // (function, key, version, created)
    let entries = [
        ("app.render", 1u8, 1u8, ago(40 * day)),
        ("app.render", 2, 1, ago(3600)),
        ("app.render", 3, 2, now), // the newest, but not the recorded version
        ("app.score", 4, 5, ago(2 * 3600)),
        ("app.score", 5, 6, ago(600)), // no record: the newest is current
    ];
    for (function, key, version, created) in entries {
        server.put(
            &format!("{function}/{}", hex(key)),
            &entry(key, version, created),
        );
    }
    server.put(&format!("app.junk/{}", hex(9)), b"not an entry");
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("app.render")).unwrap();
    std::fs::write(
        root.path().join("app.render/.current"),
        format!("{}\n", hex(1)),
    )
    .unwrap();
    let dir = root.path().to_str().unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["--dir", dir, "remote"];
        all.extend(args);
        file_cache(Some(&server), &all)
    };

    let table = stdout(&run(&["list"]));
    // The cells of a function's row: columns are two spaces or more apart.
    let row = |name: &str| -> Vec<String> {
        let line = table.lines().find(|l| l.starts_with(name)).unwrap();
        line.split("  ")
            .map(str::trim)
            .filter(|cell| !cell.is_empty())
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        row("FUNCTION"),
        ["FUNCTION", "ENTRIES", "SIZE", "OLDEST", "NEWEST"]
    );
    let render = row("app.render");
    // Entries of 177 bytes. Stale: 3 is not the recorded version; app.score has no record,
    // its newest entry is current.
    assert_eq!(render[1..4], ["3 (1 stale)", "531 B", "40d ago"], "{table}");
    assert!(render[4].ends_with("s ago"), "{table}");
    assert_eq!(
        row("app.score")[1..],
        ["2 (1 stale)", "354 B", "2h ago", "10m ago"]
    );
    assert_eq!(
        row("app.junk")[1..],
        ["1", "12 B", "-", "-"],
        "not an entry: {table}"
    );

    let json = stdout(&run(&["list", "--json"]));
    let listed: serde_json::Value = serde_json::from_str(&json).unwrap();
    let first = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == hex(1))
        .unwrap();
    let created = ago(40 * day).duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!(
        first["created"].as_u64().unwrap().abs_diff(created) <= 1,
        "{first}"
    );
    assert_eq!(first["version"], hex(1));
    assert_eq!(first["stale"], false);
    assert!(first["modified"].is_null(), "Redis does not say");

    let dry = stdout(&run(&[
        "prune",
        "--older-than",
        "30d",
        "--stale",
        "--dry-run",
    ]));
    let mut would: Vec<&str> = dry
        .lines()
        .filter(|l| l.starts_with("would remove app"))
        .collect();
    would.sort();
    assert_eq!(
        would,
        [
            format!("would remove app.render/{} (old)", hex(1)),
            format!("would remove app.render/{} (stale)", hex(3)),
            format!("would remove app.score/{} (stale)", hex(4)),
        ],
        "{dry}"
    );
    assert!(dry.contains("would remove 3 remote entries"), "{dry}");
    assert!(server.get(&format!("app.render/{}", hex(1))).is_some());

    let pruned = stdout(&run(&["prune", "--older-than", "30d", "--stale"]));
    assert!(pruned.starts_with("removed 3 remote entries"), "{pruned}");
    assert!(pruned.trim_end().ends_with("1 old, 2 stale"), "{pruned}");
    for (function, key, gone) in [
        ("app.render", 1, true),
        ("app.render", 2, false),
        ("app.render", 3, true),
        ("app.score", 4, true),
        ("app.score", 5, false),
        ("app.junk", 9, false),
    ] {
        let name = format!("{function}/{}", hex(key));
        assert_eq!(server.get(&name).is_none(), gone, "{name}");
    }

    let usage = run(&["prune"]);
    assert_eq!(usage.status.code(), Some(2), "a criterion is required");
    let read_only = {
        let mut command = Command::new(env!("CARGO_BIN_EXE_file-cache"));
        command
            .args(["--dir", dir, "remote", "prune", "--stale"])
            .envs(server.env())
            .env("FILE_CACHE_READONLY", "1");
        command.output().unwrap()
    };
    assert_eq!(read_only.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&read_only.stderr).contains("FILE_CACHE_READONLY"));
}
