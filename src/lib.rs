//! Examples and tests of the `file_cache` workspace live beside this (empty) root package.
