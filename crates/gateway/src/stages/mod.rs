//! Pipeline stages that have their own module, in the order `pipeline::inference` runs them:
//!
//! - [`identify`]: credential → caller (API key by hash, or JWT), before the body is read.
//! - [`messages`]: the Anthropic `/v1/messages` client format, translated to the internal one.
//! - [`authorize`]: may the caller use the model (403 otherwise).
//! - [`admit`]: reserve the request's estimate in every limit and budget that applies, at once
//!   (429 otherwise); [`admit::settle`] trues it up when the response ends.
//! - [`residency`]: where the request's data may go (regions of the tenant or a trusted header).

pub mod admit;
pub mod authorize;
pub mod identify;
pub mod messages;
pub mod residency;
