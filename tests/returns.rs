//! What is stored of a return value: `Option` whole (`None` is an answer), `Result` only
//! when `Ok`, recognised by its last path segment, and `result = false` to opt out.

mod common;

use file_cache::file_cache;
use std::sync::atomic::{AtomicUsize, Ordering};

fn runs(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

static LOOKUP: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn lookup(name: &str) -> Option<u32> {
    LOOKUP.fetch_add(1, Ordering::SeqCst);
    (name == "known").then_some(7)
}

#[test]
fn option_caches_some_and_none() {
    common::init();
    assert_eq!(lookup("known"), Some(7));
    assert_eq!(lookup("unknown"), None);
    assert_eq!(lookup("known"), Some(7));
    assert_eq!(lookup("unknown"), None);
    assert_eq!(runs(&LOOKUP), 2, "`None` is stored like `Some`");
}

static IO: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn read_len(ok: bool) -> std::io::Result<usize> {
    IO.fetch_add(1, Ordering::SeqCst);
    if ok {
        Ok(3)
    } else {
        Err(std::io::Error::other("nope"))
    }
}

static ANYHOW: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn parse(text: &str) -> anyhow::Result<u32> {
    ANYHOW.fetch_add(1, Ordering::SeqCst);
    Ok(text.parse()?)
}

#[test]
fn result_aliases_store_only_ok() {
    common::init();
    assert_eq!(read_len(true).unwrap(), 3);
    assert_eq!(read_len(true).unwrap(), 3);
    assert!(read_len(false).is_err());
    assert!(read_len(false).is_err());
    assert_eq!(runs(&IO), 3);

    assert_eq!(parse("5").unwrap(), 5);
    assert_eq!(parse("5").unwrap(), 5);
    assert!(parse("x").is_err());
    assert!(parse("x").is_err());
    assert_eq!(runs(&ANYHOW), 3, "an `anyhow::Error` is never stored");
}

/// A type named `Result` that is not one: `result = false` stores it whole.
mod verdict {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    pub enum Result<T> {
        Pass(T),
        Fail,
    }
}

static VERDICT: AtomicUsize = AtomicUsize::new(0);

#[file_cache(result = false)]
fn judge(score: u32) -> verdict::Result<u32> {
    VERDICT.fetch_add(1, Ordering::SeqCst);
    if score > 50 {
        verdict::Result::Pass(score)
    } else {
        verdict::Result::Fail
    }
}

#[test]
fn result_false_for_a_type_named_result_that_is_not_one() {
    common::init();
    assert_eq!(judge(10), verdict::Result::Fail);
    assert_eq!(judge(10), verdict::Result::Fail);
    assert_eq!(judge(60), verdict::Result::Pass(60));
    assert_eq!(judge(60), verdict::Result::Pass(60));
    assert_eq!(runs(&VERDICT), 2);
}

static INDEX: AtomicUsize = AtomicUsize::new(0);

/// A `HashMap` comes back from its entry in another iteration order: still the same value.
#[file_cache(memory = false)]
fn index(words: u32) -> std::collections::HashMap<String, u32> {
    INDEX.fetch_add(1, Ordering::SeqCst);
    (0..words).map(|i| (format!("word{i}"), i)).collect()
}

#[test]
fn hash_map_values_are_cached() {
    let root = common::init();
    let expected = index(300);
    assert_eq!(index(300), expected);
    assert_eq!(runs(&INDEX), 1, "the second call read the entry");
    assert_eq!(
        common::entry_files(&common::function_dir(root, "returns", "index")).len(),
        1
    );
}
