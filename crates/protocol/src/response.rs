//! Responses from OpenAI-compatible model servers: usage extraction and the model-name rewrite
//! back to what the client asked for, for whole bodies and for SSE events.
//!
//! Both paths parse the JSON once, borrowing, and splice the `model` value; nothing else in the
//! body is rebuilt.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::body::{json_string, splice};

/// Token usage as the upstream reported it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens served from the model server's prefix cache (OpenAI
    /// `prompt_tokens_details.cached_tokens`).
    pub cached_input_tokens: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

#[derive(Deserialize)]
struct UsageWire {
    #[serde(default, alias = "input_tokens")]
    prompt_tokens: u64,
    #[serde(default, alias = "output_tokens")]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<Details>,
}

#[derive(Deserialize)]
struct Details {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

fn parse_usage(raw: &RawValue) -> Option<Usage> {
    if raw.get() == "null" {
        return None;
    }
    let w: UsageWire = serde_json::from_str(raw.get()).ok()?;
    Some(Usage {
        input_tokens: w.prompt_tokens,
        output_tokens: w.completion_tokens,
        cached_input_tokens: w
            .prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0),
    })
}

#[derive(Deserialize)]
struct View<'a> {
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    usage: Option<&'a RawValue>,
    #[serde(borrow)]
    choices: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

/// Like `Option<&RawValue>` but a JSON `null` stays `Some("null")`, so its bytes can be found.
fn keep_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue as Deserialize<'de>>::deserialize(d).map(Some)
}

fn offset(base: &[u8], raw: &RawValue) -> std::ops::Range<usize> {
    let start = raw.get().as_ptr() as usize - base.as_ptr() as usize;
    start..start + raw.get().len()
}

/// A whole (non-streamed) JSON response, with the model rewritten when asked.
pub struct RewrittenBody {
    pub body: Bytes,
    pub usage: Option<Usage>,
    /// The model the upstream said served the request.
    pub served_model: Option<String>,
}

/// Rewrite `model` in a complete JSON response to `client_model` (when given) and read `usage`.
/// A body that is not JSON is passed through untouched.
pub fn rewrite_body(body: Bytes, client_model: Option<&str>) -> RewrittenBody {
    let Ok(view) = serde_json::from_slice::<View<'_>>(&body) else {
        return RewrittenBody {
            body,
            usage: None,
            served_model: None,
        };
    };
    let usage = view.usage.and_then(parse_usage);
    let served_model = view
        .model
        .and_then(|m| serde_json::from_str::<String>(m.get()).ok());
    let edit = match (client_model, view.model) {
        (Some(want), Some(m)) if served_model.as_deref() != Some(want) => {
            Some((offset(&body, m), json_string(want)))
        }
        _ => None,
    };
    let body = match edit {
        Some(e) => splice(&body, &mut [e]),
        None => body,
    };
    RewrittenBody {
        body,
        usage,
        served_model,
    }
}

/// What happened to one SSE event.
#[derive(Debug, PartialEq, Eq)]
pub enum EventOutcome {
    /// Forward these bytes (the original event, or a rewritten copy).
    Forward(Bytes),
    /// Drop the event: it was the usage-only chunk the client did not ask for.
    Drop,
}

/// Per-stream state for OpenAI-format SSE responses: rewrites `model`, learns usage, hides the
/// usage chunk the gateway (not the client) asked for, and notices `[DONE]` and error events.
#[derive(Debug)]
pub struct OpenAiStreamRewriter {
    client_model: Option<String>,
    hide_usage: bool,
    pub usage: Option<Usage>,
    pub done: bool,
    pub upstream_error: bool,
    pub events: u64,
}

impl OpenAiStreamRewriter {
    /// `client_model`: rewrite `model` to this name (None = leave it). `hide_usage`: the client
    /// did not ask for `include_usage`, so the final usage chunk and `"usage":null` are removed.
    pub fn new(client_model: Option<String>, hide_usage: bool) -> Self {
        Self {
            client_model,
            hide_usage,
            usage: None,
            done: false,
            upstream_error: false,
            events: 0,
        }
    }

    pub fn process(&mut self, event: &Bytes) -> EventOutcome {
        let Some(data) = crate::sse::event_data(event) else {
            return EventOutcome::Forward(event.clone());
        };
        if data.as_ref() == b"[DONE]" {
            self.done = true;
            return EventOutcome::Forward(event.clone());
        }
        self.events += 1;
        let data_start = match &data {
            std::borrow::Cow::Borrowed(d) => d.as_ptr() as usize - event.as_ptr() as usize,
            // Multi-line data cannot be spliced in place; pass it through.
            std::borrow::Cow::Owned(_) => return EventOutcome::Forward(event.clone()),
        };
        let Ok(view) = serde_json::from_slice::<View<'_>>(&data) else {
            return EventOutcome::Forward(event.clone());
        };
        if view.error.is_some() {
            self.upstream_error = true;
        }
        let mut usage_field = None;
        if let Some(u) = view.usage {
            if let Some(parsed) = parse_usage(u) {
                self.usage = Some(parsed);
                let no_choices = view.choices.is_none_or(|c| c.get() == "[]");
                if self.hide_usage && no_choices {
                    return EventOutcome::Drop;
                }
            } else if self.hide_usage {
                usage_field = Some(u);
            }
        }
        let mut edits = Vec::new();
        if let (Some(want), Some(m)) = (&self.client_model, view.model) {
            if m.get().len() != want.len() + 2 || &m.get()[1..m.get().len() - 1] != want {
                let r = offset(&data, m);
                edits.push((data_start + r.start..data_start + r.end, json_string(want)));
            }
        }
        if let Some(u) = usage_field {
            // Remove `,"usage":null` (or `"usage":null,`): find the key that precedes the value.
            let r = offset(&data, u);
            if let Some(range) = key_span(&data, r.start, r.end, b"usage") {
                edits.push((data_start + range.start..data_start + range.end, Vec::new()));
            }
        }
        if edits.is_empty() {
            return EventOutcome::Forward(event.clone());
        }
        EventOutcome::Forward(splice(event, &mut edits))
    }
}

/// The byte span of `"key":value` plus one adjacent comma, given the value's span, so that
/// removing it leaves valid JSON.
fn key_span(
    json: &[u8],
    value_start: usize,
    value_end: usize,
    key: &[u8],
) -> Option<std::ops::Range<usize>> {
    let before = &json[..value_start];
    let colon = before.iter().rposition(|b| !b.is_ascii_whitespace())?;
    if before[colon] != b':' {
        return None;
    }
    let key_end = before[..colon]
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())?
        + 1;
    let quoted_len = key.len() + 2;
    if key_end < quoted_len || &json[key_end - quoted_len + 1..key_end - 1] != key {
        return None;
    }
    let key_start = key_end - quoted_len;
    // Prefer eating the comma before the key; otherwise the one after the value.
    let prev = json[..key_start]
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())?;
    if json[prev] == b',' {
        return Some(prev..value_end);
    }
    let next = value_end
        + json[value_end..]
            .iter()
            .position(|b| !b.is_ascii_whitespace())?;
    if json[next] == b',' {
        return Some(key_start..next + 1);
    }
    Some(key_start..value_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_rewrite_and_usage() {
        let body = Bytes::from_static(
            br#"{"id":"x","model":"served","choices":[{"message":{"content":"the model said"}}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10,"prompt_tokens_details":{"cached_tokens":4}}}"#,
        );
        let out = rewrite_body(body, Some("asked"));
        let v: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(v["model"], "asked");
        assert_eq!(v["choices"][0]["message"]["content"], "the model said");
        assert_eq!(
            out.usage,
            Some(Usage {
                input_tokens: 7,
                output_tokens: 3,
                cached_input_tokens: 4
            })
        );
        assert_eq!(out.served_model.as_deref(), Some("served"));
    }

    #[test]
    fn body_that_is_not_json_passes() {
        let out = rewrite_body(Bytes::from_static(b"oops"), Some("a"));
        assert_eq!(out.body, Bytes::from_static(b"oops"));
        assert!(out.usage.is_none());
    }

    fn fwd(o: EventOutcome) -> String {
        match o {
            EventOutcome::Forward(b) => String::from_utf8(b.to_vec()).unwrap(),
            EventOutcome::Drop => "<drop>".into(),
        }
    }

    #[test]
    fn stream_rewrites_and_hides_usage() {
        let mut r = OpenAiStreamRewriter::new(Some("asked".into()), true);
        let out = fwd(r.process(&Bytes::from_static(
            b"data: {\"id\":\"c\",\"model\":\"served\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n",
        )));
        assert_eq!(
            out,
            "data: {\"id\":\"c\",\"model\":\"asked\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n"
        );
        let out = fwd(r.process(&Bytes::from_static(
            b"data: {\"id\":\"c\",\"model\":\"served\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n",
        )));
        assert_eq!(out, "<drop>");
        assert_eq!(r.usage.unwrap().total(), 7);
        let out = fwd(r.process(&Bytes::from_static(b"data: [DONE]\n\n")));
        assert_eq!(out, "data: [DONE]\n\n");
        assert!(r.done);
    }

    #[test]
    fn stream_keeps_usage_when_client_asked() {
        let mut r = OpenAiStreamRewriter::new(None, false);
        let ev = Bytes::from_static(
            b"data: {\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}\n\n",
        );
        assert_eq!(r.process(&ev), EventOutcome::Forward(ev));
        assert_eq!(r.usage.unwrap().output_tokens, 1);
    }

    #[test]
    fn usage_null_first_key_is_removed_cleanly() {
        let mut r = OpenAiStreamRewriter::new(None, true);
        let out = fwd(r.process(&Bytes::from_static(
            b"data: {\"usage\":null,\"model\":\"m\",\"choices\":[]}\n\n",
        )));
        assert_eq!(out, "data: {\"model\":\"m\",\"choices\":[]}\n\n");
    }

    #[test]
    fn error_events_are_noticed() {
        let mut r = OpenAiStreamRewriter::new(None, false);
        let _ = r.process(&Bytes::from_static(
            b"data: {\"error\":{\"message\":\"x\"}}\n\n",
        ));
        assert!(r.upstream_error);
    }
}
