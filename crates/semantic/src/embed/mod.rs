//! Sentence embeddings: the [`Embedder`] every semantic feature asks for vectors.
//!
//! Two implementations:
//! - in-process: a [`SentenceEncoder`] (the candle BERT encoder, feature `embed-candle`) behind an
//!   [`EncoderPool`] — a fixed number of OS threads with a bounded queue, so CPU-bound inference
//!   never runs on (or stalls) the async runtime, and requests waiting together are coalesced
//!   into one batch;
//! - remote: any OpenAI-compatible `/v1/embeddings` endpoint (implemented in the gateway, which
//!   owns the sockets), behind the same trait.
//!
//! [`CachedEmbedder`] puts an LRU cache keyed by a hash of the text in front of either.
//! Vectors are L2-normalised, so cosine similarity is a dot product ([`crate::vector::dot`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

#[cfg(all(feature = "embed-candle", target_arch = "x86_64"))]
mod amx;
#[cfg(feature = "embed-candle")]
pub mod bert;
mod cache;
mod pool;
pub mod store;

pub use cache::CachedEmbedder;
pub use pool::{EncoderPool, PoolOptions};

use crate::vector::Vector;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EmbedError {
    /// The model could not be loaded or failed on an input.
    #[error("embedding model: {0}")]
    Model(String),
    /// The pool's queue is full: the gateway is embedding as fast as its threads allow.
    #[error("the embedding queue is full ({0} texts waiting)")]
    Overloaded(usize),
    /// The pool has shut down.
    #[error("the embedding pool has stopped")]
    Stopped,
    /// A remote embeddings endpoint failed.
    #[error("embeddings endpoint: {0}")]
    Remote(String),
}

/// A text's embedding and, when asked for and the encoder can give it, its token maximum: the
/// largest value of each hidden dimension over the text's tokens (final layer, the same forward
/// pass). A one-sentence instruction inside a long document moves the mean (the embedding)
/// little but can set the maximum of some dimensions.
#[derive(Debug, Clone)]
pub struct Embedded {
    pub vector: Vector,
    pub token_max: Option<Vector>,
}

/// Something that turns texts into unit-length vectors, asynchronously.
pub trait Embedder: Send + Sync {
    /// Vector length.
    fn dim(&self) -> usize;
    /// One vector per text, in order.
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vector>, EmbedError>>;
    /// One embedding per text with its token maximum when the encoder can give it (the
    /// in-process encoder can; a remote embeddings endpoint cannot: `token_max` is None).
    fn embed_with_token_max<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Embedded>, EmbedError>> {
        Box::pin(async move {
            Ok(self
                .embed(texts)
                .await?
                .into_iter()
                .map(|vector| Embedded {
                    vector,
                    token_max: None,
                })
                .collect())
        })
    }
    /// A name for logs and metrics (the model).
    fn name(&self) -> &str;
}

/// A synchronous, CPU-bound sentence encoder (run it on an [`EncoderPool`]).
pub trait SentenceEncoder: Send + Sync {
    fn dim(&self) -> usize;
    /// L2-normalised vectors, one per text, in order.
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// Each text's final hidden states, `(tokens, dim)` row-major, from the forward pass that
    /// gives its embedding (the L2-normalised mean of the rows); None when the encoder cannot
    /// expose them.
    fn token_states(&self, _texts: &[&str]) -> Option<Result<Vec<Vec<f32>>, EmbedError>> {
        None
    }
    /// Per text (embedding, token maximum) from one forward pass ([`Embedded`]); None when the
    /// encoder cannot expose token states.
    fn encode_with_token_max(&self, texts: &[&str]) -> Option<EncodedWithMax> {
        let states = self.token_states(texts)?;
        let dim = self.dim();
        Some(states.map(|all| {
            all.iter()
                .map(|rows| (mean_pool(rows, dim), max_pool(rows, dim)))
                .collect()
        }))
    }
    /// Tokens the encoder would read for `text` (after truncation), when it can tell.
    fn count_tokens(&self, _text: &str) -> Option<usize> {
        None
    }
}

/// Per text (embedding, token maximum).
pub type EncodedWithMax = Result<Vec<(Vec<f32>, Vec<f32>)>, EmbedError>;

/// The L2-normalised mean of `(tokens, dim)` rows: the encoder's pooling.
pub fn mean_pool(rows: &[f32], dim: usize) -> Vec<f32> {
    let mut mean = vec![0f32; dim];
    let mut n = 0usize;
    for row in rows.chunks_exact(dim) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v;
        }
        n += 1;
    }
    let inv = 1.0 / n.max(1) as f32;
    for m in &mut mean {
        *m *= inv;
    }
    crate::vector::normalize(&mut mean);
    mean
}

/// The largest value of each dimension over `(tokens, dim)` rows (zeros for no rows).
pub fn max_pool(rows: &[f32], dim: usize) -> Vec<f32> {
    let mut it = rows.chunks_exact(dim);
    let mut max = it
        .next()
        .map(<[f32]>::to_vec)
        .unwrap_or_else(|| vec![0.0; dim]);
    for row in it {
        for (m, &v) in max.iter_mut().zip(row) {
            *m = m.max(v);
        }
    }
    max
}

/// Embed one text.
pub async fn embed_one(e: &dyn Embedder, text: &str) -> Result<Vector, EmbedError> {
    let texts = [text.to_string()];
    let mut v = e.embed(&texts).await?;
    v.pop()
        .ok_or_else(|| EmbedError::Model("the embedder returned no vector".into()))
}

/// A deterministic, dependency-free encoder for tests of the code around embeddings (not of
/// embedding quality): hashed character trigrams, L2-normalised. Texts sharing many trigrams
/// get similar vectors.
pub struct HashingEncoder {
    pub dim: usize,
}

impl SentenceEncoder for HashingEncoder {
    fn dim(&self) -> usize {
        self.dim
    }

    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0f32; self.dim];
                let lower: Vec<char> = t.to_lowercase().chars().collect();
                for w in lower.windows(3) {
                    let s: String = w.iter().collect();
                    let h = xxhash_rust::xxh64::xxh64(s.as_bytes(), 7);
                    v[(h % self.dim as u64) as usize] += 1.0;
                }
                crate::vector::normalize(&mut v);
                v
            })
            .collect())
    }
}

/// An [`Embedder`] shared by every feature of one configuration.
pub type SharedEmbedder = Arc<dyn Embedder>;

/// An encoder pool over [`HashingEncoder`] with default options, for tests.
#[cfg(test)]
pub(crate) fn hashing_pool(dim: usize) -> EncoderPool {
    EncoderPool::start(
        std::sync::Arc::new(HashingEncoder { dim }),
        "hash",
        PoolOptions::default(),
    )
    .expect("a hashing encoder pool starts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_pooling_is_the_normalised_mean_and_the_per_dimension_maximum() {
        let rows = [1.0f32, -2.0, 3.0, 0.0, -1.0, 4.0];
        assert_eq!(max_pool(&rows, 2), vec![3.0, 4.0]);
        let m = mean_pool(&rows, 2);
        let want = [1.0f32, 2.0 / 3.0];
        let norm = (want[0] * want[0] + want[1] * want[1]).sqrt();
        assert!((m[0] - want[0] / norm).abs() < 1e-6 && (m[1] - want[1] / norm).abs() < 1e-6);
        assert_eq!(max_pool(&[], 3), vec![0.0; 3]);
    }

    #[tokio::test]
    async fn an_encoder_without_token_states_gives_no_token_maximum() {
        let pool = super::hashing_pool(8);
        let cached = CachedEmbedder::new(Arc::new(pool), 16);
        let texts = vec!["hello there".to_string()];
        let plain = cached.embed(&texts).await.unwrap();
        let with = cached.embed_with_token_max(&texts).await.unwrap();
        assert_eq!(with.len(), 1);
        assert!(with[0].token_max.is_none());
        assert_eq!(with[0].vector, plain[0]);
    }
}
