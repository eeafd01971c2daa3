//! Tracked dependencies: code hashes published at compile time by `#[file_cache::track]`
//! and folded into a cached function's code hash by `deps = [...]`. A leaf: it knows hashes
//! only.
//!
//! The macro hashes each item's own tokens with blake3, which is not a `const fn`; the
//! dependencies' hashes are only known to the compiler (another crate, a `Self` type), so
//! they are combined in a `const` by [`combine`]: the blake3 compression function, written
//! as a `const fn`, chained over the dependencies' hashes keyed by the item's own. Constant
//! evaluation follows `deps` transitively; a cycle of `deps` is a compile error (rustc's
//! "cycle detected when const-evaluating"), never a hang.

/// An item whose code hash is published at compile time: added by `#[file_cache::track]`
/// to the item (a struct or enum) or to a hidden marker type named like the function.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not tracked, so `deps = [...]` cannot name it",
    label = "not tracked",
    note = "add `#[file_cache::track]` to `{Self}`"
)]
pub trait Tracked {
    /// The item's code hash: its own tokens, combined with its `deps`.
    const CODE_HASH: [u8; 32];
}

const IV: [u32; 8] = [
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
];
const PERMUTATION: [usize; 16] = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
/// blake3's `CHUNK_START | CHUNK_END | ROOT | KEYED_HASH`: one keyed block per step.
const FLAGS: u32 = 1 | 2 | 8 | 16;

/// `own` when there are no dependencies; otherwise `own` chained with each dependency's
/// hash, its position and the count, so order and number count too.
pub const fn combine(own: [u8; 32], deps: &[[u8; 32]]) -> [u8; 32] {
    if deps.is_empty() {
        return own;
    }
    let mut cv = words(&own);
    let mut i = 0;
    while i < deps.len() {
        let dep = words(&deps[i]);
        let mut block = [0u32; 16];
        let mut w = 0;
        while w < 8 {
            block[w] = dep[w];
            w += 1;
        }
        block[8] = i as u32;
        block[9] = deps.len() as u32;
        cv = compress(cv, block, i as u64);
        i += 1;
    }
    let mut out = [0u8; 32];
    let mut w = 0;
    while w < 8 {
        let bytes = cv[w].to_le_bytes();
        out[4 * w] = bytes[0];
        out[4 * w + 1] = bytes[1];
        out[4 * w + 2] = bytes[2];
        out[4 * w + 3] = bytes[3];
        w += 1;
    }
    out
}

const fn words(bytes: &[u8; 32]) -> [u32; 8] {
    let mut out = [0u32; 8];
    let mut w = 0;
    while w < 8 {
        out[w] = u32::from_le_bytes([
            bytes[4 * w],
            bytes[4 * w + 1],
            bytes[4 * w + 2],
            bytes[4 * w + 3],
        ]);
        w += 1;
    }
    out
}

#[allow(clippy::too_many_arguments)]
const fn g(mut s: [u32; 16], a: usize, b: usize, c: usize, d: usize, x: u32, y: u32) -> [u32; 16] {
    s[a] = s[a].wrapping_add(s[b]).wrapping_add(x);
    s[d] = (s[d] ^ s[a]).rotate_right(16);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_right(12);
    s[a] = s[a].wrapping_add(s[b]).wrapping_add(y);
    s[d] = (s[d] ^ s[a]).rotate_right(8);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_right(7);
    s
}

/// blake3's compression function for one full 64-byte block.
const fn compress(cv: [u32; 8], block: [u32; 16], counter: u64) -> [u32; 8] {
    let mut s = [
        cv[0],
        cv[1],
        cv[2],
        cv[3],
        cv[4],
        cv[5],
        cv[6],
        cv[7],
        IV[0],
        IV[1],
        IV[2],
        IV[3],
        counter as u32,
        (counter >> 32) as u32,
        64,
        FLAGS,
    ];
    let mut m = block;
    let mut round = 0;
    while round < 7 {
        s = g(s, 0, 4, 8, 12, m[0], m[1]);
        s = g(s, 1, 5, 9, 13, m[2], m[3]);
        s = g(s, 2, 6, 10, 14, m[4], m[5]);
        s = g(s, 3, 7, 11, 15, m[6], m[7]);
        s = g(s, 0, 5, 10, 15, m[8], m[9]);
        s = g(s, 1, 6, 11, 12, m[10], m[11]);
        s = g(s, 2, 7, 8, 13, m[12], m[13]);
        s = g(s, 3, 4, 9, 14, m[14], m[15]);
        let mut permuted = [0u32; 16];
        let mut i = 0;
        while i < 16 {
            permuted[i] = m[PERMUTATION[i]];
            i += 1;
        }
        m = permuted;
        round += 1;
    }
    let mut out = [0u32; 8];
    let mut i = 0;
    while i < 8 {
        out[i] = s[i] ^ s[i + 8];
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compression_is_blake3s() {
        // blake3 of one full 64-byte block keyed by `key` is exactly one compression.
        let key = [7u8; 32];
        let mut input = [0u8; 64];
        for (i, byte) in input.iter_mut().enumerate() {
            *byte = i as u8;
        }
        let mut block = [0u32; 16];
        for (w, word) in block.iter_mut().enumerate() {
            *word = u32::from_le_bytes(input[4 * w..4 * w + 4].try_into().unwrap());
        }
        let cv = compress(words(&key), block, 0);
        let mut ours = [0u8; 32];
        for (w, word) in cv.iter().enumerate() {
            ours[4 * w..4 * w + 4].copy_from_slice(&word.to_le_bytes());
        }
        assert_eq!(&ours, blake3::keyed_hash(&key, &input).as_bytes());
    }

    const A: [u8; 32] = [1; 32];
    const B: [u8; 32] = [2; 32];
    const C: [u8; 32] = [3; 32];
    // Evaluated at compile time, as generated code does.
    const AB: [u8; 32] = combine(A, &[B]);

    #[test]
    fn combining_depends_on_every_part() {
        assert_eq!(combine(A, &[]), A);
        assert_eq!(AB, combine(A, &[B]));
        let all = [
            AB,
            combine(B, &[A]),
            combine(A, &[C]),
            combine(A, &[B, C]),
            combine(A, &[C, B]),
            combine(A, &[B, B]),
            combine(A, &[AB]),
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
