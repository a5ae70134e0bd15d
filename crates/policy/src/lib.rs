//! Policy: who the caller is, what it may do, and how much.
//!
//! Today this crate holds the [`Identity`] every later stage reads; authentication,
//! authorization, limits and budgets build on it.

pub mod identity;

pub use identity::Identity;
