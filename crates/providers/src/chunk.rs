//! Writing OpenAI `chat.completion.chunk` SSE events, for translators that build an OpenAI stream
//! out of another provider's events.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::wire::TokenUsage;

/// Builds the events of one OpenAI stream: same `id`, `model` and `created` on every chunk.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    pub id: String,
    pub model: String,
    pub created: u64,
}

/// One SSE event carrying `value` as its data.
pub fn sse_data(value: &Value) -> Bytes {
    let mut out = b"data: ".to_vec();
    // Serialising a Value cannot fail.
    let _ = serde_json::to_writer(&mut out, value);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

pub const DONE: &[u8] = b"data: [DONE]\n\n";

impl ChunkWriter {
    pub fn new(id: impl Into<String>, model: impl Into<String>, created: u64) -> Self {
        Self {
            id: id.into(),
            model: model.into(),
            created,
        }
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Bytes {
        sse_data(&json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }))
    }

    /// The first chunk: the assistant role.
    pub fn role(&self) -> Bytes {
        self.chunk(json!({"role": "assistant", "content": ""}), None)
    }

    pub fn content(&self, text: &str) -> Bytes {
        self.chunk(json!({"content": text}), None)
    }

    /// A tool call begins: its id and function name, empty arguments.
    pub fn tool_call_start(&self, index: usize, id: &str, name: &str) -> Bytes {
        self.chunk(
            json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                                   "function": {"name": name, "arguments": ""}}]}),
            None,
        )
    }

    /// More of a tool call's arguments text.
    pub fn tool_call_arguments(&self, index: usize, arguments: &str) -> Bytes {
        self.chunk(
            json!({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]}),
            None,
        )
    }

    pub fn finish(&self, reason: &str) -> Bytes {
        self.chunk(json!({}), Some(reason))
    }

    /// The usage-only chunk (`choices: []`) that `stream_options.include_usage` asks for.
    pub fn usage(&self, usage: TokenUsage) -> Bytes {
        sse_data(&json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage.to_openai(),
        }))
    }

    pub fn done() -> Bytes {
        Bytes::from_static(DONE)
    }

    /// A terminal error event in OpenAI's stream shape.
    pub fn error(message: &str, kind: &str, code: &str) -> Bytes {
        sse_data(&json!({"error": {"message": message, "type": kind, "param": null, "code": code}}))
    }
}
