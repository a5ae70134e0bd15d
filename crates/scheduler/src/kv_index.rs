//! The precise prefix index: which KV blocks each endpoint really holds, as its engine reports
//! them in vLLM KV events (`BlockStored` / `BlockRemoved` / `AllBlocksCleared`).
//!
//! Blocks are keyed by their tokens, not by the engine's hashes: a block's key is
//! `xxh64(le(parent key) ‖ le(token ids))` from a root `xxh64(model or adapter name)`. The event
//! carries the token ids, so the gateway never needs the engine's hash function or seed, only a
//! tokenizer that agrees with the engine (see `infergate_protocol::tokenizer`). Each endpoint
//! maps the engine's hashes to keys so evictions and parent links resolve.
//!
//! Between sending a request and hearing the engine store its blocks there is a gap (queueing,
//! prefill); requests sharing a prefix that arrive in it would miss each other. So a request's
//! keys count as held by the endpoint it was sent to for a short time ("speculative" entries)
//! until the engine's events arrive.
//!
//! Keyed by endpoint address (`host:port`), so pools sharing a model server share what it holds.
//! Pure data structure: events come in through [`KvBlockIndex::apply`] (from the ZMQ subscriber
//! in [`crate::kv_subscriber`], or in-process); one short lock per call.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use infergate_protocol::kv_events::{KvEventBatch, KvWireEvent};
use parking_lot::RwLock;
use xxhash_rust::xxh64::xxh64;

/// The root key of a model's (or adapter's) block chain.
pub fn root_key(model: &str) -> u64 {
    xxh64(model.as_bytes(), 0)
}

/// xxh64 of the parent key then the block's token ids, all little-endian, hashed in one call
/// over `buf` (reused between blocks): feeding the hasher four bytes at a time cost a fifth of a
/// precise-prefix decision.
fn block_key(buf: &mut Vec<u8>, parent: u64, tokens: &[u32]) -> u64 {
    buf.clear();
    buf.extend_from_slice(&parent.to_le_bytes());
    for t in tokens {
        buf.extend_from_slice(&t.to_le_bytes());
    }
    xxh64(buf, 0)
}

/// The keys of the full blocks of a prompt's token ids.
pub fn request_keys(model: &str, tokens: &[u32], block_size: usize, max_blocks: usize) -> Vec<u64> {
    let mut parent = root_key(model);
    let mut buf = Vec::with_capacity(8 + 4 * block_size);
    tokens
        .chunks_exact(block_size.max(1))
        .take(max_blocks)
        .map(|b| {
            parent = block_key(&mut buf, parent, b);
            parent
        })
        .collect()
}

struct EndpointBlocks {
    id: u32,
    engine_to_key: HashMap<u64, u64>,
}

#[derive(Default)]
struct State {
    endpoints: HashMap<Arc<str>, EndpointBlocks>,
    by_key: HashMap<u64, Vec<u32>>,
    speculative: HashMap<u64, Vec<(u32, u64)>>,
    /// (expiry ms, key, endpoint id), in insertion order, for purging.
    speculative_order: VecDeque<(u64, u64, u32)>,
    next_id: u32,
    block_size: usize,
}

impl State {
    fn endpoint_id(&mut self, host_port: &str) -> u32 {
        if let Some(e) = self.endpoints.get(host_port) {
            return e.id;
        }
        self.next_id += 1;
        let id = self.next_id;
        self.endpoints.insert(
            Arc::from(host_port),
            EndpointBlocks {
                id,
                engine_to_key: HashMap::new(),
            },
        );
        id
    }

    fn purge_speculative(&mut self, now_ms: u64) {
        while let Some(&(exp, key, id)) = self.speculative_order.front() {
            if exp > now_ms {
                break;
            }
            self.speculative_order.pop_front();
            if let Some(v) = self.speculative.get_mut(&key) {
                v.retain(|(i, e)| !(*i == id && *e <= now_ms));
                if v.is_empty() {
                    self.speculative.remove(&key);
                }
            }
        }
    }
}

/// Which blocks which endpoints hold.
#[derive(Default)]
pub struct KvBlockIndex {
    state: RwLock<State>,
    events: AtomicU64,
}

impl std::fmt::Debug for KvBlockIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.read();
        f.debug_struct("KvBlockIndex")
            .field("endpoints", &s.endpoints.len())
            .field("blocks", &s.by_key.len())
            .finish()
    }
}

impl KvBlockIndex {
    /// Apply one batch published by the engine at `host_port` serving `model`.
    pub fn apply(&self, host_port: &str, model: &str, batch: &KvEventBatch) {
        let mut guard = self.state.write();
        let id = guard.endpoint_id(host_port);
        let State {
            endpoints,
            by_key,
            block_size: seen_block_size,
            ..
        } = &mut *guard;
        let Some(ep) = endpoints.get_mut(host_port) else {
            return;
        };
        for event in &batch.events {
            self.events.fetch_add(1, Ordering::Relaxed);
            match event {
                KvWireEvent::BlockStored {
                    block_hashes,
                    parent_block_hash,
                    token_ids,
                    block_size,
                    lora_name,
                    ..
                } => {
                    let bs = (*block_size).max(1);
                    *seen_block_size = bs;
                    let mut parent = match parent_block_hash {
                        None => root_key(lora_name.as_deref().unwrap_or(model)),
                        Some(h) => match ep.engine_to_key.get(h) {
                            Some(k) => *k,
                            // The parent was stored before we listened: this run cannot be
                            // matched from the root anyway.
                            None => continue,
                        },
                    };
                    let mut buf = Vec::with_capacity(8 + 4 * bs);
                    for (hash, tokens) in block_hashes.iter().zip(token_ids.chunks_exact(bs)) {
                        let key = block_key(&mut buf, parent, tokens);
                        ep.engine_to_key.insert(*hash, key);
                        let holders = by_key.entry(key).or_default();
                        if !holders.contains(&id) {
                            holders.push(id);
                        }
                        parent = key;
                    }
                }
                KvWireEvent::BlockRemoved { block_hashes, .. } => {
                    for h in block_hashes {
                        if let Some(key) = ep.engine_to_key.remove(h) {
                            remove_holder(by_key, key, id);
                        }
                    }
                }
                KvWireEvent::AllBlocksCleared => {
                    for (_, key) in ep.engine_to_key.drain() {
                        remove_holder(by_key, key, id);
                    }
                }
            }
        }
    }

    /// Count `keys` as held by `host_port` until `expires_ms` (a request was just sent there).
    pub fn speculate(&self, host_port: &str, keys: &[u64], now_ms: u64, expires_ms: u64) {
        if keys.is_empty() || expires_ms <= now_ms {
            return;
        }
        let mut s = self.state.write();
        s.purge_speculative(now_ms);
        let id = s.endpoint_id(host_port);
        for &k in keys {
            let v = s.speculative.entry(k).or_default();
            match v.iter_mut().find(|(i, _)| *i == id) {
                Some(e) => e.1 = expires_ms,
                None => v.push((id, expires_ms)),
            }
            s.speculative_order.push_back((expires_ms, k, id));
        }
    }

    /// For each endpoint address, how many of `keys` it holds consecutively from the first
    /// (`out[i]` belongs to `host_ports[i]`).
    pub fn matched_blocks(
        &self,
        keys: &[u64],
        host_ports: &[&str],
        now_ms: u64,
        out: &mut [usize],
    ) {
        out.iter_mut().for_each(|o| *o = 0);
        if keys.is_empty() {
            return;
        }
        let s = self.state.read();
        let ids: Vec<Option<u32>> = host_ports
            .iter()
            .map(|hp| s.endpoints.get(*hp).map(|e| e.id))
            .collect();
        for (i, k) in keys.iter().enumerate() {
            let held = s.by_key.get(k);
            let spec = s.speculative.get(k);
            if held.is_none() && spec.is_none() {
                break;
            }
            let mut advanced = false;
            for (pos, id) in ids.iter().enumerate() {
                let Some(id) = id else { continue };
                if out[pos] != i {
                    continue;
                }
                let has = held.is_some_and(|h| h.contains(id))
                    || spec.is_some_and(|v| v.iter().any(|(x, e)| x == id && *e > now_ms));
                if has {
                    out[pos] += 1;
                    advanced = true;
                }
            }
            if !advanced {
                break;
            }
        }
    }

    /// The engines' block size, once an event has said it.
    pub fn block_size(&self) -> Option<usize> {
        let bs = self.state.read().block_size;
        (bs > 0).then_some(bs)
    }

    /// Blocks known per endpoint (tests, debugging).
    pub fn blocks_of(&self, host_port: &str) -> usize {
        self.state
            .read()
            .endpoints
            .get(host_port)
            .map_or(0, |e| e.engine_to_key.len())
    }

    /// Events applied so far.
    pub fn events_applied(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }
}

fn remove_holder(by_key: &mut HashMap<u64, Vec<u32>>, key: u64, id: u32) {
    if let Some(v) = by_key.get_mut(&key) {
        v.retain(|x| *x != id);
        if v.is_empty() {
            by_key.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(hashes: &[u64], parent: Option<u64>, tokens: &[u32], bs: usize) -> KvWireEvent {
        KvWireEvent::BlockStored {
            block_hashes: hashes.to_vec(),
            parent_block_hash: parent,
            token_ids: tokens.to_vec(),
            block_size: bs,
            lora_id: None,
            medium: None,
            lora_name: None,
        }
    }

    fn batch(events: Vec<KvWireEvent>) -> KvEventBatch {
        KvEventBatch {
            ts: 0.0,
            events,
            data_parallel_rank: None,
        }
    }

    #[test]
    fn stored_blocks_match_requests_by_tokens() {
        let idx = KvBlockIndex::default();
        // engine hashes are opaque: 100, 101 (parent link), then 102 stored later
        idx.apply(
            "a:1",
            "m",
            &batch(vec![stored(&[100, 101], None, &[1, 2, 3, 4], 2)]),
        );
        idx.apply(
            "a:1",
            "m",
            &batch(vec![stored(&[102], Some(101), &[5, 6], 2)]),
        );
        idx.apply("b:1", "m", &batch(vec![stored(&[7], None, &[1, 2], 2)]));
        let keys = request_keys("m", &[1, 2, 3, 4, 5, 6, 7], 2, 100);
        assert_eq!(keys.len(), 3);
        let mut out = [0; 3];
        idx.matched_blocks(&keys, &["a:1", "b:1", "c:1"], 0, &mut out);
        assert_eq!(out, [3, 1, 0]);
        assert_eq!(idx.block_size(), Some(2));
        // another model's chain never matches
        let other = request_keys("m2", &[1, 2], 2, 100);
        idx.matched_blocks(&other, &["a:1", "b:1", "c:1"], 0, &mut out);
        assert_eq!(out, [0, 0, 0]);
    }

    #[test]
    fn removals_and_clears() {
        let idx = KvBlockIndex::default();
        idx.apply(
            "a:1",
            "m",
            &batch(vec![stored(&[100, 101], None, &[1, 2, 3, 4], 2)]),
        );
        let keys = request_keys("m", &[1, 2, 3, 4], 2, 100);
        let mut out = [0];
        idx.apply(
            "a:1",
            "m",
            &batch(vec![KvWireEvent::BlockRemoved {
                block_hashes: vec![101],
                medium: None,
            }]),
        );
        idx.matched_blocks(&keys, &["a:1"], 0, &mut out);
        assert_eq!(out, [1]);
        idx.apply("a:1", "m", &batch(vec![KvWireEvent::AllBlocksCleared]));
        idx.matched_blocks(&keys, &["a:1"], 0, &mut out);
        assert_eq!(out, [0]);
        assert_eq!(idx.blocks_of("a:1"), 0);
    }

    #[test]
    fn adapters_have_their_own_chain() {
        let idx = KvBlockIndex::default();
        let e = KvWireEvent::BlockStored {
            block_hashes: vec![1],
            parent_block_hash: None,
            token_ids: vec![9, 9],
            block_size: 2,
            lora_id: Some(1),
            medium: None,
            lora_name: Some("sql".into()),
        };
        idx.apply("a:1", "base", &batch(vec![e]));
        let mut out = [0];
        idx.matched_blocks(&request_keys("sql", &[9, 9], 2, 10), &["a:1"], 0, &mut out);
        assert_eq!(out, [1]);
        idx.matched_blocks(&request_keys("base", &[9, 9], 2, 10), &["a:1"], 0, &mut out);
        assert_eq!(out, [0]);
    }

    #[test]
    fn speculative_entries_expire() {
        let idx = KvBlockIndex::default();
        let keys = request_keys("m", &[1, 2, 3, 4], 2, 100);
        idx.speculate("a:1", &keys, 1000, 3000);
        let mut out = [0; 2];
        idx.matched_blocks(&keys, &["a:1", "b:1"], 2000, &mut out);
        assert_eq!(out, [2, 0]);
        idx.matched_blocks(&keys, &["a:1", "b:1"], 3000, &mut out);
        assert_eq!(out, [0, 0]);
        idx.speculate("b:1", &keys[..1], 4000, 5000); // purges a:1's expired entries
        idx.matched_blocks(&keys, &["a:1", "b:1"], 4500, &mut out);
        assert_eq!(out, [0, 1]);
    }

    /// A block's key is xxh64 over the parent key and the token ids as one little-endian
    /// stream: hashing a buffer at once gives what feeding a streaming hasher piece by piece
    /// gives (the keys of earlier versions).
    #[test]
    fn block_keys_hash_parent_and_tokens_as_one_stream() {
        let tokens: Vec<u32> = (0..40u32).map(|i| i.wrapping_mul(2_654_435_761)).collect();
        let keys = request_keys("m", &tokens, 16, 8);
        assert_eq!(keys.len(), 2);
        let mut parent = root_key("m");
        for (block, key) in tokens.chunks_exact(16).zip(&keys) {
            let mut h = xxhash_rust::xxh64::Xxh64::new(0);
            h.update(&parent.to_le_bytes());
            for t in block {
                h.update(&t.to_le_bytes());
            }
            assert_eq!(h.digest(), *key);
            parent = *key;
        }
    }
}
