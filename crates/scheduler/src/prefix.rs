//! The approximate prefix index (the anchor's `prefix-cache-scorer`): the gateway remembers which
//! prompt prefixes it sent to which endpoint and assumes they are still cached there.
//!
//! Prompts are cut into fixed-size character blocks (16 tokens × 4 characters by default) and
//! hashed as a chain (`h0 = xxh64(model)`, `hᵢ = xxh64(blockᵢ ‖ le(hᵢ₋₁))`), so a block's hash
//! stands for the whole prefix up to it. Each endpoint keeps an LRU of the hashes it was sent
//! (capacity ≈ its KV blocks); `hash → endpoints` answers "who has this prefix". A lookup walks
//! the request's hashes in order and counts, per endpoint, the consecutive blocks it holds.
//!
//! Pure data structure; one short lock per lookup or update, never held across an await.

use std::collections::HashMap;
use std::num::NonZeroUsize;

use lru::LruCache;
use parking_lot::Mutex;
use xxhash_rust::xxh64::Xxh64;

/// How a prompt is cut into blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixGeometry {
    /// Characters (bytes) per block.
    pub block_chars: usize,
    /// At most this many blocks are hashed.
    pub max_blocks: usize,
}

/// The chained block hashes of `prompt` for `model` (full blocks only).
pub fn prompt_hashes(geometry: PrefixGeometry, model: &str, prompt: &[u8]) -> Vec<u64> {
    let bs = geometry.block_chars.max(1);
    let mut prev = xxhash_rust::xxh64::xxh64(model.as_bytes(), 0);
    prompt
        .chunks_exact(bs)
        .take(geometry.max_blocks)
        .map(|block| {
            let mut h = Xxh64::new(0);
            h.update(block);
            h.update(&prev.to_le_bytes());
            prev = h.digest();
            prev
        })
        .collect()
}

#[derive(Default)]
struct State {
    by_hash: HashMap<u64, Vec<u32>>,
    per_endpoint: HashMap<u32, LruCache<u64, ()>>,
}

/// Which endpoints were sent which prefixes.
#[derive(Default)]
pub struct ApproxPrefixIndex {
    state: Mutex<State>,
}

impl std::fmt::Debug for ApproxPrefixIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApproxPrefixIndex")
            .field("hashes", &self.len())
            .finish()
    }
}

impl ApproxPrefixIndex {
    /// For each endpoint uid in `uids`, how many of `hashes` it holds consecutively from the
    /// first (`out[i]` belongs to `uids[i]`).
    pub fn matched_blocks(&self, hashes: &[u64], uids: &[u32], out: &mut [usize]) {
        out.iter_mut().for_each(|o| *o = 0);
        if hashes.is_empty() || uids.is_empty() {
            return;
        }
        let state = self.state.lock();
        for (i, h) in hashes.iter().enumerate() {
            let Some(holders) = state.by_hash.get(h) else {
                break;
            };
            let mut advanced = false;
            for holder in holders {
                if let Some(pos) = uids.iter().position(|u| u == holder) {
                    if out[pos] == i {
                        out[pos] += 1;
                        advanced = true;
                    }
                }
            }
            if !advanced {
                break;
            }
        }
    }

    /// The endpoint `uid` was sent a request with these prefix hashes; it keeps at most
    /// `capacity` hashes (least recently sent are forgotten first).
    pub fn record(&self, uid: u32, hashes: &[u64], capacity: usize) {
        if hashes.is_empty() {
            return;
        }
        let cap = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        let mut guard = self.state.lock();
        let State {
            by_hash,
            per_endpoint,
        } = &mut *guard;
        let lru = per_endpoint
            .entry(uid)
            .or_insert_with(|| LruCache::new(cap));
        while lru.len() > cap.get() {
            if let Some((old, ())) = lru.pop_lru() {
                remove_holder(by_hash, old, uid);
            }
        }
        if lru.cap() != cap {
            lru.resize(cap);
        }
        for &h in hashes {
            if let Some((old, ())) = lru.push(h, ()) {
                if old != h {
                    remove_holder(by_hash, old, uid);
                }
            }
            let holders = by_hash.entry(h).or_default();
            if !holders.contains(&uid) {
                holders.push(uid);
            }
        }
    }

    /// Drop everything known about an endpoint (it left the pool).
    pub fn forget_endpoint(&self, uid: u32) {
        let mut guard = self.state.lock();
        let State {
            by_hash,
            per_endpoint,
        } = &mut *guard;
        if let Some(lru) = per_endpoint.remove(&uid) {
            for (h, ()) in lru.iter() {
                remove_holder(by_hash, *h, uid);
            }
        }
    }

    /// Endpoints the index knows.
    pub fn endpoint_uids(&self) -> Vec<u32> {
        self.state.lock().per_endpoint.keys().copied().collect()
    }

    /// Distinct hashes held by any endpoint.
    pub fn len(&self) -> usize {
        self.state.lock().by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn remove_holder(by_hash: &mut HashMap<u64, Vec<u32>>, h: u64, uid: u32) {
    if let Some(v) = by_hash.get_mut(&h) {
        v.retain(|x| *x != uid);
        if v.is_empty() {
            by_hash.remove(&h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: PrefixGeometry = PrefixGeometry {
        block_chars: 4,
        max_blocks: 256,
    };

    #[test]
    fn hashes_chain_and_depend_on_the_model() {
        let a = prompt_hashes(G, "m", b"aaaabbbbcccc");
        let b = prompt_hashes(G, "m", b"aaaabbbbdddd");
        assert_eq!(a.len(), 3);
        assert_eq!(a[..2], b[..2]);
        assert_ne!(a[2], b[2]);
        // the same block content after a different prefix is a different hash
        let c = prompt_hashes(G, "m", b"xxxxbbbb");
        assert_ne!(c[1], a[1]);
        assert_ne!(
            prompt_hashes(G, "other", b"aaaa"),
            prompt_hashes(G, "m", b"aaaa")
        );
        assert!(
            prompt_hashes(G, "m", b"aaa").is_empty(),
            "partial blocks are not hashed"
        );
        let capped = PrefixGeometry { max_blocks: 2, ..G };
        assert_eq!(prompt_hashes(capped, "m", b"aaaabbbbcccc").len(), 2);
    }

    #[test]
    fn consecutive_matches_per_endpoint() {
        let idx = ApproxPrefixIndex::default();
        let p = prompt_hashes(G, "m", b"aaaabbbbccccdddd");
        idx.record(1, &p[..2], 100);
        idx.record(2, &p, 100);
        idx.record(3, &p[1..], 100); // holds later blocks but not the first: no match
        let mut out = [0; 4];
        idx.matched_blocks(&p, &[1, 2, 3, 4], &mut out);
        assert_eq!(out, [2, 4, 0, 0]);
    }

    #[test]
    fn lru_capacity_forgets_the_oldest() {
        let idx = ApproxPrefixIndex::default();
        let a = prompt_hashes(G, "m", b"aaaabbbb");
        let b = prompt_hashes(G, "m", b"xxxxyyyy");
        idx.record(1, &a, 2);
        idx.record(1, &b, 2);
        let mut out = [0];
        idx.matched_blocks(&a, &[1], &mut out);
        assert_eq!(out, [0]);
        idx.matched_blocks(&b, &[1], &mut out);
        assert_eq!(out, [2]);
        assert_eq!(idx.len(), 2);
        idx.forget_endpoint(1);
        assert!(idx.is_empty());
    }
}
