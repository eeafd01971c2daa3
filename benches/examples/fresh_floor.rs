//! Fresh-process benchmark (`benches/fresh.rs`): the floor, a process that reads one file
//! (`FRESH_FILE`, an entry of `fresh_file_cache`) and decodes its value's bytes.

fn main() {
    let path = std::env::var_os("FRESH_FILE").expect("FRESH_FILE");
    let payload_len: usize = std::env::var("FRESH_PAYLOAD_LEN")
        .expect("FRESH_PAYLOAD_LEN")
        .parse()
        .expect("a length");
    let bytes = std::fs::read(path).expect("the file");
    let value: (u64, String, u64) =
        postcard::from_bytes(&bytes[bytes.len() - payload_len..]).expect("decodes");
    assert_eq!(value.0, 7);
}
