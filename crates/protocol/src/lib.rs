//! Wire formats the gateway speaks, with no sockets in them: the request body view (parse once,
//! splice to rewrite), SSE framing, usage extraction and response rewriting, and the
//! client-facing error body. Everything here is pure and unit-tested.

pub mod body;
pub mod error;
pub mod kv_events;
pub mod response;
pub mod sse;
pub mod tokenizer;

pub use body::{BodyError, Operation, RequestBody};
pub use error::ApiError;
pub use response::{EventOutcome, OpenAiStreamRewriter, RewrittenBody, Usage};
pub use sse::SseSplitter;
