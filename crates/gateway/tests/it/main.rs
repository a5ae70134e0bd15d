//! The gateway's integration tests, in one test binary: each module used to be its own binary,
//! and every one of them linked the whole gateway (candle, tokenizers, rustls, ...) — seven
//! ~160 MB links per build, which cost CI minutes and gigabytes of disk.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

mod api;
mod flow_control;
mod policy;
mod providers;
mod resilience;
mod scheduling;
#[cfg(feature = "embed-candle")]
mod semantic;
