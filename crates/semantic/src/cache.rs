//! The semantic cache: complete answers keyed by prompt, looked up exactly and then by meaning.
//!
//! Entries are partitioned by [`PartitionKey`] — tenant, requested model and a fingerprint of
//! everything else that changes the answer (system prompt and earlier turns, sampling
//! parameters, tools, response format). A lookup never leaves its partition, and partitions are
//! compared by their full key (not only its hash), so one tenant's answer cannot be served to
//! another. Within a partition: an exact match on the prompt hash first, then the nearest
//! stored prompt by cosine similarity if it reaches the threshold *and* passes a lexical check
//! that it asks the same thing ([`crate::verify`]: numbers, negation, names and their order,
//! the kind of answer, a swapped key word); if the nearest fails, the next few candidates above
//! the threshold are tried.
//!
//! Bounded: total entries and total bytes, evicting the least recently used across all
//! partitions; every entry has a TTL. Each partition's vectors sit in a [`VectorIndex`], exact
//! while small and IVF once large.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lru::LruCache;
use parking_lot::Mutex;

use crate::index::{IndexOptions, VectorIndex};
use crate::verify::{self, Signature};

/// Where an entry lives. Two requests can share an answer only if every field is equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    /// The tenant (`anonymous` when the request carries no identity).
    pub tenant: Arc<str>,
    /// The model the client asked for.
    pub model: Arc<str>,
    /// Hash of everything else that changes the answer.
    pub fingerprint: u64,
}

impl PartitionKey {
    fn hash64(&self) -> u64 {
        let mut h = xxhash_rust::xxh64::Xxh64::new(0xcace);
        h.update(self.tenant.as_bytes());
        h.update(&[0]);
        h.update(self.model.as_bytes());
        h.update(&[0]);
        h.update(&self.fingerprint.to_le_bytes());
        h.digest()
    }
}

/// A complete answer, normalised so it can be replayed as a JSON body or as an SSE stream
/// whichever way it was produced.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedAnswer {
    /// `chat.completion` (message content) or `text_completion` (text).
    pub chat: bool,
    pub content: String,
    pub finish_reason: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// The model that produced it (the upstream's name).
    pub served_model: String,
}

impl CachedAnswer {
    pub fn bytes(&self) -> usize {
        self.content.len() + self.finish_reason.len() + self.served_model.len() + 64
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Hit {
    Exact,
    /// Semantic hit with its cosine similarity.
    Semantic(f32),
}

#[derive(Debug, Clone, Copy)]
pub struct CacheOptions {
    pub threshold: f32,
    pub ttl: Duration,
    pub max_entries: usize,
    pub max_bytes: usize,
    pub index: IndexOptions,
    /// Check a semantic hit lexically before serving it ([`crate::verify`]): numbers,
    /// negation, names, their order, the kind of answer asked for, swapped key words.
    pub verify: bool,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            threshold: DEFAULT_THRESHOLD,
            ttl: Duration::from_secs(3600),
            max_entries: 100_000,
            max_bytes: 256 << 20,
            index: IndexOptions::default(),
            verify: true,
        }
    }
}

/// Semantic candidates tried, best first, when the best fails verification.
const VERIFY_CANDIDATES: usize = 4;

/// The default similarity for a semantic hit (cosine, all-MiniLM-L6-v2). Chosen on the
/// paraphrase workload (`docs/benchmarks/semantic.md`) for ≤ 1% wrong hits.
pub const DEFAULT_THRESHOLD: f32 = 0.92;

struct Entry {
    answer: Arc<CachedAnswer>,
    prompt_hash: u64,
    signature: Option<Signature>,
    expires: Instant,
}

struct Partition {
    key: PartitionKey,
    exact: HashMap<u64, u64>,
    index: VectorIndex,
    entries: HashMap<u64, Entry>,
}

struct Meta {
    partition: u64,
    bytes: usize,
}

struct Inner {
    partitions: HashMap<u64, Partition>,
    lru: LruCache<u64, Meta>,
    bytes: usize,
    next_id: u64,
}

/// Counters for metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
    pub bytes: usize,
    pub partitions: usize,
    /// Semantic candidates above the threshold that verification turned down.
    pub rejected: u64,
}

pub struct SemanticCache {
    inner: Mutex<Inner>,
    rejected: std::sync::atomic::AtomicU64,
    options: CacheOptions,
    dim: usize,
}

impl SemanticCache {
    pub fn new(dim: usize, options: CacheOptions) -> Self {
        Self {
            inner: Mutex::new(Inner {
                partitions: HashMap::new(),
                lru: LruCache::unbounded(),
                bytes: 0,
                next_id: 1,
            }),
            rejected: std::sync::atomic::AtomicU64::new(0),
            options,
            dim,
        }
    }

    pub fn options(&self) -> &CacheOptions {
        &self.options
    }

    pub fn stats(&self) -> CacheStats {
        let g = self.inner.lock();
        CacheStats {
            entries: g.lru.len(),
            bytes: g.bytes,
            partitions: g.partitions.len(),
            rejected: self.rejected.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// The IVF list sizes of one partition, largest first (empty while it is exact or absent).
    pub fn list_sizes(&self, key: &PartitionKey) -> Vec<usize> {
        let g = self.inner.lock();
        g.partitions
            .get(&key.hash64())
            .filter(|p| p.key == *key)
            .map(|p| p.index.list_sizes())
            .unwrap_or_default()
    }

    /// Look up a prompt: exact (by `prompt_hash`) first, then semantic (by the prompt's
    /// embedding, each candidate at or above the threshold verified against its signature).
    pub fn lookup(
        &self,
        key: &PartitionKey,
        prompt_hash: u64,
        semantic: Option<(&[f32], &Signature)>,
    ) -> Option<(Arc<CachedAnswer>, Hit)> {
        let now = Instant::now();
        let pk = key.hash64();
        let mut g = self.inner.lock();
        let part = g.partitions.get(&pk).filter(|p| p.key == *key)?;
        let mut found: Option<(u64, Hit)> =
            part.exact.get(&prompt_hash).map(|id| (*id, Hit::Exact));
        if found.is_none() {
            if let Some((v, sig)) = semantic {
                found = if self.options.verify {
                    let mut rejected = 0;
                    let first = part
                        .index
                        .top_k(v, VERIFY_CANDIDATES, self.options.threshold)
                        .into_iter()
                        .find(|(id, _)| {
                            let ok = part
                                .entries
                                .get(id)
                                .and_then(|e| e.signature.as_ref())
                                .is_none_or(|stored| verify::check(stored, sig).is_ok());
                            rejected += u64::from(!ok);
                            ok
                        });
                    if rejected > 0 {
                        self.rejected
                            .fetch_add(rejected, std::sync::atomic::Ordering::Relaxed);
                    }
                    first.map(|(id, s)| (id, Hit::Semantic(s)))
                } else {
                    part.index
                        .nearest(v, self.options.threshold)
                        .map(|(id, s)| (id, Hit::Semantic(s)))
                };
            }
        }
        let (id, hit) = found?;
        let entry = part.entries.get(&id)?;
        if entry.expires <= now {
            remove_entry(&mut g, pk, id);
            return None;
        }
        let answer = entry.answer.clone();
        g.lru.promote(&id);
        Some((answer, hit))
    }

    /// Store a complete answer. Replaces an entry with the same prompt in the partition.
    /// `semantic`: the prompt's embedding and signature, for semantic lookups.
    pub fn store(
        &self,
        key: &PartitionKey,
        prompt_hash: u64,
        semantic: Option<(&[f32], Signature)>,
        answer: CachedAnswer,
    ) {
        let bytes = answer.bytes()
            + semantic.as_ref().map_or(0, |(_, s)| {
                VectorIndex::bytes_per_vector(self.dim) + s.bytes()
            });
        if bytes > self.options.max_bytes || self.options.max_entries == 0 {
            return;
        }
        let pk = key.hash64();
        let expires = Instant::now() + self.options.ttl;
        let mut g = self.inner.lock();
        if g.partitions.get(&pk).is_some_and(|p| p.key != *key) {
            // A 64-bit hash collision between two partitions: do not mix them.
            return;
        }
        let old = g
            .partitions
            .get(&pk)
            .and_then(|p| p.exact.get(&prompt_hash).copied());
        if let Some(old) = old {
            remove_entry(&mut g, pk, old);
        }
        let id = g.next_id;
        g.next_id += 1;
        let dim = self.dim;
        let index_opts = self.options.index;
        let part = g.partitions.entry(pk).or_insert_with(|| Partition {
            key: key.clone(),
            exact: HashMap::new(),
            index: VectorIndex::new(dim, index_opts),
            entries: HashMap::new(),
        });
        part.exact.insert(prompt_hash, id);
        let signature = semantic.map(|(v, sig)| {
            part.index.insert(id, v);
            sig
        });
        part.entries.insert(
            id,
            Entry {
                answer: Arc::new(answer),
                prompt_hash,
                signature,
                expires,
            },
        );
        g.lru.put(
            id,
            Meta {
                partition: pk,
                bytes,
            },
        );
        g.bytes += bytes;
        while g.lru.len() > self.options.max_entries || g.bytes > self.options.max_bytes {
            let Some((victim, meta)) = g.lru.peek_lru().map(|(k, m)| (*k, m.partition)) else {
                break;
            };
            remove_entry(&mut g, meta, victim);
        }
    }

    /// Drop every entry (e.g. when the configuration changes the cache's shape).
    pub fn clear(&self) {
        let mut g = self.inner.lock();
        g.partitions.clear();
        g.lru.clear();
        g.bytes = 0;
    }
}

fn remove_entry(g: &mut Inner, pk: u64, id: u64) {
    if let Some(meta) = g.lru.pop(&id) {
        g.bytes = g.bytes.saturating_sub(meta.bytes);
    }
    let mut empty = false;
    if let Some(p) = g.partitions.get_mut(&pk) {
        if let Some(e) = p.entries.remove(&id) {
            if p.exact.get(&e.prompt_hash) == Some(&id) {
                p.exact.remove(&e.prompt_hash);
            }
        }
        p.index.remove(id);
        empty = p.entries.is_empty();
    }
    if empty {
        g.partitions.remove(&pk);
    }
}

/// A cap for [`LruCache::new`] that is never zero.
pub fn nonzero(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n.max(1)).unwrap_or(NonZeroUsize::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tenant: &str) -> PartitionKey {
        PartitionKey {
            tenant: tenant.into(),
            model: "m".into(),
            fingerprint: 1,
        }
    }

    fn answer(s: &str) -> CachedAnswer {
        CachedAnswer {
            chat: true,
            content: s.into(),
            finish_reason: "stop".into(),
            prompt_tokens: 1,
            completion_tokens: 1,
            served_model: "m".into(),
        }
    }

    fn v(x: &[f32]) -> Vec<f32> {
        let mut v = x.to_vec();
        crate::vector::normalize(&mut v);
        v
    }

    fn sig(text: &str) -> Signature {
        Signature::of(text)
    }

    #[test]
    fn exact_then_semantic_within_the_partition_only() {
        let c = SemanticCache::new(
            3,
            CacheOptions {
                threshold: 0.9,
                ..Default::default()
            },
        );
        let q = sig("q");
        c.store(
            &key("a"),
            10,
            Some((&v(&[1.0, 0.0, 0.0]), q.clone())),
            answer("A"),
        );
        let (ans, hit) = c.lookup(&key("a"), 10, None).unwrap();
        assert_eq!((ans.content.as_str(), hit), ("A", Hit::Exact));
        let (_, hit) = c
            .lookup(&key("a"), 11, Some((&v(&[0.99, 0.05, 0.0]), &q)))
            .unwrap();
        assert!(matches!(hit, Hit::Semantic(s) if s > 0.9));
        assert!(c
            .lookup(&key("a"), 11, Some((&v(&[0.0, 1.0, 0.0]), &q)))
            .is_none());
        // Same prompt, other tenant: nothing.
        assert!(c
            .lookup(&key("b"), 10, Some((&v(&[1.0, 0.0, 0.0]), &q)))
            .is_none());
        let other_fp = PartitionKey {
            fingerprint: 2,
            ..key("a")
        };
        assert!(c.lookup(&other_fp, 10, None).is_none());
    }

    #[test]
    fn a_close_vector_that_asks_something_else_is_not_served() {
        let c = SemanticCache::new(
            3,
            CacheOptions {
                threshold: 0.9,
                ..Default::default()
            },
        );
        let base = "How do I convert Celsius to Fahrenheit?";
        c.store(
            &key("a"),
            1,
            Some((&v(&[1.0, 0.0, 0.0]), sig(base))),
            answer("C→F"),
        );
        // Near-identical vectors (as the embedding gives these two), reversed relation: miss.
        let flipped = sig("How do I convert Fahrenheit to Celsius?");
        assert!(c
            .lookup(&key("a"), 2, Some((&v(&[0.99, 0.02, 0.0]), &flipped)))
            .is_none());
        assert_eq!(c.stats().rejected, 1);
        // A rewording passes.
        let reworded = sig("What's the formula to turn Celsius into Fahrenheit?");
        let (ans, _) = c
            .lookup(&key("a"), 3, Some((&v(&[0.99, 0.02, 0.0]), &reworded)))
            .unwrap();
        assert_eq!(ans.content, "C→F");
        // The second-best candidate is served when the best fails the check.
        c.store(
            &key("a"),
            4,
            Some((
                &v(&[0.9, 0.3, 0.0]),
                sig("How do I convert Fahrenheit to Celsius?"),
            )),
            answer("F→C"),
        );
        let (ans, _) = c
            .lookup(&key("a"), 5, Some((&v(&[0.99, 0.05, 0.0]), &flipped)))
            .unwrap();
        assert_eq!(ans.content, "F→C");
        // With verification off, the nearest is served whatever it asked.
        let loose = SemanticCache::new(
            3,
            CacheOptions {
                threshold: 0.9,
                verify: false,
                ..Default::default()
            },
        );
        loose.store(
            &key("a"),
            1,
            Some((&v(&[1.0, 0.0, 0.0]), sig(base))),
            answer("C→F"),
        );
        assert!(loose
            .lookup(&key("a"), 2, Some((&v(&[0.99, 0.02, 0.0]), &flipped)))
            .is_some());
    }

    #[test]
    fn bounded_by_entries_and_bytes_with_lru_eviction() {
        let c = SemanticCache::new(
            3,
            CacheOptions {
                max_entries: 3,
                ..Default::default()
            },
        );
        for i in 0..3 {
            c.store(&key("a"), i, None, answer("x"));
        }
        c.lookup(&key("a"), 0, None).unwrap(); // 0 is now most recent
        c.store(&key("a"), 3, None, answer("x"));
        assert!(c.lookup(&key("a"), 1, None).is_none(), "LRU victim");
        assert!(c.lookup(&key("a"), 0, None).is_some());
        assert_eq!(c.stats().entries, 3);

        let c = SemanticCache::new(
            3,
            CacheOptions {
                max_bytes: 1000,
                ..Default::default()
            },
        );
        for i in 0..20 {
            c.store(&key("a"), i, None, answer(&"y".repeat(200)));
        }
        assert!(c.stats().bytes <= 1000);
        assert!(c.stats().entries < 20);
    }

    #[test]
    fn entries_expire() {
        let c = SemanticCache::new(
            3,
            CacheOptions {
                ttl: Duration::from_millis(0),
                ..Default::default()
            },
        );
        c.store(&key("a"), 1, None, answer("x"));
        assert!(c.lookup(&key("a"), 1, None).is_none());
        assert_eq!(c.stats().entries, 0);
    }
}
