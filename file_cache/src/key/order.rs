//! Map ordering: a map's entries are hashed and sorted (a radix sort on a hash of their
//! bytes, an insertion sort for small maps), so that a map's key does not depend on its
//! iteration order; an entry longer than [`ENTRY_INLINE`] bytes stands as its digest. A
//! leaf of the key: it orders packed ranges of bytes and knows nothing of serde.

/// Map entries whose canonical encoding is at most this long go into the map's stream
/// as they are; longer ones as `DIGEST` and their 32-byte blake3 digest.
pub(crate) const ENTRY_INLINE: usize = 256;

/// An entry's order hash, and where its bytes are in `MapParts::bytes`: the start in 48
/// bits, the length (at most `ENTRY_INLINE`) in 16. One integer to sort, and no second
/// table to look the range up in, at random, for every entry written out.
pub(super) fn pack(hash: u64, start: usize, len: usize) -> u128 {
    u128::from(hash) << 64 | (start as u128) << 16 | len as u128
}

/// The range in `MapParts::bytes` of a packed entry (see `pack`).
pub(super) fn range_of(e: u128) -> std::ops::Range<usize> {
    let start = ((e >> 16) as u64 & ((1 << 48) - 1)) as usize;
    let len = (e as u16) as usize;
    start..start + len
}

/// Bits of the hash one pass of `sort_entries` sorts on: 2,048 counts, which stay in
/// the first-level cache while the entries are scattered.
pub(super) const RADIX_BITS: u32 = 11;

/// The two digits of the hash's top bits `sort_entries` sorts a map of a given length on:
/// about a quarter of an entry per value of the sorted bits, so runs of entries that
/// share them are rare and short.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(super) struct Digits {
    pub(super) low_bits: u32,
    pub(super) high_bits: u32,
}

impl Digits {
    /// For a map of `n` entries, at least [`SMALL_MAP`].
    pub(super) fn for_len(n: usize) -> Digits {
        let wanted = usize::BITS - (n - 1).leading_zeros() + 2;
        Digits {
            low_bits: (wanted / 2).min(RADIX_BITS),
            high_bits: (wanted - wanted / 2).min(RADIX_BITS),
        }
    }

    pub(super) fn sorted_bits(self) -> u32 {
        self.low_bits + self.high_bits
    }

    /// The lower digit of a packed entry's hash.
    #[inline(always)]
    pub(super) fn low(self, e: u128) -> usize {
        (e >> (128 - self.sorted_bits())) as usize & ((1 << self.low_bits) - 1)
    }

    /// The higher digit: the hash's top bits.
    #[inline(always)]
    pub(super) fn high(self, e: u128) -> usize {
        (e >> (128 - self.high_bits)) as usize
    }

    /// Zeroes the counts of both digits (low first).
    pub(super) fn clear(self, counts: &mut Vec<usize>) {
        counts.clear();
        counts.resize((1 << self.low_bits) + (1 << self.high_bits), 0);
    }
}

/// Maps of fewer entries are sorted by comparison.
pub(super) const SMALL_MAP: usize = 64;

/// Puts each entry's order hash in its high 64 bits and, with `digits`, counts the
/// entries per value of each digit (counts laid out as `Digits::clear` makes them).
#[inline(always)]
pub(super) fn hash_and_count(
    order: &mut [u128],
    arena: &[u8],
    order_hash: &impl Fn(&[u8]) -> u64,
    digits: Option<(Digits, &mut [usize])>,
) {
    const PLACE: u128 = u64::MAX as u128;
    let with_hash = |e: u128| u128::from(order_hash(&arena[range_of(e)])) << 64 | (e & PLACE);
    match digits {
        None => {
            for e in order.iter_mut() {
                *e = with_hash(*e);
            }
        }
        Some((digits, counts)) => {
            let (low_counts, high_counts) = counts.split_at_mut(1 << digits.low_bits);
            for e in order.iter_mut() {
                *e = with_hash(*e);
                low_counts[digits.low(*e)] += 1;
                high_counts[digits.high(*e)] += 1;
            }
        }
    }
}

/// Turns counts per value into where each value's entries start.
pub(super) fn starts_from_counts(counts: &mut [usize]) {
    let mut start = 0;
    for count in counts {
        let n = *count;
        *count = start;
        start += n;
    }
}

/// Sorts a short slice.
#[inline]
pub(super) fn insertion_sort_by(
    items: &mut [u128],
    order: impl Fn(&u128, &u128) -> std::cmp::Ordering,
) {
    for i in 1..items.len() {
        let item = items[i];
        let mut j = i;
        while j > 0 && order(&items[j - 1], &item).is_gt() {
            items[j] = items[j - 1];
            j -= 1;
        }
        items[j] = item;
    }
}
