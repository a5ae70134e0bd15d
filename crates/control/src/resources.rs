//! The configuration resources, as written in YAML (`apiVersion`, `kind`, `metadata`, `spec`).
//!
//! Upstream kinds keep their upstream shape (Gateway API Inference Extension): `InferencePool`
//! (v1 and v1alpha2), `InferenceObjective`, `InferenceModelRewrite` and the legacy
//! `InferenceModel`. infergate's own kinds live in `infergate.dev/v1alpha1` and are few:
//! `PublicModel`, `GatewaySettings`, `Tenant` and, for demos and tests, `Simulator`.
//!
//! Spec structs deny unknown fields so a typo is an error with a line number, not a silently
//! ignored setting. `status` is accepted and ignored.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::units::{ByteSize, Dur};

pub const GROUP_V1: &str = "inference.networking.k8s.io/v1";
pub const GROUP_X_V1ALPHA2: &str = "inference.networking.x-k8s.io/v1alpha2";
pub const INFERGATE_V1ALPHA1: &str = "infergate.dev/v1alpha1";

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Used for "oldest wins" conflict resolution, as upstream does.
    #[serde(default)]
    pub creation_timestamp: Option<String>,
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub resource_version: Option<String>,
    #[serde(default)]
    pub generation: Option<u64>,
}

/// Any resource: the envelope, generic over the spec.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resource<S> {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: S,
    #[serde(default)]
    pub status: Option<serde_json::Value>,
}

// ---------------------------------------------------------------- InferencePool (v1)

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InferencePoolV1Spec {
    pub selector: LabelSelector,
    pub target_ports: Vec<Port>,
    #[serde(default)]
    pub app_protocol: Option<String>,
    #[serde(default)]
    pub endpoint_picker_ref: Option<EndpointPickerRef>,
    /// infergate extension (standalone mode): the endpoints that pods would otherwise be.
    #[serde(default)]
    pub endpoints: Vec<StaticEndpoint>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    pub number: u16,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointPickerRef {
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default)]
    pub port: Option<Port>,
    #[serde(default)]
    pub failure_mode: Option<FailureMode>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
pub enum FailureMode {
    FailOpen,
    #[default]
    FailClose,
}

/// One model-server endpoint in standalone mode (an infergate extension of `InferencePool`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticEndpoint {
    /// IP address or host name.
    pub address: String,
    /// Port; when absent, one endpoint per pool target port.
    #[serde(default)]
    pub port: Option<u16>,
    /// A name for metrics and logs (like a pod name); defaults to `address:port`.
    #[serde(default)]
    pub name: Option<String>,
    /// Labels as a pod would carry them (e.g. `inference.networking.k8s.io/engine-type`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

// ---------------------------------------------------------------- InferencePool (v1alpha2)

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InferencePoolV1Alpha2Spec {
    pub selector: BTreeMap<String, String>,
    pub target_port_number: u16,
    #[serde(default)]
    pub extension_ref: Option<ExtensionRef>,
    /// infergate extension (standalone mode), as in v1.
    #[serde(default)]
    pub endpoints: Vec<StaticEndpoint>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtensionRef {
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default)]
    pub port_number: Option<u16>,
    #[serde(default)]
    pub failure_mode: Option<FailureMode>,
}

// ---------------------------------------------------------------- objectives and rewrites

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoolRef {
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InferenceObjectiveSpec {
    #[serde(default)]
    pub priority: Option<i32>,
    pub pool_ref: PoolRef,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InferenceModelRewriteSpec {
    pub pool_ref: PoolRef,
    #[serde(default)]
    pub rules: Vec<RewriteRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RewriteRule {
    #[serde(default)]
    pub matches: Vec<RewriteMatch>,
    pub targets: Vec<RewriteTarget>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RewriteMatch {
    pub model: ModelMatch,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelMatch {
    #[serde(rename = "type", default = "exact")]
    pub match_type: String,
    pub value: String,
}

fn exact() -> String {
    "Exact".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RewriteTarget {
    pub model_rewrite: String,
    #[serde(default)]
    pub weight: Option<u32>,
}

/// Legacy (v1alpha2, removed in GIE v1.0) — still accepted.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InferenceModelSpec {
    pub model_name: String,
    #[serde(default)]
    pub criticality: Option<Criticality>,
    pub pool_ref: PoolRef,
    #[serde(default)]
    pub target_models: Vec<TargetModel>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum Criticality {
    Critical,
    Standard,
    Sheddable,
}

impl Criticality {
    /// The InferenceObjective priority this criticality corresponds to: sheddable is negative
    /// (as upstream's `IsSheddable(p) = p < 0`), standard is the default 0, critical above it.
    pub fn priority(self) -> i32 {
        match self {
            Criticality::Critical => 1,
            Criticality::Standard => 0,
            Criticality::Sheddable => -1,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetModel {
    pub name: String,
    #[serde(default)]
    pub weight: Option<u32>,
}

// ---------------------------------------------------------------- infergate kinds

/// A model name that clients use, and where its requests go.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublicModelSpec {
    /// The name clients put in `model`; defaults to `metadata.name`.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Weighted targets; one is drawn per request.
    pub targets: Vec<ModelTarget>,
    /// Tried in order when the drawn target cannot serve (no endpoint, upstream failure before
    /// the first byte).
    #[serde(default)]
    pub fallbacks: Vec<ModelTarget>,
    /// Default priority for requests to this model (InferenceObjective semantics).
    #[serde(default)]
    pub priority: Option<i32>,
    /// Header-matched canaries, first match wins.
    #[serde(default)]
    pub canaries: Vec<CanarySpec>,
    /// Shadow traffic to a candidate target.
    #[serde(default)]
    pub shadow: Option<ShadowSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelTarget {
    /// An `InferencePool` name (set this or `backend`).
    #[serde(default)]
    pub pool: Option<String>,
    /// A `Backend` name: an external provider (set this or `pool`).
    #[serde(default)]
    pub backend: Option<String>,
    /// The model name to send upstream; defaults to the public name (then the pool's
    /// `InferenceModelRewrite` rules apply).
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub weight: Option<u32>,
    /// The model's context window in tokens. A context-length error fails over only to
    /// fallbacks with a larger one.
    #[serde(default)]
    pub context_window: Option<u64>,
}

/// Requests whose headers match go to these targets instead of the public model's `targets`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanarySpec {
    #[serde(rename = "match")]
    pub matches: CanaryMatch,
    pub targets: Vec<ModelTarget>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryMatch {
    /// Header name → exact value; every listed header must match.
    pub headers: BTreeMap<String, String>,
}

/// A copy of a share of requests sent to a candidate; its answer is discarded.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShadowSpec {
    pub target: ModelTarget,
    /// Share of requests copied, 0–100 (default 100).
    #[serde(default)]
    pub percent: Option<f64>,
}

/// Gateway-wide settings. At most one per configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewaySettingsSpec {
    /// Data-plane listener, e.g. `127.0.0.1:8080`.
    #[serde(default)]
    pub listen: Option<String>,
    /// Admin listener (`/metrics`, `/healthz`, `/readyz`), e.g. `127.0.0.1:9901`.
    #[serde(default)]
    pub admin: Option<String>,
    #[serde(default)]
    pub tls: Option<TlsSettings>,
    #[serde(default)]
    pub max_request_body: Option<ByteSize>,
    #[serde(default)]
    pub timeouts: TimeoutSettings,
    #[serde(default)]
    pub retries: RetrySettings,
    #[serde(default)]
    pub health: HealthSettings,
    #[serde(default)]
    pub access_log: AccessLogSettings,
    #[serde(default)]
    pub reload: ReloadSettings,
    /// The embedder for guardrails, the semantic cache, routing and retrieval.
    #[serde(default)]
    pub embeddings: Option<crate::semantic::EmbeddingsSpec>,
    /// Credentials accepted from callers, and the admin API's.
    #[serde(default)]
    pub auth: crate::policy::AuthSpec,
    /// Where keys, spend and shared limits live (SQLite file, Redis).
    #[serde(default)]
    pub state: crate::policy::StateSpec,
    /// Model-wide limits and the token estimate.
    #[serde(default)]
    pub limits: crate::policy::GlobalLimitsSpec,
    #[serde(default)]
    pub budgets: crate::policy::BudgetSettingsSpec,
    /// USD per million tokens, per public model (and backend).
    #[serde(default)]
    pub prices: Vec<crate::policy::PriceSpec>,
    /// Per-target circuit breaking (pools; backends may override).
    #[serde(default)]
    pub circuit_breaker: Option<CircuitBreakerSpec>,
    #[serde(default)]
    pub data_residency: DataResidencySpec,
    #[serde(default)]
    pub egress: EgressSpec,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CircuitBreakerSpec {
    /// Failures in a row (connect error, timeout, 5xx, 429) that open the circuit; 0 disables.
    #[serde(default)]
    pub consecutive_failures: Option<u32>,
    /// How long an open circuit stays open before one trial request is let through.
    #[serde(default)]
    pub cooldown: Option<Dur>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataResidencySpec {
    /// A request header, set by a trusted front proxy, listing the regions (comma-separated)
    /// a request may be served in. Only read when configured.
    #[serde(default)]
    pub region_header: Option<String>,
    /// The region of pools that carry no `infergate.dev/region` label.
    #[serde(default)]
    pub local_region: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressSpec {
    /// HTTP CONNECT proxy for requests to external backends, e.g. `http://proxy:3128`.
    #[serde(default)]
    pub proxy: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsSettings {
    pub cert_file: String,
    pub key_file: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimeoutSettings {
    /// TCP connect to an upstream endpoint.
    #[serde(default)]
    pub connect: Option<Dur>,
    /// Until the upstream's response headers (queueing + prefill for a stream).
    #[serde(default)]
    pub response_headers: Option<Dur>,
    /// Longest silence between two chunks of a streamed response.
    #[serde(default)]
    pub stream_idle: Option<Dur>,
    /// From sending the request to the first token (a stream's first data, or a whole
    /// answer's headers); defaults to `responseHeaders`.
    #[serde(default)]
    pub first_token: Option<Dur>,
    /// Reading the client's request headers and body.
    #[serde(default)]
    pub request_read: Option<Dur>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetrySettings {
    /// Total attempts per request, first included (default 3).
    #[serde(default)]
    pub attempts: Option<u32>,
    #[serde(default)]
    pub budget: Option<RetryBudgetSpec>,
}

/// Extra attempts (retries and fallbacks) allowed, over a 10 s window: at most
/// `max(minRetries, ratio × requests)`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryBudgetSpec {
    /// Default 0.2.
    #[serde(default)]
    pub ratio: Option<f64>,
    /// Default 10: a floor so a quiet gateway can still fail over.
    #[serde(default)]
    pub min_retries: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthSettings {
    /// Consecutive 5xx answers that eject an endpoint (connect errors eject at once).
    #[serde(default)]
    pub consecutive_5xx: Option<u32>,
    /// How long an ejected endpoint stays out before probes may bring it back.
    #[serde(default)]
    pub cooldown: Option<Dur>,
    /// Readiness probe interval for ejected endpoints.
    #[serde(default)]
    pub probe_interval: Option<Dur>,
    /// Readiness probe path (GET, 200 = ready).
    #[serde(default)]
    pub probe_path: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessLogSettings {
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `stdout` (default), `stderr` or a file path.
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReloadSettings {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub interval: Option<Dur>,
}

/// A simulated model-server fleet that `infergate serve` starts in-process (demos, tests).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulatorSpec {
    pub model: String,
    #[serde(default = "one")]
    pub replicas: usize,
    #[serde(default = "localhost")]
    pub host: String,
    /// Replica i listens on `port + i`.
    pub port: u16,
    /// Simulator flags by their CLI names (e.g. `time-to-first-token: 20`).
    #[serde(default)]
    pub args: BTreeMap<String, serde_json::Value>,
}

fn one() -> usize {
    1
}

fn localhost() -> String {
    "127.0.0.1".into()
}

// ---------------------------------------------------------------- external providers

/// An external provider (or any OpenAI-compatible server) that public models can target.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendSpec {
    /// `OpenAI`, `OpenAICompatible`, `AzureOpenAI`, `Anthropic`, `AWSBedrock`, `GCPVertexAI`,
    /// `Gemini`.
    pub provider: String,
    /// `gen_ai.provider.name` for metrics and logs; defaults to the provider's own.
    #[serde(default)]
    pub provider_name: Option<String>,
    /// Scheme, host and path prefix; defaults to the provider's public endpoint.
    #[serde(default, rename = "baseURL")]
    pub base_url: Option<String>,
    /// Where the backend processes data (data residency); also Bedrock's and Vertex's region.
    #[serde(default)]
    pub region: Option<String>,
    /// GCP project (Vertex AI).
    #[serde(default)]
    pub project: Option<String>,
    /// Azure OpenAI `api-version`.
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub credentials: Option<CredentialsSpec>,
    /// Forward the client's own credential (`Authorization`, `x-api-key`, `api-key`) instead
    /// of the gateway's. Off unless set.
    #[serde(default)]
    pub passthrough_credentials: bool,
    #[serde(default)]
    pub pricing: Option<PricingSpec>,
    #[serde(default)]
    pub timeouts: BackendTimeouts,
    #[serde(default)]
    pub circuit_breaker: Option<CircuitBreakerSpec>,
    /// HTTP CONNECT proxy for this backend; overrides `GatewaySettings.spec.egress.proxy`.
    /// `none` disables the gateway-wide one.
    #[serde(default)]
    pub proxy: Option<String>,
}

/// Where the gateway's credential for a backend comes from. Exactly one.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialsSpec {
    #[serde(default)]
    pub secret_ref: Option<SecretKeyRef>,
    /// A file holding the key (re-read when it changes).
    #[serde(default)]
    pub file: Option<String>,
    /// An environment variable holding the key (AWS: a prefix, `AWS` → `AWS_ACCESS_KEY_ID` …).
    #[serde(default)]
    pub env: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    pub name: String,
    /// Key inside the Secret; defaults per provider (`apiKey`, `credentials.json`; AWS reads
    /// `accessKeyId`, `secretAccessKey`, `sessionToken`).
    #[serde(default)]
    pub key: Option<String>,
}

/// Prices in USD per million tokens.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PricingSpec {
    pub input: f64,
    pub output: f64,
    #[serde(default)]
    pub cached_input: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendTimeouts {
    #[serde(default)]
    pub connect: Option<Dur>,
    #[serde(default)]
    pub first_token: Option<Dur>,
    #[serde(default)]
    pub stream_idle: Option<Dur>,
}

/// A Kubernetes `Secret` (core `v1`): `data` base64-encoded, `stringData` plain.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretResource {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    #[serde(default, rename = "type")]
    pub secret_type: Option<String>,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    #[serde(default)]
    pub string_data: BTreeMap<String, String>,
    #[serde(default)]
    pub immutable: Option<bool>,
}
