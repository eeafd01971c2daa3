//! A library's cached function keeps one set of entries, whichever binary calls it: this
//! test binary stores, the `shared_caller` binary reads (and the other way round).

mod common;

use std::process::Command;
use std::sync::atomic::Ordering;

fn shared_caller(x: u64) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_shared_caller"))
        .arg(x.to_string())
        .env_remove("FILE_CACHE")
        .output()
        .expect("run shared_caller");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn two_binaries_share_a_library_functions_entries() {
    common::init(); // FILE_CACHE_DIR, inherited by the other binary
    assert_eq!(file_cache_tests::shared_square(12), 144);
    assert_eq!(
        file_cache_tests::SHARED_SQUARE_RUNS.load(Ordering::SeqCst),
        1
    );
    assert_eq!(
        shared_caller(12),
        "value=144 runs=0",
        "a hit in the other binary"
    );

    assert_eq!(shared_caller(5), "value=25 runs=1");
    assert_eq!(file_cache_tests::shared_square(5), 25);
    assert_eq!(
        file_cache_tests::SHARED_SQUARE_RUNS.load(Ordering::SeqCst),
        1,
        "its entry is a hit here"
    );
}
