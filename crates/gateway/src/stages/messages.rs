//! The Anthropic Messages API as a client-facing format (`POST /v1/messages`): the request is
//! turned into an OpenAI chat request on the way in (parse), and the answer — whole, streamed or
//! an error — back into Messages on the way out (respond). Between the two the request is routed
//! like any other, so an Anthropic SDK reaches any pool or backend.

use bytes::Bytes;
use http::StatusCode;
use infergate_protocol::ApiError;
use infergate_providers::anthropic;

use crate::error::GatewayError;

/// parse: a Messages body → the OpenAI chat body the rest of the pipeline reads.
pub fn request_to_openai(raw: &[u8]) -> Result<Bytes, GatewayError> {
    anthropic::openai_body_from_messages(raw)
        .map_err(|e| GatewayError::MessagesRequest(e.to_string()))
}

/// respond: an OpenAI answer (or OpenAI error body) → the Messages answer (or error).
pub fn response_from_openai(status: StatusCode, body: &Bytes) -> Bytes {
    if status.is_success() {
        return anthropic::messages_body_from_openai(body).unwrap_or_else(|e| {
            anthropic::error_body(
                502,
                &format!("the upstream answer could not be translated: {e}"),
            )
        });
    }
    let message = infergate_providers::error::error_message(body)
        .unwrap_or_else(|| format!("the upstream answered {}", status.as_u16()));
    anthropic::error_body(status.as_u16(), &message)
}

/// A gateway error in the Messages error shape.
pub fn error_body(e: &ApiError) -> Bytes {
    anthropic::error_body(e.status.as_u16(), &e.message)
}

/// A terminal `event: error` for a Messages stream that already started.
pub fn error_event(e: &ApiError) -> Bytes {
    anthropic::error_event(e.status.as_u16(), &e.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_messages_body_is_a_400_that_says_what_to_send() {
        let e = request_to_openai(br#"{"model":"m","messages":"hi"}"#).unwrap_err();
        let api = e.to_api();
        assert_eq!(api.status, StatusCode::BAD_REQUEST);
        assert!(api.message.contains("max_tokens"), "{}", api.message);
    }

    #[test]
    fn upstream_errors_keep_their_status_and_message() {
        let b = response_from_openai(
            StatusCode::TOO_MANY_REQUESTS,
            &Bytes::from_static(br#"{"error":{"message":"slow down","type":"rate_limit_error"}}"#),
        );
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["message"], "slow down");
    }
}
