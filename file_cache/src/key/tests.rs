//! The key's unit tests: the encoding, its invariants, and the fast lanes' agreement with
//! the general serializer.

use super::*;
use super::{fast::*, hasher::*, order::*, serializer::*, sink::*};
use serde::ser::SerializeMap;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::RandomState;

pub(super) fn key_of<T: ?Sized + Serialize>(value: &T) -> Key {
    key_with_buffer(value, BUF_LEN)
}

pub(super) fn key_with_buffer<T: ?Sized + Serialize>(value: &T, buf_len: usize) -> Key {
    let mut hasher = KeyHasher::with_buffer_len(buf_len);
    hasher.write_value(value).expect("value hashes");
    hasher.finish()
}

/// Byte strings through `serialize_bytes`, as `serde_bytes` would.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

#[test]
fn sinks_on_the_heap_and_the_static_one_start_empty_and_give_the_same_keys() {
    let check = |sink: &mut Sink| {
        assert_eq!((sink.pos, sink.limit, sink.fed), (0, FLUSH_AT, 0));
        assert_eq!(sink.run.tag, NO_RUN.tag);
        assert!(sink.maps.is_none() && sink.scratch.is_empty());
        assert_eq!(sink.hasher.finalize(), blake3::hash(b""));
        // Used like any sink: past the end of its buffer, and with a heap field.
        sink.write(&[7; BUF_LEN + 100]);
        sink.scratch.push_str("dropped with the sink");
    };
    let mut boxed = Sink::boxed();
    assert!(boxed.buf.iter().all(|&b| b == 0));
    check(&mut boxed);
    let value = ("a", 1u8, vec![2.5f64; 5000], BTreeMap::from([(1, "x")]));
    let expected = key_of(&value);
    // Another test's thread keeps the static sink as its spare until it ends: try
    // again until it is free (tests end within seconds).
    let mut got_static = false;
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(120) {
        let mut a = SinkBox::new();
        let b = SinkBox::new();
        assert!(!(a.is_static && b.is_static), "one user at a time");
        got_static |= a.is_static || b.is_static;
        check(&mut a);
        a.reset();
        for sink in [a, b] {
            let mut hasher = KeyHasher { sink: Some(sink) };
            hasher.write_label(KEY_FORMAT);
            hasher.write_value(&value).unwrap();
            // `finish` hands the sink to this thread's spare: take it back to drop it.
            assert_eq!(hasher.finish(), expected);
            drop(SPARE.with(std::cell::Cell::take));
        }
        if got_static {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert!(got_static, "the static sink was never free");
}

#[test]
fn equal_values_give_equal_keys() {
    let value = (1u8, "two", vec![3.0f64, 4.5], Some('x'), [Some(()), None]);
    assert_eq!(key_of(&value), key_of(&value.clone()));
    assert_eq!(key_of(&String::from("abc")), key_of("abc"));
    assert_ne!(key_of(&value), key_of(&(1u8, "two", vec![3.0f64, 4.5])));
}

#[test]
fn same_bytes_of_different_types_give_different_keys() {
    let pairs: Vec<(Key, Key)> = vec![
        (key_of(&1u32), key_of(&1u64)),
        (key_of(&1i32), key_of(&1u32)),
        (key_of(&1u8), key_of(&true)),
        (key_of(&1.0f32), key_of(&1.0f32.to_bits())),
        (key_of(&'a'), key_of(&u32::from('a'))),
        (key_of("a"), key_of(&Bytes(b"a"))),
        (key_of("a"), key_of(&'a')),
        (key_of(&Bytes(b"a")), key_of(&vec![b'a'])),
        (key_of(&Some(())), key_of(&())),
        (key_of(&None::<u8>), key_of(&())),
        (key_of(&Some(0u8)), key_of(&0u8)),
        (key_of(&("ab", "c")), key_of(&("a", "bc"))),
        (key_of(&(1u8, 2u8)), key_of(&vec![1u8, 2u8])),
        (
            key_of(&vec![vec![1u8], vec![]]),
            key_of(&vec![vec![], vec![1u8]]),
        ),
        (key_of(&vec![(); 2]), key_of(&vec![(); 3])),
    ];
    for (i, (a, b)) in pairs.iter().enumerate() {
        assert_ne!(a, b, "pair {i}");
    }
    // Where serde makes the same calls, the key is the same: an array is a tuple to
    // serde, and empty sequences of any element type are alike.
    assert_eq!(key_of(&(1u8, 2u8)), key_of(&[1u8, 2u8]));
    assert_eq!(key_of(&Vec::<u8>::new()), key_of(&Vec::<u16>::new()));
}

#[test]
fn floats_hash_by_bits() {
    assert_ne!(key_of(&0.0f64), key_of(&-0.0f64));
    assert_ne!(key_of(&0.0f32), key_of(&-0.0f32));
    assert_eq!(key_of(&f64::NAN), key_of(&f64::NAN));
    let other_nan = f64::from_bits(f64::NAN.to_bits() ^ 1);
    assert!(other_nan.is_nan());
    assert_ne!(key_of(&f64::NAN), key_of(&other_nan));
    assert_ne!(key_of(&1.0f32), key_of(&1.0f64));
}

pub(super) mod v1 {
    #[derive(serde::Serialize, Clone)]
    pub struct Point {
        pub x: i32,
        pub y: i32,
    }
}

pub(super) mod renamed {
    #[derive(serde::Serialize)]
    pub struct Point {
        pub x: i32,
        pub z: i32,
    }
}

pub(super) mod reordered {
    #[derive(serde::Serialize)]
    pub struct Point {
        pub y: i32,
        pub x: i32,
    }
}

mod retyped {
    #[derive(serde::Serialize)]
    pub struct Point {
        pub x: i32,
        pub y: i64,
    }
}

pub(super) mod other_name {
    #[derive(serde::Serialize)]
    pub struct Spot {
        pub x: i32,
        pub y: i32,
    }
}

#[test]
fn changed_struct_definitions_change_the_key() {
    let base = key_of(&v1::Point { x: 1, y: 2 });
    assert_eq!(base, key_of(&v1::Point { x: 1, y: 2 }));
    assert_ne!(base, key_of(&v1::Point { x: 2, y: 1 }));
    assert_ne!(base, key_of(&renamed::Point { x: 1, z: 2 }));
    assert_ne!(base, key_of(&reordered::Point { y: 2, x: 1 }));
    assert_ne!(base, key_of(&retyped::Point { x: 1, y: 2 }));
    assert_ne!(base, key_of(&other_name::Spot { x: 1, y: 2 }));
    assert_ne!(base, key_of(&(1i32, 2i32)));
}

#[derive(serde::Serialize)]
enum Shape {
    Empty,
    Other,
    Circle(f64),
    Radius(f64),
    Rect(f64, f64),
    Sized { w: f64, h: f64 },
}

#[derive(serde::Serialize)]
struct Circle(f64);

#[derive(serde::Serialize)]
struct Empty;

#[test]
fn enum_variants_differ() {
    let keys = [
        key_of(&Shape::Empty),
        key_of(&Shape::Other),
        key_of(&Shape::Circle(1.0)),
        key_of(&Shape::Radius(1.0)),
        key_of(&Shape::Rect(1.0, 2.0)),
        key_of(&Shape::Sized { w: 1.0, h: 2.0 }),
        key_of(&Circle(1.0)),
        key_of(&Empty),
        key_of(&()),
        key_of(&(1.0f64, 2.0f64)),
    ];
    for (i, a) in keys.iter().enumerate() {
        for b in &keys[i + 1..] {
            assert_ne!(a, b);
        }
    }
    assert_eq!(
        key_of(&Shape::Rect(1.0, 2.0)),
        key_of(&Shape::Rect(1.0, 2.0))
    );
    assert_ne!(
        key_of(&Shape::Rect(1.0, 2.0)),
        key_of(&Shape::Rect(2.0, 1.0))
    );
}

fn hash_map(entries: impl IntoIterator<Item = (String, u64)>) -> HashMap<String, u64> {
    // A fresh RandomState per map: its own random iteration order.
    let mut map = HashMap::with_hasher(RandomState::new());
    map.extend(entries);
    map
}

fn entries(n: u64) -> Vec<(String, u64)> {
    (0..n).map(|i| (format!("key-{i}"), i * 7)).collect()
}

#[test]
fn maps_hash_independently_of_order() {
    let forward = hash_map(entries(200));
    let backward = hash_map(entries(200).into_iter().rev());
    assert_eq!(key_of(&forward), key_of(&backward));

    let mut changed = forward.clone();
    changed.insert("key-3".to_owned(), 0);
    assert_ne!(key_of(&forward), key_of(&changed));
    let mut smaller = forward.clone();
    smaller.remove("key-3");
    assert_ne!(key_of(&forward), key_of(&smaller));
    // Swapping two values keeps the multiset of keys and of values, not the entries.
    let mut swapped = forward.clone();
    swapped.insert("key-1".to_owned(), 14);
    swapped.insert("key-2".to_owned(), 7);
    assert_ne!(key_of(&forward), key_of(&swapped));

    assert_ne!(key_of(&hash_map([])), key_of(&()));
    assert_ne!(key_of(&hash_map([])), key_of(&Vec::<(String, u64)>::new()));
    // A map is keyed by its contents, not its container (documented).
    let btree: BTreeMap<String, u64> = entries(200).into_iter().collect();
    assert_eq!(key_of(&btree), key_of(&forward));
    // ...but a list of pairs is a sequence, with its order.
    assert_ne!(key_of(&btree), key_of(&entries(200)));
}

#[test]
fn nested_maps_hash_by_contents() {
    let build = |reverse: bool| {
        let mut outer: HashMap<u32, HashMap<String, Vec<HashMap<u8, u8>>>> = HashMap::new();
        let mut order: Vec<u32> = (0..20).collect();
        if reverse {
            order.reverse();
        }
        for i in order {
            let mut inner = HashMap::new();
            for j in 0..i {
                let leaf: HashMap<u8, u8> = (0..(j as u8)).map(|b| (b, b ^ 0x55)).collect();
                inner.insert(format!("{i}/{j}"), vec![leaf.clone(), leaf]);
            }
            outer.insert(i, inner);
        }
        outer
    };
    let a = build(false);
    let b = build(true);
    assert_eq!(key_of(&a), key_of(&b));
    // Two maps side by side, and after a nested map, still hash consistently.
    assert_eq!(key_of(&(&a, 1u8, &a)), key_of(&(&b, 1u8, &b)));

    let mut c = build(false);
    c.get_mut(&7)
        .and_then(|inner| inner.get_mut("7/3"))
        .map(|leaves| leaves[1].insert(0, 0));
    assert_ne!(key_of(&a), key_of(&c));

    // Moving an entry between the nested levels changes the key.
    let flat: HashMap<u8, HashMap<u8, u8>> = [(1, [(2, 3), (4, 5)].into())].into();
    let split: HashMap<u8, HashMap<u8, u8>> = [(1, [(2, 3)].into()), (4, HashMap::new())].into();
    assert_ne!(key_of(&flat), key_of(&split));
}

#[test]
fn repeated_entries_do_not_cancel() {
    struct Pairs(Vec<(u8, u8)>);
    impl Serialize for Pairs {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
        }
    }
    let twice = key_of(&Pairs(vec![(1, 1), (1, 1), (2, 2), (2, 2)]));
    let other = key_of(&Pairs(vec![(3, 3), (3, 3), (4, 4), (4, 4)]));
    assert_ne!(twice, other);
    assert_ne!(key_of(&Pairs(vec![(1, 1), (1, 1)])), key_of(&Pairs(vec![])));
}

#[test]
fn sets_hash_in_iteration_order() {
    // Documented limitation: serde shows a set as a sequence.
    let set: BTreeSet<u8> = [3, 1, 2].into();
    assert_eq!(key_of(&set), key_of(&vec![1u8, 2, 3]));
    assert_ne!(key_of(&set), key_of(&vec![3u8, 1, 2]));
}

#[test]
fn serialize_errors_become_key_errors() {
    struct Refuses;
    impl Serialize for Refuses {
        fn serialize<S: ser::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(ser::Error::custom("not today"))
        }
    }
    let mut hasher = KeyHasher::new();
    let err = hasher.write_value(&(1u8, Refuses)).expect_err("fails");
    assert_eq!(err.to_string(), "cannot hash value: not today");

    // Inside a map entry too, and the next map after the failure hashes cleanly.
    let mut map = BTreeMap::new();
    map.insert(1u8, Refuses);
    let mut hasher = KeyHasher::new();
    assert!(hasher.write_value(&map).is_err());
    hasher = KeyHasher::new();
    let good: BTreeMap<u8, u8> = [(1, 2)].into();
    hasher.write_value(&good).expect("hashes");
    assert_eq!(hasher.finish(), key_of(&good));

    // A broken map protocol is an error, not a panic.
    struct KeyOnly;
    impl Serialize for KeyOnly {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(None)?;
            map.serialize_key(&1u8)?;
            map.end()
        }
    }
    assert!(KeyHasher::new().write_value(&KeyOnly).is_err());
}

#[test]
fn collect_str_matches_str() {
    struct Shown(u32);
    impl Serialize for Shown {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(&format_args!("n={}", self.0))
        }
    }
    assert_eq!(key_of(&Shown(42)), key_of("n=42"));
    assert_eq!(
        key_of(&vec![Shown(1), Shown(22)]),
        key_of(&vec!["n=1", "n=22"])
    );
}

#[test]
fn labels_raw_bytes_and_values_are_framed_apart() {
    let digest = |f: &dyn Fn(&mut KeyHasher)| {
        let mut hasher = KeyHasher::new();
        f(&mut hasher);
        hasher.finish()
    };
    let ab_c = digest(&|h| {
        h.write_label("ab");
        h.write_label("c");
    });
    let a_bc = digest(&|h| {
        h.write_label("a");
        h.write_label("bc");
    });
    assert_ne!(ab_c, a_bc);
    assert_ne!(
        digest(&|h| h.write_label("a")),
        digest(&|h| h.write_raw(b"a"))
    );
    assert_ne!(
        digest(&|h| h.write_label("a")),
        digest(&|h| h.write_value("a").expect("hashes"))
    );
    assert_ne!(digest(&|_| {}), digest(&|h| h.write_raw(b"")));
}

/// The stream of a few values, written out by hand: pins the encoding (a failure here
/// means keys changed, which needs a new [`KEY_FORMAT`]).
#[test]
fn encoding_is_the_documented_one() {
    #[derive(serde::Serialize)]
    struct P {
        x: u16,
    }
    let mut hasher = KeyHasher::new();
    hasher.write_label("f");
    hasher.write_raw(&[9]);
    hasher
        .write_value(&(
            P { x: 7 },
            Some(-1i8),
            "hi",
            vec![1.5f32],
            Shape::Radius(2.0),
        ))
        .expect("hashes");
    let map: BTreeMap<u8, bool> = [(1, true)].into();
    hasher.write_value(&map).expect("hashes");
    hasher.write_value(&P { x: 8 }).expect("hashes");

    let mut s: Vec<u8> = Vec::new();
    let len = |s: &mut Vec<u8>, n: u64| s.extend_from_slice(&n.to_le_bytes());
    // Lengths of names and strings: one byte below 128.
    let vlen = |s: &mut Vec<u8>, n: u64| s.push(u8::try_from(n).expect("short"));
    s.push(tag::LABEL);
    vlen(&mut s, KEY_FORMAT.len() as u64);
    s.extend_from_slice(KEY_FORMAT.as_bytes());
    s.push(tag::LABEL);
    vlen(&mut s, 1);
    s.extend_from_slice(b"f");
    s.push(tag::RAW);
    vlen(&mut s, 1);
    s.push(9);
    s.push(tag::TUPLE);
    {
        // A struct of primitives that is an element: a row chunk of one row, after the
        // definition of its shape (number 0).
        s.push(tag::DEF);
        s.push(tag::STRUCT);
        vlen(&mut s, 1);
        s.extend_from_slice(b"P");
        vlen(&mut s, 1);
        vlen(&mut s, 1);
        s.extend_from_slice(b"x");
        s.extend_from_slice(&[tag::ROWS, 1, 1, 0, 0, tag::U16]);
        s.extend_from_slice(&7u16.to_le_bytes());

        s.extend_from_slice(&[tag::SOME, tag::I8, 0xff]);
        s.push(tag::STR);
        vlen(&mut s, 2);
        s.extend_from_slice(b"hi");
        s.push(tag::SEQ);
        s.extend_from_slice(&[tag::RUN, tag::F32, 1, 0]);
        s.extend_from_slice(&1.5f32.to_bits().to_le_bytes());
        s.push(tag::END);
        vlen(&mut s, 1);

        s.push(tag::NEWTYPE_VARIANT);
        vlen(&mut s, 5);
        s.extend_from_slice(b"Shape");
        s.extend_from_slice(&3u32.to_le_bytes());
        s.push(tag::LABEL);
        vlen(&mut s, 6);
        s.extend_from_slice(b"Radius");
        s.push(tag::F64);
        s.extend_from_slice(&2.0f64.to_bits().to_le_bytes());
    }
    s.push(tag::END);
    vlen(&mut s, 5);
    s.push(tag::MAP);
    len(&mut s, 1);
    s.extend_from_slice(&[tag::U8, 1, tag::BOOL, 1]);
    // A struct that is not an element: its fields tagged, then its shape's number (the
    // shape is defined already).
    s.extend_from_slice(&[tag::STRUCT, tag::U16, 8, 0, tag::SHAPE, 0]);

    assert_eq!(hasher.finish().as_bytes(), blake3::hash(&s).as_bytes());
}

/// Long lengths take more LEB128 bytes; a map entry longer than `ENTRY_INLINE` stands
/// as its digest; entries are sorted by their XXH3, ties by their bytes.
#[test]
fn long_lengths_and_long_map_entries_are_encoded_as_documented() {
    let text = "x".repeat(200);
    let mut s: Vec<u8> = vec![tag::LABEL, KEY_FORMAT.len() as u8];
    s.extend_from_slice(KEY_FORMAT.as_bytes());
    s.extend_from_slice(&[tag::STR, 0xc8, 0x01]);
    s.extend_from_slice(text.as_bytes());
    assert_eq!(key_of(&text).as_bytes(), blake3::hash(&s).as_bytes());
    assert_eq!(varint(0), ([0; 10], 1));
    assert_eq!(&varint(300).0[..2], &[0xac, 0x02]);
    assert_eq!(varint(u64::MAX).1, 10);

    let long = vec![7u8; ENTRY_INLINE];
    let map: BTreeMap<u8, Bytes<'_>> = [(1, Bytes(&long)), (2, Bytes(b"ab"))].into();
    let mut long_entry = vec![tag::U8, 1, tag::BYTES, 0x80, 0x02];
    long_entry.extend_from_slice(&long);
    let mut digest_entry = vec![tag::DIGEST];
    digest_entry.extend_from_slice(blake3::hash(&long_entry).as_bytes());
    let short_entry = vec![tag::U8, 2, tag::BYTES, 2, b'a', b'b'];
    let mut entries = [digest_entry, short_entry];
    entries.sort_by_key(|e| (xxhash_rust::xxh3::xxh3_64(e), e.clone()));
    let mut s: Vec<u8> = vec![tag::LABEL, KEY_FORMAT.len() as u8];
    s.extend_from_slice(KEY_FORMAT.as_bytes());
    s.push(tag::MAP);
    s.extend_from_slice(&2u64.to_le_bytes());
    for entry in &entries {
        s.extend_from_slice(entry);
    }
    assert_eq!(key_of(&map).as_bytes(), blake3::hash(&s).as_bytes());
}

/// A map's entries serialized on their own through the sink's serializer (what
/// `MapEntries` does when its fast lane refuses): key, then value.
fn entry_through_the_sink<K: Serialize, V: Serialize>(key: &K, value: &V) -> Vec<u8> {
    let mut sink = Sink::boxed();
    let key = key.serialize(&mut *sink).expect("serializes");
    sink.place(key);
    let value = value.serialize(&mut *sink).expect("serializes");
    sink.place(value);
    sink.close_run();
    let bytes = sink.buf[..sink.pos].to_vec();
    if bytes.len() > ENTRY_INLINE {
        let mut digest = vec![tag::DIGEST];
        digest.extend_from_slice(blake3::hash(&bytes).as_bytes());
        digest
    } else {
        bytes
    }
}

/// Keys and values written straight into the arena (strings, bytes, primitives) give
/// the bytes the entry sink gives, alone or mixed with ones that need the sink.
#[test]
fn the_map_fast_lane_writes_what_the_sink_writes() {
    fn same<K: Serialize + Ord, V: Serialize>(entries: Vec<(K, V)>) {
        let mut expected: Vec<Vec<u8>> = entries
            .iter()
            .map(|(k, v)| entry_through_the_sink(k, v))
            .collect();
        expected.sort_by_key(|e| (xxhash_rust::xxh3::xxh3_64(e), e.clone()));
        let mut s: Vec<u8> = vec![tag::LABEL, KEY_FORMAT.len() as u8];
        s.extend_from_slice(KEY_FORMAT.as_bytes());
        s.push(tag::MAP);
        s.extend_from_slice(&len64(entries.len()).to_le_bytes());
        for entry in &expected {
            s.extend_from_slice(entry);
        }
        let map: BTreeMap<K, V> = entries.into_iter().collect();
        assert_eq!(key_of(&map).as_bytes(), blake3::hash(&s).as_bytes());
    }
    let text = |n: usize| "é".repeat(n);
    same((0..200u64).map(|i| (format!("key-{i}"), i * 7)).collect());
    // Strings across the one-byte length, and entries across the inline limit.
    same(
        [0, 1, 63, 64, 100, 127, 128, 200]
            .map(|n| (text(n), n as i128))
            .to_vec(),
    );
    same(
        (0..70u8)
            .map(|i| (i, Bytes(&[7; 300][..usize::from(i) * 4])))
            .collect(),
    );
    same(vec![('a', 1.5f64), ('é', -0.0), ('🦀', f64::NAN)]);
    same(vec![(false, u16::MAX), (true, 0)]);
    same((-5i32..5).map(|i| (i, i as u8 as char)).collect());
    // Values that need the sink after keys that did not, and the other way round.
    same(
        (0..40u64)
            .map(|i| (format!("k{i}"), (i % 3 == 0).then_some(i)))
            .collect(),
    );
    same((0..40u64).map(|i| (i, vec![text(i as usize)])).collect());
    same(
        (0..40u8)
            .map(|i| ((i, i / 2), text(usize::from(i) * 3)))
            .collect(),
    );
    same((0..40u8).map(|i| (Some(i), i)).collect());
}

/// A map handed over whole (`collect_map`, which takes entries ahead of their turn)
/// and one written entry by entry (`serialize_map`) give the same key, at every size
/// around the look-ahead, and an entry that fails fails the map.
#[test]
fn collected_maps_hash_as_maps_written_entry_by_entry() {
    struct ByEntry<'a>(&'a [(String, Vec<u8>)]);
    impl Serialize for ByEntry<'_> {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in self.0 {
                map.serialize_entry(k, v)?;
            }
            map.end()
        }
    }
    struct Collected<'a>(&'a [(String, Vec<u8>)]);
    impl Serialize for Collected<'_> {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
        }
    }
    let n = PREFETCH_AHEAD;
    for len in [0, 1, n - 1, n, n + 1, 2 * n + 3, 500] {
        let entries: Vec<(String, Vec<u8>)> = (0..len)
            .map(|i| (format!("k{i}"), vec![i as u8; i % 5]))
            .collect();
        let by_entry = key_of(&ByEntry(&entries));
        assert_eq!(key_of(&Collected(&entries)), by_entry, "{len} entries");
        let map: HashMap<String, Vec<u8>> = entries.into_iter().collect();
        assert_eq!(key_of(&map), by_entry, "{len} entries");
    }
    // An iterator that yields again after its end: the map ends at its first end, as
    // serde's own `collect_map` does.
    struct Restarts(u32);
    impl Iterator for Restarts {
        type Item = (u32, u32);
        fn next(&mut self) -> Option<(u32, u32)> {
            self.0 += 1;
            (self.0 != 11).then_some((self.0, self.0 * 2))
        }
    }
    struct Restarting;
    impl Serialize for Restarting {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(Restarts(0).take(15))
        }
    }
    let first_ten: BTreeMap<u32, u32> = (1..=10).map(|i| (i, i * 2)).collect();
    assert_eq!(key_of(&Restarting), key_of(&first_ten));

    struct Refuses;
    impl Serialize for Refuses {
        fn serialize<S: ser::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(ser::Error::custom("refused"))
        }
    }
    let failing: Vec<(u32, Option<Refuses>)> =
        (0..20).map(|i| (i, (i == 13).then_some(Refuses))).collect();
    struct Pairs<'a>(&'a [(u32, Option<Refuses>)]);
    impl Serialize for Pairs<'_> {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
        }
    }
    let mut hasher = KeyHasher::new();
    let error = hasher.write_value(&Pairs(&failing)).expect_err("fails");
    assert!(error.to_string().contains("refused"), "{error}");
}

/// Entries counted as they come (a map that says its length) or all at the end give
/// the same key, whether the length said is right, wrong, or not said.
#[test]
fn map_keys_do_not_depend_on_the_length_a_map_says() {
    struct Says<'a>(Option<usize>, &'a [(u64, String)]);
    impl Serialize for Says<'_> {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(self.0)?;
            for (k, v) in self.1 {
                map.serialize_entry(k, v)?;
            }
            map.end()
        }
    }
    for len in [10usize, 63, 64, 65, 70, 100, 3000] {
        let entries: Vec<(u64, String)> =
            (0..len as u64).map(|i| (i * 31, format!("v{i}"))).collect();
        let unsaid = key_of(&Says(None, &entries));
        for said in [len, 10, 64, 100, 3000, 1 << 20] {
            assert_eq!(
                key_of(&Says(Some(said), &entries)),
                unsaid,
                "{len} said {said}"
            );
        }
    }
}

/// A key whose `Serialize` writes a string, then fails: the fast lane keeps nothing
/// of it, and the failure is the key's error.
#[test]
fn a_key_that_fails_after_writing_fails_the_map() {
    struct Fickle;
    impl Serialize for Fickle {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let _ = s.serialize_str("written");
            Err(ser::Error::custom("then refused"))
        }
    }
    let map: BTreeMap<u8, ()> = [(1, ())].into();
    let pairs = vec![("ok".to_owned(), 1u8)];
    struct Mixed(Vec<(String, u8)>);
    impl Serialize for Mixed {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(None)?;
            for (k, v) in &self.0 {
                map.serialize_entry(k, v)?;
            }
            map.serialize_entry(&Fickle, &0u8)?;
            map.end()
        }
    }
    let mut hasher = KeyHasher::new();
    let error = hasher.write_value(&Mixed(pairs)).expect_err("fails");
    assert!(error.to_string().contains("then refused"), "{error}");
    // The thread's map parts are fine for the next map.
    assert_eq!(key_of(&map), key_of(&map));
}

/// The radix sort gives the order of a full sort, equal hashes ordered by bytes.
#[test]
fn map_entries_sort_like_a_full_sort() {
    let xxh3 = xxhash_rust::xxh3::xxh3_64;
    // Few distinct hashes, spread over the top bits: many ties to break by the bytes.
    let few = |bytes: &[u8]| (xxh3(bytes) % 97).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let cases = [0usize, 1, 5, 63, 64, 65, 1000, 5000, 70_000];
    for (n, ties) in cases.iter().flat_map(|&n| [(n, false), (n, true)]) {
        let hash = |bytes: &[u8]| if ties { few(bytes) } else { xxh3(bytes) };
        let mut parts = MapParts::new();
        for i in 0..n {
            let start = parts.bytes.len();
            let value = i as u64 * 7919 % 1000;
            // Entries of a few lengths (and some equal ones).
            let len = 1 + (i % 3) * 3;
            parts.bytes.extend_from_slice(&value.to_le_bytes()[..len]);
            parts.order.push(pack(0, start, len));
        }
        let entries = |parts: &MapParts| -> Vec<(u64, Vec<u8>)> {
            let entry = |e: &u128| {
                let bytes = &parts.bytes[range_of(*e)];
                (hash(bytes), bytes.to_vec())
            };
            parts.order.iter().map(entry).collect()
        };
        let mut expected = entries(&parts);
        expected.sort();
        sort_entries(&mut parts, hash);
        let got = entries(&parts);
        assert_eq!(got, expected, "{n} entries");
        let hashes: Vec<u64> = parts.order.iter().map(|e| (*e >> 64) as u64).collect();
        let want: Vec<u64> = got.iter().map(|(hash, _)| *hash).collect();
        assert_eq!(hashes, want, "hashes kept with their entries");
    }
}

#[test]
fn vectors_and_slices_of_numbers_are_found_for_bulk_hashing() {
    let doubles = vec![1.5f64, -0.0];
    let seq = &doubles;
    let found = number_slice(&seq).expect("a &Vec<f64>");
    assert_eq!(found, (tag::F64, 8, crate::pod::bytes_of(&doubles)));
    let shorts: &[u16] = &[1, 2, 3];
    assert_eq!(
        number_slice(&shorts).map(|(t, w, d)| (t, w, d.len())),
        Some((tag::U16, 2, 6))
    );
    assert!(number_slice(&shorts.iter()).is_none(), "an iterator");
    assert!(number_slice(&&vec![true]).is_none(), "bool is not a number");
    assert!(number_slice(&&vec![1u128]).is_none(), "not handled in bulk");
    assert!(number_slice(&&vec!["a"]).is_none());
}

/// A sequence serialized from an iterator: never a `&Vec` or a `&[T]`, so always
/// written element by element.
pub(super) struct OneByOne<'a, T>(pub(super) &'a [T]);

impl<T: Serialize> Serialize for OneByOne<'_, T> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

proptest::proptest! {
    /// Vectors and slices of strings are written in one loop; the stream is the one
    /// their elements give one by one, for short strings and long ones (whose length
    /// takes two bytes), with buffers of every size.
    #[test]
    fn strings_in_bulk_hash_as_one_by_one(
        lens in proptest::collection::vec(0usize..300, 0..300),
        seed in proptest::prelude::any::<u8>(),
    ) {
        let strings: Vec<String> = lens
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let c = char::from(b'a' + (seed.wrapping_add(i as u8) % 26));
                std::iter::repeat_n(c, n).collect()
            })
            .collect();
        let one_by_one = key_of(&OneByOne(&strings));
        assert_eq!(key_of(&strings), one_by_one);
        assert_eq!(key_of(strings.as_slice()), one_by_one);
        let nested = (1u8, strings.clone(), vec![2.5f64]);
        let nested_one_by_one = (1u8, OneByOne(&strings), vec![2.5f64]);
        for buf_len in [0, 100, BUF_LEN] {
            assert_eq!(
                key_with_buffer(&nested, buf_len),
                key_of(&nested_one_by_one),
                "buffer of {} bytes", buf_len
            );
        }
    }

    /// Vectors and slices of numbers are hashed in bulk; the stream is the one their
    /// elements give one by one, whatever the length (runs of 4096 bytes of values).
    #[test]
    fn numbers_in_bulk_hash_as_one_by_one(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..9000),
        split in 0usize..9000,
    ) {
        fn same<T: Serialize + Copy>(values: &[T]) {
            let one_by_one = key_of(&OneByOne(values));
            assert_eq!(key_of(&values.to_vec()), one_by_one);
            assert_eq!(key_of(values), one_by_one);
            // Inside other values, and with a buffer that flushes on every write.
            let nested = (1u8, values.to_vec(), "x");
            let nested_one_by_one = (1u8, OneByOne(values), "x");
            assert_eq!(key_of(&nested), key_of(&nested_one_by_one));
            assert_eq!(key_with_buffer(&nested, 0), key_of(&nested_one_by_one));
        }
        let words = |n: usize| -> Vec<[u8; 8]> {
            bytes.chunks(n).map(|c| {
                let mut w = [0u8; 8];
                w[..c.len()].copy_from_slice(c);
                w
            }).collect()
        };
        same(&bytes);
        same(&bytes.iter().map(|&b| b as i8).collect::<Vec<_>>());
        let w = words(8);
        same(&w.iter().map(|w| f64::from_le_bytes(*w)).collect::<Vec<_>>());
        same(&w.iter().map(|w| u64::from_le_bytes(*w)).collect::<Vec<_>>());
        same(&w.iter().map(|w| i64::from_le_bytes(*w)).collect::<Vec<_>>());
        same(&w.iter().map(|w| usize::from_le_bytes(*w)).collect::<Vec<_>>());
        same(&w.iter().map(|w| isize::from_le_bytes(*w)).collect::<Vec<_>>());
        let w = words(4);
        same(&w.iter().map(|w| f32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect::<Vec<_>>());
        same(&w.iter().map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect::<Vec<_>>());
        same(&w.iter().map(|w| i32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect::<Vec<_>>());
        let w = words(2);
        same(&w.iter().map(|w| u16::from_le_bytes([w[0], w[1]])).collect::<Vec<_>>());
        same(&w.iter().map(|w| i16::from_le_bytes([w[0], w[1]])).collect::<Vec<_>>());
        // A sequence that continues a run of the same type right after a bulk one.
        let split = split.min(bytes.len());
        let (a, b) = bytes.split_at(split);
        assert_eq!(key_of(&(a.to_vec(), b)), key_of(&(OneByOne(a), OneByOne(b))));
    }
}

/// Runs: chunks of `RUN_BYTES` of values, broken by anything written between elements.
#[test]
fn runs_are_chunked_by_value_count() {
    let floats: Vec<f64> = (0..1000).map(f64::from).collect();
    let mut s: Vec<u8> = Vec::new();
    s.push(tag::LABEL);
    s.push(KEY_FORMAT.len() as u8);
    s.extend_from_slice(KEY_FORMAT.as_bytes());
    s.push(tag::SEQ);
    for chunk in floats.chunks(RUN_BYTES / 8) {
        s.extend_from_slice(&[tag::RUN, tag::F64]);
        s.extend_from_slice(&(chunk.len() as u16).to_le_bytes());
        for f in chunk {
            s.extend_from_slice(&f.to_bits().to_le_bytes());
        }
    }
    s.push(tag::END);
    s.extend_from_slice(&[0xe8, 0x07]); // 1000 in LEB128
    assert_eq!(key_of(&floats).as_bytes(), blake3::hash(&s).as_bytes());
}

#[test]
fn runs_do_not_blur_values() {
    // Same bytes, other types or other nesting: other keys.
    assert_ne!(key_of(&vec![1u8, 2]), key_of(&vec![0x0201u16]));
    assert_ne!(key_of(&vec![1u8, 2]), key_of(&(1u8, 2u8)));
    assert_ne!(key_of(&vec![1u8, 2]), key_of(&vec![vec![1u8], vec![2]]));
    assert_ne!(
        key_of(&vec![vec![1u8, 2], vec![]]),
        key_of(&vec![vec![1u8], vec![2]])
    );
    assert_ne!(key_of(&vec![1u8, 2]), key_of(&Bytes(&[1, 2])));
    // A run broken by another type, or by an element that is not a primitive.
    assert_ne!(key_of(&(1u8, 2u16, 3u8)), key_of(&(1u8, 3u8, 2u16)));
    assert_ne!(
        key_of(&vec![Some(1u8), None, Some(2)]),
        key_of(&vec![Some(1u8), Some(2), None])
    );
    assert_ne!(key_of(&vec![1.0f64; 512]), key_of(&vec![1.0f64; 513]));
}

/// Buffer sizes from "none at all" (every write is its own `update`) to the real one
/// give the same key, for values smaller than, around and much bigger than each
/// buffer, mixing small writes with big slices that bypass the buffer.
#[test]
fn buffering_does_not_change_the_key() {
    let big_bytes: Vec<u8> = (0..3 * BUF_LEN + 17)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let long_text = "chunk ".repeat(BUF_LEN / 3);
    let floats: Vec<f64> = (0..20_000).map(|i| f64::from(i) * 0.25).collect();
    let map = hash_map(entries(300));
    let edge: Vec<Vec<u8>> = (0..70).map(|n| big_bytes[..n].to_vec()).collect();

    type Feed<'a> = Box<dyn Fn(&mut KeyHasher) + 'a>;
    let values: Vec<Feed<'_>> = vec![
        Box::new(|h| h.write_value(&floats).expect("hashes")),
        Box::new(|h| h.write_value(&Bytes(&big_bytes)).expect("hashes")),
        Box::new(|h| {
            // Small, big, small: the buffered prefix must go to blake3 before the bypass.
            h.write_label("before");
            h.write_value(&(1u8, Bytes(&big_bytes), "mid", &long_text, 2u8))
                .expect("hashes");
            h.write_raw(&big_bytes[..BUF_LEN]);
            h.write_raw(&big_bytes[..BUF_LEN - 1]);
            h.write_label("after");
        }),
        Box::new(|h| {
            let bytes: Vec<Bytes<'_>> = edge.iter().map(|v| Bytes(v)).collect();
            h.write_value(&bytes).expect("hashes");
            h.write_value(&edge).expect("hashes");
        }),
        Box::new(|h| h.write_value(&(&map, &floats, &map)).expect("hashes")),
    ];
    for (i, feed) in values.iter().enumerate() {
        let digest = |buf_len: usize| {
            let mut hasher = KeyHasher::with_buffer_len(buf_len);
            feed(&mut hasher);
            hasher.finish()
        };
        let unbuffered = digest(0);
        for buf_len in [1, 2, 7, 9, 64, 1000, 4096, BUF_LEN, 4 * BUF_LEN] {
            assert_eq!(digest(buf_len), unbuffered, "value {i}, buffer {buf_len}");
        }
    }
}

const CHILD_VAR: &str = "FILE_CACHE_KEY_TEST_CHILD";
const DIGEST_MARK: &str = "file-cache-key-digest=";
const ORDER_MARK: &str = "file-cache-key-order=";

/// Run by `maps_hash_alike_in_two_processes` in a child process (with `CHILD_VAR` set):
/// prints the key of a `HashMap` built with this process's random hasher. Run alone,
/// checks the same map built in another order hashes alike.
#[test]
fn map_digest_child() {
    let map = hash_map(entries(1000));
    let key = key_of(&map);
    assert_eq!(key, key_of(&hash_map(entries(1000).into_iter().rev())));
    if std::env::var_os(CHILD_VAR).is_some() {
        let order: Vec<&str> = map.keys().take(8).map(String::as_str).collect();
        println!("{ORDER_MARK}{}", order.join(","));
        println!("{DIGEST_MARK}{}", key.to_hex());
    }
}

#[test]
fn maps_hash_alike_in_two_processes() {
    let exe = std::env::current_exe().expect("test binary path");
    let run = || {
        let out = std::process::Command::new(&exe)
            .args(["--exact", "key::tests::map_digest_child", "--nocapture"])
            .env(CHILD_VAR, "1")
            .output()
            .expect("child test runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "child failed:\n{stdout}");
        let field = |mark: &str| {
            stdout
                .lines()
                .find_map(|line| line.strip_prefix(mark))
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("child printed no {mark} line:\n{stdout}"))
        };
        (field(DIGEST_MARK), field(ORDER_MARK))
    };
    let (digest1, order1) = run();
    let (digest2, order2) = run();
    assert_eq!(digest1.len(), 64);
    // The processes iterated their maps in different orders, yet agree on the key.
    assert_ne!(
        order1, order2,
        "both processes iterated alike; the test proves nothing"
    );
    assert_eq!(digest1, digest2);
    assert_eq!(digest1, key_of(&hash_map(entries(1000))).to_hex());
}
