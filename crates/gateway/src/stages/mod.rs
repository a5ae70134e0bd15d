//! Pipeline stages that have their own module, in the order `pipeline::inference` runs them:
//!
//! - [`identify`]: credential → caller (API key by hash, or JWT), before the body is read.
//! - [`messages`]: the Anthropic `/v1/messages` client format, translated to the internal one.
//! - [`authorize`]: may the caller use the model (403 otherwise).
//! - [`admit`]: reserve the request's estimate in every limit and budget that applies, at once
//!   (429 otherwise); [`admit::settle`] trues it up when the response ends.
//! - [`residency`]: where the request's data may go (regions of the tenant or a trusted header).
//!
//! Payload stages: guard(request), cache, semantic route and retrieval before routing;
//! response guardrails and the cache store in respond. See [`payload`] for the order.

pub mod admit;
pub mod authorize;
pub mod identify;
pub mod messages;
pub mod payload;
pub mod prompt;
pub mod remote;
pub mod replay;
pub mod residency;
pub mod runtime;
