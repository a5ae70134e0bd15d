//! The simulated prefix (KV) cache of one replica.
//!
//! Owns block residency: prompts are cut into `block-size`-token blocks, each identified by a
//! chained hash (hash of the parent block's hash and the block's token ids, seeded by
//! `--hash-seed`; a LoRA adapter's name seeds the chain root so adapters never share blocks).
//! Resident blocks are reference-counted by the running requests holding them; blocks nobody holds
//! stay resident in an LRU and are evicted least-recently-released first when space is needed.
//! Capacity is `--kv-cache-size` blocks, shared with the non-cacheable blocks running requests
//! also occupy (the partial last prompt block and the output tokens).
//!
//! As in vLLM, only full prompt blocks are cached, and a hit never covers the prompt's last token
//! (it must be recomputed to produce logits), so a block-aligned prompt reuses all but its last
//! block.
//!
//! Every residency change is described by a [`KvEvent`] sent to subscribers
//! ([`KvCache::subscribe`]); with no subscriber no event is built. Publishing them as vLLM KV
//! events on the network is someone else's job. This module never blocks on I/O and never holds
//! its lock across an await.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;
use tokio::sync::broadcast;
use xxhash_rust::xxh64::xxh64;

/// Events buffered per subscriber before a slow one starts missing them (it sees `Lagged`).
pub const EVENT_CHANNEL_CAPACITY: usize = 4096;

/// A change in which blocks are resident (vLLM's KV cache event vocabulary).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvEvent {
    /// Consecutive blocks of one prompt became resident.
    BlockStored {
        /// Chained hashes of the stored blocks, in prompt order.
        block_hashes: Vec<u64>,
        /// Hash of the block before the first stored one (`None` at the start of the prompt).
        parent_block_hash: Option<u64>,
        /// The token ids of the stored blocks (`block_hashes.len() × block_size`).
        token_ids: Vec<u32>,
        block_size: usize,
        /// The LoRA adapter the blocks belong to, if any.
        lora_name: Option<Arc<str>>,
    },
    /// Blocks were evicted.
    BlockRemoved { block_hashes: Vec<u64> },
    /// The whole cache was reset.
    AllBlocksCleared,
}

/// Prefix-cache settings.
#[derive(Clone, Debug)]
pub struct KvCacheConfig {
    /// Tokens per block.
    pub block_size: usize,
    /// Capacity in blocks.
    pub capacity: usize,
    /// `--hash-seed` (vLLM's PYTHONHASHSEED).
    pub hash_seed: String,
}

/// One replica's prefix cache.
pub struct KvCache {
    block_size: usize,
    capacity: usize,
    seed: u64,
    state: Mutex<KvState>,
    used_blocks: AtomicUsize,
    events: broadcast::Sender<KvEvent>,
}

struct KvState {
    /// Resident blocks → number of running requests holding each.
    blocks: HashMap<u64, u32>,
    /// Resident blocks nobody holds; the least recently released is evicted first.
    free: LruCache<u64, ()>,
    /// Non-cacheable blocks in use by running requests.
    private_blocks: usize,
}

impl KvState {
    fn used(&self) -> usize {
        self.blocks.len() - self.free.len() + self.private_blocks
    }

    /// Evicts free blocks until `extra` more blocks fit; false if not enough could be evicted.
    fn make_room(&mut self, capacity: usize, extra: usize, removed: &mut Vec<u64>) -> bool {
        while self.blocks.len() + self.private_blocks + extra > capacity {
            let Some((hash, ())) = self.free.pop_lru() else {
                return false;
            };
            self.blocks.remove(&hash);
            removed.push(hash);
        }
        true
    }
}

/// The blocks one running request holds; dropping it releases them.
pub struct KvAllocation {
    cache: Arc<KvCache>,
    held: Vec<u64>,
    private_blocks: usize,
    cached_tokens: usize,
}

impl KvAllocation {
    /// Prompt tokens served from the cache (a multiple of the block size).
    pub fn cached_tokens(&self) -> usize {
        self.cached_tokens
    }
}

impl Drop for KvAllocation {
    fn drop(&mut self) {
        self.cache.release(&self.held, self.private_blocks);
    }
}

impl KvCache {
    pub fn new(config: &KvCacheConfig) -> Arc<Self> {
        let (events, _) = broadcast::channel(EVENT_CHANNEL_CAPACITY);
        Arc::new(Self {
            block_size: config.block_size.max(1),
            capacity: config.capacity.max(1),
            seed: xxh64(config.hash_seed.as_bytes(), 0),
            state: Mutex::new(KvState {
                blocks: HashMap::new(),
                free: LruCache::unbounded(),
                private_blocks: 0,
            }),
            used_blocks: AtomicUsize::new(0),
            events,
        })
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// A receiver of every future [`KvEvent`].
    pub fn subscribe(&self) -> broadcast::Receiver<KvEvent> {
        self.events.subscribe()
    }

    /// Fraction of the capacity in use by running requests, in `[0, 1]`.
    pub fn usage(&self) -> f64 {
        (self.used_blocks.load(Ordering::Relaxed) as f64 / self.capacity as f64).min(1.0)
    }

    /// Number of resident blocks (held or free).
    pub fn resident_blocks(&self) -> usize {
        self.state.lock().blocks.len()
    }

    /// Chained hashes of the full blocks of `tokens`.
    pub fn block_hashes(&self, tokens: &[u32], lora: Option<&str>) -> Vec<u64> {
        let mut parent = xxh64(lora.unwrap_or("").as_bytes(), self.seed);
        let mut buf = Vec::with_capacity(8 + 4 * self.block_size);
        tokens
            .chunks_exact(self.block_size)
            .map(|block| {
                buf.clear();
                buf.extend_from_slice(&parent.to_le_bytes());
                for t in block {
                    buf.extend_from_slice(&t.to_le_bytes());
                }
                parent = xxh64(&buf, self.seed);
                parent
            })
            .collect()
    }

    /// How many prompt tokens would be served from the cache now (no state change).
    pub fn cached_tokens(&self, tokens: &[u32], lora: Option<&str>) -> usize {
        let hashes = self.block_hashes(tokens, lora);
        let eligible = tokens.len().saturating_sub(1) / self.block_size;
        let state = self.state.lock();
        hashes
            .iter()
            .take(eligible)
            .take_while(|h| state.blocks.contains_key(h))
            .count()
            * self.block_size
    }

    /// Admits a request: looks up its cached prefix, makes its prompt blocks resident and holds
    /// them, and reserves the non-cacheable blocks for the rest of the prompt and `output_tokens`.
    pub fn allocate(
        self: &Arc<Self>,
        tokens: &[u32],
        lora: Option<&Arc<str>>,
        output_tokens: usize,
    ) -> KvAllocation {
        let bs = self.block_size;
        let hashes = self.block_hashes(tokens, lora.map(|l| &**l));
        let eligible = tokens.len().saturating_sub(1) / bs;
        let total_blocks = (tokens.len() + output_tokens).div_ceil(bs);
        let emit = self.events.receiver_count() > 0;

        let mut held = Vec::with_capacity(hashes.len());
        let mut removed = Vec::new();
        let mut stored_runs: Vec<(usize, usize)> = Vec::new();
        let mut run_start: Option<usize> = None;
        let mut hits = 0;
        let mut hitting = true;

        let mut state = self.state.lock();
        for (i, &hash) in hashes.iter().enumerate() {
            if let Some(refs) = state.blocks.get_mut(&hash) {
                *refs += 1;
                if *refs == 1 {
                    state.free.pop(&hash);
                }
                if hitting && i < eligible {
                    hits += 1;
                }
                if let Some(start) = run_start.take() {
                    stored_runs.push((start, i));
                }
            } else {
                hitting = false;
                if !state.make_room(self.capacity, 1, &mut removed) {
                    // Everything resident is in use: the rest of the prompt is not cached.
                    break;
                }
                state.blocks.insert(hash, 1);
                run_start.get_or_insert(i);
            }
            held.push(hash);
        }
        if let Some(start) = run_start {
            stored_runs.push((start, held.len()));
        }
        let private_blocks = total_blocks.saturating_sub(held.len());
        // Best effort: if running requests already hold everything, the cache is overcommitted
        // and reports 100% usage rather than refusing the request.
        state.make_room(self.capacity, private_blocks, &mut removed);
        state.private_blocks += private_blocks;
        self.used_blocks.store(state.used(), Ordering::Relaxed);

        if emit {
            if !removed.is_empty() {
                let _ = self.events.send(KvEvent::BlockRemoved {
                    block_hashes: removed,
                });
            }
            for (start, end) in stored_runs {
                let _ = self.events.send(KvEvent::BlockStored {
                    block_hashes: hashes[start..end].to_vec(),
                    parent_block_hash: start.checked_sub(1).map(|p| hashes[p]),
                    token_ids: tokens[start * bs..end * bs].to_vec(),
                    block_size: bs,
                    lora_name: lora.cloned(),
                });
            }
        }
        drop(state);

        KvAllocation {
            cache: Arc::clone(self),
            held,
            private_blocks,
            cached_tokens: hits * bs,
        }
    }

    fn release(&self, held: &[u64], private_blocks: usize) {
        let mut state = self.state.lock();
        // Release the tail first so the prompt's first blocks are the most recently used and are
        // evicted last (they are the most shareable).
        for hash in held.iter().rev() {
            if let Some(refs) = state.blocks.get_mut(hash) {
                *refs = refs.saturating_sub(1);
                if *refs == 0 {
                    state.free.put(*hash, ());
                }
            }
        }
        state.private_blocks = state.private_blocks.saturating_sub(private_blocks);
        self.used_blocks.store(state.used(), Ordering::Relaxed);
    }

    /// Drops every resident block (vLLM's `reset_prefix_cache`). Refused (false) while running
    /// requests hold blocks.
    pub fn clear(&self) -> bool {
        let mut state = self.state.lock();
        if state.blocks.len() != state.free.len() || state.private_blocks != 0 {
            return false;
        }
        state.blocks.clear();
        state.free.clear();
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(KvEvent::AllBlocksCleared);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(capacity: usize) -> Arc<KvCache> {
        KvCache::new(&KvCacheConfig {
            block_size: 4,
            capacity,
            hash_seed: String::new(),
        })
    }

    fn toks(range: std::ops::Range<u32>) -> Vec<u32> {
        range.collect()
    }

    #[test]
    fn second_identical_prompt_hits_all_but_the_last_block() {
        let c = cache(100);
        let prompt = toks(0..12); // three full blocks, block-aligned
        assert_eq!(c.allocate(&prompt, None, 0).cached_tokens(), 0);
        // the last token must be recomputed, so the last block of an aligned prompt is not a hit
        assert_eq!(c.allocate(&prompt, None, 0).cached_tokens(), 8);
        let longer = toks(0..13);
        assert_eq!(c.allocate(&longer, None, 0).cached_tokens(), 12);
    }

    #[test]
    fn shared_prefix_hits_until_the_first_difference() {
        let c = cache(100);
        let mut a = toks(0..8);
        a.extend([100, 101, 102, 103, 104]);
        let mut b = toks(0..8);
        b.extend([200, 201, 202, 203, 204]);
        drop(c.allocate(&a, None, 0));
        assert_eq!(c.cached_tokens(&b, None), 8);
        assert_eq!(c.allocate(&b, None, 0).cached_tokens(), 8);
        // a block equal in content but at a different position is not a hit (chained hashes)
        let shifted: Vec<u32> = [9].into_iter().chain(0..8).collect();
        assert_eq!(c.cached_tokens(&shifted, None), 0);
    }

    #[test]
    fn lora_adapters_do_not_share_blocks_with_the_base_model() {
        let c = cache(100);
        let prompt = toks(0..9);
        drop(c.allocate(&prompt, None, 0));
        let lora: Arc<str> = Arc::from("sql");
        assert_eq!(c.allocate(&prompt, Some(&lora), 0).cached_tokens(), 0);
        assert_eq!(c.allocate(&prompt, Some(&lora), 0).cached_tokens(), 8);
    }

    /// Cached tokens of `prompt` followed by one more token (so every full block is eligible).
    fn probe(c: &KvCache, prompt: &[u32]) -> usize {
        c.cached_tokens(&[prompt, &[999]].concat(), None)
    }

    #[test]
    fn least_recently_released_blocks_are_evicted_first() {
        let c = cache(4);
        let a = toks(0..8); // 2 full blocks
        let b = toks(100..108);
        let d = toks(200..208);
        drop(c.allocate(&a, None, 0));
        drop(c.allocate(&b, None, 0));
        assert_eq!(c.resident_blocks(), 4);
        drop(c.allocate(&d, None, 0)); // needs room: evicts a's blocks, not b's
        assert_eq!(probe(&c, &a), 0);
        assert_eq!(probe(&c, &b), 8);
        assert_eq!(probe(&c, &d), 8);
        // using b again makes it most recent; the next newcomer evicts d
        drop(c.allocate(&b, None, 0));
        drop(c.allocate(&a, None, 0));
        assert_eq!(probe(&c, &b), 8);
        assert_eq!(probe(&c, &d), 0);
    }

    #[test]
    fn blocks_of_running_requests_are_never_evicted() {
        let c = cache(4);
        let a = toks(0..8);
        let held = c.allocate(&a, None, 0);
        for i in 1..10u32 {
            drop(c.allocate(&toks(i * 100..i * 100 + 8), None, 0));
        }
        assert_eq!(probe(&c, &a), 8);
        drop(held);
    }

    #[test]
    fn usage_counts_running_requests_including_output_blocks() {
        let c = cache(10);
        assert_eq!(c.usage(), 0.0);
        let first = c.allocate(&toks(0..8), None, 8); // 2 cached + 2 private blocks
        assert!((c.usage() - 0.4).abs() < 1e-9);
        let second = c.allocate(&toks(0..8), None, 4); // shares 2 blocks, 1 private
        assert!((c.usage() - 0.5).abs() < 1e-9);
        drop(first);
        drop(second);
        assert_eq!(
            c.usage(),
            0.0,
            "released blocks stay resident but are not in use"
        );
        assert_eq!(c.resident_blocks(), 2);
        // overcommit is reported as full, not more
        let big = c.allocate(&toks(0..4), None, 400);
        assert_eq!(c.usage(), 1.0);
        drop(big);
    }

    #[test]
    fn hashes_are_chained_and_seeded() {
        let a = cache(10);
        let other = KvCache::new(&KvCacheConfig {
            block_size: 4,
            capacity: 10,
            hash_seed: "42".into(),
        });
        let h1 = a.block_hashes(&toks(0..8), None);
        let h2 = a.block_hashes(&toks(0..12), None);
        assert_eq!(h1[..], h2[..2]);
        assert_ne!(h1, other.block_hashes(&toks(0..8), None));
        assert_eq!(a.block_hashes(&toks(0..3), None), Vec::<u64>::new());
    }

    #[test]
    fn events_describe_stores_evictions_and_clears() {
        let c = cache(2);
        let mut rx = c.subscribe();
        let a = toks(0..8);
        drop(c.allocate(&a, None, 0));
        let hashes = c.block_hashes(&a, None);
        assert_eq!(
            rx.try_recv().unwrap(),
            KvEvent::BlockStored {
                block_hashes: hashes.clone(),
                parent_block_hash: None,
                token_ids: a,
                block_size: 4,
                lora_name: None,
            }
        );
        // a prompt extending a's first block stores only its new block, with the right parent
        let mut b = toks(0..4);
        b.extend([50, 51, 52, 53]);
        drop(c.allocate(&b, None, 0));
        let KvEvent::BlockRemoved { block_hashes } = rx.try_recv().unwrap() else {
            panic!("expected removal")
        };
        assert_eq!(block_hashes, vec![hashes[1]]);
        let KvEvent::BlockStored {
            parent_block_hash,
            token_ids,
            ..
        } = rx.try_recv().unwrap()
        else {
            panic!("expected store")
        };
        assert_eq!(parent_block_hash, Some(hashes[0]));
        assert_eq!(token_ids, vec![50, 51, 52, 53]);
        // clearing is refused while blocks are held, then succeeds
        let held = c.allocate(&b, None, 0);
        assert!(!c.clear());
        drop(held);
        assert!(c.clear());
        assert_eq!(rx.try_recv().unwrap(), KvEvent::AllBlocksCleared);
        assert_eq!(c.resident_blocks(), 0);
        assert!(rx.try_recv().is_err());
    }
}
