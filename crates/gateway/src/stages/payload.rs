//! Payload stages between parse and route: **guard(request) → cache → semantic route →
//! retrieval**, and the response side they hand to respond: response guardrails and the cache
//! store of the complete answer.
//!
//! The prompt is embedded at most once per request (its last user message), and only when a
//! configured feature needs it; the vector is shared by the injection and topic guardrails, the
//! cache lookup, the router and retrieval. A request that matches no payload policy costs one
//! check of an empty list. Body rewrites (redaction, retrieval context) splice the changed JSON
//! strings; the body is re-parsed once when it changed, never re-serialised.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use infergate_protocol::body::{json_string, splice};
use infergate_protocol::{Operation, RequestBody};
use infergate_semantic::cache::{CachedAnswer, Hit, PartitionKey, SemanticCache};
use infergate_semantic::embed::{embed_one, Embedded};
use infergate_semantic::guard::stream::StreamScanner;
use infergate_semantic::guard::{
    Action, Block, Direction, Evaluation, GuardSet, ScanInput, Verdict, WholePrompt,
};
use infergate_semantic::retrieval::context_block;
use infergate_semantic::vector::Vector;
use infergate_semantic::verify::Signature;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::prompt::{replace_segments, PromptView};
use super::remote::{Webhook, WebhookText, WebhookVerdict};
use super::replay;
use crate::context::RequestContext;
use crate::error::GatewayError;
use crate::metrics::{CacheLabels, GuardLabels, Label, RouteLabels};
use crate::respond::GatewayBody;
use crate::snapshot::Snapshot;
use crate::Gateway;

/// The partition for requests without an identity.
pub const ANONYMOUS: &str = "anonymous";

/// A complete answer to store when the response ends well.
pub struct PendingStore {
    pub cache: Arc<SemanticCache>,
    pub policy: Arc<str>,
    pub key: PartitionKey,
    pub prompt_hash: u64,
    /// The prompt's embedding and signature (semantic caches only).
    pub semantic: Option<(Vector, Signature)>,
    pub chat: bool,
}

/// What the response side must do.
#[derive(Default)]
pub struct ResponsePlan {
    pub guard: GuardSet,
    pub webhooks: Vec<Arc<Webhook>>,
    pub store: Option<PendingStore>,
    pub tenant: Option<Arc<str>>,
}

impl ResponsePlan {
    pub fn is_empty(&self) -> bool {
        self.guard.is_empty() && self.webhooks.is_empty() && self.store.is_none()
    }
}

/// Result of the request-side stages. One per request, returned once: boxing the large
/// variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Before {
    /// Go on to route with this body and public model.
    Continue {
        body: RequestBody,
        model: String,
        response: ResponsePlan,
    },
    /// Answered from the cache.
    Answered(Response<GatewayBody>),
}

fn cache_control(headers: &HeaderMap) -> (bool, bool) {
    let mut no_cache = false;
    let mut no_store = false;
    for v in headers.get_all(header::CACHE_CONTROL) {
        if let Ok(s) = v.to_str() {
            for d in s.split(',').map(|d| d.trim().to_ascii_lowercase()) {
                match d.as_str() {
                    "no-cache" => no_cache = true,
                    "no-store" => no_store = true,
                    _ => {}
                }
            }
        }
    }
    (no_cache, no_store)
}

/// Hash of everything in the body that changes the answer other than the last user message:
/// every top-level field except `model`, `stream`, `stream_options`, `user`, `metadata`,
/// `store` and the prompt itself, plus every message except the last user one.
pub fn fingerprint(op: Operation, body: &RequestBody, view: &PromptView) -> u64 {
    let mut h = xxhash_rust::xxh64::Xxh64::new(0xf1f1);
    h.update(op.as_genai().as_bytes());
    if let Ok(map) =
        serde_json::from_slice::<std::collections::BTreeMap<String, &RawValue>>(body.bytes())
    {
        for (k, v) in &map {
            if matches!(
                k.as_str(),
                "model"
                    | "stream"
                    | "stream_options"
                    | "user"
                    | "metadata"
                    | "store"
                    | "messages"
                    | "prompt"
            ) {
                continue;
            }
            h.update(k.as_bytes());
            h.update(b"=");
            h.update(v.get().as_bytes());
            h.update(b";");
        }
    }
    for (i, r) in view.message_ranges.iter().enumerate() {
        if Some(i) != view.last_user {
            h.update(&body.bytes()[r.clone()]);
        }
        h.update(b"|");
    }
    h.digest()
}

fn n_choices(body: &RequestBody) -> u64 {
    #[derive(Deserialize)]
    struct N {
        #[serde(default)]
        n: Option<u64>,
    }
    serde_json::from_slice::<N>(body.bytes())
        .ok()
        .and_then(|n| n.n)
        .unwrap_or(1)
}

fn record_verdicts(gw: &Gateway, ctx: &mut RequestContext, verdicts: Vec<Verdict>) {
    for v in verdicts {
        gw.metrics
            .guardrail_verdicts
            .get_or_create(&GuardLabels {
                guardrail: Label(v.guardrail.clone()),
                kind: v.kind,
                action: v.action,
                direction: v.direction,
            })
            .inc();
        ctx.verdicts.push(v);
    }
}

fn block_error(b: &Block) -> GatewayError {
    GatewayError::ContentPolicy {
        message: b.message(),
        guardrail: b.guardrail.to_string(),
    }
}

/// Run the webhooks; returns a block when one says so (or fails closed).
async fn run_webhooks(
    gw: &Gateway,
    ctx: &mut RequestContext,
    hooks: &[Arc<Webhook>],
    direction: Direction,
    model: &str,
    texts: &[WebhookText<'_>],
) -> Option<Block> {
    let tenant = ctx.identity.as_ref().map(|i| i.tenant.clone());
    let mut block = None;
    for hook in hooks {
        let verdict = hook
            .check(direction.as_str(), tenant.as_deref(), model, texts)
            .await;
        let (hit, found, rule): (bool, &'static str, Option<Arc<str>>) = match verdict {
            WebhookVerdict::Allow => continue,
            WebhookVerdict::Hit(reason) => (true, "webhook_verdict", reason.map(Arc::from)),
            WebhookVerdict::Failed(e) => {
                tracing::warn!(guardrail = %hook.name, error = %e, "guardrail webhook failed");
                (!hook.fail_open, "webhook_unavailable", None)
            }
        };
        let action = if hit { hook.action } else { Action::Log };
        record_verdicts(
            gw,
            ctx,
            vec![Verdict {
                guardrail: Arc::from(hook.name.as_str()),
                kind: "webhook",
                action: action.as_str(),
                direction: direction.as_str(),
                found: vec![found],
                rule: rule.clone(),
                score: None,
                count: 1,
            }],
        );
        if action == Action::Block && block.is_none() {
            block = Some(Block {
                guardrail: Arc::from(hook.name.as_str()),
                kind: "webhook",
                found,
                rule,
                direction,
            });
        }
    }
    block
}

/// guard(request) → cache → semantic route → retrieval.
pub async fn before_route(
    gw: &Arc<Gateway>,
    snap: &Arc<Snapshot>,
    ctx: &mut RequestContext,
    op: Operation,
    headers: &HeaderMap,
    mut body: RequestBody,
) -> Result<Before, GatewayError> {
    let rt = &snap.semantic;
    let requested = body.model().to_string();
    if !rt.is_active() || op == Operation::Embeddings {
        return Ok(Before::Continue {
            body,
            model: requested,
            response: ResponsePlan::default(),
        });
    }
    let tenant: Option<Arc<str>> = ctx.identity.as_ref().map(|i| i.tenant.clone());
    let plan = rt.plan(tenant.as_deref(), &requested);
    let router = rt.routers.get(&requested).cloned();
    let has_collections = rt
        .collections_for(tenant.as_deref(), &requested)
        .next()
        .is_some()
        || router.is_some() && !rt.collections.is_empty();
    let mut response = ResponsePlan {
        guard: plan.response.clone(),
        webhooks: plan.response_webhooks.clone(),
        store: None,
        tenant: tenant.clone(),
    };
    if plan.request.is_empty()
        && plan.request_webhooks.is_empty()
        && plan.cache.is_none()
        && router.is_none()
        && !has_collections
    {
        return Ok(Before::Continue {
            body,
            model: requested,
            response,
        });
    }

    let mut view = PromptView::parse(op, &body);
    let query = view.query_text();
    let (no_cache, no_store) = cache_control(headers);
    let cache = plan
        .cache
        .filter(|_| !(no_cache && no_store) && n_choices(&body) <= 1);
    let semantic_cache = cache.is_some_and(|c| c.semantic && !no_cache);

    // One embedding of the last user message, if anything needs it.
    let needs_embedding =
        plan.request.uses_embedding() || semantic_cache || router.is_some() || has_collections;
    let mut embedding: Option<Vector> = None;
    // Windows of a long last user message, for guardrails that read past the encoder's 256
    // tokens (the injection classifier); embedded in one batch with the message itself.
    let mut windows: Vec<(String, Vector)> = Vec::new();
    // Token maxima of the message and its windows, for guardrails that read them (the injection
    // classifier): from the same forward pass, not a second one.
    let mut token_max: Option<Vector> = None;
    let mut window_token_max: Vec<Vector> = Vec::new();
    if let (true, Some(q), Some(e)) = (needs_embedding, &query, &rt.embedder) {
        let t = Instant::now();
        let ranges = plan.request.windows(q);
        let mut texts: Vec<String> = Vec::with_capacity(1 + ranges.len());
        texts.push(q.clone());
        texts.extend(
            ranges
                .into_iter()
                .filter_map(|r| q.get(r))
                .map(str::to_string),
        );
        let plain = |vs: Vec<Vector>| -> Vec<Embedded> {
            vs.into_iter()
                .map(|vector| Embedded {
                    vector,
                    token_max: None,
                })
                .collect()
        };
        let embedded = if plan.request.uses_token_max() {
            e.embed_with_token_max(&texts).await
        } else if texts.len() == 1 {
            embed_one(e.as_ref(), q).await.map(|v| plain(vec![v]))
        } else {
            e.embed(&texts).await.map(plain)
        };
        match embedded {
            Ok(vs) if vs.len() == texts.len() => {
                let mut vs = vs.into_iter();
                if let Some(first) = vs.next() {
                    embedding = Some(first.vector);
                    token_max = first.token_max;
                }
                for (text, e) in texts.into_iter().skip(1).zip(vs) {
                    windows.push((text, e.vector));
                    window_token_max.extend(e.token_max);
                }
                if window_token_max.len() != windows.len() {
                    window_token_max.clear();
                }
            }
            Ok(_) => {
                gw.metrics.embedding_errors.inc();
                tracing::warn!("the embedder returned the wrong number of vectors; semantic checks skipped for this request");
            }
            Err(err) => {
                gw.metrics.embedding_errors.inc();
                tracing::warn!(error = %err, "embedding failed; semantic checks skipped for this request");
            }
        }
        let spent = t.elapsed();
        ctx.embed_time += spent;
        gw.metrics.embedding_duration.observe(spent.as_secs_f64());
    }

    // guard(request)
    if !plan.request.is_empty() {
        let whole = WholePrompt {
            chars: view.total_chars(),
            messages: view.messages,
        };
        let mut ev = Evaluation::default();
        let mut new_texts: Vec<(usize, String)> = Vec::new();
        let mut embedded_once = false;
        for (i, seg) in view.segments.iter().enumerate() {
            let is_query =
                !embedded_once && Some(seg.message) == view.last_user && seg.role == "user";
            embedded_once |= is_query;
            let input = ScanInput {
                text: &seg.text,
                embedding: if is_query { embedding.as_deref() } else { None },
                windows: if is_query { &windows } else { &[] },
                token_max: if is_query { token_max.as_deref() } else { None },
                window_token_max: if is_query { &window_token_max } else { &[] },
                direction: Direction::Request,
                whole: (i == 0).then_some(&whole),
            };
            let mut one = plan.request.evaluate(&input);
            if !one.redactions.is_empty() {
                new_texts.push((i, one.apply(&seg.text)));
            }
            one.redactions.clear();
            ev.merge_verdicts(one);
        }
        if view.segments.is_empty() {
            // Still apply size caps to an empty prompt (nothing else can match).
            ev.merge_verdicts(plan.request.evaluate(&ScanInput {
                text: "",
                embedding: None,
                windows: &[],
                token_max: None,
                window_token_max: &[],
                direction: Direction::Request,
                whole: Some(&whole),
            }));
        }
        let block = ev.block.take();
        record_verdicts(gw, ctx, ev.verdicts);
        if let Some(b) = block {
            return Err(block_error(&b));
        }
        if !new_texts.is_empty() {
            let bytes = replace_segments(body.bytes(), &view, &new_texts);
            body = RequestBody::parse(bytes)?;
            view = PromptView::parse(op, &body);
        }
    }
    if !plan.request_webhooks.is_empty() {
        let texts: Vec<WebhookText<'_>> = view
            .segments
            .iter()
            .map(|s| WebhookText {
                role: &s.role,
                text: &s.text,
            })
            .collect();
        if let Some(b) = run_webhooks(
            gw,
            ctx,
            &plan.request_webhooks,
            Direction::Request,
            &requested,
            &texts,
        )
        .await
        {
            return Err(block_error(&b));
        }
    }

    // cache
    if let (Some(store), Some(q)) = (cache, &query) {
        let key = PartitionKey {
            tenant: tenant.clone().unwrap_or_else(|| Arc::from(ANONYMOUS)),
            model: Arc::from(requested.as_str()),
            fingerprint: fingerprint(op, &body, &view),
        };
        let prompt_hash = xxhash_rust::xxh64::xxh64(q.trim().as_bytes(), 0x9e37);
        let lookup = if no_cache {
            None
        } else {
            let sig = store.semantic.then(|| Signature::of(q));
            let semantic = embedding.as_deref().zip(sig.as_ref());
            store.cache.lookup(&key, prompt_hash, semantic)
        };
        let result = match &lookup {
            Some((_, Hit::Exact)) => "hit",
            Some((_, Hit::Semantic(_))) => "semantic_hit",
            None if no_cache => "bypass",
            None => "miss",
        };
        gw.metrics
            .cache_lookups
            .get_or_create(&CacheLabels {
                policy: Label(store.name.clone()),
                result,
            })
            .inc();
        if let Some((answer, hit)) = lookup {
            ctx.cache = Some(if hit == Hit::Exact {
                "hit"
            } else {
                "semantic-hit"
            });
            ctx.model = Some(Arc::from(requested.as_str()));
            ctx.served_model = Some(answer.served_model.clone());
            let resp = cached_response(ctx, &body, op, &answer, &requested);
            return Ok(Before::Answered(resp));
        }
        ctx.cache = Some("miss");
        if !no_store {
            response.store = Some(PendingStore {
                cache: store.cache.clone(),
                policy: store.name.clone(),
                key,
                prompt_hash,
                semantic: if store.semantic {
                    embedding.clone().map(|v| (v, Signature::of(q)))
                } else {
                    None
                },
                chat: op == Operation::Chat,
            });
        }
    }

    // semantic route
    let mut model = requested.clone();
    if let (Some(router), Some(q), Some(v)) = (&router, &query, &embedding) {
        let choice = router.choose(q, v);
        gw.metrics
            .semantic_routes
            .get_or_create(&RouteLabels {
                router: Label(Arc::from(requested.as_str())),
                route: Label(choice.route.clone().unwrap_or_else(|| Arc::from("default"))),
            })
            .inc();
        ctx.route_reason = Some(choice.reason());
        model = choice.model.to_string();
    } else if let Some(router) = &router {
        ctx.route_reason = Some("default; no embedding".into());
        model = router.default_model.to_string();
    }

    // retrieval
    if let Some(v) = &embedding {
        let mut hits = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for c in rt
            .collections_for(tenant.as_deref(), &requested)
            .chain(rt.collections_for(tenant.as_deref(), &model))
        {
            if !seen.insert(c.name.clone()) {
                continue;
            }
            hits.extend(c.collection.search(v, c.top_k, c.min_score));
        }
        hits.sort_by(|a, b| b.1.total_cmp(&a.1));
        hits.truncate(8);
        if !hits.is_empty() && op == Operation::Chat {
            ctx.retrieved = Some(hits.len());
            let block = context_block(&hits);
            body = RequestBody::parse(add_system_context(&body, &view, &block))?;
        }
    }

    Ok(Before::Continue {
        body,
        model,
        response,
    })
}

/// Put `context` into the system prompt: appended to the first system message's text, or as a
/// new system message at the start.
fn add_system_context(body: &RequestBody, view: &PromptView, context: &str) -> Bytes {
    if let Some(seg) = view
        .segments
        .iter()
        .find(|s| s.role == "system" && s.message == 0)
    {
        let text = format!("{}\n\n{context}", seg.text);
        let mut edits = vec![(seg.range.clone(), json_string(&text))];
        return splice(body.bytes(), &mut edits);
    }
    let Some(r) = &view.messages_range else {
        return body.bytes().clone();
    };
    let mut msg = br#"{"role":"system","content":"#.to_vec();
    msg.extend_from_slice(&json_string(context));
    msg.push(b'}');
    if view.messages > 0 {
        msg.push(b',');
    }
    let at = r.start + 1; // after '['
    let mut edits = vec![(at..at, msg)];
    splice(body.bytes(), &mut edits)
}

fn cached_response(
    ctx: &RequestContext,
    body: &RequestBody,
    op: Operation,
    answer: &CachedAnswer,
    model: &str,
) -> Response<GatewayBody> {
    let stream = body.stream() && op.can_stream();
    let (bytes, ctype) = if stream {
        (
            replay::sse_body(answer, &ctx.id, model, body.client_wants_usage()),
            "text/event-stream",
        )
    } else {
        (
            replay::json_body(answer, &ctx.id, model),
            "application/json",
        )
    };
    let mut resp = Response::new(GatewayBody::full(bytes));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if stream {
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    resp
}

/// Response headers the payload stages add: cache status, route reason, guardrail flags.
pub fn add_headers(ctx: &RequestContext, headers: &mut HeaderMap) {
    if let Some(c) = ctx.cache {
        headers.insert("x-infergate-cache", HeaderValue::from_static(c));
    }
    if let Some(r) = ctx
        .route_reason
        .as_deref()
        .and_then(|r| HeaderValue::from_str(r).ok())
    {
        headers.insert("x-infergate-route-reason", r);
    }
    let flags: Vec<&str> = ctx
        .verdicts
        .iter()
        .filter(|v| v.action == "flag")
        .map(|v| &*v.guardrail)
        .collect();
    if !flags.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&flags.join(",")) {
            headers.insert("x-infergate-guardrail-flags", v);
        }
    }
}

// ------------------------------------------------------------------ response side

#[derive(Deserialize)]
struct RespView<'a> {
    #[serde(borrow, default)]
    choices: Vec<ChoiceView<'a>>,
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ChoiceView<'a> {
    #[serde(borrow, default)]
    message: Option<MessageView<'a>>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    delta: Option<MessageView<'a>>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct MessageView<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_calls: Option<&'a RawValue>,
}

fn range_in(base: &[u8], raw: &RawValue) -> std::ops::Range<usize> {
    let start = raw.get().as_ptr() as usize - base.as_ptr() as usize;
    start..start + raw.get().len()
}

/// Response guardrails and cache store for a complete (non-streamed) successful answer.
pub async fn after_full(
    gw: &Arc<Gateway>,
    ctx: &mut RequestContext,
    plan: ResponsePlan,
    body: Bytes,
) -> Result<Bytes, GatewayError> {
    if plan.is_empty() {
        return Ok(body);
    }
    let Ok(view) = serde_json::from_slice::<RespView<'_>>(&body) else {
        return Ok(body);
    };
    let _ = view.model;
    let mut texts: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    let mut tool_calls = false;
    let mut finish = None;
    for c in &view.choices {
        let raw = c
            .message
            .as_ref()
            .and_then(|m| {
                tool_calls |= m
                    .tool_calls
                    .is_some_and(|t| !matches!(t.get(), "null" | "[]"));
                m.content
            })
            .or(c.text);
        if let Some(raw) = raw.filter(|r| r.get().starts_with('"')) {
            if let Ok(t) = serde_json::from_str::<String>(raw.get()) {
                texts.push((range_in(&body, raw), t));
            }
        }
        if finish.is_none() {
            finish.clone_from(&c.finish_reason);
        }
    }
    let n_choices = view.choices.len();
    drop(view);
    let mut ev = Evaluation::default();
    let mut edits: Vec<(std::ops::Range<usize>, Vec<u8>)> = Vec::new();
    let mut final_texts: Vec<String> = Vec::new();
    for (range, text) in &texts {
        let mut one = plan
            .guard
            .evaluate(&ScanInput::new(text, Direction::Response));
        let out = if one.redactions.is_empty() {
            text.clone()
        } else {
            let t = one.apply(text);
            edits.push((range.clone(), json_string(&t)));
            t
        };
        final_texts.push(out);
        one.redactions.clear();
        ev.merge_verdicts(one);
    }
    let block = ev.block.take();
    record_verdicts(gw, ctx, ev.verdicts);
    if let Some(b) = block {
        return Err(block_error(&b));
    }
    if !plan.webhooks.is_empty() {
        let wt: Vec<WebhookText<'_>> = final_texts
            .iter()
            .map(|t| WebhookText {
                role: "assistant",
                text: t,
            })
            .collect();
        let model = ctx.model.clone().unwrap_or_else(|| Arc::from(""));
        if let Some(b) =
            run_webhooks(gw, ctx, &plan.webhooks, Direction::Response, &model, &wt).await
        {
            return Err(block_error(&b));
        }
    }
    let out = if edits.is_empty() {
        body
    } else {
        splice(&body, &mut edits)
    };
    if let Some(store) = plan.store {
        if n_choices == 1 && !tool_calls && final_texts.len() == 1 {
            if let Some(finish) = finish {
                store_answer(gw, store, final_texts.swap_remove(0), finish, ctx);
            }
        }
    }
    Ok(out)
}

fn store_answer(
    gw: &Gateway,
    store: PendingStore,
    content: String,
    finish_reason: String,
    ctx: &RequestContext,
) {
    // Only complete answers: a cut-off answer ("length") is still complete as the model gave
    // it, but an error or content filter is not worth replaying.
    if !matches!(finish_reason.as_str(), "stop" | "length" | "eos") {
        return;
    }
    let usage = ctx.usage.unwrap_or_default();
    store.cache.store(
        &store.key,
        store.prompt_hash,
        store
            .semantic
            .as_ref()
            .map(|(v, sig)| (&v[..], sig.clone())),
        CachedAnswer {
            chat: store.chat,
            content,
            finish_reason,
            prompt_tokens: usage.input_tokens,
            completion_tokens: usage.output_tokens,
            served_model: ctx.served_model.clone().unwrap_or_default(),
        },
    );
    let stats = store.cache.stats();
    let label = crate::metrics::PolicyLabels {
        policy: Label(store.policy),
    };
    gw.metrics
        .cache_entries
        .get_or_create(&label)
        .set(i64::try_from(stats.entries).unwrap_or(i64::MAX));
    gw.metrics
        .cache_bytes
        .get_or_create(&label)
        .set(i64::try_from(stats.bytes).unwrap_or(i64::MAX));
}

/// Answers larger than this are not captured for the cache from a stream.
const MAX_CAPTURE: usize = 1 << 20;

/// The per-stream response step: incremental guardrails and capture for the cache. O(1) work
/// per event apart from the scanner's bounded window.
pub struct StreamFilter {
    scanner: Option<StreamScanner>,
    capture: Option<String>,
    store: Option<PendingStore>,
    finish: Option<String>,
    chat: bool,
    /// Verdicts not yet recorded (recorded at the end of the stream).
    pub blocked: Option<Block>,
}

impl StreamFilter {
    /// None when nothing is to be done for this stream.
    pub fn new(plan: ResponsePlan, op: Operation) -> Option<Self> {
        if plan.guard.is_empty() && plan.store.is_none() {
            return None;
        }
        let scanner = (!plan.guard.is_empty()).then(|| StreamScanner::new(&plan.guard));
        Some(Self {
            scanner: scanner.filter(|s| !s.is_empty()),
            capture: plan.store.as_ref().map(|_| String::new()),
            store: plan.store,
            finish: None,
            chat: op == Operation::Chat,
            blocked: None,
        })
    }

    /// Filter one forwarded event. `Err` = the stream must end with a policy error now.
    pub fn on_event(&mut self, event: Bytes) -> Result<Bytes, Block> {
        let Some(data) = infergate_protocol::sse::event_data(&event) else {
            return Ok(event);
        };
        if data.as_ref() == b"[DONE]" {
            let flushed = match &mut self.scanner {
                Some(s) => s.finish().map_err(|b| self.block(b))?,
                None => String::new(),
            };
            self.capture_text(&flushed);
            if flushed.is_empty() {
                return Ok(event);
            }
            let mut out = self.synthetic_chunk(&flushed, b"{}").to_vec();
            out.extend_from_slice(&event);
            return Ok(Bytes::from(out));
        }
        let data = data.into_owned();
        let Ok(view) = serde_json::from_slice::<RespView<'_>>(&data) else {
            return Ok(event);
        };
        let Some(choice) = view.choices.first() else {
            return Ok(event);
        };
        let finishing = choice.finish_reason.is_some();
        if finishing {
            self.finish.clone_from(&choice.finish_reason);
        }
        let raw = if self.chat {
            choice.delta.as_ref().and_then(|d| {
                if d.tool_calls
                    .is_some_and(|t| !matches!(t.get(), "null" | "[]"))
                {
                    self.capture = None; // tool calls are not cached
                }
                d.content
            })
        } else {
            choice.text
        };
        let raw = raw.filter(|r| r.get().starts_with('"'));
        let piece = raw.and_then(|r| serde_json::from_str::<String>(r.get()).ok());
        let raw_range = raw.map(|r| range_in(&data, r));
        drop(view);
        let mut released = match (&mut self.scanner, &piece) {
            (Some(s), Some(p)) => s.push(p).map_err(|b| self.block(b))?,
            (None, Some(p)) => p.clone(),
            (_, None) => String::new(),
        };
        if finishing {
            if let Some(s) = &mut self.scanner {
                released.push_str(&s.finish().map_err(|b| self.block(b))?);
            }
        }
        self.capture_text(&released);
        match (raw_range, piece) {
            (Some(_), Some(p)) if p == released => Ok(event),
            (Some(r), Some(_)) => {
                // Rebuild the event with the released text in place of the piece.
                let mut edits = vec![(r, json_string(&released))];
                let new_data = splice(&data, &mut edits);
                let mut out = Vec::with_capacity(new_data.len() + 8);
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&new_data);
                out.extend_from_slice(b"\n\n");
                Ok(Bytes::from(out))
            }
            _ if released.is_empty() => Ok(event),
            _ => {
                // Held text released by the final event, which carries no text field: send it
                // in a chunk of its own just before.
                let mut out = self.synthetic_chunk(&released, &data).to_vec();
                out.extend_from_slice(&event);
                Ok(Bytes::from(out))
            }
        }
    }

    fn block(&mut self, b: Block) -> Block {
        self.capture = None;
        self.blocked = Some(b.clone());
        b
    }

    fn capture_text(&mut self, t: &str) {
        if let Some(c) = &mut self.capture {
            if c.len() + t.len() > MAX_CAPTURE {
                self.capture = None;
            } else {
                c.push_str(t);
            }
        }
    }

    /// A content chunk carrying `text`, with `id`, `created` and `model` copied from `like`.
    fn synthetic_chunk(&self, text: &str, like: &[u8]) -> Bytes {
        let base: serde_json::Value = serde_json::from_slice(like).unwrap_or_default();
        let mut v = if self.chat {
            serde_json::json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
        } else {
            serde_json::json!({"object": "text_completion", "choices": [{"index": 0, "text": text, "finish_reason": null}]})
        };
        for k in ["id", "created", "model"] {
            if let Some(x) = base.get(k) {
                v[k] = x.clone();
            }
        }
        let mut out = b"data: ".to_vec();
        out.extend_from_slice(&serde_json::to_vec(&v).unwrap_or_default());
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }

    /// The stream ended: record verdicts and, if it completed, store the answer.
    pub fn finish(self, gw: &Gateway, ctx: &mut RequestContext, complete: bool) {
        if let Some(s) = self.scanner {
            record_verdicts(gw, ctx, s.evaluation.verdicts);
        }
        if let (true, Some(store), Some(content), Some(finish)) =
            (complete, self.store, self.capture, self.finish)
        {
            store_answer(gw, store, content, finish, ctx);
        }
    }
}
