//! The return type's layout fingerprint, within one build: a type that cannot be traced
//! falls back to its name (one `info`, naming the function and the type) and still caches;
//! a generic function keeps one fingerprint per return type; an entry whose recorded layout
//! differs is rewritten. Layout *changes* between builds are in `tests/invalidation.rs`.

mod common;

use common::{entry_files, function_dir, init, logged};
use file_cache::file_cache;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A hand-written impl that checks its input, so it rejects what a tracer makes up.
#[derive(Serialize, Debug, PartialEq)]
struct Even(u32);

impl<'de> Deserialize<'de> for Even {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(d)?;
        if n % 2 == 0 {
            Ok(Even(n))
        } else {
            Err(de::Error::custom("odd"))
        }
    }
}

static EVEN_RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn double(x: u32) -> Even {
    EVEN_RUNS.fetch_add(1, Ordering::SeqCst);
    Even(x * 2)
}

#[test]
fn an_untraceable_type_falls_back_to_its_name_and_still_caches() {
    init();
    assert_eq!(double(3), Even(6));
    assert_eq!(double(3), Even(6));
    assert_eq!(double(4), Even(8));
    assert_eq!(double(4), Even(8));
    assert_eq!(EVEN_RUNS.load(Ordering::SeqCst), 2);
    let infos = logged(log::Level::Info, "cannot trace the serde layout");
    assert_eq!(infos.len(), 1, "{infos:?}");
    assert!(infos[0].contains("layout::double"), "{}", infos[0]);
    assert!(infos[0].contains("layout::Even"), "{}", infos[0]);
    assert!(infos[0].contains("version"), "{}", infos[0]);
}

static PARSE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Point {
    x: i32,
    y: i32,
}

#[file_cache]
fn parse<T: Serialize + serde::de::DeserializeOwned + Default>(text: &str) -> T {
    PARSE_RUNS.fetch_add(1, Ordering::SeqCst);
    let _ = text;
    T::default()
}

impl Default for Point {
    fn default() -> Self {
        Point { x: 1, y: 2 }
    }
}

#[test]
fn a_generic_function_keeps_one_fingerprint_per_return_type() {
    init();
    for _ in 0..2 {
        assert_eq!(parse::<u32>("a"), 0);
        assert_eq!(parse::<String>("a"), "");
        assert_eq!(parse::<Point>("a"), Point { x: 1, y: 2 });
    }
    assert_eq!(PARSE_RUNS.load(Ordering::SeqCst), 3);
}

static HIT_RUNS: AtomicUsize = AtomicUsize::new(0);

// Out of the memory tier: the test rewrites the file under this process, which that tier
// (by design, see the README) would not see.
#[file_cache(memory = false)]
fn hit() -> Point {
    HIT_RUNS.fetch_add(1, Ordering::SeqCst);
    Point { x: 3, y: 4 }
}

#[test]
fn an_entry_recording_another_layout_is_rewritten() {
    let root = init();
    assert_eq!(hit(), Point { x: 3, y: 4 });
    let files = entry_files(&function_dir(root, "layout", "hit"));
    assert_eq!(files.len(), 1, "{files:?}");
    // Rewrite the layout field (bytes 76..92) and the header checksum, as a build with
    // another definition of `Point` would have written it.
    let mut bytes = std::fs::read(&files[0]).unwrap();
    bytes[76] ^= 1;
    let name_len = usize::from(u16::from_le_bytes([bytes[148], bytes[149]]));
    let end = 150 + name_len;
    let sum = header_sum(&bytes[..end]);
    bytes[end..end + 16].copy_from_slice(&sum);
    std::fs::write(&files[0], &bytes).unwrap();

    assert_eq!(hit(), Point { x: 3, y: 4 });
    assert_eq!(
        HIT_RUNS.load(Ordering::SeqCst),
        2,
        "a changed layout is a miss"
    );
    let warnings = logged(log::Level::Warn, "layout of `layout::Point` changed");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(hit(), Point { x: 3, y: 4 });
    assert_eq!(
        HIT_RUNS.load(Ordering::SeqCst),
        2,
        "and the entry was rewritten"
    );
}

/// The header checksum of entry format 3: XXH3-128, little-endian.
fn header_sum(bytes: &[u8]) -> [u8; 16] {
    xxhash_rust::xxh3::xxh3_128(bytes).to_le_bytes()
}
