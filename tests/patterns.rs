//! Patterns in parameters are hashed as whole values; lifetimes and const generics work,
//! with the const value in the key.

mod common;

use file_cache::file_cache;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};

fn runs(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

#[derive(Serialize, Deserialize, Clone, Copy)]
struct Point {
    x: i32,
    y: i32,
}

static TUPLE: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn add((a, b): (u32, u32)) -> u32 {
    TUPLE.fetch_add(1, Ordering::SeqCst);
    a + b
}

static STRUCT: AtomicUsize = AtomicUsize::new(0);

/// Only `x` is bound, but the whole point is the key: `y` changes it too.
#[file_cache]
fn abs_x(Point { x, .. }: Point, mut scale: i32) -> i32 {
    STRUCT.fetch_add(1, Ordering::SeqCst);
    scale += 0;
    x.abs() * scale
}

static WILD: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn constant(_: u8, (mut first, _): (String, u8)) -> String {
    WILD.fetch_add(1, Ordering::SeqCst);
    first.push('!');
    first
}

#[test]
fn patterns_are_hashed_as_whole_values() {
    common::init();
    assert_eq!(add((1, 2)), 3);
    assert_eq!(add((1, 2)), 3);
    assert_eq!(add((2, 1)), 3);
    assert_eq!(runs(&TUPLE), 2);

    assert_eq!(abs_x(Point { x: -2, y: 0 }, 3), 6);
    assert_eq!(abs_x(Point { x: -2, y: 0 }, 3), 6);
    assert_eq!(runs(&STRUCT), 1);
    assert_eq!(abs_x(Point { x: -2, y: 1 }, 3), 6);
    assert_eq!(runs(&STRUCT), 2, "a field the body ignores is still keyed");

    assert_eq!(constant(1, ("a".into(), 1)), "a!");
    assert_eq!(constant(1, ("a".into(), 1)), "a!");
    assert_eq!(runs(&WILD), 1);
    assert_eq!(constant(2, ("a".into(), 1)), "a!");
    assert_eq!(constant(1, ("a".into(), 2)), "a!");
    assert_eq!(runs(&WILD), 3, "`_` is a value too");
}

static CONST: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn checksum<'a, const N: usize>(bytes: &'a [u8; N]) -> u64 {
    CONST.fetch_add(1, Ordering::SeqCst);
    bytes.iter().map(|&b| u64::from(b)).sum::<u64>() + N as u64
}

static ONLY_CONST: AtomicUsize = AtomicUsize::new(0);

/// `N` appears in no argument's value: only the key's const parameter tells calls apart.
#[file_cache]
fn zeros<const N: usize>() -> Vec<u8> {
    ONLY_CONST.fetch_add(1, Ordering::SeqCst);
    vec![0; N]
}

#[test]
fn lifetimes_and_const_generics() {
    common::init();
    assert_eq!(checksum(&[1, 2, 3]), 9);
    assert_eq!(checksum(&[1, 2, 3]), 9);
    assert_eq!(runs(&CONST), 1);
    assert_eq!(checksum(&[1, 2, 3, 0]), 10);
    assert_eq!(runs(&CONST), 2);

    assert_eq!(zeros::<2>(), [0, 0]);
    assert_eq!(zeros::<3>(), [0, 0, 0]);
    assert_eq!(zeros::<2>(), [0, 0]);
    assert_eq!(zeros::<3>(), [0, 0, 0]);
    assert_eq!(runs(&ONLY_CONST), 2, "`N` is part of the key");
}
