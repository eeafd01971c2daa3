//! Reading a cache root from outside the program that filled it: what the `file-cache`
//! command-line tool is built on, for anyone who wants to script the same. It reads and
//! removes files only: nothing in it depends on the program, the process or its cached
//! functions.
//!
//! A root holds one directory per cached function, named after its path
//! (`my_crate.module.name`; see [`function_dir_name`] for paths that are not plain ASCII
//! identifiers), with entries in two-hex-digit shards and two small files of
//! bookkeeping:
//!
//! - `.hits`: a log of hits, 16-byte records (hit count, then saved microseconds, both
//!   `u64` little-endian), one appended by each process that hit the function, when it is
//!   done; past a few kilobytes it is rewritten as one record holding the sum (a log that
//!   holds anything else was damaged from outside: see [`DamagedHitLog`]);
//! - `.current`: the code hash (64 hex digits) of the version of the function that ran last,
//!   written by the runtime the first time a version looks an entry up in a process.
//!   Entries whose header names another code hash were written by an older (or other)
//!   version of the function: they can never be hit by this one.
//!
//! Under `FILE_CACHE_MAX_SIZE`, the root itself also holds `.size`, where the processes
//! keep the size of its entries (bookkeeping files are not counted, and never pruned).
//!
//! Names starting with `.` are never entries (temporary files are `.<name>.<pid>-<n>.tmp`).
//!
//! ```
//! # let root = std::env::temp_dir().join("file_cache_doctest_inspect");
//! # std::env::set_var("FILE_CACHE_DIR", &root);
//! # file_cache::clear_all().unwrap();
//! #[file_cache::file_cache]
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! square(4);
//! for function in file_cache::inspect::functions(file_cache::cache_dir())? {
//!     for file in function.entries()? {
//!         let entry = file.read()?.expect("a valid entry");
//!         assert_eq!(entry.type_name, "u64");
//!         assert_eq!(Some(entry.code_hash), function.current_version());
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

pub use crate::config::{parse_duration, parse_size, ParseDurationError, ParseSizeError};
pub use crate::dependencies::Dependency;
pub use crate::disk::gate::{read_only_root as read_only, ReadOnly};
pub use crate::disk::hitlog::{DamagedHitLog, HitTotals};
pub use crate::disk::scan::{
    function_dir_name, functions, parse_entry, EntryFile, EntryInfo, FunctionDir, InvalidEntry,
};
pub use crate::disk::versions::to_hex;
