//! The policy stages of the pipeline, in the order `pipeline::inference` runs them:
//!
//! - [`identify`]: credential → caller (API key by hash, or JWT), before the body is read.
//! - [`authorize`]: may the caller use the model (403 otherwise).
//! - [`admit`]: reserve the request's estimate in every limit and budget that applies, at once
//!   (429 otherwise); [`admit::settle`] trues it up when the response ends.

pub mod admit;
pub mod authorize;
pub mod identify;
