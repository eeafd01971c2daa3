//! The key's unit tests for struct shapes and rows: names, order and types of fields
//! stay in the key, skipped fields make other shapes, and rows hash alike on every path
//! and with every buffer.

use super::tests::*;
use super::*;
use std::collections::{BTreeMap, HashMap};
use std::hash::RandomState;

/// The key format's label is the first thing hashed: a stream under another label (an
/// older format's) never gives the same key.
#[test]
fn the_format_label_is_part_of_the_key() {
    assert_eq!(KEY_FORMAT, "file_cache key v4");
    let value = (vec![v1::Point { x: 1, y: 2 }], "text", 3u64);
    let under = |label: &str| {
        let mut hasher = KeyHasher::bare(BUF_LEN);
        hasher.write_label(label);
        hasher.write_value(&value).expect("hashes");
        hasher.finish()
    };
    assert_eq!(under(KEY_FORMAT), key_of(&value));
    assert_ne!(under("file_cache key v3"), key_of(&value));
}

/// Struct names, field names, their order and the fields' types are all in the key,
/// whether a struct stands alone, is a field, or is an element of a sequence (a row).
#[test]
fn struct_shapes_keep_names_order_and_types_apart() {
    mod same_names_other_types {
        #[derive(serde::Serialize)]
        pub struct Point {
            pub x: i32,
            pub y: u32,
        }
    }
    #[derive(serde::Serialize)]
    struct Holder<T> {
        inner: T,
    }
    let point = |x, y| v1::Point { x, y };
    let forms = |f: &dyn Fn() -> Vec<Key>| f();
    let base = forms(&|| {
        vec![
            key_of(&point(1, 2)),
            key_of(&vec![point(1, 2), point(3, 4)]),
            key_of(&Holder { inner: point(1, 2) }),
        ]
    });
    let others: Vec<Vec<Key>> = vec![
        forms(&|| {
            vec![
                key_of(&renamed::Point { x: 1, z: 2 }),
                key_of(&vec![
                    renamed::Point { x: 1, z: 2 },
                    renamed::Point { x: 3, z: 4 },
                ]),
                key_of(&Holder {
                    inner: renamed::Point { x: 1, z: 2 },
                }),
            ]
        }),
        forms(&|| {
            vec![
                key_of(&reordered::Point { y: 1, x: 2 }),
                key_of(&vec![
                    reordered::Point { y: 1, x: 2 },
                    reordered::Point { y: 3, x: 4 },
                ]),
                key_of(&Holder {
                    inner: reordered::Point { y: 1, x: 2 },
                }),
            ]
        }),
        forms(&|| {
            let p = |x, y| same_names_other_types::Point { x, y };
            vec![
                key_of(&p(1, 2)),
                key_of(&vec![p(1, 2), p(3, 4)]),
                key_of(&Holder { inner: p(1, 2) }),
            ]
        }),
        forms(&|| {
            let p = |x, y| other_name::Spot { x, y };
            vec![
                key_of(&p(1, 2)),
                key_of(&vec![p(1, 2), p(3, 4)]),
                key_of(&Holder { inner: p(1, 2) }),
            ]
        }),
    ];
    for (i, other) in others.iter().enumerate() {
        for (form, (a, b)) in base.iter().zip(other).enumerate() {
            assert_ne!(a, b, "shape {i}, form {form}");
        }
    }
    // A struct and the tuple of its fields, in a sequence too.
    assert_ne!(base[1], key_of(&vec![(1i32, 2i32), (3, 4)]));
    // Two struct types of one shape in one value: their names tell them apart.
    assert_ne!(
        key_of(&(point(1, 2), other_name::Spot { x: 3, y: 4 })),
        key_of(&(other_name::Spot { x: 1, y: 2 }, point(3, 4)))
    );
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A struct whose impl skips a field in some values.
#[derive(serde::Serialize, Clone)]
struct Sometimes {
    a: u32,
    #[serde(skip_serializing_if = "is_zero")]
    b: u32,
    c: u32,
}

mod sometimes_ab {
    /// `Sometimes` with `b` and without `c`.
    #[derive(serde::Serialize)]
    pub struct Sometimes {
        pub a: u32,
        pub b: u32,
    }
}

mod sometimes_ac {
    /// `Sometimes` without `b`.
    #[derive(serde::Serialize)]
    pub struct Sometimes {
        pub a: u32,
        pub c: u32,
    }
}

/// Structs of one name whose fields differ from value to value (a skipped field): each
/// is keyed by the fields it has, never mistaken for another shape with the same values.
#[test]
fn skipped_fields_give_other_shapes() {
    let s = |a, b, c| Sometimes { a, b, c };
    // (a, c) present, against (a, b) present with the same values.
    assert_ne!(
        key_of(&s(1, 0, 2)),
        key_of(&sometimes_ab::Sometimes { a: 1, b: 2 })
    );
    assert_ne!(
        key_of(&vec![s(1, 0, 2), s(1, 0, 2)]),
        key_of(&vec![
            sometimes_ab::Sometimes { a: 1, b: 2 },
            sometimes_ab::Sometimes { a: 1, b: 2 }
        ])
    );
    // Where the serde calls are the same, so is the key.
    assert_eq!(
        key_of(&vec![s(1, 0, 2), s(3, 0, 4)]),
        key_of(&vec![
            sometimes_ac::Sometimes { a: 1, c: 2 },
            sometimes_ac::Sometimes { a: 3, c: 4 }
        ])
    );
    // Which elements skip matters.
    let mixed = vec![s(1, 0, 2), s(1, 5, 2), s(1, 0, 2)];
    let other = vec![s(1, 5, 2), s(1, 0, 2), s(1, 0, 2)];
    assert_ne!(key_of(&mixed), key_of(&other));
    assert_ne!(key_of(&mixed), key_of(&vec![s(1, 0, 2), s(1, 0, 2)]));
    // Alternating shapes keep giving the key a fresh thread gives.
    let long: Vec<Sometimes> = (0..2000).map(|i| s(i, i % 3, i * 2)).collect();
    let fresh = {
        let long = long.clone();
        std::thread::spawn(move || key_of(&long)).join().unwrap()
    };
    assert_eq!(key_of(&long), fresh);
    assert_eq!(key_of(&long), key_of(&long));
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

#[derive(serde::Serialize, Clone)]
struct Plain {
    a: u64,
    b: f64,
    c: u32,
}

#[derive(serde::Serialize, Clone)]
enum Item {
    Plain(Plain),
    Text(String),
    Number(u16),
}

/// An element for the row tests: a row of one of two shapes, or something else.
#[derive(Clone)]
enum Element {
    Plain(Plain),
    Point(v1::Point),
    Sometimes(Sometimes),
    Number(u16),
    Text(String),
}

impl Serialize for Element {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Element::Plain(v) => v.serialize(s),
            Element::Point(v) => v.serialize(s),
            Element::Sometimes(v) => v.serialize(s),
            Element::Number(v) => v.serialize(s),
            Element::Text(v) => v.serialize(s),
        }
    }
}

fn element(kind: u8, i: u32) -> Element {
    match kind % 6 {
        0 | 1 => Element::Plain(Plain {
            a: u64::from(i) * 3,
            b: f64::from(i) * 0.5,
            c: i ^ 0x55,
        }),
        2 => Element::Point(v1::Point {
            x: i as i32,
            y: -(i as i32),
        }),
        3 => Element::Sometimes(Sometimes {
            a: i,
            b: i % 2,
            c: 7,
        }),
        4 => Element::Number(i as u16),
        _ => Element::Text(format!("t{i}")),
    }
}

proptest::proptest! {
    /// Rows: a sequence of structs hashes alike whether it goes through the fast lane
    /// (`collect_seq`), element by element (`serialize_seq`), inside other values, with
    /// buffers of every size, in a fresh thread (nothing predicted), and across chunks of
    /// rows (runs of up to a few hundred same-shaped rows broken by other elements).
    #[test]
    fn rows_hash_alike_whatever_the_path_and_the_buffer(
        runs in proptest::collection::vec((0u8..6, 0usize..400), 0..12),
    ) {
        let mut elements = Vec::new();
        for (kind, len) in &runs {
            for i in 0..*len {
                elements.push(element(*kind, i as u32));
            }
        }
        let expected = key_of(&elements);
        assert_eq!(key_of(&OneByOne(&elements)), expected);
        assert_eq!(key_of(&BySeq(&elements)), expected);
        assert_eq!(key_of(elements.as_slice()), expected);
        let nested = (1u8, &elements, "x", &elements);
        let nested_by_seq = (1u8, BySeq(&elements), "x", OneByOne(&elements));
        let nested_key = key_of(&nested);
        assert_eq!(key_of(&nested_by_seq), nested_key);
        for buf_len in [0, 1, 7, 100, 4096, BUF_LEN] {
            assert_eq!(key_with_buffer(&nested, buf_len), nested_key, "buffer {}", buf_len);
            assert_eq!(key_with_buffer(&nested_by_seq, buf_len), nested_key, "buffer {}", buf_len);
        }
        let fresh = {
            let elements = elements.clone();
            std::thread::spawn(move || key_of(&elements)).join().unwrap()
        };
        assert_eq!(fresh, expected);
    }
}

/// Where row chunks end depends on the values only: the number of rows, not where the
/// sequence starts in the buffer or the stream.
#[test]
fn row_chunks_do_not_depend_on_where_a_sequence_starts() {
    let plain: Vec<Plain> = (0..3000)
        .map(|i| Plain {
            a: i,
            b: i as f64,
            c: i as u32,
        })
        .collect();
    for prefix in [0usize, 1, 13, 4095, 4096, 20_000, BUF_LEN - 3, BUF_LEN + 5] {
        let text = "p".repeat(prefix);
        let value = (&text, &plain, &text);
        let by_seq = (&text, BySeq(&plain), &text);
        let expected = key_of(&by_seq);
        for buf_len in [0, 9, 4096, BUF_LEN] {
            assert_eq!(
                key_with_buffer(&value, buf_len),
                expected,
                "{prefix} {buf_len}"
            );
        }
    }
    // Variants holding rows, and rows beside other kinds of elements.
    let items: Vec<Item> = (0..500)
        .map(|i| match i % 7 {
            0 => Item::Text(format!("i{i}")),
            1 => Item::Number(i as u16),
            _ => Item::Plain(plain[i].clone()),
        })
        .collect();
    assert_eq!(key_of(&items), key_of(&BySeq(&items)));
    assert_eq!(key_with_buffer(&items, 0), key_of(&BySeq(&items)));
}

/// A struct of more fields than a row takes, in a sequence: written as a struct, alike
/// on every path; and one row of fewer fields is not confused with it.
#[test]
fn wide_structs_are_not_rows_and_hash_alike() {
    const NAMES: [&str; 40] = [
        "f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "f10", "f11", "f12", "f13",
        "f14", "f15", "f16", "f17", "f18", "f19", "f20", "f21", "f22", "f23", "f24", "f25", "f26",
        "f27", "f28", "f29", "f30", "f31", "f32", "f33", "f34", "f35", "f36", "f37", "f38", "f39",
    ];
    #[derive(Clone)]
    struct Wide(usize, u64);
    impl Serialize for Wide {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use ser::SerializeStruct as _;
            let mut st = s.serialize_struct("Wide", self.0)?;
            for name in &NAMES[..self.0] {
                st.serialize_field(name, &self.1)?;
            }
            st.end()
        }
    }
    for n in [0, 1, 31, 32, 33, 40] {
        let wide: Vec<Wide> = (0..300).map(|i| Wide(n, i)).collect();
        let expected = key_of(&BySeq(&wide));
        assert_eq!(key_of(&wide), expected, "{n} fields");
        assert_eq!(key_with_buffer(&wide, 0), expected, "{n} fields");
        let mixed: Vec<Wide> = (0..300).map(|i| Wide(31 + i % 3, i as u64)).collect();
        assert_eq!(key_of(&mixed), key_of(&BySeq(&mixed)));
    }
    assert_ne!(
        key_of(&vec![Wide(32, 1), Wide(32, 1)]),
        key_of(&vec![Wide(33, 1), Wide(31, 1)])
    );
}

/// Shapes are told apart by their text, not by where their names are stored: names of
/// the same text at other addresses give the same key, mixed with the usual ones too.
#[test]
fn shapes_are_keyed_by_their_names_text() {
    struct Elsewhere(i32, i32);
    fn leak(text: &str) -> &'static str {
        Box::leak(text.to_owned().into_boxed_str())
    }
    impl Serialize for Elsewhere {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use ser::SerializeStruct as _;
            thread_local! {
                static NAMES: (&'static str, &'static str, &'static str) =
                    (leak("Point"), leak("x"), leak("y"));
            }
            let (name, x, y) = NAMES.with(|names| *names);
            let mut st = s.serialize_struct(name, 2)?;
            st.serialize_field(x, &self.0)?;
            st.serialize_field(y, &self.1)?;
            st.end()
        }
    }
    #[derive(Clone, Copy)]
    enum Either {
        Derived(i32),
        Leaked(i32),
    }
    impl Serialize for Either {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match *self {
                Either::Derived(i) => v1::Point { x: i, y: -i }.serialize(s),
                Either::Leaked(i) => Elsewhere(i, -i).serialize(s),
            }
        }
    }
    assert_eq!(key_of(&Elsewhere(1, 2)), key_of(&v1::Point { x: 1, y: 2 }));
    let derived: Vec<Either> = (0..600).map(Either::Derived).collect();
    let mixed: Vec<Either> = (0..600)
        .map(|i| {
            if i % 5 < 2 {
                Either::Leaked(i)
            } else {
                Either::Derived(i)
            }
        })
        .collect();
    assert_eq!(key_of(&mixed), key_of(&derived));
    assert_eq!(key_of(&BySeq(&mixed)), key_of(&derived));
    assert_eq!(
        key_of(&(Elsewhere(1, 2), v1::Point { x: 3, y: 4 }, Elsewhere(5, 6))),
        key_of(&(
            v1::Point { x: 1, y: 2 },
            v1::Point { x: 3, y: 4 },
            v1::Point { x: 5, y: 6 }
        ))
    );
}

/// Shape numbers start again in every map entry, so entries holding structs (alone or
/// as rows) hash alike whatever order the map gives them in.
#[test]
fn maps_of_structs_hash_independently_of_order() {
    let build = |reverse: bool| {
        let mut keys: Vec<u32> = (0..300).collect();
        if reverse {
            keys.reverse();
        }
        let mut map = HashMap::with_hasher(RandomState::new());
        for k in keys {
            let rows: Vec<Plain> = (0..k % 5)
                .map(|i| Plain {
                    a: u64::from(i),
                    b: 0.5,
                    c: k,
                })
                .collect();
            let shape = (k % 2 == 0).then_some(Sometimes {
                a: k,
                b: k % 3,
                c: 1,
            });
            map.insert(k, (rows, shape, v1::Point { x: 1, y: k as i32 }));
        }
        map
    };
    assert_eq!(key_of(&build(false)), key_of(&build(true)));
    let btree: BTreeMap<_, _> = build(false).into_iter().collect();
    assert_eq!(key_of(&btree), key_of(&build(true)));
}
