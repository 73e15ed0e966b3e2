//! The stored hashes of the tree, held in memory from stored index 0 up to a budget.
//!
//! An inclusion or consistency proof reads one stored hash per tree level. In a small
//! log those reads hit RocksDB's memtable and block cache; at millions of entries they
//! scatter over the store and most become block-cache misses, so proof latency grows
//! with the log (7.5x from 10k to 10M entries, `BENCHMARKS.md`). Holding the hashes in
//! memory makes a proof cost the same at any size that fits the budget: 32 bytes per
//! stored hash, about 64 bytes per entry (640 MB at 10M entries).
//!
//! The cache is a prefix, `[0, len)` in stored-hash order (the order hashes are
//! appended in), so it needs no index and no eviction: once the budget is reached it
//! stops growing, and the hashes past it (the newest ones) are read from RocksDB, where
//! they sit in the memtable and the newest files. It fills from both ends of time: a
//! loader copies the stored hashes in order after start-up, and every committed batch
//! appends the hashes it wrote when they continue the prefix. Every value in it is a
//! durable hash below a signed tree size, so it never needs invalidating.
//!
//! Growth is by fixed chunks so that a reader never waits behind a reallocation that
//! copies hundreds of megabytes.

use pedigree_core::merkle::Hash;
use std::sync::RwLock;

/// Hashes per chunk (2 MiB).
const CHUNK: usize = 1 << 16;

/// A prefix of the stored hashes, in memory.
pub(crate) struct HashCache {
    /// Most hashes held.
    limit: u64,
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Full chunks, then the chunk being filled; each has capacity [`CHUNK`].
    chunks: Vec<Vec<Hash>>,
    len: u64,
}

impl HashCache {
    /// A cache of at most `budget_bytes` of hashes (0 disables it).
    pub(crate) fn new(budget_bytes: u64) -> Self {
        Self {
            limit: budget_bytes / 32,
            inner: RwLock::new(Inner::default()),
        }
    }

    /// How many stored hashes, from index 0, are held.
    pub(crate) fn len(&self) -> u64 {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).len
    }

    /// Most hashes this cache will hold.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// Fills `out[i]` with the hash at `indexes[i]` where it is held and still empty.
    pub(crate) fn fill(&self, indexes: &[u64], out: &mut [Option<Hash>]) {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        if inner.len == 0 {
            return;
        }
        for (idx, slot) in indexes.iter().zip(out.iter_mut()) {
            if slot.is_none() && *idx < inner.len {
                let i = *idx as usize;
                *slot = Some(inner.chunks[i / CHUNK][i % CHUNK]);
            }
        }
    }

    /// Offers `hashes`, the stored hashes at indexes `start..`, to the cache. The part
    /// that continues the prefix is appended (up to the budget); anything else is
    /// ignored, so callers may offer hashes the cache already holds, or cannot hold yet.
    pub(crate) fn offer(&self, start: u64, hashes: &[Hash]) {
        let end = start + hashes.len() as u64;
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if inner.len < start || inner.len >= end.min(self.limit) {
            return;
        }
        let skip = (inner.len - start) as usize;
        let take = (end.min(self.limit) - inner.len) as usize;
        for h in &hashes[skip..skip + take] {
            if inner.chunks.last().is_none_or(|c| c.len() == CHUNK) {
                inner.chunks.push(Vec::with_capacity(CHUNK));
            }
            inner
                .chunks
                .last_mut()
                .expect("a chunk was just ensured")
                .push(*h);
        }
        inner.len += take as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u64) -> Hash {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&i.to_be_bytes());
        Hash(b)
    }

    fn hashes(range: std::ops::Range<u64>) -> Vec<Hash> {
        range.map(h).collect()
    }

    fn get(cache: &HashCache, idx: u64) -> Option<Hash> {
        let mut out = [None];
        cache.fill(&[idx], &mut out);
        out[0]
    }

    #[test]
    fn holds_a_prefix_and_ignores_gaps_and_repeats() {
        let cache = HashCache::new(32 * 1_000_000);
        cache.offer(10, &hashes(10..20));
        assert_eq!(cache.len(), 0, "a gap after the prefix is not cached");
        cache.offer(0, &hashes(0..15));
        cache.offer(5, &hashes(5..25));
        assert_eq!(cache.len(), 25);
        for i in 0..25 {
            assert_eq!(get(&cache, i), Some(h(i)));
        }
        assert_eq!(get(&cache, 25), None);
    }

    #[test]
    fn grows_across_chunks_and_stops_at_the_budget() {
        let limit = CHUNK as u64 * 2 + 7;
        let cache = HashCache::new(limit * 32);
        let all = hashes(0..limit + 100);
        for part in all.chunks(1000).enumerate() {
            cache.offer(part.0 as u64 * 1000, part.1);
        }
        assert_eq!(cache.len(), limit);
        for i in [0, CHUNK as u64 - 1, CHUNK as u64, limit - 1] {
            assert_eq!(get(&cache, i), Some(h(i)));
        }
        assert_eq!(get(&cache, limit), None);
    }

    #[test]
    fn fill_keeps_values_already_found() {
        let cache = HashCache::new(32 * 100);
        cache.offer(0, &hashes(0..10));
        let mut out = [Some(h(99)), None, None];
        cache.fill(&[3, 4, 50], &mut out);
        assert_eq!(out, [Some(h(99)), Some(h(4)), None]);
    }

    #[test]
    fn a_zero_budget_disables_it() {
        let cache = HashCache::new(0);
        cache.offer(0, &hashes(0..10));
        assert_eq!(cache.len(), 0);
    }
}
