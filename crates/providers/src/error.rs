//! Failures: what a translation can reject, and what a provider's error answer means for
//! failover (classification) and for the client (an OpenAI error body).

use bytes::Bytes;
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    #[error("the model name `{model}` cannot be sent to this provider: {why}")]
    InvalidModelName { model: String, why: String },
    #[error("the request body is not a valid chat request: {0}")]
    InvalidRequest(String),
    #[error("{provider} does not serve {operation}")]
    Unsupported {
        provider: &'static str,
        operation: &'static str,
    },
    #[error("the provider's answer could not be read: {0}")]
    InvalidResponse(String),
}

/// What a non-success upstream answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// 429: try another target (with or without rate-limit headers).
    RateLimited,
    /// 5xx, 529 (overloaded), 408: try another target.
    Unavailable,
    /// The prompt does not fit the model's context window: try a larger-context target.
    ContextLength,
    /// 401/403: the gateway's credentials were refused. Not the client's fault; try another
    /// target, and tell the operator.
    Credentials,
    /// Anything else the client must see (400, 404, 422 …).
    Client,
}

impl ErrorClass {
    /// Whether another target may serve the request.
    pub fn fails_over(self) -> bool {
        !matches!(self, ErrorClass::Client)
    }
}

const CONTEXT_MARKERS: &[&str] = &[
    "context_length_exceeded",
    "maximum context length",
    "context length",
    "context window",
    "prompt is too long",
    "input is too long",
    "too many input tokens",
    "exceeds the maximum number of tokens",
    "input token count",
    "too many tokens",
];

/// Classify by status, and for 400/413/422 by the body's wording (providers say "context
/// length" in many ways; see `CONTEXT_MARKERS`).
pub fn classify_error(status: u16, body: &[u8]) -> ErrorClass {
    match status {
        429 => ErrorClass::RateLimited,
        408 | 500..=599 => ErrorClass::Unavailable,
        401 | 403 => ErrorClass::Credentials,
        400 | 413 | 422 => {
            let text = String::from_utf8_lossy(&body[..body.len().min(8192)]).to_ascii_lowercase();
            if CONTEXT_MARKERS.iter().any(|m| text.contains(m)) {
                ErrorClass::ContextLength
            } else {
                ErrorClass::Client
            }
        }
        _ => ErrorClass::Client,
    }
}

/// The message of a provider error body, whichever provider's shape it has: OpenAI and Gemini
/// `{"error":{"message"}}`, Anthropic `{"type":"error","error":{"message"}}`, Bedrock
/// `{"message"}` / `{"Message"}`.
pub fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let m = v
        .pointer("/error/message")
        .or_else(|| v.get("message"))
        .or_else(|| v.get("Message"))
        .or_else(|| v.get("error").filter(|e| e.is_string()))?;
    m.as_str().map(str::to_string)
}

/// OpenAI `type` for a status.
pub fn openai_error_type(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        _ => "server_error",
    }
}

/// A provider's error answer as an OpenAI error body. A body that is already OpenAI-shaped is
/// kept as is.
pub fn openai_error_body(status: u16, body: &[u8]) -> Bytes {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if v.pointer("/error/message").is_some()
            && v.get("type").is_none()
            && v.pointer("/error/status").is_none()
        {
            return Bytes::copy_from_slice(body);
        }
    }
    let message = error_message(body).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&body[..body.len().min(512)])
            .trim()
            .to_string();
        if text.is_empty() {
            format!("the provider answered {status}")
        } else {
            text
        }
    });
    let code = match classify_error(status, body) {
        ErrorClass::ContextLength => Value::from("context_length_exceeded"),
        ErrorClass::RateLimited => Value::from("rate_limit_exceeded"),
        _ => Value::Null,
    };
    let out = json!({"error": {
        "message": message,
        "type": openai_error_type(status),
        "param": null,
        "code": code,
    }});
    Bytes::from(serde_json::to_vec(&out).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(classify_error(429, b""), ErrorClass::RateLimited);
        assert_eq!(classify_error(529, b""), ErrorClass::Unavailable);
        assert_eq!(classify_error(503, b""), ErrorClass::Unavailable);
        assert_eq!(
            classify_error(400, br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 250000 tokens > 200000 maximum"}}"#),
            ErrorClass::ContextLength
        );
        assert_eq!(
            classify_error(400, br#"{"error":{"message":"This model's maximum context length is 8192 tokens","code":"context_length_exceeded"}}"#),
            ErrorClass::ContextLength
        );
        assert_eq!(
            classify_error(400, br#"{"error":{"message":"bad temperature"}}"#),
            ErrorClass::Client
        );
        assert_eq!(classify_error(401, b""), ErrorClass::Credentials);
    }

    #[test]
    fn bodies() {
        let b = openai_error_body(
            400,
            br#"{"message":"Input is too long for requested model."}"#,
        );
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error"]["code"], "context_length_exceeded");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let b = openai_error_body(429, br#"{"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED"}}"#);
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error"]["message"], "Resource exhausted");
        assert_eq!(v["error"]["type"], "rate_limit_error");
    }
}
