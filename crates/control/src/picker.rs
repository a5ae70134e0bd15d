//! `EndpointPickerConfig`: how a pool picks endpoints, in the shape of the Gateway API Inference
//! Extension's EPP configuration — `plugins[]` (`name`, `type`, `parameters`),
//! `schedulingProfiles[]` (`plugins[]` of `pluginRef` + `weight`), `saturationDetector`,
//! `flowControl` — so a configuration written for the upstream EPP reads the same here.
//!
//! This module owns the document shape, the plugin catalogue with each plugin's typed parameters
//! and their defaults (the anchor's), and validation with file/line/field. It produces a
//! [`PickerConfig`]: one profile (filters, weighted scorers, a picker), the saturation detector,
//! flow control and the metric source, every default filled in. Which pools use which config is
//! decided by [`ConfigSet::picker_for`](crate::ConfigSet::picker_for).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::loader::ConfigError;
use crate::resources::Metadata;
use crate::units::{ByteSize, Dur};

/// The upstream EPP config group (GIE); `llm-d.ai/v1alpha1` and infergate's own group are
/// accepted too.
pub const PICKER_API_GIE: &str = "inference.networking.x-k8s.io/v1alpha1";
pub const PICKER_API_LLMD: &str = "llm-d.ai/v1alpha1";
pub const PICKER_KIND: &str = "EndpointPickerConfig";

/// The document as written (no `spec`: the upstream shape is flat).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointPickerConfigDoc {
    pub api_version: String,
    pub kind: String,
    /// infergate addition: names the config so pools can reference it (optional upstream).
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub plugins: Vec<PluginDecl>,
    #[serde(default)]
    pub scheduling_profiles: Vec<ProfileDecl>,
    #[serde(default)]
    pub saturation_detector: Option<PluginRefDecl>,
    #[serde(default)]
    pub flow_control: Option<FlowControlDecl>,
    /// Accepted for compatibility; flow control is always available here (see `flowControl`).
    #[serde(default)]
    pub feature_gates: Vec<String>,
    /// Accepted for compatibility: infergate's data layer (metric scraping) is built in and is
    /// configured through the `metrics-data-source` / `core-metrics-extractor` plugins.
    #[serde(default)]
    pub data: Option<serde_json::Value>,
    #[serde(default)]
    pub data_layer: Option<serde_json::Value>,
    /// Accepted for compatibility; requests are parsed by the gateway's own OpenAI parser.
    #[serde(default)]
    pub parser: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginDecl {
    /// Defaults to the type.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub plugin_type: String,
    #[serde(default)]
    pub parameters: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileDecl {
    pub name: String,
    #[serde(default)]
    pub plugins: Vec<ProfilePluginRef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfilePluginRef {
    pub plugin_ref: String,
    #[serde(default)]
    pub weight: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginRefDecl {
    pub plugin_ref: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlowControlDecl {
    /// infergate: `false` gives the anchor's legacy admission (shed sheddable when saturated,
    /// everything else goes straight through).
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub max_bytes: Option<ByteSize>,
    #[serde(default)]
    pub max_requests: Option<u64>,
    /// How long a request may wait in the queue before it is answered 503.
    #[serde(default, rename = "defaultRequestTTL")]
    pub default_request_ttl: Option<Dur>,
    #[serde(default)]
    pub default_priority_band: Option<BandDecl>,
    #[serde(default)]
    pub priority_bands: Vec<BandDecl>,
    /// infergate: tell the model server each request's priority (vLLM's `priority` field,
    /// lower = sooner, i.e. minus the InferenceObjective priority). Needs the engine started
    /// with `--scheduling-policy priority`; vLLM refuses non-zero priorities otherwise.
    #[serde(default)]
    pub engine_priority: Option<bool>,
    /// infergate: keep a share of the pool's endpoints free of sheddable work while
    /// non-sheddable traffic is present.
    #[serde(default)]
    pub non_sheddable_reserve: Option<ReserveDecl>,
}

/// `flowControl.nonSheddableReserve`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReserveDecl {
    /// Share of the pool's endpoints (0 to 1, rounded down to whole endpoints) that take no
    /// sheddable request while non-sheddable traffic is present.
    #[serde(default)]
    pub endpoint_share: Option<f64>,
    /// Non-sheddable traffic counts as present for this long after its last request.
    #[serde(default)]
    pub window: Option<Dur>,
    /// Non-sheddable requests go to the reserved endpoints first (default true).
    #[serde(default)]
    pub prefer_reserved: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BandDecl {
    /// Required in `priorityBands`, not allowed in `defaultPriorityBand`.
    #[serde(default)]
    pub priority: Option<i32>,
    #[serde(default)]
    pub max_bytes: Option<ByteSize>,
    #[serde(default)]
    pub max_requests: Option<u64>,
    #[serde(default)]
    pub fairness_policy_ref: Option<String>,
    #[serde(default)]
    pub ordering_policy_ref: Option<String>,
}

// ---------------------------------------------------------------- plugin parameters

/// `prefix-cache-scorer` (and `approx-prefix-cache-producer`): the anchor's approximate
/// prefix index, plus infergate's fix for GIE #2561.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PrefixCacheParams {
    /// Tokens per block (vLLM's default block size).
    pub block_size_tokens: usize,
    pub average_characters_per_token: usize,
    /// v1.0 form: characters per block; overrides the two above when set.
    pub hash_block_size: Option<usize>,
    pub max_prefix_blocks_to_match: usize,
    pub max_prefix_tokens_to_match: Option<usize>,
    pub lru_capacity_per_server: usize,
    /// Take block size and per-endpoint capacity from `vllm:cache_config_info` when scraped.
    pub auto_tune: bool,
    /// GIE #2561 fix: a match counts fully only from this many matched blocks on; below it the
    /// score shrinks in proportion (`matched / max(total, this)`), so short prompts do not pile
    /// onto one endpoint. 1 = the anchor's `matched / total`.
    pub min_match_blocks_for_full_score: usize,
}

impl Default for PrefixCacheParams {
    fn default() -> Self {
        Self {
            block_size_tokens: 16,
            average_characters_per_token: 4,
            hash_block_size: None,
            max_prefix_blocks_to_match: 256,
            max_prefix_tokens_to_match: None,
            lru_capacity_per_server: 31_250,
            auto_tune: true,
            min_match_blocks_for_full_score: 32,
        }
    }
}

/// `precise-prefix-cache-scorer`: scores by the KV blocks endpoints report holding (vLLM KV
/// events over ZMQ).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PrecisePrefixParams {
    /// Where the gateway binds its ZMQ SUB socket; model servers connect their publishers here
    /// (vLLM `--kv-events-config endpoint`, simulator `--zmq-endpoint`).
    pub zmq_endpoint: String,
    /// Connect instead of binding: the PUB sockets the model servers bind (vLLM's default
    /// `tcp://*:5557` on each server), one `tcp://HOST:PORT` per server. Every picker replica
    /// can subscribe to every server this way. When set, `zmq_endpoint` is not bound.
    pub zmq_connect: Vec<String>,
    /// Only topics starting with this are read (`kv@<ip>:<port>@<model>`).
    pub topic_filter: String,
    /// Tokens per block until the events say otherwise.
    pub block_size: usize,
    pub max_prefix_blocks_to_match: usize,
    /// Counts a request's blocks as held by the endpoint it was sent to for this long, until
    /// the engine's own events arrive (bursts of one prefix otherwise miss each other).
    pub speculative_ttl: Dur,
    /// As for `prefix-cache-scorer` (GIE #2561), in token blocks.
    pub min_match_blocks_for_full_score: usize,
}

impl Default for PrecisePrefixParams {
    fn default() -> Self {
        Self {
            zmq_endpoint: "tcp://127.0.0.1:5557".into(),
            zmq_connect: Vec::new(),
            topic_filter: "kv@".into(),
            block_size: 16,
            max_prefix_blocks_to_match: 1024,
            speculative_ttl: Dur::from_millis(2000),
            min_match_blocks_for_full_score: 32,
        }
    }
}

/// Pickers: how many endpoints to return (the primary, then fallbacks in order).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PickerParams {
    pub max_num_of_endpoints: usize,
}

impl Default for PickerParams {
    fn default() -> Self {
        Self {
            max_num_of_endpoints: 1,
        }
    }
}

/// `utilization-detector` (the anchor's default saturation detector; also usable as a filter).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct UtilizationParams {
    pub queue_depth_threshold: f64,
    pub kv_cache_util_threshold: f64,
    pub metrics_staleness_threshold: Dur,
    pub headroom: f64,
}

impl Default for UtilizationParams {
    fn default() -> Self {
        Self {
            queue_depth_threshold: 5.0,
            kv_cache_util_threshold: 0.8,
            metrics_staleness_threshold: Dur::from_millis(200),
            headroom: 0.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ConcurrencyMode {
    Requests,
    Tokens,
}

/// `concurrency-detector`: saturation from the gateway's own in-flight counts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ConcurrencyParams {
    pub concurrency_mode: ConcurrencyMode,
    /// Per endpoint.
    pub max_concurrency: u64,
    pub max_token_concurrency: u64,
    pub headroom: f64,
}

impl Default for ConcurrencyParams {
    fn default() -> Self {
        Self {
            concurrency_mode: ConcurrencyMode::Requests,
            max_concurrency: 100,
            max_token_concurrency: 1_000_000,
            headroom: 0.0,
        }
    }
}

/// `metrics-data-source`: scraping each endpoint's Prometheus metrics.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MetricsSourceParams {
    pub scheme: String,
    pub path: String,
    /// The anchor's `--refresh-metrics-interval`.
    pub refresh_interval: Dur,
    /// Scrapes in flight at once per pool.
    pub max_concurrency: usize,
    pub timeout: Dur,
}

impl Default for MetricsSourceParams {
    fn default() -> Self {
        Self {
            scheme: "http".into(),
            path: "/metrics".into(),
            refresh_interval: Dur::from_millis(50),
            max_concurrency: 16,
            timeout: Dur::from_millis(1000),
        }
    }
}

/// `core-metrics-extractor`: which metric names each engine uses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ExtractorParams {
    /// The endpoint (pod) label naming its engine.
    pub engine_label_key: String,
    /// The engine of endpoints without that label.
    pub default_engine: String,
    /// Extra or overriding engines.
    pub engine_configs: Vec<EngineMetricNames>,
}

impl Default for ExtractorParams {
    fn default() -> Self {
        Self {
            engine_label_key: "inference.networking.k8s.io/engine-type".into(),
            default_engine: "vllm".into(),
            engine_configs: Vec::new(),
        }
    }
}

/// Metric names of one engine. A name may carry label matchers: `metric{label="value"}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EngineMetricNames {
    pub name: String,
    #[serde(default)]
    pub queued_requests_metric: Vec<String>,
    #[serde(default)]
    pub running_requests_metric: Vec<String>,
    #[serde(default)]
    pub kv_cache_usage_metric: Vec<String>,
    #[serde(default)]
    pub lora_info_metric: Option<String>,
    #[serde(default)]
    pub cache_info_metric: Option<String>,
}

/// Every plugin type infergate knows, with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum PluginKind {
    QueueScorer,
    KvCacheUtilizationScorer,
    RunningRequestsScorer,
    PrefixCacheScorer(PrefixCacheParams),
    PrecisePrefixCacheScorer(PrecisePrefixParams),
    LoraAffinityScorer,
    PrefillScorer,
    MaxScorePicker(PickerParams),
    RandomPicker(PickerParams),
    WeightedRandomPicker(PickerParams),
    RoundRobinPicker(PickerParams),
    UtilizationDetector(UtilizationParams),
    ConcurrencyDetector(ConcurrencyParams),
    SingleProfileHandler,
    MetricsDataSource(MetricsSourceParams),
    CoreMetricsExtractor(ExtractorParams),
}

/// Plugin types, in the order the error message lists them.
pub const PLUGIN_TYPES: &[&str] = &[
    "queue-scorer",
    "kv-cache-utilization-scorer",
    "running-requests-size-scorer",
    "prefix-cache-scorer",
    "precise-prefix-cache-scorer",
    "lora-affinity-scorer",
    "prefill-scorer",
    "max-score-picker",
    "random-picker",
    "weighted-random-picker",
    "round-robin-picker",
    "utilization-detector",
    "concurrency-detector",
    "single-profile-handler",
    "metrics-data-source",
    "core-metrics-extractor",
    "approx-prefix-cache-producer",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginRole {
    Scorer,
    Picker,
    Detector,
    Other,
}

impl PluginKind {
    pub fn role(&self) -> PluginRole {
        match self {
            PluginKind::QueueScorer
            | PluginKind::KvCacheUtilizationScorer
            | PluginKind::RunningRequestsScorer
            | PluginKind::PrefixCacheScorer(_)
            | PluginKind::PrecisePrefixCacheScorer(_)
            | PluginKind::LoraAffinityScorer
            | PluginKind::PrefillScorer => PluginRole::Scorer,
            PluginKind::MaxScorePicker(_)
            | PluginKind::RandomPicker(_)
            | PluginKind::WeightedRandomPicker(_)
            | PluginKind::RoundRobinPicker(_) => PluginRole::Picker,
            PluginKind::UtilizationDetector(_) | PluginKind::ConcurrencyDetector(_) => {
                PluginRole::Detector
            }
            PluginKind::SingleProfileHandler
            | PluginKind::MetricsDataSource(_)
            | PluginKind::CoreMetricsExtractor(_) => PluginRole::Other,
        }
    }

    /// Parse `type` + `parameters`. Errors carry the path below `parameters`.
    fn parse(
        plugin_type: &str,
        params: Option<&serde_json::Value>,
    ) -> Result<PluginKind, (String, String)> {
        fn typed<T: DeserializeOwned + Default>(
            params: Option<&serde_json::Value>,
        ) -> Result<T, (String, String)> {
            match params {
                None | Some(serde_json::Value::Null) => Ok(T::default()),
                Some(v) => serde_path_to_error::deserialize(v.clone()).map_err(|e| {
                    let path = e.path().to_string();
                    let path = if path == "." { String::new() } else { path };
                    (path, e.inner().to_string())
                }),
            }
        }
        fn none(params: Option<&serde_json::Value>) -> Result<(), (String, String)> {
            match params {
                None | Some(serde_json::Value::Null) => Ok(()),
                Some(serde_json::Value::Object(m)) if m.is_empty() => Ok(()),
                Some(_) => Err((String::new(), "this plugin takes no parameters".into())),
            }
        }
        Ok(match plugin_type {
            "queue-scorer" => none(params).map(|()| PluginKind::QueueScorer)?,
            "kv-cache-utilization-scorer" => {
                none(params).map(|()| PluginKind::KvCacheUtilizationScorer)?
            }
            "running-requests-size-scorer" => {
                none(params).map(|()| PluginKind::RunningRequestsScorer)?
            }
            "prefix-cache-scorer" | "approx-prefix-cache-producer" => {
                PluginKind::PrefixCacheScorer(typed(params)?)
            }
            "precise-prefix-cache-scorer" => PluginKind::PrecisePrefixCacheScorer(typed(params)?),
            "lora-affinity-scorer" => none(params).map(|()| PluginKind::LoraAffinityScorer)?,
            "prefill-scorer" => none(params).map(|()| PluginKind::PrefillScorer)?,
            "max-score-picker" => PluginKind::MaxScorePicker(typed(params)?),
            "random-picker" => PluginKind::RandomPicker(typed(params)?),
            "weighted-random-picker" => PluginKind::WeightedRandomPicker(typed(params)?),
            "round-robin-picker" => PluginKind::RoundRobinPicker(typed(params)?),
            "utilization-detector" => PluginKind::UtilizationDetector(typed(params)?),
            "concurrency-detector" => PluginKind::ConcurrencyDetector(typed(params)?),
            "single-profile-handler" => none(params).map(|()| PluginKind::SingleProfileHandler)?,
            "metrics-data-source" => PluginKind::MetricsDataSource(typed(params)?),
            "core-metrics-extractor" => PluginKind::CoreMetricsExtractor(typed(params)?),
            other => {
                return Err((
                    String::new(),
                    format!(
                        "unknown plugin type `{other}`; known types: {}",
                        PLUGIN_TYPES.join(", ")
                    ),
                ))
            }
        })
    }
}

/// One configured plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginInstance {
    pub name: String,
    pub kind: PluginKind,
}

/// The one scheduling profile a pool runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileConfig {
    pub name: String,
    /// Filters in order (today: `utilization-detector` used as a filter).
    pub filters: Vec<PluginInstance>,
    pub scorers: Vec<(PluginInstance, f64)>,
    pub picker: PluginInstance,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SaturationConfig {
    Utilization(UtilizationParams),
    Concurrency(ConcurrencyParams),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FairnessPolicy {
    /// Flows in a band take turns (infergate's default).
    RoundRobin,
    /// One FCFS order across every flow of the band (the anchor's default).
    GlobalStrict,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BandConfig {
    pub priority: i32,
    pub max_bytes: u64,
    pub max_requests: u64,
    pub fairness: FairnessPolicy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlowControlConfig {
    pub enabled: bool,
    /// Over every band.
    pub max_bytes: u64,
    pub max_requests: u64,
    pub request_ttl: Duration,
    /// Limits of a band created for a priority not listed in `bands`.
    pub default_band: BandConfig,
    /// Listed bands, by priority.
    pub bands: BTreeMap<i32, BandConfig>,
    /// Send each request's priority to the engine (vLLM `priority`, negated).
    pub engine_priority: bool,
    /// Endpoints kept free of sheddable work while non-sheddable traffic is present.
    pub reserve: ReserveConfig,
}

/// `flowControl.nonSheddableReserve`: while non-sheddable requests (priority ≥ 0) arrived within
/// `window`, `floor(endpoint_share × endpoints)` endpoints (a stable choice, the same in every
/// picker replica) take no sheddable request; sheddable requests go to the others and are
/// refused (429) when those are saturated. With `prefer_reserved`, non-sheddable requests are
/// picked among the reserved endpoints, and spill over to the others only when none of those
/// has room.
#[derive(Debug, Clone, PartialEq)]
pub struct ReserveConfig {
    /// 0 = off (the default).
    pub endpoint_share: f64,
    pub window: Duration,
    pub prefer_reserved: bool,
}

impl Default for ReserveConfig {
    fn default() -> Self {
        Self {
            endpoint_share: 0.0,
            window: Duration::from_secs(10),
            prefer_reserved: true,
        }
    }
}

impl ReserveConfig {
    /// Endpoints reserved out of `n`.
    pub fn reserved_of(&self, n: usize) -> usize {
        ((self.endpoint_share * n as f64 + 1e-9).floor() as usize).min(n)
    }
}

impl Default for FlowControlConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_bytes: u64::MAX,
            max_requests: u64::MAX,
            request_ttl: Duration::from_secs(30),
            default_band: BandConfig {
                priority: 0,
                max_bytes: 1 << 30,
                max_requests: 10_000,
                fairness: FairnessPolicy::RoundRobin,
            },
            bands: BTreeMap::new(),
            engine_priority: false,
            reserve: ReserveConfig::default(),
        }
    }
}

impl FlowControlConfig {
    /// The limits of the band for `priority`.
    pub fn band(&self, priority: i32) -> BandConfig {
        self.bands.get(&priority).cloned().unwrap_or(BandConfig {
            priority,
            ..self.default_band.clone()
        })
    }
}

/// A validated endpoint-picker configuration, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct PickerConfig {
    /// `metadata.name`, or `default`.
    pub name: String,
    pub profile: ProfileConfig,
    pub saturation: SaturationConfig,
    pub flow_control: FlowControlConfig,
    pub metrics_source: MetricsSourceParams,
    pub extractor: ExtractorParams,
}

impl Default for PickerConfig {
    /// The anchor's default: queue 2, KV-cache utilisation 2, prefix cache 3, max-score picker,
    /// utilization detector, 50 ms scraping.
    fn default() -> Self {
        let inst = |kind: PluginKind| PluginInstance {
            name: kind_type_name(&kind).to_string(),
            kind,
        };
        Self {
            name: "default".into(),
            profile: ProfileConfig {
                name: "default".into(),
                filters: Vec::new(),
                scorers: vec![
                    (inst(PluginKind::QueueScorer), 2.0),
                    (inst(PluginKind::KvCacheUtilizationScorer), 2.0),
                    (
                        inst(PluginKind::PrefixCacheScorer(PrefixCacheParams::default())),
                        3.0,
                    ),
                ],
                picker: inst(PluginKind::MaxScorePicker(PickerParams::default())),
            },
            saturation: SaturationConfig::Utilization(UtilizationParams::default()),
            flow_control: FlowControlConfig::default(),
            metrics_source: MetricsSourceParams::default(),
            extractor: ExtractorParams::default(),
        }
    }
}

/// The canonical type name of a plugin kind.
pub fn kind_type_name(kind: &PluginKind) -> &'static str {
    match kind {
        PluginKind::QueueScorer => "queue-scorer",
        PluginKind::KvCacheUtilizationScorer => "kv-cache-utilization-scorer",
        PluginKind::RunningRequestsScorer => "running-requests-size-scorer",
        PluginKind::PrefixCacheScorer(_) => "prefix-cache-scorer",
        PluginKind::PrecisePrefixCacheScorer(_) => "precise-prefix-cache-scorer",
        PluginKind::LoraAffinityScorer => "lora-affinity-scorer",
        PluginKind::PrefillScorer => "prefill-scorer",
        PluginKind::MaxScorePicker(_) => "max-score-picker",
        PluginKind::RandomPicker(_) => "random-picker",
        PluginKind::WeightedRandomPicker(_) => "weighted-random-picker",
        PluginKind::RoundRobinPicker(_) => "round-robin-picker",
        PluginKind::UtilizationDetector(_) => "utilization-detector",
        PluginKind::ConcurrencyDetector(_) => "concurrency-detector",
        PluginKind::SingleProfileHandler => "single-profile-handler",
        PluginKind::MetricsDataSource(_) => "metrics-data-source",
        PluginKind::CoreMetricsExtractor(_) => "core-metrics-extractor",
    }
}

/// Validate one document. `err(field, message)` builds an error located in the file.
pub(crate) fn validate_picker(
    doc: &EndpointPickerConfigDoc,
    err: &dyn Fn(&str, String) -> ConfigError,
    errors: &mut Vec<ConfigError>,
) -> PickerConfig {
    let mut out = PickerConfig {
        name: doc
            .metadata
            .as_ref()
            .map_or_else(|| "default".to_string(), |m| m.name.clone()),
        ..PickerConfig::default()
    };

    // Plugins by name.
    let mut by_name: HashMap<String, (usize, PluginKind)> = HashMap::new();
    for (i, p) in doc.plugins.iter().enumerate() {
        let field = format!("plugins[{i}]");
        let name = p.name.clone().unwrap_or_else(|| p.plugin_type.clone());
        match PluginKind::parse(&p.plugin_type, p.parameters.as_ref()) {
            Ok(kind) => {
                if by_name.insert(name.clone(), (i, kind)).is_some() {
                    errors.push(err(
                        &format!("{field}.name"),
                        format!(
                            "plugin name `{name}` is used twice; give each plugin its own `name`"
                        ),
                    ));
                }
            }
            Err((path, msg)) => {
                let f = if msg.starts_with("unknown plugin type") {
                    format!("{field}.type")
                } else if path.is_empty() {
                    format!("{field}.parameters")
                } else {
                    format!("{field}.parameters.{path}")
                };
                errors.push(err(&f, msg));
            }
        }
    }
    // Checks on parameter values.
    for (name, (i, kind)) in &by_name {
        let field = |p: &str| format!("plugins[{i}].parameters.{p}");
        match kind {
            PluginKind::PrefixCacheScorer(p) => {
                if p.block_size_tokens == 0 || p.average_characters_per_token == 0 {
                    errors.push(err(
                        &field("blockSizeTokens"),
                        format!("plugin `{name}`: block size and characters per token must be at least 1"),
                    ));
                }
                if p.max_prefix_blocks_to_match == 0 || p.lru_capacity_per_server == 0 {
                    errors.push(err(
                        &field("maxPrefixBlocksToMatch"),
                        format!("plugin `{name}`: maxPrefixBlocksToMatch and lruCapacityPerServer must be at least 1"),
                    ));
                }
            }
            PluginKind::PrecisePrefixCacheScorer(p) => {
                if !p.zmq_endpoint.starts_with("tcp://") {
                    errors.push(err(
                        &field("zmqEndpoint"),
                        format!(
                            "plugin `{name}`: `{}` is not a ZMQ TCP endpoint; write tcp://HOST:PORT",
                            p.zmq_endpoint
                        ),
                    ));
                }
                for (j, e) in p.zmq_connect.iter().enumerate() {
                    if !e.starts_with("tcp://") || e.contains('*') {
                        errors.push(err(
                            &field(&format!("zmqConnect[{j}]")),
                            format!(
                                "plugin `{name}`: `{e}` is not a model server's KV-event address; write tcp://HOST:PORT (the server binds tcp://*:PORT)"
                            ),
                        ));
                    }
                }
                if p.block_size == 0 {
                    errors.push(err(
                        &field("blockSize"),
                        "use a block size of at least 1".into(),
                    ));
                }
            }
            PluginKind::MaxScorePicker(p)
            | PluginKind::RandomPicker(p)
            | PluginKind::WeightedRandomPicker(p)
            | PluginKind::RoundRobinPicker(p)
                if (p.max_num_of_endpoints == 0 || p.max_num_of_endpoints > 16) =>
            {
                errors.push(err(
                    &field("maxNumOfEndpoints"),
                    "return 1 to 16 endpoints (the primary plus fallbacks)".into(),
                ));
            }
            PluginKind::UtilizationDetector(p) => {
                if p.queue_depth_threshold <= 0.0
                    || p.kv_cache_util_threshold.is_nan()
                    || p.kv_cache_util_threshold <= 0.0
                {
                    errors.push(err(
                        &field("queueDepthThreshold"),
                        "thresholds must be positive".into(),
                    ));
                }
                if p.headroom < 0.0 {
                    errors.push(err(
                        &field("headroom"),
                        "headroom cannot be negative".into(),
                    ));
                }
            }
            PluginKind::ConcurrencyDetector(p)
                if (p.max_concurrency == 0 || p.max_token_concurrency == 0) =>
            {
                errors.push(err(
                    &field("maxConcurrency"),
                    "limits must be at least 1".into(),
                ));
            }
            PluginKind::MetricsDataSource(p) => {
                if p.refresh_interval.get() < Duration::from_millis(5) {
                    errors.push(err(
                        &field("refreshInterval"),
                        "scrape at most every 5ms".into(),
                    ));
                }
                if p.max_concurrency == 0 {
                    errors.push(err(&field("maxConcurrency"), "allow at least 1".into()));
                }
                if !p.path.starts_with('/') {
                    errors.push(err(&field("path"), "a path starts with `/`".into()));
                }
                if p.scheme != "http" {
                    errors.push(err(&field("scheme"), "only `http` is supported".into()));
                }
            }
            _ => {}
        }
    }

    // Data layer plugins apply whether or not a profile references them.
    for (_, kind) in by_name.values() {
        match kind {
            PluginKind::MetricsDataSource(p) => out.metrics_source = p.clone(),
            PluginKind::CoreMetricsExtractor(p) => out.extractor = p.clone(),
            _ => {}
        }
    }

    // The profile.
    if doc.scheduling_profiles.len() > 1 {
        errors.push(err(
            "schedulingProfiles[1]",
            "infergate runs one scheduling profile per pool (single-profile-handler); \
             keep one profile, or use a separate EndpointPickerConfig per pool"
                .into(),
        ));
    }
    if let Some(profile) = doc.scheduling_profiles.first() {
        let mut filters = Vec::new();
        let mut scorers = Vec::new();
        let mut picker: Option<PluginInstance> = None;
        for (j, r) in profile.plugins.iter().enumerate() {
            let field = format!("schedulingProfiles[0].plugins[{j}]");
            let Some((_, kind)) = by_name.get(&r.plugin_ref) else {
                let mut known: Vec<&String> = by_name.keys().collect();
                known.sort();
                errors.push(err(
                    &format!("{field}.pluginRef"),
                    format!(
                        "no plugin named `{}` in `plugins`; declared: [{}]",
                        r.plugin_ref,
                        known
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
                continue;
            };
            let inst = PluginInstance {
                name: r.plugin_ref.clone(),
                kind: kind.clone(),
            };
            match kind.role() {
                PluginRole::Scorer => {
                    let w = r.weight.unwrap_or(1.0);
                    if !(w.is_finite() && w >= 0.0) {
                        errors.push(err(
                            &format!("{field}.weight"),
                            "a weight is a number of at least 0".into(),
                        ));
                    }
                    scorers.push((inst, w));
                }
                PluginRole::Picker => {
                    if picker.is_some() {
                        errors.push(err(
                            &format!("{field}.pluginRef"),
                            "a profile has one picker".into(),
                        ));
                    }
                    if r.weight.is_some() {
                        errors.push(err(
                            &format!("{field}.weight"),
                            "only scorers take a weight".into(),
                        ));
                    }
                    picker = Some(inst);
                }
                PluginRole::Detector => {
                    if matches!(kind, PluginKind::ConcurrencyDetector(_)) {
                        errors.push(err(
                            &format!("{field}.pluginRef"),
                            "concurrency-detector cannot be used as a filter; use it as the \
                             saturationDetector"
                                .into(),
                        ));
                    }
                    filters.push(inst);
                }
                PluginRole::Other => {
                    if r.weight.is_some() {
                        errors.push(err(
                            &format!("{field}.weight"),
                            "only scorers take a weight".into(),
                        ));
                    }
                }
            }
        }
        out.profile = ProfileConfig {
            name: profile.name.clone(),
            filters,
            scorers,
            picker: picker.unwrap_or_else(|| PluginInstance {
                name: "max-score-picker".into(),
                kind: PluginKind::MaxScorePicker(PickerParams::default()),
            }),
        };
    } else if !doc.plugins.is_empty() {
        // Plugins but no profile: the anchor's default profile, with the declared plugins'
        // parameters where a default plugin of that type was declared.
        for (inst, _) in &mut out.profile.scorers {
            if let Some((_, kind)) = by_name
                .values()
                .find(|(_, k)| kind_type_name(k) == kind_type_name(&inst.kind))
            {
                inst.kind = kind.clone();
            }
        }
        // …and the declared picker (e.g. its maxNumOfEndpoints), when there is one.
        if let Some((name, (_, kind))) = by_name
            .iter()
            .find(|(_, (_, k))| matches!(k.role(), PluginRole::Picker))
        {
            out.profile.picker = PluginInstance {
                name: name.clone(),
                kind: kind.clone(),
            };
        }
    }

    // Saturation detector.
    if let Some(r) = &doc.saturation_detector {
        match by_name.get(&r.plugin_ref) {
            Some((_, PluginKind::UtilizationDetector(p))) => {
                out.saturation = SaturationConfig::Utilization(p.clone());
            }
            Some((_, PluginKind::ConcurrencyDetector(p))) => {
                out.saturation = SaturationConfig::Concurrency(p.clone());
            }
            Some(_) => errors.push(err(
                "saturationDetector.pluginRef",
                format!(
                    "`{}` is not a saturation detector; use a utilization-detector or \
                     concurrency-detector plugin",
                    r.plugin_ref
                ),
            )),
            None if r.plugin_ref == "utilization-detector" => {}
            None if r.plugin_ref == "concurrency-detector" => {
                out.saturation = SaturationConfig::Concurrency(ConcurrencyParams::default());
            }
            None => errors.push(err(
                "saturationDetector.pluginRef",
                format!("no plugin named `{}` in `plugins`", r.plugin_ref),
            )),
        }
    } else if let Some((_, PluginKind::UtilizationDetector(p))) = by_name
        .values()
        .find(|(_, k)| matches!(k, PluginKind::UtilizationDetector(_)))
    {
        out.saturation = SaturationConfig::Utilization(p.clone());
    }

    // Flow control.
    if let Some(fc) = &doc.flow_control {
        let f = &mut out.flow_control;
        if let Some(e) = fc.enabled {
            f.enabled = e;
        }
        if let Some(b) = fc.max_bytes {
            f.max_bytes = b.0;
        }
        if let Some(n) = fc.max_requests {
            f.max_requests = n;
        }
        if let Some(e) = fc.engine_priority {
            f.engine_priority = e;
        }
        if let Some(r) = &fc.non_sheddable_reserve {
            if let Some(share) = r.endpoint_share {
                if !(0.0..=1.0).contains(&share) {
                    errors.push(err(
                        "flowControl.nonSheddableReserve.endpointShare",
                        format!(
                            "{share} is not a share of the pool's endpoints; give a number from 0 \
                             (no reserve) to 1 (no sheddable traffic while non-sheddable traffic \
                             is present), e.g. 0.25"
                        ),
                    ));
                }
                f.reserve.endpoint_share = share;
            }
            if let Some(w) = r.window {
                if w.get().is_zero() {
                    errors.push(err(
                        "flowControl.nonSheddableReserve.window",
                        "the reserve needs a window in which non-sheddable traffic counts as \
                         present; give a duration such as 10s"
                            .into(),
                    ));
                }
                f.reserve.window = w.get();
            }
            if let Some(p) = r.prefer_reserved {
                f.reserve.prefer_reserved = p;
            }
        }
        if let Some(t) = fc.default_request_ttl {
            if t.get().is_zero() {
                errors.push(err(
                    "flowControl.defaultRequestTTL",
                    "a queued request needs a time limit; give a duration such as 30s".into(),
                ));
            }
            f.request_ttl = t.get();
        }
        let band = |decl: &BandDecl, field: &str, base: &BandConfig, errors: &mut Vec<_>| {
            let mut b = base.clone();
            if let Some(v) = decl.max_bytes {
                b.max_bytes = v.0;
            }
            if let Some(v) = decl.max_requests {
                b.max_requests = v;
            }
            if b.max_requests == 0 || b.max_bytes == 0 {
                errors.push(err(
                    &format!("{field}.maxRequests"),
                    "a band must hold at least one request".into(),
                ));
            }
            match decl.fairness_policy_ref.as_deref() {
                None => {}
                Some("round-robin-fairness-policy") => b.fairness = FairnessPolicy::RoundRobin,
                Some("global-strict-fairness-policy") => {
                    b.fairness = FairnessPolicy::GlobalStrict;
                }
                Some(other) => errors.push(err(
                    &format!("{field}.fairnessPolicyRef"),
                    format!(
                        "unknown fairness policy `{other}`; use round-robin-fairness-policy or \
                         global-strict-fairness-policy"
                    ),
                )),
            }
            match decl.ordering_policy_ref.as_deref() {
                None | Some("fcfs-ordering-policy") => {}
                Some(other) => errors.push(err(
                    &format!("{field}.orderingPolicyRef"),
                    format!("unknown ordering policy `{other}`; use fcfs-ordering-policy"),
                )),
            }
            b
        };
        if let Some(d) = &fc.default_priority_band {
            if d.priority.is_some() {
                errors.push(err(
                    "flowControl.defaultPriorityBand.priority",
                    "the default band applies to every priority without a band of its own; \
                     remove `priority`"
                        .into(),
                ));
            }
            let base = f.default_band.clone();
            f.default_band = band(d, "flowControl.defaultPriorityBand", &base, errors);
        }
        for (i, d) in fc.priority_bands.iter().enumerate() {
            let field = format!("flowControl.priorityBands[{i}]");
            let Some(p) = d.priority else {
                errors.push(err(
                    &format!("{field}.priority"),
                    "each band needs a `priority`".into(),
                ));
                continue;
            };
            let base = BandConfig {
                priority: p,
                ..f.default_band.clone()
            };
            let b = band(d, &field, &base, errors);
            if f.bands.insert(p, b).is_some() {
                errors.push(err(
                    &format!("{field}.priority"),
                    format!("priority {p} has two bands"),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<PickerConfig, Vec<String>> {
        let doc: EndpointPickerConfigDoc = serde_yaml_ng::from_str(yaml).unwrap();
        let mut errors = Vec::new();
        let e = |field: &str, message: String| ConfigError {
            file: "f".into(),
            line: 1,
            resource: None,
            field: field.into(),
            message,
        };
        let c = validate_picker(&doc, &e, &mut errors);
        if errors.is_empty() {
            Ok(c)
        } else {
            Err(errors
                .into_iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect())
        }
    }

    #[test]
    fn the_anchor_default_config_reads_as_our_default() {
        let c = parse(
            r#"
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
- type: max-score-picker
- type: single-profile-handler
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: kv-cache-utilization-scorer
    weight: 2
  - pluginRef: prefix-cache-scorer
    weight: 3
  - pluginRef: max-score-picker
"#,
        )
        .unwrap();
        assert_eq!(c, PickerConfig::default());
    }

    #[test]
    fn parameters_weights_and_flow_control() {
        let c = parse(
            r#"
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
metadata: {name: precise}
plugins:
- {name: kv, type: precise-prefix-cache-scorer, parameters: {zmqEndpoint: "tcp://127.0.0.1:6000", zmqConnect: ["tcp://10.0.0.1:5557"]}}
- {type: queue-scorer}
- {type: max-score-picker, parameters: {maxNumOfEndpoints: 3}}
- {name: sat, type: utilization-detector, parameters: {queueDepthThreshold: 8}}
schedulingProfiles:
- name: p
  plugins: [{pluginRef: sat}, {pluginRef: kv, weight: 2}, {pluginRef: queue-scorer}, {pluginRef: max-score-picker}]
saturationDetector: {pluginRef: sat}
flowControl:
  defaultRequestTTL: 5s
  priorityBands: [{priority: 10, maxRequests: 3, fairnessPolicyRef: global-strict-fairness-policy}]
"#,
        )
        .unwrap();
        assert_eq!(c.name, "precise");
        assert_eq!(c.profile.filters.len(), 1);
        assert_eq!(c.profile.scorers[0].1, 2.0);
        assert_eq!(c.profile.scorers[1].1, 1.0, "weight defaults to 1");
        let PluginKind::PrecisePrefixCacheScorer(p) = &c.profile.scorers[0].0.kind else {
            panic!()
        };
        assert_eq!(p.zmq_connect, ["tcp://10.0.0.1:5557"]);
        assert!(matches!(
            &c.profile.picker.kind,
            PluginKind::MaxScorePicker(PickerParams {
                max_num_of_endpoints: 3
            })
        ));
        let SaturationConfig::Utilization(u) = &c.saturation else {
            panic!()
        };
        assert_eq!(u.queue_depth_threshold, 8.0);
        assert_eq!(u.kv_cache_util_threshold, 0.8);
        assert_eq!(c.flow_control.request_ttl, Duration::from_secs(5));
        let b = c.flow_control.band(10);
        assert_eq!(
            (b.max_requests, b.fairness),
            (3, FairnessPolicy::GlobalStrict)
        );
        assert_eq!(c.flow_control.band(0).max_requests, 10_000);
    }

    #[test]
    fn prefill_scorer_and_the_non_sheddable_reserve() {
        let c = parse(
            r#"
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins: [{type: queue-scorer}, {type: prefill-scorer}, {type: max-score-picker}]
schedulingProfiles:
- name: p
  plugins: [{pluginRef: queue-scorer, weight: 2}, {pluginRef: prefill-scorer, weight: 3}, {pluginRef: max-score-picker}]
flowControl: {nonSheddableReserve: {endpointShare: 0.25, window: 5s, preferReserved: false}}
"#,
        )
        .unwrap();
        assert_eq!(c.profile.scorers[1].0.kind, PluginKind::PrefillScorer);
        assert_eq!(c.profile.scorers[1].1, 3.0);
        assert_eq!(
            c.flow_control.reserve,
            ReserveConfig {
                endpoint_share: 0.25,
                window: Duration::from_secs(5),
                prefer_reserved: false,
            }
        );
        assert_eq!(c.flow_control.reserve.reserved_of(8), 2);
        assert_eq!(c.flow_control.reserve.reserved_of(3), 0, "rounded down");
        // Off unless asked for.
        assert_eq!(
            PickerConfig::default().flow_control.reserve.reserved_of(8),
            0
        );
        let errs = parse(
            r#"
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins: [{type: prefill-scorer, parameters: {weight: 2}}]
flowControl: {nonSheddableReserve: {endpointShare: 1.5, window: 0s}}
"#,
        )
        .unwrap_err()
        .join("\n");
        for needle in [
            "plugins[0].parameters: this plugin takes no parameters",
            "flowControl.nonSheddableReserve.endpointShare: 1.5 is not a share",
            "flowControl.nonSheddableReserve.window",
        ] {
            assert!(errs.contains(needle), "missing `{needle}` in:\n{errs}");
        }
    }

    #[test]
    fn mistakes_are_reported_with_their_field() {
        let errs = parse(
            r#"
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- {type: queue-scorer}
- {type: prefix-cache-scorer, parameters: {blockSizeToken: 16}}
- {type: magic-scorer}
- {type: max-score-picker, parameters: {maxNumOfEndpoints: 0}}
- {type: precise-prefix-cache-scorer, parameters: {zmqConnect: ["tcp://*:5557"]}}
schedulingProfiles:
- name: p
  plugins: [{pluginRef: queue-scorer, weight: -1}, {pluginRef: nope}, {pluginRef: max-score-picker, weight: 2}]
saturationDetector: {pluginRef: queue-scorer}
flowControl: {priorityBands: [{maxRequests: 2}]}
"#,
        )
        .unwrap_err();
        let joined = errs.join("\n");
        for needle in [
            "plugins[1].parameters.blockSizeToken: unknown field",
            "plugins[2].type: unknown plugin type `magic-scorer`",
            "plugins[3].parameters.maxNumOfEndpoints",
            "schedulingProfiles[0].plugins[0].weight",
            "schedulingProfiles[0].plugins[1].pluginRef: no plugin named `nope`",
            "schedulingProfiles[0].plugins[2].weight: only scorers take a weight",
            "saturationDetector.pluginRef: `queue-scorer` is not a saturation detector",
            "flowControl.priorityBands[0].priority",
            "plugins[4].parameters.zmqConnect[0]: plugin `precise-prefix-cache-scorer`: `tcp://*:5557`",
        ] {
            assert!(joined.contains(needle), "missing `{needle}` in:\n{joined}");
        }
    }
}
