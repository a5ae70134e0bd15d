//! The simulator's configuration: every `infergate sim` flag, its default, its YAML key, and the
//! checks that reject nonsense before a server starts.
//!
//! Flag and key names follow vLLM / llm-d-inference-sim (`--max-num-seqs`, `--time-to-first-token`,
//! …; YAML keys are the flag names without dashes in front). Durations are milliseconds, or
//! Go-style strings (`250us`, `1.5s`). This module only describes configuration; the settings
//! that may change at runtime (`POST /admin/config`) live in [`crate::settings`].

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::duration::{deserialize_millis, parse_millis};
use crate::failure::FailureType;
use crate::fake_metrics::FakeMetrics;

/// Default `--max-model-len`. vLLM's simulator uses 1024; infergate uses Llama-3.1's 131072 so the
/// gateway's long-prompt tests and benchmarks (a 220 KB prompt is ~40k tokens here) reach the
/// model instead of bouncing off a context-length error no real deployment would return.
pub const DEFAULT_MAX_MODEL_LEN: u32 = 131_072;

/// `--scheduling-policy`: the order of waiting requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SchedulingPolicy {
    /// First come, first served.
    #[default]
    Fcfs,
    /// By the request's `priority` (lower first), then arrival.
    Priority,
}

/// How the model generates text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Deterministic random sentences (seeded by `--seed` and the prompt).
    #[default]
    Random,
    /// Echo the last user message (chat) or the prompt (completions).
    Echo,
}

/// How time-to-first-token is computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LatencyCalculator {
    /// `per-token` when `--prefill-overhead` or `--prefill-time-per-token` is set, else `constant`.
    #[default]
    Auto,
    /// TTFT = `--time-to-first-token`.
    Constant,
    /// TTFT = `--prefill-overhead` + uncached prompt tokens × `--prefill-time-per-token`.
    PerToken,
}

/// A LoRA adapter served from startup (`--lora-modules`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoraModule {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_model_name: Option<String>,
}

impl FromStr for LoraModule {
    type Err = String;

    /// `{"name":"a","path":"/p","base_model_name":"m"}`, `name=path`, or a bare `name`.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.starts_with('{') {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Json {
                name: String,
                #[serde(default)]
                path: Option<String>,
                #[serde(default)]
                base_model_name: Option<String>,
            }
            let j: Json = serde_json::from_str(s)
                .map_err(|e| format!("invalid --lora-modules JSON {s:?}: {e}"))?;
            return LoraModule::new(j.name, j.path, j.base_model_name);
        }
        match s.split_once('=') {
            Some((name, path)) => {
                LoraModule::new(name.trim().to_owned(), Some(path.trim().to_owned()), None)
            }
            None => LoraModule::new(s.to_owned(), None, None),
        }
    }
}

impl LoraModule {
    fn new(
        name: String,
        path: Option<String>,
        base_model_name: Option<String>,
    ) -> Result<Self, String> {
        if name.is_empty() || name.contains(',') {
            return Err(format!(
                "invalid LoRA name {name:?}: must be non-empty and contain no comma"
            ));
        }
        Ok(Self {
            name,
            path: path.filter(|p| !p.is_empty()),
            base_model_name,
        })
    }
}

impl<'de> Deserialize<'de> for LoraModule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Map {
                name: String,
                path: Option<String>,
                base_model_name: Option<String>,
            },
        }
        match Raw::deserialize(d)? {
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
            Raw::Map {
                name,
                path,
                base_model_name,
            } => LoraModule::new(name, path, base_model_name).map_err(serde::de::Error::custom),
        }
    }
}

fn parse_fake_metrics(s: &str) -> Result<FakeMetrics, String> {
    FakeMetrics::parse(s)
}

/// `zmq-endpoint` in a file: one string (comma-separated endpoints; empty = none) or a list.
fn deserialize_endpoints<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        List(Vec<String>),
    }
    let list = match Option::<Raw>::deserialize(d)? {
        None => Vec::new(),
        Some(Raw::Text(t)) => vec![t],
        Some(Raw::List(l)) => l,
    };
    Ok(list
        .iter()
        .flat_map(|e| e.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect())
}

/// `fake-metrics` in YAML may be a mapping or a JSON string (as on the command line).
fn deserialize_fake_metrics<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<FakeMetrics>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Map(FakeMetrics),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Text(t)) => FakeMetrics::parse(&t)
            .map(Some)
            .map_err(serde::de::Error::custom),
        Some(Raw::Map(m)) => Ok(Some(m)),
    }
}

/// Every simulator setting. `clap` flags (`--max-num-seqs`) and YAML keys (`max-num-seqs`) share
/// names; [`Default`] equals the flag defaults.
#[derive(clap::Args, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct SimConfig {
    // ---- model and engine ----
    /// Model name served (vLLM `--model`).
    #[arg(long, env = "SIM_MODEL", default_value = "sim-model")]
    pub model: String,
    /// Names the model is served under instead of `--model` (aliases; the first one labels metrics).
    #[arg(long, num_args = 1..)]
    pub served_model_name: Vec<String>,
    /// LoRA adapters available from startup: `{"name","path","base_model_name"}` JSON or `name=path`.
    #[arg(long, num_args = 1..)]
    pub lora_modules: Vec<LoraModule>,
    /// Most distinct LoRA adapters running at once; requests for others wait.
    #[arg(long, default_value_t = 1)]
    pub max_loras: usize,
    /// Most LoRA adapters loaded at once (default: unlimited up to 1024).
    #[arg(long)]
    pub max_cpu_loras: Option<usize>,
    /// Largest prompt + completion, in tokens.
    #[arg(long, default_value_t = DEFAULT_MAX_MODEL_LEN)]
    pub max_model_len: u32,
    /// Requests running concurrently.
    #[arg(long, default_value_t = 5)]
    pub max_num_seqs: usize,
    /// Requests waiting for a running slot; beyond that requests get 429.
    #[arg(long, default_value_t = 1000)]
    pub max_waiting_queue_length: usize,
    /// Response text: `random` sentences or `echo` of the input.
    #[arg(long, value_enum, default_value_t = Mode::Random)]
    pub mode: Mode,
    /// Seed for every random choice (texts, lengths, jitter, injected failures).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Time before `/health` turns 200 and requests are served (ms or e.g. `5s`).
    #[arg(long, default_value = "0", value_parser = parse_millis)]
    #[serde(deserialize_with = "deserialize_millis")]
    pub startup_duration: f64,
    /// Largest accepted request body, in MB (larger → 413).
    #[arg(long, default_value_t = 4)]
    pub max_request_body_size_mb: usize,
    /// Upper bound of the random response length when a request sets no `max_tokens`.
    #[arg(long, default_value_t = 64)]
    pub default_max_tokens: u32,
    /// Embedding vector length when a request sets no `dimensions`.
    #[arg(long, default_value_t = 384)]
    pub default_embedding_dimensions: usize,

    // ---- latency ----
    /// `auto`, `constant` (TTFT = --time-to-first-token) or `per-token` (prefill model).
    #[arg(long, value_enum, default_value_t = LatencyCalculator::Auto)]
    pub latency_calculator: LatencyCalculator,
    /// Time to first token in constant mode (ms).
    #[arg(long, default_value = "0", value_parser = parse_millis)]
    #[serde(deserialize_with = "deserialize_millis")]
    pub time_to_first_token: f64,
    /// Standard deviation of the time to first token (ms; capped at 30% of the mean).
    #[arg(long, default_value = "0", value_parser = parse_millis)]
    #[serde(deserialize_with = "deserialize_millis")]
    pub time_to_first_token_std_dev: f64,
    /// Time between output tokens (ms).
    #[arg(long, default_value = "0", value_parser = parse_millis)]
    #[serde(deserialize_with = "deserialize_millis")]
    pub inter_token_latency: f64,
    /// Standard deviation of the inter-token latency (ms; capped at 30% of the mean).
    #[arg(long, default_value = "0", value_parser = parse_millis)]
    #[serde(deserialize_with = "deserialize_millis")]
    pub inter_token_latency_std_dev: f64,
    /// Fixed prefill cost in per-token mode (ms).
    #[arg(long, default_value = "0", value_parser = parse_millis)]
    #[serde(deserialize_with = "deserialize_millis")]
    pub prefill_overhead: f64,
    /// Prefill cost per uncached prompt token in per-token mode (ms, e.g. `250us`).
    #[arg(long, default_value = "0", value_parser = parse_millis)]
    #[serde(deserialize_with = "deserialize_millis")]
    pub prefill_time_per_token: f64,
    /// Standard deviation of the prefill time in per-token mode (ms; capped at 30% of the mean).
    #[arg(long, default_value = "0", value_parser = parse_millis)]
    #[serde(deserialize_with = "deserialize_millis")]
    pub prefill_time_std_dev: f64,
    /// Latency multiplier (≥ 1) reached when `--max-num-seqs` requests run; linear below.
    #[arg(long, default_value_t = 1.0)]
    pub time_factor_under_load: f64,
    /// Multiplies every simulated duration (0.01 = a hundred times faster).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Prefills a replica computes at once (0 = unlimited, each request prefills on its own).
    /// With N, a running request waits for one of N prefill lanes, as an engine's compute is
    /// shared: uncached prompt tokens then cost queueing for everyone, which is what makes
    /// prefix-cache-aware routing pay off under load.
    #[arg(long, default_value_t = 0)]
    pub prefill_parallelism: usize,
    /// Order of waiting requests (the engine's queue and the prefill lanes): `fcfs`, or
    /// `priority` — by each request's `priority` field, lower first, then arrival (vLLM's
    /// `--scheduling-policy`). Under `fcfs` a request with a non-zero `priority` gets 400.
    #[arg(long, value_enum, default_value_t = SchedulingPolicy::Fcfs)]
    pub scheduling_policy: SchedulingPolicy,

    // ---- prefix (KV) cache ----
    /// Simulate the prefix cache (hits shorten prefill, drive `vllm:kv_cache_usage_perc`).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub enable_kvcache: bool,
    /// KV cache capacity, in blocks.
    #[arg(long, default_value_t = 1024)]
    pub kv_cache_size: usize,
    /// Tokens per KV block.
    #[arg(long, default_value_t = 16)]
    pub block_size: usize,
    /// Seed of the block hash chain (vLLM's PYTHONHASHSEED).
    #[arg(long, env = "PYTHONHASHSEED", default_value = "")]
    pub hash_seed: String,
    /// Publish KV-cache events (vLLM's ZMQ format: topic `kv@<ip>:<port>@<model>`, sequence,
    /// msgpack batch) by connecting a PUB socket here, e.g. `tcp://127.0.0.1:5557` where a
    /// gateway's precise prefix-cache scorer listens. Several endpoints (repeat the flag, or
    /// separate with commas; a YAML string or list): every one receives every event, so each
    /// of several picker replicas sees the whole cache. Empty: off.
    #[arg(long, value_delimiter = ',')]
    #[serde(deserialize_with = "deserialize_endpoints")]
    pub zmq_endpoint: Vec<String>,
    /// Most events per published batch.
    #[arg(long, default_value_t = 16)]
    pub event_batch_size: usize,

    // ---- failures ----
    /// Percentage (0–100) of inference requests that fail with one of `--failure-types`.
    #[arg(long, default_value_t = 0.0)]
    pub failure_injection_rate: f64,
    /// Failures to inject (default: all).
    #[arg(long, value_enum, num_args = 1.., value_delimiter = ',')]
    pub failure_types: Vec<FailureType>,

    // ---- fake metrics ----
    /// Values `/metrics` reports instead of the real ones, as JSON.
    #[arg(long, value_parser = parse_fake_metrics)]
    #[serde(deserialize_with = "deserialize_fake_metrics")]
    pub fake_metrics: Option<FakeMetrics>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            model: "sim-model".to_owned(),
            served_model_name: Vec::new(),
            lora_modules: Vec::new(),
            max_loras: 1,
            max_cpu_loras: None,
            max_model_len: DEFAULT_MAX_MODEL_LEN,
            max_num_seqs: 5,
            max_waiting_queue_length: 1000,
            mode: Mode::Random,
            seed: 0,
            startup_duration: 0.0,
            max_request_body_size_mb: 4,
            default_max_tokens: 64,
            default_embedding_dimensions: 384,
            latency_calculator: LatencyCalculator::Auto,
            time_to_first_token: 0.0,
            time_to_first_token_std_dev: 0.0,
            inter_token_latency: 0.0,
            inter_token_latency_std_dev: 0.0,
            prefill_overhead: 0.0,
            prefill_time_per_token: 0.0,
            prefill_time_std_dev: 0.0,
            time_factor_under_load: 1.0,
            time_scale: 1.0,
            prefill_parallelism: 0,
            scheduling_policy: SchedulingPolicy::Fcfs,
            enable_kvcache: true,
            kv_cache_size: 1024,
            block_size: 16,
            hash_seed: String::new(),
            zmq_endpoint: Vec::new(),
            event_batch_size: 16,
            failure_injection_rate: 0.0,
            failure_types: Vec::new(),
            fake_metrics: None,
        }
    }
}

/// A configuration that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid simulator setting {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
    #[error("invalid simulator config file: {0}")]
    File(String),
}

/// Most adapters ever loaded when `--max-cpu-loras` is not set (keeps the registry bounded).
pub const LORA_REGISTRY_LIMIT: usize = 1024;
/// Largest accepted embedding dimension.
pub const MAX_EMBEDDING_DIMENSIONS: usize = 65_536;

impl SimConfig {
    /// The names the base model answers to; the first one labels metrics.
    pub fn served_names(&self) -> Vec<String> {
        if self.served_model_name.is_empty() {
            vec![self.model.clone()]
        } else {
            self.served_model_name.clone()
        }
    }

    /// Rejects settings the simulator cannot honour.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(key: &'static str, reason: impl Into<String>) -> Result<(), ConfigError> {
            Err(ConfigError::Invalid {
                key,
                reason: reason.into(),
            })
        }
        if self.model.is_empty() {
            return bad("model", "must not be empty");
        }
        if self.served_model_name.iter().any(String::is_empty) {
            return bad("served-model-name", "names must not be empty");
        }
        if self.max_num_seqs == 0 {
            return bad("max-num-seqs", "must be at least 1");
        }
        if self.max_loras == 0 {
            return bad("max-loras", "must be at least 1");
        }
        let lora_limit = self.max_cpu_loras.unwrap_or(LORA_REGISTRY_LIMIT);
        if let Some(cpu) = self.max_cpu_loras {
            if cpu < self.max_loras {
                return bad(
                    "max-cpu-loras",
                    format!("{cpu} is below --max-loras {}", self.max_loras),
                );
            }
        }
        if self.lora_modules.len() > lora_limit {
            return bad(
                "lora-modules",
                format!(
                    "{} adapters exceed the limit of {lora_limit}",
                    self.lora_modules.len()
                ),
            );
        }
        if self.max_model_len == 0 {
            return bad("max-model-len", "must be at least 1");
        }
        if self.max_request_body_size_mb == 0 || self.max_request_body_size_mb > 4096 {
            return bad("max-request-body-size-mb", "must be between 1 and 4096");
        }
        if self.default_max_tokens == 0 {
            return bad("default-max-tokens", "must be at least 1");
        }
        if self.default_embedding_dimensions == 0
            || self.default_embedding_dimensions > MAX_EMBEDDING_DIMENSIONS
        {
            return bad(
                "default-embedding-dimensions",
                format!("must be between 1 and {MAX_EMBEDDING_DIMENSIONS}"),
            );
        }
        if self.kv_cache_size == 0 {
            return bad("kv-cache-size", "must be at least 1 block");
        }
        if self.block_size == 0 || self.block_size > 1024 {
            return bad("block-size", "must be between 1 and 1024 tokens");
        }
        if let Some(e) = self.zmq_endpoint.iter().find(|e| !e.starts_with("tcp://")) {
            return bad(
                "zmq-endpoint",
                format!(
                    "`{e}` is not a ZMQ TCP endpoint; write tcp://HOST:PORT[,tcp://HOST:PORT…]"
                ),
            );
        }
        if self.event_batch_size == 0 {
            return bad("event-batch-size", "must be at least 1");
        }
        for (key, v) in self.durations() {
            if !v.is_finite() || v < 0.0 {
                return bad(key, format!("{v} is not a non-negative duration"));
            }
        }
        if !(self.time_factor_under_load.is_finite() && self.time_factor_under_load >= 1.0) {
            return bad("time-factor-under-load", "must be a number ≥ 1.0");
        }
        if !(self.time_scale.is_finite() && self.time_scale >= 0.0) {
            return bad("time-scale", "must be a non-negative number");
        }
        if !(0.0..=100.0).contains(&self.failure_injection_rate) {
            return bad(
                "failure-injection-rate",
                "must be a percentage between 0 and 100",
            );
        }
        Ok(())
    }

    fn durations(&self) -> [(&'static str, f64); 8] {
        [
            ("startup-duration", self.startup_duration),
            ("time-to-first-token", self.time_to_first_token),
            (
                "time-to-first-token-std-dev",
                self.time_to_first_token_std_dev,
            ),
            ("inter-token-latency", self.inter_token_latency),
            (
                "inter-token-latency-std-dev",
                self.inter_token_latency_std_dev,
            ),
            ("prefill-overhead", self.prefill_overhead),
            ("prefill-time-per-token", self.prefill_time_per_token),
            ("prefill-time-std-dev", self.prefill_time_std_dev),
        ]
    }

    /// Parses a YAML config file on its own (errors carry the file's line and column).
    pub fn from_yaml(text: &str) -> Result<SimConfig, ConfigError> {
        serde_yaml_ng::from_str(text).map_err(|e| ConfigError::File(e.to_string()))
    }

    /// Layers `file` (YAML keys) under `self` (the command line): a key from the file applies
    /// unless the command line changed that setting from its default. (A flag explicitly set to
    /// its default value therefore cannot override the file — clap does not tell them apart.)
    pub fn layered_over_file(
        &self,
        file: &BTreeMap<String, serde_json::Value>,
    ) -> Result<SimConfig, ConfigError> {
        let to_value =
            |c: &SimConfig| serde_json::to_value(c).map_err(|e| ConfigError::File(e.to_string()));
        let defaults = to_value(&SimConfig::default())?;
        let mut merged = to_value(self)?;
        if let (Some(merged), Some(defaults)) = (merged.as_object_mut(), defaults.as_object()) {
            for (key, value) in file {
                if merged.get(key) == defaults.get(key) {
                    merged.insert(key.clone(), value.clone());
                }
            }
        }
        serde_json::from_value(merged).map_err(|e| ConfigError::File(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: SimConfig,
    }

    fn parse(args: &[&str]) -> SimConfig {
        Cli::try_parse_from(std::iter::once("sim").chain(args.iter().copied()))
            .unwrap()
            .config
    }

    #[test]
    fn several_zmq_endpoints_from_flags_and_files() {
        let (a, b) = ("tcp://127.0.0.1:5557", "tcp://127.0.0.1:5558");
        assert_eq!(
            parse(&["--zmq-endpoint", a, "--zmq-endpoint", b]).zmq_endpoint,
            [a, b]
        );
        assert_eq!(
            parse(&["--zmq-endpoint", &format!("{a},{b}")]).zmq_endpoint,
            [a, b]
        );
        assert!(parse(&[]).zmq_endpoint.is_empty());
        let from_str = SimConfig::from_yaml(&format!("zmq-endpoint: \"{a}, {b}\"")).unwrap();
        assert_eq!(from_str.zmq_endpoint, [a, b]);
        let from_list = SimConfig::from_yaml(&format!("zmq-endpoint: [{a}, {b}]")).unwrap();
        assert_eq!(from_list.zmq_endpoint, [a, b]);
        assert!(SimConfig::from_yaml("zmq-endpoint: \"\"")
            .unwrap()
            .zmq_endpoint
            .is_empty());
        let bad = SimConfig::from_yaml("zmq-endpoint: [\"localhost:5557\"]")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("localhost:5557") && bad.contains("tcp://"),
            "{bad}"
        );
    }

    #[test]
    fn default_matches_flag_defaults() {
        if std::env::var_os("SIM_MODEL").is_some() || std::env::var_os("PYTHONHASHSEED").is_some() {
            return; // the environment changes the flag defaults
        }
        assert_eq!(parse(&[]), SimConfig::default());
        SimConfig::default().validate().unwrap();
    }

    #[test]
    fn parses_vllm_style_flags() {
        let c = parse(&[
            "--model",
            "m",
            "--served-model-name",
            "a",
            "b",
            "--lora-modules",
            r#"{"name":"food-review-1"}"#,
            "sql=/adapters/sql",
            "--time-to-first-token",
            "100ms",
            "--prefill-time-per-token",
            "250us",
            "--failure-types",
            "rate_limit,server_error",
            "--enable-kvcache",
            "false",
            "--fake-metrics",
            r#"{"waiting-requests":3}"#,
        ]);
        assert_eq!(c.served_names(), vec!["a", "b"]);
        assert_eq!(c.lora_modules[0].name, "food-review-1");
        assert_eq!(c.lora_modules[1].path.as_deref(), Some("/adapters/sql"));
        assert_eq!(c.time_to_first_token, 100.0);
        assert!((c.prefill_time_per_token - 0.25).abs() < 1e-12);
        assert_eq!(
            c.failure_types,
            vec![FailureType::RateLimit, FailureType::ServerError]
        );
        assert!(!c.enable_kvcache);
        assert!(c.fake_metrics.is_some());
        assert!(parse(&["--enable-kvcache"]).enable_kvcache);
    }

    #[test]
    fn validation_rejects_bad_values() {
        let mut c = SimConfig {
            time_factor_under_load: 0.5,
            ..SimConfig::default()
        };
        assert!(c.validate().is_err());
        c = SimConfig {
            failure_injection_rate: 101.0,
            ..SimConfig::default()
        };
        assert!(c.validate().is_err());
        c = SimConfig {
            max_num_seqs: 0,
            ..SimConfig::default()
        };
        assert!(c.validate().is_err());
        c = SimConfig {
            max_loras: 2,
            max_cpu_loras: Some(1),
            ..SimConfig::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn yaml_file_layers_under_command_line() {
        let yaml = "model: from-file\nmax-num-seqs: 16\ninter-token-latency: 12ms\nfake-metrics:\n  kv-cache-usage: 0.5\n";
        SimConfig::from_yaml(yaml).unwrap();
        let file: BTreeMap<String, serde_json::Value> = serde_yaml_ng::from_str(yaml).unwrap();
        let cli = SimConfig {
            max_num_seqs: 3,
            ..SimConfig::default()
        };
        let merged = cli.layered_over_file(&file).unwrap();
        assert_eq!(merged.model, "from-file");
        assert_eq!(merged.max_num_seqs, 3, "the command line wins");
        assert_eq!(merged.inter_token_latency, 12.0);
        assert!(merged.fake_metrics.is_some());
    }

    #[test]
    fn yaml_errors_name_the_key() {
        let err = SimConfig::from_yaml("max-num-seq: 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max-num-seq"), "{err}");
    }
}
