//! The entry decoder takes arbitrary bytes: it never panics, and the memory it allocates is
//! bounded by what the bytes hold, not by what their length fields claim. A counting
//! allocator measures every decode of random bytes, mutated values and mutated entries.

mod common;

use common::{entry_files, init};
use file_cache::__private::decode_untrusted;
use file_cache::file_cache;
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};

/// Counts this thread's live heap bytes and their peak.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = LIVE.try_with(|live| {
        live.set(live.get() + delta);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(live.get())));
    });
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        track(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most heap `f` had in use at once, beyond what was in use before it.
fn peak_of(f: impl FnOnce()) -> usize {
    let base = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(base));
    f();
    (PEAK.with(Cell::get) - base).max(0) as usize
}

/// What decoding `len` bytes may allocate: a decoded value takes more room than its
/// encoding (a one-byte varint becomes a `u64`, a collection rounds its capacity up, a hash
/// map has control bytes), so a small factor per byte, plus the first allocation of each
/// small collection.
fn bound(len: usize) -> usize {
    64 * len + 8192
}

fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let peak = peak_of(|| {
        std::hint::black_box(decode_untrusted(bytes));
    });
    prop_assert!(
        peak <= bound(bytes.len()),
        "{} bytes allocated decoding {} bytes",
        peak,
        bytes.len()
    );
    Ok(())
}

#[test]
fn a_length_field_alone_reserves_nothing() {
    // A map declaring 2^28 entries (varint), then nothing.
    let header = [0x80, 0x80, 0x80, 0x80, 0x01];
    let raw = peak_of(|| {
        let _ = std::hint::black_box(postcard::from_bytes::<HashMap<u64, u64>>(&header));
    });
    let ours = peak_of(|| {
        std::hint::black_box(decode_untrusted(&header));
    });
    println!("map header of 5 bytes: postcard alone reserves {raw} bytes, our decoder {ours}");
    assert!(
        raw >= 512 << 10,
        "postcard + serde reserve from the map's length"
    );
    assert!(ours <= bound(header.len()), "{ours}");
}

#[test]
fn a_messagepack_length_field_alone_reserves_nothing() {
    // A map, an array and a string each declaring 2^32 - 1 elements or bytes, then nothing.
    for header in [
        [0xdf, 0xff, 0xff, 0xff, 0xff],
        [0xdd, 0xff, 0xff, 0xff, 0xff],
        [0xdb, 0xff, 0xff, 0xff, 0xff],
    ] {
        let ours = peak_of(|| {
            std::hint::black_box(decode_untrusted(&header));
        });
        assert!(ours <= bound(header.len()), "{header:?}: {ours}");
    }
}

#[test]
fn deeply_nested_bytes_are_refused_without_exhausting_the_stack() {
    // Arrays of one element, each holding the next, as deep as the bytes go.
    let deep = vec![0x91u8; 200_000];
    check(&deep).unwrap();
}

fn mutate(mut bytes: Vec<u8>, edits: &[(u8, usize, u8)]) -> Vec<u8> {
    for &(kind, at, value) in edits {
        let len = bytes.len();
        let at = if len == 0 { 0 } else { at % len };
        match kind % 5 {
            0 if len > 0 => bytes[at] ^= value.max(1),
            1 => bytes.insert(at.min(len), value),
            2 if len > 0 => {
                bytes.remove(at);
            }
            3 => bytes.truncate(at),
            // A run of 0xff: the longest varint, a huge length.
            _ => {
                for _ in 0..5 {
                    bytes.insert(at.min(bytes.len()), 0xff);
                }
            }
        }
    }
    bytes
}

fn edits() -> impl Strategy<Value = Vec<(u8, usize, u8)>> {
    proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..6)
}

// A `BTreeMap`: a `HashMap` value re-encodes in another order, which the store's
// round-trip check takes for a value the codec cannot represent.
#[file_cache]
fn record(n: u64) -> (Vec<u64>, BTreeMap<u64, String>, String) {
    (
        (0..n).collect(),
        (0..n % 20).map(|i| (i, format!("value {i}"))).collect(),
        "text".repeat(n as usize % 7),
    )
}

/// A response as API clients model it: only a self-describing codec holds it.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "type")]
enum Event {
    Text {
        text: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        usage: Option<(u32, u32)>,
    },
    Call {
        name: String,
        #[serde(flatten)]
        rest: BTreeMap<String, String>,
    },
    Done,
}

// Chosen up front: `events(0)`, empty, would round-trip through postcard.
#[file_cache(codec = "msgpack")]
fn events(n: u64) -> Vec<Event> {
    (0..n)
        .map(|i| match i % 3 {
            0 => Event::Text {
                text: "t".repeat(i as usize),
                usage: i.is_multiple_of(2).then_some((1, 2)),
            },
            1 => Event::Call {
                name: format!("tool{i}"),
                rest: BTreeMap::from([("arg".to_owned(), i.to_string())]),
            },
            _ => Event::Done,
        })
        .collect()
}

/// Entry files of the cache itself, for mutating: five postcard entries, then five
/// MessagePack ones.
fn real_entries() -> &'static [Vec<u8>] {
    static ENTRIES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    ENTRIES.get_or_init(make_entries)
}

fn make_entries() -> Vec<Vec<u8>> {
    let root = init();
    for n in [0, 1, 5, 40, 300] {
        record(n);
    }
    for n in [0, 1, 5, 40, 300] {
        events(n);
    }
    let mut files = entry_files(&common::function_dir(root, "decoder", "record"));
    files.extend(entry_files(&common::function_dir(
        root, "decoder", "events",
    )));
    assert_eq!(files.len(), 10);
    let entries: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let codecs: Vec<u8> = entries.iter().map(|entry| entry[10]).collect();
    assert_eq!(
        codecs,
        [1, 1, 1, 1, 1, 2, 2, 2, 2, 2],
        "postcard, then MessagePack"
    );
    entries
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check(&bytes)?;
    }

    #[test]
    fn mutated_values(
        values in proptest::collection::vec(any::<u64>(), 0..200),
        map in proptest::collection::hash_map(any::<u64>(), ".{0,12}", 0..30),
        edits in edits(),
    ) {
        for bytes in [
            postcard::to_stdvec(&values).unwrap(),
            postcard::to_stdvec(&map).unwrap(),
            postcard::to_stdvec(&(values.clone(), map.clone(), "s")).unwrap(),
            rmp_serde::to_vec_named(&values).unwrap(),
            rmp_serde::to_vec_named(&map).unwrap(),
            rmp_serde::to_vec_named(&(values.clone(), map.clone(), "s")).unwrap(),
        ] {
            check(&mutate(bytes, &edits))?;
        }
    }

    #[test]
    fn mutated_entries(which in 0usize..10, edits in edits()) {
        let entry = real_entries()[which].clone();
        prop_assert!(decode_untrusted(&entry) > 0, "the intact entry parses");
        check(&mutate(entry, &edits))?;
    }
}
