//! The one place where a failure becomes what the client sees: an HTTP status, an OpenAI-style
//! error body whose message says what to change, and a stable reason used as a metric label.
//!
//! | status | when |
//! |---|---|
//! | 400 | malformed JSON, missing `model`, wrongly typed fields, a request a backend's provider cannot express |
//! | 401 | missing, unknown, expired or revoked credential; a pass-through backend and no caller credential |
//! | 403 | the caller may not use the model; no target in the regions the request may use |
//! | 404 | unknown model, unknown path |
//! | 405 | known path, wrong method |
//! | 400 | `content_policy_violation`: a guardrail blocked the prompt or the answer |
//! | 413 | body over `maxRequestBody` |
//! | 429 | a rate limit (`rate_limit_exceeded`) or budget (`budget_exceeded`) would be exceeded; the pool is saturated and the request is sheddable; the pool's queue is full |
//! | 502 | upstream refused, reset or broke the response; the gateway's backend credential failed |
//! | 503 | no endpoint can take the request; waited in the queue past its TTL; every target's circuit is open; the key store or shared limiter is unreachable (fail-closed) |
//! | 504 | upstream did not answer in time |

use http::StatusCode;
use infergate_control::RouteError;
use infergate_policy::access::{AuthError, ModelDenied};
use infergate_policy::budget::format_usd;
use infergate_policy::limit::{Metric, Scope};
use infergate_protocol::{ApiError, BodyError};
use infergate_scheduler::SchedulingError;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("request body is larger than the {limit}-byte limit")]
    BodyTooLarge { limit: u64 },
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error("unknown path {method} {path}")]
    UnknownPath { method: String, path: String },
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error(transparent)]
    Scheduling(#[from] SchedulingError),
    #[error("pool `{0}` is not configured")]
    PoolMissing(String),
    #[error("could not reach any endpoint of pool `{pool}`: {detail}")]
    UpstreamConnect { pool: String, detail: String },
    #[error("`{pool}` did not answer within {secs}s")]
    UpstreamTimeout { pool: String, secs: u64 },
    #[error("the upstream response from pool `{pool}` failed: {detail}")]
    UpstreamBroken { pool: String, detail: String },
    #[error("authentication failed: {0}")]
    Unauthenticated(AuthError),
    #[error("model `{}` is not allowed for tenant `{}`", .0.model, .0.tenant)]
    ModelNotAllowed(ModelDenied),
    #[error("rate limit on {:?} {}", .0.scope, .0.subject)]
    RateLimited(Box<LimitHit>),
    #[error("budget of {:?} {} exceeded", .0.scope, .0.subject)]
    BudgetExceeded(Box<LimitHit>),
    #[error("the shared limiter is unreachable")]
    LimiterUnavailable,
    #[error("the circuit of `{upstream}` is open")]
    CircuitOpen {
        upstream: String,
        cooldown_secs: u64,
    },
    #[error("backend `{backend}`: {error}")]
    Translate {
        backend: String,
        error: infergate_providers::TranslateError,
    },
    #[error("backend `{backend}` credentials: {detail}")]
    BackendCredentials { backend: String, detail: String },
    #[error("backend `{backend}` needs the caller's own credential")]
    MissingClientCredential { backend: String },
    #[error("the Messages request is not valid: {0}")]
    MessagesRequest(String),
    /// A guardrail blocked the request or the answer. The message names the rule, never the
    /// matched text.
    #[error("{message}")]
    ContentPolicy { message: String, guardrail: String },
}

/// A limit or budget that refused a request.
#[derive(Debug, Clone)]
pub struct LimitHit {
    pub scope: Scope,
    pub subject: String,
    pub metric: Metric,
    /// Budgets: `day`, `week`, `month`, `lifetime`.
    pub period: Option<&'static str>,
    pub limit: u64,
    pub used: u64,
    pub requested: u64,
    /// The window of a rate limit, in ms.
    pub window_ms: Option<u64>,
    pub retry_after_ms: Option<u64>,
}

fn scope_phrase(scope: Scope, subject: &str) -> String {
    match scope {
        Scope::Key => format!("key {subject}"),
        Scope::Tenant => format!("tenant `{subject}`"),
        Scope::Model => format!("model `{subject}` (all tenants)"),
        Scope::TenantModel => {
            let (t, m) = subject.split_once('/').unwrap_or((subject, ""));
            format!("tenant `{t}` on model `{m}`")
        }
    }
}

fn window_phrase(ms: Option<u64>) -> String {
    match ms {
        Some(60_000) | None => "per minute".into(),
        Some(ms) if ms % 60_000 == 0 => format!("per {} minutes", ms / 60_000),
        Some(ms) => format!("per {}s", ms as f64 / 1000.0),
    }
}

/// `1.8s`, `12s`, `3m20s` — as OpenAI writes waits.
pub fn human_wait(ms: u64) -> String {
    if ms < 10_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 120_000 {
        format!("{}s", ms.div_ceil(1000))
    } else if ms < 7_200_000 {
        let s = ms.div_ceil(1000);
        format!("{}m{}s", s / 60, s % 60)
    } else {
        let m = ms.div_ceil(60_000);
        format!("{}h{}m", m / 60, m % 60)
    }
}

const INVALID: &str = "invalid_request_error";
const SERVER: &str = "server_error";
const RATE_LIMIT: &str = "rate_limit_error";

impl GatewayError {
    /// The stable reason (metric label, access log `error` field).
    pub fn reason(&self) -> &'static str {
        match self {
            GatewayError::Body(BodyError::Json(_)) => "invalid_json",
            GatewayError::Body(BodyError::NotAnObject) => "invalid_json",
            GatewayError::Body(BodyError::MissingModel) => "missing_model",
            GatewayError::Body(BodyError::FieldType { .. }) => "invalid_field",
            GatewayError::BodyTooLarge { .. } => "request_too_large",
            GatewayError::BodyRead(_) => "body_read_error",
            GatewayError::Route(RouteError::UnknownModel { .. }) => "model_not_found",
            GatewayError::Route(RouteError::RegionNotAllowed { .. }) => "region_not_allowed",
            GatewayError::CircuitOpen { .. } => "circuit_open",
            GatewayError::Translate { .. } => "unsupported_by_backend",
            GatewayError::BackendCredentials { .. } => "upstream_credentials",
            GatewayError::MissingClientCredential { .. } => "missing_credentials",
            GatewayError::MessagesRequest(_) => "invalid_request",
            GatewayError::UnknownPath { .. } => "unknown_url",
            GatewayError::MethodNotAllowed { .. } => "method_not_allowed",
            GatewayError::Scheduling(SchedulingError::Shed { .. }) => "pool_saturated",
            GatewayError::Scheduling(SchedulingError::QueueFull { .. }) => "queue_full",
            GatewayError::Scheduling(SchedulingError::QueueTimeout { .. }) => "queue_timeout",
            GatewayError::Scheduling(_) | GatewayError::PoolMissing(_) => "no_endpoint",
            GatewayError::UpstreamConnect { .. } => "upstream_connect_error",
            GatewayError::UpstreamTimeout { .. } => "upstream_timeout",
            GatewayError::UpstreamBroken { .. } => "upstream_error",
            GatewayError::Unauthenticated(e) => e.reason(),
            GatewayError::ModelNotAllowed(_) => "model_not_allowed",
            GatewayError::RateLimited(_) => "rate_limit_exceeded",
            GatewayError::BudgetExceeded(_) => "budget_exceeded",
            GatewayError::LimiterUnavailable => "limiter_unavailable",
            GatewayError::ContentPolicy { .. } => "content_policy_violation",
        }
    }

    /// The client-facing error.
    pub fn to_api(&self) -> ApiError {
        let reason = self.reason();
        match self {
            GatewayError::Body(e) => {
                let msg = match e {
                    BodyError::Json(detail) => format!(
                        "We could not parse the JSON body of your request ({detail}). \
                         Send a valid JSON object, e.g. {{\"model\": \"...\", \"messages\": [...]}}."
                    ),
                    BodyError::NotAnObject => {
                        "The request body must be a JSON object, e.g. {\"model\": \"...\", \"messages\": [...]}."
                            .to_string()
                    }
                    BodyError::MissingModel => {
                        "You must provide a model parameter: add \"model\": \"<name>\" to the body \
                         (GET /v1/models lists the names)."
                            .to_string()
                    }
                    BodyError::FieldType { field, expected } => {
                        format!("The field `{field}` must be {expected}.")
                    }
                };
                let mut err = ApiError::new(StatusCode::BAD_REQUEST, INVALID, reason, msg);
                err.param = e.param();
                err
            }
            GatewayError::BodyTooLarge { limit } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                INVALID,
                reason,
                format!(
                    "The request body is larger than this gateway accepts ({limit} bytes). \
                     Shorten the prompt, or raise GatewaySettings spec.maxRequestBody."
                ),
            ),
            GatewayError::BodyRead(detail) => ApiError::new(
                StatusCode::BAD_REQUEST,
                INVALID,
                reason,
                format!("The request body could not be read ({detail}); send it again."),
            ),
            GatewayError::Route(e @ RouteError::RegionNotAllowed { .. }) => ApiError::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                reason,
                format!(
                    "{e}. This request may not leave its allowed regions, so it was not sent; \
                     ask the operator for a target in an allowed region."
                ),
            )
            .with_param("model"),
            GatewayError::Route(e) => {
                ApiError::new(StatusCode::NOT_FOUND, INVALID, reason, format!("{e}."))
                    .with_param("model")
            }
            GatewayError::CircuitOpen {
                upstream,
                cooldown_secs,
            } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                SERVER,
                reason,
                format!(
                    "`{upstream}` failed repeatedly and is paused (circuit open), and no fallback \
                     could take the request. Try again in {cooldown_secs}s."
                ),
            )
            .with_retry_after(*cooldown_secs),
            GatewayError::Translate { backend, error } => ApiError::new(
                StatusCode::BAD_REQUEST,
                INVALID,
                reason,
                format!("The request cannot be sent to backend `{backend}`: {error}. Change the request, or route this model elsewhere."),
            ),
            GatewayError::BackendCredentials { backend, detail } => ApiError::new(
                StatusCode::BAD_GATEWAY,
                SERVER,
                reason,
                format!("The gateway could not authenticate to backend `{backend}` ({detail}). The operator must fix the backend's credentials."),
            ),
            GatewayError::MissingClientCredential { backend } => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                reason,
                format!("Backend `{backend}` uses each caller's own key: send it as `Authorization: Bearer <key>` (or `x-api-key`)."),
            ),
            GatewayError::MessagesRequest(detail) => ApiError::new(
                StatusCode::BAD_REQUEST,
                INVALID,
                reason,
                format!("The Messages request body is not valid ({detail}). Send {{\"model\", \"max_tokens\", \"messages\": [...]}} as the Anthropic API documents it."),
            ),
            GatewayError::UnknownPath { method, path } => ApiError::new(
                StatusCode::NOT_FOUND,
                INVALID,
                reason,
                format!(
                    "Invalid URL ({method} {path}). This gateway serves POST /v1/chat/completions, \
                     POST /v1/completions, POST /v1/embeddings, POST /v1/messages and GET /v1/models."
                ),
            ),
            GatewayError::MethodNotAllowed { method, path } => ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                INVALID,
                reason,
                format!("{method} is not allowed on {path}; use {}.", allowed_method(path)),
            ),
            GatewayError::Scheduling(SchedulingError::Shed { pool, reserved, .. }) => {
                let what = if *reserved == 0 {
                    format!("Pool `{pool}` is saturated")
                } else {
                    format!(
                        "The endpoints of pool `{pool}` open to sheddable requests are saturated \
                         ({reserved} more are reserved for non-sheddable traffic while it is \
                         present)"
                    )
                };
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    RATE_LIMIT,
                    reason,
                    format!(
                        "{what} and this request is sheddable (its priority is below 0), so it \
                         was not queued. Retry later, or send it with a non-negative priority \
                         (an InferenceObjective named in x-gateway-inference-objective)."
                    ),
                )
                .with_retry_after(1)
            }
            GatewayError::Scheduling(SchedulingError::QueueFull {
                pool,
                priority,
                limit,
            }) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                RATE_LIMIT,
                reason,
                format!(
                    "Pool `{pool}` is saturated and its queue for priority {priority} is full \
                     ({limit} limit). Retry later, or raise flowControl limits in the pool's \
                     EndpointPickerConfig."
                ),
            )
            .with_retry_after(1),
            GatewayError::Scheduling(SchedulingError::QueueTimeout { pool, waited }) => {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    SERVER,
                    reason,
                    format!(
                        "Pool `{pool}` stayed saturated while the request waited {:.1}s in its \
                         queue (flowControl.defaultRequestTTL). Retry later; if it persists, the \
                         pool needs more replicas.",
                        waited.as_secs_f64()
                    ),
                )
                .with_retry_after(1)
            }
            GatewayError::Scheduling(e) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                SERVER,
                reason,
                format!("{e}. Try again shortly; if it persists, check the pool's endpoints."),
            )
            .with_retry_after(1),
            GatewayError::PoolMissing(pool) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                SERVER,
                reason,
                format!("The model routes to pool `{pool}`, which is not configured."),
            ),
            GatewayError::UpstreamConnect { pool, detail } => ApiError::new(
                StatusCode::BAD_GATEWAY,
                SERVER,
                reason,
                format!(
                    "No endpoint of pool `{pool}` accepted the request ({detail}). Try again shortly."
                ),
            )
            .with_retry_after(1),
            GatewayError::UpstreamTimeout { pool, secs } => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                SERVER,
                reason,
                format!(
                    "`{pool}` did not start answering in time (first-token timeout {secs}s). Try \
                     again, or ask for fewer tokens."
                ),
            ),
            GatewayError::ContentPolicy { message, .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, INVALID, reason, message.clone())
            }
            GatewayError::UpstreamBroken { pool, detail } => ApiError::new(
                StatusCode::BAD_GATEWAY,
                SERVER,
                reason,
                format!(
                    "The response from pool `{pool}` broke off ({detail}); the answer is incomplete. \
                     Retry the request."
                ),
            ),
            GatewayError::Unauthenticated(e) => {
                let (status, msg) = match e {
                    AuthError::Missing => (
                        StatusCode::UNAUTHORIZED,
                        "You didn't provide an API key. Send it as `Authorization: Bearer <key>` \
                         (or the `x-api-key` / `api-key` header), or a JWT as \
                         `Authorization: Bearer <token>`."
                            .to_string(),
                    ),
                    AuthError::UnknownKey { claimed_id } => (
                        StatusCode::UNAUTHORIZED,
                        match claimed_id {
                            Some(id) => format!(
                                "Incorrect API key provided for key {id}. Check that you copied the \
                                 whole key, or ask your administrator for a new one."
                            ),
                            None => "Incorrect API key provided. Check that you copied the whole key \
                                     (infergate keys start with `igk_`), or ask your administrator \
                                     for one."
                                .to_string(),
                        },
                    ),
                    AuthError::ExpiredKey { id } => (
                        StatusCode::UNAUTHORIZED,
                        format!(
                            "API key {id} has expired. Use the key that replaced it, or ask your \
                             administrator to rotate it (`infergate keys rotate {id}`)."
                        ),
                    ),
                    AuthError::RevokedKey { id } => (
                        StatusCode::UNAUTHORIZED,
                        format!(
                            "API key {id} has been revoked. Ask your administrator for a new key."
                        ),
                    ),
                    AuthError::InvalidToken(why) => (
                        StatusCode::UNAUTHORIZED,
                        format!("The bearer token was not accepted: {why}. Get a fresh token from \
                                 your identity provider."),
                    ),
                    AuthError::UnknownTenant(t) => (
                        StatusCode::FORBIDDEN,
                        format!(
                            "Your credential belongs to tenant `{t}`, which this gateway does not \
                             serve. Ask your administrator to declare a Tenant named `{t}`."
                        ),
                    ),
                    AuthError::StoreUnavailable => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "The gateway cannot check API keys right now (its key store is \
                         unreachable). Try again shortly."
                            .to_string(),
                    ),
                };
                let ty = if status == StatusCode::SERVICE_UNAVAILABLE {
                    SERVER
                } else {
                    INVALID
                };
                let err = ApiError::new(status, ty, reason, msg);
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    err.with_retry_after(1)
                } else {
                    err
                }
            }
            GatewayError::ModelNotAllowed(d) => {
                let allowed = if d.allowed.is_empty() {
                    "none".to_string()
                } else {
                    d.allowed.join(", ")
                };
                let whose = if d.by_key { "your API key" } else { "your tenant" };
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    INVALID,
                    reason,
                    format!(
                        "Model `{}` is not allowed for {whose} (tenant `{}`; allowed: {allowed}). \
                         Use an allowed model, or ask your administrator to add `{}` to the \
                         tenant's `models`.",
                        d.model, d.tenant, d.model
                    ),
                )
                .with_param("model")
            }
            GatewayError::RateLimited(h) => {
                let who = scope_phrase(h.scope, &h.subject);
                let (kind, unit) = match h.metric {
                    Metric::Requests => ("requests", "RPM"),
                    Metric::Concurrency => ("requests", "concurrent requests"),
                    _ => ("tokens", "TPM"),
                };
                let msg = match (h.metric, h.retry_after_ms) {
                    (Metric::Concurrency, _) => format!(
                        "Too many concurrent requests for {who}: limit {}, in flight {}. Wait for \
                         one to finish, or ask for a higher `concurrency` limit.",
                        h.limit, h.used
                    ),
                    (_, None) => format!(
                        "Request too large for {who}: it needs {} {kind} but the limit is {} {} \
                         in total. Lower `max_tokens` or shorten the prompt.",
                        h.requested, h.limit, window_phrase(h.window_ms)
                    ),
                    (_, Some(ms)) => format!(
                        "Rate limit reached for {who} on {kind} {} ({unit}): Limit {}, Used {}, \
                         Requested {}. Please try again in {}, or lower `max_tokens`.",
                        window_phrase(h.window_ms),
                        h.limit,
                        h.used,
                        h.requested,
                        human_wait(ms)
                    ),
                };
                let mut err = ApiError::new(StatusCode::TOO_MANY_REQUESTS, kind, reason, msg);
                if let Some(ms) = h.retry_after_ms {
                    err = err.with_retry_after(ms.div_ceil(1000).max(1));
                }
                err
            }
            GatewayError::BudgetExceeded(h) => {
                let who = scope_phrase(h.scope, &h.subject);
                let period = h.period.unwrap_or("lifetime");
                let when = match h.retry_after_ms {
                    Some(ms) => format!(
                        "The {period} budget resets in {}; or ask your administrator to raise it.",
                        human_wait(ms)
                    ),
                    None => "Ask your administrator to raise it.".to_string(),
                };
                let mut err = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "insufficient_quota",
                    reason,
                    format!(
                        "Budget exceeded for {who}: the {period} budget is ${}, ${} is spent or \
                         reserved, and this request may cost up to ${}. {when}",
                        format_usd(h.limit),
                        format_usd(h.used),
                        format_usd(h.requested)
                    ),
                );
                if let Some(ms) = h.retry_after_ms {
                    err = err.with_retry_after(ms.div_ceil(1000).max(1));
                }
                err
            }
            GatewayError::LimiterUnavailable => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                SERVER,
                reason,
                "The gateway cannot check rate limits right now (its shared limiter is \
                 unreachable and it is configured to fail closed). Try again shortly."
                    .to_string(),
            )
            .with_retry_after(1),
        }
    }
}

fn allowed_method(path: &str) -> &'static str {
    if path.trim_end_matches('/').ends_with("/models") {
        "GET"
    } else {
        "POST"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_the_contract() {
        let cases: Vec<(GatewayError, u16)> = vec![
            (BodyError::Json("x".into()).into(), 400),
            (BodyError::MissingModel.into(), 400),
            (GatewayError::BodyTooLarge { limit: 10 }, 413),
            (
                RouteError::UnknownModel {
                    model: "m".into(),
                    available: "a".into(),
                }
                .into(),
                404,
            ),
            (
                GatewayError::UnknownPath {
                    method: "GET".into(),
                    path: "/x".into(),
                },
                404,
            ),
            (
                SchedulingError::NoEndpoints { pool: "p".into() }.into(),
                503,
            ),
            (
                GatewayError::UpstreamTimeout {
                    pool: "p".into(),
                    secs: 1,
                },
                504,
            ),
            (
                SchedulingError::Shed {
                    pool: "p".into(),
                    saturation: 1.2,
                    reserved: 0,
                }
                .into(),
                429,
            ),
            (
                SchedulingError::QueueFull {
                    pool: "p".into(),
                    priority: 0,
                    limit: "band",
                }
                .into(),
                429,
            ),
            (
                SchedulingError::QueueTimeout {
                    pool: "p".into(),
                    waited: std::time::Duration::from_secs(30),
                }
                .into(),
                503,
            ),
            (
                RouteError::RegionNotAllowed {
                    model: "m".into(),
                    allowed: "eu-*".into(),
                    regions: "us (us-east-1)".into(),
                }
                .into(),
                403,
            ),
            (
                GatewayError::MissingClientCredential {
                    backend: "b".into(),
                },
                401,
            ),
            (
                GatewayError::CircuitOpen {
                    upstream: "b".into(),
                    cooldown_secs: 3,
                },
                503,
            ),
            (
                GatewayError::BackendCredentials {
                    backend: "b".into(),
                    detail: "token endpoint down".into(),
                },
                502,
            ),
        ];
        for (e, status) in cases {
            let api = e.to_api();
            assert_eq!(api.status.as_u16(), status, "{e}");
            assert!(!api.message.is_empty());
        }
    }

    #[test]
    fn a_shed_request_is_told_why_and_when_to_retry() {
        let api = GatewayError::from(SchedulingError::Shed {
            pool: "llama".into(),
            saturation: 1.3,
            reserved: 0,
        })
        .to_api();
        assert_eq!(api.code, "pool_saturated");
        assert_eq!(api.retry_after, Some(1));
        assert!(api.message.contains("saturated") && api.message.contains("sheddable"));
        let api = GatewayError::from(SchedulingError::Shed {
            pool: "llama".into(),
            saturation: 1.3,
            reserved: 2,
        })
        .to_api();
        assert_eq!(api.code, "pool_saturated");
        assert!(
            api.message
                .contains("2 more are reserved for non-sheddable traffic")
                && api.message.contains("sheddable"),
            "{}",
            api.message
        );
        let api = GatewayError::from(SchedulingError::QueueTimeout {
            pool: "llama".into(),
            waited: std::time::Duration::from_secs(30),
        })
        .to_api();
        assert_eq!(api.code, "queue_timeout");
    }

    #[test]
    fn missing_model_names_the_param() {
        let api = GatewayError::from(BodyError::MissingModel).to_api();
        assert_eq!(api.param, Some("model"));
        assert_eq!(api.code, "missing_model");
    }
}
