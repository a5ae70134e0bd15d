//! Prometheus metrics of the Endpoint Picker (served on the metrics port, 9090 by default).
//! Label values come from configuration (pool names) or fixed sets (reasons, token types), never
//! from request data.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub pool: Arc<str>,
    pub code: u16,
    /// Stable reason (`shed`, `no_endpoint`, …); empty when the request was scheduled.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub pool: Arc<str>,
    /// `ip:port` from the pool's configuration.
    pub endpoint: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub pool: Arc<str>,
    /// `input` or `output`.
    pub gen_ai_token_type: &'static str,
}

pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub scheduling: Histogram,
    pub streams: Gauge,
    pub served_by_fallback: Family<PoolLabels, Counter>,
    pub tokens: Family<TokenLabels, Counter>,
    pub request_bytes: Histogram,
    pub kv_event_blocks: Family<EndpointLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "infergate_epp_requests",
            "Requests the endpoint picker handled, by pool, HTTP status and reason",
            requests.clone(),
        );
        let scheduling = Histogram::new([
            0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05,
            0.1,
        ]);
        registry.register_with_unit(
            "infergate_epp_scheduling_duration",
            "Time from the complete request body to the picking decision",
            Unit::Seconds,
            scheduling.clone(),
        );
        let streams = Gauge::default();
        registry.register(
            "infergate_epp_active_streams",
            "ext_proc streams (one per HTTP request) open now",
            streams.clone(),
        );
        let served_by_fallback = Family::<PoolLabels, Counter>::default();
        registry.register(
            "infergate_epp_served_by_fallback",
            "Responses the proxy reports as served by an endpoint other than the primary pick",
            served_by_fallback.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "infergate_epp_tokens",
            "Tokens reported in response usage, by pool and token type",
            tokens.clone(),
        );
        let request_bytes = Histogram::new([1e3, 1e4, 6.2e4, 1e5, 2.5e5, 1e6, 4e6, 1.6e7]);
        registry.register_with_unit(
            "infergate_epp_request_body",
            "Request body sizes seen by the picker",
            Unit::Bytes,
            request_bytes.clone(),
        );
        let kv_event_blocks = Family::<EndpointLabels, Gauge>::default();
        registry.register(
            "infergate_epp_kv_event_blocks",
            "KV-cache blocks each endpoint holds according to the KV events this picker received (precise prefix scorer only)",
            kv_event_blocks.clone(),
        );
        Self {
            registry,
            requests,
            scheduling,
            streams,
            served_by_fallback,
            tokens,
            request_bytes,
            kv_event_blocks,
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
