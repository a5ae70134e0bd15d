//! The texts of a request the payload stages read — each message's content (string or text
//! parts), or the completion prompt — with the byte range of each JSON string in the body, so a
//! stage that changes a text (redaction, retrieval context) splices that string and nothing else.
//!
//! Parsed lazily, only when a payload stage is configured for the request; a request without
//! guardrails, cache, routing or retrieval never pays for it.

use std::ops::Range;

use bytes::Bytes;
use infergate_protocol::body::{json_string, splice};
use infergate_protocol::{Operation, RequestBody};
use serde::Deserialize;
use serde_json::value::RawValue;

/// One text of the prompt.
#[derive(Debug, Clone)]
pub struct Segment {
    /// `system`, `user`, `assistant`, `tool`, ... (`user` for completion prompts).
    pub role: String,
    /// Index of the message (0 for a completion prompt).
    pub message: usize,
    /// Byte range of the JSON string literal in the body.
    pub range: Range<usize>,
    /// The decoded text.
    pub text: String,
}

/// The prompt's texts and where they sit in the body.
#[derive(Debug, Clone, Default)]
pub struct PromptView {
    pub segments: Vec<Segment>,
    pub messages: usize,
    /// Byte range of the `messages` array (chat), for inserting a message.
    pub messages_range: Option<Range<usize>>,
    /// Raw bytes of each message (chat), for fingerprints.
    pub message_ranges: Vec<Range<usize>>,
    /// Index of the last user message.
    pub last_user: Option<usize>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(default)]
    role: Option<String>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
}

fn offset(base: &[u8], raw: &RawValue) -> Range<usize> {
    let start = raw.get().as_ptr() as usize - base.as_ptr() as usize;
    start..start + raw.get().len()
}

fn sub_offset(base: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - base.as_ptr() as usize
}

impl PromptView {
    pub fn parse(op: Operation, body: &RequestBody) -> Self {
        let base: &[u8] = body.bytes();
        let raw = body.prompt_raw();
        if raw.is_empty() {
            return Self::default();
        }
        let raw_start = sub_offset(base, raw);
        let Ok(raw_str) = std::str::from_utf8(raw) else {
            return Self::default();
        };
        let mut view = PromptView::default();
        let string_seg = |role: &str, message: usize, r: &RawValue| -> Option<Segment> {
            let text: String = serde_json::from_str(r.get()).ok()?;
            let range = offset(base, r);
            Some(Segment {
                role: role.to_string(),
                message,
                range,
                text,
            })
        };
        match op {
            Operation::Chat => {
                let Ok(msgs) = serde_json::from_str::<Vec<&RawValue>>(raw_str) else {
                    return view;
                };
                view.messages_range = Some(raw_start..raw_start + raw.len());
                view.messages = msgs.len();
                for (i, m) in msgs.iter().enumerate() {
                    view.message_ranges.push(offset(base, m));
                    let Ok(msg) = serde_json::from_str::<Message<'_>>(m.get()) else {
                        continue;
                    };
                    let role = msg.role.unwrap_or_default();
                    if role == "user" {
                        view.last_user = Some(i);
                    }
                    let Some(content) = msg.content else { continue };
                    if content.get().starts_with('"') {
                        view.segments.extend(string_seg(&role, i, content));
                    } else if content.get().starts_with('[') {
                        if let Ok(parts) = serde_json::from_str::<Vec<Part<'_>>>(content.get()) {
                            for p in parts {
                                if p.kind.as_deref().is_none_or(|k| k == "text") {
                                    if let Some(t) = p.text {
                                        view.segments.extend(string_seg(&role, i, t));
                                    }
                                }
                            }
                        }
                    }
                }
            }
            Operation::Completion => {
                if raw_str.starts_with('"') {
                    if let Ok(r) = serde_json::from_str::<&RawValue>(raw_str) {
                        view.segments.extend(string_seg("user", 0, r));
                    }
                } else if let Ok(list) = serde_json::from_str::<Vec<&RawValue>>(raw_str) {
                    for r in list {
                        if r.get().starts_with('"') {
                            view.segments.extend(string_seg("user", 0, r));
                        }
                    }
                }
                view.messages = 1;
                view.last_user = Some(0);
            }
            Operation::Embeddings => {}
        }
        view
    }

    /// The text the semantic features embed: the last user message (all its text parts).
    pub fn query_text(&self) -> Option<String> {
        let last = self.last_user?;
        let parts: Vec<&str> = self
            .segments
            .iter()
            .filter(|s| s.message == last && s.role == "user")
            .map(|s| s.text.as_str())
            .collect();
        (!parts.is_empty()).then(|| parts.join("\n"))
    }

    pub fn total_chars(&self) -> usize {
        self.segments.iter().map(|s| s.text.chars().count()).sum()
    }
}

/// Replace segments' texts (index into `view.segments`, new text) in one splice.
pub fn replace_segments(body: &Bytes, view: &PromptView, new_texts: &[(usize, String)]) -> Bytes {
    let mut edits: Vec<(Range<usize>, Vec<u8>)> = new_texts
        .iter()
        .filter_map(|(i, t)| {
            view.segments
                .get(*i)
                .map(|s| (s.range.clone(), json_string(t)))
        })
        .collect();
    splice(body, &mut edits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(s: &str) -> RequestBody {
        RequestBody::parse(Bytes::copy_from_slice(s.as_bytes())).unwrap()
    }

    #[test]
    fn chat_segments_with_ranges() {
        let src = r#"{"model":"m","messages":[{"role":"system","content":"Be brief"},{"role":"user","content":[{"type":"text","text":"hi \"you\""},{"type":"image_url","image_url":{}}]},{"role":"assistant","content":"yo"},{"role":"user","content":"last one"}]}"#;
        let b = body(src);
        let v = PromptView::parse(Operation::Chat, &b);
        assert_eq!(v.messages, 4);
        assert_eq!(v.segments.len(), 4);
        assert_eq!(v.segments[1].text, "hi \"you\"");
        assert_eq!(&src[v.segments[1].range.clone()], r#""hi \"you\"""#);
        assert_eq!(v.query_text().as_deref(), Some("last one"));
        let out = replace_segments(b.bytes(), &v, &[(1, "x".into())]);
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed["messages"][1]["content"][0]["text"], "x");
        assert_eq!(parsed["messages"][0]["content"], "Be brief");
    }

    #[test]
    fn completion_prompt() {
        let b = body(r#"{"model":"m","prompt":"Once upon"}"#);
        let v = PromptView::parse(Operation::Completion, &b);
        assert_eq!(v.query_text().as_deref(), Some("Once upon"));
    }
}
