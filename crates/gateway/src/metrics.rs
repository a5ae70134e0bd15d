//! Prometheus metrics on the admin listener.
//!
//! Names follow the OpenTelemetry GenAI conventions (`gen_ai_server_request_duration_seconds`,
//! `gen_ai_server_time_to_first_token_seconds`, `gen_ai_server_time_per_output_token_seconds`,
//! `gen_ai_client_token_usage`) with their recommended buckets, plus the gateway's own series
//! under `infergate_`. Label values come from configuration only (model, pool and endpoint
//! names), never from request data, so cardinality is bounded by the config.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Declares a label set. Its `Hash` runs the fields through FxHash and hands the outer hasher
/// one `u64`: prometheus-client keys each family's map (std's SipHash) by the label set, and
/// SipHash over every label string cost ~5,000 instructions per request (callgrind,
/// `scripts/bench/instructions`). Equal label sets still hash equally.
macro_rules! label_set {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident: $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq, EncodeLabelSet)]
        pub struct $name { $($(#[$fm])* pub $f: $t),* }

        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                let mut fx = rustc_hash::FxHasher::default();
                $(std::hash::Hash::hash(&self.$f, &mut fx);)*
                state.write_u64(std::hash::Hasher::finish(&fx));
            }
        }
    };
}

/// A label value that is cheap to clone (an `Arc<str>` from the configuration snapshot).
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct Label(pub Arc<str>);

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(&self.0)
    }
}

impl From<&str> for Label {
    fn from(s: &str) -> Self {
        Label(Arc::from(s))
    }
}

label_set! {
    pub struct GenAiLabels {
        pub gen_ai_operation_name: &'static str,
        pub gen_ai_provider_name: Label,
        pub gen_ai_request_model: Label,
        pub gen_ai_response_model: Label,
        pub pool: Label,
    }
}

label_set! {
    pub struct TokenLabels {
        pub gen_ai_operation_name: &'static str,
        pub gen_ai_provider_name: Label,
        pub gen_ai_request_model: Label,
        pub gen_ai_response_model: Label,
        pub pool: Label,
        pub gen_ai_token_type: &'static str,
    }
}

label_set! {
    pub struct RequestLabels {
        pub gen_ai_operation_name: &'static str,
        pub gen_ai_request_model: Label,
        pub pool: Label,
        pub code: u16,
        /// Stable error reason (`model_not_found`, `no_endpoint`, ...) or empty on success.
        pub reason: &'static str,
    }
}

label_set! {
    pub struct EndpointLabels {
        pub pool: Label,
        pub endpoint: Label,
    }
}

label_set! {
    pub struct PoolLabels {
        pub pool: Label,
    }
}

label_set! {
    pub struct AttemptLabels {
        /// Pool or backend name.
        pub upstream: Label,
        /// `success`, `connect_error`, `timeout`, `status_5xx`, `status_429`, `context_length`,
        /// `credentials`, `broken`, `untranslatable`, `no_client_credential`.
        pub result: &'static str,
    }
}

label_set! {
    pub struct ShadowLabels {
        pub upstream: Label,
        /// `success`, `error`, `dropped`.
        pub outcome: &'static str,
    }
}

label_set! {
    pub struct QueueLabels {
        pub pool: Label,
        /// `dispatched`, `shed`, `queue_full`, `timeout`.
        pub outcome: &'static str,
    }
}

label_set! {
    pub struct BandLabels {
        pub pool: Label,
        /// A priority band (bounded: priorities come from configuration).
        pub priority: i32,
    }
}

label_set! {
    pub struct UpstreamLabels {
        pub upstream: Label,
    }
}

label_set! {
    pub struct OpLabels {
        pub gen_ai_operation_name: &'static str,
    }
}

label_set! {
    pub struct ResultLabels {
        pub result: &'static str,
    }
}

label_set! {
    /// A guardrail verdict: the configured guardrail name, its type, the action taken, direction.
    pub struct GuardLabels {
        pub guardrail: Label,
        pub kind: &'static str,
        pub action: &'static str,
        pub direction: &'static str,
    }
}

label_set! {
    pub struct CacheLabels {
        pub policy: Label,
        /// hit, semantic_hit, miss, bypass
        pub result: &'static str,
    }
}

label_set! {
    pub struct PolicyLabels {
        pub policy: Label,
    }
}

label_set! {
    pub struct RouteLabels {
        pub router: Label,
        pub route: Label,
    }
}

label_set! {
    pub struct ReasonLabels {
        pub reason: &'static str,
    }
}

label_set! {
    /// Tenant names come from configuration (bounded); never key ids.
    pub struct TenantReasonLabels {
        pub tenant: Label,
        pub reason: &'static str,
    }
}

label_set! {
    pub struct AdmissionLabels {
        pub tenant: Label,
        /// `admitted`, `rate_limited`, `budget_exceeded`, `unavailable`.
        pub decision: &'static str,
        /// Which bucket refused (`key`, `tenant`, `model`, `tenant_model`), empty when admitted.
        pub scope: &'static str,
        /// `requests`, `tokens`, `concurrency`, `spend`; empty when admitted.
        pub metric: &'static str,
        /// `local`, `redis`, `local_fallback`.
        pub backend: &'static str,
    }
}

label_set! {
    pub struct SpendLabels {
        pub tenant: Label,
        pub gen_ai_request_model: Label,
    }
}

type HistFamily<L> = Family<L, Histogram, fn() -> Histogram>;

const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
const TPOT_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];
const TOKEN_BUCKETS: &[f64] = &[
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];
/// The gateway's own time: 10 µs to ~0.3 s.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25,
];

/// Time in the flow-control queue: 0 to ~2 min.
const QUEUE_BUCKETS: &[f64] = &[
    0.0, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// Every metric the data plane records.
pub struct Metrics {
    pub registry: Registry,
    pub request_duration: HistFamily<GenAiLabels>,
    pub time_to_first_token: HistFamily<GenAiLabels>,
    pub time_per_output_token: HistFamily<GenAiLabels>,
    pub token_usage: HistFamily<TokenLabels>,
    pub requests: Family<RequestLabels, Counter>,
    pub overhead: HistFamily<OpLabels>,
    pub endpoint_in_flight: Family<EndpointLabels, Gauge>,
    pub endpoint_awaiting_first_byte: Family<EndpointLabels, Gauge>,
    pub endpoint_ejected: Family<EndpointLabels, Gauge>,
    pub endpoint_ejections: Family<EndpointLabels, Counter>,
    pub upstream_retries: Family<PoolLabels, Counter>,
    pub queue_duration: HistFamily<QueueLabels>,
    pub queue_size: Family<PoolLabels, Gauge>,
    pub queue_bytes: Family<PoolLabels, Gauge>,
    pub band_queue_size: Family<BandLabels, Gauge>,
    pub pool_saturation: Family<PoolLabels, FloatGauge>,
    pub pool_reserved_endpoints: Family<PoolLabels, Gauge>,
    pub endpoint_queue: Family<EndpointLabels, FloatGauge>,
    pub endpoint_kv_usage: Family<EndpointLabels, FloatGauge>,
    pub upstream_attempts: Family<AttemptLabels, Counter>,
    pub circuit_open: Family<PoolLabels, Gauge>,
    pub circuit_opened: Family<PoolLabels, Counter>,
    pub retry_budget_exhausted: Counter,
    pub shadow_requests: Family<ShadowLabels, Counter>,
    pub shadow_duration: HistFamily<UpstreamLabels>,
    pub config_reloads: Family<ResultLabels, Counter>,
    pub config_generation: Gauge,
    pub access_log_dropped: Counter,
    pub guardrail_verdicts: Family<GuardLabels, Counter>,
    pub cache_lookups: Family<CacheLabels, Counter>,
    pub cache_entries: Family<PolicyLabels, Gauge>,
    pub cache_bytes: Family<PolicyLabels, Gauge>,
    pub semantic_routes: Family<RouteLabels, Counter>,
    pub embedding_duration: Histogram,
    pub embedding_errors: Counter,
    pub auth_failures: Family<ReasonLabels, Counter>,
    pub authz_denials: Family<TenantReasonLabels, Counter>,
    pub admissions: Family<AdmissionLabels, Counter>,
    pub spend_usd: Family<SpendLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
    pub limiter_redis_up: Gauge,
    pub limiter_redis_settles_dropped: Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        fn family<L: Clone + std::hash::Hash + Eq>(ctor: fn() -> Histogram) -> HistFamily<L> {
            Family::new_with_constructor(ctor)
        }
        let mut registry = Registry::default();
        let m = Self {
            request_duration: family(|| Histogram::new(DURATION_BUCKETS.iter().copied())),
            time_to_first_token: family(|| Histogram::new(TTFT_BUCKETS.iter().copied())),
            time_per_output_token: family(|| Histogram::new(TPOT_BUCKETS.iter().copied())),
            token_usage: family(|| Histogram::new(TOKEN_BUCKETS.iter().copied())),
            requests: Family::default(),
            overhead: family(|| Histogram::new(OVERHEAD_BUCKETS.iter().copied())),
            endpoint_in_flight: Family::default(),
            endpoint_awaiting_first_byte: Family::default(),
            endpoint_ejected: Family::default(),
            endpoint_ejections: Family::default(),
            upstream_retries: Family::default(),
            queue_duration: family(|| Histogram::new(QUEUE_BUCKETS.iter().copied())),
            queue_size: Family::default(),
            queue_bytes: Family::default(),
            band_queue_size: Family::default(),
            pool_saturation: Family::default(),
            pool_reserved_endpoints: Family::default(),
            endpoint_queue: Family::default(),
            endpoint_kv_usage: Family::default(),
            upstream_attempts: Family::default(),
            circuit_open: Family::default(),
            circuit_opened: Family::default(),
            retry_budget_exhausted: Counter::default(),
            shadow_requests: Family::default(),
            shadow_duration: family(|| Histogram::new(DURATION_BUCKETS.iter().copied())),
            config_reloads: Family::default(),
            config_generation: Gauge::default(),
            access_log_dropped: Counter::default(),
            guardrail_verdicts: Family::default(),
            cache_lookups: Family::default(),
            cache_entries: Family::default(),
            cache_bytes: Family::default(),
            semantic_routes: Family::default(),
            embedding_duration: Histogram::new(OVERHEAD_BUCKETS.iter().copied()),
            embedding_errors: Counter::default(),
            auth_failures: Family::default(),
            authz_denials: Family::default(),
            admissions: Family::default(),
            spend_usd: Family::default(),
            limiter_redis_up: Gauge::default(),
            limiter_redis_settles_dropped: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register_with_unit(
            "gen_ai_server_request_duration",
            "Time from request to the last byte of the response (successful responses)",
            Unit::Seconds,
            m.request_duration.clone(),
        );
        registry.register_with_unit(
            "gen_ai_server_time_to_first_token",
            "Time from request to the first streamed chunk (streamed, successful responses)",
            Unit::Seconds,
            m.time_to_first_token.clone(),
        );
        registry.register_with_unit(
            "gen_ai_server_time_per_output_token",
            "Time per output token after the first (streamed, successful responses)",
            Unit::Seconds,
            m.time_per_output_token.clone(),
        );
        registry.register(
            "gen_ai_client_token_usage",
            "Tokens per request, by gen_ai_token_type (input, output)",
            m.token_usage.clone(),
        );
        registry.register(
            "infergate_requests",
            "Requests answered, by status code and error reason",
            m.requests.clone(),
        );
        registry.register_with_unit(
            "infergate_gateway_overhead",
            "Time spent in the gateway itself per request, upstream waiting excluded",
            Unit::Seconds,
            m.overhead.clone(),
        );
        registry.register(
            "infergate_endpoint_in_flight_requests",
            "Requests this gateway has in flight to each endpoint",
            m.endpoint_in_flight.clone(),
        );
        registry.register(
            "infergate_endpoint_awaiting_first_byte",
            "Requests this gateway sent to each endpoint that have not produced a first byte yet \
             (prefilling or queued in the engine)",
            m.endpoint_awaiting_first_byte.clone(),
        );
        registry.register(
            "infergate_endpoint_ejected",
            "1 while passive health keeps the endpoint out of rotation",
            m.endpoint_ejected.clone(),
        );
        registry.register(
            "infergate_endpoint_ejections",
            "Times passive health ejected the endpoint",
            m.endpoint_ejections.clone(),
        );
        registry.register(
            "infergate_upstream_retries",
            "Attempts beyond the first, per pool or backend",
            m.upstream_retries.clone(),
        );
        registry.register_with_unit(
            "infergate_flow_control_request_queue_duration",
            "Time requests spent in the pool's flow-control queue, by outcome (dispatched, shed, \
             queue_full, timeout); 0 for requests admitted at once",
            Unit::Seconds,
            m.queue_duration.clone(),
        );
        registry.register(
            "infergate_flow_control_queue_size",
            "Requests waiting in the pool's flow-control queue (autoscaling signal)",
            m.queue_size.clone(),
        );
        registry.register(
            "infergate_flow_control_queue_bytes",
            "Bytes of the requests waiting in the pool's flow-control queue",
            m.queue_bytes.clone(),
        );
        registry.register(
            "infergate_flow_control_band_queue_size",
            "Requests waiting per priority band (bands with waiters only)",
            m.band_queue_size.clone(),
        );
        registry.register(
            "infergate_pool_saturation",
            "Mean endpoint utilisation per the saturation detector; >= 1 is saturated \
             (autoscaling signal)",
            m.pool_saturation.clone(),
        );
        registry.register(
            "infergate_pool_reserved_endpoints",
            "Endpoints held back from sheddable requests now (flowControl.nonSheddableReserve)",
            m.pool_reserved_endpoints.clone(),
        );
        registry.register(
            "infergate_endpoint_queue_size",
            "The engine's waiting queue as last scraped, plus requests sent since",
            m.endpoint_queue.clone(),
        );
        registry.register(
            "infergate_endpoint_kv_cache_utilization",
            "The engine's KV-cache utilisation as last scraped (0..1)",
            m.endpoint_kv_usage.clone(),
        );
        registry.register(
            "infergate_upstream_attempts",
            "Attempts sent to each pool or backend, by result",
            m.upstream_attempts.clone(),
        );
        registry.register(
            "infergate_circuit_open",
            "1 while the target's circuit is open (requests skip it)",
            m.circuit_open.clone(),
        );
        registry.register(
            "infergate_circuit_opened",
            "Times the target's circuit opened",
            m.circuit_opened.clone(),
        );
        registry.register(
            "infergate_retry_budget_exhausted",
            "Extra attempts refused because the retry budget was spent",
            m.retry_budget_exhausted.clone(),
        );
        registry.register(
            "infergate_shadow_requests",
            "Shadow copies sent to candidate targets, by outcome (answers are discarded)",
            m.shadow_requests.clone(),
        );
        registry.register_with_unit(
            "infergate_shadow_duration",
            "Latency of shadow copies, to the end of the answer",
            Unit::Seconds,
            m.shadow_duration.clone(),
        );
        registry.register(
            "infergate_config_reloads",
            "Configuration reloads by result (success, failure)",
            m.config_reloads.clone(),
        );
        registry.register(
            "infergate_config_generation",
            "Generation of the configuration being served (1 = the one loaded at start)",
            m.config_generation.clone(),
        );
        registry.register(
            "infergate_access_log_dropped",
            "Access log lines dropped because the writer fell behind",
            m.access_log_dropped.clone(),
        );
        registry.register(
            "infergate_guardrail_verdicts",
            "Guardrail findings, by guardrail, type, action taken and direction",
            m.guardrail_verdicts.clone(),
        );
        registry.register(
            "infergate_cache_lookups",
            "Semantic cache lookups by policy and result (hit, semantic_hit, miss, bypass)",
            m.cache_lookups.clone(),
        );
        registry.register(
            "infergate_cache_entries",
            "Answers held by each cache policy",
            m.cache_entries.clone(),
        );
        registry.register_with_unit(
            "infergate_cache_size",
            "Bytes held by each cache policy",
            Unit::Bytes,
            m.cache_bytes.clone(),
        );
        registry.register(
            "infergate_semantic_routes",
            "Requests routed by each semantic router, by route (default when none matched)",
            m.semantic_routes.clone(),
        );
        registry.register_with_unit(
            "infergate_embedding_duration",
            "Time to embed one prompt (queueing in the encoder pool included)",
            Unit::Seconds,
            m.embedding_duration.clone(),
        );
        registry.register(
            "infergate_embedding_errors",
            "Prompts whose embedding failed (semantic checks skipped for them)",
            m.embedding_errors.clone(),
        );
        registry.register(
            "infergate_auth_failures",
            "Requests refused for their credential, by reason (missing_credential, invalid_api_key, expired_api_key, revoked_api_key, invalid_token, unknown_tenant, auth_unavailable)",
            m.auth_failures.clone(),
        );
        registry.register(
            "infergate_authz_denials",
            "Requests refused because the caller may not use the model, by tenant and reason",
            m.authz_denials.clone(),
        );
        registry.register(
            "infergate_limit_decisions",
            "Admission decisions by tenant, decision, the refusing scope and metric, and backend",
            m.admissions.clone(),
        );
        registry.register(
            "infergate_spend_usd",
            "Spend in US dollars (usage x price) by tenant and requested model",
            m.spend_usd.clone(),
        );
        registry.register(
            "infergate_limiter_redis_up",
            "1 while the shared limiter (Redis) answers, 0 while the fail mode applies",
            m.limiter_redis_up.clone(),
        );
        registry.register(
            "infergate_limiter_redis_settles_dropped",
            "Settlements not written to Redis since start: the outage backlog was full, or Redis \
             refused the call",
            m.limiter_redis_settles_dropped.clone(),
        );
        Self { registry, ..m }
    }

    /// Record a flow-control outcome and the time spent waiting.
    pub fn observe_queue(&self, pool: &Label, outcome: &'static str, waited: std::time::Duration) {
        self.queue_duration
            .get_or_create(&QueueLabels {
                pool: pool.clone(),
                outcome,
            })
            .observe(waited.as_secs_f64());
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
