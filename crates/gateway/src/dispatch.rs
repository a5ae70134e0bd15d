//! Dispatch: admit the request to the routed pool (flow control), send it to the endpoint the
//! pool's scheduler picked, and try again elsewhere when it fails before anything reached the
//! client.
//!
//! [`PoolScheduler::schedule`](infergate_scheduler::PoolScheduler::schedule) runs admission
//! (shed when saturated, or wait in the priority queue) and returns the primary endpoint plus
//! ordered fallbacks (as many as attempts remain); attempts walk that list, then the public
//! model's fallback pools. So a dead replica costs one refused connection, not a failed request. Attempts stop at the configured total
//! (`retries.attempts`, default 3). Connect errors eject the endpoint at once; 5xx answers count
//! toward ejection; 429 (a full queue) is retried elsewhere without ejecting. A streamed response
//! is held until its first data frame arrives, so a stream that dies before its first token is
//! retried too.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use infergate_control::RouteDecision;
use infergate_protocol::{Operation, RequestBody};
use infergate_scheduler::{
    Endpoint, Failure, InFlight, PromptKind, SchedulingRequest, DEFAULT_FLOW,
};

use crate::context::RequestContext;
use crate::error::GatewayError;
use crate::metrics::PoolLabels;
use crate::snapshot::{PoolRuntime, Snapshot};
use crate::Gateway;

/// Upper bound for a non-streamed upstream body the gateway will hold.
const MAX_UPSTREAM_BODY: usize = 64 << 20;

/// What the upstream answered.
pub enum UpstreamResponse {
    /// A complete body (non-streamed, or an error answer).
    Full {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        /// Counts the request at its endpoint until the pipeline has read the usage.
        in_flight: Option<InFlight>,
    },
    /// A stream whose first data frame has arrived.
    Stream {
        status: StatusCode,
        headers: HeaderMap,
        first: Option<Bytes>,
        rest: Incoming,
        in_flight: InFlight,
    },
}

enum AttemptError {
    /// Nothing reached the client; another endpoint may serve it.
    Retry(GatewayError, Option<UpstreamResponse>),
}

/// Headers never forwarded upstream: hop-by-hop, framing, the client's credentials (the
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
            | "cookie"
            | "x-gateway-inference-objective"
            | "x-gateway-inference-fairness-id"
            | "x-gateway-model-name-rewrite"
            | "x-gateway-destination-endpoint"
            | "x-gateway-destination-endpoint-served"
    )
}

fn build_request(
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
    let settings = snap.settings();
    let max_attempts = settings.retry_attempts;
    let mut last_error: Option<GatewayError> = None;
    let mut last_response: Option<UpstreamResponse> = None;
    let fairness = fairness_id(ctx, client_headers).to_string();
    let prompt_kind = match op {
        Operation::Chat => PromptKind::Chat,
        Operation::Completion => PromptKind::Completion,
        Operation::Embeddings => PromptKind::Other,
    };
    let prompt = body.prompt_raw();
    let estimated_tokens = prompt.len() as u64 / 4 + body.max_tokens().unwrap_or(256);
    let request_id = ctx.id.clone();

    for target in &decision.attempts {
        if ctx.attempts >= max_attempts {
            break;
        }
        let Some(pool) = snap.pools.get(&target.pool) else {
            last_error = Some(GatewayError::PoolMissing(target.pool.to_string()));
            continue;
        };
        let upstream_body = body.upstream_bytes(&target.model);
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
            exclude: &[],
            min_endpoints: usize::try_from(max_attempts - ctx.attempts).unwrap_or(1),
        };
        ctx.pool = Some(pool.label.clone());
        let scheduled = pool.scheduler.schedule(&sreq).await;
        let mut scheduled = match scheduled {
            Ok(s) => {
                gw.metrics
                    .observe_queue(&pool.label, "dispatched", s.queued_for);
                ctx.queue_wait += s.queued_for;
                s
            }
            Err(e) => {
                let (outcome, waited) = match &e {
                    infergate_scheduler::SchedulingError::Shed { .. } => ("shed", None),
                    infergate_scheduler::SchedulingError::QueueFull { .. } => ("queue_full", None),
                    infergate_scheduler::SchedulingError::QueueTimeout { waited, .. } => {
                        ("timeout", Some(*waited))
                    }
                    _ => ("no_endpoint", None),
                };
                if outcome != "no_endpoint" {
                    gw.metrics
                        .observe_queue(&pool.label, outcome, waited.unwrap_or_default());
                }
                if let Some(w) = waited {
                    ctx.queue_wait += w;
                }
                // This pool cannot take it now; the next target may.
                last_error = Some(e.into());
                continue;
            }
        };
        let endpoints: Vec<Endpoint> = scheduled.endpoints().cloned().collect();
        for ep in endpoints {
            if ctx.attempts >= max_attempts {
                break;
            }
            ctx.attempts += 1;
            if ctx.attempts > 1 {
                gw.metrics
                    .upstream_retries
                    .get_or_create(&PoolLabels {
                        pool: pool.label.clone(),
                    })
                    .inc();
            }
            ctx.pool = Some(pool.label.clone());
            ctx.provider = Some(pool.provider.clone());
            ctx.endpoint = Some(ep.host_port.clone());
            ctx.served_model = Some(target.model.clone());
            let in_flight = scheduled.begin(&ep);
            match attempt(
                pool,
                &ep,
                in_flight,
                snap,
                ctx,
                op,
                upstream_body.clone(),
                client_headers,
            )
            .await
            {
                Ok(resp) => return Ok(resp),
                Err(AttemptError::Retry(err, resp)) => {
                    tracing::debug!(request_id = %ctx.id, endpoint = %ep.host_port, error = %err, "attempt failed");
                    last_error = Some(err);
                    if resp.is_some() {
                        last_response = resp;
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

#[allow(clippy::too_many_arguments)]
async fn attempt(
    pool: &PoolRuntime,
    ep: &Endpoint,
    in_flight: InFlight,
    snap: &Snapshot,
    ctx: &mut RequestContext,
    op: Operation,
    body: Bytes,
    client_headers: &HeaderMap,
) -> Result<UpstreamResponse, AttemptError> {
    let settings = snap.settings();
    let pool_name = || pool.name.to_string();
    let req = build_request(ep, op, body, client_headers, &ctx.id).map_err(|e| {
        AttemptError::Retry(
            GatewayError::UpstreamConnect {
                pool: pool_name(),
                detail: e.to_string(),
            },
            None,
        )
    })?;
    let client = snap.upstreams.client(pool.protocol);
    let sent = Instant::now();
    let result = tokio::time::timeout(settings.response_headers_timeout, client.request(req)).await;
    ctx.upstream_wait += sent.elapsed();
    let resp = match result {
        Err(_) => {
            ep.record_failure(
                Failure::Timeout,
                settings.consecutive_5xx,
                settings.eject_cooldown,
            );
            return Err(AttemptError::Retry(
                GatewayError::UpstreamTimeout {
                    pool: pool_name(),
                    secs: settings.response_headers_timeout.as_secs(),
                },
                None,
            ));
        }
        Ok(Err(e)) => {
            let kind = if e.is_connect() {
                Failure::Connect
            } else {
                Failure::Status5xx
            };
            ep.record_failure(kind, settings.consecutive_5xx, settings.eject_cooldown);
            let detail = error_chain(&e);
            return Err(AttemptError::Retry(
                GatewayError::UpstreamConnect {
                    pool: pool_name(),
                    detail,
                },
                None,
            ));
        }
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    let (parts, incoming) = resp.into_parts();
    let is_sse = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));

    if status.is_success() && is_sse {
        ep.record_success();
        // Hold the response until the first data frame: a failure before it is retryable.
        let mut incoming = incoming;
        let started = Instant::now();
        let first = loop {
            match tokio::time::timeout(settings.stream_idle_timeout, incoming.frame()).await {
                Err(_) => {
                    ctx.upstream_wait += started.elapsed();
                    return Err(AttemptError::Retry(
                        GatewayError::UpstreamTimeout {
                            pool: pool_name(),
                            secs: settings.stream_idle_timeout.as_secs(),
                        },
                        None,
                    ));
                }
                Ok(None) => break None,
                Ok(Some(Err(e))) => {
                    ctx.upstream_wait += started.elapsed();
                    ep.record_failure(
                        Failure::Status5xx,
                        settings.consecutive_5xx,
                        settings.eject_cooldown,
                    );
                    return Err(AttemptError::Retry(
                        GatewayError::UpstreamBroken {
                            pool: pool_name(),
                            detail: e.to_string(),
                        },
                        None,
                    ));
                }
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        break Some(data);
                    }
                }
            }
        };
        ctx.upstream_wait += started.elapsed();
        return Ok(UpstreamResponse::Stream {
            status,
            headers: parts.headers,
            first,
            rest: incoming,
            in_flight,
        });
    }

    let started = Instant::now();
    let collected = tokio::time::timeout(
        settings.response_headers_timeout,
        Limited::new(incoming, MAX_UPSTREAM_BODY).collect(),
    )
    .await;
    ctx.upstream_wait += started.elapsed();
    let body = match collected {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) => {
            ep.record_failure(
                Failure::Status5xx,
                settings.consecutive_5xx,
                settings.eject_cooldown,
            );
            return Err(AttemptError::Retry(
                GatewayError::UpstreamBroken {
                    pool: pool_name(),
                    detail: e.to_string(),
                },
                None,
            ));
        }
        Err(_) => {
            return Err(AttemptError::Retry(
                GatewayError::UpstreamTimeout {
                    pool: pool_name(),
                    secs: settings.response_headers_timeout.as_secs(),
                },
                None,
            ))
        }
    };
    let full = UpstreamResponse::Full {
        status,
        headers: parts.headers,
        body,
        in_flight: Some(in_flight),
    };
    if status.is_server_error() {
        ep.record_failure(
            Failure::Status5xx,
            settings.consecutive_5xx,
            settings.eject_cooldown,
        );
        return Err(AttemptError::Retry(
            GatewayError::UpstreamBroken {
                pool: pool_name(),
                detail: format!("status {}", status.as_u16()),
            },
            Some(full),
        ));
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(AttemptError::Retry(
            GatewayError::UpstreamBroken {
                pool: pool_name(),
                detail: "status 429".into(),
            },
            Some(full),
        ));
    }
    ep.record_success();
    Ok(full)
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
