//! `file-cache remote list|clear` against a real `redis-server` on a loopback port.

#[path = "../../tests/remote_servers/harness.rs"]
mod harness;
#[path = "../../tests/remote_servers/mod.rs"]
mod remote_servers;

use remote_servers::{Kind, Server};
use std::process::{Command, Output};

/// The tests and the server each needs: a test whose server is not on the PATH is reported
/// as ignored (see `tests/remote_servers/harness.rs`).
fn main() -> std::process::ExitCode {
    harness::run(harness::tests![
        lists_and_clears_the_remote_tier: Redis,
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
    assert_eq!(row("app.render"), "2 400 B");
    assert_eq!(row("app.score"), "1 50 B");

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
