//! The request pipeline. One request, one pass, in this order:
//!
//! ```text
//! listen → identify → parse → guard (authorize) → guard(request) → cache → semantic route
//!        → retrieval → admit (limits) → route (regions) → shadow
//!        → flow control + pick endpoint or backend + dispatch (retry before first byte)
//!        → respond/stream (response guardrails, cache store) → settle
//! ```
//!
//! - **listen** (`server`): HTTP/1.1 and h2c (+TLS), header timeouts.
//! - **identify** (`stages::identify`): API key or JWT → caller (tenant, key, roles, regions,
//!   priority). It needs only the headers, so it runs before the body is read: an
//!   unauthenticated caller cannot make the gateway read a large body.
//! - **parse** ([`read_body`], `RequestBody::parse`): body size limit, one pass over the JSON; the
//!   raw bytes are kept and later spliced, never re-serialised. An Anthropic Messages body
//!   (`POST /v1/messages`) is first turned into an OpenAI chat body (`stages::messages`).
//! - **guard** (`stages::authorize`): may the caller use the model (deny by default).
//! - **guard(request) → cache → semantic route → retrieval** (`stages::payload::before_route`),
//!   only for requests a `GuardrailPolicy`, `CachePolicy`, `SemanticRouter` or `Collection`
//!   applies to: guardrails block (400 `content_policy_violation`), redact (a splice) or flag;
//!   a cache hit answers here (`x-infergate-cache`; it reserves nothing against limits); a
//!   router picks the public model (`x-infergate-route-reason`, authorized again when it
//!   changed); retrieved chunks join the system prompt.
//! - **admit** (`stages::admit`): reserve the token estimate, the request and a concurrency slot
//!   in every limit and budget that applies, atomically (in-process or Redis); 429 otherwise.
//! - **route** (`RouteTable::resolve_with`): public model → ordered attempts (pool or external
//!   backend + target model), canaries by header, the request's priority, kept inside the
//!   regions the caller may use (`stages::residency`).
//! - **shadow** (`shadow`): a copy to the model's shadow target, in the background.
//! - **flow control + pick + dispatch** (`dispatch`): for a pool, its `PoolScheduler` admits the
//!   request (sheddable → 429 when the pool is saturated; otherwise it may wait in its priority
//!   band until capacity frees, 503 past the TTL) and picks the endpoint by live signals; for a
//!   provider backend, the provider translates and the backend's credential goes on. The body
//!   goes out with the target model spliced in; failures before the first byte try the picked
//!   fallbacks, then the public model's fallbacks, within the retry budget and around open
//!   circuits.
//! - **respond** (`respond`): whole bodies get the model name rewritten back; streams pass
//!   through chunk by chunk; both go back in the client's format (OpenAI or Anthropic).
//!   Response guardrails run here (on streams incrementally, with a small hold-back window),
//!   and a complete answer is stored in the cache.
//! - **settle** (`context`, `stages::admit::settle`): limits and budgets trued up to real usage,
//!   spend ledger, metrics and one access-log line, for every outcome.
//!
//! Each stage reads and extends the [`RequestContext`] and never calls back into an earlier
//! stage.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use infergate_control::RouteQuery;
use infergate_protocol::response::rewrite_body;
use infergate_protocol::{ApiError, OpenAiStreamRewriter, Operation, RequestBody};
use infergate_providers::anthropic::MessagesStreamEncoder;

use crate::context::{ClientFormat, RequestContext};
use crate::dispatch::{dispatch, UpstreamResponse};
use crate::error::GatewayError;
use crate::respond::{GatewayBody, SseStream};
use crate::snapshot::Snapshot;
use crate::stages::{admit, authorize, identify::identify, messages, payload, residency};
use crate::Gateway;

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);

fn request_id(headers: &HeaderMap) -> String {
    if let Some(v) = headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
        if !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()) {
            return v.to_string();
        }
    }
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let prefix = PREFIX.get_or_init(rand::random::<u32>);
    let n = REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
    // `{prefix:08x}-{n:012x}` through `hex`'s table (`format!` cost ~2,000 instructions).
    let mut id = [b'-'; 21];
    let _ = hex::encode_to_slice(prefix.to_be_bytes(), &mut id[..8]);
    let _ = hex::encode_to_slice(&n.to_be_bytes()[2..], &mut id[9..]);
    String::from_utf8_lossy(&id).into_owned()
}

/// Handle one request on the data plane.
pub async fn handle(gw: Arc<Gateway>, req: Request<Incoming>) -> Response<GatewayBody> {
    let snap = gw.snapshot();
    let id = request_id(req.headers());
    let mut ctx = RequestContext::new(id, req.method().clone(), req.uri().path().to_string());
    let result = route_request(&gw, &snap, &mut ctx, req).await;
    let mut resp = match result {
        Ok(Handled::Done(resp)) => resp,
        Ok(Handled::Streaming(resp)) => {
            // The stream settles itself when it ends.
            return resp;
        }
        Err(e) => {
            ctx.error = Some(e.reason());
            match ctx.format {
                ClientFormat::OpenAi => error_response(&e.to_api()),
                ClientFormat::Anthropic => {
                    let api = e.to_api();
                    let mut resp = error_response(&api);
                    *resp.body_mut() = GatewayBody::full(messages::error_body(&api));
                    resp
                }
            }
        }
    };
    if let Some(h) = &ctx.rate_headers {
        h.apply(resp.headers_mut());
    }
    ctx.status = resp.status().as_u16();
    if let Ok(v) = HeaderValue::from_str(&ctx.id) {
        resp.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), v);
    }
    ctx.settle(&gw, &snap, None);
    resp
}

enum Handled {
    Done(Response<GatewayBody>),
    Streaming(Response<GatewayBody>),
}

async fn route_request(
    gw: &Arc<Gateway>,
    snap: &Arc<Snapshot>,
    ctx: &mut RequestContext,
    req: Request<Incoming>,
) -> Result<Handled, GatewayError> {
    let path = req.uri().path();
    if let Some(op) = Operation::from_path(path) {
        if req.method() != Method::POST {
            return Err(GatewayError::MethodNotAllowed {
                method: req.method().to_string(),
                path: path.to_string(),
            });
        }
        ctx.operation = Some(op);
        return inference(gw, snap, ctx, op, req).await;
    }
    match path.trim_end_matches('/') {
        "/v1/messages" => {
            if req.method() != Method::POST {
                return Err(GatewayError::MethodNotAllowed {
                    method: req.method().to_string(),
                    path: path.to_string(),
                });
            }
            ctx.format = ClientFormat::Anthropic;
            ctx.operation = Some(Operation::Chat);
            inference(gw, snap, ctx, Operation::Chat, req).await
        }
        "/v1/models" | "/models" => {
            if req.method() != Method::GET {
                return Err(GatewayError::MethodNotAllowed {
                    method: req.method().to_string(),
                    path: path.to_string(),
                });
            }
            // Once identities are configured, callers see the models they may use.
            let body = match identify(gw, snap, req.headers()).await? {
                Some(caller) => {
                    let names = snap.policy.visible_models(&caller, &snap.model_names);
                    Snapshot::models_body_for(&names)
                }
                None => snap.models_body.clone(),
            };
            Ok(Handled::Done(json_response(StatusCode::OK, body)))
        }
        _ => Err(GatewayError::UnknownPath {
            method: req.method().to_string(),
            path: path.to_string(),
        }),
    }
}

/// parse: read the body within the size limit.
async fn read_body(req: Request<Incoming>, limit: u64) -> Result<(HeaderMap, Bytes), GatewayError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    let (parts, body) = req.into_parts();
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(body, limit_usize).collect().await {
        Ok(c) => Ok((parts.headers, c.to_bytes())),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(GatewayError::BodyTooLarge { limit })
            } else {
                Err(GatewayError::BodyRead(e.to_string()))
            }
        }
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn inference(
    gw: &Arc<Gateway>,
    snap: &Arc<Snapshot>,
    ctx: &mut RequestContext,
    op: Operation,
    req: Request<Incoming>,
) -> Result<Handled, GatewayError> {
    // identify
    if let Some(caller) = identify(gw, snap, req.headers()).await? {
        ctx.identity = Some(caller.identity.clone());
        ctx.priority = caller.identity.priority.unwrap_or(0);
        ctx.caller = Some(caller);
    }

    // parse
    let (headers, bytes) = read_body(req, snap.settings().max_request_body).await?;
    let bytes = match ctx.format {
        ClientFormat::OpenAi => bytes,
        ClientFormat::Anthropic => messages::request_to_openai(&bytes)?,
    };
    let body = RequestBody::parse(bytes)?;
    let stream = body.stream() && op.can_stream();
    ctx.stream = stream;

    // guard (authorize)
    authorize::authorize(gw, snap, ctx, body.model())?;

    // guard(request) → cache → semantic route → retrieval
    let (body, model, response_plan) =
        match payload::before_route(gw, snap, ctx, op, &headers, body).await? {
            payload::Before::Answered(mut resp) => {
                add_served_headers(ctx, resp.headers_mut());
                payload::add_headers(ctx, resp.headers_mut());
                return Ok(Handled::Done(resp));
            }
            payload::Before::Continue {
                body,
                model,
                response,
            } => (body, model, response),
        };
    if model.as_str() != body.model() {
        // A semantic router chose another public model: the caller must be allowed it too.
        authorize::authorize(gw, snap, ctx, &model)?;
    }

    // admit
    admit::admit(gw, snap, ctx, op, &body, &model).await?;

    // route
    let allowed = residency::allowed_regions(snap.settings(), ctx.identity.as_deref(), &headers);
    let decision = {
        let mut rng = rand::rng();
        let lookup = |name: &str| header_str(&headers, name);
        snap.routes.resolve_with(
            &RouteQuery {
                model: &model,
                rewrite_header: header_str(&headers, "x-gateway-model-name-rewrite"),
                objective: header_str(&headers, "x-gateway-inference-objective"),
                header: &lookup,
                allowed_regions: allowed.as_deref(),
            },
            &mut rng,
        )
    };
    let decision = decision?;
    ctx.model = Some(decision.public_model.clone());
    // An explicit objective or the model's own priority wins over the tenant's default.
    if decision.priority != 0 || ctx.caller.is_none() {
        ctx.priority = decision.priority;
    }

    // shadow
    if let Some(target) = &decision.shadow {
        crate::shadow::spawn(
            gw,
            snap,
            target.clone(),
            op,
            &body,
            stream,
            &headers,
            &ctx.id,
        );
    }

    // pick endpoint + dispatch
    let upstream = dispatch(gw, snap, ctx, op, &body, &decision, &headers).await?;

    // respond
    let client_model = &*decision.public_model;
    match upstream {
        UpstreamResponse::Full {
            status,
            headers: up_headers,
            body: up_body,
            in_flight,
        } => {
            let rewrite =
                (ctx.served_model.as_deref() != Some(client_model)).then_some(client_model);
            let out = if status.is_success() {
                let r = rewrite_body(up_body, rewrite);
                ctx.usage = r.usage;
                payload::after_full(gw, ctx, response_plan, r.body).await?
            } else {
                up_body
            };
            if let Some(f) = in_flight {
                f.finish(ctx.usage.map(crate::respond::scheduler_usage));
            }
            let out = match ctx.format {
                ClientFormat::OpenAi => out,
                ClientFormat::Anthropic => messages::response_from_openai(status, &out),
            };
            let mut resp = Response::new(GatewayBody::full(out));
            *resp.status_mut() = status;
            copy_response_headers(&up_headers, resp.headers_mut());
            if ctx.format == ClientFormat::Anthropic {
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            add_served_headers(ctx, resp.headers_mut());
            payload::add_headers(ctx, resp.headers_mut());
            Ok(Handled::Done(resp))
        }
        UpstreamResponse::Stream {
            status,
            headers: up_headers,
            first,
            rest,
            translator,
            in_flight,
            idle_timeout,
        } => {
            ctx.ttft = Some(ctx.started.elapsed());
            ctx.status = status.as_u16();
            let rewrite = (ctx.served_model.as_deref() != Some(client_model))
                .then(|| client_model.to_string());
            let rewriter = OpenAiStreamRewriter::new(rewrite, !body.client_wants_usage());
            let encoder = (ctx.format == ClientFormat::Anthropic)
                .then(|| MessagesStreamEncoder::new(client_model));
            let mut headers = HeaderMap::new();
            copy_response_headers(&up_headers, &mut headers);
            add_served_headers(ctx, &mut headers);
            payload::add_headers(ctx, &mut headers);
            let filter = payload::StreamFilter::new(response_plan, op);
            if let Some(h) = &ctx.rate_headers {
                h.apply(&mut headers);
            }
            if let Ok(v) = HeaderValue::from_str(&ctx.id) {
                headers.insert(HeaderName::from_static("x-request-id"), v);
            }
            let owned_ctx = std::mem::replace(
                ctx,
                RequestContext::new(String::new(), Method::GET, String::new()),
            );
            let stream = SseStream::new(
                gw.clone(),
                snap.clone(),
                owned_ctx,
                in_flight,
                rest,
                first,
                translator,
                rewriter,
                encoder,
                idle_timeout,
                filter,
            );
            let mut resp = Response::new(GatewayBody::Stream(Box::new(stream)));
            *resp.status_mut() = status;
            *resp.headers_mut() = headers;
            Ok(Handled::Streaming(resp))
        }
    }
}

/// Response headers passed back from the model server (hop-by-hop and framing excluded).
fn copy_response_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        let skip = matches!(
            name.as_str(),
            "connection"
                | "keep-alive"
                | "proxy-connection"
                | "te"
                | "trailer"
                | "transfer-encoding"
                | "upgrade"
                | "content-length"
                | "date"
                | "server"
        );
        if !skip {
            to.append(name.clone(), value.clone());
        }
    }
}

/// Which pool or backend, provider, endpoint, region and model served the request.
fn add_served_headers(ctx: &RequestContext, headers: &mut HeaderMap) {
    // Constant names: `HeaderName::from_static` outside a const context parses the name on
    // every call.
    const POOL: HeaderName = HeaderName::from_static("x-infergate-pool");
    const BACKEND: HeaderName = HeaderName::from_static("x-infergate-backend");
    const PROVIDER: HeaderName = HeaderName::from_static("x-infergate-provider");
    const REGION: HeaderName = HeaderName::from_static("x-infergate-region");
    const ENDPOINT: HeaderName = HeaderName::from_static("x-infergate-endpoint");
    const SERVED_MODEL: HeaderName = HeaderName::from_static("x-infergate-served-model");
    let mut set = |name: HeaderName, v: Option<&str>| {
        if let Some(v) = v.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, v);
        }
    };
    set(POOL, ctx.pool.as_ref().map(|p| &*p.0));
    set(
        BACKEND,
        ctx.backend.as_ref().or(ctx.pool.as_ref()).map(|p| &*p.0),
    );
    set(PROVIDER, ctx.provider.as_ref().map(|p| &*p.0));
    set(REGION, ctx.region.as_deref());
    set(ENDPOINT, ctx.endpoint.as_deref());
    set(SERVED_MODEL, ctx.served_model.as_deref());
}

fn json_response(status: StatusCode, body: Bytes) -> Response<GatewayBody> {
    let mut resp = Response::new(GatewayBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The response for a client-facing error.
pub fn error_response(e: &ApiError) -> Response<GatewayBody> {
    let mut resp = json_response(e.status, e.body());
    if let Some(secs) = e.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if e.status == StatusCode::METHOD_NOT_ALLOWED {
        let allow = if e.message.contains("use GET") {
            "GET"
        } else {
            "POST"
        };
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_when_sane_and_made_otherwise() {
        let made = |h: &HeaderMap| {
            let id = request_id(h);
            let (a, b) = id.split_once('-').expect("prefix-counter");
            assert_eq!((a.len(), b.len()), (8, 12), "{id}");
            assert!(
                id.bytes()
                    .all(|c| c == b'-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
                "{id}"
            );
            id
        };
        let none = HeaderMap::new();
        let (first, second) = (made(&none), made(&none));
        assert_ne!(first, second);
        assert_eq!(first[..8], second[..8], "one prefix per process");
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("client-id-42"));
        assert_eq!(request_id(&h), "client-id-42");
        h.insert("x-request-id", HeaderValue::from_static("has space"));
        made(&h);
    }
}
