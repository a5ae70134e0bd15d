//! The request body, parsed once.
//!
//! [`RequestBody::parse`] makes one pass over the bytes with `serde_json`, keeping only the byte
//! ranges of the fields the gateway acts on (`model`, `stream`, `stream_options`, `max_tokens`,
//! the prompt) and validating the rest without building it. The raw bytes are kept; every rewrite
//! (a new model name, `stream_options.include_usage`) is a splice of byte ranges, never a
//! re-serialisation of the whole body — a 220 KB prompt costs one validation pass and one copy.
//!
//! This module must never allocate in proportion to the body except for the single output copy
//! that a splice makes.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

/// What kind of request the body is, from the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Chat,
    Completion,
    Embeddings,
}

impl Operation {
    /// The OpenTelemetry GenAI `gen_ai.operation.name`.
    pub fn as_genai(self) -> &'static str {
        match self {
            Operation::Chat => "chat",
            Operation::Completion => "text_completion",
            Operation::Embeddings => "embeddings",
        }
    }

    /// The upstream path for this operation.
    pub fn path(self) -> &'static str {
        match self {
            Operation::Chat => "/v1/chat/completions",
            Operation::Completion => "/v1/completions",
            Operation::Embeddings => "/v1/embeddings",
        }
    }

    pub fn from_path(path: &str) -> Option<Self> {
        match path.trim_end_matches('/') {
            "/v1/chat/completions" | "/chat/completions" => Some(Operation::Chat),
            "/v1/completions" | "/completions" => Some(Operation::Completion),
            "/v1/embeddings" | "/embeddings" => Some(Operation::Embeddings),
            _ => None,
        }
    }

    /// Whether the operation can stream tokens back.
    pub fn can_stream(self) -> bool {
        !matches!(self, Operation::Embeddings)
    }
}

/// Why a body was rejected. Messages say what to change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("the request body is not valid JSON: {0}")]
    Json(String),
    #[error("the request body must be a JSON object")]
    NotAnObject,
    #[error("the request body is missing the required field `model`")]
    MissingModel,
    #[error("the field `{field}` must be {expected}")]
    FieldType {
        field: &'static str,
        expected: &'static str,
    },
}

impl BodyError {
    /// The request field the error is about.
    pub fn param(&self) -> Option<&'static str> {
        match self {
            BodyError::MissingModel => Some("model"),
            BodyError::FieldType { field, .. } => Some(field),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct TopLevel<'a> {
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    #[serde(borrow)]
    stream: Option<&'a RawValue>,
    #[serde(borrow)]
    stream_options: Option<&'a RawValue>,
    #[serde(borrow)]
    max_tokens: Option<&'a RawValue>,
    #[serde(borrow)]
    max_completion_tokens: Option<&'a RawValue>,
    #[serde(borrow)]
    priority: Option<&'a RawValue>,
    #[serde(borrow)]
    messages: Option<&'a RawValue>,
    #[serde(borrow)]
    prompt: Option<&'a RawValue>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
}

/// A parsed request body: the raw bytes plus the ranges and values the gateway needs.
#[derive(Debug, Clone)]
pub struct RequestBody {
    bytes: Bytes,
    model: String,
    model_range: Range<usize>,
    stream: bool,
    include_usage: Option<bool>,
    stream_options_range: Option<Range<usize>>,
    max_tokens: Option<u64>,
    /// The client's own `priority` field (vLLM's engine priority), if any.
    priority_range: Option<Range<usize>>,
    messages: Option<Range<usize>>,
    prompt: Option<Range<usize>>,
    input: Option<Range<usize>>,
}

fn range_of(base: &[u8], raw: &RawValue) -> Range<usize> {
    // `raw` borrows from `base`, so its start lies inside it. Pointer arithmetic on addresses
    // (no dereference) recovers the offset without a second scan.
    let start = raw.get().as_ptr() as usize - base.as_ptr() as usize;
    start..start + raw.get().len()
}

fn parse_bool(raw: Option<&RawValue>, field: &'static str) -> Result<Option<bool>, BodyError> {
    match raw.map(RawValue::get) {
        None | Some("null") => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(BodyError::FieldType {
            field,
            expected: "a boolean",
        }),
    }
}

fn parse_u64(raw: Option<&RawValue>, field: &'static str) -> Result<Option<u64>, BodyError> {
    match raw.map(RawValue::get) {
        None | Some("null") => Ok(None),
        Some(s) => s
            .parse::<u64>()
            .map(Some)
            .map_err(|_| BodyError::FieldType {
                field,
                expected: "a non-negative integer",
            }),
    }
}

impl RequestBody {
    /// Parse and validate a body in one pass.
    pub fn parse(bytes: Bytes) -> Result<Self, BodyError> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            // Distinguish "not JSON at all" from "JSON but not an object".
            return match serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
                Ok(_) => Err(BodyError::NotAnObject),
                Err(e) => Err(BodyError::Json(e.to_string())),
            };
        }
        let top: TopLevel<'_> =
            serde_json::from_slice(&bytes).map_err(|e| BodyError::Json(e.to_string()))?;
        let base: &[u8] = &bytes;
        let model_raw = match top.model {
            Some(m) if m.get() != "null" => m,
            _ => return Err(BodyError::MissingModel),
        };
        let model: String =
            serde_json::from_str(model_raw.get()).map_err(|_| BodyError::FieldType {
                field: "model",
                expected: "a string",
            })?;
        if model.is_empty() {
            return Err(BodyError::MissingModel);
        }
        let stream = parse_bool(top.stream, "stream")?.unwrap_or(false);
        let mut include_usage = None;
        if let Some(so) = top.stream_options {
            if so.get() != "null" {
                #[derive(Deserialize)]
                struct StreamOptions {
                    include_usage: Option<bool>,
                }
                let parsed: StreamOptions =
                    serde_json::from_str(so.get()).map_err(|_| BodyError::FieldType {
                        field: "stream_options",
                        expected: "an object like {\"include_usage\": true}",
                    })?;
                include_usage = parsed.include_usage;
            }
        }
        let max_tokens = match parse_u64(top.max_completion_tokens, "max_completion_tokens")? {
            Some(v) => Some(v),
            None => parse_u64(top.max_tokens, "max_tokens")?,
        };
        Ok(Self {
            model,
            model_range: range_of(base, model_raw),
            stream,
            include_usage,
            stream_options_range: top
                .stream_options
                .filter(|r| r.get() != "null")
                .map(|r| range_of(base, r)),
            max_tokens,
            priority_range: top.priority.map(|r| range_of(base, r)),
            messages: top.messages.map(|r| range_of(base, r)),
            prompt: top.prompt.map(|r| range_of(base, r)),
            input: top.input.map(|r| range_of(base, r)),
            bytes,
        })
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn stream(&self) -> bool {
        self.stream
    }

    /// What the client asked for in `stream_options.include_usage`.
    pub fn client_wants_usage(&self) -> bool {
        self.include_usage == Some(true)
    }

    pub fn max_tokens(&self) -> Option<u64> {
        self.max_tokens
    }

    /// Whether the body carries a chat `messages` array (else `prompt` or `input`, if any).
    pub fn has_messages(&self) -> bool {
        self.messages.is_some()
    }

    /// Whether the body carries a completions `prompt`.
    pub fn has_prompt(&self) -> bool {
        self.prompt.is_some()
    }

    /// The raw JSON of `messages` (chat), `prompt` (completions) or `input` (embeddings): the
    /// bytes the prefix-cache hash and the token estimate are computed over.
    pub fn prompt_raw(&self) -> &[u8] {
        let r = self
            .messages
            .clone()
            .or_else(|| self.prompt.clone())
            .or_else(|| self.input.clone());
        r.map_or(&[][..], |r| &self.bytes[r])
    }

    /// The prompt as plain text: message contents (text parts) joined by newlines, or the
    /// prompt / input strings. Allocates; call it only when a stage needs text.
    pub fn prompt_text(&self) -> String {
        let raw = self.prompt_raw();
        if raw.is_empty() {
            return String::new();
        }
        let value: serde_json::Value = match serde_json::from_slice(raw) {
            Ok(v) => v,
            Err(_) => return String::new(),
        };
        let mut out = String::new();
        collect_text(&value, &mut out);
        out
    }

    /// Produce the body to send upstream: `model` replaced by `target_model` when it differs,
    /// and, for a stream, `stream_options.include_usage` forced on so the gateway learns usage.
    /// Only the touched byte ranges change.
    pub fn upstream_bytes(&self, target_model: &str) -> Bytes {
        self.upstream_bytes_with(target_model, None)
    }

    /// [`RequestBody::upstream_bytes`], and with `engine_priority` the body's top-level
    /// `priority` set to it (vLLM's request priority under `--scheduling-policy priority`:
    /// lower is served sooner) — replacing the client's own value if it sent one, since the
    /// gateway decides priority.
    pub fn upstream_bytes_with(&self, target_model: &str, engine_priority: Option<i64>) -> Bytes {
        let mut edits: Vec<(Range<usize>, Vec<u8>)> = Vec::with_capacity(3);
        if target_model != self.model {
            edits.push((self.model_range.clone(), json_string(target_model)));
        }
        if self.stream && self.include_usage != Some(true) {
            match &self.stream_options_range {
                Some(r) => {
                    let mut obj: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_slice(&self.bytes[r.clone()]).unwrap_or_default();
                    obj.insert("include_usage".into(), serde_json::Value::Bool(true));
                    let encoded = serde_json::to_vec(&obj).unwrap_or_default();
                    edits.push((r.clone(), encoded));
                }
                None => {
                    if let Some(close) = self.bytes.iter().rposition(|b| *b == b'}') {
                        edits.push((
                            close..close,
                            br#","stream_options":{"include_usage":true}"#.to_vec(),
                        ));
                    }
                }
            }
        }
        if let Some(p) = engine_priority {
            match &self.priority_range {
                Some(r) => edits.push((r.clone(), p.to_string().into_bytes())),
                None => {
                    if let Some(close) = self.bytes.iter().rposition(|b| *b == b'}') {
                        edits.push((close..close, format!(",\"priority\":{p}").into_bytes()));
                    }
                }
            }
        }
        if edits.is_empty() {
            return self.bytes.clone();
        }
        splice(&self.bytes, &mut edits)
    }
}

fn collect_text(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::String(s) => {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(s);
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_text(i, out)),
        serde_json::Value::Object(map) => {
            // chat message {role, content}; content part {type:"text", text}
            if let Some(c) = map.get("content") {
                collect_text(c, out);
            } else if let Some(t) = map.get("text") {
                collect_text(t, out);
            }
        }
        _ => {}
    }
}

/// Encode `s` as a JSON string literal.
pub fn json_string(s: &str) -> Vec<u8> {
    serde_json::to_vec(s).unwrap_or_else(|_| b"\"\"".to_vec())
}

/// Apply non-overlapping byte-range replacements in one copy.
pub fn splice(src: &[u8], edits: &mut [(Range<usize>, Vec<u8>)]) -> Bytes {
    edits.sort_by_key(|(r, _)| r.start);
    let grow: usize = edits.iter().map(|(_, b)| b.len()).sum();
    let mut out = BytesMut::with_capacity(src.len() + grow);
    let mut pos = 0;
    for (r, b) in edits.iter() {
        out.extend_from_slice(&src[pos..r.start]);
        out.extend_from_slice(b);
        pos = r.end;
    }
    out.extend_from_slice(&src[pos..]);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<RequestBody, BodyError> {
        RequestBody::parse(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn engine_priority_is_set_or_replaced_by_splicing() {
        let b = parse(r#"{"model":"m","stream":true,"messages":[]}"#).unwrap();
        let out = b.upstream_bytes_with("t", Some(-10));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["priority"], -10);
        assert_eq!(v["model"], "t");
        assert_eq!(v["stream_options"]["include_usage"], true);
        let own = parse(r#"{"model":"m","priority": 3 ,"prompt":"x"}"#).unwrap();
        let out = own.upstream_bytes_with("m", Some(1));
        assert_eq!(&out[..], br#"{"model":"m","priority": 1 ,"prompt":"x"}"#);
        assert_eq!(own.upstream_bytes_with("m", None), own.bytes().clone());
    }

    #[test]
    fn extracts_fields() {
        let b = parse(r#"{"model":"m1","stream":true,"max_tokens":12,"messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert_eq!(b.model(), "m1");
        assert!(b.stream());
        assert_eq!(b.max_tokens(), Some(12));
        assert_eq!(b.prompt_raw(), br#"[{"role":"user","content":"hi"}]"#);
        assert_eq!(b.prompt_text(), "hi");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(matches!(parse("{not json"), Err(BodyError::Json(_))));
        assert_eq!(parse("[1,2]").unwrap_err(), BodyError::NotAnObject);
        assert_eq!(
            parse(r#"{"messages":[]}"#).unwrap_err(),
            BodyError::MissingModel
        );
        assert_eq!(
            parse(r#"{"model":""}"#).unwrap_err(),
            BodyError::MissingModel
        );
        assert!(matches!(
            parse(r#"{"model":5}"#),
            Err(BodyError::FieldType { field: "model", .. })
        ));
        assert!(matches!(
            parse(r#"{"model":"a","stream":"yes"}"#),
            Err(BodyError::FieldType {
                field: "stream",
                ..
            })
        ));
        assert!(matches!(
            parse(r#"{"model":"a","max_tokens":-1}"#),
            Err(BodyError::FieldType {
                field: "max_tokens",
                ..
            })
        ));
        // Trailing garbage after the object is malformed JSON too.
        assert!(matches!(
            parse(r#"{"model":"a"} x"#),
            Err(BodyError::Json(_))
        ));
    }

    #[test]
    fn rewrite_model_splices_only_that_field() {
        let src = r#"{ "model" : "public\u0041", "temperature": 0.5, "messages": [] }"#;
        let b = parse(src).unwrap();
        assert_eq!(b.model(), "publicA");
        let out = b.upstream_bytes("target/x");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{ "model" : "target/x", "temperature": 0.5, "messages": [] }"#
        );
        // Same model: the very same bytes come back.
        assert_eq!(
            b.upstream_bytes("publicA"),
            Bytes::copy_from_slice(src.as_bytes())
        );
    }

    #[test]
    fn stream_gets_include_usage() {
        let b = parse(r#"{"model":"m","stream":true}"#).unwrap();
        let out = b.upstream_bytes("m");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert!(!b.client_wants_usage());

        let b =
            parse(r#"{"model":"m","stream":true,"stream_options":{"include_usage":false,"x":1}}"#)
                .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&b.upstream_bytes("t")).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["stream_options"]["x"], 1);
        assert_eq!(v["model"], "t");

        let b = parse(r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#)
            .unwrap();
        assert!(b.client_wants_usage());
        assert_eq!(b.upstream_bytes("m"), b.bytes().clone());
    }

    #[test]
    fn non_stream_body_is_untouched() {
        let b = parse(r#"{"model":"m","prompt":"abc"}"#).unwrap();
        assert_eq!(b.upstream_bytes("m"), b.bytes().clone());
        assert_eq!(b.prompt_text(), "abc");
    }

    #[test]
    fn large_prompt_round_trips() {
        let big = "x".repeat(220 * 1024);
        let src = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{big}"}}]}}"#);
        let b = parse(&src).unwrap();
        let out = b.upstream_bytes("other");
        assert_eq!(out.len(), src.len() + 4);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "other");
    }

    proptest::proptest! {
        #[test]
        fn splice_of_any_model_name_stays_valid_json(name in "\\PC{0,40}", target in "\\PC{1,40}") {
            let src = serde_json::json!({"model": name, "stream": true, "messages": [{"role":"user","content":"q"}]}).to_string();
            if let Ok(b) = parse(&src) {
                let out = b.upstream_bytes(&target);
                let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
                proptest::prop_assert_eq!(v["model"].as_str().unwrap(), target.as_str());
                proptest::prop_assert_eq!(v["stream_options"]["include_usage"].as_bool(), Some(true));
            }
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = RequestBody::parse(Bytes::from(bytes));
        }
    }
}
