//! Arbitrary bytes through the whole entry decoder (`entry::parse`, then each codec,
//! postcard and MessagePack, as values of every serde shape, on the payload and on the raw
//! bytes): it must never panic, overflow or abort, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    std::hint::black_box(file_cache::__private::decode_untrusted(data));
});
