//! Scheduling: `Filter → Scorer (weighted) → Picker`, as the Gateway API Inference Extension's
//! endpoint picker composes it. Each plugin is one small type behind one trait (the plugins are in
//! [`crate::plugins`]); a [`SchedulingProfile`] runs them in order over a pool's candidates for
//! one request.
//!
//! Scores are in [0, 1]; the profile sums `weight × score` per endpoint and the picker chooses the
//! primary endpoint plus ordered fallbacks. Nothing here does I/O or waits.

use std::cell::OnceCell;
use std::sync::Arc;

use crate::endpoint::Endpoint;

/// What kind of prompt [`SchedulingRequest::prompt`] holds (how to tokenize it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PromptKind {
    /// The raw JSON of a chat `messages` array.
    Chat,
    /// The raw JSON of a completions `prompt` (string, list, or token ids).
    Completion,
    /// Anything else (embeddings input, …): used as bytes for the approximate index only.
    #[default]
    Other,
}

/// What the scheduler knows about one request. Borrowed: build it from the parsed body and
/// headers; nothing is copied.
#[derive(Debug, Clone, Copy)]
pub struct SchedulingRequest<'a> {
    /// For logs.
    pub request_id: &'a str,
    /// The model name sent upstream (base model or LoRA adapter).
    pub target_model: &'a str,
    /// Raw prompt JSON (chat `messages`, or `prompt`) for prefix affinity.
    pub prompt: &'a [u8],
    pub prompt_kind: PromptKind,
    /// InferenceObjective priority; negative is sheddable.
    pub priority: i32,
    /// The flow for fairness within a priority band (`x-gateway-inference-fairness-id`, else
    /// the caller's identity, else `default-flow`).
    pub fairness_id: &'a str,
    /// Request size in bytes (counts against flow-control byte limits).
    pub size_bytes: u64,
    /// Estimated tokens (prompt + max output), for the concurrency detector's token mode.
    pub estimated_tokens: u64,
    /// Only these `host:port` may be chosen (the EPP subset hint); `None` = any endpoint.
    pub subset: Option<&'a [&'a str]>,
    /// Endpoints not to choose (already tried for this request).
    pub exclude: &'a [Endpoint],
    /// Return at least this many endpoints (primary + fallbacks) when the pool has them, even if
    /// the picker's `maxNumOfEndpoints` is smaller (the data plane's retry budget).
    pub min_endpoints: usize,
}

impl<'a> SchedulingRequest<'a> {
    /// A request with every optional field empty.
    pub fn new(target_model: &'a str, prompt: &'a [u8]) -> Self {
        Self {
            request_id: "",
            target_model,
            prompt,
            prompt_kind: PromptKind::Other,
            priority: 0,
            fairness_id: DEFAULT_FLOW,
            size_bytes: prompt.len() as u64,
            estimated_tokens: prompt.len() as u64 / 4,
            subset: None,
            exclude: &[],
            min_endpoints: 0,
        }
    }
}

/// The flow of requests that name none (as upstream).
pub const DEFAULT_FLOW: &str = "default-flow";

/// Per-decision scratch space shared by the plugins of one run (the anchor's `CycleState`):
/// values derived from the request once and reused, e.g. its prefix hashes, which the pool also
/// records for the endpoint the request is sent to.
pub struct CycleState<'a> {
    pub req: &'a SchedulingRequest<'a>,
    pub now_ms: u64,
    pub(crate) approx_hashes: OnceCell<Arc<Vec<u64>>>,
    pub(crate) precise_keys: OnceCell<Arc<Vec<u64>>>,
    pub(crate) tokens: OnceCell<Option<Vec<u32>>>,
}

impl<'a> CycleState<'a> {
    pub fn new(req: &'a SchedulingRequest<'a>, now_ms: u64) -> Self {
        Self {
            req,
            now_ms,
            approx_hashes: OnceCell::new(),
            precise_keys: OnceCell::new(),
            tokens: OnceCell::new(),
        }
    }

    /// The prompt's token ids as the engine would see them (the shared tokenizer + chat
    /// template); `None` for prompts it cannot read.
    pub fn prompt_tokens(&self) -> Option<&[u32]> {
        self.tokens
            .get_or_init(|| {
                use infergate_protocol::tokenizer as t;
                match self.req.prompt_kind {
                    PromptKind::Chat => t::chat_prompt_token_ids(self.req.prompt),
                    PromptKind::Completion => t::completion_prompt_token_ids(self.req.prompt),
                    PromptKind::Other => None,
                }
            })
            .as_deref()
    }
}

/// Removes endpoints that must not serve the request.
pub trait Filter: Send + Sync {
    fn name(&self) -> &str;
    fn filter(&self, cx: &CycleState<'_>, candidates: &mut Vec<Endpoint>);
}

/// Rates each candidate in [0, 1]; higher is better. `out[i]` belongs to `candidates[i]`.
pub trait Scorer: Send + Sync {
    fn name(&self) -> &str;
    fn score(&self, cx: &CycleState<'_>, candidates: &[Endpoint], out: &mut [f64]);
}

/// Chooses from scored candidates: indices of the primary then fallbacks, best first, at most
/// `n`.
pub trait Picker: Send + Sync {
    fn name(&self) -> &str;
    /// The configured number of endpoints to return (`maxNumOfEndpoints`).
    fn max_endpoints(&self) -> usize;
    fn pick(&self, scores: &[f64], n: usize, rng: &mut dyn rand::RngCore) -> Vec<usize>;
}

/// One scheduling profile: filters, weighted scorers, a picker.
pub struct SchedulingProfile {
    pub name: String,
    pub filters: Vec<Box<dyn Filter>>,
    pub scorers: Vec<(Box<dyn Scorer>, f64)>,
    pub picker: Box<dyn Picker>,
}

impl std::fmt::Debug for SchedulingProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulingProfile")
            .field("name", &self.name)
            .field(
                "filters",
                &self.filters.iter().map(|x| x.name()).collect::<Vec<_>>(),
            )
            .field(
                "scorers",
                &self
                    .scorers
                    .iter()
                    .map(|(s, w)| (s.name(), *w))
                    .collect::<Vec<_>>(),
            )
            .field("picker", &self.picker.name())
            .finish()
    }
}

impl SchedulingProfile {
    /// Run the profile over `candidates` (already narrowed to the endpoints allowed for this
    /// request). Returns the primary endpoint first, then fallbacks; empty only when
    /// `candidates` is.
    pub fn run(
        &self,
        cx: &CycleState<'_>,
        mut candidates: Vec<Endpoint>,
        rng: &mut dyn rand::RngCore,
    ) -> Vec<Endpoint> {
        for f in &self.filters {
            if candidates.is_empty() {
                break;
            }
            f.filter(cx, &mut candidates);
        }
        // Scorers only order the candidates: with one left there is nothing to order, and the
        // request skips their work (prompt hashing for the prefix scorers included; a pool that
        // grows from one endpoint starts recording prefixes when it has two).
        if candidates.len() <= 1 {
            return candidates;
        }
        let mut total = vec![0.0; candidates.len()];
        let mut scratch = vec![0.0; candidates.len()];
        for (scorer, weight) in &self.scorers {
            if *weight == 0.0 {
                continue;
            }
            scratch.iter_mut().for_each(|s| *s = 0.0);
            scorer.score(cx, &candidates, &mut scratch);
            for (t, s) in total.iter_mut().zip(&scratch) {
                let s = if s.is_finite() {
                    s.clamp(0.0, 1.0)
                } else {
                    0.0
                };
                *t += weight * s;
            }
        }
        let n = self
            .picker
            .max_endpoints()
            .max(cx.req.min_endpoints)
            .max(1)
            .min(candidates.len());
        let picked = self.picker.pick(&total, n, rng);
        picked.into_iter().map(|i| candidates[i].clone()).collect()
    }
}

/// `(max − x) / (max − min)` over the values; 1.0 for all when they are equal.
pub fn min_max_score(values: &[f64], out: &mut [f64]) {
    let (min, max) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    for (o, v) in out.iter_mut().zip(values) {
        *o = if max > min {
            (max - v) / (max - min)
        } else {
            1.0
        };
    }
}
