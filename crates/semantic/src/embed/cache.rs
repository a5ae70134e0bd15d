//! An LRU cache of embeddings keyed by a 64-bit hash of the text, in front of any
//! [`Embedder`]. Repeated prompts (retries, the same system prompt, cache lookups followed by
//! cache stores) are embedded once. Bounded in entries; a hash collision costs at worst a wrong
//! vector for one text in 2^64, and the stored text length is checked as a cheap second key.

use std::num::NonZeroUsize;

use lru::LruCache;
use parking_lot::Mutex;

use super::{BoxFuture, EmbedError, Embedded, Embedder, SharedEmbedder};
use crate::vector::Vector;

pub struct CachedEmbedder {
    inner: SharedEmbedder,
    /// text hash → (text length, embedding with its token maximum if it was computed)
    cache: Mutex<LruCache<u64, (usize, Embedded)>>,
}

impl CachedEmbedder {
    pub fn new(inner: SharedEmbedder, entries: usize) -> Self {
        let cap = NonZeroUsize::new(entries.max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            inner,
            cache: Mutex::new(LruCache::new(cap)),
        }
    }

    fn key(text: &str) -> u64 {
        xxhash_rust::xxh64::xxh64(text.as_bytes(), 0x1f)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.cache.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cached embeddings, the missing ones computed in one call; with `token_max`, an entry
    /// without its token maximum counts as missing (and is replaced by one with it).
    async fn lookup(&self, texts: &[String], token_max: bool) -> Result<Vec<Embedded>, EmbedError> {
        let mut out: Vec<Option<Embedded>> = Vec::with_capacity(texts.len());
        let mut missing: Vec<String> = Vec::new();
        {
            let mut c = self.cache.lock();
            for t in texts {
                let hit = c
                    .get(&Self::key(t))
                    .filter(|(len, e)| *len == t.len() && (!token_max || e.token_max.is_some()))
                    .map(|(_, e)| e.clone());
                if hit.is_none() {
                    missing.push(t.clone());
                }
                out.push(hit);
            }
        }
        if !missing.is_empty() {
            let fresh = if token_max {
                self.inner.embed_with_token_max(&missing).await?
            } else {
                self.inner
                    .embed(&missing)
                    .await?
                    .into_iter()
                    .map(|vector| Embedded {
                        vector,
                        token_max: None,
                    })
                    .collect()
            };
            let mut c = self.cache.lock();
            let mut it = fresh.into_iter();
            for (slot, t) in out.iter_mut().zip(texts) {
                if slot.is_none() {
                    let e = it
                        .next()
                        .ok_or_else(|| EmbedError::Model("too few vectors returned".into()))?;
                    c.put(Self::key(t), (t.len(), e.clone()));
                    *slot = Some(e);
                }
            }
        }
        Ok(out.into_iter().flatten().collect())
    }
}

impl Embedder for CachedEmbedder {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vector>, EmbedError>> {
        Box::pin(async move {
            let out = self.lookup(texts, false).await?;
            Ok(out.into_iter().map(|e| e.vector).collect())
        })
    }

    fn embed_with_token_max<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Embedded>, EmbedError>> {
        Box::pin(self.lookup(texts, true))
    }

    fn name(&self) -> &str {
        self.inner.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn second_lookup_is_served_from_the_cache() {
        let pool = crate::embed::hashing_pool(16);
        let c = CachedEmbedder::new(Arc::new(pool), 2);
        let a = c.embed(&["hello".into(), "world".into()]).await.unwrap();
        assert_eq!(c.len(), 2);
        let b = c.embed(&["world".into(), "hello".into()]).await.unwrap();
        assert_eq!(a[0], b[1]);
        assert_eq!(a[1], b[0]);
        c.embed(&["third".into()]).await.unwrap();
        assert_eq!(c.len(), 2, "bounded");
    }
}
