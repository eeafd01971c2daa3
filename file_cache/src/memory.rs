//! The memory tier: a bounded per-process map from full keys to the validated payload bytes
//! of recent entries, above the files. It holds bytes by key; it knows no codec, file or
//! site.
//!
//! Filled by file hits and by stores; a hit from it decodes the bytes exactly as a file hit
//! decodes a file's payload, so values need no `Clone` and nothing mutable is shared. The
//! files stay the truth: this tier never sees another process rewrite an entry it holds.
//!
//! Sixteen shards, chosen by the key's first byte (keys are blake3 digests, so uniform),
//! each a mutex around a hash map and a CLOCK ring: a hit sets the entry's reference bit,
//! eviction sweeps the ring, clearing set bits and evicting the first entry found clear.
//! O(1) per hit, amortized O(1) per insert; two threads hitting different keys take
//! different locks fifteen times out of sixteen, and hold one for a lookup and an `Arc`
//! clone only (decoding happens outside the lock).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

const SHARDS: usize = 16;
/// What an entry costs beyond its bytes (map slot, ring slot, `Arc` header), counted so
/// that many tiny values cannot exceed the budget by far.
const ENTRY_OVERHEAD: usize = 96;

/// What a hit from memory reports to the stats, as a file hit of the same entry would.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    /// How long the body took (µs): the time a hit saves.
    pub(crate) compute_us: u64,
    /// The size of the entry's file.
    pub(crate) file_len: u64,
    /// The id of the codec the payload is in, as its entry's header records it.
    pub(crate) codec: u8,
    /// How many of the bytes kept, before the payload, are the dependencies the entry
    /// records (encoded, opaque here): each hit re-checks them.
    pub(crate) dependencies_len: usize,
}

/// The bytes of one entry's payload, shared with hits in progress.
pub(crate) type Payload = Arc<[u8]>;

/// A bounded memory tier.
pub(crate) struct Memory {
    shards: Box<[PaddedShard]>,
    /// Largest payload kept: a sixteenth of the budget, so one value never flushes a shard.
    max_value: usize,
}

/// A shard alone on its cache lines: threads using different shards never write to a
/// line another shard's lock lives on.
#[repr(align(128))]
struct PaddedShard(Mutex<Shard>);

/// Hashes a key by eight of its bytes: keys are blake3 digests, already uniform, so
/// SipHash over all 32 bytes only cost time. Not the first eight: the first byte chose the
/// shard, so within a shard its low bits are all alike.
#[derive(Default, Clone, Copy)]
struct KeyPrefix;

impl std::hash::BuildHasher for KeyPrefix {
    type Hasher = PrefixHasher;
    fn build_hasher(&self) -> PrefixHasher {
        PrefixHasher(0)
    }
}

#[derive(Default)]
struct PrefixHasher(u64);

impl std::hash::Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // A `[u8; 32]` hashes as its length (eight bytes), then its bytes: keep eight of
        // the key's.
        if let Some(prefix) = bytes.get(8..16) {
            let mut word = [0u8; 8];
            word.copy_from_slice(prefix);
            self.0 = u64::from_le_bytes(word);
        }
    }
}

struct Shard {
    budget: usize,
    used: usize,
    map: HashMap<[u8; 32], usize, KeyPrefix>,
    ring: Vec<Slot>,
    /// Ring indices whose slot is empty.
    free: Vec<usize>,
    hand: usize,
}

struct Slot {
    key: [u8; 32],
    bytes: Option<Payload>,
    /// What the entry's file says, for the stats a hit records.
    meta: Meta,
    referenced: bool,
}

impl Memory {
    /// A tier holding at most `budget` bytes (payloads plus a small per-entry overhead).
    pub(crate) fn new(budget: usize) -> Memory {
        let shard_budget = budget / SHARDS;
        Memory {
            shards: (0..SHARDS)
                .map(|_| {
                    PaddedShard(Mutex::new(Shard {
                        budget: shard_budget,
                        used: 0,
                        map: HashMap::default(),
                        ring: Vec::new(),
                        free: Vec::new(),
                        hand: 0,
                    }))
                })
                .collect(),
            max_value: budget / SHARDS,
        }
    }

    fn shard(&self, key: &[u8; 32]) -> std::sync::MutexGuard<'_, Shard> {
        // A panic while holding a shard cannot leave it inconsistent in a way that matters
        // more than losing the cache: keep using it.
        self.shards[usize::from(key[0]) % SHARDS]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The payload stored for `key` and what its file said, marking it recently used.
    pub(crate) fn get(&self, key: &[u8; 32]) -> Option<(Payload, Meta)> {
        let mut shard = self.shard(key);
        let at = *shard.map.get(key)?;
        let slot = &mut shard.ring[at];
        slot.referenced = true;
        Some((slot.bytes.clone()?, slot.meta))
    }

    /// Whether a payload of `len` bytes is small enough to be kept.
    pub(crate) fn keeps(&self, len: usize) -> bool {
        len <= self.max_value
    }

    /// Keeps `bytes` as the payload of `key`, replacing any older one; a payload too big
    /// for the tier is not kept (and drops an older one for the same key).
    pub(crate) fn insert(&self, key: &[u8; 32], bytes: &[u8], meta: Meta) {
        let mut shard = self.shard(key);
        shard.remove(key);
        if !self.keeps(bytes.len()) {
            return;
        }
        let cost = bytes.len() + ENTRY_OVERHEAD;
        while shard.used + cost > shard.budget && shard.evict_one() {}
        if shard.used + cost > shard.budget {
            return;
        }
        shard.used += cost;
        let slot = Slot {
            key: *key,
            bytes: Some(Arc::from(bytes)),
            meta,
            // New entries start unreferenced: one that is never hit again goes first.
            referenced: false,
        };
        let at = match shard.free.pop() {
            Some(at) => {
                shard.ring[at] = slot;
                at
            }
            None => {
                shard.ring.push(slot);
                shard.ring.len() - 1
            }
        };
        shard.map.insert(*key, at);
    }

    /// Forgets `key`.
    pub(crate) fn remove(&self, key: &[u8; 32]) {
        self.shard(key).remove(key);
    }

    /// Forgets everything.
    pub(crate) fn clear(&self) {
        for shard in self.shards.iter() {
            let mut shard = shard.0.lock().unwrap_or_else(PoisonError::into_inner);
            shard.map.clear();
            shard.ring.clear();
            shard.free.clear();
            shard.hand = 0;
            shard.used = 0;
        }
    }

    /// Bytes held, overhead included (for tests).
    #[cfg(test)]
    fn used(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.lock().unwrap_or_else(PoisonError::into_inner).used)
            .sum()
    }
}

impl Shard {
    fn remove(&mut self, key: &[u8; 32]) {
        if let Some(at) = self.map.remove(key) {
            self.clear(at);
        }
    }

    fn clear(&mut self, at: usize) {
        if let Some(bytes) = self.ring[at].bytes.take() {
            self.used -= bytes.len() + ENTRY_OVERHEAD;
            self.free.push(at);
        }
    }

    /// CLOCK: sweeps from the hand, giving referenced entries a second chance; evicts the
    /// first unreferenced one. `false` when the shard is empty.
    fn evict_one(&mut self) -> bool {
        if self.map.is_empty() {
            return false;
        }
        // Two sweeps at most: the first clears every reference bit it passes.
        for _ in 0..2 * self.ring.len() {
            let at = self.hand;
            self.hand = (self.hand + 1) % self.ring.len();
            let slot = &mut self.ring[at];
            if slot.bytes.is_none() {
                continue;
            }
            if slot.referenced {
                slot.referenced = false;
                continue;
            }
            let key = slot.key;
            self.map.remove(&key);
            self.clear(at);
            return true;
        }
        false
    }
}

/// Empties the process's tier, if it has one (the clear API: entries it removes must not
/// live on in memory).
pub(crate) fn clear_global() {
    if let Some(memory) = global() {
        memory.clear();
    }
}

/// The process's tier, sized by `FILE_CACHE_MEMORY`; `None` when that is 0.
pub(crate) fn global() -> Option<&'static Memory> {
    static MEMORY: OnceLock<Option<Memory>> = OnceLock::new();
    MEMORY
        .get_or_init(|| {
            let budget = crate::config::config().memory;
            (budget > 0).then(|| Memory::new(budget))
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key in shard 0, told apart by its last byte.
    fn key(n: u8) -> [u8; 32] {
        let mut key = [0u8; 32];
        key[31] = n;
        key
    }

    #[test]
    fn keeps_and_replaces() {
        let memory = Memory::new(1 << 20);
        assert!(memory.get(&key(1)).is_none());
        memory.insert(&key(1), b"one", Meta::default());
        assert_eq!(&*memory.get(&key(1)).unwrap().0, b"one");
        memory.insert(&key(1), b"uno", Meta::default());
        assert_eq!(&*memory.get(&key(1)).unwrap().0, b"uno");
        assert_eq!(memory.used(), 3 + ENTRY_OVERHEAD);
        memory.remove(&key(1));
        assert!(memory.get(&key(1)).is_none());
        assert_eq!(memory.used(), 0);
        memory.insert(&key(2), b"two", Meta::default());
        memory.clear();
        assert!(memory.get(&key(2)).is_none());
        assert_eq!(memory.used(), 0);
    }

    #[test]
    fn budget_is_respected() {
        // 16 shards of 1,000 bytes; every key here lands in shard 0.
        let memory = Memory::new(16 * 1000);
        for n in 0..50 {
            memory.insert(&key(n), &[n; 200], Meta::default());
            assert!(memory.used() <= 1000, "{} bytes after {n}", memory.used());
        }
        // (200 + 96) * 3 = 888 fits, a fourth does not.
        let kept = (0..50).filter(|&n| memory.get(&key(n)).is_some()).count();
        assert_eq!(kept, 3);
    }

    #[test]
    fn eviction_spares_recently_hit_entries() {
        let memory = Memory::new(16 * 1000);
        for n in 0..3 {
            memory.insert(&key(n), &[n; 200], Meta::default());
        }
        // Hit 0 and 2; 1 was never hit since it was stored: it goes first.
        memory.get(&key(0));
        memory.get(&key(2));
        memory.insert(&key(3), &[3; 200], Meta::default());
        assert!(memory.get(&key(1)).is_none());
        for n in [0, 2, 3] {
            assert!(memory.get(&key(n)).is_some(), "{n} was evicted");
        }
        // Every bit is set now but 3's... which was just hit too: the sweep clears them
        // all and then evicts in ring order, starting after the last victim.
        memory.insert(&key(4), &[4; 200], Meta::default());
        let kept: Vec<u8> = (0..5).filter(|&n| memory.get(&key(n)).is_some()).collect();
        assert_eq!(kept.len(), 3);
        assert!(kept.contains(&4));
    }

    #[test]
    fn values_too_large_are_not_kept() {
        let memory = Memory::new(16 * 1000);
        memory.insert(&key(1), &[1; 100], Meta::default());
        // Over a sixteenth of the budget.
        memory.insert(&key(1), &[1; 1001], Meta::default());
        assert!(memory.get(&key(1)).is_none(), "the older value must go too");
        assert_eq!(memory.used(), 0);
        memory.insert(&key(2), &[2; 1000 - ENTRY_OVERHEAD], Meta::default());
        assert!(memory.get(&key(2)).is_some());
    }

    #[test]
    fn zero_budget_keeps_nothing() {
        let memory = Memory::new(0);
        memory.insert(&key(1), b"", Meta::default());
        assert!(memory.get(&key(1)).is_none());
    }
}
