//! Failure injection: random failures at `--failure-injection-rate`, and failures a test forces
//! with the `X-Return-Error` header.
//!
//! Owns the failure-type vocabulary (llm-d-inference-sim names) and what each looks like on the
//! wire. It decides only *whether and how* to fail; the error body itself is built in
//! [`crate::error`].

use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::rng::SimRng;

/// Request header forcing an error status.
pub const RETURN_ERROR_HEADER: &str = "x-return-error";
/// Request header making a streamed response abort after N tokens.
pub const FAIL_AFTER_TOKENS_HEADER: &str = "x-fail-after-tokens";

/// The injectable failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FailureType {
    /// 429.
    #[value(name = "rate_limit")]
    RateLimit,
    /// 401.
    #[value(name = "invalid_api_key")]
    InvalidApiKey,
    /// 400 with code `context_length_exceeded`.
    #[value(name = "context_length")]
    ContextLength,
    /// 503.
    #[value(name = "server_error")]
    ServerError,
    /// 400.
    #[value(name = "invalid_request")]
    InvalidRequest,
    /// 404 with code `model_not_found`.
    #[value(name = "model_not_found")]
    ModelNotFound,
}

impl FailureType {
    pub const ALL: [FailureType; 6] = [
        FailureType::RateLimit,
        FailureType::InvalidApiKey,
        FailureType::ContextLength,
        FailureType::ServerError,
        FailureType::InvalidRequest,
        FailureType::ModelNotFound,
    ];

    pub(crate) fn status(self) -> StatusCode {
        match self {
            FailureType::RateLimit => StatusCode::TOO_MANY_REQUESTS,
            FailureType::InvalidApiKey => StatusCode::UNAUTHORIZED,
            FailureType::ContextLength | FailureType::InvalidRequest => StatusCode::BAD_REQUEST,
            FailureType::ServerError => StatusCode::SERVICE_UNAVAILABLE,
            FailureType::ModelNotFound => StatusCode::NOT_FOUND,
        }
    }

    /// `(type, code, param)` of the error body.
    pub(crate) fn classify(self) -> (&'static str, Option<&'static str>, Option<&'static str>) {
        match self {
            FailureType::RateLimit => ("rate_limit_error", Some("rate_limit_exceeded"), None),
            FailureType::InvalidApiKey => ("authentication_error", Some("invalid_api_key"), None),
            FailureType::ContextLength => (
                "invalid_request_error",
                Some("context_length_exceeded"),
                Some("messages"),
            ),
            FailureType::ServerError => ("server_error", Some("service_unavailable"), None),
            FailureType::InvalidRequest => ("invalid_request_error", Some("invalid_request"), None),
            FailureType::ModelNotFound => (
                "invalid_request_error",
                Some("model_not_found"),
                Some("model"),
            ),
        }
    }

    fn error(self, model: &str) -> SimError {
        let message = match self {
            FailureType::RateLimit => format!("Rate limit reached for {model} (injected failure)."),
            FailureType::InvalidApiKey => "Incorrect API key provided (injected failure).".to_owned(),
            FailureType::ContextLength => {
                "This model's maximum context length was exceeded by the request (injected failure).".to_owned()
            }
            FailureType::ServerError => "The server is overloaded or not ready yet (injected failure).".to_owned(),
            FailureType::InvalidRequest => "Invalid request (injected failure).".to_owned(),
            FailureType::ModelNotFound => format!("The model `{model}-nonexistent` does not exist (injected failure)."),
        };
        SimError::Injected {
            failure: self,
            message,
        }
    }
}

/// The error forced by `X-Return-Error: <status>`, if the header is present.
pub(crate) fn forced_error(headers: &HeaderMap) -> Option<SimError> {
    let value = headers.get(RETURN_ERROR_HEADER)?;
    let parsed = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .filter(|s| s.is_client_error() || s.is_server_error());
    Some(match parsed {
        Some(status) => SimError::Forced(status),
        None => SimError::InvalidParam {
            message: format!("{RETURN_ERROR_HEADER} must be an HTTP error status between 400 and 599, got {value:?}"),
            param: RETURN_ERROR_HEADER,
        },
    })
}

/// Draws whether this request fails, given `rate` in percent and the allowed types
/// (empty = all types).
pub(crate) fn injected_failure(
    rng: &mut SimRng,
    rate: f64,
    types: &[FailureType],
    model: &str,
) -> Option<SimError> {
    if rate <= 0.0 || rng.unit() * 100.0 >= rate {
        return None;
    }
    let types = if types.is_empty() {
        &FailureType::ALL[..]
    } else {
        types
    };
    let pick = types[rng.below(types.len() as u64) as usize];
    Some(pick.error(model))
}

/// Parses `X-Fail-After-Tokens: N`.
pub(crate) fn fail_after_tokens(headers: &HeaderMap) -> Result<Option<u32>, SimError> {
    let Some(value) = headers.get(FAIL_AFTER_TOKENS_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .map(Some)
        .ok_or_else(|| SimError::InvalidParam {
            message: format!(
                "{FAIL_AFTER_TOKENS_HEADER} must be a non-negative integer, got {value:?}"
            ),
            param: FAIL_AFTER_TOKENS_HEADER,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn forced_error_reads_the_header() {
        let mut h = HeaderMap::new();
        assert!(forced_error(&h).is_none());
        h.insert(RETURN_ERROR_HEADER, HeaderValue::from_static("503"));
        assert_eq!(
            forced_error(&h).unwrap().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        h.insert(RETURN_ERROR_HEADER, HeaderValue::from_static("200"));
        assert_eq!(forced_error(&h).unwrap().status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn rate_zero_and_hundred() {
        let mut rng = SimRng::new(1);
        assert!((0..1000).all(|_| injected_failure(&mut rng, 0.0, &[], "m").is_none()));
        assert!((0..1000).all(|_| injected_failure(&mut rng, 100.0, &[], "m").is_some()));
    }

    #[test]
    fn rate_is_roughly_respected_and_types_restricted() {
        let mut rng = SimRng::new(2);
        let mut failures = 0;
        for _ in 0..10_000 {
            if let Some(e) = injected_failure(&mut rng, 30.0, &[FailureType::RateLimit], "m") {
                assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
                failures += 1;
            }
        }
        assert!((2_500..3_500).contains(&failures), "{failures}");
    }

    #[test]
    fn fail_after_tokens_parses() {
        let mut h = HeaderMap::new();
        assert_eq!(fail_after_tokens(&h).unwrap(), None);
        h.insert(FAIL_AFTER_TOKENS_HEADER, HeaderValue::from_static("3"));
        assert_eq!(fail_after_tokens(&h).unwrap(), Some(3));
        h.insert(FAIL_AFTER_TOKENS_HEADER, HeaderValue::from_static("x"));
        assert!(fail_after_tokens(&h).is_err());
    }
}
