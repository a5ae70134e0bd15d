//! Dispatch: one attempt loop over the routed targets — pool endpoints and external provider
//! backends alike — until one answers, with failover that the client never sees.
//!
//! For each target in order (primary, then fallbacks):
//! - a target whose **circuit** is open is skipped without an upstream attempt;
//! - every attempt after the first takes one unit from the **retry budget** (extra attempts ≤
//!   `max(minRetries, ratio × requests)` over 10 s); an empty budget ends the loop;
//! - a **pool** target is admitted by the pool's
//!   [`PoolScheduler`](infergate_scheduler::PoolScheduler) (flow control: a sheddable request on
//!   a saturated pool → 429, others may wait in their priority band, 503 past the TTL), which
//!   picks the primary endpoint by live signals plus ordered fallbacks (as many as attempts
//!   remain); attempts walk that list. A **backend** target gets one attempt: the provider translates the request, and the backend's own
//!   credential is put on it (so a fallback to another provider carries that provider's);
//! - a connect error, a time-out (`firstToken`), a 5xx, a 429 (with or without rate-limit
//!   headers), a refused credential or a stream that fails before its first event → the next
//!   endpoint or target; a **context-length** error → the next fallback with a larger
//!   `contextWindow`; any other answer (a 400 …) goes to the client as it is (translated).
//!
//! Nothing reaches the client before an attempt has produced its first stream event, so all of
//! this is invisible to it. Everything the provider differs in sits behind
//! [`infergate_providers::Provider`]; this file only knows "pool" or "backend".

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use infergate_control::{RouteDecision, RouteTarget, RouteUpstream};
use infergate_protocol::{Operation, RequestBody};
use infergate_providers::{ErrorClass, Provider, StreamTranslator, Target};
use infergate_scheduler::{
    Endpoint, Failure, InFlight, PromptKind, SchedulingError, SchedulingRequest, DEFAULT_FLOW,
};

use crate::context::RequestContext;
use crate::error::GatewayError;
use crate::metrics::{AttemptLabels, Label, PoolLabels};
use crate::snapshot::{PoolRuntime, Snapshot};
use crate::upstream::backend::{build_backend_request, BackendRuntime, BuildError};
use crate::upstream::circuit::Transition;
use crate::Gateway;

/// Upper bound for a non-streamed upstream body the gateway will hold.
const MAX_UPSTREAM_BODY: usize = 64 << 20;

/// What the upstream answered, in the OpenAI format.
pub enum UpstreamResponse {
    /// A complete body (non-streamed, or an error answer).
    Full {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        /// Counts the request at its endpoint until the pipeline has read the usage.
        in_flight: Option<InFlight>,
    },
    /// A stream whose first events have arrived.
    Stream {
        status: StatusCode,
        headers: HeaderMap,
        /// OpenAI SSE events already translated (held back until now).
        first: Vec<Bytes>,
        rest: Incoming,
        translator: Box<dyn StreamTranslator>,
        in_flight: Option<InFlight>,
        idle_timeout: Duration,
    },
}

/// How an attempt failed.
enum FailureKind {
    /// Another endpoint / target may serve it. `breaker`: counts against the target's circuit.
    Retry { breaker: bool },
    /// The prompt is too long for this target: try a fallback with a larger context window.
    ContextLength,
    /// The client must see this now (its request cannot be served as sent).
    Fatal,
}

struct AttemptFailure {
    error: GatewayError,
    response: Option<UpstreamResponse>,
    kind: FailureKind,
    /// For the attempts metric.
    result: &'static str,
}

impl AttemptFailure {
    fn retry(error: GatewayError, result: &'static str) -> Self {
        Self {
            error,
            response: None,
            kind: FailureKind::Retry { breaker: true },
            result,
        }
    }
}

/// Headers never forwarded to a pool: hop-by-hop, framing, the client's credentials (the
/// gateway's upstreams do not take the client's keys) and the gateway's own control headers.
fn forward_request_header(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
            | "accept-encoding"
            | "authorization"
            | "x-api-key"
            | "api-key"
            | "x-goog-api-key"
            | "cookie"
            | "anthropic-version"
            | "x-gateway-inference-objective"
            | "x-gateway-inference-fairness-id"
            | "x-gateway-model-name-rewrite"
            | "x-gateway-destination-endpoint"
            | "x-gateway-destination-endpoint-served"
    )
}

fn build_pool_request(
    ep: &Endpoint,
    op: Operation,
    body: Bytes,
    client_headers: &HeaderMap,
    request_id: &str,
) -> Result<Request<Full<Bytes>>, http::Error> {
    let uri = format!("http://{}{}", ep.host_port, op.path());
    let mut req = Request::post(uri).body(Full::new(body))?;
    let headers = req.headers_mut();
    for (name, value) in client_headers {
        if forward_request_header(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // The gateway parses responses: ask for them uncompressed.
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert(HeaderName::from_static("x-request-id"), v);
    }
    Ok(req)
}

/// The flow a request belongs to for fairness: `x-gateway-inference-fairness-id`, else the
/// caller's identity, else the default flow.
fn fairness_id<'a>(ctx: &'a RequestContext, client_headers: &'a HeaderMap) -> &'a str {
    client_headers
        .get("x-gateway-inference-fairness-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .or_else(|| ctx.identity.as_deref().map(|i| i.flow_id()))
        .unwrap_or(DEFAULT_FLOW)
}

pub fn provider_operation(op: Operation) -> infergate_providers::Operation {
    match op {
        Operation::Chat => infergate_providers::Operation::Chat,
        Operation::Completion => infergate_providers::Operation::Completion,
        Operation::Embeddings => infergate_providers::Operation::Embeddings,
    }
}

/// Try the decision's targets in order until one answers.
pub async fn dispatch(
    gw: &Gateway,
    snap: &Snapshot,
    ctx: &mut RequestContext,
    op: Operation,
    body: &RequestBody,
    decision: &RouteDecision,
    client_headers: &HeaderMap,
) -> Result<UpstreamResponse, GatewayError> {
    gw.retry_budget.record_request();
    run_attempts(
        gw,
        snap,
        ctx,
        op,
        body,
        decision,
        client_headers,
        snap.settings().retry_attempts,
    )
    .await
}

/// One attempt at one target, outside the retry budget (shadow copies).
pub async fn dispatch_once(
    gw: &Gateway,
    snap: &Snapshot,
    ctx: &mut RequestContext,
    op: Operation,
    body: &RequestBody,
    decision: &RouteDecision,
    client_headers: &HeaderMap,
) -> Result<UpstreamResponse, GatewayError> {
    run_attempts(gw, snap, ctx, op, body, decision, client_headers, 1).await
}

#[allow(clippy::too_many_lines, clippy::too_many_arguments)]
async fn run_attempts(
    gw: &Gateway,
    snap: &Snapshot,
    ctx: &mut RequestContext,
    op: Operation,
    body: &RequestBody,
    decision: &RouteDecision,
    client_headers: &HeaderMap,
    max_attempts: u32,
) -> Result<UpstreamResponse, GatewayError> {
    let settings = snap.settings();
    let fairness = fairness_id(ctx, client_headers).to_string();
    let prompt_kind = match op {
        Operation::Chat => PromptKind::Chat,
        Operation::Completion => PromptKind::Completion,
        Operation::Embeddings => PromptKind::Other,
    };
    let prompt = body.prompt_raw();
    let estimated_tokens = prompt.len() as u64 / 4 + body.max_tokens().unwrap_or(256);
    let request_id = ctx.id.clone();
    let mut tried: Vec<Endpoint> = Vec::new();
    let mut last_error: Option<GatewayError> = None;
    let mut last_response: Option<UpstreamResponse> = None;
    // After a context-length error: only targets with a larger window than this.
    let mut need_context: Option<u64> = None;
    'targets: for target in &decision.attempts {
        if let Some(min) = need_context {
            if target.context_window.is_none_or(|w| w <= min) {
                continue;
            }
        }
        let (circuit, circuit_settings) = snap.circuit(&target.upstream);
        // A pool target: the scheduler's pick (primary, then fallbacks), made on first use.
        let mut scheduled: Option<(infergate_scheduler::ScheduledEndpoints, Vec<Endpoint>)> = None;
        loop {
            if ctx.attempts >= max_attempts {
                break 'targets;
            }
            if !circuit.allow(circuit_settings) {
                last_error.get_or_insert(GatewayError::CircuitOpen {
                    upstream: target.upstream.name().to_string(),
                    cooldown_secs: circuit_settings.cooldown.as_secs().max(1),
                });
                continue 'targets;
            }
            // Pick the endpoint first: a pool with nothing left is not an attempt.
            let endpoint = match &target.upstream {
                RouteUpstream::Pool(name) => {
                    let Some(pool) = snap.pools.get(name) else {
                        last_error = Some(GatewayError::PoolMissing(name.to_string()));
                        continue 'targets;
                    };
                    if scheduled.is_none() {
                        let sreq = SchedulingRequest {
                            request_id: &request_id,
                            target_model: &target.model,
                            prompt,
                            prompt_kind,
                            priority: decision.priority,
                            fairness_id: &fairness,
                            size_bytes: body.bytes().len() as u64,
                            estimated_tokens,
                            subset: None,
                            exclude: &tried,
                            min_endpoints: usize::try_from(max_attempts - ctx.attempts)
                                .unwrap_or(1),
                        };
                        ctx.pool = Some(pool.label.clone());
                        match schedule(gw, pool, ctx, &sreq).await {
                            Ok(s) => {
                                let mut eps: Vec<Endpoint> = s.endpoints().cloned().collect();
                                eps.reverse();
                                scheduled = Some((s, eps));
                            }
                            Err(e) => {
                                // This pool cannot take it now; the next target may.
                                if tried.iter().all(|t| t.pool != pool.name) {
                                    last_error = Some(e);
                                }
                                continue 'targets;
                            }
                        }
                    }
                    let Some((sched, remaining)) = scheduled.as_mut() else {
                        continue 'targets;
                    };
                    let Some(ep) = remaining.pop() else {
                        continue 'targets;
                    };
                    let in_flight = sched.begin(&ep);
                    Some((pool, ep, in_flight))
                }
                RouteUpstream::Backend(name) => {
                    if !snap.backends.contains_key(name) {
                        last_error = Some(GatewayError::PoolMissing(name.to_string()));
                        continue 'targets;
                    }
                    None
                }
            };
            if ctx.attempts > 0 {
                if !gw
                    .retry_budget
                    .try_withdraw(settings.retry_budget_ratio.get(), settings.retry_budget_min)
                {
                    gw.metrics.retry_budget_exhausted.inc();
                    tracing::debug!(request_id = %ctx.id, "retry budget exhausted");
                    break 'targets;
                }
                gw.metrics
                    .upstream_retries
                    .get_or_create(&PoolLabels {
                        pool: Label(target.upstream.name().clone()),
                    })
                    .inc();
            }
            ctx.attempts += 1;
            ctx.served_model = Some(target.model.clone());
            ctx.region = target.region.clone();
            let outcome = match endpoint {
                Some((pool, ep, in_flight)) => {
                    ctx.pool = Some(pool.label.clone());
                    ctx.backend = None;
                    ctx.provider = Some(pool.provider.clone());
                    ctx.endpoint = Some(ep.host_port.clone());
                    ctx.price = None;
                    tried.push(ep.clone());
                    // With `flowControl.enginePriority` the engine orders its own queue by
                    // our priority too (vLLM: lower first).
                    let engine_priority = pool
                        .scheduler
                        .config()
                        .flow_control
                        .engine_priority
                        .then(|| -i64::from(ctx.priority));
                    let upstream_body = body.upstream_bytes_with(&target.model, engine_priority);
                    attempt_pool(
                        pool,
                        &ep,
                        in_flight,
                        snap,
                        ctx,
                        op,
                        upstream_body,
                        client_headers,
                    )
                    .await
                }
                None => {
                    let Some(rt) = snap.backends.get(target.upstream.name()) else {
                        continue 'targets;
                    };
                    ctx.pool = None;
                    ctx.backend = Some(rt.label.clone());
                    ctx.provider = Some(rt.provider_label.clone());
                    ctx.endpoint = None;
                    ctx.price = rt.pricing();
                    attempt_backend(rt, ctx, op, body, target, client_headers).await
                }
            };
            let upstream_label = Label(target.upstream.name().clone());
            match outcome {
                Ok(resp) => {
                    record_attempt(gw, &upstream_label, "success");
                    circuit_event(gw, &upstream_label, circuit.record_success());
                    return Ok(resp);
                }
                Err(f) => {
                    record_attempt(gw, &upstream_label, f.result);
                    tracing::debug!(request_id = %ctx.id, upstream = %target.upstream.name(), error = %f.error, "attempt failed");
                    if f.response.is_some() {
                        last_response = f.response;
                    }
                    match f.kind {
                        FailureKind::Fatal => return Err(f.error),
                        FailureKind::ContextLength => {
                            last_error = Some(f.error);
                            need_context = Some(target.context_window.unwrap_or(0));
                            continue 'targets;
                        }
                        FailureKind::Retry { breaker } => {
                            if breaker {
                                circuit_event(
                                    gw,
                                    &upstream_label,
                                    circuit.record_failure(circuit_settings),
                                );
                            }
                            last_error = Some(f.error);
                            if target.pool().is_none() {
                                // A provider is one upstream: move on to the next target.
                                continue 'targets;
                            }
                        }
                    }
                }
            }
        }
    }
    // Out of attempts: an upstream's own error answer is more useful than ours.
    if let Some(resp) = last_response {
        return Ok(resp);
    }
    Err(last_error.unwrap_or_else(|| GatewayError::PoolMissing(String::new())))
}

fn record_attempt(gw: &Gateway, upstream: &Label, result: &'static str) {
    gw.metrics
        .upstream_attempts
        .get_or_create(&AttemptLabels {
            upstream: upstream.clone(),
            result,
        })
        .inc();
}

fn circuit_event(gw: &Gateway, upstream: &Label, t: Transition) {
    let labels = PoolLabels {
        pool: upstream.clone(),
    };
    match t {
        Transition::Opened => {
            tracing::warn!(upstream = %upstream.0, "circuit opened");
            gw.metrics.circuit_open.get_or_create(&labels).set(1);
            gw.metrics.circuit_opened.get_or_create(&labels).inc();
        }
        Transition::Closed => {
            tracing::info!(upstream = %upstream.0, "circuit closed");
            gw.metrics.circuit_open.get_or_create(&labels).set(0);
        }
        Transition::None => {}
    }
}

/// Admission and the pick for one pool target, with the flow-control metrics.
async fn schedule(
    gw: &Gateway,
    pool: &PoolRuntime,
    ctx: &mut RequestContext,
    sreq: &SchedulingRequest<'_>,
) -> Result<infergate_scheduler::ScheduledEndpoints, GatewayError> {
    match pool.scheduler.schedule(sreq).await {
        Ok(s) => {
            gw.metrics
                .observe_queue(&pool.label, "dispatched", s.queued_for);
            ctx.queue_wait += s.queued_for;
            Ok(s)
        }
        Err(e) => {
            let (outcome, waited) = match &e {
                SchedulingError::Shed { .. } => ("shed", None),
                SchedulingError::QueueFull { .. } => ("queue_full", None),
                SchedulingError::QueueTimeout { waited, .. } => ("timeout", Some(*waited)),
                _ => ("no_endpoint", None),
            };
            if outcome != "no_endpoint" {
                gw.metrics
                    .observe_queue(&pool.label, outcome, waited.unwrap_or_default());
            }
            if let Some(w) = waited {
                ctx.queue_wait += w;
            }
            Err(e.into())
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn attempt_pool(
    pool: &PoolRuntime,
    ep: &Endpoint,
    in_flight: InFlight,
    snap: &Snapshot,
    ctx: &mut RequestContext,
    op: Operation,
    body: Bytes,
    client_headers: &HeaderMap,
) -> Result<UpstreamResponse, AttemptFailure> {
    let settings = snap.settings();
    let name = pool.name.to_string();
    let req = build_pool_request(ep, op, body, client_headers, &ctx.id).map_err(|e| {
        AttemptFailure::retry(
            GatewayError::UpstreamConnect {
                pool: name.clone(),
                detail: e.to_string(),
            },
            "connect_error",
        )
    })?;
    let client = snap.upstreams.client(pool.protocol);
    let deadline = Instant::now() + settings.first_token_timeout;
    let sent = Instant::now();
    let result = tokio::time::timeout_at(deadline.into(), client.request(req)).await;
    ctx.upstream_wait += sent.elapsed();
    let record =
        |f: Failure| ep.record_failure(f, settings.consecutive_5xx, settings.eject_cooldown);
    let resp = match result {
        Err(_) => {
            record(Failure::Timeout);
            return Err(AttemptFailure::retry(
                GatewayError::UpstreamTimeout {
                    pool: name,
                    secs: settings.first_token_timeout.as_secs(),
                },
                "timeout",
            ));
        }
        Ok(Err(e)) => {
            record(if e.is_connect() {
                Failure::Connect
            } else {
                Failure::Status5xx
            });
            return Err(AttemptFailure::retry(
                GatewayError::UpstreamConnect {
                    pool: name,
                    detail: error_chain(&e),
                },
                "connect_error",
            ));
        }
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    let target = Target {
        model: ctx.served_model.as_deref().unwrap_or(""),
        operation: provider_operation(op),
        stream: ctx.stream,
        region: None,
        project: None,
        api_version: None,
        created: 0,
        request_id: &ctx.id,
    };
    let provider = infergate_providers::ProviderKind::OpenAiCompatible.provider();
    let reading = Instant::now();
    let mut answer = read_answer(
        resp,
        provider,
        &target,
        deadline,
        settings.first_token_timeout,
        settings.stream_idle_timeout,
        &name,
        true,
    )
    .await;
    ctx.upstream_wait += reading.elapsed();
    // The first byte is here (a stream's first event, or a whole answer): the request no
    // longer holds the engine's prefill (the `prefill-scorer` reads this).
    let mut in_flight = in_flight;
    in_flight.first_byte();
    match &mut answer {
        Ok(UpstreamResponse::Stream {
            in_flight: slot, ..
        }) => {
            ep.record_success();
            *slot = Some(in_flight);
        }
        Ok(UpstreamResponse::Full {
            in_flight: slot, ..
        }) => {
            ep.record_success();
            *slot = Some(in_flight);
        }
        Err(f) => {
            if status.is_server_error() || f.result == "broken" {
                record(Failure::Status5xx);
            } else if status.is_success() && f.result == "timeout" {
                record(Failure::Timeout);
            }
        }
    }
    answer
}

async fn attempt_backend(
    rt: &BackendRuntime,
    ctx: &mut RequestContext,
    op: Operation,
    body: &RequestBody,
    target: &RouteTarget,
    client_headers: &HeaderMap,
) -> Result<UpstreamResponse, AttemptFailure> {
    let name = rt.spec.name.clone();
    let openai_body = body.upstream_bytes(&target.model);
    let request_id = ctx.id.clone();
    let t = rt.target(
        &target.model,
        provider_operation(op),
        ctx.stream,
        &request_id,
    );
    let translated = rt.provider.build_request(&openai_body, &t).map_err(|e| {
        let fatal = matches!(e, infergate_providers::TranslateError::InvalidRequest(_));
        AttemptFailure {
            error: GatewayError::Translate {
                backend: name.clone(),
                error: e,
            },
            response: None,
            kind: if fatal {
                FailureKind::Fatal
            } else {
                FailureKind::Retry { breaker: false }
            },
            result: "untranslatable",
        }
    })?;
    let started = Instant::now();
    let deadline = started + rt.first_token_timeout;
    let req = build_backend_request(rt, translated, client_headers, &ctx.id)
        .await
        .map_err(|e| match e {
            BuildError::NoClientCredential => AttemptFailure {
                error: GatewayError::MissingClientCredential {
                    backend: name.clone(),
                },
                response: None,
                kind: FailureKind::Fatal,
                result: "no_client_credential",
            },
            BuildError::Credentials(detail) => AttemptFailure::retry(
                GatewayError::BackendCredentials {
                    backend: name.clone(),
                    detail,
                },
                "credentials",
            ),
            BuildError::Translate(error) => AttemptFailure {
                error: GatewayError::Translate {
                    backend: name.clone(),
                    error,
                },
                response: None,
                kind: FailureKind::Retry { breaker: false },
                result: "untranslatable",
            },
        })?;
    let result = tokio::time::timeout_at(deadline.into(), rt.client.request(req)).await;
    let resp = match result {
        Err(_) => {
            ctx.upstream_wait += started.elapsed();
            return Err(AttemptFailure::retry(
                GatewayError::UpstreamTimeout {
                    pool: name,
                    secs: rt.first_token_timeout.as_secs(),
                },
                "timeout",
            ));
        }
        Ok(Err(e)) => {
            ctx.upstream_wait += started.elapsed();
            return Err(AttemptFailure::retry(
                GatewayError::UpstreamConnect {
                    pool: name,
                    detail: error_chain(&e),
                },
                "connect_error",
            ));
        }
        Ok(Ok(r)) => r,
    };
    let answer = read_answer(
        resp,
        rt.provider,
        &t,
        deadline,
        rt.first_token_timeout,
        rt.stream_idle_timeout,
        &name,
        false,
    )
    .await;
    ctx.upstream_wait += started.elapsed();
    if let Err(f) = &answer {
        if f.result == "credentials" {
            if let Some(c) = &rt.credentials {
                c.invalidate_token();
            }
        }
    }
    answer
}

/// Read an upstream answer into the OpenAI format: a stream is held until the translator has
/// produced its first events (a failure before that is still retryable), a whole body is
/// translated, an error is classified.
#[allow(clippy::too_many_arguments)]
async fn read_answer(
    resp: Response<Incoming>,
    provider: &dyn Provider,
    target: &Target<'_>,
    deadline: Instant,
    first_token: Duration,
    idle_timeout: Duration,
    upstream: &str,
    keep_headers: bool,
) -> Result<UpstreamResponse, AttemptFailure> {
    let status = resp.status();
    let (parts, mut incoming) = resp.into_parts();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_stream = content_type.starts_with("text/event-stream")
        || content_type.starts_with("application/vnd.amazon.eventstream");
    let mut headers = if keep_headers {
        parts.headers.clone()
    } else {
        HeaderMap::new()
    };

    if status.is_success() && is_stream {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        let mut translator = provider.stream_translator(target);
        let mut first: Vec<Bytes> = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline.into(), incoming.frame()).await {
                Err(_) => {
                    return Err(AttemptFailure::retry(
                        GatewayError::UpstreamTimeout {
                            pool: upstream.to_string(),
                            secs: first_token.as_secs(),
                        },
                        "timeout",
                    ))
                }
                Ok(None) => {
                    translator.finish(&mut |b| first.push(b));
                    break;
                }
                Ok(Some(Err(e))) => {
                    return Err(AttemptFailure::retry(
                        GatewayError::UpstreamBroken {
                            pool: upstream.to_string(),
                            detail: e.to_string(),
                        },
                        "broken",
                    ))
                }
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        translator.feed(data, &mut |b| first.push(b));
                        if !first.is_empty() {
                            break;
                        }
                    }
                }
            }
        }
        if first.is_empty() {
            return Err(AttemptFailure::retry(
                GatewayError::UpstreamBroken {
                    pool: upstream.to_string(),
                    detail: "the stream ended before its first event".into(),
                },
                "broken",
            ));
        }
        if let Some(msg) = first.iter().find_map(|e| stream_error_message(e)) {
            return Err(AttemptFailure::retry(
                GatewayError::UpstreamBroken {
                    pool: upstream.to_string(),
                    detail: format!("the stream failed before its first token: {msg}"),
                },
                "broken",
            ));
        }
        return Ok(UpstreamResponse::Stream {
            status,
            headers,
            first,
            rest: incoming,
            translator,
            in_flight: None,
            idle_timeout,
        });
    }

    let collected = tokio::time::timeout_at(
        deadline.into(),
        Limited::new(incoming, MAX_UPSTREAM_BODY).collect(),
    )
    .await;
    let body = match collected {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) => {
            return Err(AttemptFailure::retry(
                GatewayError::UpstreamBroken {
                    pool: upstream.to_string(),
                    detail: e.to_string(),
                },
                "broken",
            ))
        }
        Err(_) => {
            return Err(AttemptFailure::retry(
                GatewayError::UpstreamTimeout {
                    pool: upstream.to_string(),
                    secs: first_token.as_secs(),
                },
                "timeout",
            ))
        }
    };
    if !keep_headers {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(v) = parts.headers.get(header::RETRY_AFTER) {
            headers.insert(header::RETRY_AFTER, v.clone());
        }
    }
    if status.is_success() {
        return match provider.translate_response(&body, target) {
            Ok(b) => Ok(UpstreamResponse::Full {
                status,
                headers,
                body: b,
                in_flight: None,
            }),
            Err(e) => Err(AttemptFailure::retry(
                GatewayError::UpstreamBroken {
                    pool: upstream.to_string(),
                    detail: e.to_string(),
                },
                "broken",
            )),
        };
    }
    let class = provider.classify_error(status.as_u16(), &body);
    let translated = if keep_headers {
        body.clone()
    } else {
        provider.translate_error(status.as_u16(), &body)
    };
    if !keep_headers {
        headers.remove(header::CONTENT_LENGTH);
    }
    let full = UpstreamResponse::Full {
        status,
        headers,
        body: translated,
        in_flight: None,
    };
    let detail = infergate_providers::error::error_message(&body)
        .unwrap_or_else(|| format!("status {}", status.as_u16()));
    let (kind, result) = match class {
        ErrorClass::Client => return Ok(full),
        ErrorClass::ContextLength => (FailureKind::ContextLength, "context_length"),
        ErrorClass::RateLimited => (FailureKind::Retry { breaker: true }, "status_429"),
        ErrorClass::Credentials => (FailureKind::Retry { breaker: true }, "credentials"),
        ErrorClass::Unavailable => (FailureKind::Retry { breaker: true }, "status_5xx"),
    };
    Err(AttemptFailure {
        error: GatewayError::UpstreamBroken {
            pool: upstream.to_string(),
            detail: format!("status {}: {detail}", status.as_u16()),
        },
        response: Some(full),
        kind,
        result,
    })
}

/// The message of an OpenAI stream error event (`data: {"error": …}`).
fn stream_error_message(event: &[u8]) -> Option<String> {
    let data = infergate_protocol::sse::event_data(event)?;
    if data.len() > 65536 || !data.starts_with(b"{") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&data).ok()?;
    let err = v.get("error").filter(|e| e.is_object())?;
    Some(
        err.get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("error")
            .to_string(),
    )
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// How long a readiness probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
