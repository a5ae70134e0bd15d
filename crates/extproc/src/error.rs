//! The one place where an Endpoint Picker failure becomes what the client sees: an
//! `ImmediateResponse` with an HTTP status, an OpenAI-style body whose message says what to
//! change, and a stable reason (metric label).
//!
//! | status | when |
//! |---|---|
//! | 400 | body is not JSON, has no `model`, or a field has the wrong type |
//! | 404 | the model is not routed by the configuration |
//! | 413 | body larger than `GatewaySettings spec.maxRequestBody` |
//! | 429 | sheddable request (priority < 0) while the pool is saturated; the pool's queue is full |
//! | 500 | the proxy names a pool the picker does not know (a wiring mistake) |
//! | 503 | no endpoint can take the request (none listed, none in the subset hint); waited in the queue past its TTL |

use http::StatusCode;
use infergate_protocol::{ApiError, BodyError};

use infergate_scheduler::SchedulingError;

use crate::scheduling::PickError;

#[derive(Debug, thiserror::Error)]
pub enum EppError {
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error(transparent)]
    Pick(#[from] PickError),
}

const INVALID: &str = "invalid_request_error";
const SERVER: &str = "server_error";

impl EppError {
    /// Stable reason (metric label).
    pub fn reason(&self) -> &'static str {
        match self {
            EppError::Body(BodyError::Json(_) | BodyError::NotAnObject) => "invalid_json",
            EppError::Body(BodyError::MissingModel) => "missing_model",
            EppError::Body(BodyError::FieldType { .. }) => "invalid_field",
            EppError::BodyTooLarge { .. } => "request_too_large",
            EppError::Pick(PickError::UnknownModel(_)) => "model_not_found",
            EppError::Pick(PickError::UnknownPool { .. }) => "unknown_pool",
            EppError::Pick(PickError::NoEndpoint(_)) => "no_endpoint",
            EppError::Pick(PickError::Shed { .. }) => "shed",
            EppError::Pick(PickError::NoPool { .. }) => "no_pool",
            EppError::Pick(PickError::Queue(SchedulingError::QueueFull { .. })) => "queue_full",
            EppError::Pick(PickError::Queue(_)) => "queue_timeout",
        }
    }

    pub fn to_api(&self) -> ApiError {
        let reason = self.reason();
        match self {
            EppError::Body(e) => {
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
                        "You must provide a model parameter: add \"model\": \"<name>\" to the body."
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
            EppError::BodyTooLarge { limit } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                INVALID,
                reason,
                format!(
                    "The request body is larger than the endpoint picker accepts ({limit} bytes). \
                     Shorten the prompt, or raise GatewaySettings spec.maxRequestBody in the \
                     picker's configuration."
                ),
            ),
            EppError::Pick(PickError::UnknownModel(e)) => {
                ApiError::new(StatusCode::NOT_FOUND, INVALID, reason, format!("{e}."))
                    .with_param("model")
            }
            EppError::Pick(e @ PickError::UnknownPool { .. }) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                SERVER,
                reason,
                format!(
                    "{e}. The gateway's route and the endpoint picker's configuration disagree: \
                     add the InferencePool to the picker's configuration or fix the route's \
                     `x-infergate-pool` metadata."
                ),
            ),
            EppError::Pick(PickError::NoEndpoint(detail)) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                SERVER,
                reason,
                format!(
                    "No endpoint can serve this request ({detail}). Try again shortly; if it \
                     persists, check the pool's endpoints."
                ),
            )
            .with_retry_after(1),
            EppError::Pick(PickError::Shed { pool, priority }) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                reason,
                format!(
                    "Pool `{pool}` is saturated and this request is sheddable (priority \
                     {priority} < 0), so it was dropped. Retry later, or send it with a \
                     non-negative priority (x-gateway-inference-objective naming an \
                     InferenceObjective with priority >= 0)."
                ),
            )
            .with_retry_after(1),
            EppError::Pick(PickError::Queue(e)) if e.status() == 429 => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                reason,
                format!(
                    "{e}: the pool is saturated and this many requests already wait. Retry \
                     later, or raise the EndpointPickerConfig's flowControl limits."
                ),
            )
            .with_retry_after(1),
            EppError::Pick(PickError::Queue(e)) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                SERVER,
                reason,
                format!(
                    "{e}. Retry later; if it persists the pool needs more replicas (or a longer \
                     flowControl.defaultRequestTTL)."
                ),
            )
            .with_retry_after(1),
            EppError::Pick(e @ PickError::NoPool { .. }) => ApiError::new(
                StatusCode::BAD_REQUEST,
                INVALID,
                reason,
                format!(
                    "{e}. Send a JSON body with `model`, or name the pool for this route \
                     (`x-infergate-pool` gRPC metadata on the ext_proc filter)."
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use infergate_control::RouteError;

    #[test]
    fn statuses_match_the_protocol() {
        let cases: Vec<(EppError, u16)> = vec![
            (BodyError::MissingModel.into(), 400),
            (EppError::BodyTooLarge { limit: 1 }, 413),
            (
                PickError::UnknownModel(RouteError::UnknownModel {
                    model: "m".into(),
                    available: "a".into(),
                })
                .into(),
                404,
            ),
            (
                PickError::Shed {
                    pool: "p".into(),
                    priority: -1,
                }
                .into(),
                429,
            ),
            (PickError::NoEndpoint("x".into()).into(), 503),
        ];
        for (e, status) in cases {
            let api = e.to_api();
            assert_eq!(api.status.as_u16(), status, "{e}");
            let v: serde_json::Value = serde_json::from_slice(&api.body()).unwrap();
            assert!(v["error"]["message"].as_str().unwrap().len() > 20);
            assert_eq!(v["error"]["code"], e.reason());
        }
    }
}
