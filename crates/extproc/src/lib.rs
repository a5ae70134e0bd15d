//! The Endpoint Picker (EPP): infergate's scheduling behind any Envoy-based gateway, through
//! Envoy's external processing API and the Gateway API Inference Extension protocol.
//!
//! - [`wire`]: the protocol's header and metadata names and the ext_proc message builders;
//! - [`exchange`]: one request on one ext_proc stream, as a state machine without I/O;
//! - [`scheduling`]: the single call into scheduling ([`EndpointPicker`]), and its
//!   implementation on the configuration and the scheduler crate ([`ConfigPicker`]);
//! - [`error`]: failures → immediate responses (status + OpenAI-style body), in one place;
//! - [`server`]: the gRPC ext_proc and health services and the metrics endpoint;
//! - [`metrics`]: what the picker counts.
//!
//! The protocol handling never decides where a request goes, and the scheduling never sees a
//! protobuf message: swapping the scheduler entry point touches only `scheduling`.

pub mod error;
pub mod exchange;
pub mod metrics;
pub mod scheduling;
pub mod server;
pub mod wire;

pub use exchange::{Exchange, ExchangeOptions, Step};
pub use scheduling::{
    ConfigPicker, EndpointPicker, Finished, PickError, PickRequest, Picked, Ticket,
};
pub use server::{start, EppOptions, EppService, RunningEpp, StartError, HEALTH_SERVICES};
