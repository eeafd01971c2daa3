//! Measures a remote hit against a local hit and against the backend's own floor (a plain
//! GET of the same bytes with the same client library), on a real server it starts on a
//! loopback port (`redis-server`, or `moto_server` for S3).
//!
//! The memory tier is off (`FILE_CACHE_MEMORY=0`): it would answer from the process's
//! memory. So the local row reads entry files, and the remote row, made by a process whose
//! local tier is empty, asks the remote for every call. Each row checks, from
//! `file_cache::stats()`, that every call was answered by the tier it names.
//!
//! Three values: 1 KiB and 256 KiB of random bytes (which no compressor shrinks, so they
//! travel as they are) and about 256 KiB of JSON text (records with names, dates and
//! sentences, as an API or a language model answers), which the remote tier sends
//! compressed. Each row says the bytes on the wire (the remote object's size, from
//! `remote::list`).
//!
//! As on a team's machines, one process computes and uploads (its rows: the miss with its
//! upload, the local hit, the bytes on the wire, and the backend's GET of those bytes), and
//! another, with an empty local tier, makes the remote hits. Each round has two writers,
//! with compression on and off (`FILE_CACHE_REMOTE_COMPRESS=off`), and one reader that
//! fetches what each wrote, one call of each in turn, so that both settings meet the same
//! machine at the same moments: the ratios of those calls compare them within one run.
//! Before each such pair the reader also makes a plain GET of an uncompressed object of the
//! row's size with the backend's client: the last lines compare the uncompressed remote
//! hits with it, call by call, in the same process at the same moment.
//!
//! The reader's calls follow one another without a pause: a burst of remote hits, whose
//! local copies (about 100 MiB per 256 KiB row) a background thread writes when the burst
//! pauses, or along the way once enough of them wait.
//!
//! ```sh
//! cargo run --release -p file_cache_benches --features remote --example remote_latency -- redis   # or: s3
//! ```

#[path = "../../tests/remote_servers/mod.rs"]
mod remote_servers;
#[path = "../../tests/remote_servers/values.rs"]
mod values;

use file_cache::file_cache;
use file_cache::remote;
use object_store::ObjectStoreExt;
use remote_servers::{Kind, Server, BUCKET, PREFIX};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Random bytes: incompressible.
#[file_cache]
fn bytes(i: u64, size: usize) -> Vec<u8> {
    values::random_bytes(i, size)
}

/// About 256 KiB of JSON text: records of an API's or a language model's answer.
#[file_cache]
fn document(i: u64) -> String {
    values::json_text(i)
}

/// One row: a value of each call's `i`, and the function's directory name.
struct Row {
    name: &'static str,
    function: &'static str,
    call: fn(u64),
    /// Sizes of this row's uncompressed objects (the function's other rows' are not).
    plain: std::ops::Range<u64>,
}

const ROWS: [Row; 3] = [
    Row {
        name: "1 KiB random bytes",
        function: "bytes",
        call: |i| {
            std::hint::black_box(bytes(i, 1 << 10));
        },
        plain: 1 << 10..4 << 10,
    },
    Row {
        name: "256 KiB random bytes",
        function: "bytes",
        call: |i| {
            std::hint::black_box(bytes(i, 256 << 10));
        },
        plain: 256 << 10..300 << 10,
    },
    Row {
        name: "256 KiB JSON text",
        function: "document",
        call: |i| {
            std::hint::black_box(document(i));
        },
        plain: 256 << 10..300 << 10,
    },
];

const CALLS: u64 = 200;
/// Rounds of each setting, alternated.
const ROUNDS: usize = 5;

fn micros(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.9))
}

fn main() {
    let backend = std::env::args().nth(1).unwrap_or_else(|| "redis".into());
    let kind = Kind::parse(&backend);
    match std::env::args().nth(2).as_deref() {
        Some(WRITER) => return write(kind, seed_base()),
        Some(READER) => return read(kind, seed_base()),
        _ => {}
    }
    let server = Server::start(kind);
    println!(
        "backend: {backend} ({CALLS} calls per row; median / p90 in µs; memory tier off: \
         FILE_CACHE_MEMORY=0; {ROUNDS} rounds)"
    );
    println!(
        "| value | compression | bytes on the wire | miss (compute, upload in the call) | \
         local hit | backend GET of those bytes (floor) | remote hit | remote / GET |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    // Per round and row: the ratios (on / off) of the remote hit, the bytes and the miss.
    let mut ratios: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); ROWS.len()];
    // Per round and row, in the reader: its GET, its uncompressed remote hit, their ratio.
    let mut against: Vec<Vec<Against>> = vec![Vec::new(); ROWS.len()];
    let median = |cell: &str| -> f64 { cell.split(" / ").next().unwrap().parse().unwrap() };
    for round in 0..ROUNDS as u64 {
        // Which writer goes first alternates: a process that follows another pays for
        // what that one left behind.
        let (on_seed, off_seed) = ((2 * round + 1) * 10_000_000, (2 * round + 2) * 10_000_000);
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        let mut written = [Vec::new(), Vec::new()];
        for compress in order {
            let seed = if compress { on_seed } else { off_seed };
            written[usize::from(!compress)] = child(&server, WRITER, &[seed], compress);
        }
        // One reader makes both settings' remote hits, call by call in turn.
        let read = child(&server, READER, &[on_seed, off_seed], true);
        for (r, row) in read.iter().enumerate() {
            for (w, setting) in ["on", "off"].into_iter().enumerate() {
                let [name, wire, local, floor, miss] = &written[w][r][..] else {
                    panic!("a writer's row")
                };
                let hit = &row[1 + w];
                println!(
                    "| {name} | {setting} | {wire} | {miss} | {local} | {floor} | {hit} | {:.2}x |",
                    median(hit) / median(floor)
                );
            }
            let paired: f64 = row[3].parse().unwrap();
            against[r].push((
                row[4].clone(),
                row[2].clone(),
                row[5].parse().unwrap(),
                row[6].clone(),
                row[7].parse().unwrap(),
            ));
            let wire = |w: usize| -> f64 { written[w][r][1].parse().unwrap() };
            let miss = |w: usize| median(&written[w][r][4]);
            ratios[r].push((paired, wire(0) / wire(1), miss(0) / miss(1)));
        }
    }
    println!();
    println!(
        "Compression on / off, the median of the rounds (each round's in brackets): remote \
         hit (the median of the ratios of calls made in turn by one reader), bytes on the \
         wire, miss"
    );
    for (row, rounds) in ROWS.iter().zip(&ratios) {
        let median_of = |pick: fn(&(f64, f64, f64)) -> f64| {
            let mut all: Vec<f64> = rounds.iter().map(pick).collect();
            all.sort_by(f64::total_cmp);
            all[all.len() / 2]
        };
        let each = |pick: fn(&(f64, f64, f64)) -> f64| {
            let all: Vec<String> = rounds.iter().map(|r| format!("{:.2}", pick(r))).collect();
            all.join(", ")
        };
        println!(
            "- {}: remote hit {:.2}x [{}], bytes {:.2}x, miss {:.2}x [{}]",
            row.name,
            median_of(|p| p.0),
            each(|p| p.0),
            median_of(|p| p.1),
            median_of(|p| p.2),
            each(|p| p.2),
        );
    }
    println!();
    println!(
        "Remote hit (uncompressed) against a plain GET the reading process made just before \
         it (an uncompressed object of the row's size, the same client, the same moment): \
         per round, the GET's and the hit's median / p90 in µs, and the median of the \
         calls' ratios"
    );
    for (row, rounds) in ROWS.iter().zip(&against) {
        let mut all: Vec<f64> = rounds.iter().map(|r| r.2).collect();
        all.sort_by(f64::total_cmp);
        let each: Vec<String> = rounds
            .iter()
            .map(|(get, hit, ratio, ..)| format!("GET {get}, hit {hit}: {ratio:.2}x"))
            .collect();
        println!(
            "- {}: remote / GET {:.2}x [{}]",
            row.name,
            all[all.len() / 2],
            each.join("; ")
        );
    }
    println!();
    println!(
        "The same hits against that GET plus what no checked hit can skip, timed on the \
         GET's bytes: their blake3 checksum and a copy into a value of their own (median / \
         p90 µs of those two, and the median of the calls' ratios)"
    );
    for (row, rounds) in ROWS.iter().zip(&against) {
        let mut all: Vec<f64> = rounds.iter().map(|r| r.4).collect();
        all.sort_by(f64::total_cmp);
        let each: Vec<String> = rounds
            .iter()
            .map(|(.., check, ratio)| format!("checksum and copy {check}: {ratio:.2}x"))
            .collect();
        println!(
            "- {}: remote / (GET + checksum + copy) {:.2}x [{}]",
            row.name,
            all[all.len() / 2],
            each.join("; ")
        );
    }
}

/// Per round, the reader's GET and uncompressed hit (median / p90), their ratio, the
/// checksum and copy of the GET's bytes (median / p90), and the hit's ratio to the GET
/// with them.
type Against = (String, String, f64, String, f64);

const WRITER: &str = "--write";
const READER: &str = "--read";
/// The first arguments of the values a child computes or reads, comma-separated.
const SEED_VAR: &str = "REMOTE_LATENCY_SEEDS";

fn seed_base() -> Vec<u64> {
    std::env::var(SEED_VAR)
        .expect("seeds")
        .split(',')
        .map(|seed| seed.parse().expect("a number"))
        .collect()
}

/// Runs this program as `role` against `server`; its tab-separated `ROW` lines, split.
fn child(server: &Server, role: &str, seeds: &[u64], compress: bool) -> Vec<Vec<String>> {
    let seeds: Vec<String> = seeds.iter().map(u64::to_string).collect();
    let root = tempfile::tempdir().expect("temp dir");
    let output = std::process::Command::new(std::env::current_exe().expect("self"))
        .args([server_kind(server), role])
        .envs(server.env())
        .env("REMOTE_LATENCY_PORT", server.port.to_string())
        .env("FILE_CACHE_DIR", root.path())
        // The memory tier would answer from this process's memory.
        .env("FILE_CACHE_MEMORY", "0")
        .env("FILE_CACHE_REMOTE_WRITE", "sync")
        .env(
            "FILE_CACHE_REMOTE_COMPRESS",
            if compress { "on" } else { "off" },
        )
        .env(SEED_VAR, seeds.join(","))
        .output()
        .expect("run a child");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("ROW\t"))
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect()
}

fn server_kind(server: &Server) -> &'static str {
    if server.url().starts_with("s3://") {
        "s3"
    } else {
        "redis"
    }
}

/// Calls `value` with each of this row's arguments; the time of each call.
fn time(seed: u64, value: fn(u64)) -> Vec<Duration> {
    (0..CALLS)
        .map(|i| {
            let start = Instant::now();
            value(seed + i);
            start.elapsed()
        })
        .collect()
}

/// The writer: computes and uploads each row's values, then reads them from its local
/// tier; prints each row's bytes on the wire, local hit and the backend's GET of them.
fn write(kind: Kind, seeds: Vec<u64>) {
    let seed = seeds[0];
    let port: u16 = std::env::var("REMOTE_LATENCY_PORT")
        .expect("port")
        .parse()
        .expect("port");
    for (r, row) in ROWS.iter().enumerate() {
        let seed = seed + r as u64 * 1_000_000;
        let function = format!("remote_latency.{}", row.function);
        // Objects of an earlier row of the same function are not this row's.
        let earlier: HashSet<String> = remote::list(Some(&function))
            .expect("list")
            .into_iter()
            .map(|e| e.key)
            .collect();
        // Computed, stored locally and remotely (in the call: `sync`).
        let miss = time(seed, row.call);
        let before = counters(row.function);
        let local = time(seed, row.call);
        let after = counters(row.function);
        assert_eq!(
            after.misses, before.misses,
            "the local row computed nothing"
        );
        assert_eq!(
            after.hits - before.hits,
            CALLS,
            "every call of the local row hit"
        );
        let objects: Vec<remote::RemoteEntry> = remote::list(Some(&function))
            .expect("list")
            .into_iter()
            .filter(|e| !earlier.contains(&e.key))
            .collect();
        assert_eq!(objects.len(), CALLS as usize, "this row's objects");
        let mut sizes: Vec<u64> = objects.iter().map(|e| e.size).collect();
        sizes.sort();
        let names: Vec<String> = objects
            .iter()
            .map(|e| format!("{}/{}", e.function, e.key))
            .collect();
        let (m50, m90) = micros(miss);
        let (l50, l90) = micros(local);
        let (f50, f90) = micros(floor(kind, port, &names));
        println!(
            "ROW\t{}\t{}\t{l50:.0} / {l90:.0}\t{f50:.0} / {f90:.0}\t{m50:.0} / {m90:.0}",
            row.name,
            sizes[sizes.len() / 2]
        );
    }
}

/// The reader: an empty local tier; each row's remote hits of the values of both seeds,
/// one call of each in turn. Prints both timings and the median of the calls' ratios
/// (first seed / second). Clears the remote after.
fn read(kind: Kind, seeds: Vec<u64>) {
    let [first, second] = seeds[..] else {
        panic!("two seeds")
    };
    let port: u16 = std::env::var("REMOTE_LATENCY_PORT")
        .expect("port")
        .parse()
        .expect("port");
    let mut getter = Getter::new(kind, port);
    for (r, row) in ROWS.iter().enumerate() {
        let offset = r as u64 * 1_000_000;
        // Uncompressed objects of this row, for a plain GET just before each pair of calls.
        let plain: Vec<String> = remote::list(Some(&format!("remote_latency.{}", row.function)))
            .expect("list")
            .into_iter()
            .filter(|e| row.plain.contains(&e.size))
            .map(|e| format!("{}/{}", e.function, e.key))
            .collect();
        assert!(!plain.is_empty(), "uncompressed objects of {}", row.name);
        let mut gets = Vec::new();
        // What no checked hit can skip, on the GET's bytes: their blake3 checksum and a
        // copy into a value of their own.
        let mut checks = Vec::new();
        let before = file_cache::stats()
            .into_iter()
            .find(|s| s.function == format!("remote_latency::{}", row.function));
        let mut times = [Vec::new(), Vec::new()];
        for i in 0..CALLS {
            let (get, bytes) = getter.get(&plain[i as usize % plain.len()]);
            gets.push(get);
            let start = Instant::now();
            std::hint::black_box(blake3::hash(&bytes));
            std::hint::black_box(bytes.to_vec());
            checks.push(start.elapsed());
            drop(bytes);
            for (s, seed) in [first, second].into_iter().enumerate() {
                let start = Instant::now();
                (row.call)(seed + offset + i);
                times[s].push(start.elapsed());
            }
        }
        let after = counters(row.function);
        let (misses, remote_hits) =
            before.map_or((0, 0), |before| (before.misses, before.remote_hits));
        assert_eq!(after.misses, misses, "the remote row computed nothing");
        assert_eq!(
            after.remote_hits - remote_hits,
            2 * CALLS,
            "every call of the remote row was a remote hit"
        );
        let mut ratios: Vec<f64> = times[0]
            .iter()
            .zip(&times[1])
            .map(|(a, b)| a.as_secs_f64() / b.as_secs_f64())
            .collect();
        ratios.sort_by(f64::total_cmp);
        // The uncompressed setting's hits against the GET made just before each of them.
        let mut against_get: Vec<f64> = times[1]
            .iter()
            .zip(&gets)
            .map(|(hit, get)| hit.as_secs_f64() / get.as_secs_f64())
            .collect();
        against_get.sort_by(f64::total_cmp);
        let mut against_checked: Vec<f64> = times[1]
            .iter()
            .zip(gets.iter().zip(&checks))
            .map(|(hit, (get, check))| hit.as_secs_f64() / (*get + *check).as_secs_f64())
            .collect();
        against_checked.sort_by(f64::total_cmp);
        let [a, b] = times.map(micros);
        let g = micros(gets);
        let c = micros(checks);
        println!(
            "ROW\t{}\t{:.0} / {:.0}\t{:.0} / {:.0}\t{:.3}\t{:.0} / {:.0}\t{:.3}\t{:.0} / {:.0}\t{:.3}",
            row.name,
            a.0,
            a.1,
            b.0,
            b.1,
            ratios[ratios.len() / 2],
            g.0,
            g.1,
            against_get[against_get.len() / 2],
            c.0,
            c.1,
            against_checked[against_checked.len() / 2]
        );
    }
    remote::clear(None).expect("clear the remote");
}

/// The cached function's counters so far.
fn counters(function: &str) -> file_cache::FunctionStats {
    let function = format!("remote_latency::{function}");
    file_cache::stats()
        .into_iter()
        .find(|s| s.function == function)
        .expect("the function has been called")
}

/// A plain GET of each object with the backend's client, as file_cache's backend holds it.
fn floor(kind: Kind, port: u16, names: &[String]) -> Vec<Duration> {
    let mut getter = Getter::new(kind, port);
    names.iter().map(|name| getter.get(name).0).collect()
}

/// The backend's own client, as file_cache's backend holds it, for plain GETs.
enum Getter {
    Redis(redis::Connection),
    S3(Box<dyn object_store::ObjectStore>, tokio::runtime::Runtime),
}

impl Getter {
    fn new(kind: Kind, port: u16) -> Getter {
        match kind {
            Kind::Redis => {
                let client =
                    redis::Client::open(format!("redis://127.0.0.1:{port}/0")).expect("url");
                Getter::Redis(client.get_connection().expect("connect"))
            }
            Kind::S3 => {
                let store = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(BUCKET)
                    .with_allow_http(true)
                    .build()
                    .expect("S3 client");
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .expect("runtime");
                Getter::S3(Box::new(store), runtime)
            }
        }
    }

    /// How long a GET of the object `name` took, and its bytes.
    fn get(&mut self, name: &str) -> (Duration, Vec<u8>) {
        match self {
            Getter::Redis(connection) => {
                let start = Instant::now();
                let bytes: Vec<u8> = redis::cmd("GET")
                    .arg(format!("file_cache/{name}"))
                    .query(connection)
                    .expect("GET");
                (start.elapsed(), bytes)
            }
            Getter::S3(store, runtime) => {
                let path = object_store::path::Path::from(format!("{PREFIX}/{name}"));
                let start = Instant::now();
                let bytes = runtime
                    .block_on(async { store.get(&path).await?.bytes().await })
                    .expect("GET");
                (start.elapsed(), bytes.to_vec())
            }
        }
    }
}
