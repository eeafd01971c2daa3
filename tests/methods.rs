//! Methods and associated functions: every receiver form, generic impls (the impl's type
//! arguments are keyed), trait impls, and same-named functions of two impls kept apart.

mod common;

use file_cache::file_cache;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn runs(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Model {
    scale: u32,
}

impl Model {
    #[file_cache]
    fn by_ref(&self, x: u32) -> u32 {
        RUNS.fetch_add(1, Ordering::SeqCst);
        self.scale * x
    }

    #[file_cache]
    fn by_value(self, x: u32) -> u32 {
        RUNS.fetch_add(1, Ordering::SeqCst);
        self.scale + x
    }

    #[file_cache]
    fn by_arc(self: Arc<Self>, x: u32) -> u32 {
        RUNS.fetch_add(1, Ordering::SeqCst);
        self.scale * 100 + x
    }

    #[file_cache]
    fn by_box(self: Box<Self>, x: u32) -> u32 {
        RUNS.fetch_add(1, Ordering::SeqCst);
        self.scale * 1000 + x
    }

    /// An associated function that names `Self`.
    #[file_cache]
    fn new(scale: u32) -> Self {
        RUNS.fetch_add(1, Ordering::SeqCst);
        Model { scale }
    }
}

#[test]
fn receivers_hash_self_by_value() {
    common::init();
    let model = Model { scale: 2 };
    let before = runs(&RUNS);
    assert_eq!(model.by_ref(5), 10);
    assert_eq!(model.by_ref(5), 10);
    assert_eq!(runs(&RUNS), before + 1);
    assert_eq!(
        Model { scale: 3 }.by_ref(5),
        15,
        "another `self`, another key"
    );
    assert_eq!(runs(&RUNS), before + 2);

    assert_eq!(model.clone().by_value(1), 3);
    assert_eq!(model.clone().by_value(1), 3);
    assert_eq!(runs(&RUNS), before + 3);

    assert_eq!(Arc::new(model.clone()).by_arc(1), 201);
    assert_eq!(Arc::new(model.clone()).by_arc(1), 201);
    assert_eq!(Arc::new(Model { scale: 1 }).by_arc(1), 101);
    assert_eq!(runs(&RUNS), before + 5);

    assert_eq!(Box::new(model.clone()).by_box(1), 2001);
    assert_eq!(Box::new(model.clone()).by_box(1), 2001);
    assert_eq!(runs(&RUNS), before + 6);

    assert_eq!(Model::new(4), Model { scale: 4 });
    assert_eq!(Model::new(4), Model { scale: 4 });
    assert_eq!(runs(&RUNS), before + 7);
}

// `&mut self`, ignored: the body (and its mutation) runs on a miss only.

struct Client {
    requests: u32,
    log: Vec<String>,
}

static MUT_SELF: AtomicUsize = AtomicUsize::new(0);

impl Client {
    #[file_cache(ignore = [self])]
    fn fetch(&mut self, url: &str) -> String {
        MUT_SELF.fetch_add(1, Ordering::SeqCst);
        self.requests += 1;
        self.log.push(url.to_owned());
        format!("body of {url}")
    }
}

#[test]
fn mut_self_when_ignored() {
    common::init();
    let mut client = Client {
        requests: 0,
        log: Vec::new(),
    };
    assert_eq!(client.fetch("a"), "body of a");
    assert_eq!(client.fetch("a"), "body of a");
    let mut other = Client {
        requests: 9,
        log: Vec::new(),
    };
    assert_eq!(other.fetch("a"), "body of a", "`self` is not in the key");
    assert_eq!(runs(&MUT_SELF), 1);
    assert_eq!(client.requests, 1);
    assert_eq!(client.log, ["a"]);
    assert_eq!(other.requests, 9);
}

// Generic impls: the impl's type arguments are part of the key.

#[derive(Serialize)]
struct Wrapper<T>(std::marker::PhantomData<T>);

static GENERIC: AtomicUsize = AtomicUsize::new(0);

impl<T> Wrapper<T> {
    /// Names neither `self` nor `Self`: the impl's `T` is keyed through the place.
    #[file_cache]
    fn type_size() -> usize {
        GENERIC.fetch_add(1, Ordering::SeqCst);
        std::mem::size_of::<T>()
    }

    #[file_cache(ignore = [self])]
    fn name(&self) -> String {
        GENERIC.fetch_add(1, Ordering::SeqCst);
        std::any::type_name::<T>().to_owned()
    }
}

#[test]
fn generic_impls_key_their_type_arguments() {
    common::init();
    let before = runs(&GENERIC);
    assert_eq!(Wrapper::<u8>::type_size(), 1);
    assert_eq!(Wrapper::<u64>::type_size(), 8);
    assert_eq!(Wrapper::<u8>::type_size(), 1);
    assert_eq!(Wrapper::<u64>::type_size(), 8);
    assert_eq!(runs(&GENERIC), before + 2);
    let u8s = Wrapper::<u8>(Default::default());
    let strings = Wrapper::<String>(Default::default());
    assert_eq!(u8s.name(), "u8");
    assert_eq!(strings.name(), "alloc::string::String");
    assert_eq!(u8s.name(), "u8");
    assert_eq!(strings.name(), "alloc::string::String");
    assert_eq!(runs(&GENERIC), before + 4);
}

// Trait impls, and one trait's method in two impls.

trait Area {
    fn area(&self) -> f64;
    fn unit() -> String;
}

#[derive(Serialize)]
struct Square(f64);
#[derive(Serialize)]
struct Circle(f64);

static TRAIT: AtomicUsize = AtomicUsize::new(0);

impl Area for Square {
    #[file_cache]
    fn area(&self) -> f64 {
        TRAIT.fetch_add(1, Ordering::SeqCst);
        self.0 * self.0
    }

    #[file_cache]
    fn unit() -> String {
        TRAIT.fetch_add(1, Ordering::SeqCst);
        "m2".into()
    }
}

impl Area for Circle {
    #[file_cache]
    fn area(&self) -> f64 {
        TRAIT.fetch_add(1, Ordering::SeqCst);
        self.0 * self.0
    }

    #[file_cache]
    fn unit() -> String {
        TRAIT.fetch_add(1, Ordering::SeqCst);
        "m2".into()
    }
}

#[test]
fn trait_impls_are_separate_functions() {
    common::init();
    let before = runs(&TRAIT);
    // Same tokens, same serialized `self`: only the impl differs.
    assert_eq!(Square(2.0).area(), 4.0);
    assert_eq!(Circle(2.0).area(), 4.0);
    assert_eq!(Square(2.0).area(), 4.0);
    assert_eq!(Circle(2.0).area(), 4.0);
    assert_eq!(runs(&TRAIT), before + 2);
    assert_eq!(Square::unit(), "m2");
    assert_eq!(Circle::unit(), "m2");
    assert_eq!(Square::unit(), "m2");
    assert_eq!(runs(&TRAIT), before + 4);
}

// Two impls in one module with the same associated function, which names no `Self`.

struct Celsius;
struct Fahrenheit;

static NEW: AtomicUsize = AtomicUsize::new(0);

impl Celsius {
    #[file_cache]
    fn from_raw(raw: i32) -> i32 {
        NEW.fetch_add(1, Ordering::SeqCst);
        raw
    }
}

impl Fahrenheit {
    #[file_cache]
    fn from_raw(raw: i32) -> i32 {
        NEW.fetch_add(1, Ordering::SeqCst);
        raw
    }
}

#[test]
fn same_associated_function_in_two_impls_never_shares() {
    let root = common::init();
    assert_eq!(Celsius::from_raw(5), 5);
    assert_eq!(Fahrenheit::from_raw(5), 5);
    assert_eq!(Celsius::from_raw(5), 5);
    assert_eq!(Fahrenheit::from_raw(5), 5);
    assert_eq!(runs(&NEW), 2);
    // One directory per type.
    for ty in ["Celsius", "Fahrenheit"] {
        let dir = root.join(format!("methods.{ty}.from_raw"));
        assert_eq!(common::entry_files(&dir).len(), 1, "{}", dir.display());
    }
}

// Async methods.

static ASYNC: AtomicUsize = AtomicUsize::new(0);

impl Model {
    #[file_cache]
    async fn predict(&self, input: u32) -> u32 {
        ASYNC.fetch_add(1, Ordering::SeqCst);
        self.scale * input
    }
}

#[test]
fn async_methods() {
    common::init();
    let model = Model { scale: 7 };
    assert_eq!(pollster::block_on(model.predict(3)), 21);
    assert_eq!(pollster::block_on(model.predict(3)), 21);
    assert_eq!(runs(&ASYNC), 1);
}

// Functions whose directory names once met: two impls of one generic type, each with its
// own `get`, and two functions whose names differ only in an accent.

struct Holder<T>(std::marker::PhantomData<T>);

static HELD: AtomicUsize = AtomicUsize::new(0);

impl Holder<u8> {
    #[file_cache]
    fn get() -> u64 {
        HELD.fetch_add(1, Ordering::SeqCst);
        8
    }
}

impl Holder<u64> {
    #[file_cache]
    fn get() -> u64 {
        HELD.fetch_add(1, Ordering::SeqCst);
        64
    }
}

#[file_cache]
fn café(x: u64) -> u64 {
    HELD.fetch_add(1, Ordering::SeqCst);
    x + 1
}

#[file_cache]
fn cafè(x: u64) -> u64 {
    HELD.fetch_add(1, Ordering::SeqCst);
    x + 2
}

#[test]
fn functions_whose_names_sanitise_alike_keep_apart() {
    let root = common::init();
    let before = runs(&HELD);
    for _ in 0..2 {
        assert_eq!(Holder::<u8>::get(), 8);
        assert_eq!(Holder::<u64>::get(), 64);
        assert_eq!(café(1), 2);
        assert_eq!(cafè(1), 3);
    }
    assert_eq!(runs(&HELD), before + 4);

    // Four directories, each recording its own function's version: none of their
    // entries looks stale (what `file-cache prune --stale` removes).
    let mine =
        |name: &str| name.starts_with("methods.Holder.get") || name.starts_with("methods.caf");
    let dirs: Vec<_> = file_cache::inspect::functions(root)
        .unwrap()
        .into_iter()
        .filter(|dir| mine(&dir.name))
        .collect();
    assert_eq!(dirs.len(), 4, "{dirs:?}");
    for dir in &dirs {
        let entries = dir.entries().unwrap();
        assert_eq!(entries.len(), 1, "{}", dir.name);
        let entry = entries[0].read().unwrap().unwrap();
        assert_eq!(dir.current_version(), Some(entry.code_hash), "{}", dir.name);
    }

    // Four functions in the statistics, each with its own hit and miss, named as `clear`
    // and the tool name them.
    let stats: Vec<_> = file_cache::stats()
        .into_iter()
        .filter(|s| mine(&s.function.replace("::", ".")))
        .collect();
    assert_eq!(stats.len(), 4, "{stats:?}");
    for function in &stats {
        assert_eq!((function.hits, function.misses), (1, 1), "{function:?}");
        assert!(dirs.iter().any(|dir| dir.function() == function.function));
    }

    // Clearing one clears it alone, by its path or by the name `stats()` gives it.
    assert_eq!(file_cache::clear("methods::café").unwrap(), 1);
    assert!(!file_cache::is_cached(|| café(1)));
    assert!(file_cache::is_cached(|| cafè(1)));
    assert_eq!(file_cache::clear("methods::Holder<u8>::get").unwrap(), 1);
    assert!(!file_cache::is_cached(Holder::<u8>::get));
    assert!(file_cache::is_cached(Holder::<u64>::get));
    for function in &stats {
        if let Err(e) = file_cache::clear(&function.function) {
            panic!("{function:?}: {e:?}");
        }
    }
    assert!(!file_cache::is_cached(|| cafè(1)));
    assert!(!file_cache::is_cached(Holder::<u64>::get));
}
