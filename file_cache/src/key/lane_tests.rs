//! The key's unit tests for the shape lane: sequences of same-shaped structs that are not
//! rows hash alike whether `collect_seq`'s lane writes them or the sink's serializer does,
//! with every buffer, and the values the lane writes stay apart.

use super::tests::*;
use super::*;

/// A unit enum (a field the lane writes as a unit variant).
#[derive(serde::Serialize, Clone, Copy, Debug)]
enum Mood {
    Calm,
    Busy,
}

/// A newtype struct (a field the lane writes as one).
#[derive(serde::Serialize, Clone, Debug)]
struct Meters(f32);

/// A struct with a field of every kind the lane takes.
#[derive(serde::Serialize, Clone, Debug)]
struct Labeled {
    x: f64,
    name: String,
    label: Option<String>,
    tags: Vec<String>,
    mood: Mood,
    size: Meters,
    weights: Vec<f32>,
    blob: Option<u8>,
}

/// A struct whose one field is a primitive or not, depending on the value: a row when it
/// is one, so the lane must leave it to the sink.
#[derive(Clone, Debug)]
struct Either(Option<u32>);

impl Serialize for Either {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use ser::SerializeStruct as _;
        let mut fields = s.serialize_struct("Either", 2)?;
        fields.serialize_field("a", &1u8)?;
        match self.0 {
            Some(n) => fields.serialize_field("b", &n)?,
            None => fields.serialize_field("b", "none")?,
        }
        fields.end()
    }
}

/// A struct the lane refuses (a field that is a map).
#[derive(serde::Serialize, Clone, Debug)]
struct Mapped {
    x: u8,
    m: std::collections::BTreeMap<u8, u8>,
}

#[derive(Clone, Debug)]
enum Element {
    Labeled(Labeled),
    Either(Either),
    Mapped(Mapped),
    Text(String),
    Pair((u32, f32)),
    Triple((u8, u8, u16)),
    Long([u16; 70]),
    Mixed((u8, String)),
}

impl Serialize for Element {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Element::Labeled(v) => v.serialize(s),
            Element::Either(v) => v.serialize(s),
            Element::Mapped(v) => v.serialize(s),
            Element::Text(v) => v.serialize(s),
            Element::Pair(v) => v.serialize(s),
            Element::Triple(v) => v.serialize(s),
            Element::Long(v) => v.serialize(s),
            Element::Mixed(v) => v.serialize(s),
        }
    }
}

fn labeled(i: usize, long: usize) -> Labeled {
    Labeled {
        x: i as f64,
        name: match i % 5 {
            0 => String::new(),
            1 => "N".repeat(long),
            _ => format!("n{i}"),
        },
        label: match i % 4 {
            0 => None,
            1 => Some(String::new()),
            2 => Some(format!("p{i}")),
            _ => Some("L".repeat(long)),
        },
        tags: (0..i % 3)
            .map(|t| match (i + t) % 7 {
                0 => "T".repeat(long),
                _ => format!("t{t}"),
            })
            .collect(),
        mood: if i.is_multiple_of(2) {
            Mood::Calm
        } else {
            Mood::Busy
        },
        size: Meters(i as f32),
        weights: (0..i % 5).map(|w| w as f32).collect(),
        blob: i.is_multiple_of(3).then_some(i as u8),
    }
}

fn element(kind: u8, i: usize, long: usize) -> Element {
    match kind % 9 {
        0 | 1 => Element::Labeled(labeled(i, long)),
        2 => Element::Either(Either((!i.is_multiple_of(3)).then_some(i as u32))),
        3 => Element::Mapped(Mapped {
            x: i as u8,
            m: [(1, i as u8)].into_iter().collect(),
        }),
        4 => Element::Text(format!("e{i}")),
        5 => Element::Pair((i as u32, i as f32)),
        6 => Element::Triple((i as u8, 7, i as u16)),
        7 => Element::Long([i as u16; 70]),
        _ => Element::Mixed((i as u8, format!("m{i}"))),
    }
}

/// A sequence written element by element through `serialize_seq` (never a fast lane).
struct BySeq<'a, T>(&'a [T]);

impl<T: Serialize> Serialize for BySeq<'_, T> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use ser::SerializeSeq as _;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for item in self.0 {
            seq.serialize_element(item)?;
        }
        seq.end()
    }
}

proptest::proptest! {
    /// Runs of same-shaped structs (strings empty, short, longer than a one-byte length or
    /// than the lane's room; `None` and `Some`; vectors), broken by rows of one shape, by
    /// structs the lane refuses, by runs of tuples of primitives (the tuple lane's; and
    /// ones it refuses: too long, or holding a string) and by other values: the same key
    /// through the lanes (`collect_seq`), element by element, nested, with buffers of
    /// every size.
    #[test]
    fn shape_runs_hash_alike_whatever_the_path_and_the_buffer(
        runs in proptest::collection::vec((0u8..9, 0usize..300), 0..8),
        long in proptest::prop_oneof![0usize..4, 120usize..140, 5000usize..5100],
    ) {
        let mut elements = Vec::new();
        for (kind, len) in &runs {
            for i in 0..*len {
                elements.push(element(*kind, i, long));
            }
        }
        let expected = key_of(&BySeq(&elements));
        assert_eq!(key_of(&elements), expected);
        assert_eq!(key_of(&OneByOne(&elements)), expected);
        let nested = (1u8, &elements, "x", &elements);
        let nested_by_seq = (1u8, BySeq(&elements), "x", OneByOne(&elements));
        let nested_key = key_of(&nested_by_seq);
        assert_eq!(key_of(&nested), nested_key);
        for buf_len in [0, 1, 7, 100, 4096, BUF_LEN] {
            assert_eq!(key_with_buffer(&nested, buf_len), nested_key, "buffer {}", buf_len);
        }
    }
}

/// In a run of same-shaped structs, what the lane writes keeps values apart: `None` from
/// `Some("")`, an empty string from no string, one field's bytes from the next's, and
/// the element count from the elements.
#[test]
fn shape_runs_keep_values_apart() {
    let base: Vec<Labeled> = (0..50).map(|i| labeled(i, 3)).collect();
    let key = |f: &dyn Fn(&mut Labeled)| {
        let mut v = base.clone();
        f(&mut v[20]);
        let by_seq = key_of(&BySeq(&v));
        assert_eq!(key_of(&v), by_seq);
        by_seq
    };
    let keys = [
        key(&|_| {}),
        key(&|l| l.name = "\0".into()),
        key(&|l| l.label = None),
        key(&|l| l.label = Some(String::new())),
        key(&|l| l.label = Some("\0".into())),
        key(&|l| l.tags = vec![]),
        key(&|l| l.tags = vec![String::new()]),
        key(&|l| l.tags = vec![String::new(), String::new()]),
        key(&|l| l.blob = None),
        key(&|l| l.blob = Some(0)),
        key(&|l| l.mood = Mood::Busy),
        key(&|l| l.mood = Mood::Calm),
        key(&|l| l.x = -0.0),
        key(&|l| l.x = 0.0),
        key(&|l| l.weights = vec![]),
        key(&|l| l.weights = vec![0.0]),
        key(&|l| l.size = Meters(-1.0)),
    ];
    let distinct: std::collections::HashSet<_> = keys.iter().collect();
    // Element 20 has no label, no blob, mood Calm and no weights: four edits repeat it.
    assert_eq!(distinct.len(), keys.len() - 4);
    assert_ne!(keys[0], keys[1]);
    assert_ne!(keys[2], keys[3]);
    assert_ne!(keys[3], keys[4]);
    assert_ne!(keys[5], keys[6]);
    assert_ne!(keys[6], keys[7]);
    assert_ne!(keys[8], keys[9]);
    assert_ne!(keys[10], keys[11]);
    assert_ne!(keys[12], keys[13]);
    assert_ne!(keys[14], keys[15]);
    // One element fewer is another key, as is a field's text moved to the next field.
    assert_ne!(key_of(&base[..49]), key_of(&base));
    let a = vec![labeled(4, 0), labeled(4, 0)];
    let mut b = a.clone();
    b[1].tags = vec!["p4".into()];
    b[1].label = None;
    let mut c = a.clone();
    c[1].label = Some("p4".into());
    assert_ne!(key_of(&b), key_of(&c));
}

/// In a run of tuples, what the tuple lane writes keeps values and their types apart.
#[test]
fn tuple_runs_keep_values_apart() {
    let base: Vec<(u32, f32)> = (0..40).map(|i| (i, i as f32)).collect();
    let key = |v: &[(u32, f32)]| {
        let by_seq = key_of(&BySeq(v));
        assert_eq!(key_of(v), by_seq);
        by_seq
    };
    let mut other = base.clone();
    other[30].1 = -0.0;
    let mut zero = base.clone();
    zero[30].1 = 0.0;
    assert_ne!(key(&base), key(&other));
    assert_ne!(key(&other), key(&zero));
    assert_ne!(key(&base), key(&base[..39]));
    let swapped: Vec<(f32, u32)> = base.iter().map(|&(a, b)| (b, a)).collect();
    assert_eq!(key_of(&swapped), key_of(&BySeq(&swapped)));
    assert_ne!(key_of(&swapped), key(&base));
    let same: Vec<(u32, u32)> = base.iter().map(|&(a, b)| (a, b.to_bits())).collect();
    assert_eq!(key_of(&same), key_of(&BySeq(&same)));
    assert_ne!(key_of(&same), key(&base));
}

/// A struct's field names are checked against its predicted shape's while the shape
/// table grows under it (its fields are structs of shapes never seen before, so the table
/// moves its shapes while the outer struct is in progress): the key is the one a fresh
/// thread, which predicts nothing, gives.
#[test]
fn field_names_stay_checked_while_the_shape_table_grows() {
    struct Inner(&'static str);
    impl Serialize for Inner {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use ser::SerializeStruct as _;
            let mut fields = s.serialize_struct(self.0, 1)?;
            fields.serialize_field("v", &1u8)?;
            fields.end()
        }
    }
    struct Outer(Vec<Inner>);
    impl Serialize for Outer {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use ser::SerializeStruct as _;
            const NAMES: [&str; 4] = ["a", "b", "c", "d"];
            let mut fields = s.serialize_struct("Outer", self.0.len())?;
            for (name, inner) in NAMES.iter().cycle().zip(&self.0) {
                fields.serialize_field(name, inner)?;
            }
            fields.end()
        }
    }
    let outer = |round: usize| {
        Outer(
            (0..4)
                .map(|i| Inner(String::leak(format!("Inner{round}_{i}"))))
                .collect(),
        )
    };
    for round in 0..40 {
        let value = outer(round);
        let key = key_of(&value);
        let fresh = {
            let value = outer(round);
            std::thread::spawn(move || key_of(&value)).join().unwrap()
        };
        assert_eq!(key, fresh, "round {round}");
    }
}

/// Sequences long enough that the lanes fill the buffer many times over (they flush it and
/// go on): the same key as element by element, with buffers of every size.
#[test]
fn long_runs_hash_alike_across_flushes() {
    let structs: Vec<Labeled> = (0..12_000).map(|i| labeled(i, 200)).collect();
    let tuples: Vec<(u32, f32)> = (0..30_000).map(|i| (i, i as f32)).collect();
    let value = (&structs, &tuples);
    let expected = key_of(&(BySeq(&structs), BySeq(&tuples)));
    assert_eq!(key_of(&value), expected);
    for buf_len in [4096, 2 * 4096, 3 * 4096 + 5, 40_000, BUF_LEN] {
        assert_eq!(
            key_with_buffer(&value, buf_len),
            expected,
            "buffer {buf_len}"
        );
    }
}
