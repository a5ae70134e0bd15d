//! Live signals from model servers: what one scrape of an endpoint's `/metrics` says (queue,
//! running requests, KV-cache utilisation, LoRA adapters, cache geometry), and how each engine
//! names those metrics.
//!
//! Pure: parses Prometheus text and maps names; the scraping itself is in [`crate::scrape`].
//! Engines are chosen per endpoint by the label `inference.networking.k8s.io/engine-type`
//! (`vllm` by default), as the anchor does; `engineConfigs` add or override engines.

use std::collections::HashMap;

use infergate_control::picker::{EngineMetricNames, ExtractorParams};

/// What one scrape said about an endpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointMetrics {
    /// Requests waiting in the engine's queue.
    pub waiting: f64,
    /// Requests running.
    pub running: f64,
    /// KV-cache utilisation in [0, 1].
    pub kv_usage: f64,
    pub lora: Option<LoraInfo>,
    /// Tokens per KV block, from the engine's cache-config metric.
    pub block_size: Option<usize>,
    /// KV blocks the engine has.
    pub num_blocks: Option<usize>,
    /// When the scrape completed (`now_ms`).
    pub updated_ms: u64,
    /// The gateway's in-flight count to this endpoint when the scrape completed; requests sent
    /// since then are added to `waiting` until the next scrape (see
    /// [`EndpointState::queue_estimate`](crate::EndpointState::queue_estimate)).
    pub in_flight_at_scrape: u32,
}

/// `vllm:lora_requests_info`: the series with the latest timestamp value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoraInfo {
    pub max_lora: usize,
    pub running: Vec<String>,
    pub waiting: Vec<String>,
}

/// A metric name with optional label matchers (`name{label="value"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSpec {
    pub name: String,
    pub labels: Vec<(String, String)>,
}

impl MetricSpec {
    /// Parse `name` or `name{a="b",c="d"}`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s.find('{') {
            None => Ok(MetricSpec {
                name: s.to_string(),
                labels: Vec::new(),
            }),
            Some(i) => {
                let inner = s[i + 1..]
                    .strip_suffix('}')
                    .ok_or_else(|| format!("`{s}`: labels must end with `}}`"))?;
                let labels = parse_labels(inner).ok_or_else(|| format!("`{s}`: bad labels"))?;
                Ok(MetricSpec {
                    name: s[..i].to_string(),
                    labels,
                })
            }
        }
    }

    fn matches(&self, sample: &Sample<'_>) -> bool {
        sample.name == self.name
            && self
                .labels
                .iter()
                .all(|(k, v)| sample.label(k) == Some(v.as_str()))
    }
}

/// Where an engine reports its cache geometry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheInfoSpec {
    /// An info gauge whose labels carry block size and block count (vLLM, SGLang).
    Labels {
        metric: String,
        block_size_label: &'static str,
        blocks_label: &'static str,
    },
    /// Two gauges whose values are block size and block count (TensorRT-LLM).
    Values {
        block_size: MetricSpec,
        blocks: MetricSpec,
    },
}

/// One engine's metric names. Each list is tried in order; the first name present wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineMetrics {
    pub queued: Vec<MetricSpec>,
    pub running: Vec<MetricSpec>,
    pub kv_usage: Vec<MetricSpec>,
    pub lora_info: Option<String>,
    pub cache_info: Option<CacheInfoSpec>,
}

fn specs(names: &[&str]) -> Vec<MetricSpec> {
    names
        .iter()
        .filter_map(|n| MetricSpec::parse(n).ok())
        .collect()
}

impl EngineMetrics {
    pub fn vllm() -> Self {
        Self {
            queued: specs(&["vllm:num_requests_waiting"]),
            running: specs(&["vllm:num_requests_running"]),
            // The older name (GIE ≤ v1.2's default) for vLLM versions that still export it.
            kv_usage: specs(&["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"]),
            lora_info: Some("vllm:lora_requests_info".into()),
            cache_info: Some(CacheInfoSpec::Labels {
                metric: "vllm:cache_config_info".into(),
                block_size_label: "block_size",
                blocks_label: "num_gpu_blocks",
            }),
        }
    }

    pub fn sglang() -> Self {
        Self {
            queued: specs(&["sglang:num_queue_reqs"]),
            running: specs(&["sglang:num_running_reqs"]),
            kv_usage: specs(&["sglang:token_usage"]),
            lora_info: None,
            cache_info: Some(CacheInfoSpec::Labels {
                metric: "sglang:cache_config_info".into(),
                block_size_label: "page_size",
                blocks_label: "num_pages",
            }),
        }
    }

    pub fn trtllm_serve() -> Self {
        Self {
            queued: specs(&["trtllm_num_requests_waiting"]),
            running: specs(&["trtllm_num_requests_running"]),
            kv_usage: specs(&["trtllm_kv_cache_utilization"]),
            lora_info: None,
            cache_info: Some(CacheInfoSpec::Values {
                block_size: MetricSpec::parse("trtllm_kv_cache_tokens_per_block")
                    .unwrap_or_else(|_| unreachable_spec()),
                blocks: MetricSpec::parse("trtllm_kv_cache_max_blocks")
                    .unwrap_or_else(|_| unreachable_spec()),
            }),
        }
    }

    pub fn triton_trtllm() -> Self {
        Self {
            queued: specs(&[r#"nv_trt_llm_request_metrics{request_type="waiting"}"#]),
            running: specs(&[r#"nv_trt_llm_request_metrics{request_type="scheduled"}"#]),
            kv_usage: specs(&[
                r#"nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction"}"#,
            ]),
            lora_info: None,
            cache_info: Some(CacheInfoSpec::Values {
                block_size: MetricSpec::parse(
                    r#"nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="tokens_per"}"#,
                )
                .unwrap_or_else(|_| unreachable_spec()),
                blocks: MetricSpec::parse(
                    r#"nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max"}"#,
                )
                .unwrap_or_else(|_| unreachable_spec()),
            }),
        }
    }

    fn from_config(c: &EngineMetricNames) -> Result<Self, String> {
        let parse_all = |v: &[String]| -> Result<Vec<MetricSpec>, String> {
            v.iter().map(|s| MetricSpec::parse(s)).collect()
        };
        let mut e = EngineMetrics {
            queued: parse_all(&c.queued_requests_metric)?,
            running: parse_all(&c.running_requests_metric)?,
            kv_usage: parse_all(&c.kv_cache_usage_metric)?,
            lora_info: c.lora_info_metric.clone(),
            cache_info: None,
        };
        if let Some(m) = &c.cache_info_metric {
            e.cache_info = Some(CacheInfoSpec::Labels {
                metric: m.clone(),
                block_size_label: "block_size",
                blocks_label: "num_gpu_blocks",
            });
        }
        Ok(e)
    }

    /// Read the signals from parsed samples.
    pub fn extract(&self, samples: &[Sample<'_>]) -> EndpointMetrics {
        let mut m = EndpointMetrics {
            waiting: first_present(&self.queued, samples, true),
            running: first_present(&self.running, samples, true),
            kv_usage: first_present(&self.kv_usage, samples, false).clamp(0.0, 1.0),
            ..EndpointMetrics::default()
        };
        if let Some(name) = &self.lora_info {
            m.lora = samples
                .iter()
                .filter(|s| s.name == name)
                .max_by(|a, b| a.value.total_cmp(&b.value))
                .map(|s| LoraInfo {
                    max_lora: s
                        .label("max_lora")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                    running: split_list(s.label("running_lora_adapters")),
                    waiting: split_list(s.label("waiting_lora_adapters")),
                });
        }
        match &self.cache_info {
            Some(CacheInfoSpec::Labels {
                metric,
                block_size_label,
                blocks_label,
            }) => {
                if let Some(s) = samples.iter().find(|s| s.name == metric) {
                    m.block_size = s.label(block_size_label).and_then(|v| v.parse().ok());
                    m.num_blocks = s.label(blocks_label).and_then(|v| v.parse().ok());
                }
            }
            Some(CacheInfoSpec::Values { block_size, blocks }) => {
                let value = |spec: &MetricSpec| {
                    samples
                        .iter()
                        .find(|s| spec.matches(s))
                        .filter(|s| s.value.is_finite() && s.value >= 0.0)
                        .map(|s| s.value as usize)
                };
                m.block_size = value(block_size);
                m.num_blocks = value(blocks);
            }
            None => {}
        }
        m
    }
}

fn unreachable_spec() -> MetricSpec {
    MetricSpec {
        name: String::new(),
        labels: Vec::new(),
    }
}

fn split_list(v: Option<&str>) -> Vec<String> {
    v.map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect()
    })
    .unwrap_or_default()
}

/// The value of the first spec that has samples: summed over series (queues across data-parallel
/// ranks add up) or their maximum (utilisation).
fn first_present(specs: &[MetricSpec], samples: &[Sample<'_>], sum: bool) -> f64 {
    for spec in specs {
        let mut found = false;
        let mut acc: f64 = 0.0;
        for s in samples.iter().filter(|s| spec.matches(s)) {
            if !s.value.is_finite() {
                continue;
            }
            acc = if !found {
                s.value
            } else if sum {
                acc + s.value
            } else {
                acc.max(s.value)
            };
            found = true;
        }
        if found {
            return acc.max(0.0);
        }
    }
    0.0
}

/// Engine metric names by engine type, for one pool.
#[derive(Debug, Clone)]
pub struct EngineCatalog {
    pub label_key: String,
    pub default_engine: String,
    engines: HashMap<String, EngineMetrics>,
}

impl EngineCatalog {
    pub fn new(params: &ExtractorParams) -> Self {
        let mut engines = HashMap::new();
        engines.insert("vllm".to_string(), EngineMetrics::vllm());
        engines.insert("sglang".to_string(), EngineMetrics::sglang());
        engines.insert("trtllm-serve".to_string(), EngineMetrics::trtllm_serve());
        engines.insert("trtllm".to_string(), EngineMetrics::trtllm_serve());
        engines.insert(
            "triton-tensorrt-llm".to_string(),
            EngineMetrics::triton_trtllm(),
        );
        engines.insert("triton".to_string(), EngineMetrics::triton_trtllm());
        for c in &params.engine_configs {
            match EngineMetrics::from_config(c) {
                Ok(e) => {
                    engines.insert(c.name.clone(), e);
                }
                Err(e) => tracing::warn!(engine = %c.name, "ignoring engine config: {e}"),
            }
        }
        Self {
            label_key: params.engine_label_key.clone(),
            default_engine: params.default_engine.clone(),
            engines,
        }
    }

    /// The metric names for an endpoint with these labels (vLLM's when the engine is unknown).
    pub fn for_labels(
        &self,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> &EngineMetrics {
        let engine = labels
            .get(&self.label_key)
            .map_or(self.default_engine.as_str(), String::as_str);
        self.engines
            .get(engine)
            .or_else(|| self.engines.get(&self.default_engine))
            .or_else(|| self.engines.get("vllm"))
            .unwrap_or_else(|| unreachable_engine())
    }
}

fn unreachable_engine() -> &'static EngineMetrics {
    static VLLM: std::sync::OnceLock<EngineMetrics> = std::sync::OnceLock::new();
    VLLM.get_or_init(EngineMetrics::vllm)
}

/// One sample of Prometheus text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    pub labels: Vec<(&'a str, String)>,
    pub value: f64,
}

impl Sample<'_> {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parse Prometheus text exposition (comments and malformed lines are skipped). Only samples
/// whose name passes `keep` are returned, so histograms the scheduler never reads cost a name
/// comparison, not an allocation.
pub fn parse_prometheus<'a>(text: &'a str, keep: impl Fn(&str) -> bool) -> Vec<Sample<'a>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
        let name = &line[..name_end];
        if !keep(name) {
            continue;
        }
        let rest = &line[name_end..];
        let (labels, rest) = if let Some(r) = rest.strip_prefix('{') {
            let Some(close) = find_label_end(r) else {
                continue;
            };
            let Some(labels) = parse_labels_borrowed(&r[..close]) else {
                continue;
            };
            (labels, &r[close + 1..])
        } else {
            (Vec::new(), rest)
        };
        let Some(value) = rest.split_whitespace().next().and_then(parse_value) else {
            continue;
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Index of the `}` closing a label set, skipping quoted values.
fn find_label_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut quoted = false;
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'}' if !quoted => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn parse_labels_borrowed(s: &str) -> Option<Vec<(&str, String)>> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = rest[..eq].trim();
        let after = rest[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => return None,
                },
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end?;
        out.push((key, value));
        rest = after[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Some(out)
}

fn parse_labels(s: &str) -> Option<Vec<(String, String)>> {
    parse_labels_borrowed(s).map(|v| v.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// Every metric name an engine's specs read (to filter samples while parsing).
pub fn wanted_names(e: &EngineMetrics) -> Vec<&str> {
    let mut v: Vec<&str> = e
        .queued
        .iter()
        .chain(&e.running)
        .chain(&e.kv_usage)
        .map(|s| s.name.as_str())
        .collect();
    if let Some(l) = &e.lora_info {
        v.push(l);
    }
    match &e.cache_info {
        Some(CacheInfoSpec::Labels { metric, .. }) => v.push(metric),
        Some(CacheInfoSpec::Values { block_size, blocks }) => {
            v.push(&block_size.name);
            v.push(&blocks.name);
        }
        None => {}
    }
    v
}

/// Parse one scrape body into the endpoint's signals; `None` when none of the engine's metrics
/// is present (the endpoint does not look like that engine).
pub fn read_metrics(engine: &EngineMetrics, text: &str) -> Option<EndpointMetrics> {
    let names = wanted_names(engine);
    let samples = parse_prometheus(text, |n| names.contains(&n));
    if samples.is_empty() {
        return None;
    }
    Some(engine.extract(&samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VLLM: &str = r#"
# HELP vllm:num_requests_waiting Number of requests waiting.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="m"} 3
vllm:num_requests_running{model_name="m"} 5
vllm:kv_cache_usage_perc{model_name="m"} 0.42
vllm:gpu_cache_usage_perc{model_name="m"} 0.99
vllm:cache_config_info{block_size="16",enable_prefix_caching="True",num_gpu_blocks="2048"} 1
vllm:lora_requests_info{max_lora="2",running_lora_adapters="a,b",waiting_lora_adapters=""} 1700000000.5
vllm:lora_requests_info{max_lora="2",running_lora_adapters="old",waiting_lora_adapters="x"} 1600000000
vllm:time_to_first_token_seconds_bucket{le="0.001",model_name="m"} 0
"#;

    #[test]
    fn vllm_signals() {
        let m = read_metrics(&EngineMetrics::vllm(), VLLM).unwrap();
        assert_eq!((m.waiting, m.running, m.kv_usage), (3.0, 5.0, 0.42));
        assert_eq!((m.block_size, m.num_blocks), (Some(16), Some(2048)));
        let lora = m.lora.unwrap();
        assert_eq!(lora.max_lora, 2);
        assert_eq!(lora.running, vec!["a", "b"]);
        assert!(lora.waiting.is_empty());
    }

    #[test]
    fn older_vllm_kv_name_is_read_when_the_new_one_is_missing() {
        let text = "vllm:num_requests_waiting 1\nvllm:gpu_cache_usage_perc 0.7\n";
        let m = read_metrics(&EngineMetrics::vllm(), text).unwrap();
        assert_eq!((m.waiting, m.kv_usage), (1.0, 0.7));
    }

    #[test]
    fn data_parallel_queues_add_up() {
        let text = "vllm:num_requests_waiting{engine=\"0\"} 2\nvllm:num_requests_waiting{engine=\"1\"} 3\n\
                    vllm:kv_cache_usage_perc{engine=\"0\"} 0.2\nvllm:kv_cache_usage_perc{engine=\"1\"} 0.5\n";
        let m = read_metrics(&EngineMetrics::vllm(), text).unwrap();
        assert_eq!((m.waiting, m.kv_usage), (5.0, 0.5));
    }

    #[test]
    fn sglang_and_trtllm_names() {
        let sg = "sglang:num_queue_reqs 4\nsglang:num_running_reqs 2\nsglang:token_usage 0.3\n\
                  sglang:cache_config_info{page_size=\"32\",num_pages=\"100\"} 1\n";
        let m = read_metrics(&EngineMetrics::sglang(), sg).unwrap();
        assert_eq!((m.waiting, m.running, m.kv_usage), (4.0, 2.0, 0.3));
        assert_eq!((m.block_size, m.num_blocks), (Some(32), Some(100)));
        let trt = "trtllm_num_requests_waiting 7\ntrtllm_kv_cache_utilization 0.9\n\
                   trtllm_kv_cache_tokens_per_block 64\ntrtllm_kv_cache_max_blocks 500\n";
        let m = read_metrics(&EngineMetrics::trtllm_serve(), trt).unwrap();
        assert_eq!((m.waiting, m.kv_usage, m.block_size), (7.0, 0.9, Some(64)));
        let triton = "nv_trt_llm_request_metrics{request_type=\"waiting\",model=\"x\"} 6\n\
                      nv_trt_llm_request_metrics{request_type=\"scheduled\",model=\"x\"} 2\n\
                      nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"fraction\"} 0.25\n";
        let m = read_metrics(&EngineMetrics::triton_trtllm(), triton).unwrap();
        assert_eq!((m.waiting, m.running, m.kv_usage), (6.0, 2.0, 0.25));
        assert!(read_metrics(&EngineMetrics::sglang(), VLLM).is_none());
    }

    #[test]
    fn engine_is_chosen_by_label() {
        let cat = EngineCatalog::new(&ExtractorParams {
            engine_configs: vec![EngineMetricNames {
                name: "mine".into(),
                queued_requests_metric: vec!["my_queue{kind=\"wait\"}".into()],
                running_requests_metric: vec![],
                kv_cache_usage_metric: vec!["my_kv".into()],
                lora_info_metric: None,
                cache_info_metric: None,
            }],
            ..ExtractorParams::default()
        });
        let mut labels = std::collections::BTreeMap::new();
        assert_eq!(cat.for_labels(&labels), &EngineMetrics::vllm());
        labels.insert(
            "inference.networking.k8s.io/engine-type".to_string(),
            "sglang".to_string(),
        );
        assert_eq!(cat.for_labels(&labels), &EngineMetrics::sglang());
        labels.insert(
            "inference.networking.k8s.io/engine-type".to_string(),
            "mine".to_string(),
        );
        let m = read_metrics(
            cat.for_labels(&labels),
            "my_queue{kind=\"wait\"} 9\nmy_queue{kind=\"other\"} 100\nmy_kv 0.5\n",
        )
        .unwrap();
        assert_eq!((m.waiting, m.kv_usage), (9.0, 0.5));
    }

    #[test]
    fn label_values_with_escapes_and_braces() {
        let s = parse_prometheus(r#"x{a="q\"}",b="line\nnext"} 1.5 1700000000"#, |_| true);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].label("a"), Some("q\"}"));
        assert_eq!(s[0].label("b"), Some("line\nnext"));
        assert_eq!(s[0].value, 1.5);
        assert!(parse_prometheus("x{a=\"unterminated} 1\ny 2", |_| true).len() == 1);
    }
}
