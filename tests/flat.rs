//! Large vectors of numbers (`Vec<f64>`, `Vec<f32>`, `Vec<u8>`, `Vec<i8>`) are read from
//! their entry straight into the vector's memory. The same guarantees hold on that path:
//! exact values (every bit of every float), and a damaged, truncated, extended or foreign
//! entry is a miss, logged and repaired, never a wrong value.

mod common;

use common::{child_role, entry_files, function_dir, init, logged, marked_lines, run_child};
use file_cache::file_cache;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

static RUNS: AtomicUsize = AtomicUsize::new(0);

/// 800 KB of doubles, NaNs with payloads and signed zeros among them.
fn doubles_of(seed: u64) -> Vec<f64> {
    (0..100_000u64)
        .map(|i| match i % 5 {
            0 => f64::from_bits(0x7ff8_0000_0000_0000 | (i * seed)),
            1 => -0.0,
            _ => (i * seed) as f64 / 7.0,
        })
        .collect()
}

#[file_cache(memory = false)]
fn doubles(seed: u64) -> Vec<f64> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    doubles_of(seed)
}

fn bits(values: &[f64]) -> Vec<u64> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn runs() -> usize {
    RUNS.load(Ordering::SeqCst)
}

fn the_entry() -> PathBuf {
    let files = entry_files(&function_dir(init(), module_path!(), "doubles"));
    assert_eq!(files.len(), 1);
    files[0].clone()
}

/// How many times an unusable entry was logged (a warning the first time, at debug level
/// after that; a miss looks twice, before and after taking the entry's lock).
fn unusable() -> usize {
    logged(log::Level::Warn, "unusable entry").len()
        + logged(log::Level::Debug, "unusable entry").len()
}

/// Calls `doubles(5)` after `damage` to its entry: the right value from a new run (a miss,
/// warned about), then from the repaired entry, read straight into the vector.
fn after(damage: impl FnOnce(&mut std::fs::File, u64)) {
    let entry = the_entry();
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&entry)
        .unwrap();
    let len = file.seek(SeekFrom::End(0)).unwrap();
    damage(&mut file, len);
    drop(file);
    let before = runs();
    let warned = unusable();
    assert_eq!(bits(&doubles(5)), bits(&doubles_of(5)));
    assert_eq!(runs(), before + 1, "the damaged entry was a miss");
    assert!(unusable() > warned, "and logged");
    let direct = direct_reads("doubles");
    assert_eq!(bits(&doubles(5)), bits(&doubles_of(5)));
    assert_eq!(runs(), before + 1, "the rewritten entry hits");
    assert_eq!(direct_reads("doubles"), direct + 1);
}

/// How many hits of the function `name` were read straight into their vector.
fn direct_reads(name: &str) -> usize {
    logged(log::Level::Debug, "read straight into")
        .iter()
        .filter(|line| line.contains(&format!("::{name} ")))
        .count()
}

fn overwrite(file: &mut std::fs::File, at: u64, bytes: &[u8]) {
    file.seek(SeekFrom::Start(at)).unwrap();
    file.write_all(bytes).unwrap();
}

#[test]
fn a_large_float_vector_is_exact_and_every_damage_is_a_repaired_miss() {
    init();
    assert_eq!(bits(&doubles(5)), bits(&doubles_of(5)));
    assert_eq!(runs(), 1);
    let direct = direct_reads("doubles");
    assert_eq!(bits(&doubles(5)), bits(&doubles_of(5)));
    assert_eq!(runs(), 1, "a hit");
    assert_eq!(
        direct_reads("doubles"),
        direct + 1,
        "read straight into the vector"
    );

    // A flipped bit among the elements; in the length prefix (one byte after the header,
    // whose type name is the last thing before its checksum).
    after(|file, len| overwrite(file, len / 2 + 1, &[0xa5]));
    let prefix_at = 166 + std::any::type_name::<Vec<f64>>().len() as u64 + 1;
    after(|file, _| overwrite(file, prefix_at, &[0x01]));
    // Shorter by one element, longer by one, and cut in the middle of an element.
    after(|file, len| file.set_len(len - 8).unwrap());
    after(|file, len| file.set_len(len + 8).unwrap());
    after(|file, len| file.set_len(len - 3).unwrap());
    // Only a header.
    after(|file, _| file.set_len(200).unwrap());
}

#[file_cache(memory = false)]
fn floats(n: u32) -> Vec<f32> {
    (0..n)
        .map(|i| f32::from_bits(i.wrapping_mul(2_654_435_761)))
        .collect()
}

#[file_cache(memory = false)]
fn bytes(n: u32) -> Vec<u8> {
    (0..n).map(|i| (i * 7) as u8).collect()
}

#[file_cache(memory = false)]
fn signed(n: u32) -> Vec<i8> {
    (0..n).map(|i| (i * 13) as i8).collect()
}

#[file_cache]
fn with_memory(n: u32) -> Vec<f64> {
    (0..n).map(f64::from).collect()
}

#[test]
fn every_flat_element_type_reads_back_exactly() {
    init();
    let direct = || direct_reads("floats") + direct_reads("bytes") + direct_reads("signed");
    for n in [70_000, 300_000] {
        let float_bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        let first = float_bits(floats(n));
        let before = direct();
        assert_eq!(float_bits(floats(n)), first);
        assert_eq!(bytes(n), bytes(n));
        assert_eq!(signed(n), signed(n));
        assert_eq!(
            direct(),
            before + 3,
            "n = {n}: each hit read into its vector"
        );
        // The memory tier keeps what a direct read returned: the same value from memory.
        let value = with_memory(n);
        assert_eq!(with_memory(n), value);
        assert_eq!(with_memory(n), value);
    }
}

/// 100 MB of doubles.
const BIG: usize = 12_500_000;

#[file_cache]
fn big_doubles(x: u64) -> Vec<f64> {
    vec![x as f64 + 0.5; BIG]
}

/// This process's peak resident memory, in bytes.
fn max_rss() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
    usage.ru_maxrss as u64 * 1024
}

/// The child's part: one call of `big_doubles`, and the peak memory it took.
#[test]
fn child_reads_big() {
    if child_role().is_none() {
        return;
    }
    init();
    let before = max_rss();
    let values = big_doubles(3);
    let peak = max_rss() - before;
    assert!(values.iter().all(|v| *v == 3.5) && values.len() == BIG);
    println!("PEAK {peak}");
}

#[test]
fn a_large_vectors_first_hit_in_a_fresh_process_reads_straight_into_it() {
    if child_role().is_some() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let envs = [("FILE_CACHE_DIR", root.path().to_str().unwrap())];
    let peak = |output: &std::process::Output| -> u64 {
        marked_lines(output, "PEAK ")[0].parse().unwrap()
    };
    let computed = run_child("child_reads_big", "store", &envs);
    let read = run_child("child_reads_big", "hit", &envs);
    let stdout = String::from_utf8_lossy(&read.stdout);
    assert!(stdout.contains("read straight into"), "{stdout}");
    let value_size = (BIG * 8) as f64;
    println!(
        "peak: computing {}, first hit {}",
        peak(&computed),
        peak(&read)
    );
    assert!(
        peak(&read) as f64 <= 1.2 * value_size,
        "the first hit took {} bytes for a {value_size}-byte value",
        peak(&read)
    );
}
