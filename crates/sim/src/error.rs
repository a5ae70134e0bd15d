//! Every error the simulator sends to a client, and the one place that maps each to an HTTP
//! status and an OpenAI-style body `{"error":{"message","type","param","code"}}`.
//!
//! Handlers return [`SimError`]; nothing else in the crate builds an error response by hand.

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;

use crate::failure::FailureType;

/// An error answered to the client.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SimError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{message}")]
    InvalidParam {
        message: String,
        param: &'static str,
    },
    #[error(
        "This model's maximum context length is {max_model_len} tokens. However, you requested {requested} tokens \
         ({prompt_tokens} in the messages, {completion_tokens} in the completion). Please reduce the length of the \
         messages or completion."
    )]
    ContextLength {
        max_model_len: u32,
        requested: u64,
        prompt_tokens: usize,
        completion_tokens: u64,
        param: &'static str,
    },
    #[error("The model `{0}` does not exist.")]
    ModelNotFound(String),
    #[error("Request body is larger than the {limit_mb} MB limit (--max-request-body-size-mb).")]
    BodyTooLarge { limit_mb: usize },
    #[error("The server is overloaded: the waiting queue is full ({limit} requests, --max-waiting-queue-length). Retry later.")]
    QueueFull { limit: usize },
    #[error(
        "The model server is starting up (--startup-duration); retry when /health returns 200."
    )]
    NotReady,
    #[error("Not Found: {0}")]
    RouteNotFound(String),
    #[error("Method {method} is not allowed on {path}.")]
    MethodNotAllowed { method: String, path: String },
    #[error("{message}")]
    Injected {
        failure: FailureType,
        message: String,
    },
    #[error("Error forced by the X-Return-Error header (status {0}).")]
    Forced(StatusCode),
    #[error("The lora adapter '{0}' has already been loaded.")]
    LoraAlreadyLoaded(String),
    #[error("The lora adapter '{0}' cannot be found.")]
    LoraNotFound(String),
    #[error(
        "Cannot load lora adapter '{name}': {max} adapters are already loaded (--max-cpu-loras)."
    )]
    LoraLimit { name: String, max: usize },
    #[error("{0}")]
    InvalidConfig(String),
    #[error("The replica is shutting down: {0}")]
    ShuttingDown(String),
    #[error("Internal simulator error: {0}")]
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl SimError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            SimError::InvalidRequest(_)
            | SimError::InvalidParam { .. }
            | SimError::ContextLength { .. }
            | SimError::LoraAlreadyLoaded(_)
            | SimError::LoraLimit { .. }
            | SimError::InvalidConfig(_) => StatusCode::BAD_REQUEST,
            SimError::ModelNotFound(_) | SimError::RouteNotFound(_) | SimError::LoraNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            SimError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            SimError::QueueFull { .. } => StatusCode::TOO_MANY_REQUESTS,
            SimError::NotReady | SimError::ShuttingDown(_) => StatusCode::SERVICE_UNAVAILABLE,
            SimError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            SimError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            SimError::Injected { failure, .. } => failure.status(),
            SimError::Forced(status) => *status,
        }
    }

    /// `(type, code, param)` of the OpenAI error body.
    fn classify(&self) -> (&'static str, Option<&'static str>, Option<&'static str>) {
        match self {
            SimError::InvalidRequest(_) | SimError::InvalidConfig(_) => {
                ("invalid_request_error", None, None)
            }
            SimError::InvalidParam { param, .. } => ("invalid_request_error", None, Some(param)),
            SimError::ContextLength { param, .. } => (
                "invalid_request_error",
                Some("context_length_exceeded"),
                Some(param),
            ),
            SimError::ModelNotFound(_) => (
                "invalid_request_error",
                Some("model_not_found"),
                Some("model"),
            ),
            SimError::BodyTooLarge { .. } => {
                ("invalid_request_error", Some("request_too_large"), None)
            }
            SimError::QueueFull { .. } => ("rate_limit_error", Some("rate_limit_exceeded"), None),
            SimError::NotReady | SimError::ShuttingDown(_) => {
                ("server_error", Some("service_unavailable"), None)
            }
            SimError::Internal(_) => ("server_error", None, None),
            SimError::RouteNotFound(_) => ("invalid_request_error", Some("not_found"), None),
            SimError::MethodNotAllowed { .. } => {
                ("invalid_request_error", Some("method_not_allowed"), None)
            }
            SimError::Injected { failure, .. } => failure.classify(),
            SimError::Forced(status) => classify_status(*status),
            SimError::LoraAlreadyLoaded(_) | SimError::LoraLimit { .. } => {
                ("invalid_request_error", None, Some("lora_name"))
            }
            SimError::LoraNotFound(_) => (
                "invalid_request_error",
                Some("not_found"),
                Some("lora_name"),
            ),
        }
    }

    /// Whether the client should be told when to retry.
    pub(crate) fn retry_after(&self) -> bool {
        self.status() == StatusCode::TOO_MANY_REQUESTS
            || self.status() == StatusCode::SERVICE_UNAVAILABLE
    }

    /// The JSON error body.
    pub(crate) fn body(&self) -> Bytes {
        let message = self.to_string();
        let (kind, code, param) = self.classify();
        let body = ErrorBody {
            error: ErrorDetail {
                message: &message,
                kind,
                param,
                code,
            },
        };
        // Serialising plain strings cannot fail; fall back to an empty object rather than panic.
        Bytes::from(serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec()))
    }
}

/// `(type, code, param)` for an arbitrary status forced through `X-Return-Error`.
pub(crate) fn classify_status(
    status: StatusCode,
) -> (&'static str, Option<&'static str>, Option<&'static str>) {
    match status.as_u16() {
        401 => ("authentication_error", Some("invalid_api_key"), None),
        403 => ("permission_error", Some("permission_denied"), None),
        404 => (
            "invalid_request_error",
            Some("model_not_found"),
            Some("model"),
        ),
        413 => ("invalid_request_error", Some("request_too_large"), None),
        429 => ("rate_limit_error", Some("rate_limit_exceeded"), None),
        400..=499 => ("invalid_request_error", None, None),
        _ => ("server_error", None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(e: &SimError) -> serde_json::Value {
        serde_json::from_slice(&e.body()).unwrap()
    }

    #[test]
    fn context_length_body_matches_openai() {
        let e = SimError::ContextLength {
            max_model_len: 100,
            requested: 150,
            prompt_tokens: 50,
            completion_tokens: 100,
            param: "messages",
        };
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let v = json(&e);
        assert_eq!(v["error"]["code"], "context_length_exceeded");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "messages");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maximum context length is 100 tokens"));
    }

    #[test]
    fn model_not_found_is_404_with_code() {
        let e = SimError::ModelNotFound("nope".into());
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        let v = json(&e);
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["param"], "model");
    }

    #[test]
    fn every_body_has_all_four_fields() {
        for e in [
            SimError::InvalidRequest("x".into()),
            SimError::QueueFull { limit: 3 },
            SimError::Forced(StatusCode::BAD_GATEWAY),
            SimError::BodyTooLarge { limit_mb: 1 },
        ] {
            let v = json(&e);
            let obj = v["error"].as_object().unwrap();
            for key in ["message", "type", "param", "code"] {
                assert!(obj.contains_key(key), "{key} missing in {v}");
            }
        }
        assert!(SimError::QueueFull { limit: 3 }.retry_after());
        assert!(!SimError::InvalidRequest("x".into()).retry_after());
    }
}
