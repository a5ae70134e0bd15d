//! Model names go into URL paths (`/model/{id}/converse`, `.../models/{model}:generateContent`,
//! `/openai/deployments/{name}/…`); a name from configuration or a header must not be able to
//! change the path. Validation is strict; the few characters providers use beyond letters and
//! digits are percent-encoded where the path needs it.

use crate::error::TranslateError;

/// Accept `[A-Za-z0-9._:@+-]` and `/` (Bedrock ARNs, Vertex publisher paths), at most 256
/// characters, no empty, `.` or `..` segment, no leading or trailing `/`.
pub fn validate_model_name(name: &str) -> Result<(), TranslateError> {
    let bad = |why: &str| TranslateError::InvalidModelName {
        model: name.chars().take(80).collect(),
        why: why.to_string(),
    };
    if name.is_empty() || name.len() > 256 {
        return Err(bad("it must be 1 to 256 characters long"));
    }
    if let Some(c) = name.chars().find(|c| {
        !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '+' | '-' | '/'))
    }) {
        return Err(bad(&format!(
            "it contains `{}`; use letters, digits and . _ : @ + - /",
            c.escape_default()
        )));
    }
    if name
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(bad("it has an empty, `.` or `..` path segment"));
    }
    Ok(())
}

/// Percent-encode a validated model name as one path segment (`/` and `:` encoded).
pub fn path_segment(name: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'.')
        .remove(b'_')
        .remove(b'-');
    percent_encoding::utf8_percent_encode(name, SET).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_names() {
        for n in [
            "gpt-4o",
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
            "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-3-haiku-20240307-v1:0",
            "gemini-1.5-pro-002",
            "meta-llama/Llama-3.1-8B-Instruct",
            "claude-sonnet-4@20250514",
        ] {
            validate_model_name(n).unwrap();
        }
    }

    #[test]
    fn rejects_path_tricks() {
        for n in [
            "", "../admin", "a/../b", "a?b", "a#b", "a b", "/abs", "a/", "x%2e", "a\nb",
        ] {
            assert!(validate_model_name(n).is_err(), "{n:?}");
        }
    }

    #[test]
    fn segment_encoding() {
        assert_eq!(
            path_segment("anthropic.claude-v2:1"),
            "anthropic.claude-v2%3A1"
        );
        assert_eq!(path_segment("a/b"), "a%2Fb");
    }
}
