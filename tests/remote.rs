//! The remote tier against real servers (`redis-server`, and `moto_server` for S3): two
//! "machines" (processes with separate local roots) share results; a corrupted remote
//! entry, a wrong secret, a server killed mid-run, unreachable and broken servers never
//! break a call; `rediss://` trusts the CA it is given and no other; the remote can be
//! listed (with ages and versions), cleared and pruned; entries expire after
//! `FILE_CACHE_REMOTE_TTL`; S3 over HTTPS trusts the CA it is given and no other; large
//! values travel compressed, and a damaged compressed object is a miss; `remote::flush`
//! has the local copies of remote hits written.

mod common;
#[path = "remote_servers/harness.rs"]
mod harness;
mod remote_servers;
#[path = "remote_servers/values.rs"]
mod values;

use common::{child_role, entry_files, init, logged, marked_lines, run_child};
use file_cache::file_cache;
use file_cache::remote::{self, Prune, Remote, Writes};
use remote_servers::{fake_server, free_port, s3_env, Fake, Kind, Server};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Every test of this binary and the server it needs: a test whose server is not on the
/// PATH is reported as ignored (see `tests/remote_servers/harness.rs`).
fn main() -> std::process::ExitCode {
    harness::run(harness::tests![
        child,
        redis_two_machines_share_results: Redis,
        s3_two_machines_share_results: S3,
        redis_corrupted_remote_entry_is_a_miss: Redis,
        s3_corrupted_remote_entry_is_a_miss: S3,
        #[cfg(unix)]
        a_secret_of_random_bytes_signs_and_refuses_unsigned_entries: Redis,
        redis_is_cached_asks_the_remote: Redis,
        s3_is_cached_asks_the_remote: S3,
        redis_wrong_secret_is_a_miss: Redis,
        s3_wrong_secret_is_a_miss: S3,
        redis_server_killed_mid_run_degrades_to_local_only: Redis,
        s3_server_killed_mid_run_degrades_to_local_only: S3,
        redis_refused_silent_and_partial_servers_never_break_a_call,
        s3_refused_silent_and_partial_servers_never_break_a_call,
        redis_remote_tier_lists_and_clears: Redis,
        s3_remote_tier_lists_and_clears: S3,
        an_expired_remote_entry_is_a_miss: Redis,
        concurrent_callers_ask_the_remote_once: Redis,
        a_remote_hit_is_read_again_before_its_copy_is_written: Redis,
        a_remote_hit_waits_for_no_entry_lock: Redis,
        a_clear_after_a_remote_hit_leaves_no_local_copy: Redis,
        redis_uploads_queued_at_exit_are_sent: Redis,
        s3_uploads_queued_at_exit_are_sent: S3,
        a_silent_remote_delays_exit_by_the_exit_wait_at_most,
        a_dependency_travels_with_the_remote_entry: Redis,
        rediss_shares_results_and_a_wrong_certificate_is_a_remote_failure: Redis,
        #[cfg(target_os = "linux")]
        a_read_only_root_keeps_no_remote_hit_and_warns_once: Redis,
        redis_a_remote_ttl_expires_the_keys: Redis,
        s3_an_object_older_than_the_remote_ttl_is_a_miss: S3,
        redis_remote_prune_removes_old_and_stale_entries: Redis,
        s3_remote_prune_removes_old_and_stale_entries: S3,
        s3_over_https_trusts_the_ca_it_is_given_and_no_other: S3,
        redis_a_large_text_travels_compressed_and_noise_as_it_is: Redis,
        s3_a_large_text_travels_compressed_and_noise_as_it_is: S3,
        an_uncompressed_object_is_still_a_hit: Redis,
        a_damaged_compressed_object_is_a_miss: Redis,
        a_tampered_compressed_object_fails_its_signature: Redis,
    ])
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn square(x: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    x * x
}

#[file_cache]
fn cube(x: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    x * x * x
}

/// Reads `model.toml` in the working directory: a dependency named by a relative path.
#[file_cache]
fn scaled(x: u64) -> String {
    file_cache::depends_on("model.toml");
    RUNS.fetch_add(1, Ordering::SeqCst);
    format!(
        "{x} {}",
        std::fs::read_to_string("model.toml").unwrap_or_default()
    )
}

#[file_cache(ttl = "1s")]
fn brief(x: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    x + 1
}

/// 256 KiB that no compressor shrinks.
fn noise_bytes(seed: u64) -> Vec<u8> {
    values::random_bytes(seed, 256 << 10)
}

#[file_cache]
fn document(seed: u64) -> String {
    RUNS.fetch_add(1, Ordering::SeqCst);
    values::json_text(seed)
}

#[file_cache]
fn noise(seed: u64) -> Vec<u8> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    noise_bytes(seed)
}

const CHILD: &str = "child";
/// Env var: the values a `compute` child squares, comma-separated.
const XS: &str = "TEST_XS";
/// Env var: the backend a child's own server is (`redis` or `s3`).
const BACKEND: &str = "TEST_BACKEND";
/// Env var: what the fake server does (`refused`, `silent`, `partial`; `silent_tls`: silent,
/// reached by `rediss://` or `https://`).
const FAKE: &str = "TEST_FAKE";

/// A child's part, chosen by its role. Run with no role (the parent's run) it checks
/// nothing and passes.
fn child() {
    init();
    match child_role().as_deref() {
        None => {}
        Some("compute") => compute(),
        Some("killed") => server_killed_mid_run(Kind::parse(&env(BACKEND))),
        Some("broken") => broken_server(Kind::parse(&env(BACKEND)), &env(FAKE)),
        Some("admin") => admin(Kind::parse(&env(BACKEND))),
        Some("threads") => {
            let values: Vec<u64> = std::thread::scope(|scope| {
                let calls: Vec<_> = (0..8).map(|_| scope.spawn(|| square(21))).collect();
                calls
                    .into_iter()
                    .map(|c| c.join().expect("no panic"))
                    .collect()
            });
            assert_eq!(values, vec![441; 8]);
            println!("RUNS {}", RUNS.load(Ordering::SeqCst));
        }
        Some("exit") => {
            // Computes, then ends the process at once: no flush, no return from the test.
            for x in env(XS).split(',') {
                let x: u64 = x.parse().expect("a number");
                assert_eq!(square(x), x * x);
            }
            println!("RUNS {}", RUNS.load(Ordering::SeqCst));
            std::process::exit(0);
        }
        Some("twice") => {
            // A remote hit, then the same call at once: its local copy waits for the burst
            // to pause, and the memory tier is off.
            let x: u64 = env(XS).parse().expect("a number");
            assert_eq!(square(x), x * x);
            assert_eq!(square(x), x * x);
            println!("RUNS {}", RUNS.load(Ordering::SeqCst));
            assert!(remote::flush(Duration::from_secs(30)));
        }
        Some("probe") => {
            // Asks first, then calls: the answer must be what the call then does.
            let x: u64 = env(XS).parse().expect("a number");
            let cached = file_cache::is_cached(|| square(x));
            assert_eq!(square(x), x * x);
            println!("CACHED {cached}");
            println!("RUNS {}", RUNS.load(Ordering::SeqCst));
        }
        Some("clear_read_only") => {
            let error = remote::clear(None).expect_err("a read-only cache clears nothing");
            assert!(error.to_string().contains("FILE_CACHE_READONLY"), "{error}");
            let old = Prune::new().older_than(Duration::ZERO);
            let error = remote::prune(&old).expect_err("a read-only cache prunes nothing");
            assert!(error.to_string().contains("FILE_CACHE_READONLY"), "{error}");
            // A dry run changes nothing: it may say what a prune would remove.
            let would = remote::prune(&old.dry_run()).expect("a dry run");
            assert!(!would.is_empty());
            println!("REFUSED");
        }
        Some("prune") => prune_child(),
        Some("scaled") => {
            // Alone in its process: changing the working directory disturbs no other test.
            std::env::set_current_dir(env("TEST_CWD")).expect("the machine's directory");
            println!("VALUE {}", scaled(2));
            println!("RUNS {}", RUNS.load(Ordering::SeqCst));
            assert!(remote::flush(Duration::from_secs(30)));
        }
        Some("hit_then_clear") => {
            // A remote hit, whose local copy is written in the background, then a clear.
            let x: u64 = env(XS).parse().expect("a number");
            assert_eq!(square(x), x * x);
            let cleared = file_cache::clear_all().expect("clear");
            println!("CLEARED {cleared}");
            println!("RUNS {}", RUNS.load(Ordering::SeqCst));
        }
        Some("large") => {
            // Each of `TEST_XS` as a document and as noise, then what the remote holds.
            for x in env(XS).split(',') {
                let x: u64 = x.parse().expect("a number");
                assert!(
                    document(x) == values::json_text(x),
                    "document {x} comes back equal"
                );
                assert!(noise(x) == noise_bytes(x), "noise {x} comes back equal");
            }
            println!("RUNS {}", RUNS.load(Ordering::SeqCst));
            println!("FLUSHED {}", remote::flush(Duration::from_secs(30)));
            for object in remote::list(None).unwrap_or_default() {
                println!("OBJECT {}/{} {}", object.function, object.key, object.size);
            }
            let stats = file_cache::stats()
                .into_iter()
                .find(|s| s.function == "remote::document")
                .expect("document was called");
            println!(
                "DOCUMENT {} read {} written",
                stats.remote_bytes_read, stats.remote_bytes_written
            );
        }
        Some("ttl") => {
            assert_eq!(brief(1), 2);
            println!("RUNS {}", RUNS.load(Ordering::SeqCst));
            assert!(remote::flush(Duration::from_secs(30)));
        }
        Some(other) => panic!("unknown role {other}"),
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// Squares each of `TEST_XS`, then flushes the background uploads.
fn compute() {
    for x in env(XS).split(',') {
        let x: u64 = x.parse().expect("a number");
        assert_eq!(square(x), x * x);
        println!("VALUE {x} {}", x * x);
    }
    println!("RUNS {}", RUNS.load(Ordering::SeqCst));
    println!("FLUSHED {}", remote::flush(Duration::from_secs(30)));
    // Remote hits' local copies are written once a burst of hits pauses; the flush has
    // had them written before the process ends.
    let root = PathBuf::from(env("FILE_CACHE_DIR"));
    println!("LOCAL {}", entry_files(&root).len());
    let stats = file_cache::stats()
        .into_iter()
        .find(|s| s.function == "remote::square")
        .expect("square was called");
    println!(
        "REMOTE {} hits {} misses {} uploads {} read {} written",
        stats.remote_hits,
        stats.remote_misses,
        stats.uploads,
        stats.remote_bytes_read,
        stats.remote_bytes_written
    );
}

/// What a `compute` child's statistics said of the remote tier: hits, misses, uploads.
fn remote_counts(output: &Output) -> (u64, u64, u64) {
    let numbers = remote_numbers(output);
    (numbers[0], numbers[1], numbers[2])
}

/// Every number of a `compute` child's `REMOTE` line: hits, misses, uploads, bytes read,
/// bytes written.
fn remote_numbers(output: &Output) -> Vec<u64> {
    marked_lines(output, "REMOTE ")
        .remove(0)
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect()
}

fn runs(output: &Output) -> usize {
    marked_lines(output, "RUNS ")[0].parse().expect("RUNS n")
}

fn log_lines(output: &Output, level: &str, needle: &str) -> Vec<String> {
    marked_lines(output, &format!("LOG {level} "))
        .into_iter()
        .filter(|line| line.contains(needle))
        .collect()
}

/// A `compute` child on its own local root.
fn machine(root: &Path, server: &Server, xs: &str, extra: &[(&str, &str)]) -> Output {
    machine_as("compute", root, server, xs, extra)
}

/// [`machine`] in another child role.
fn machine_as(
    role: &str,
    root: &Path,
    server: &Server,
    xs: &str,
    extra: &[(&str, &str)],
) -> Output {
    let mut envs: Vec<(String, String)> = server.env();
    envs.push(("FILE_CACHE_DIR".into(), root.display().to_string()));
    envs.push((XS.into(), xs.into()));
    for (k, v) in extra {
        envs.push((k.to_string(), v.to_string()));
    }
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    run_child(CHILD, role, &envs)
}

fn fresh_root() -> PathBuf {
    tempfile::tempdir().expect("temp dir").keep()
}

/// The remote name (`<function dir>/<key hex>`) of a local entry file.
fn remote_name(entry: &Path) -> String {
    let hex = entry.file_name().unwrap().to_str().unwrap();
    let dir = entry
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .file_name()
        .unwrap();
    format!("{}/{hex}", dir.to_str().unwrap())
}

fn two_machines_share_results(kind: Kind) {
    init();
    let server = Server::start(kind);
    let (root_a, root_b) = (fresh_root(), fresh_root());

    // Machine A computes and stores: its local file, and the same bytes on the remote.
    let a = machine(&root_a, &server, "3,4", &[]);
    assert_eq!(runs(&a), 2);
    assert_eq!(marked_lines(&a, "FLUSHED "), ["true"]);
    assert_eq!(
        remote_counts(&a),
        (0, 2, 2),
        "two remote misses, two uploads"
    );
    let files_a = entry_files(&root_a);
    assert_eq!(files_a.len(), 2);
    for file in &files_a {
        let local = std::fs::read(file).unwrap();
        let remote = server.get(&remote_name(file)).expect("uploaded");
        assert_eq!(remote, local, "the remote holds exactly the local entry");
    }

    // Machine B, an empty local root: remote hits, written to its local tier.
    let b = machine(&root_b, &server, "3,4,5", &[]);
    assert_eq!(runs(&b), 1, "only 5 is computed");
    assert_eq!(
        remote_counts(&b),
        (2, 1, 1),
        "3 and 4 from the remote, 5 uploaded"
    );
    assert_eq!(marked_lines(&b, "VALUE "), ["3 9", "4 16", "5 25"]);
    assert_eq!(log_lines(&b, "DEBUG", "remote hit remote::square").len(), 2);
    assert_eq!(
        marked_lines(&b, "LOCAL "),
        ["3"],
        "flushed: the copies are written"
    );
    assert_eq!(entry_files(&root_b).len(), 3);
    for file in &files_a {
        let copy = root_b.join(file.strip_prefix(&root_a).unwrap());
        assert_eq!(std::fs::read(copy).unwrap(), std::fs::read(file).unwrap());
    }

    // B again: local hits, the remote is not asked.
    let again = machine(&root_b, &server, "3,4,5", &[]);
    assert_eq!(runs(&again), 0);
    assert!(log_lines(&again, "DEBUG", "remote hit").is_empty());
    assert!(log_lines(&again, "WARN", "").is_empty());

    // A read-only machine reads the remote but does not write to it.
    let root_c = fresh_root();
    let c = machine(
        &root_c,
        &server,
        "5,11",
        &[("FILE_CACHE_REMOTE_WRITE", "off")],
    );
    assert_eq!(runs(&c), 1, "5 from the remote, 11 computed");
    let eleven = entry_files(&root_c)
        .into_iter()
        .find(|f| server.get(&remote_name(f)).is_none());
    assert!(eleven.is_some(), "11 is only local");
}

fn redis_two_machines_share_results() {
    two_machines_share_results(Kind::Redis);
}

fn s3_two_machines_share_results() {
    two_machines_share_results(Kind::S3);
}

fn corrupted_remote_entry_is_a_miss(kind: Kind) {
    init();
    let server = Server::start(kind);
    let root_a = fresh_root();
    let a = machine(&root_a, &server, "6,7", &[]);
    assert_eq!(runs(&a), 2);
    let files = entry_files(&root_a);
    let (six, seven) = (remote_name(&files[0]), remote_name(&files[1]));

    // One object gets a flipped byte in its payload, the other holds the first's entry.
    let mut damaged = server.get(&six).unwrap();
    let last = damaged.len() - 1;
    damaged[last] ^= 0x01;
    server.put(&six, &damaged);
    let good_six = std::fs::read(&files[0]).unwrap();
    server.put(&seven, &good_six);

    let root_b = fresh_root();
    let b = machine(&root_b, &server, "6,7", &[]);
    assert_eq!(runs(&b), 2, "both recomputed");
    assert_eq!(marked_lines(&b, "VALUE "), ["6 36", "7 49"]);
    let warnings = log_lines(&b, "WARN", "unusable remote entry");
    assert_eq!(warnings.len(), 1, "one warning per function: {warnings:?}");
    // B rewrote both objects with good entries, equal to its local files.
    for file in entry_files(&root_b) {
        assert_eq!(
            server.get(&remote_name(&file)).unwrap(),
            std::fs::read(&file).unwrap()
        );
    }
}

fn redis_corrupted_remote_entry_is_a_miss() {
    corrupted_remote_entry_is_a_miss(Kind::Redis);
}

fn s3_corrupted_remote_entry_is_a_miss() {
    corrupted_remote_entry_is_a_miss(Kind::S3);
}

fn signed_entries(kind: Kind) {
    init();
    let server = Server::start(kind);
    let secret = |s: &'static str| [("FILE_CACHE_REMOTE_SECRET", s)];

    let root_a = fresh_root();
    let a = machine(&root_a, &server, "9", &secret("one"));
    assert_eq!(runs(&a), 1);
    let file = &entry_files(&root_a)[0];
    let object = server.get(&remote_name(file)).unwrap();
    let local = std::fs::read(file).unwrap();
    assert_eq!(
        &object[..local.len()],
        &local[..],
        "the entry, then its MAC"
    );
    assert_eq!(object.len(), local.len() + 40);

    let wrong = machine(&fresh_root(), &server, "9", &secret("two"));
    assert_eq!(runs(&wrong), 1, "a wrongly signed entry is a miss");
    assert_eq!(
        log_lines(&wrong, "WARN", "signature does not match").len(),
        1
    );
    // `wrong` re-signed it with "two": "one" refuses it now, then restores its own.
    let one_again = machine(&fresh_root(), &server, "9", &secret("one"));
    assert_eq!(runs(&one_again), 1);
    let hit = machine(&fresh_root(), &server, "9", &secret("one"));
    assert_eq!(runs(&hit), 0, "the same secret reads it");

    let unsigned_reader = machine(&fresh_root(), &server, "9", &[]);
    assert_eq!(runs(&unsigned_reader), 1);
    assert_eq!(
        log_lines(
            &unsigned_reader,
            "WARN",
            "FILE_CACHE_REMOTE_SECRET is not set"
        )
        .len(),
        1
    );
    // That reader stored an unsigned entry; a process with a secret refuses it.
    let signed_reader = machine(&fresh_root(), &server, "9", &secret("one"));
    assert_eq!(runs(&signed_reader), 1);
    assert_eq!(
        log_lines(&signed_reader, "WARN", "it is not signed").len(),
        1
    );
}

/// [`machine`] with a secret of raw bytes, which no `&str` can hold.
#[cfg(unix)]
fn machine_with_secret(root: &Path, server: &Server, xs: &str, secret: &[u8]) -> Output {
    use std::os::unix::ffi::OsStrExt;
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", CHILD, "--nocapture", "--test-threads=1"])
        .env(common::CHILD_VAR, "compute")
        .env_remove("FILE_CACHE")
        .env("RUST_LOG", "debug")
        .env("FILE_CACHE_DIR", root)
        .env(XS, xs)
        .env(
            "FILE_CACHE_REMOTE_SECRET",
            std::ffi::OsStr::from_bytes(secret),
        );
    for (name, value) in server.env() {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{output:?}");
    output
}

/// A secret of random bytes (what `head -c 32 /dev/urandom` gives) signs and checks like any
/// other: it is never dropped for not being text.
#[cfg(unix)]
fn a_secret_of_random_bytes_signs_and_refuses_unsigned_entries() {
    init();
    let server = Server::start(Kind::Redis);
    let secret = [0xff, 0x01, 0xc3, 0x28, 0x80, 0x9f, 0x7f, 0xfe];
    // Planted by a process with no secret: unsigned.
    let planter = machine(&fresh_root(), &server, "12", &[]);
    assert_eq!(runs(&planter), 1);
    let holder = machine_with_secret(&fresh_root(), &server, "12", &secret);
    assert_eq!(
        runs(&holder),
        1,
        "an unsigned entry is a miss for a secret holder"
    );
    assert_eq!(log_lines(&holder, "WARN", "it is not signed").len(), 1);
    // The holder's own entry is signed: a reader without the secret refuses it.
    let reader = machine(&fresh_root(), &server, "12", &[]);
    assert_eq!(runs(&reader), 1);
    assert_eq!(
        log_lines(&reader, "WARN", "FILE_CACHE_REMOTE_SECRET is not set").len(),
        1
    );
    // The reader re-stored it unsigned; the holder refuses that again, then hits its own.
    let again = machine_with_secret(&fresh_root(), &server, "12", &secret);
    assert_eq!(runs(&again), 1);
    let hit = machine_with_secret(&fresh_root(), &server, "12", &secret);
    assert_eq!(runs(&hit), 0, "the same bytes read it");
}

fn is_cached_asks_the_remote(kind: Kind) {
    init();
    let server = Server::start(kind);
    assert_eq!(runs(&machine(&fresh_root(), &server, "14", &[])), 1);
    // Another machine, its local root empty: the remote has the value.
    let mut envs: Vec<(String, String)> = server.env();
    envs.push(("FILE_CACHE_DIR".into(), fresh_root().display().to_string()));
    envs.push((XS.into(), "14".into()));
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let probe = run_child(CHILD, "probe", &envs);
    assert_eq!(runs(&probe), 0, "the call hit the remote");
    assert_eq!(
        marked_lines(&probe, "CACHED "),
        ["true"],
        "and is_cached said so"
    );
}

fn redis_is_cached_asks_the_remote() {
    is_cached_asks_the_remote(Kind::Redis);
}

fn s3_is_cached_asks_the_remote() {
    is_cached_asks_the_remote(Kind::S3);
}

fn redis_wrong_secret_is_a_miss() {
    signed_entries(Kind::Redis);
}

fn s3_wrong_secret_is_a_miss() {
    signed_entries(Kind::S3);
}

/// In a child: a server of its own, configured programmatically, killed after the first
/// call and restarted later.
fn server_killed_mid_run(kind: Kind) {
    let port = free_port();
    let mut server = Server::start_on(kind, port);
    if kind == Kind::S3 {
        for (k, v) in s3_env(port) {
            std::env::set_var(k, v);
        }
    }
    let retry = Duration::from_millis(500);
    remote::set(Some(
        Remote::new(server.url())
            .writes(Writes::Sync)
            .timeout(Duration::from_millis(300))
            .retry_after(retry),
    ))
    .expect("first use");
    assert!(remote::set(None).is_err(), "chosen once");

    assert_eq!(square(1), 1);
    assert_eq!(remote::list(None).expect("list").len(), 1);
    if kind == Kind::Redis {
        // The server closes its clients' connections (as an idle timeout would): the
        // pooled connection is replaced, not counted as a failure.
        server.kill_clients();
        assert_eq!(square(100), 10_000);
        assert!(logged(log::Level::Warn, "remote").is_empty());
        assert_eq!(remote::list(None).expect("list").len(), 2);
    }
    server.kill();
    for x in 2..=8 {
        assert_eq!(square(x), x * x);
    }
    let extra = usize::from(kind == Kind::Redis);
    assert_eq!(RUNS.load(Ordering::SeqCst), 8 + extra);
    let warnings = logged(log::Level::Warn, "remote");
    assert_eq!(warnings.len(), 1, "one warning: {warnings:?}");
    assert!(warnings[0].contains("continuing with the local cache only"));
    assert_eq!(
        logged(log::Level::Debug, "skipped after 3 failures").len(),
        1
    );

    // The server comes back (empty); after the retry period the remote is used again.
    let server = Server::start_on(kind, port);
    std::thread::sleep(retry + Duration::from_millis(100));
    assert_eq!(square(9), 81);
    assert_eq!(logged(log::Level::Info, "answers again").len(), 1);
    let names: Vec<String> = remote::list(None)
        .expect("list")
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(
        names.len(),
        1,
        "square(9) was stored on the restarted server"
    );
    drop(server);
    println!("DONE");
}

fn killed(kind: Kind) {
    init();
    let output = run_child(
        CHILD,
        "killed",
        &[
            (BACKEND, kind.name()),
            ("FILE_CACHE_DIR", fresh_root().to_str().unwrap()),
        ],
    );
    assert_eq!(marked_lines(&output, "DONE").len(), 1);
}

fn redis_server_killed_mid_run_degrades_to_local_only() {
    killed(Kind::Redis);
}

fn s3_server_killed_mid_run_degrades_to_local_only() {
    killed(Kind::S3);
}

/// In a child: a remote that refuses connections, never answers, or sends part of a
/// value; every call still returns its value, with one warning.
fn broken_server(kind: Kind, fake: &str) {
    let port = match fake {
        "refused" => free_port(),
        "silent" | "silent_tls" => fake_server(kind, Fake::Silent),
        "partial" => fake_server(kind, Fake::Partial),
        other => panic!("unknown fake {other}"),
    };
    let url = match kind {
        // A server that accepts the connection and never answers the TLS handshake.
        Kind::Redis if fake == "silent_tls" => format!("rediss://127.0.0.1:{port}/0"),
        Kind::Redis => format!("redis://127.0.0.1:{port}/0"),
        Kind::S3 => {
            for (k, v) in s3_env(port) {
                std::env::set_var(k, v);
            }
            if fake == "silent_tls" {
                // HTTPS, trusting a CA of our own: the handshake never completes.
                std::env::set_var("AWS_ENDPOINT_URL", format!("https://127.0.0.1:{port}"));
            }
            "s3://bucket/prefix".to_owned()
        }
    };
    let mut remote = Remote::new(url)
        .timeout(Duration::from_millis(100))
        .writes(Writes::Sync);
    if kind == Kind::S3 && fake == "silent_tls" {
        let dir = tempfile::tempdir().expect("temp dir").keep();
        remote = remote.ca(tls_files(&dir).ca);
    }
    remote::set(Some(remote)).expect("first use");
    for x in 1..=6 {
        assert_eq!(square(x), x * x);
        assert_eq!(cube(x), x * x * x);
    }
    assert_eq!(RUNS.load(Ordering::SeqCst), 12);
    let warnings = logged(log::Level::Warn, "");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("continuing with the local cache only"));
    // Three failures in a row open the breaker: the other calls skip the remote.
    assert_eq!(
        logged(log::Level::Debug, "skipped after 3 failures").len(),
        1
    );
    assert_eq!(logged(log::Level::Debug, "failed to").len(), 2);
    // Local hits still work.
    assert_eq!(square(3), 9);
    assert_eq!(RUNS.load(Ordering::SeqCst), 12);
    println!("DONE");
}

fn broken(kind: Kind, fake: &str) {
    init();
    let output = run_child(
        CHILD,
        "broken",
        &[
            (BACKEND, kind.name()),
            (FAKE, fake),
            ("FILE_CACHE_DIR", fresh_root().to_str().unwrap()),
        ],
    );
    assert_eq!(marked_lines(&output, "DONE").len(), 1);
}

fn redis_refused_silent_and_partial_servers_never_break_a_call() {
    for fake in ["refused", "silent", "partial", "silent_tls"] {
        broken(Kind::Redis, fake);
    }
}

fn s3_refused_silent_and_partial_servers_never_break_a_call() {
    for fake in ["refused", "silent", "partial", "silent_tls"] {
        broken(Kind::S3, fake);
    }
}

/// A certificate authority made for one test: its certificate (PEM) and its signing key.
struct Authority {
    pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn authority(name: &str) -> Authority {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("CA key");
    let pem = params.self_signed(&key).expect("self-signed CA").pem();
    Authority {
        pem,
        issuer: rcgen::Issuer::new(params, key),
    }
}

/// PEM files in one directory: a CA, another CA, and a certificate for 127.0.0.1 (with its
/// key) that the first one signed.
struct TlsFiles {
    ca: PathBuf,
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn tls_files(dir: &Path) -> TlsFiles {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
    let (ca, other) = (authority("test CA"), authority("another CA"));
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("server parameters");
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().expect("server key");
    let cert = params
        .signed_by(&key, &ca.issuer)
        .expect("server certificate");
    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        other_ca: dir.join("other-ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    for (path, pem) in [
        (&files.ca, ca.pem),
        (&files.other_ca, other.pem),
        (&files.cert, cert.pem()),
        (&files.key, key.serialize_pem()),
    ] {
        std::fs::write(path, pem).expect("write a PEM file");
    }
    files
}

/// A `compute` child on its own local root, on the remote at `url`, trusting the CA
/// certificates in `ca` (`FILE_CACHE_REMOTE_CA`) when given.
fn tls_machine(root: &Path, url: &str, ca: Option<&Path>, xs: &str) -> Output {
    let root = root.display().to_string();
    let mut envs = vec![
        ("FILE_CACHE_REMOTE", url.to_owned()),
        ("FILE_CACHE_DIR", root),
        (XS, xs.to_owned()),
        // A debug build's TLS handshake on a busy machine can outlast the default timeout;
        // a wrong certificate fails the handshake at once whatever the timeout.
        ("FILE_CACHE_REMOTE_TIMEOUT_MS", "5000".to_owned()),
    ];
    if let Some(ca) = ca {
        envs.push(("FILE_CACHE_REMOTE_CA", ca.display().to_string()));
    }
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_child(CHILD, "compute", &envs)
}

/// `rediss://` against a `redis-server` whose certificate a CA made here signed: trusting
/// that CA, machines share results; trusting the system's roots or another CA, the
/// handshake fails as any remote failure does (the value computed locally, one warning,
/// the breaker opening), and a CA file that cannot be read keeps the tier off.
fn rediss_shares_results_and_a_wrong_certificate_is_a_remote_failure() {
    init();
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = tls_files(dir.path());
    let server = Server::start_tls(&tls.cert, &tls.key, &tls.ca);
    let url = format!(
        "rediss://127.0.0.1:{}/0",
        server.tls_port.expect("TLS port")
    );

    let root_a = fresh_root();
    let a = tls_machine(&root_a, &url, Some(&tls.ca), "3,4");
    assert_eq!(runs(&a), 2);
    assert_eq!(marked_lines(&a, "FLUSHED "), ["true"]);
    assert!(log_lines(&a, "WARN", "").is_empty(), "{a:?}");
    let files_a = entry_files(&root_a);
    assert_eq!(files_a.len(), 2);
    for file in &files_a {
        // Read back through the server's plain port.
        let stored = server.get(&remote_name(file)).expect("uploaded over TLS");
        assert_eq!(stored, std::fs::read(file).unwrap());
    }
    let b = tls_machine(&fresh_root(), &url, Some(&tls.ca), "3,4,5");
    assert_eq!(runs(&b), 1, "3 and 4 are remote hits");
    assert_eq!(log_lines(&b, "DEBUG", "remote hit remote::square").len(), 2);
    assert!(log_lines(&b, "WARN", "").is_empty(), "{b:?}");

    for (trusted, what) in [
        (None, "the system's roots"),
        (Some(&tls.other_ca), "another CA"),
    ] {
        let out = tls_machine(
            &fresh_root(),
            &url,
            trusted.map(PathBuf::as_path),
            "3,4,5,6",
        );
        assert_eq!(runs(&out), 4, "{what}: every value computed here");
        assert_eq!(
            marked_lines(&out, "VALUE "),
            ["3 9", "4 16", "5 25", "6 36"]
        );
        let warnings = log_lines(&out, "WARN", "");
        assert_eq!(warnings.len(), 1, "{what}: one warning: {warnings:?}");
        assert!(
            warnings[0].contains("failed to read") && warnings[0].contains("certificate"),
            "{what}: the handshake refused the server's certificate: {warnings:?}"
        );
        assert_eq!(
            log_lines(&out, "DEBUG", "skipped after 3 failures").len(),
            1,
            "{what}: the breaker opened"
        );
    }

    let missing = dir.path().join("missing.pem");
    let out = tls_machine(&fresh_root(), &url, Some(&missing), "3");
    assert_eq!(runs(&out), 1);
    let warnings = log_lines(&out, "WARN", "");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("FILE_CACHE_REMOTE_CA") && warnings[0].contains("local cache only"),
        "{warnings:?}"
    );
}

/// In a child: list and clear the remote tier per function and as a whole.
fn admin(kind: Kind) {
    let port = free_port();
    let _server = Server::start_on(kind, port);
    if kind == Kind::S3 {
        for (k, v) in s3_env(port) {
            std::env::set_var(k, v);
        }
    }
    let url = match kind {
        Kind::Redis => format!("redis://127.0.0.1:{port}/0"),
        Kind::S3 => _server.url(),
    };
    remote::set(Some(Remote::new(url))).expect("first use");
    assert!(remote::describe().is_some());
    assert_eq!(remote::list(None).expect("list"), []);
    for x in 1..=3 {
        square(x);
    }
    cube(2);
    assert!(remote::flush(Duration::from_secs(30)));
    let all = remote::list(None).expect("list");
    assert_eq!(all.len(), 4);
    let cube_dir = "remote.cube";
    let cubes = remote::list(Some(cube_dir)).expect("list");
    assert_eq!(cubes.len(), 1);
    assert_eq!(cubes[0].function, cube_dir);
    assert_eq!(cubes[0].key.len(), 64);
    assert!(cubes[0].size > 166);
    assert_eq!(remote::clear(Some("remote.square")).expect("clear"), 3);
    assert_eq!(remote::list(None).expect("list"), cubes);
    assert_eq!(remote::clear(None).expect("clear"), 1);
    assert_eq!(remote::list(None).expect("list"), []);
    println!("DONE");
}

fn admin_test(kind: Kind) {
    init();
    let output = run_child(
        CHILD,
        "admin",
        &[
            (BACKEND, kind.name()),
            ("FILE_CACHE_DIR", fresh_root().to_str().unwrap()),
        ],
    );
    assert_eq!(marked_lines(&output, "DONE").len(), 1);
}

fn redis_remote_tier_lists_and_clears() {
    admin_test(Kind::Redis);
}

fn s3_remote_tier_lists_and_clears() {
    admin_test(Kind::S3);
}

fn an_expired_remote_entry_is_a_miss() {
    init();
    let server = Server::start(Kind::Redis);
    let child = |root: &Path| {
        let mut envs = server.env();
        envs.push(("FILE_CACHE_DIR".into(), root.display().to_string()));
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_child(CHILD, "ttl", &envs)
    };
    assert_eq!(runs(&child(&fresh_root())), 1);
    std::thread::sleep(Duration::from_millis(1100));
    let late = child(&fresh_root());
    assert_eq!(runs(&late), 1, "older than its ttl: computed again");
    assert_eq!(log_lines(&late, "DEBUG", "expired remote entry").len(), 1);
}

fn concurrent_callers_ask_the_remote_once() {
    init();
    let server = Server::start(Kind::Redis);
    assert_eq!(runs(&machine(&fresh_root(), &server, "21", &[])), 1);
    let mut envs = server.env();
    envs.push(("FILE_CACHE_DIR".into(), fresh_root().display().to_string()));
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let output = run_child(CHILD, "threads", &envs);
    assert_eq!(runs(&output), 0);
    // The flight's leader asks the remote; the others get its value or its local copy.
    assert_eq!(log_lines(&output, "DEBUG", "remote hit").len(), 1);
}

/// A remote hit's local copy is written once the burst of hits pauses; until then the
/// process reads the entry it holds for the file, and never asks the remote again.
fn a_remote_hit_is_read_again_before_its_copy_is_written() {
    init();
    let server = Server::start(Kind::Redis);
    assert_eq!(runs(&machine(&fresh_root(), &server, "23", &[])), 1);
    let root = fresh_root();
    let output = machine_as("twice", &root, &server, "23", &[("FILE_CACHE_MEMORY", "0")]);
    assert_eq!(runs(&output), 0);
    assert_eq!(
        log_lines(&output, "DEBUG", "remote hit").len(),
        1,
        "{output:?}"
    );
    assert_eq!(entry_files(&root).len(), 1);
}

/// The remote is asked before the entry's lock: a remote hit neither creates a lock file
/// nor waits for one held by another process. Its local copy, written off the call's
/// path, is on disk when the process has ended.
fn a_remote_hit_waits_for_no_entry_lock() {
    init();
    let server = Server::start(Kind::Redis);
    let root_a = fresh_root();
    assert_eq!(runs(&machine(&root_a, &server, "31", &[])), 1);
    let entry_a = entry_files(&root_a).remove(0);
    // Another process holds the entry's lock on machine B (as it would while computing).
    let root_b = fresh_root();
    let entry_b = root_b.join(entry_a.strip_prefix(&root_a).unwrap());
    let lock_path = entry_b.with_file_name(format!(
        ".{}.lock",
        entry_b.file_name().unwrap().to_str().unwrap()
    ));
    std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
    let lock = std::fs::File::create(&lock_path).unwrap();
    lock.lock().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    let root = root_b.clone();
    let caller = std::thread::spawn(move || {
        let _ = sender.send(machine(&root, &server, "31", &[]));
    });
    // A call that waited for the lock would wait for as long as it is held: give up after a
    // generous while, releasing it, so that the test ends either way.
    let finished = receiver.recv_timeout(Duration::from_secs(30));
    let b = match finished {
        Ok(output) => output,
        Err(_) => {
            drop(lock);
            caller.join().unwrap();
            panic!("the remote hit waited for the entry's lock held by another process");
        }
    };
    assert_eq!(runs(&b), 0, "a remote hit");
    assert_eq!(log_lines(&b, "DEBUG", "remote hit remote::square").len(), 1);
    assert!(log_lines(&b, "DEBUG", "waiting for the lock").is_empty());
    assert_eq!(
        std::fs::read(&entry_b).expect("the local copy, written before the process ended"),
        std::fs::read(&entry_a).unwrap()
    );
    assert!(lock_path.exists(), "the held lock file is untouched");
    drop(lock);
    caller.join().unwrap();
}

/// A clear right after a remote hit leaves no local copy behind: the copy queued for the
/// background writer is written before the clear, not after it.
fn a_clear_after_a_remote_hit_leaves_no_local_copy() {
    init();
    let server = Server::start(Kind::Redis);
    assert_eq!(runs(&machine(&fresh_root(), &server, "37", &[])), 1);
    let root = fresh_root();
    let mut envs = server.env();
    envs.push(("FILE_CACHE_DIR".into(), root.display().to_string()));
    envs.push((XS.into(), "37".into()));
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let output = run_child(CHILD, "hit_then_clear", &envs);
    assert_eq!(runs(&output), 0, "a remote hit");
    assert_eq!(marked_lines(&output, "CLEARED "), ["1"]);
    assert!(entry_files(&root).is_empty(), "{:?}", entry_files(&root));
}

/// Runs the `shared_caller` binary, which computes one value and returns from `main` at
/// once, on its own local root; returns what it printed.
fn caller_returning_from_main(root: &Path, server: &Server) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_shared_caller"));
    command
        .arg("12")
        .env_remove("FILE_CACHE")
        .env("FILE_CACHE_DIR", root);
    for (name, value) in server.env() {
        command.env(name, value);
    }
    let output = command.output().expect("run shared_caller");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn uploads_queued_at_exit_are_sent(kind: Kind) {
    init();
    let server = Server::start(kind);
    // Default settings: background writes, no flush. Machine A returns from `main` right
    // after computing; machine B, on another local root, hits what A uploaded.
    assert_eq!(
        caller_returning_from_main(&fresh_root(), &server),
        "value=144 runs=1"
    );
    assert_eq!(
        caller_returning_from_main(&fresh_root(), &server),
        "value=144 runs=0",
        "the value was uploaded before the first machine ended"
    );
    // The same with `std::process::exit` right after the call.
    let mut envs = server.env();
    envs.push(("FILE_CACHE_DIR".into(), fresh_root().display().to_string()));
    envs.push((XS.into(), "13".into()));
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(runs(&run_child(CHILD, "exit", &envs)), 1);
    let b = machine(&fresh_root(), &server, "13", &[]);
    assert_eq!(runs(&b), 0, "a remote hit");
    assert!(log_lines(&b, "WARN", "").is_empty());
}

fn redis_uploads_queued_at_exit_are_sent() {
    uploads_queued_at_exit_are_sent(Kind::Redis);
}

fn s3_uploads_queued_at_exit_are_sent() {
    uploads_queued_at_exit_are_sent(Kind::S3);
}

fn a_silent_remote_delays_exit_by_the_exit_wait_at_most() {
    init();
    // Reads requests and never answers; each request would wait out a 60 s timeout.
    let port = fake_server(Kind::Redis, Fake::Silent);
    let url = format!("redis://127.0.0.1:{port}/0");
    let root = fresh_root();
    let started = Instant::now();
    let output = run_child(
        CHILD,
        "exit",
        &[
            ("FILE_CACHE_REMOTE", &url),
            ("FILE_CACHE_REMOTE_TIMEOUT_MS", "60000"),
            ("FILE_CACHE_REMOTE_EXIT_WAIT", "1"),
            // No remote lookup before computing: only the upload meets the silence.
            ("FILE_CACHE", "refresh"),
            ("FILE_CACHE_DIR", root.to_str().unwrap()),
            (XS, "2,3"),
        ],
    );
    let elapsed = started.elapsed();
    assert_eq!(runs(&output), 2);
    // Far below the remote's timeout: the exit waited for the exit wait, not the remote.
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    let warnings = log_lines(&output, "WARN", "");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("2 remote upload(s) not sent after waiting 1.0 s"),
        "{warnings:?}"
    );
    assert_eq!(entry_files(&root).len(), 2, "the local tier has both");
}

/// A directory this process cannot write: a tmpfs mounted read-only when this runs as root
/// (root writes through any mode), else a directory of mode 0555.
#[cfg(target_os = "linux")]
struct ReadOnlyDir {
    dir: tempfile::TempDir,
    mounted: bool,
}

#[cfg(target_os = "linux")]
impl ReadOnlyDir {
    fn new() -> ReadOnlyDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_str().unwrap().to_owned();
        // SAFETY: `geteuid` has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        if root {
            let mount = |args: &[&str]| {
                let status = std::process::Command::new("mount")
                    .args(args)
                    .status()
                    .expect("run mount");
                assert!(status.success(), "mount {args:?} failed");
            };
            mount(&["-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", &path]);
            mount(&["-o", "remount,ro", &path]);
        } else {
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555))
                .expect("chmod 0555");
        }
        ReadOnlyDir { dir, mounted: root }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

#[cfg(target_os = "linux")]
impl Drop for ReadOnlyDir {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        if self.mounted {
            let _ = std::process::Command::new("umount")
                .arg(self.dir.path())
                .status();
        } else {
            let _ =
                std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755));
        }
    }
}

/// A root this process cannot write (a read-only mount): a remote hit is served and not
/// copied into it, a miss is computed and not stored, nothing under it changes, and the
/// process warns once (when it finds the root read-only), not once more per writer.
#[cfg(target_os = "linux")]
fn a_read_only_root_keeps_no_remote_hit_and_warns_once() {
    init();
    let server = Server::start(Kind::Redis);
    let filled = fresh_root();
    let a = machine(&filled, &server, "3,4", &[]);
    assert_eq!(runs(&a), 2);
    assert_eq!(marked_lines(&a, "FLUSHED "), ["true"]);
    assert_eq!(
        remote_counts(&a),
        (0, 2, 2),
        "two remote misses, two uploads"
    );

    let read_only = ReadOnlyDir::new();
    let b = machine(read_only.path(), &server, "3,4,5", &[]);
    assert_eq!(runs(&b), 1, "3 and 4 from the remote, 5 computed");
    assert_eq!(marked_lines(&b, "VALUE "), ["3 9", "4 16", "5 25"]);
    assert_eq!(log_lines(&b, "DEBUG", "remote hit remote::square").len(), 2);
    let warnings = log_lines(&b, "WARN", "");
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("cannot write under the cache root"),
        "{warnings:#?}"
    );
    assert_eq!(
        log_lines(&b, "INFO", "not stored").len(),
        1,
        "the miss not stored is said once"
    );
    let left: Vec<_> = std::fs::read_dir(read_only.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");

    // With FILE_CACHE_READONLY, the remote tier is not cleared either.
    let mut envs = server.env();
    envs.push((
        "FILE_CACHE_DIR".into(),
        read_only.path().display().to_string(),
    ));
    envs.push(("FILE_CACHE_READONLY".into(), "1".into()));
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let refused = run_child(CHILD, "clear_read_only", &envs);
    assert_eq!(marked_lines(&refused, "REFUSED"), [""]);
    for file in entry_files(&filled) {
        assert!(
            server.get(&remote_name(&file)).is_some(),
            "still on the remote"
        );
    }
}

/// An entry's recorded dependencies travel with it: another machine's hit re-checks them
/// there, each path as the body named it (a relative one in that machine's directory).
fn a_dependency_travels_with_the_remote_entry() {
    init();
    let server = Server::start(Kind::Redis);
    let machine = |config: &str| {
        let cwd = tempfile::tempdir().unwrap().keep();
        std::fs::write(cwd.join("model.toml"), config).unwrap();
        let mut envs = server.env();
        envs.push(("FILE_CACHE_DIR".into(), fresh_root().display().to_string()));
        envs.push(("TEST_CWD".into(), cwd.display().to_string()));
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let output = run_child(CHILD, "scaled", &envs);
        (
            marked_lines(&output, "VALUE ").remove(0),
            runs(&output),
            output,
        )
    };
    let (value, runs_a, _) = machine("small");
    assert_eq!((value.as_str(), runs_a), ("2 small", 1));
    let (value, runs_b, b) = machine("small");
    assert_eq!(
        (value.as_str(), runs_b),
        ("2 small", 0),
        "the same file there: a remote hit"
    );
    assert_eq!(log_lines(&b, "DEBUG", "remote hit remote::scaled").len(), 1);
    let (value, runs_c, c) = machine("large");
    assert_eq!(
        (value.as_str(), runs_c),
        ("2 large", 1),
        "another file there: a miss"
    );
    assert_eq!(log_lines(&c, "DEBUG", "model.toml changed").len(), 1);
}

/// `FILE_CACHE_REMOTE_TTL` on Redis: keys are written with that expiry (`SET ... EX`);
/// without it, they have none.
fn redis_a_remote_ttl_expires_the_keys() {
    init();
    let server = Server::start(Kind::Redis);
    let root = fresh_root();
    let a = machine(&root, &server, "3", &[("FILE_CACHE_REMOTE_TTL", "1h")]);
    assert_eq!(remote_counts(&a), (0, 1, 1), "uploaded");
    let three = remote_name(&entry_files(&root)[0]);
    let ttl = server.ttl(&three);
    assert!((3500..=3600).contains(&ttl), "expires in an hour: {ttl}");

    let plain = fresh_root();
    machine(&plain, &server, "5", &[]);
    let five = remote_name(&entry_files(&plain)[0]);
    assert_eq!(server.ttl(&five), -1, "no expiry");
}

/// `FILE_CACHE_REMOTE_TTL` on S3: an object written longer ago than that is a miss, and the
/// value computed then overwrites it; a younger one is a hit.
fn s3_an_object_older_than_the_remote_ttl_is_a_miss() {
    init();
    let server = Server::start(Kind::S3);
    let ttl = "FILE_CACHE_REMOTE_TTL";
    let root_a = fresh_root();
    machine(&root_a, &server, "3", &[]);
    let three = remote_name(&entry_files(&root_a)[0]);
    let first = server.get(&three).expect("uploaded");

    let young = machine(&fresh_root(), &server, "3", &[(ttl, "1h")]);
    assert_eq!(runs(&young), 0, "younger than its time to live: a hit");

    // Last-Modified has whole seconds: 2 s later, the object is surely more than 1 s old.
    std::thread::sleep(Duration::from_millis(2100));
    let root_c = fresh_root();
    let old = machine(&root_c, &server, "3", &[(ttl, "1s")]);
    assert_eq!(runs(&old), 1, "older than its time to live: computed again");
    assert_eq!(remote_counts(&old), (0, 1, 1), "a miss, and uploaded again");
    assert_eq!(
        log_lines(&old, "DEBUG", "older than the remote time to live").len(),
        1
    );
    let second = server.get(&three).expect("overwritten");
    assert_ne!(second, first, "a new entry (another creation time)");
    assert_eq!(second, std::fs::read(&entry_files(&root_c)[0]).unwrap());
}

/// A copy of the entry `bytes` under another key (its first byte `key_byte`), created at
/// `created`, by the version `code_hash` when given: what an older run, or another version
/// of the function, would have stored. Entry format 3 without dependencies: the header
/// checksum is made again. Returns the bytes and the key in hex.
fn forged(
    bytes: &[u8],
    key_byte: u8,
    code_hash: Option<[u8; 32]>,
    created: SystemTime,
) -> (Vec<u8>, String) {
    let mut bytes = bytes.to_vec();
    bytes[12] = key_byte;
    if let Some(hash) = code_hash {
        bytes[44..76].copy_from_slice(&hash);
    }
    let ms = created.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    bytes[92..100].copy_from_slice(&ms.to_le_bytes());
    let end = 150 + u16::from_le_bytes([bytes[148], bytes[149]]) as usize;
    let sum = xxhash_rust::xxh3::xxh3_128(&bytes[..end]);
    bytes[end..end + 16].copy_from_slice(&sum.to_le_bytes());
    let key = bytes[12..44].iter().map(|b| format!("{b:02x}")).collect();
    (bytes, key)
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// In a child: list the remote (ages and versions), prune it dry against a root without
/// version records (`TEST_FRESH`), then for real against its own root.
fn prune_child() {
    let now = SystemTime::now();
    for entry in remote::list(None).expect("list") {
        println!(
            "LIST {}/{} {} {}",
            entry.function,
            entry.key,
            entry
                .age(now)
                .map_or("-".into(), |age| age.as_secs().to_string()),
            entry.version.as_ref().map_or("-".into(), hex)
        );
    }
    let month = Duration::from_secs(30 * 86_400);
    let criteria = Prune::new().older_than(month).stale();
    let dry = criteria.clone().versions_from(env("TEST_FRESH")).dry_run();
    for (entry, why) in remote::prune(&dry).expect("dry run") {
        println!("DRY {}/{} {why:?}", entry.function, entry.key);
    }
    for (entry, why) in remote::prune(&criteria).expect("prune") {
        println!("PRUNED {}/{} {why:?}", entry.function, entry.key);
    }
    for entry in remote::list(None).expect("list") {
        println!("LEFT {}/{}", entry.function, entry.key);
    }
}

/// `remote::prune`: entries older than an age go by the creation time their header
/// records; stale entries are those of another version than the one the local root
/// records, or, without a record, than the newest entry's. A dry run removes nothing.
fn remote_prune_removes_old_and_stale_entries(kind: Kind) {
    init();
    let server = Server::start(kind);
    let root = fresh_root();
    machine(&root, &server, "3,4", &[]);
    let files = entry_files(&root);
    let mut kept: Vec<String> = files.iter().map(|f| remote_name(f)).collect();
    let dir = kept[0].split('/').next().unwrap().to_owned();
    let recorded = std::fs::read_to_string(root.join(&dir).join(".current")).unwrap();
    let entry = std::fs::read(&files[0]).unwrap();
    let now = SystemTime::now();
    // This version's, made 40 days ago.
    let (old, old_key) = forged(&entry, 0xa1, None, now - Duration::from_secs(40 * 86_400));
    // Another version's, and the newest: a second after the latest of this version's, as
    // their headers record it (not this process's clock, which a busy machine may see
    // stepped back since the child stored them).
    let latest_ms = files
        .iter()
        .map(|file| {
            let bytes = std::fs::read(file).unwrap();
            u64::from_le_bytes(bytes[92..100].try_into().unwrap())
        })
        .max()
        .unwrap();
    let newest = UNIX_EPOCH + Duration::from_millis(latest_ms + 1_000);
    let (stale, stale_key) = forged(&entry, 0xb2, Some([7; 32]), newest);
    let (old_name, stale_name) = (format!("{dir}/{old_key}"), format!("{dir}/{stale_key}"));
    server.put(&old_name, &old);
    server.put(&stale_name, &stale);

    let mut envs = server.env();
    envs.push(("FILE_CACHE_DIR".into(), root.display().to_string()));
    envs.push(("TEST_FRESH".into(), fresh_root().display().to_string()));
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = run_child(CHILD, "prune", &envs);

    let listed: Vec<Vec<String>> = marked_lines(&out, "LIST ")
        .iter()
        .map(|line| line.split(' ').map(str::to_owned).collect())
        .collect();
    assert_eq!(listed.len(), 4, "{listed:?}");
    let of = |name: &str| listed.iter().find(|l| l[0] == name).unwrap().clone();
    for name in &kept {
        assert_eq!(of(name)[2], recorded.trim(), "the version that wrote it");
        assert!(of(name)[1].parse::<u64>().unwrap() < 3600, "made just now");
    }
    let old_age: u64 = of(&old_name)[1].parse().unwrap();
    assert!((40 * 86_400..41 * 86_400).contains(&old_age), "{old_age}");
    assert_eq!(of(&stale_name)[2], hex(&[7; 32]));

    let sorted = |mut lines: Vec<String>| {
        lines.sort();
        lines
    };
    // Without a record, the newest entry's version is current: the others are stale.
    let mut dry = vec![format!("{old_name} Old")];
    dry.extend(kept.iter().map(|name| format!("{name} Stale")));
    assert_eq!(sorted(marked_lines(&out, "DRY ")), sorted(dry));
    assert_eq!(
        sorted(marked_lines(&out, "PRUNED ")),
        sorted(vec![
            format!("{old_name} Old"),
            format!("{stale_name} Stale")
        ])
    );
    kept.sort();
    assert_eq!(sorted(marked_lines(&out, "LEFT ")), kept);
    assert!(server.get(&old_name).is_none() && server.get(&stale_name).is_none());
}

fn redis_remote_prune_removes_old_and_stale_entries() {
    remote_prune_removes_old_and_stale_entries(Kind::Redis);
}

fn s3_remote_prune_removes_old_and_stale_entries() {
    remote_prune_removes_old_and_stale_entries(Kind::S3);
}

/// S3 over HTTPS with `FILE_CACHE_REMOTE_CA`: a moto_server whose certificate a CA made
/// here signed. Trusting that CA, machines share results; trusting the system's roots or
/// another CA, the handshake fails as any remote failure does (computed locally, one
/// warning, the breaker opening).
fn s3_over_https_trusts_the_ca_it_is_given_and_no_other() {
    init();
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = tls_files(dir.path());
    let server = Server::start_s3_tls(&tls.cert, &tls.key, &tls.ca);
    let (ca, other_ca) = (
        tls.ca.display().to_string(),
        tls.other_ca.display().to_string(),
    );
    // moto is slow to shake hands: a generous timeout keeps this about trust, not speed.
    let timeout = ("FILE_CACHE_REMOTE_TIMEOUT_MS", "5000");
    fn trusting<'a>(trusted: &'a str, timeout: (&'a str, &'a str)) -> [(&'a str, &'a str); 2] {
        [("FILE_CACHE_REMOTE_CA", trusted), timeout]
    }

    let a = machine(&fresh_root(), &server, "3,4", &trusting(&ca, timeout));
    assert!(log_lines(&a, "WARN", "").is_empty(), "{a:?}");
    assert_eq!(runs(&a), 2);
    assert_eq!(marked_lines(&a, "FLUSHED "), ["true"]);
    assert_eq!(remote_counts(&a), (0, 2, 2), "uploaded over HTTPS");
    let b = machine(&fresh_root(), &server, "3,4,5", &trusting(&ca, timeout));
    assert_eq!(runs(&b), 1, "3 and 4 are remote hits");
    assert_eq!(remote_counts(&b), (2, 1, 1));
    assert!(log_lines(&b, "WARN", "").is_empty(), "{b:?}");

    for (extra, what) in [
        (vec![timeout], "the system's roots"),
        (trusting(&other_ca, timeout).to_vec(), "another CA"),
    ] {
        let out = machine(&fresh_root(), &server, "3,4,5,6", &extra);
        assert_eq!(runs(&out), 4, "{what}: every value computed here");
        let warnings = log_lines(&out, "WARN", "");
        assert_eq!(warnings.len(), 1, "{what}: one warning: {warnings:?}");
        assert!(
            warnings[0].contains("failed to read") && warnings[0].contains("certificate"),
            "{what}: the handshake refused the server's certificate: {warnings:?}"
        );
        assert_eq!(
            log_lines(&out, "DEBUG", "skipped after 3 failures").len(),
            1,
            "{what}: the breaker opened"
        );
    }
}

/// A `large` child on its own local root.
fn large_machine(root: &Path, server: &Server, xs: &str, extra: &[(&str, &str)]) -> Output {
    let mut envs: Vec<(String, String)> = server.env();
    envs.push(("FILE_CACHE_DIR".into(), root.display().to_string()));
    envs.push((XS.into(), xs.into()));
    for (k, v) in extra {
        envs.push((k.to_string(), v.to_string()));
    }
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    run_child(CHILD, "large", &envs)
}

/// The size of each remote object, by name, as `remote::list` told a `large` child.
fn object_sizes(output: &Output) -> std::collections::HashMap<String, u64> {
    marked_lines(output, "OBJECT ")
        .into_iter()
        .map(|line| {
            let (name, size) = line.split_once(' ').expect("name size");
            (name.to_owned(), size.parse().expect("a size"))
        })
        .collect()
}

/// The local entry file of the function `remote::<name>` under `root` (one per function).
fn entry_of(root: &Path, name: &str) -> PathBuf {
    let dir = format!("remote.{name}");
    let mut files: Vec<PathBuf> = entry_files(root)
        .into_iter()
        .filter(|f| f.components().any(|c| c.as_os_str() == dir.as_str()))
        .collect();
    assert_eq!(files.len(), 1, "one entry of {name}: {files:?}");
    files.remove(0)
}

/// Whether an entry's flags say its payload is compressed.
fn is_compressed(entry: &[u8]) -> bool {
    entry[11] & 2 != 0
}

fn a_large_text_travels_compressed_and_noise_as_it_is(kind: Kind) {
    init();
    let server = Server::start(kind);
    let root_a = fresh_root();
    let a = large_machine(&root_a, &server, "1", &[]);
    assert_eq!(runs(&a), 2);
    assert_eq!(marked_lines(&a, "FLUSHED "), ["true"]);
    let sizes = object_sizes(&a);
    let (document_file, noise_file) = (entry_of(&root_a, "document"), entry_of(&root_a, "noise"));
    let document_entry = std::fs::read(&document_file).unwrap();
    assert!(document_entry.len() > 256 << 10);
    assert!(!is_compressed(&document_entry), "the local entry is plain");
    let document_object = sizes[&remote_name(&document_file)];
    assert!(
        document_object * 3 < document_entry.len() as u64,
        "the text is stored compressed: {document_object} bytes for an entry of {}",
        document_entry.len()
    );
    assert!(is_compressed(
        &server.get(&remote_name(&document_file)).unwrap()
    ));
    // What travelled is counted as it travelled: the compressed object.
    assert_eq!(document_bytes(&a), (0, document_object));
    // Noise does not compress: the object is the local entry, byte for byte.
    let noise_entry = std::fs::read(&noise_file).unwrap();
    assert_eq!(sizes[&remote_name(&noise_file)], noise_entry.len() as u64);
    assert_eq!(server.get(&remote_name(&noise_file)).unwrap(), noise_entry);

    // Another machine: both from the remote, equal (the child checks), and its local copies
    // are the plain entries A wrote.
    let root_b = fresh_root();
    let b = large_machine(&root_b, &server, "1", &[]);
    assert_eq!(runs(&b), 0, "both from the remote");
    assert_eq!(document_bytes(&b), (document_object, 0));
    assert_eq!(
        log_lines(&b, "DEBUG", "remote hit remote::document").len(),
        1
    );
    for file in [&document_file, &noise_file] {
        let copy = root_b.join(file.strip_prefix(&root_a).unwrap());
        assert_eq!(std::fs::read(copy).unwrap(), std::fs::read(file).unwrap());
    }
    // The remote gone: B's local copies answer on their own.
    let gone = large_machine(
        &root_b,
        &server,
        "1",
        &[("FILE_CACHE_REMOTE", "redis://127.0.0.1:1/0")],
    );
    assert_eq!(runs(&gone), 0, "local hits");
    assert!(log_lines(&gone, "WARN", "unusable").is_empty());
}

/// What a `large` child's statistics said of its document's remote bytes: read, written.
fn document_bytes(output: &Output) -> (u64, u64) {
    let numbers: Vec<u64> = marked_lines(output, "DOCUMENT ")
        .remove(0)
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

fn redis_a_large_text_travels_compressed_and_noise_as_it_is() {
    a_large_text_travels_compressed_and_noise_as_it_is(Kind::Redis);
}

fn s3_a_large_text_travels_compressed_and_noise_as_it_is() {
    a_large_text_travels_compressed_and_noise_as_it_is(Kind::S3);
}

/// What a writer without compression (`FILE_CACHE_REMOTE_COMPRESS=off`, or a version that
/// predates it) stores is read by one that compresses.
fn an_uncompressed_object_is_still_a_hit() {
    init();
    let server = Server::start(Kind::Redis);
    let root_a = fresh_root();
    let a = large_machine(
        &root_a,
        &server,
        "4",
        &[("FILE_CACHE_REMOTE_COMPRESS", "off")],
    );
    assert_eq!(runs(&a), 2);
    let document_file = entry_of(&root_a, "document");
    assert_eq!(
        server.get(&remote_name(&document_file)).unwrap(),
        std::fs::read(&document_file).unwrap(),
        "stored plain"
    );
    let b = large_machine(&fresh_root(), &server, "4", &[]);
    assert_eq!(runs(&b), 0, "plain objects are hits");
}

/// Stores document 2 from a fresh machine; returns its remote name and object.
fn stored_document(server: &Server, extra: &[(&str, &str)]) -> (String, Vec<u8>) {
    let root = fresh_root();
    large_machine(&root, server, "2", extra);
    let name = remote_name(&entry_of(&root, "document"));
    let object = server.get(&name).expect("uploaded");
    assert!(is_compressed(&object));
    (name, object)
}

/// A compressed entry with `len` as the plain payload's length, its header checksum made
/// good again: only the decompression can tell.
fn with_plain_len(object: &[u8], len: u64) -> Vec<u8> {
    let name_len = u16::from_le_bytes([object[148], object[149]]) as usize;
    let fields_at = 150 + name_len;
    let sum_at = fields_at + 40;
    let mut lying = object.to_vec();
    lying[fields_at..fields_at + 8].copy_from_slice(&len.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_128(&lying[..sum_at]).to_le_bytes();
    lying[sum_at..sum_at + 16].copy_from_slice(&sum);
    lying
}

fn a_damaged_compressed_object_is_a_miss() {
    init();
    let server = Server::start(Kind::Redis);
    let (name, object) = stored_document(&server, &[]);
    let plain_len = {
        let fields_at = 150 + u16::from_le_bytes([object[148], object[149]]) as usize;
        u64::from_le_bytes(object[fields_at..fields_at + 8].try_into().unwrap())
    };
    let mut flipped = object.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    let damaged = [
        ("a flipped byte", flipped),
        ("truncated", object[..object.len() - 10].to_vec()),
        ("a size too large", with_plain_len(&object, plain_len + 1)),
        ("a size too small", with_plain_len(&object, plain_len - 1)),
        ("a bomb's size", with_plain_len(&object, 1 << 40)),
    ];
    for (what, bytes) in damaged {
        server.put(&name, &bytes);
        let b = large_machine(&fresh_root(), &server, "2", &[]);
        assert_eq!(runs(&b), 1, "{what}: the document is recomputed");
        assert_eq!(
            log_lines(&b, "WARN", "unusable remote entry").len(),
            1,
            "{what}: said once"
        );
        // It stored a good object again: compressed, and a hit.
        let again = server.get(&name).unwrap();
        assert!(again != bytes && is_compressed(&again), "{what}");
        let hit = large_machine(&fresh_root(), &server, "2", &[]);
        assert_eq!(runs(&hit), 0, "{what}: stored again");
    }
}

fn a_tampered_compressed_object_fails_its_signature() {
    init();
    let server = Server::start(Kind::Redis);
    let secret = [("FILE_CACHE_REMOTE_SECRET", "team secret")];
    let (name, object) = stored_document(&server, &secret);
    let hit = large_machine(&fresh_root(), &server, "2", &secret);
    assert_eq!(runs(&hit), 0, "signed and compressed: a hit");
    let mut tampered = object.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    server.put(&name, &tampered);
    let b = large_machine(&fresh_root(), &server, "2", &secret);
    assert_eq!(runs(&b), 1);
    assert_eq!(log_lines(&b, "WARN", "signature does not match").len(), 1);
}
