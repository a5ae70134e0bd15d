//! Payload stages: guard(request), cache, semantic route and retrieval before routing;
//! response guardrails and the cache store in respond. See [`payload`] for the order.

pub mod payload;
pub mod prompt;
pub mod remote;
pub mod replay;
pub mod runtime;
