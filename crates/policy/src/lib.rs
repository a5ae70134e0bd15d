//! Policy: who the caller is, what it may do, and how much — as pure decisions, without sockets.
//!
//! - [`identity`]: the [`Identity`] every later stage reads.
//! - [`key`]: API key format, generation and hashing (keys are stored only as SHA-256).
//! - [`jwt`]: JWT verification against a JWKS, claims → tenant and roles.
//! - [`access`]: tenants compiled from configuration, key records, authorization (deny by
//!   default), and the [`limit::Demand`] a request is charged at admission.
//! - [`estimate`]: the token estimate reserved at admission (tiktoken encodings by family).
//! - [`limit`]: reserve-then-settle limits over sliding windows, calendar budgets and
//!   concurrency; the in-process backend.
//! - [`budget`]: calendar windows in a time zone, prices, money in nano-USD.
//! - [`redis_script`]: the shared backend's atomic Lua scripts and their argument layout.
//!
//! The gateway wires these to I/O (SQLite, Redis, HTTP); nothing here blocks.

pub mod access;
pub mod budget;
pub mod estimate;
pub mod identity;
pub mod jwt;
pub mod key;
pub mod limit;
mod pretokenize;
pub mod redis_script;

pub use identity::Identity;
