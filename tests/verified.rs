//! Large entries: a process that has verified an entry's file does not hash its payload
//! again while the file is unchanged, and any write into the file, even one that keeps its
//! size and puts its modification time back, makes the next hit verify (and, here, refuse
//! and repair) it. One test in this binary: it counts the process's payload hashes.

mod common;

use common::{entry_files, function_dir, init};
use file_cache::__private::payload_hashes;
use file_cache::file_cache;
use serde_bytes::ByteBuf;
use std::io::{Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static RUNS: AtomicUsize = AtomicUsize::new(0);

fn expected(seed: u8) -> ByteBuf {
    ByteBuf::from(
        (0..3usize << 20)
            .map(|i| (i as u8).wrapping_mul(seed))
            .collect::<Vec<u8>>(),
    )
}

#[file_cache(memory = false)]
fn big(seed: u8) -> ByteBuf {
    RUNS.fetch_add(1, Ordering::SeqCst);
    expected(seed)
}

#[test]
fn verified_large_entries_are_not_rehashed_until_their_file_changes() {
    let root = init();
    assert_eq!(big(3), expected(3));
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
    let files = entry_files(&function_dir(root, module_path!(), "big"));
    assert_eq!(files.len(), 1);
    let entry = files[0].clone();

    // A file changed less than the settling time ago is hashed on every hit.
    let hashes = payload_hashes();
    assert_eq!(big(3), expected(3));
    assert_eq!(big(3), expected(3));
    assert_eq!(
        payload_hashes(),
        hashes + 2,
        "a fresh file is verified each time"
    );

    std::thread::sleep(Duration::from_millis(2100));
    // Settled: the next hit verifies and remembers it; the ones after trust it.
    assert_eq!(big(3), expected(3));
    let hashes = payload_hashes();
    for _ in 0..3 {
        assert_eq!(big(3), expected(3));
    }
    assert_eq!(
        payload_hashes(),
        hashes,
        "a verified, unchanged file is not hashed"
    );
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);

    // One payload byte changed in place, same size, modification time put back.
    let mtime = std::fs::metadata(&entry).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&entry)
        .unwrap();
    let len = file.seek(SeekFrom::End(0)).unwrap();
    file.seek(SeekFrom::Start(len - 10)).unwrap();
    file.write_all(&[0x5a]).unwrap();
    file.set_modified(mtime).unwrap();
    drop(file);
    assert_eq!(std::fs::metadata(&entry).unwrap().len(), len);

    assert_eq!(big(3), expected(3), "the damaged entry is never returned");
    assert_eq!(RUNS.load(Ordering::SeqCst), 2, "it was a miss");
    // Verified again (the miss path reads the file a second time under the lock).
    assert!(payload_hashes() > hashes, "the changed file was hashed");
    // Repaired: the rewritten entry hits.
    assert_eq!(big(3), expected(3));
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);
}
