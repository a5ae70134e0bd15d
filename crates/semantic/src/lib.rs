//! Payload processing on sentence embeddings: the [`embed::Embedder`] (all-MiniLM-L6-v2
//! in-process with candle, or any OpenAI-compatible embeddings endpoint), guardrails on prompts
//! and responses ([`guard`]), the semantic cache ([`cache`]), semantic routing ([`router`]) and
//! retrieval ([`retrieval`]).
//!
//! Pure logic only: no sockets. The gateway wires these to requests; anything that needs I/O
//! (a remote embedder, the guardrail webhook) is implemented there behind these traits.

pub mod cache;
pub mod embed;
pub mod eval;
pub mod guard;
pub mod index;
pub mod retrieval;
pub mod router;
pub mod vector;
pub mod verify;
