//! The `#[file_cache]` attribute (skeleton).
