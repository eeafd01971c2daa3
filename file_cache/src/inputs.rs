//! What a path names, as a 32-byte digest: a file by its bytes, a directory by its tree, a
//! missing path as missing. A leaf: it reads the files a function's arguments name (never
//! anything under a cache root) and knows nothing of keys, entries or calls.
//!
//! A directory's digest covers every entry below it: each one's path relative to the
//! directory, its kind, a regular file's bytes, and a symbolic link's target text (links
//! inside a tree are not followed, so a link out of the tree, or a loop, is keyed by what
//! it says). Entries are sorted by relative path, so the order the file system lists them
//! in does not count. The path given itself is followed when it is a link: a function
//! handed `data.csv` reads what the link points at.
//!
//! Nothing here fails: a path that cannot be read is keyed by why (the error's kind), so
//! the call goes on and a later readable file is another key.

use std::fs;
use std::io;
use std::path::Path;

/// Separates these digests from every other blake3 use of the crate.
const DOMAIN: &str = "file_cache 2026-12 inputs: what a path names v1";

/// What `path` names, hashed: see the module's documentation.
pub(crate) fn digest(path: &Path) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(DOMAIN);
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            hasher.update(b"d");
            hash_tree(path, &mut hasher);
        }
        Ok(meta) if meta.is_file() => {
            hasher.update(b"f");
            hash_file_into(path, &mut hasher);
        }
        // A fifo, socket or device: its kind, never its contents (opening a fifo blocks).
        Ok(_) => {
            hasher.update(b"o");
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            hasher.update(b"m");
        }
        Err(error) => {
            log::debug!(
                "file_cache: {} cannot be read ({error}); keyed as unreadable",
                path.display()
            );
            hasher.update(b"e");
            hasher.update(format!("{:?}", error.kind()).as_bytes());
        }
    }
    *hasher.finalize().as_bytes()
}

/// A regular file's bytes, hashed on their own (the digest that stands for the file).
pub(crate) fn file_digest(path: &Path) -> io::Result<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(fs::File::open(path)?)?;
    Ok(*hasher.finalize().as_bytes())
}

fn hash_file_into(path: &Path, hasher: &mut blake3::Hasher) {
    match file_digest(path) {
        Ok(digest) => {
            hasher.update(&digest);
        }
        Err(error) => {
            log::debug!(
                "file_cache: {} cannot be read ({error}); keyed as unreadable",
                path.display()
            );
            hasher.update(b"e");
            hasher.update(format!("{:?}", error.kind()).as_bytes());
        }
    }
}

/// Length-prefixed, so no field runs into the next.
fn framed(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    hasher.update(&(bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// One entry of a tree, as it is hashed.
struct Entry {
    /// The path relative to the tree's root, its components joined by `/`.
    relative: Vec<u8>,
    kind: u8,
    /// A file's digest or a link's target; empty for a directory.
    what: Vec<u8>,
}

fn hash_tree(root: &Path, hasher: &mut blake3::Hasher) {
    let mut entries = Vec::new();
    walk(root, &mut Vec::new(), &mut entries);
    entries.sort_unstable_by(|a, b| a.relative.cmp(&b.relative));
    hasher.update(&(entries.len() as u64).to_le_bytes());
    for entry in &entries {
        framed(hasher, &entry.relative);
        hasher.update(&[entry.kind]);
        framed(hasher, &entry.what);
    }
}

fn walk(dir: &Path, prefix: &mut Vec<u8>, entries: &mut Vec<Entry>) {
    let listing = match fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(error) => {
            log::debug!(
                "file_cache: directory {} cannot be listed ({error})",
                dir.display()
            );
            entries.push(Entry {
                relative: prefix.clone(),
                kind: b'e',
                what: format!("{:?}", error.kind()).into_bytes(),
            });
            return;
        }
    };
    for item in listing {
        let item = match item {
            Ok(item) => item,
            Err(error) => {
                entries.push(Entry {
                    relative: prefix.clone(),
                    kind: b'e',
                    what: format!("{:?}", error.kind()).into_bytes(),
                });
                continue;
            }
        };
        let name = item.file_name();
        let at = prefix.len();
        if at > 0 {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(name.as_encoded_bytes());
        let path = item.path();
        // `DirEntry::file_type` does not follow links.
        let (kind, what) = match item.file_type() {
            Ok(kind) if kind.is_symlink() => match fs::read_link(&path) {
                Ok(target) => (b'l', target.into_os_string().into_encoded_bytes()),
                Err(error) => (b'e', format!("{:?}", error.kind()).into_bytes()),
            },
            Ok(kind) if kind.is_dir() => (b'd', Vec::new()),
            Ok(kind) if kind.is_file() => match file_digest(&path) {
                Ok(digest) => (b'f', digest.to_vec()),
                Err(error) => (b'e', format!("{:?}", error.kind()).into_bytes()),
            },
            Ok(_) => (b'o', Vec::new()),
            Err(error) => (b'e', format!("{:?}", error.kind()).into_bytes()),
        };
        entries.push(Entry {
            relative: prefix.clone(),
            kind,
            what,
        });
        if kind == b'd' {
            walk(&path, prefix, entries);
        }
        prefix.truncate(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_trees_and_missing_paths() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let missing = digest(&root.join("nothing"));
        assert_eq!(
            missing,
            digest(&root.join("nothing else")),
            "missing is missing"
        );
        fs::write(root.join("a"), b"one").unwrap();
        let a = digest(&root.join("a"));
        assert_ne!(a, missing);
        fs::write(root.join("b"), b"one").unwrap();
        assert_eq!(a, digest(&root.join("b")), "a file is its bytes");
        fs::write(root.join("a"), b"two").unwrap();
        assert_ne!(a, digest(&root.join("a")));

        let tree = root.join("tree");
        fs::create_dir_all(tree.join("x/y")).unwrap();
        fs::write(tree.join("x/y/z"), b"deep").unwrap();
        let first = digest(&tree);
        assert_eq!(first, digest(&tree), "stable");
        fs::rename(tree.join("x/y/z"), tree.join("x/y/w")).unwrap();
        let renamed = digest(&tree);
        assert_ne!(first, renamed, "a rename");
        fs::create_dir(tree.join("x/y/v")).unwrap();
        assert_ne!(renamed, digest(&tree), "an empty directory is an entry");
        fs::remove_dir(tree.join("x/y/v")).unwrap();
        assert_eq!(renamed, digest(&tree));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("w", tree.join("x/link")).unwrap();
            let linked = digest(&tree);
            assert_ne!(renamed, linked);
            fs::write(tree.join("x/y/w"), b"changed").unwrap();
            let changed = digest(&tree);
            assert_ne!(linked, changed, "the file changed");
            fs::remove_file(tree.join("x/link")).unwrap();
            std::os::unix::fs::symlink("elsewhere", tree.join("x/link")).unwrap();
            assert_ne!(changed, digest(&tree), "a link is its target's text");
            // A loop is text too: no endless walk.
            std::os::unix::fs::symlink(".", tree.join("x/loop")).unwrap();
            let _ = digest(&tree);
        }
        assert_ne!(digest(&tree), digest(&root.join("a")));
    }
}
