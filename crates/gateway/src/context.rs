//! The per-request context: what each pipeline stage learned, carried to the next, and the
//! settle step that turns it into metrics and one access-log line when the response ends —
//! whether it completed, failed, or the client went away.

use std::sync::Arc;
use std::time::{Duration, Instant};

use infergate_protocol::{Operation, Usage};

use crate::access_log::{rfc3339_now, AccessRecord};
use crate::metrics::{GenAiLabels, Label, OpLabels, RequestLabels, TokenLabels};
use crate::snapshot::Snapshot;
use crate::Gateway;

/// How a response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Complete,
    ClientDisconnected,
    UpstreamError,
    /// A response guardrail ended the stream.
    Blocked,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::ClientDisconnected => "client_disconnected",
            Outcome::UpstreamError => "upstream_error",
            Outcome::Blocked => "blocked",
        }
    }
}

/// The API a client spoke (responses and errors go back in the same one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientFormat {
    #[default]
    OpenAi,
    /// Anthropic Messages (`POST /v1/messages`).
    Anthropic,
}

pub struct RequestContext {
    pub id: String,
    pub started: Instant,
    pub ts: String,
    pub method: http::Method,
    pub path: String,
    pub operation: Option<Operation>,
    /// The public model the client asked for.
    pub model: Option<Arc<str>>,
    /// The model name sent upstream.
    pub served_model: Option<String>,
    pub pool: Option<Label>,
    /// The external backend that served (None for pools).
    pub backend: Option<Label>,
    /// `gen_ai.provider.name`.
    pub provider: Option<Label>,
    /// The price of the backend that served, for the spend ledger.
    pub price: Option<infergate_control::Pricing>,
    /// Region of the target that served.
    pub region: Option<Arc<str>>,
    /// The API format the client spoke.
    pub format: ClientFormat,
    pub endpoint: Option<Arc<str>>,
    pub stream: bool,
    pub priority: i32,
    /// The caller, once the identify stage has run (None = anonymous).
    pub identity: Option<std::sync::Arc<infergate_policy::Identity>>,
    /// The caller as the policy stages see it (tenant, key record).
    pub caller: Option<infergate_policy::access::Caller>,
    /// What admission reserved; taken by settle.
    pub admission: Option<crate::stages::admit::Admission>,
    /// `x-ratelimit-*` values for the response.
    pub rate_headers: Option<crate::stages::admit::RateHeaders>,
    /// SSE events forwarded to the client (output estimate when a stream ends without usage).
    pub stream_events: u64,
    pub attempts: u32,
    /// Time spent waiting on upstreams (excluded from the overhead figure).
    pub upstream_wait: Duration,
    /// Time spent waiting in the pool's flow-control queue (excluded from the overhead figure).
    pub queue_wait: Duration,
    /// Time spent processing streamed chunks (part of the overhead figure).
    pub chunk_work: Duration,
    pub usage: Option<Usage>,
    pub ttft: Option<Duration>,
    pub status: u16,
    pub error: Option<&'static str>,
    /// Guardrail verdicts (never the matched text).
    pub verdicts: Vec<infergate_semantic::guard::Verdict>,
    /// `hit`, `semantic-hit` or `miss` when a cache policy applied.
    pub cache: Option<&'static str>,
    /// Why the semantic router chose the model.
    pub route_reason: Option<String>,
    /// Chunks added to the prompt by retrieval.
    pub retrieved: Option<usize>,
    /// Time spent embedding the prompt (part of the overhead).
    pub embed_time: Duration,
}

impl RequestContext {
    pub fn new(id: String, method: http::Method, path: String) -> Self {
        Self {
            id,
            started: Instant::now(),
            ts: rfc3339_now(),
            method,
            path,
            operation: None,
            model: None,
            served_model: None,
            pool: None,
            backend: None,
            provider: None,
            price: None,
            region: None,
            format: ClientFormat::OpenAi,
            endpoint: None,
            stream: false,
            priority: 0,
            identity: None,
            caller: None,
            admission: None,
            rate_headers: None,
            stream_events: 0,
            attempts: 0,
            upstream_wait: Duration::ZERO,
            queue_wait: Duration::ZERO,
            chunk_work: Duration::ZERO,
            usage: None,
            ttft: None,
            status: 0,
            error: None,
            verdicts: Vec::new(),
            cache: None,
            route_reason: None,
            retrieved: None,
            embed_time: Duration::ZERO,
        }
    }

    /// What the request cost at the serving backend's prices (None without a price or usage).
    pub fn cost_usd(&self) -> Option<f64> {
        let (p, u) = (self.price?, self.usage?);
        Some(p.cost(u.input_tokens, u.cached_input_tokens, u.output_tokens))
    }

    /// True up limits and budgets, record spend, metrics and the access-log line. Call exactly
    /// once per request.
    pub fn settle(&mut self, gw: &Gateway, snap: &Snapshot, outcome: Option<Outcome>) {
        crate::stages::admit::settle(gw, snap, self);
        let elapsed = self.started.elapsed();
        // Streams: the gateway's share of the time to first byte plus per-chunk work; after the
        // first byte, waiting on the upstream is not the gateway's time.
        let waited = self.upstream_wait + self.queue_wait;
        let overhead = match self.ttft {
            Some(ttft) => ttft.saturating_sub(waited) + self.chunk_work,
            None => elapsed.saturating_sub(waited),
        };
        let m = &gw.metrics;
        let op = self.operation.map_or("unknown", Operation::as_genai);
        let model_label = self
            .model
            .as_ref()
            .map_or_else(|| Label::from(""), |m| Label(m.clone()));
        // `pool` carries the upstream that served: a pool or a backend.
        let pool_label = self
            .pool
            .clone()
            .or_else(|| self.backend.clone())
            .unwrap_or_else(|| Label::from(""));
        m.requests
            .get_or_create(&RequestLabels {
                gen_ai_operation_name: op,
                gen_ai_request_model: model_label.clone(),
                pool: pool_label.clone(),
                code: self.status,
                reason: self.error.unwrap_or(""),
            })
            .inc();
        if self.attempts > 0 {
            m.overhead
                .get_or_create(&OpLabels {
                    gen_ai_operation_name: op,
                })
                .observe(overhead.as_secs_f64());
        }
        let success = (200..300).contains(&self.status)
            && !matches!(outcome, Some(Outcome::UpstreamError | Outcome::Blocked));
        if success && self.attempts > 0 {
            let labels = GenAiLabels {
                gen_ai_operation_name: op,
                gen_ai_provider_name: self.provider.clone().unwrap_or_else(|| Label::from("")),
                gen_ai_request_model: model_label,
                gen_ai_response_model: snap.model_label(self.served_model.as_deref().unwrap_or("")),
                pool: pool_label,
            };
            if outcome != Some(Outcome::ClientDisconnected) {
                m.request_duration
                    .get_or_create(&labels)
                    .observe(elapsed.as_secs_f64());
            }
            if let Some(ttft) = self.ttft {
                m.time_to_first_token
                    .get_or_create(&labels)
                    .observe(ttft.as_secs_f64());
                if let Some(u) = self.usage {
                    if u.output_tokens > 1 && outcome == Some(Outcome::Complete) {
                        let per = (elapsed.saturating_sub(ttft)).as_secs_f64()
                            / (u.output_tokens - 1) as f64;
                        m.time_per_output_token.get_or_create(&labels).observe(per);
                    }
                }
            }
            if let Some(u) = self.usage {
                let tl = |t: &'static str| TokenLabels {
                    gen_ai_operation_name: labels.gen_ai_operation_name,
                    gen_ai_provider_name: labels.gen_ai_provider_name.clone(),
                    gen_ai_request_model: labels.gen_ai_request_model.clone(),
                    gen_ai_response_model: labels.gen_ai_response_model.clone(),
                    pool: labels.pool.clone(),
                    gen_ai_token_type: t,
                };
                m.token_usage
                    .get_or_create(&tl("input"))
                    .observe(u.input_tokens as f64);
                if op != "embeddings" {
                    m.token_usage
                        .get_or_create(&tl("output"))
                        .observe(u.output_tokens as f64);
                }
            }
        }
        if let Some(log) = &gw.access_log {
            let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
            log.write(&AccessRecord {
                ts: self.ts.clone(),
                request_id: &self.id,
                method: self.method.as_str(),
                path: &self.path,
                status: self.status,
                tenant: self.identity.as_deref().map(|i| &*i.tenant),
                key_id: self
                    .identity
                    .as_deref()
                    .and_then(|i| i.key_id.as_deref().or(i.subject.as_deref())),
                model: self.model.as_deref(),
                model_served: self.served_model.as_deref(),
                pool: self.pool.as_ref().map(|l| &*l.0),
                backend: self.backend.as_ref().map(|l| &*l.0),
                region: self.region.as_deref(),
                cost_usd: self.cost_usd(),
                endpoint: self.endpoint.as_deref(),
                provider: self.provider.as_ref().map(|l| &*l.0),
                stream: self.stream,
                attempts: self.attempts,
                tokens_in: self.usage.map(|u| u.input_tokens),
                tokens_out: self.usage.map(|u| u.output_tokens),
                tokens_cached: self.usage.map(|u| u.cached_input_tokens).filter(|c| *c > 0),
                ttft_ms: self.ttft.map(ms),
                duration_ms: ms(elapsed),
                overhead_ms: ms(overhead),
                priority: self.priority,
                queue_ms: (!self.queue_wait.is_zero()).then(|| ms(self.queue_wait)),
                error: self.error,
                outcome: outcome.map(Outcome::as_str),
                guardrails: (!self.verdicts.is_empty()).then_some(self.verdicts.as_slice()),
                cache: self.cache,
                route_reason: self.route_reason.as_deref(),
                retrieved: self.retrieved,
                embed_ms: (!self.embed_time.is_zero()).then(|| ms(self.embed_time)),
            });
        }
    }
}
