//! The one place where a failure becomes what the client sees: an HTTP status, an OpenAI-style
//! error body whose message says what to change, and a stable reason used as a metric label.
//!
//! | status | when |
//! |---|---|
//! | 400 | malformed JSON, missing `model`, wrongly typed fields |
//! | 404 | unknown model, unknown path |
//! | 405 | known path, wrong method |
//! | 413 | body over `maxRequestBody` |
//! | 429 | the pool is saturated and the request is sheddable; the pool's queue is full |
//! | 502 | upstream refused, reset or broke the response |
//! | 503 | no endpoint can take the request; waited in the queue past its TTL |
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
    #[error("pool `{pool}` did not answer within {secs}s")]
    UpstreamTimeout { pool: String, secs: u64 },
    #[error("the upstream response from pool `{pool}` failed: {detail}")]
    UpstreamBroken { pool: String, detail: String },
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
            GatewayError::UnknownPath { .. } => "unknown_url",
            GatewayError::MethodNotAllowed { .. } => "method_not_allowed",
            GatewayError::Scheduling(SchedulingError::Shed { .. }) => "pool_saturated",
            GatewayError::Scheduling(SchedulingError::QueueFull { .. }) => "queue_full",
            GatewayError::Scheduling(SchedulingError::QueueTimeout { .. }) => "queue_timeout",
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
            GatewayError::Route(e) => {
                ApiError::new(StatusCode::NOT_FOUND, INVALID, reason, format!("{e}."))
                    .with_param("model")
            }
            GatewayError::UnknownPath { method, path } => ApiError::new(
                StatusCode::NOT_FOUND,
                INVALID,
                reason,
                format!(
                    "Invalid URL ({method} {path}). This gateway serves POST /v1/chat/completions, \
                     POST /v1/completions, POST /v1/embeddings and GET /v1/models."
                ),
            ),
            GatewayError::MethodNotAllowed { method, path } => ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                INVALID,
                reason,
                format!("{method} is not allowed on {path}; use {}.", allowed_method(path)),
            ),
            GatewayError::Scheduling(SchedulingError::Shed { pool, .. }) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                RATE_LIMIT,
                reason,
                format!(
                    "Pool `{pool}` is saturated and this request is sheddable (its priority is \
                     below 0), so it was not queued. Retry later, or send it with a non-negative \
                     priority (an InferenceObjective named in x-gateway-inference-objective)."
                ),
            )
            .with_retry_after(1),
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
                    "Pool `{pool}` did not start answering within {secs}s. Try again, or ask for \
                     fewer tokens."
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
                SchedulingError::Shed {
                    pool: "p".into(),
                    saturation: 1.2,
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
        })
        .to_api();
        assert_eq!(api.code, "pool_saturated");
        assert_eq!(api.retry_after, Some(1));
        assert!(api.message.contains("saturated") && api.message.contains("sheddable"));
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
