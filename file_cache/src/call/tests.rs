//! The call path's unit tests: lookups, checks and stores against real files.

use super::lookup::*;
use super::tiers::*;
use crate::call::builder::CallKey;
use crate::call::check::decode_entry;
use crate::call::lookup::Lookup;
use crate::codec::{self, Codec};
use crate::disk::lock::{self};
use crate::entry::Header;
use crate::fingerprint::Fingerprint;
use crate::flight::{self, Joined};
use crate::key::{Key, KeyHasher};
use crate::memory::{self};
use crate::site::Site;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

fn key(byte: u8) -> CallKey {
    CallKey {
        key: Key([byte; 32]),
        self_ty: None,
    }
}

const LAYOUT: Fingerprint = [5; 16];

fn entry_file(key: u8, codec: u8, type_name: &str, payload: &[u8]) -> Vec<u8> {
    entry_with_layout(key, codec, type_name, payload, LAYOUT)
}

fn entry_with_layout(
    key: u8,
    codec: u8,
    type_name: &str,
    payload: &[u8],
    layout: Fingerprint,
) -> Vec<u8> {
    let header = Header {
        codec,
        key: [key; 32],
        code_hash: [0; 32],
        layout,
        created_ms: 0,
        compute_us: 0,
        type_name,
        dependencies: &[],
    };
    let mut bytes = header.encode(payload).unwrap();
    bytes.extend_from_slice(payload);
    bytes
}

#[test]
fn a_good_entry_decodes() {
    let payload = codec::encode(&vec![1u64, 2, 3]).unwrap();
    let file = entry_file(1, codec::POSTCARD, "alloc::vec::Vec<u64>", &payload);
    assert_eq!(
        decode_entry::<Vec<u64>>(&file, &key(1), &LAYOUT),
        Ok(vec![1, 2, 3])
    );
}

#[test]
fn an_entry_for_something_else_is_refused_before_decoding() {
    let payload = codec::encode(&7u64).unwrap();
    let other_key = entry_file(2, codec::POSTCARD, "u64", &payload);
    assert_eq!(
        decode_entry::<u64>(&other_key, &key(1), &LAYOUT),
        Err("it holds another key".to_owned())
    );
    let other_codec = entry_file(1, 9, "u64", &payload);
    assert_eq!(
        decode_entry::<u64>(&other_codec, &key(1), &LAYOUT),
        Err("unknown codec 9".to_owned())
    );
    let other_type = entry_file(1, codec::POSTCARD, "i64", &payload);
    assert_eq!(
        decode_entry::<u64>(&other_type, &key(1), &LAYOUT),
        Err("it holds a `i64`, not a `u64`".to_owned())
    );
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Reply {
    id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<u32>,
}

#[test]
fn a_messagepack_entry_decodes_with_the_codec_its_header_names() {
    let value = Reply { id: 3, usage: None };
    let payload = codec::encode_with(Codec::MessagePack, &value).unwrap();
    let type_name = std::any::type_name::<Reply>();
    let file = entry_file(1, codec::MSGPACK, type_name, &payload);
    assert_eq!(decode_entry::<Reply>(&file, &key(1), &LAYOUT), Ok(value));
    // The same bytes under postcard's id do not decode.
    let file = entry_file(1, codec::POSTCARD, type_name, &payload);
    assert!(decode_entry::<Reply>(&file, &key(1), &LAYOUT).is_err());
}

#[test]
fn a_messagepack_entry_keeps_every_check() {
    let payload = codec::encode_with(Codec::MessagePack, &Reply { id: 3, usage: None }).unwrap();
    let type_name = std::any::type_name::<Reply>();
    let mut file = entry_file(1, codec::MSGPACK, type_name, &payload);
    let last = file.len() - 1;
    file[last] ^= 1;
    assert_eq!(
        decode_entry::<Reply>(&file, &key(1), &LAYOUT),
        Err("payload checksum mismatch".to_owned())
    );
    let file = entry_with_layout(1, codec::MSGPACK, type_name, &payload, [6; 16]);
    assert_eq!(
        decode_entry::<Reply>(&file, &key(1), &LAYOUT),
        Err(format!(
            "the layout of `{type_name}` changed since it was written"
        ))
    );
    let file = entry_file(2, codec::MSGPACK, type_name, &payload);
    assert!(decode_entry::<Reply>(&file, &key(1), &LAYOUT).is_err());
}

struct Woken(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Woken {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn poll<T: DeserializeOwned>(
    future: &mut BeginFuture<T>,
    woken: &std::sync::Arc<Woken>,
) -> Poll<Lookup<T>> {
    let waker = Waker::from(std::sync::Arc::clone(woken));
    Pin::new(future).poll(&mut Context::from_waker(&waker))
}

fn wait_until_woken(woken: &Woken, times: usize) {
    while woken.0.load(Ordering::SeqCst) < times {
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn unique_key() -> CallKey {
    let mut hasher = KeyHasher::new();
    hasher.write_label(&format!("{:?}{}", Instant::now(), std::process::id()));
    CallKey {
        key: hasher.finish(),
        self_ty: None,
    }
}

static ASYNC_SITE: Site = Site::new(crate::site::SiteInfo {
    module_path: "unit",
    name: "async_waits",
    ..crate::site::SiteInfo::DEFAULT
});

#[test]
fn async_lookups_wait_for_a_lock_and_a_flight_without_blocking() {
    let woken = std::sync::Arc::new(Woken(std::sync::atomic::AtomicUsize::new(0)));
    // Another process holds the entry's lock: pending, then woken to try again.
    let key = unique_key();
    let path = entry_path(&ASYNC_SITE, &key);
    let other_process = lock::acquire(&path, true, Default::default()).unwrap();
    let mut future = BeginFuture::<u64>::new(&ASYNC_SITE, Some(key));
    assert!(poll(&mut future, &woken).is_pending());
    drop(other_process);
    wait_until_woken(&woken, 1);
    let Poll::Ready(Lookup::Miss(miss)) = poll(&mut future, &woken) else {
        panic!("the lock is free: a miss")
    };
    // This caller leads; an async caller of the same key follows it.
    let again = CallKey {
        key: miss.key.key,
        self_ty: None,
    };
    let mut follower = BeginFuture::<u64>::new(&ASYNC_SITE, Some(again));
    assert!(poll(&mut follower, &woken).is_pending());
    let before = woken.0.load(Ordering::SeqCst);
    miss.store(&42u64);
    wait_until_woken(&woken, before + 1);
    assert!(matches!(
        poll(&mut follower, &woken),
        Poll::Ready(Lookup::Hit(42))
    ));
}

static MEMORY_SITE: Site = Site::new(crate::site::SiteInfo {
    module_path: "unit",
    name: "memory_first",
    ..crate::site::SiteInfo::DEFAULT
});

#[test]
fn a_memory_hit_waits_for_no_flight_and_no_lock_and_reads_no_file() {
    if memory::global().is_none() {
        return; // FILE_CACHE_MEMORY=0
    }
    let woken = std::sync::Arc::new(Woken(std::sync::atomic::AtomicUsize::new(0)));
    let key = unique_key();
    let again = |key: &CallKey| CallKey {
        key: key.key,
        self_ty: None,
    };
    let path = entry_path(&MEMORY_SITE, &key);
    let Lookup::Miss(miss) = Lookup::<u64>::begin(&MEMORY_SITE, Some(again(&key))) else {
        panic!("a new key: a miss")
    };
    miss.store(&7u64);
    // Another caller of this process leads a flight for the key, another process holds
    // its lock, and the file is gone: the memory tier answers all the same, at once.
    let Joined::Leader(flight) = flight::join(&key.key) else {
        panic!("nobody else computes this key")
    };
    let other_process = lock::acquire(&path, true, Default::default()).unwrap();
    std::fs::remove_file(&path).unwrap();
    let mut future = BeginFuture::<u64>::new(&MEMORY_SITE, Some(again(&key)));
    assert!(matches!(
        poll(&mut future, &woken),
        Poll::Ready(Lookup::Hit(7))
    ));
    assert!(matches!(
        Lookup::<u64>::begin(&MEMORY_SITE, Some(key)),
        Lookup::Hit(7)
    ));
    drop((other_process, flight));
}

#[test]
fn a_payload_that_does_not_decode_is_refused() {
    // Checksums are right; the bytes are not a `u64` (an overlong varint).
    let file = entry_file(1, codec::POSTCARD, "u64", &[0xff; 11]);
    let error = decode_entry::<u64>(&file, &key(1), &LAYOUT).unwrap_err();
    assert!(error.starts_with("its value does not decode"), "{error}");
    // A length prefix far larger than the file: refused without allocating it.
    let file = entry_file(
        1,
        codec::POSTCARD,
        "alloc::vec::Vec<u64>",
        &[0xff, 0xff, 0xff, 0xff, 0x0f],
    );
    assert!(decode_entry::<Vec<u64>>(&file, &key(1), &LAYOUT).is_err());
}

mod old {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    pub struct Hit {
        pub score: f32,
        pub id: u32,
    }
}

mod new {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    pub struct Hit {
        pub id: u32,
        pub score: f32,
    }
}

#[test]
fn an_entry_of_another_layout_is_refused_and_never_decoded() {
    let payload = codec::encode(&old::Hit { score: 0.5, id: 7 }).unwrap();
    // What the check prevents: the old bytes decode, into a wrong value.
    let wrong: new::Hit = codec::decode(&payload).unwrap();
    assert_ne!(wrong, new::Hit { id: 7, score: 0.5 });
    let written = crate::fingerprint::trace::<old::Hit>().unwrap();
    let expected = crate::fingerprint::trace::<new::Hit>().unwrap();
    let type_name = std::any::type_name::<new::Hit>();
    let file = entry_with_layout(1, codec::POSTCARD, type_name, &payload, written);
    assert_eq!(
        decode_entry::<new::Hit>(&file, &key(1), &expected),
        Err(format!(
            "the layout of `{type_name}` changed since it was written"
        ))
    );
}
