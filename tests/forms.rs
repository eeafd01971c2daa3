//! The forms of function `#[file_cache]` accepts compile, keep their signatures, and cache:
//! every test asserts the values returned and how many times the body ran.

use file_cache::file_cache;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

/// A fresh cache root for this test binary, set before any cached call.
fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let dir = tempfile::tempdir().expect("temp dir").keep();
        std::env::set_var("FILE_CACHE_DIR", dir);
    });
}

fn runs(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

// A free function.

static FREE: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn double(x: u64) -> u64 {
    FREE.fetch_add(1, Ordering::SeqCst);
    x * 2
}

#[test]
fn free_function() {
    init();
    assert_eq!(double(21), 42);
    assert_eq!(double(21), 42);
    assert_eq!(runs(&FREE), 1);
    assert_eq!(double(1), 2);
    assert_eq!(runs(&FREE), 2);
}

// Functions in modules; the same name in two modules is two functions.

static IN_MODULE: AtomicUsize = AtomicUsize::new(0);

mod outer {
    pub mod inner {
        use super::super::IN_MODULE;
        use file_cache::file_cache;
        use std::sync::atomic::Ordering;

        #[file_cache]
        pub fn double(x: u64) -> u64 {
            IN_MODULE.fetch_add(1, Ordering::SeqCst);
            x * 2
        }
    }

    pub mod other {
        use super::super::IN_MODULE;
        use file_cache::file_cache;
        use std::sync::atomic::Ordering;

        #[file_cache]
        pub fn double(x: u64) -> u64 {
            IN_MODULE.fetch_add(1, Ordering::SeqCst);
            x * 2
        }
    }
}

#[test]
fn function_in_a_module() {
    init();
    assert_eq!(outer::inner::double(5), 10);
    assert_eq!(outer::inner::double(5), 10);
    assert_eq!(runs(&IN_MODULE), 1);
    assert_eq!(outer::other::double(5), 10);
    assert_eq!(runs(&IN_MODULE), 2, "another module, another function");
    assert_eq!(outer::other::double(5), 10);
    assert_eq!(runs(&IN_MODULE), 2);
}

// Many parameters, by value and by reference.

static MANY: AtomicUsize = AtomicUsize::new(0);

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Point {
    x: i32,
    y: i32,
}

#[allow(clippy::too_many_arguments)]
#[file_cache]
fn describe(
    count: u32,
    point: &Point,
    label: &str,
    values: &[u16],
    path: &Path,
    extra: Option<&Point>,
    owned: String,
    flag: bool,
) -> String {
    MANY.fetch_add(1, Ordering::SeqCst);
    format!(
        "{count} {point:?} {label} {values:?} {} {extra:?} {owned} {flag}",
        path.display()
    )
}

#[test]
fn many_parameters_by_value_and_by_reference() {
    init();
    let point = Point { x: 1, y: 2 };
    let path = PathBuf::from("/tmp/a");
    let call = |label: &str, extra: Option<&Point>| {
        describe(3, &point, label, &[7, 8], &path, extra, "own".into(), true)
    };
    let expected = "3 Point { x: 1, y: 2 } hi [7, 8] /tmp/a None own true";
    assert_eq!(call("hi", None), expected);
    assert_eq!(call("hi", None), expected);
    assert_eq!(runs(&MANY), 1);
    assert_eq!(
        call("hi", Some(&point)),
        "3 Point { x: 1, y: 2 } hi [7, 8] /tmp/a Some(Point { x: 1, y: 2 }) own true"
    );
    assert_eq!(runs(&MANY), 2);
    assert_eq!(call("ho", None), expected.replace("hi", "ho"));
    assert_eq!(runs(&MANY), 3);
    // A different path, slice or string is a different key.
    assert_eq!(
        describe(
            3,
            &point,
            "hi",
            &[7],
            Path::new("/b"),
            None,
            "x".into(),
            false
        ),
        "3 Point { x: 1, y: 2 } hi [7] /b None x false"
    );
    assert_eq!(runs(&MANY), 4);
    assert_eq!(call("hi", None), expected);
    assert_eq!(runs(&MANY), 4);
}

// `mut` bindings: the body mutates its own copy; the key is the value passed in.

static MUT: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn countdown(mut n: u32, mut acc: Vec<u32>) -> Vec<u32> {
    MUT.fetch_add(1, Ordering::SeqCst);
    while n > 0 {
        acc.push(n);
        n -= 1;
    }
    acc
}

#[test]
fn mut_bindings() {
    init();
    assert_eq!(countdown(3, vec![9]), [9, 3, 2, 1]);
    assert_eq!(countdown(3, vec![9]), [9, 3, 2, 1]);
    assert_eq!(runs(&MUT), 1);
    assert_eq!(countdown(2, vec![]), [2, 1]);
    assert_eq!(runs(&MUT), 2);
}

// Generic functions with a `where` clause; the concrete type is part of the key.

static GENERIC: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn total<T, const SCALE: u64>(items: &[T]) -> u64
where
    T: Into<u64> + Copy + Serialize,
{
    GENERIC.fetch_add(1, Ordering::SeqCst);
    items.iter().map(|&item| item.into()).sum::<u64>() * SCALE
}

#[test]
fn generic_function_with_where_clause() {
    init();
    assert_eq!(total::<u8, 1>(&[1, 2, 3]), 6);
    assert_eq!(total::<u8, 1>(&[1, 2, 3]), 6);
    assert_eq!(runs(&GENERIC), 1);
    // Same serialized bytes, another type: another entry.
    assert_eq!(total::<u16, 1>(&[1, 2, 3]), 6);
    assert_eq!(runs(&GENERIC), 2);
    // Another const argument: another entry.
    assert_eq!(total::<u8, 2>(&[1, 2, 3]), 12);
    assert_eq!(runs(&GENERIC), 3);
    assert_eq!(total::<u8, 1>(&[1, 2]), 3);
    assert_eq!(runs(&GENERIC), 4);
}

// `impl Trait` arguments: the concrete type is part of the key.

static IMPL_TRAIT: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn show(value: impl Serialize + std::fmt::Debug) -> String {
    IMPL_TRAIT.fetch_add(1, Ordering::SeqCst);
    format!("{value:?}")
}

#[test]
fn impl_trait_argument() {
    init();
    assert_eq!(show(7u32), "7");
    assert_eq!(show(7u32), "7");
    assert_eq!(runs(&IMPL_TRAIT), 1);
    assert_eq!(show(7i64), "7");
    assert_eq!(runs(&IMPL_TRAIT), 2, "another concrete type, another entry");
    assert_eq!(show("seven"), "\"seven\"");
    assert_eq!(runs(&IMPL_TRAIT), 3);
}

// Closures: every closure's type name prints alike (`forms::test::{{closure}}`); each is
// still its own type, and its own entries.

static APPLY: AtomicUsize = AtomicUsize::new(0);

#[file_cache(ignore = [f])]
fn apply<F: Fn(u32) -> u32>(f: F, x: u32) -> u32 {
    APPLY.fetch_add(1, Ordering::SeqCst);
    f(x)
}

static APPLY_IMPL: AtomicUsize = AtomicUsize::new(0);

#[file_cache(ignore = [f])]
fn apply_impl(f: impl Fn(u32) -> u32, x: u32) -> u32 {
    APPLY_IMPL.fetch_add(1, Ordering::SeqCst);
    f(x)
}

#[test]
fn two_closures_are_two_keys() {
    init();
    let plus_one = |x| x + 1;
    let times_hundred = |x| x * 100;
    assert_eq!(apply(plus_one, 5), 6);
    assert_eq!(apply(times_hundred, 5), 500);
    assert_eq!(runs(&APPLY), 2, "each closure ran its body");
    assert_eq!(apply(plus_one, 5), 6);
    assert_eq!(apply(times_hundred, 5), 500);
    assert_eq!(runs(&APPLY), 2, "and each hit its own entry");

    // The same for an ignored `impl Fn` argument.
    assert_eq!(apply_impl(plus_one, 5), 6);
    assert_eq!(apply_impl(times_hundred, 5), 500);
    assert_eq!(runs(&APPLY_IMPL), 2);
    assert_eq!(apply_impl(plus_one, 5), 6);
    assert_eq!(runs(&APPLY_IMPL), 2);

    // A closure that borrows (not `'static`) is keyed the same way.
    let offset = 7;
    let borrowing = |x| x + offset;
    assert_eq!(apply(borrowing, 5), 12);
    assert_eq!(apply(borrowing, 5), 12);
    assert_eq!(runs(&APPLY), 3);
}

static NAMED: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn type_name_of<T: Default + std::fmt::Debug>() -> String {
    NAMED.fetch_add(1, Ordering::SeqCst);
    format!("{:?}", T::default())
}

#[test]
fn types_whose_names_print_alike_are_two_keys() {
    init();
    // Two types named `forms::types_whose_names_print_alike_are_two_keys::Unit`.
    let first = {
        #[derive(Default, Debug)]
        struct Unit;
        type_name_of::<Unit>()
    };
    let second = {
        #[derive(Default, Debug)]
        struct Unit(#[allow(dead_code)] u8);
        type_name_of::<Unit>()
    };
    assert_eq!(first, "Unit");
    assert_eq!(second, "Unit(0)");
    assert_eq!(runs(&NAMED), 2);
}

// A type parameter used only in the return type.

static PARSE: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn parse<T>(text: &str) -> Option<T>
where
    T: std::str::FromStr + Serialize + serde::de::DeserializeOwned,
{
    PARSE.fetch_add(1, Ordering::SeqCst);
    text.parse().ok()
}

#[test]
fn type_parameter_only_in_the_return_type() {
    init();
    assert_eq!(parse::<u32>("7"), Some(7));
    assert_eq!(parse::<String>("7"), Some("7".to_owned()));
    assert_eq!(runs(&PARSE), 2, "separate entries");
    assert_eq!(parse::<u32>("7"), Some(7));
    assert_eq!(parse::<String>("7"), Some("7".to_owned()));
    assert_eq!(runs(&PARSE), 2);
}

// Visibility, attributes and doc comments stay as written.

static KEPT: AtomicUsize = AtomicUsize::new(0);

/// Documented, inlined, must be used, visible in the crate only.
#[must_use]
#[inline]
#[file_cache]
#[allow(clippy::needless_return)]
pub(crate) fn documented(x: u8) -> u8 {
    //! Inner documentation is fine too.
    KEPT.fetch_add(1, Ordering::SeqCst);
    return x + 1;
}

#[deny(unused_must_use)]
#[test]
fn visibility_attributes_and_docs_are_kept() {
    init();
    assert_eq!(documented(1), 2);
    assert_eq!(documented(1), 2);
    assert_eq!(runs(&KEPT), 1);
    // The signature is unchanged: it coerces to the same function pointer type.
    let pointer: fn(u8) -> u8 = documented;
    assert_eq!(pointer(1), 2);
    assert_eq!(runs(&KEPT), 1);
}

// `Result` returns store only `Ok`; the error type needs no serde impls.

static RESULT: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, PartialEq)]
struct NotSerde(String);

#[file_cache]
fn checked_half(x: u32) -> Result<u32, NotSerde> {
    RESULT.fetch_add(1, Ordering::SeqCst);
    if x.is_multiple_of(2) {
        Ok(x / 2)
    } else {
        Err(NotSerde(format!("{x} is odd")))
    }
}

static IO_RESULT: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn read_number(text: &str) -> std::io::Result<u32> {
    IO_RESULT.fetch_add(1, Ordering::SeqCst);
    let number = text
        .trim()
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok(number)
}

#[test]
fn result_stores_only_ok() {
    init();
    assert_eq!(checked_half(4), Ok(2));
    assert_eq!(checked_half(4), Ok(2));
    assert_eq!(runs(&RESULT), 1);
    assert_eq!(checked_half(3), Err(NotSerde("3 is odd".into())));
    assert_eq!(checked_half(3), Err(NotSerde("3 is odd".into())));
    assert_eq!(runs(&RESULT), 3, "errors are not stored");

    // An alias whose last segment is `Result`, and `?` inside the body.
    assert_eq!(read_number(" 12 ").unwrap(), 12);
    assert_eq!(read_number(" 12 ").unwrap(), 12);
    assert_eq!(runs(&IO_RESULT), 1);
    assert!(read_number("x").is_err());
    assert!(read_number("x").is_err());
    assert_eq!(runs(&IO_RESULT), 3);
}

// `result = false` stores the whole value, errors included.

static WHOLE: AtomicUsize = AtomicUsize::new(0);

#[file_cache(result = false)]
fn whole_result(x: u32) -> Result<u32, String> {
    WHOLE.fetch_add(1, Ordering::SeqCst);
    Err(format!("no {x}"))
}

// `result = true` treats an alias with another name as a result.

type Outcome = Result<u32, NotSerde>;
static ALIAS: AtomicUsize = AtomicUsize::new(0);

#[file_cache(result = true)]
fn outcome(x: u32) -> Outcome {
    ALIAS.fetch_add(1, Ordering::SeqCst);
    if x > 0 {
        Ok(x)
    } else {
        Err(NotSerde("zero".into()))
    }
}

#[test]
fn result_option_overrides_detection() {
    init();
    assert_eq!(whole_result(1), Err("no 1".to_owned()));
    assert_eq!(whole_result(1), Err("no 1".to_owned()));
    assert_eq!(runs(&WHOLE), 1, "the error was stored");

    assert_eq!(outcome(0), Err(NotSerde("zero".into())));
    assert_eq!(outcome(0), Err(NotSerde("zero".into())));
    assert_eq!(runs(&ALIAS), 2);
    assert_eq!(outcome(5), Ok(5));
    assert_eq!(outcome(5), Ok(5));
    assert_eq!(runs(&ALIAS), 3);
}

// Ignored parameters need no bounds and do not change the key.

struct Logger {
    lines: std::cell::RefCell<Vec<String>>,
}

static IGNORED: AtomicUsize = AtomicUsize::new(0);

#[file_cache(ignore = [logger, progress])]
fn logged_square(x: u64, logger: &Logger, progress: &mut Vec<u64>) -> u64 {
    IGNORED.fetch_add(1, Ordering::SeqCst);
    logger.lines.borrow_mut().push(format!("square {x}"));
    progress.push(x);
    x * x
}

#[test]
fn ignored_parameters_need_no_bounds_and_are_not_keyed() {
    init();
    let first = Logger {
        lines: Default::default(),
    };
    let second = Logger {
        lines: Default::default(),
    };
    let mut progress = Vec::new();
    assert_eq!(logged_square(9, &first, &mut progress), 81);
    assert_eq!(logged_square(9, &second, &mut vec![1, 2]), 81);
    assert_eq!(runs(&IGNORED), 1, "another logger is the same key");
    assert_eq!(first.lines.borrow().as_slice(), ["square 9"]);
    assert!(second.lines.borrow().is_empty());
    assert_eq!(progress, [9]);
}

// Parameters named like the generated code's bindings, or the runtime's items.

static NAMES: AtomicUsize = AtomicUsize::new(0);

#[allow(clippy::too_many_arguments)]
#[file_cache]
fn named_like_internals(
    key: u8,
    site: u8,
    body: u8,
    call: u8,
    k: u8,
    begin: u8,
    finish: u8,
    r#type: u8,
) -> u32 {
    NAMES.fetch_add(1, Ordering::SeqCst);
    [key, site, body, call, k, begin, finish, r#type]
        .iter()
        .map(|&v| u32::from(v))
        .sum()
}

#[test]
fn parameters_named_like_internals() {
    init();
    assert_eq!(named_like_internals(1, 2, 3, 4, 5, 6, 7, 8), 36);
    assert_eq!(named_like_internals(1, 2, 3, 4, 5, 6, 7, 8), 36);
    assert_eq!(runs(&NAMES), 1);
    assert_eq!(named_like_internals(8, 7, 6, 5, 4, 3, 2, 1), 36);
    assert_eq!(runs(&NAMES), 2);
}

// No return type, no parameters, and a wildcard parameter.

static UNIT: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn side_effect_once(_: &mut Vec<u8>) {
    UNIT.fetch_add(1, Ordering::SeqCst);
}

static CONSTANT: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn constant() -> String {
    CONSTANT.fetch_add(1, Ordering::SeqCst);
    "constant".into()
}

#[test]
fn unit_return_no_parameters_and_wildcards() {
    init();
    side_effect_once(&mut vec![1]);
    side_effect_once(&mut vec![1]);
    assert_eq!(runs(&UNIT), 1);
    side_effect_once(&mut vec![2]);
    assert_eq!(runs(&UNIT), 2, "`_` is hashed as a whole value");
    assert_eq!(constant(), "constant");
    assert_eq!(constant(), "constant");
    assert_eq!(runs(&CONSTANT), 1);
}

// Lifetimes, `unsafe fn`, inner attributes and items inside the body.

static MISC: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
unsafe fn longest<'a, 'b: 'a>(a: &'a str, b: &'b str) -> String {
    #![allow(unused_variables)]
    const LIMIT: usize = 100;
    fn pick<'x>(a: &'x str, b: &'x str) -> &'x str {
        if a.len() >= b.len() {
            a
        } else {
            b
        }
    }
    let unused = LIMIT;
    MISC.fetch_add(1, Ordering::SeqCst);
    pick(a, b).to_owned()
}

#[test]
fn lifetimes_unsafe_inner_attributes_and_items() {
    init();
    // SAFETY: `longest` has no safety requirements; it is `unsafe` to test the form.
    unsafe {
        assert_eq!(longest("ab", "abc"), "abc");
        assert_eq!(longest("ab", "abc"), "abc");
    }
    assert_eq!(runs(&MISC), 1);
}
