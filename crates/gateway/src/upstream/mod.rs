//! Everything about reaching an upstream that is not a pool endpoint pick: external provider
//! backends (clients with TLS and CONNECT egress, credentials per attempt), circuit breakers per
//! target and the retry budget shared by all requests.

pub mod backend;
pub mod budget;
pub mod circuit;
pub mod credentials;
