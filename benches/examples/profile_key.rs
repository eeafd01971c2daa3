//! Keys of structured values in a loop, for profilers: `valgrind --tool=callgrind` counts
//! their instructions repeatably on a noisy machine.
//!
//! ```sh
//! cargo build --release --example profile_key
//! valgrind --tool=callgrind target/release/examples/profile_key scene 20
//! ```
//!
//! Cases (the key bench's): `scene`, `records_100k`, `plain_1m`; a case followed by
//! `floor` (`scene floor 20`) hashes its floor instead (`postcard::to_stdvec`, then
//! `blake3::hash`), to compare instruction counts.

use file_cache::__private::{KeyBuilder, Site, SiteInfo};
use std::hint::black_box;

#[path = "../key_values.rs"]
mod key_values;

static SITE: Site = Site::new(SiteInfo {
    module_path: "bench::key",
    name: "f",
    ..SiteInfo::DEFAULT
});

fn key_of<T: serde::Serialize>(value: &T, rounds: usize) {
    for _ in 0..rounds {
        let mut builder = KeyBuilder::begin(&SITE).expect("cache on");
        builder.arg("value", black_box(value));
        black_box(builder.finish().expect("hashes"));
    }
}

fn floor_of<T: serde::Serialize>(value: &T, rounds: usize) {
    for _ in 0..rounds {
        let bytes = postcard::to_stdvec(black_box(value)).expect("encodes");
        black_box(blake3::hash(&bytes));
    }
}

fn main() {
    std::env::remove_var("FILE_CACHE");
    let mut args: Vec<String> = std::env::args().collect();
    let floor = args.get(2).is_some_and(|arg| arg == "floor");
    if floor {
        args.remove(2);
    }
    let case = args.get(1).map_or("scene", String::as_str);
    let rounds = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(10);
    match case {
        "scene" if floor => floor_of(&key_values::scene(), rounds),
        "records_100k" if floor => floor_of(&key_values::records(), rounds),
        "plain_1m" if floor => floor_of(&key_values::plain(), rounds),
        "scene" => key_of(&key_values::scene(), rounds),
        "records_100k" => key_of(&key_values::records(), rounds),
        "plain_1m" => key_of(&key_values::plain(), rounds),
        other => eprintln!("unknown case {other}: scene, records_100k or plain_1m"),
    }
}
