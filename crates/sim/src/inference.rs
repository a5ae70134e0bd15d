//! One inference request from admission to its last token.
//!
//! Owns the lifecycle shared by chat and text completions once the request is validated:
//! waiting for a running slot, the prefix-cache lookup and allocation, the simulated prefill and
//! decode times, the metrics the request records, and the non-streamed response. The streamed
//! response runs the same [`Job`] through [`crate::stream::TokenStream`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::api::{
    AssistantMessage, ChatChoice, ChatCompletion, Prompt, TextChoice, TextCompletion, Usage,
};
use crate::engine::{Admission, SeqSlot};
use crate::error::SimError;
use crate::kv_cache::KvAllocation;
use crate::lanes::{LaneAdmission, LaneGuard};
use crate::latency::LatencyParams;
use crate::rng::SimRng;
use crate::server::Replica;
use crate::text::{FinishReason, OutputPlan};

/// Which OpenAI API the request came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Chat,
    Completion,
}

impl Endpoint {
    pub(crate) fn id_prefix(self) -> &'static str {
        match self {
            Endpoint::Chat => "chatcmpl-",
            Endpoint::Completion => "cmpl-",
        }
    }
}

/// A validated request, ready to run.
pub(crate) struct Job {
    pub(crate) replica: Arc<Replica>,
    pub(crate) endpoint: Endpoint,
    pub(crate) id: String,
    pub(crate) created: u64,
    /// The `model` echoed in the response (the name the client asked for).
    pub(crate) model: String,
    pub(crate) lora: Option<Arc<str>>,
    pub(crate) prompt: Prompt,
    pub(crate) plan: OutputPlan,
    pub(crate) latency: LatencyParams,
    /// Latency jitter.
    pub(crate) rng: SimRng,
    pub(crate) arrival: Instant,
    /// vLLM's request priority (lower = sooner); 0 under `fcfs`.
    pub(crate) priority: i64,
}

/// What a running request holds; dropping it frees its slot, its KV blocks and its prefill lane.
pub(crate) struct Running {
    _slot: SeqSlot,
    _kv: Option<KvAllocation>,
    /// Held from when the prefill starts until its first token is due.
    pub(crate) lane: Option<LaneGuard>,
    pub(crate) cached_tokens: usize,
    /// This request's own prefill time (not counting the wait for a lane).
    pub(crate) prefill: Duration,
    pub(crate) admitted_at: Instant,
}

impl Job {
    /// Starts running on `slot`: records the queue time, allocates KV blocks (finding the cached
    /// prefix), and draws the prefill time under the current load. The prefill itself starts
    /// when a lane is free ([`Job::prefill_lane`]).
    pub(crate) fn start(&mut self, slot: SeqSlot) -> Running {
        let r = &*self.replica;
        let admitted_at = slot.admitted_at();
        r.metrics
            .queue_time
            .observe(admitted_at.saturating_duration_since(self.arrival));
        let kv = r.kv.as_ref().map(|kv| {
            kv.allocate(
                &self.prompt.token_ids,
                self.lora.as_ref(),
                self.plan.count as usize,
            )
        });
        let cached_tokens = kv.as_ref().map_or(0, KvAllocation::cached_tokens);
        if kv.is_some() {
            r.metrics
                .record_prefix_lookup(self.prompt.tokens(), cached_tokens);
        }
        let prefill = if self.latency.is_zero() {
            Duration::ZERO
        } else {
            let load = self.load_factor();
            self.latency
                .prefill(self.prompt.tokens(), cached_tokens, load, &mut self.rng)
        };
        Running {
            _slot: slot,
            _kv: kv,
            lane: None,
            cached_tokens,
            prefill,
            admitted_at,
        }
    }

    /// A prefill lane for this request (at once, or a place in the lanes' queue).
    pub(crate) fn prefill_lane(&self) -> LaneAdmission {
        self.replica.lanes.acquire(self.priority)
    }

    /// The latency multiplier for the replica's current load.
    pub(crate) fn load_factor(&self) -> f64 {
        let engine = &self.replica.engine;
        self.latency
            .load_factor(engine.running(), engine.max_num_seqs())
    }

    pub(crate) fn usage(&self, completion_tokens: u32, cached_tokens: usize) -> Usage {
        Usage::new(self.prompt.tokens(), completion_tokens, cached_tokens)
    }

    /// The opening fields shared by every streamed chunk: `{"id":..,"object":..,"created":..,"model":..`.
    pub(crate) fn chunk_head(&self) -> String {
        let object = match self.endpoint {
            Endpoint::Chat => "chat.completion.chunk",
            Endpoint::Completion => "text_completion",
        };
        let json = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
        format!(
            "{{\"id\":{},\"object\":\"{object}\",\"created\":{},\"model\":{}",
            json(&self.id),
            self.created,
            json(&self.model)
        )
    }
}

/// Records an abort if the client goes away while a non-streamed request runs (hyper then drops
/// the request's future).
struct AbortGuard {
    replica: Arc<Replica>,
    prompt_tokens: usize,
    arrival: Instant,
    armed: bool,
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if self.armed {
            self.replica.metrics.record_finished(
                FinishReason::Abort,
                self.prompt_tokens,
                0,
                self.arrival.elapsed(),
            );
        }
    }
}

/// Runs a non-streamed request to completion and returns the response body.
pub(crate) async fn complete(mut job: Job, admission: Admission) -> Result<Bytes, SimError> {
    let slot = match admission {
        Admission::Running(slot) => slot,
        Admission::Queued(waiting) => waiting
            .await
            .map_err(|e| SimError::ShuttingDown(e.to_string()))?,
    };
    let mut running = job.start(slot);
    let mut abort_guard = AbortGuard {
        replica: Arc::clone(&job.replica),
        prompt_tokens: job.prompt.tokens(),
        arrival: job.arrival,
        armed: true,
    };
    let mut prefill_start = running.admitted_at;
    if !running.prefill.is_zero() {
        let lane = match job.prefill_lane() {
            LaneAdmission::Now(lane) => lane,
            LaneAdmission::Queued(wait) => wait.await,
        };
        prefill_start = lane.started;
        running.lane = Some(lane);
    }
    let steps = job.plan.count.saturating_sub(1);
    let decode = if job.latency.is_zero() {
        Duration::ZERO
    } else {
        job.latency.decode(steps, job.load_factor(), &mut job.rng)
    };
    // The zero-latency path never touches the timer wheel.
    if !running.prefill.is_zero() {
        tokio::time::sleep_until((prefill_start + running.prefill).into()).await;
        running.lane = None;
    }
    if !decode.is_zero() {
        tokio::time::sleep(decode).await;
    }
    abort_guard.armed = false;
    let text = job.plan.tokens.collect_text();
    let usage = job.usage(job.plan.count, running.cached_tokens);
    let finish_reason = job.plan.finish_reason;

    let metrics = &job.replica.metrics;
    metrics
        .ttft
        .observe(prefill_start.saturating_duration_since(job.arrival) + running.prefill);
    if steps > 0 {
        metrics.itl.observe_n(decode / steps, u64::from(steps));
    }
    metrics.record_finished(
        finish_reason,
        job.prompt.tokens(),
        job.plan.count,
        job.arrival.elapsed(),
    );
    drop(running);

    let body = match job.endpoint {
        Endpoint::Chat => serde_json::to_vec(&ChatCompletion {
            id: &job.id,
            object: "chat.completion",
            created: job.created,
            model: &job.model,
            choices: [ChatChoice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant",
                    content: &text,
                    tool_calls: [],
                },
                logprobs: None,
                finish_reason: finish_reason.as_str(),
            }],
            usage,
        }),
        Endpoint::Completion => serde_json::to_vec(&TextCompletion {
            id: &job.id,
            object: "text_completion",
            created: job.created,
            model: &job.model,
            choices: [TextChoice {
                index: 0,
                text: &text,
                logprobs: None,
                finish_reason: finish_reason.as_str(),
            }],
            usage,
        }),
    };
    body.map(Bytes::from)
        .map_err(|e| SimError::Internal(format!("cannot serialise the response: {e}")))
}

/// Records a request that ended early.
pub(crate) fn record_abort(job: &Job, generated: u32) {
    job.replica.metrics.record_finished(
        FinishReason::Abort,
        job.prompt.tokens(),
        generated,
        job.arrival.elapsed(),
    );
}
