//! The built-in filters, scorers and pickers, one small type each, with the anchor's formulas.
//!
//! | plugin | kind | formula |
//! |---|---|---|
//! | `healthy-filter` | filter (always first) | drop ejected endpoints unless all are |
//! | `utilization-detector` | filter | drop endpoints over the saturation thresholds or with stale metrics, unless all are |
//! | `queue-scorer` | scorer | `(maxQ − q) / (maxQ − minQ)`, all equal → 1 |
//! | `kv-cache-utilization-scorer` | scorer | `1 − kv` |
//! | `running-requests-size-scorer` | scorer | like the queue scorer over the gateway's in-flight counts |
//! | `prefix-cache-scorer` | scorer | approximate: `matched / max(total, minMatchBlocksForFullScore)` |
//! | `precise-prefix-cache-scorer` | scorer | the same over the blocks engines report holding |
//! | `lora-affinity-scorer` | scorer | adapter running 1.0, room to load 0.8, waiting 0.6, else 0 |
//! | `prefill-scorer` | scorer | `1 / (1 + n)`, n = this gateway's requests there without a first byte yet |
//! | `max-score-picker` | picker | best first, ties broken at random |
//! | `random-picker` | picker | uniform |
//! | `weighted-random-picker` | picker | A-Res by score |
//! | `round-robin-picker` | picker | rotation (a Kubernetes Service, for comparison) |
//!
//! Pure: they read endpoint state and indexes under short locks and never wait.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use infergate_control::picker::{PrecisePrefixParams, PrefixCacheParams, UtilizationParams};
use rand::Rng;

use crate::endpoint::Endpoint;
use crate::kv_index::{request_keys, KvBlockIndex};
use crate::prefix::{prompt_hashes, ApproxPrefixIndex, PrefixGeometry};
use crate::profile::{min_max_score, CycleState, Filter, Picker, Scorer};
use crate::saturation::SaturationDetector;

// ---------------------------------------------------------------- filters

/// Drops ejected endpoints — unless every endpoint is ejected, in which case it keeps them all
/// (a pool that looks fully dead is more often a transient blip than an outage; trying beats a
/// certain 503).
#[derive(Debug, Default)]
pub struct HealthyFilter;

impl Filter for HealthyFilter {
    fn name(&self) -> &str {
        "healthy-filter"
    }
    fn filter(&self, _cx: &CycleState<'_>, candidates: &mut Vec<Endpoint>) {
        if candidates.iter().any(|e| !e.is_ejected()) {
            candidates.retain(|e| !e.is_ejected());
        }
    }
}

/// The utilization detector as a filter: drops endpoints whose queue or KV use is over the
/// thresholds (times `1 + headroom`) or whose metrics are stale; keeps all if that drops all.
#[derive(Debug)]
pub struct UtilizationFilter {
    pub name: String,
    pub params: UtilizationParams,
}

impl Filter for UtilizationFilter {
    fn name(&self) -> &str {
        &self.name
    }
    fn filter(&self, cx: &CycleState<'_>, candidates: &mut Vec<Endpoint>) {
        let p = &self.params;
        let stale_ms = u64::try_from(p.metrics_staleness_threshold.get().as_millis()).unwrap_or(0);
        let q_max = p.queue_depth_threshold * (1.0 + p.headroom);
        let kv_max = (p.kv_cache_util_threshold * (1.0 + p.headroom)).min(1.0);
        let ok = |e: &Endpoint| {
            e.metrics().is_some_and(|m| {
                cx.now_ms.saturating_sub(m.updated_ms) <= stale_ms
                    && e.queue_estimate().unwrap_or(m.waiting) <= q_max
                    && m.kv_usage <= kv_max
            })
        };
        if candidates.iter().any(ok) {
            candidates.retain(ok);
        }
    }
}

// ---------------------------------------------------------------- scorers

/// Shorter engine queue scores higher (`(maxQ − q) / (maxQ − minQ)`). The queue is the last
/// scrape plus what this gateway sent since; an endpoint not yet scraped counts its in-flight
/// requests.
#[derive(Debug, Default)]
pub struct QueueScorer;

impl Scorer for QueueScorer {
    fn name(&self) -> &str {
        "queue-scorer"
    }
    fn score(&self, _cx: &CycleState<'_>, candidates: &[Endpoint], out: &mut [f64]) {
        let q: Vec<f64> = candidates
            .iter()
            .map(|e| e.queue_estimate().unwrap_or(f64::from(e.in_flight())))
            .collect();
        min_max_score(&q, out);
    }
}

/// Emptier KV cache scores higher: `1 − utilisation` (0 used when never scraped).
#[derive(Debug, Default)]
pub struct KvCacheScorer;

impl Scorer for KvCacheScorer {
    fn name(&self) -> &str {
        "kv-cache-utilization-scorer"
    }
    fn score(&self, _cx: &CycleState<'_>, candidates: &[Endpoint], out: &mut [f64]) {
        for (o, e) in out.iter_mut().zip(candidates) {
            *o = 1.0 - e.metrics().map_or(0.0, |m| m.kv_usage);
        }
    }
}

/// Fewer requests in flight from this gateway scores higher (`(max − n) / (max − min)`).
#[derive(Debug, Default)]
pub struct InFlightScorer;

impl Scorer for InFlightScorer {
    fn name(&self) -> &str {
        "running-requests-size-scorer"
    }
    fn score(&self, _cx: &CycleState<'_>, candidates: &[Endpoint], out: &mut [f64]) {
        let n: Vec<f64> = candidates
            .iter()
            .map(|e| f64::from(e.in_flight()))
            .collect();
        min_max_score(&n, out);
    }
}

/// Prefers endpoints where no prefill is in progress: `1 / (1 + n)`, `n` being this gateway's
/// requests dispatched there that have not produced a first byte yet (prefilling, or queued in
/// the engine) — 1.0 with none, 0.5 behind one, ….
///
/// A running prefill is not preempted (vLLM schedules running requests before waiting ones,
/// and engine priority reorders only the waiting queue), so a request sent where one runs
/// waits for its remainder even when it outranks it; this scorer steers it to a replica whose
/// prefill lane is free. Scraped queues (the `queue-scorer`) lag by up to a scrape interval and
/// do not tell prefilling from decoding; this count is exact for this gateway's own streamed
/// requests, and a non-streamed request counts until its response is complete.
#[derive(Debug, Default)]
pub struct PrefillScorer;

impl Scorer for PrefillScorer {
    fn name(&self) -> &str {
        "prefill-scorer"
    }
    fn score(&self, _cx: &CycleState<'_>, candidates: &[Endpoint], out: &mut [f64]) {
        for (o, e) in out.iter_mut().zip(candidates) {
            *o = 1.0 / (1.0 + f64::from(e.awaiting_first_byte()));
        }
    }
}

/// `matched / max(total, min_full)`: the anchor's `matched / total` when the prompt is long, and
/// proportionally less for a short match, so a two-block prompt matching fully does not outweigh
/// load the way a 6,000-token shared system prompt should (GIE #2561).
pub fn prefix_score(matched: usize, total: usize, min_full: usize) -> f64 {
    if total == 0 {
        return 0.0;
    }
    matched as f64 / total.max(min_full.max(1)) as f64
}

/// The anchor's approximate prefix-cache scorer (with the #2561 fix).
pub struct ApproxPrefixScorer {
    pub name: String,
    pub params: PrefixCacheParams,
    pub index: Arc<ApproxPrefixIndex>,
}

impl ApproxPrefixScorer {
    fn block_tokens(&self, candidates: &[Endpoint]) -> usize {
        if self.params.auto_tune {
            if let Some(bs) = candidates
                .iter()
                .find_map(|e| e.metrics().and_then(|m| m.block_size))
            {
                return bs.max(1);
            }
        }
        self.params.block_size_tokens.max(1)
    }

    /// How the prompt is cut into blocks now.
    pub fn geometry(&self, candidates: &[Endpoint]) -> PrefixGeometry {
        let p = &self.params;
        let tokens = self.block_tokens(candidates);
        let block_chars = p
            .hash_block_size
            .unwrap_or(tokens * p.average_characters_per_token)
            .max(1);
        let mut max_blocks = p.max_prefix_blocks_to_match;
        if let Some(t) = p.max_prefix_tokens_to_match {
            max_blocks = max_blocks.min((t / tokens).max(1));
        }
        PrefixGeometry {
            block_chars,
            max_blocks,
        }
    }

    /// The LRU capacity for an endpoint: its KV blocks when scraped and auto-tuning.
    pub fn capacity(&self, ep: &Endpoint) -> usize {
        if self.params.auto_tune {
            if let Some(n) = ep.metrics().and_then(|m| m.num_blocks) {
                return n.max(1);
            }
        }
        self.params.lru_capacity_per_server
    }
}

impl Scorer for ApproxPrefixScorer {
    fn name(&self) -> &str {
        &self.name
    }
    fn score(&self, cx: &CycleState<'_>, candidates: &[Endpoint], out: &mut [f64]) {
        let hashes = cx.approx_hashes.get_or_init(|| {
            Arc::new(prompt_hashes(
                self.geometry(candidates),
                cx.req.target_model,
                cx.req.prompt,
            ))
        });
        let uids: Vec<u32> = candidates.iter().map(|e| e.uid).collect();
        let mut matched = vec![0usize; candidates.len()];
        self.index.matched_blocks(hashes, &uids, &mut matched);
        for (o, m) in out.iter_mut().zip(matched) {
            *o = prefix_score(m, hashes.len(), self.params.min_match_blocks_for_full_score);
        }
    }
}

/// Scores by the KV blocks each engine reports holding (vLLM KV events), plus the blocks of
/// requests just sent there (speculative, until the engine's events arrive).
pub struct PrecisePrefixScorer {
    pub name: String,
    pub params: PrecisePrefixParams,
    pub index: Arc<KvBlockIndex>,
}

impl PrecisePrefixScorer {
    pub fn block_size(&self) -> usize {
        self.index
            .block_size()
            .unwrap_or(self.params.block_size)
            .max(1)
    }

    /// The request's block keys (cached in the cycle state).
    pub fn keys<'c>(&self, cx: &'c CycleState<'_>) -> &'c Arc<Vec<u64>> {
        cx.precise_keys.get_or_init(|| {
            Arc::new(match cx.prompt_tokens() {
                Some(tokens) => request_keys(
                    cx.req.target_model,
                    tokens,
                    self.block_size(),
                    self.params.max_prefix_blocks_to_match,
                ),
                None => Vec::new(),
            })
        })
    }
}

impl Scorer for PrecisePrefixScorer {
    fn name(&self) -> &str {
        &self.name
    }
    fn score(&self, cx: &CycleState<'_>, candidates: &[Endpoint], out: &mut [f64]) {
        let keys = self.keys(cx);
        let hps: Vec<&str> = candidates.iter().map(|e| &*e.host_port).collect();
        let mut matched = vec![0usize; candidates.len()];
        self.index
            .matched_blocks(keys, &hps, cx.now_ms, &mut matched);
        for (o, m) in out.iter_mut().zip(matched) {
            *o = prefix_score(m, keys.len(), self.params.min_match_blocks_for_full_score);
        }
    }
}

/// Prefers endpoints where the request's LoRA adapter already runs (the anchor's table).
#[derive(Debug, Default)]
pub struct LoraAffinityScorer;

impl Scorer for LoraAffinityScorer {
    fn name(&self) -> &str {
        "lora-affinity-scorer"
    }
    fn score(&self, cx: &CycleState<'_>, candidates: &[Endpoint], out: &mut [f64]) {
        let model = cx.req.target_model;
        for (o, e) in out.iter_mut().zip(candidates) {
            let Some(m) = e.metrics() else {
                *o = 0.0;
                continue;
            };
            let Some(l) = &m.lora else {
                *o = 0.0;
                continue;
            };
            *o = if l.running.iter().any(|a| a == model) {
                1.0
            } else if l.running.len() + l.waiting.len() < l.max_lora {
                0.8
            } else if l.waiting.iter().any(|a| a == model) {
                0.6
            } else {
                0.0
            };
        }
    }
}

// ---------------------------------------------------------------- pickers

/// Highest total score first, ties broken at random.
#[derive(Debug)]
pub struct MaxScorePicker {
    pub max_endpoints: usize,
}

impl Picker for MaxScorePicker {
    fn name(&self) -> &str {
        "max-score-picker"
    }
    fn max_endpoints(&self) -> usize {
        self.max_endpoints
    }
    fn pick(&self, scores: &[f64], n: usize, rng: &mut dyn rand::RngCore) -> Vec<usize> {
        // Random keys break ties without bias; the sort is over a pool's endpoints.
        let mut order: Vec<(usize, f64, u32)> = scores
            .iter()
            .enumerate()
            .map(|(i, s)| (i, *s, rng.random::<u32>()))
            .collect();
        order.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
        order.into_iter().take(n).map(|(i, ..)| i).collect()
    }
}

/// Uniformly at random (scores ignored).
#[derive(Debug)]
pub struct RandomPicker {
    pub max_endpoints: usize,
}

impl Picker for RandomPicker {
    fn name(&self) -> &str {
        "random-picker"
    }
    fn max_endpoints(&self) -> usize {
        self.max_endpoints
    }
    fn pick(&self, scores: &[f64], n: usize, rng: &mut dyn rand::RngCore) -> Vec<usize> {
        let mut order: Vec<(usize, u32)> = (0..scores.len()).map(|i| (i, rng.random())).collect();
        order.sort_unstable_by_key(|x| x.1);
        order.into_iter().take(n).map(|(i, _)| i).collect()
    }
}

/// Weighted by score without replacement (A-Res: key `u^(1/w)`); zero scores only when nothing
/// else is left.
#[derive(Debug)]
pub struct WeightedRandomPicker {
    pub max_endpoints: usize,
}

impl Picker for WeightedRandomPicker {
    fn name(&self) -> &str {
        "weighted-random-picker"
    }
    fn max_endpoints(&self) -> usize {
        self.max_endpoints
    }
    fn pick(&self, scores: &[f64], n: usize, rng: &mut dyn rand::RngCore) -> Vec<usize> {
        let mut order: Vec<(usize, f64)> = scores
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
                let key = if w > 0.0 { u.powf(1.0 / w) } else { -u };
                (i, key)
            })
            .collect();
        order.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        order.into_iter().take(n).map(|(i, _)| i).collect()
    }
}

/// In turn, like a Kubernetes Service (scores ignored; for comparison).
#[derive(Debug)]
pub struct RoundRobinPicker {
    pub max_endpoints: usize,
    pub next: AtomicUsize,
}

impl Picker for RoundRobinPicker {
    fn name(&self) -> &str {
        "round-robin-picker"
    }
    fn max_endpoints(&self) -> usize {
        self.max_endpoints
    }
    fn pick(&self, scores: &[f64], n: usize, _rng: &mut dyn rand::RngCore) -> Vec<usize> {
        let len = scores.len();
        if len == 0 {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % len;
        (0..n.min(len)).map(|k| (start + k) % len).collect()
    }
}

/// A utilization detector used as a profile's filter.
pub fn utilization_filter(name: &str, detector: &SaturationDetector) -> Option<UtilizationFilter> {
    match detector {
        SaturationDetector::Utilization(p) => Some(UtilizationFilter {
            name: name.to_string(),
            params: p.clone(),
        }),
        SaturationDetector::Concurrency(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::{now_ms, EndpointState};
    use crate::profile::{SchedulingProfile, SchedulingRequest};
    use crate::signals::{EndpointMetrics, LoraInfo};
    use infergate_control::EndpointSpec;
    use rand::SeedableRng;

    fn eps(n: u16) -> Vec<Endpoint> {
        (0..n)
            .map(|i| {
                Arc::new(EndpointState::new(
                    "p".into(),
                    EndpointSpec {
                        name: format!("e{i}"),
                        address: "127.0.0.1".into(),
                        port: 8000 + i,
                        labels: Default::default(),
                    },
                ))
            })
            .collect()
    }

    fn set(ep: &Endpoint, waiting: f64, kv: f64) {
        ep.set_metrics(EndpointMetrics {
            waiting,
            kv_usage: kv,
            ..EndpointMetrics::default()
        });
    }

    fn scores(s: &dyn Scorer, req: &SchedulingRequest<'_>, eps: &[Endpoint]) -> Vec<f64> {
        let cx = CycleState::new(req, now_ms());
        let mut out = vec![0.0; eps.len()];
        s.score(&cx, eps, &mut out);
        out
    }

    #[test]
    fn queue_and_kv_scorers_follow_the_anchor_formulas() {
        let e = eps(3);
        set(&e[0], 0.0, 0.1);
        set(&e[1], 4.0, 0.5);
        set(&e[2], 2.0, 0.9);
        let req = SchedulingRequest::new("m", b"");
        assert_eq!(scores(&QueueScorer, &req, &e), vec![1.0, 0.0, 0.5]);
        let kv = scores(&KvCacheScorer, &req, &e);
        assert!((kv[0] - 0.9).abs() < 1e-9 && (kv[2] - 0.1).abs() < 1e-9);
        // equal queues: everyone 1.0
        for x in &e {
            set(x, 3.0, 0.0);
        }
        assert_eq!(scores(&QueueScorer, &req, &e), vec![1.0, 1.0, 1.0]);
    }

    #[test]
    fn prefill_scorer_prefers_endpoints_with_no_prefill_in_progress() {
        let e = eps(3);
        let req = SchedulingRequest::new("m", b"");
        let _batch = e[0].begin_sheddable_request();
        let mut streaming = e[1].begin_request();
        let _q1 = e[2].begin_request();
        let _q2 = e[2].begin_request();
        assert_eq!(scores(&PrefillScorer, &req, &e), vec![0.5, 0.5, 1.0 / 3.0]);
        // e1's request produced its first byte: it decodes now, the lane is free.
        streaming.first_byte();
        assert_eq!(scores(&PrefillScorer, &req, &e), vec![0.5, 1.0, 1.0 / 3.0]);
    }

    #[test]
    fn a_critical_request_leaves_the_replica_with_a_batch_prefill_for_an_idle_one() {
        // Two replicas equal in queue, KV use and prefix: the one prefilling a batch request
        // loses once the prefill scorer is in the profile.
        let e = eps(2);
        set(&e[0], 0.0, 0.1);
        set(&e[1], 0.0, 0.1);
        let _batch = e[0].begin_sheddable_request();
        let p = SchedulingProfile {
            name: "t".into(),
            filters: vec![Box::new(HealthyFilter)],
            scorers: vec![
                (Box::new(KvCacheScorer), 2.0),
                (Box::new(PrefillScorer), 2.0),
            ],
            picker: Box::new(MaxScorePicker { max_endpoints: 1 }),
        };
        let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
        let req = SchedulingRequest {
            priority: 10,
            ..SchedulingRequest::new("m", b"")
        };
        let cx = CycleState::new(&req, now_ms());
        for _ in 0..20 {
            assert_eq!(p.run(&cx, e.clone(), &mut rng)[0].spec.port, 8001);
        }
    }

    #[test]
    fn prefix_score_counts_absolute_match_length() {
        // the anchor: 2 of 2 blocks = 1.0, same as 200 of 200
        assert_eq!(prefix_score(2, 2, 1), 1.0);
        // the fix: a 2-block match is worth 2/32 of a full one
        assert!((prefix_score(2, 2, 32) - 2.0 / 32.0).abs() < 1e-12);
        assert_eq!(prefix_score(200, 200, 32), 1.0);
        assert_eq!(prefix_score(100, 200, 32), 0.5);
        assert_eq!(prefix_score(0, 0, 32), 0.0);
    }

    /// An approximate prefix scorer over an index of its own.
    fn prefix_scorer(params: PrefixCacheParams) -> ApproxPrefixScorer {
        ApproxPrefixScorer {
            name: "prefix-cache-scorer".into(),
            params,
            index: Arc::new(ApproxPrefixIndex::default()),
        }
    }

    #[test]
    fn approximate_prefix_prefers_where_the_prefix_went() {
        let e = eps(3);
        let s = prefix_scorer(PrefixCacheParams {
            min_match_blocks_for_full_score: 1,
            ..PrefixCacheParams::default()
        });
        let index = s.index.clone();
        let prompt = vec![b'x'; 64 * 10];
        let req = SchedulingRequest::new("m", &prompt);
        let hashes = prompt_hashes(s.geometry(&e), "m", &prompt);
        assert_eq!(hashes.len(), 10);
        index.record(e[1].uid, &hashes[..5], 100);
        index.record(e[2].uid, &hashes, 100);
        assert_eq!(scores(&s, &req, &e), vec![0.0, 0.5, 1.0]);
    }

    #[test]
    fn one_candidate_skips_the_scorers() {
        let e = eps(2);
        let p = SchedulingProfile {
            name: "t".into(),
            filters: vec![Box::new(HealthyFilter)],
            scorers: vec![(Box::new(prefix_scorer(PrefixCacheParams::default())), 1.0)],
            picker: Box::new(MaxScorePicker { max_endpoints: 1 }),
        };
        let prompt = vec![b'x'; 64 * 10];
        let req = SchedulingRequest::new("m", &prompt);
        let mut rng = rand::rng();
        // Two candidates: the prefix scorer hashes the prompt.
        let cx = CycleState::new(&req, now_ms());
        assert_eq!(p.run(&cx, e.clone(), &mut rng).len(), 1);
        assert!(cx.approx_hashes.get().is_some());
        // One: it is the answer, and no scorer runs.
        let cx = CycleState::new(&req, now_ms());
        let picked = p.run(&cx, vec![e[1].clone()], &mut rng);
        assert_eq!(picked.len(), 1);
        assert_eq!(picked[0].spec.port, e[1].spec.port);
        assert!(cx.approx_hashes.get().is_none());
        // Filters still apply to a lone candidate.
        struct DropAll;
        impl Filter for DropAll {
            fn name(&self) -> &str {
                "drop-all"
            }
            fn filter(&self, _cx: &CycleState<'_>, candidates: &mut Vec<Endpoint>) {
                candidates.clear();
            }
        }
        let p = SchedulingProfile {
            filters: vec![Box::new(DropAll)],
            ..p
        };
        let cx = CycleState::new(&req, now_ms());
        assert!(p.run(&cx, vec![e[0].clone()], &mut rng).is_empty());
    }

    #[test]
    fn lora_affinity_table() {
        let e = eps(4);
        let lora = |running: &[&str], waiting: &[&str], max| LoraInfo {
            max_lora: max,
            running: running.iter().map(|s| s.to_string()).collect(),
            waiting: waiting.iter().map(|s| s.to_string()).collect(),
        };
        let with = |ep: &Endpoint, l: LoraInfo| {
            ep.set_metrics(EndpointMetrics {
                lora: Some(l),
                ..EndpointMetrics::default()
            });
        };
        with(&e[0], lora(&["sql"], &[], 2));
        with(&e[1], lora(&["a"], &[], 2));
        with(&e[2], lora(&["a"], &["sql"], 2));
        with(&e[3], lora(&["a", "b"], &[], 2));
        let req = SchedulingRequest::new("sql", b"");
        assert_eq!(
            scores(&LoraAffinityScorer, &req, &e),
            vec![1.0, 0.8, 0.6, 0.0]
        );
    }

    #[test]
    fn utilization_filter_keeps_all_when_all_are_busy() {
        let e = eps(3);
        set(&e[0], 10.0, 0.1);
        set(&e[1], 0.0, 0.95);
        set(&e[2], 1.0, 0.2);
        let f = UtilizationFilter {
            name: "u".into(),
            params: UtilizationParams::default(),
        };
        let req = SchedulingRequest::new("m", b"");
        let cx = CycleState::new(&req, now_ms());
        let mut c = e.clone();
        f.filter(&cx, &mut c);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].spec.port, 8002);
        set(&e[2], 9.0, 0.2);
        let mut c = e;
        let cx = CycleState::new(&req, now_ms());
        f.filter(&cx, &mut c);
        assert_eq!(c.len(), 3);
    }

    fn profile(picker: Box<dyn Picker>) -> SchedulingProfile {
        SchedulingProfile {
            name: "t".into(),
            filters: vec![Box::new(HealthyFilter)],
            scorers: vec![(Box::new(InFlightScorer), 1.0)],
            picker,
        }
    }

    #[test]
    fn max_score_picks_best_then_fallbacks_and_spreads_ties() {
        let e = eps(3);
        let _a = e[0].begin_request();
        let _b = e[0].begin_request();
        let _c = e[2].begin_request();
        let p = profile(Box::new(MaxScorePicker { max_endpoints: 3 }));
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let req = SchedulingRequest::new("m", b"");
        let cx = CycleState::new(&req, now_ms());
        let picked = p.run(&cx, e, &mut rng);
        let ports: Vec<u16> = picked.iter().map(|x| x.spec.port).collect();
        assert_eq!(ports, vec![8001, 8002, 8000]);

        let e = eps(4);
        let p = profile(Box::new(MaxScorePicker { max_endpoints: 1 }));
        let mut counts = [0; 4];
        for _ in 0..4000 {
            let picked = p.run(&cx, e.clone(), &mut rng);
            counts[usize::from(picked[0].spec.port - 8000)] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
    }

    #[test]
    fn min_endpoints_raises_the_fallback_count() {
        let e = eps(4);
        let p = profile(Box::new(MaxScorePicker { max_endpoints: 1 }));
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let mut req = SchedulingRequest::new("m", b"");
        req.min_endpoints = 3;
        let cx = CycleState::new(&req, now_ms());
        assert_eq!(p.run(&cx, e, &mut rng).len(), 3);
    }

    #[test]
    fn other_pickers() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let rr = RoundRobinPicker {
            max_endpoints: 2,
            next: AtomicUsize::new(0),
        };
        assert_eq!(rr.pick(&[0.0; 3], 2, &mut rng), vec![0, 1]);
        assert_eq!(rr.pick(&[0.0; 3], 2, &mut rng), vec![1, 2]);
        assert_eq!(rr.pick(&[0.0; 3], 2, &mut rng), vec![2, 0]);
        let w = WeightedRandomPicker { max_endpoints: 1 };
        let mut counts = [0; 3];
        for _ in 0..3000 {
            counts[w.pick(&[0.0, 1.0, 3.0], 1, &mut rng)[0]] += 1;
        }
        assert_eq!(counts[0], 0);
        assert!(counts[2] > 2 * counts[1], "{counts:?}");
        let r = RandomPicker { max_endpoints: 3 };
        let mut all = r.pick(&[0.0; 3], 3, &mut rng);
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2]);
    }

    #[test]
    fn healthy_filter_skips_ejected_but_keeps_all_when_all_are() {
        let e = eps(2);
        e[1].record_failure(
            crate::endpoint::Failure::Connect,
            3,
            std::time::Duration::from_secs(60),
        );
        let req = SchedulingRequest::new("m", b"");
        let cx = CycleState::new(&req, now_ms());
        let mut c = e.clone();
        HealthyFilter.filter(&cx, &mut c);
        assert_eq!(c.len(), 1);
        e[0].record_failure(
            crate::endpoint::Failure::Connect,
            3,
            std::time::Duration::from_secs(60),
        );
        let mut c = e;
        HealthyFilter.filter(&cx, &mut c);
        assert_eq!(c.len(), 2);
    }
}
