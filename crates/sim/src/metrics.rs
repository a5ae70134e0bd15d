//! The replica's Prometheus metrics, with vLLM's names, and their text exposition.
//!
//! Owns the counters and histograms requests update (lock-free atomics, O(1) per update) and
//! [`Metrics::render`], which writes the `/metrics` text by hand (the names contain colons, and
//! a scrape every 50 ms must stay cheap: one pass, one `String`). Gauges are not stored here; the
//! caller passes their current values (real or fake) in a [`Gauges`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::text::FinishReason;

/// vLLM's `vllm:time_to_first_token_seconds` buckets.
const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// vLLM's `vllm:inter_token_latency_seconds` buckets.
const ITL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
/// vLLM's request-latency buckets (e2e, queue).
const REQUEST_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

/// A fixed-bucket histogram of seconds.
pub(crate) struct Histogram {
    bounds: &'static [f64],
    /// Per-bucket (not cumulative) counts; the last one is `+Inf`.
    counts: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub(crate) fn observe(&self, value: Duration) {
        self.observe_n(value, 1);
    }

    /// Records `n` observations of the same value.
    pub(crate) fn observe_n(&self, value: Duration, n: u64) {
        if n == 0 {
            return;
        }
        let secs = value.as_secs_f64();
        let bucket = self.bounds.partition_point(|&b| b < secs);
        self.counts[bucket].fetch_add(n, Ordering::Relaxed);
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos
            .fetch_add(nanos.saturating_mul(n), Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str, labels: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            match self.bounds.get(i) {
                Some(bound) => {
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{{labels},le=\"{bound:?}\"}} {cumulative}"
                    );
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(
            out,
            "{name}_sum{{{labels}}} {sum:?}\n{name}_count{{{labels}}} {cumulative}"
        );
    }
}

/// Counters and histograms of one replica.
pub(crate) struct Metrics {
    model_labels: String,
    pub(crate) prompt_tokens: AtomicU64,
    pub(crate) generation_tokens: AtomicU64,
    pub(crate) prefix_cache_queries: AtomicU64,
    pub(crate) prefix_cache_hits: AtomicU64,
    success: [AtomicU64; 3],
    pub(crate) ttft: Histogram,
    pub(crate) itl: Histogram,
    pub(crate) e2e: Histogram,
    pub(crate) queue_time: Histogram,
}

/// Current gauge values for one scrape.
pub(crate) struct Gauges {
    pub(crate) running: f64,
    pub(crate) waiting: f64,
    pub(crate) kv_cache_usage: f64,
    pub(crate) block_size: usize,
    pub(crate) num_gpu_blocks: usize,
    pub(crate) prefix_caching: bool,
    pub(crate) max_lora: usize,
    /// `(running, waiting, unix timestamp)` series of `vllm:lora_requests_info`.
    pub(crate) lora_series: Vec<(String, String, f64)>,
}

/// Escapes a Prometheus label value.
pub(crate) fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

impl Metrics {
    pub(crate) fn new(model_name: &str) -> Self {
        Self {
            model_labels: format!("model_name=\"{}\"", escape_label(model_name)),
            prompt_tokens: AtomicU64::new(0),
            generation_tokens: AtomicU64::new(0),
            prefix_cache_queries: AtomicU64::new(0),
            prefix_cache_hits: AtomicU64::new(0),
            success: Default::default(),
            ttft: Histogram::new(TTFT_BUCKETS),
            itl: Histogram::new(ITL_BUCKETS),
            e2e: Histogram::new(REQUEST_BUCKETS),
            queue_time: Histogram::new(REQUEST_BUCKETS),
        }
    }

    fn success_index(reason: FinishReason) -> usize {
        match reason {
            FinishReason::Stop => 0,
            FinishReason::Length => 1,
            FinishReason::Abort => 2,
        }
    }

    /// Records a finished request.
    pub(crate) fn record_finished(
        &self,
        reason: FinishReason,
        prompt_tokens: usize,
        generated: u32,
        e2e: Duration,
    ) {
        self.success[Self::success_index(reason)].fetch_add(1, Ordering::Relaxed);
        self.prompt_tokens
            .fetch_add(prompt_tokens as u64, Ordering::Relaxed);
        self.generation_tokens
            .fetch_add(u64::from(generated), Ordering::Relaxed);
        self.e2e.observe(e2e);
    }

    /// Records one prefix-cache lookup (in tokens, as vLLM counts).
    pub(crate) fn record_prefix_lookup(&self, queried: usize, hit: usize) {
        self.prefix_cache_queries
            .fetch_add(queried as u64, Ordering::Relaxed);
        self.prefix_cache_hits
            .fetch_add(hit as u64, Ordering::Relaxed);
    }

    pub(crate) fn successes(&self, reason: FinishReason) -> u64 {
        self.success[Self::success_index(reason)].load(Ordering::Relaxed)
    }

    /// The `/metrics` text.
    pub(crate) fn render(&self, g: &Gauges) -> String {
        let l = &self.model_labels;
        let mut out = String::with_capacity(8 * 1024);
        let gauge = |out: &mut String, name: &str, help: &str, value: f64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{{l}}} {value:?}"
            );
        };
        gauge(
            &mut out,
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            g.running,
        );
        gauge(
            &mut out,
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            g.waiting,
        );
        gauge(
            &mut out,
            "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage.",
            g.kv_cache_usage,
        );
        gauge(
            &mut out,
            "vllm:gpu_cache_usage_perc",
            "GPU KV-cache usage. 1 means 100 percent usage (deprecated name of vllm:kv_cache_usage_perc).",
            g.kv_cache_usage,
        );
        let _ = writeln!(
            out,
            "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n# TYPE vllm:cache_config_info gauge\n\
             vllm:cache_config_info{{{l},block_size=\"{}\",enable_prefix_caching=\"{}\",num_gpu_blocks=\"{}\"}} 1.0",
            g.block_size,
            if g.prefix_caching { "True" } else { "False" },
            g.num_gpu_blocks
        );
        let _ = writeln!(
            out,
            "# HELP vllm:lora_requests_info Running stats on lora requests.\n# TYPE vllm:lora_requests_info gauge"
        );
        for (running, waiting, ts) in &g.lora_series {
            let _ = writeln!(
                out,
                "vllm:lora_requests_info{{{l},max_lora=\"{}\",running_lora_adapters=\"{}\",waiting_lora_adapters=\"{}\"}} {ts:?}",
                g.max_lora,
                escape_label(running),
                escape_label(waiting)
            );
        }

        let counter = |out: &mut String, name: &str, help: &str, value: &AtomicU64| {
            let v = value.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{{l}}} {v}"
            );
        };
        counter(
            &mut out,
            "vllm:prompt_tokens_total",
            "Number of prefill tokens processed.",
            &self.prompt_tokens,
        );
        counter(
            &mut out,
            "vllm:generation_tokens_total",
            "Number of generation tokens processed.",
            &self.generation_tokens,
        );
        counter(
            &mut out,
            "vllm:prefix_cache_queries_total",
            "Prefix cache queries, in terms of number of queried tokens.",
            &self.prefix_cache_queries,
        );
        counter(
            &mut out,
            "vllm:prefix_cache_hits_total",
            "Prefix cache hits, in terms of number of cached tokens.",
            &self.prefix_cache_hits,
        );
        let _ = writeln!(
            out,
            "# HELP vllm:request_success_total Count of successfully processed requests.\n\
             # TYPE vllm:request_success_total counter"
        );
        for reason in [
            FinishReason::Stop,
            FinishReason::Length,
            FinishReason::Abort,
        ] {
            let _ = writeln!(
                out,
                "vllm:request_success_total{{{l},finish_reason=\"{}\"}} {}",
                reason.as_str(),
                self.successes(reason)
            );
        }

        self.ttft.render(
            &mut out,
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            l,
        );
        self.itl.render(
            &mut out,
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            l,
        );
        self.e2e.render(
            &mut out,
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            l,
        );
        self.queue_time.render(
            &mut out,
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            l,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges() -> Gauges {
        Gauges {
            running: 2.0,
            waiting: 7.0,
            kv_cache_usage: 0.25,
            block_size: 16,
            num_gpu_blocks: 1024,
            prefix_caching: true,
            max_lora: 2,
            lora_series: vec![("a,b".into(), "c".into(), 1_700_000_000.5)],
        }
    }

    /// The value of the sample line starting with `prefix`.
    fn sample(text: &str, prefix: &str) -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix} missing:\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    #[test]
    fn gauges_and_info_metrics() {
        let m = Metrics::new("org/model");
        let text = m.render(&gauges());
        assert_eq!(
            sample(&text, "vllm:num_requests_running{model_name=\"org/model\"}"),
            2.0
        );
        assert_eq!(
            sample(&text, "vllm:num_requests_waiting{model_name=\"org/model\"}"),
            7.0
        );
        assert_eq!(sample(&text, "vllm:kv_cache_usage_perc{"), 0.25);
        assert_eq!(sample(&text, "vllm:gpu_cache_usage_perc{"), 0.25);
        assert!(text.contains("# TYPE vllm:num_requests_running gauge"));
        assert!(text.contains(
            "vllm:cache_config_info{model_name=\"org/model\",block_size=\"16\",enable_prefix_caching=\"True\",num_gpu_blocks=\"1024\"} 1.0"
        ));
        assert!(text.contains(
            "vllm:lora_requests_info{model_name=\"org/model\",max_lora=\"2\",running_lora_adapters=\"a,b\",waiting_lora_adapters=\"c\"} 1700000000.5"
        ));
    }

    #[test]
    fn counters_and_histograms() {
        let m = Metrics::new("m");
        m.record_finished(FinishReason::Length, 10, 5, Duration::from_millis(400));
        m.record_finished(FinishReason::Stop, 3, 2, Duration::from_secs(2));
        m.record_prefix_lookup(13, 8);
        m.ttft.observe(Duration::from_millis(3));
        m.itl.observe_n(Duration::from_millis(20), 4);
        let text = m.render(&gauges());
        assert_eq!(sample(&text, "vllm:prompt_tokens_total{"), 13.0);
        assert_eq!(sample(&text, "vllm:generation_tokens_total{"), 7.0);
        assert_eq!(sample(&text, "vllm:prefix_cache_queries_total{"), 13.0);
        assert_eq!(sample(&text, "vllm:prefix_cache_hits_total{"), 8.0);
        assert_eq!(
            sample(
                &text,
                "vllm:request_success_total{model_name=\"m\",finish_reason=\"length\"}"
            ),
            1.0
        );
        assert_eq!(
            sample(
                &text,
                "vllm:request_success_total{model_name=\"m\",finish_reason=\"stop\"}"
            ),
            1.0
        );
        assert!(text.contains("# TYPE vllm:prompt_tokens_total counter"));
        // buckets are cumulative and end at +Inf = count
        assert_eq!(
            sample(
                &text,
                "vllm:time_to_first_token_seconds_bucket{model_name=\"m\",le=\"0.001\"}"
            ),
            0.0
        );
        assert_eq!(
            sample(
                &text,
                "vllm:time_to_first_token_seconds_bucket{model_name=\"m\",le=\"0.005\"}"
            ),
            1.0
        );
        assert_eq!(
            sample(
                &text,
                "vllm:time_to_first_token_seconds_bucket{model_name=\"m\",le=\"+Inf\"}"
            ),
            1.0
        );
        assert_eq!(
            sample(&text, "vllm:inter_token_latency_seconds_count{"),
            4.0
        );
        assert!((sample(&text, "vllm:inter_token_latency_seconds_sum{") - 0.08).abs() < 1e-9);
        assert_eq!(
            sample(
                &text,
                "vllm:e2e_request_latency_seconds_bucket{model_name=\"m\",le=\"0.3\"}"
            ),
            0.0
        );
        assert_eq!(
            sample(
                &text,
                "vllm:e2e_request_latency_seconds_bucket{model_name=\"m\",le=\"0.5\"}"
            ),
            1.0
        );
        assert_eq!(
            sample(&text, "vllm:e2e_request_latency_seconds_count{"),
            2.0
        );
        assert!(text.contains("# TYPE vllm:request_queue_time_seconds histogram"));
    }

    #[test]
    fn every_sample_line_is_well_formed() {
        let m = Metrics::new("we\"ird\\name");
        let text = m.render(&gauges());
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(
                series.starts_with("vllm:") && series.ends_with('}'),
                "{line}"
            );
        }
        assert!(text.contains(r#"model_name="we\"ird\\name""#));
    }
}
