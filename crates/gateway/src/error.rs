//! The one place where a failure becomes what the client sees: an HTTP status, an OpenAI-style
//! error body whose message says what to change, and a stable reason used as a metric label.
//!
//! | status | when |
//! |---|---|
//! | 400 | malformed JSON, missing `model`, wrongly typed fields, a request a backend's provider cannot express |
//! | 401 | a pass-through backend and no caller credential |
//! | 403 | no target in the regions the request may use |
//! | 404 | unknown model, unknown path |
//! | 405 | known path, wrong method |
//! | 413 | body over `maxRequestBody` |
//! | 502 | upstream refused, reset or broke the response; the gateway's backend credential failed |
//! | 503 | no endpoint can take the request; every target's circuit is open |
//! | 504 | upstream did not answer in time |

use http::StatusCode;
use infergate_control::RouteError;
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
}

const INVALID: &str = "invalid_request_error";
const SERVER: &str = "server_error";

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
            GatewayError::Scheduling(_) | GatewayError::PoolMissing(_) => "no_endpoint",
            GatewayError::UpstreamConnect { .. } => "upstream_connect_error",
            GatewayError::UpstreamTimeout { .. } => "upstream_timeout",
            GatewayError::UpstreamBroken { .. } => "upstream_error",
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
            GatewayError::UpstreamBroken { pool, detail } => ApiError::new(
                StatusCode::BAD_GATEWAY,
                SERVER,
                reason,
                format!(
                    "The response from pool `{pool}` broke off ({detail}); the answer is incomplete. \
                     Retry the request."
                ),
            ),
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
    fn missing_model_names_the_param() {
        let api = GatewayError::from(BodyError::MissingModel).to_api();
        assert_eq!(api.param, Some("model"));
        assert_eq!(api.code, "missing_model");
    }
}
