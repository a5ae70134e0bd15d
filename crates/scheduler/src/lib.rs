//! Endpoint picking for inference pools: live signals from model servers, the
//! `Filter → Scorer → Picker` profiles that choose an endpoint, priority and flow control.
//!
//! # The API (shared by the gateway's data plane and the Endpoint Picker)
//!
//! One [`PoolScheduler`] per pool, kept for the life of the process:
//!
//! ```text
//! let pool = PoolScheduler::new("llama", endpoints, config);   // config: Arc<PickerConfig>
//! pool.start();                                              // metrics scraper (+ KV events)
//! pool.update(endpoints, config);                            // on reload; state carries over
//!
//! let req = SchedulingRequest { target_model, prompt, prompt_kind, priority, fairness_id,
//!                               size_bytes, estimated_tokens, subset, exclude, min_endpoints,
//!                               request_id };
//! let mut scheduled = pool.schedule(&req).await?;            // admission + flow control + pick
//! //  scheduled.primary, scheduled.fallbacks, scheduled.destination_header(), .queued_for
//! let in_flight = scheduled.begin(&scheduled.primary.clone()); // sent there (or a fallback)
//! //  ... response streams ...
//! in_flight.finish(Some(RequestUsage { prompt_tokens, cached_tokens, output_tokens }));
//! //  (or just drop it: the request is uncounted and flow control may dispatch the next)
//! ```
//!
//! - [`PoolScheduler::schedule`] returns [`ScheduledEndpoints`] with the primary already counted
//!   in flight, or a [`SchedulingError`] whose [`SchedulingError::status`] is the HTTP status
//!   (503: no endpoint / subset empty / queue TTL; 429: shed / queue full).
//! - [`ScheduledEndpoints::begin`] counts the request on the endpoint it is actually sent to and
//!   records its prefix there (approximate index, speculative precise entries); the returned
//!   [`InFlight`] is the "request finished on endpoint X" hook ([`InFlight::finish`] with usage,
//!   [`InFlight::move_to`] when a proxy reports another served endpoint).
//! - [`PoolScheduler::pick`] is the decision alone (no admission), for benchmarks and tools.
//! - [`PoolScheduler::stats`] gives saturation and queue sizes for metrics / autoscalers.
//!
//! # Layout
//!
//! Pure decision path: [`profile`] (traits, the profile run), [`plugins`] (filters, scorers,
//! pickers), [`prefix`] (approximate index), [`kv_index`] (precise index), [`saturation`],
//! [`signals`] (metric names per engine, Prometheus parsing), `flow` (queues). No I/O and no lock
//! held across an await. I/O beside it: [`scrape`] (metrics) and [`kv_subscriber`] (ZMQ KV
//! events), both feeding state the decision path reads.

pub mod endpoint;
mod flow;
pub mod kv_index;
pub mod kv_subscriber;
pub mod plugins;
pub mod pool;
pub mod prefix;
pub mod profile;
pub mod saturation;
pub mod scrape;
pub mod signals;

pub use endpoint::{
    now_ms, Endpoint, EndpointRegistry, EndpointState, Failure, InFlight, RequestUsage,
};
pub use flow::BandStats;
pub use infergate_control::picker::PickerConfig;
pub use pool::{PoolScheduler, PoolStats, ScheduledEndpoints, SchedulerRegistry, SchedulingError};
pub use profile::{
    CycleState, Filter, Picker, PromptKind, SchedulingProfile, SchedulingRequest, Scorer,
    DEFAULT_FLOW,
};
pub use signals::EndpointMetrics;
