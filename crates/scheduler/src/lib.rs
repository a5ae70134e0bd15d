//! Endpoint picking for inference pools: the state of each model-server endpoint and the
//! `Filter → Scorer → Picker` profiles that choose one for a request.
//!
//! The decision path is pure and synchronous (no I/O, no locks held across awaits); signal
//! collection (metric scraping, KV events) feeds it from outside.

pub mod endpoint;
pub mod profile;

pub use endpoint::{now_ms, Endpoint, EndpointRegistry, EndpointState, Failure, InFlight};
pub use profile::{
    Filter, HealthyFilter, InFlightScorer, MaxScorePicker, Picker, SchedulingError,
    SchedulingProfile, SchedulingRequest, Scorer,
};
