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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelTarget {
    /// An `InferencePool` name.
    pub pool: String,
    /// The model name to send upstream; defaults to the public name (then the pool's
    /// `InferenceModelRewrite` rules apply).
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub weight: Option<u32>,
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
