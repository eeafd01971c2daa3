//! The quickstart: a 2-second function, called twice. Run it twice: on the second run
//! both calls return at once, because the result was stored on disk by the first.
//!
//! ```sh
//! cargo run --example quickstart
//! ```

use file_cache::file_cache;
use std::time::{Duration, Instant};

/// Something a function needs but that has nothing to do with its result.
struct Logger {
    prefix: &'static str,
}

impl Logger {
    fn info(&self, message: &str) {
        println!("{} {message}", self.prefix);
    }
}

/// Adds two numbers, slowly. `logger` is not part of the key (and need not be `Serialize`).
#[file_cache(ignore = [logger])]
fn slow_function(x: u64, y: u64, logger: &Logger) -> u64 {
    logger.info("computing for 2 seconds...");
    std::thread::sleep(Duration::from_secs(2));
    x + y
}

fn main() {
    let logger = Logger {
        prefix: "[quickstart]",
    };
    for call in ["first", "second"] {
        let started = Instant::now();
        let result = slow_function(40, 2, &logger);
        println!("{call} call: {result} in {:.3?}", started.elapsed());
    }
    println!(
        "entries live under {} (delete it to start over)",
        file_cache::cache_dir().display()
    );
}
