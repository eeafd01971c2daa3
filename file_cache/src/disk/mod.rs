//! The files under a root, and nothing else: where entries live ([`paths`]), reading them
//! ([`read`]), writing them atomically ([`write`]) with the leaf file operations beneath
//! ([`files`]: no links followed, private modes), the per-entry lock of cross-process
//! single flight ([`lock`]), the verdict on a root ([`root`]), listing and removing
//! ([`scan`]), the bookkeeping files of a function ([`hitlog`], [`versions`]), the
//! size bound ([`size_limit`]) and writes made off the caller's path ([`later`]). It moves bytes and names files: it never decodes a value,
//! and knows nothing of sites, calls, stats or the remote tier.

pub(crate) mod digests;
pub(crate) mod files;
pub(crate) mod gate;
pub(crate) mod hitlog;
pub(crate) mod later;
pub(crate) mod lock;
pub(crate) mod paths;
pub(crate) mod read;
pub(crate) mod root;
pub(crate) mod scan;
pub(crate) mod size_limit;
pub(crate) mod versions;
pub(crate) mod write;
