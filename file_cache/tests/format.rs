//! The formats a release must keep: the key of given arguments, the entry's path under the
//! root, and the entry's bytes. An entry written by an earlier build (the fixture, made by
//! it) must stay a hit for the same function and arguments; a change to any of these is a
//! change of format, which needs a new format version, not a silent miss for every user.

use file_cache::__private::{call, write_entry, CallKey, KeyBuilder, Site, SiteInfo};
use std::path::{Path, PathBuf};

/// The fixture's entry, relative to the root: `<function dir>/<shard>/<key hex>` (key
/// format v4: a new key format is a new fixture, and old entries become misses).
const ENTRY: &str =
    "format_fixture.square/96/969598d15e59e22e9b9e71f8b64a6480bc05590034c7f4827be3d03a7deb080f";
/// An entry for [`value`] under [`key`], written by an earlier build.
static FIXTURE: &[u8] = include_bytes!("fixtures/format_entry");

type Value = (String, Vec<u32>, Option<f64>);

fn value() -> Value {
    ("nine".to_owned(), vec![1, 2, 3], Some(0.5))
}

/// A hand-written site (as the macro would emit) whose root is `root`, out of the memory
/// tier so that every hit reads the file.
fn site(root: &Path) -> &'static Site {
    let dir: &'static str = Box::leak(root.to_str().unwrap().to_owned().into_boxed_str());
    Box::leak(Box::new(Site::new(SiteInfo {
        module_path: "format_fixture",
        name: "square",
        code_hash: [7; 32],
        dir: Some(dir),
        memory: false,
        ..SiteInfo::DEFAULT
    })))
}

fn key(site: &'static Site) -> CallKey {
    let mut builder = KeyBuilder::begin(site).unwrap();
    builder.arg("n", &3u64);
    builder.arg("label", "abc");
    builder.arg("weights", &[0.25f64, -1.0]);
    builder.finish().unwrap()
}

/// Every entry file under `root` (names of 64 hex digits), relative to it.
fn entries(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for item in std::fs::read_dir(&dir).unwrap() {
            let path = item.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.file_name().unwrap().len() == 64 {
                found.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    found
}

/// Where the fields an entry may differ in sit: its creation time, and the header's checksum
/// (which covers it). `name_len` is the length of the value's type name.
fn varying(name_len: usize) -> [std::ops::Range<usize>; 2] {
    [92..100, 150 + name_len..166 + name_len]
}

#[test]
fn the_key_and_the_entry_path_of_fixed_arguments_are_unchanged() {
    let root = tempfile::tempdir().unwrap();
    let site = site(root.path());
    write_entry(site, key(site), &value());
    assert_eq!(entries(root.path()), [PathBuf::from(ENTRY)]);
}

#[test]
fn the_bytes_of_an_entry_are_unchanged_but_for_its_time() {
    let root = tempfile::tempdir().unwrap();
    let site = site(root.path());
    write_entry(site, key(site), &value());
    let mut written = std::fs::read(root.path().join(ENTRY)).unwrap();
    let mut fixture = FIXTURE.to_vec();
    assert_eq!(written.len(), fixture.len());
    for range in varying(std::any::type_name::<Value>().len()) {
        written[range.clone()].fill(0);
        fixture[range].fill(0);
    }
    assert_eq!(written, fixture);
}

#[test]
fn an_entry_written_by_an_earlier_build_is_a_hit() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join(ENTRY);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, FIXTURE).unwrap();
    let site = site(root.path());
    let mut ran = false;
    let got: Value = call(site, Some(key(site)), || {
        ran = true;
        (String::new(), Vec::new(), None)
    });
    assert!(!ran, "the body ran: the fixture's entry was not a hit");
    assert_eq!(got, value());
}
