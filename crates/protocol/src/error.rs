//! The client-facing error: an HTTP status plus the OpenAI error body
//! `{"error":{"message","type","param","code"}}`.
//!
//! Every failure that reaches a client is turned into an [`ApiError`] in exactly one place
//! (the gateway's `error` module); this type only knows how to carry and encode it.

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;

/// One error as a client sees it. `code` is stable and doubles as a metric label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// OpenAI `type`: `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `not_found_error`, `rate_limit_error`, `server_error`, ...
    pub kind: &'static str,
    /// Stable machine-readable reason, e.g. `model_not_found`.
    pub code: &'static str,
    /// Human message that says what to change.
    pub message: String,
    /// The request field the error is about, when there is one.
    pub param: Option<&'static str>,
    /// Seconds the client should wait before retrying (sets `Retry-After`).
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: &'a str,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            code,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    #[must_use]
    pub fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    #[must_use]
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The JSON body, `{"error":{...}}`.
    pub fn body(&self) -> Bytes {
        let env = Envelope {
            error: Inner {
                message: &self.message,
                kind: self.kind,
                param: self.param,
                code: self.code,
            },
        };
        // Serialising a struct of strings cannot fail.
        Bytes::from(serde_json::to_vec(&env).unwrap_or_default())
    }

    /// The same error as one terminal SSE event, for streams that already started.
    pub fn sse_event(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.message.len() + 96);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&self.body());
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_openai_shape() {
        let e = ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            "The model `x` does not exist",
        )
        .with_param("model");
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(v["error"]["message"], "The model `x` does not exist");
    }

    #[test]
    fn sse_event_is_one_data_line() {
        let e = ApiError::new(
            StatusCode::BAD_GATEWAY,
            "server_error",
            "upstream_stream_error",
            "cut",
        );
        let ev = e.sse_event();
        assert!(ev.starts_with(b"data: {\"error\":"));
        assert!(ev.ends_with(b"\n\n"));
    }
}
