//! Anthropic Messages (`POST /v1/messages`), both ways.
//!
//! As a **provider**: OpenAI chat requests become Messages requests (system messages lifted to
//! `system`, tool calls to `tool_use` blocks, tool messages to `tool_result` blocks in a user
//! turn, consecutive turns of one role merged), Messages answers and SSE streams
//! (`message_start`, `content_block_*`, `message_delta`, `message_stop`, `ping`, `error`) become
//! OpenAI answers and chunks.
//!
//! As a **client-facing format**: a Messages request from an Anthropic SDK becomes an OpenAI
//! chat request the gateway routes like any other, and the OpenAI answer (whole or streamed)
//! becomes a Messages answer again ([`MessagesStreamEncoder`]).

use bytes::Bytes;
use http::HeaderValue;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::chunk::{sse_data, ChunkWriter};
use crate::openai::json_headers;
use crate::wire::{
    arguments_text, arguments_value, parse_data_url, ChatRequest, ChatResponse, Choice, Content,
    ContentPart, FunctionCall, FunctionDef, Message, Rest, TokenUsage, Tool, ToolCall,
};
use crate::{
    Operation, Provider, ProviderKind, StreamTranslator, Target, TranslateError, UpstreamRequest,
};

/// The `anthropic-version` header value sent upstream.
pub const API_VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; used when the client set none.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

// ------------------------------------------------------------------------------------------
// wire types

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesRequest {
    pub model: String,
    pub messages: Vec<AnthropicMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemPrompt>,
    pub max_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<AnthropicTool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SystemPrompt {
    Text(String),
    Blocks(Vec<Block>),
}

impl SystemPrompt {
    pub fn text(&self) -> String {
        match self {
            SystemPrompt::Text(s) => s.clone(),
            SystemPrompt::Blocks(b) => b
                .iter()
                .filter_map(|b| b.text.as_deref())
                .collect::<Vec<_>>()
                .join("\n\n"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnthropicMessage {
    pub role: String,
    pub content: BlockContent,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BlockContent {
    Text(String),
    Blocks(Vec<Block>),
}

impl BlockContent {
    pub fn into_blocks(self) -> Vec<Block> {
        match self {
            BlockContent::Text(t) => vec![Block::text(t)],
            BlockContent::Blocks(b) => b,
        }
    }
}

/// One content block. `type` says which of the optional fields are set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Block {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `tool_use` id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use_id: Option<String>,
    /// `tool_result` content: a string or text blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// `image` source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Value>,
    #[serde(flatten)]
    pub rest: Rest,
}

impl Block {
    pub fn text(t: impl Into<String>) -> Self {
        Self {
            kind: "text".into(),
            text: Some(t.into()),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnthropicTool {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default = "object_schema")]
    pub input_schema: Value,
    #[serde(flatten)]
    pub rest: Rest,
}

fn object_schema() -> Value {
    json!({"type": "object"})
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesResponse {
    pub id: String,
    #[serde(rename = "type", default = "message_type")]
    pub kind: String,
    #[serde(default = "assistant")]
    pub role: String,
    pub model: String,
    pub content: Vec<Block>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
    pub usage: AnthropicUsage,
    #[serde(flatten)]
    pub rest: Rest,
}

fn message_type() -> String {
    "message".into()
}
fn assistant() -> String {
    "assistant".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AnthropicUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(flatten)]
    pub rest: Rest,
}

impl AnthropicUsage {
    /// Anthropic's `input_tokens` excludes cache reads and writes; OpenAI's `prompt_tokens`
    /// includes them.
    pub fn to_usage(&self) -> TokenUsage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let write = self.cache_creation_input_tokens.unwrap_or(0);
        TokenUsage {
            input: self.input_tokens + read + write,
            output: self.output_tokens,
            cache_read: read,
            cache_write: write,
        }
    }

    pub fn from_usage(u: TokenUsage) -> Self {
        Self {
            input_tokens: u.input.saturating_sub(u.cache_read + u.cache_write),
            output_tokens: u.output,
            cache_creation_input_tokens: (u.cache_write > 0).then_some(u.cache_write),
            cache_read_input_tokens: (u.cache_read > 0).then_some(u.cache_read),
            rest: Rest::new(),
        }
    }
}

// ------------------------------------------------------------------------------------------
// stop reasons

pub fn finish_reason_from_stop(stop: Option<&str>) -> &'static str {
    match stop {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

pub fn stop_from_finish_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls") | Some("function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

// ------------------------------------------------------------------------------------------
// OpenAI → Anthropic (provider direction)

fn image_block(part: &ContentPart) -> Option<Block> {
    let url = part.image_url()?;
    let source = match parse_data_url(url) {
        Some((media, data)) => json!({"type": "base64", "media_type": media, "data": data}),
        None => json!({"type": "url", "url": url}),
    };
    Some(Block {
        kind: "image".into(),
        source: Some(source),
        ..Default::default()
    })
}

fn user_blocks(content: Option<&Content>) -> Vec<Block> {
    match content {
        None => Vec::new(),
        Some(Content::Text(t)) => vec![Block::text(t.clone())],
        Some(Content::Parts(parts)) => parts
            .iter()
            .filter_map(|p| match p.kind.as_str() {
                "text" => Some(Block::text(p.text.clone().unwrap_or_default())),
                "image_url" => image_block(p),
                _ => None,
            })
            .collect(),
    }
}

fn tool_choice_to_anthropic(choice: &Value, parallel: Option<bool>) -> Option<Value> {
    let mut out = match choice {
        Value::String(s) => match s.as_str() {
            "auto" => json!({"type": "auto"}),
            "required" => json!({"type": "any"}),
            "none" => json!({"type": "none"}),
            _ => return None,
        },
        Value::Object(o) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)?;
            json!({"type": "tool", "name": name})
        }
        _ => return None,
    };
    if parallel == Some(false) {
        out["disable_parallel_tool_use"] = Value::Bool(true);
    }
    Some(out)
}

fn push_turn(out: &mut Vec<AnthropicMessage>, role: &str, blocks: Vec<Block>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = out.last_mut() {
        if last.role == role {
            if let BlockContent::Blocks(b) = &mut last.content {
                b.extend(blocks);
                return;
            }
        }
    }
    out.push(AnthropicMessage {
        role: role.into(),
        content: BlockContent::Blocks(blocks),
        rest: Rest::new(),
    });
}

/// An OpenAI chat request as a Messages request.
pub fn request_from_openai(req: &ChatRequest) -> MessagesRequest {
    let mut system: Vec<String> = Vec::new();
    let mut messages: Vec<AnthropicMessage> = Vec::new();
    for m in &req.messages {
        match m.role.as_str() {
            "system" | "developer" => system.push(m.text()),
            "assistant" => {
                let mut blocks = Vec::new();
                let text = m.text();
                if !text.is_empty() {
                    blocks.push(Block::text(text));
                }
                for tc in m.tool_calls.iter().flatten() {
                    blocks.push(Block {
                        kind: "tool_use".into(),
                        id: Some(tc.id.clone()),
                        name: Some(tc.function.name.clone()),
                        input: Some(arguments_value(&tc.function.arguments)),
                        ..Default::default()
                    });
                }
                push_turn(&mut messages, "assistant", blocks);
            }
            "tool" | "function" => {
                let block = Block {
                    kind: "tool_result".into(),
                    tool_use_id: m.tool_call_id.clone().or_else(|| m.name.clone()),
                    content: Some(Value::String(m.text())),
                    ..Default::default()
                };
                push_turn(&mut messages, "user", vec![block]);
            }
            _ => push_turn(&mut messages, "user", user_blocks(m.content.as_ref())),
        }
    }
    let tools = req.tools.as_ref().map(|ts| {
        ts.iter()
            .map(|t| AnthropicTool {
                name: t.function.name.clone(),
                description: t.function.description.clone(),
                input_schema: t.function.parameters.clone().unwrap_or_else(object_schema),
                rest: Rest::new(),
            })
            .collect()
    });
    let stops = req.stop_sequences();
    MessagesRequest {
        model: req.model.clone(),
        messages,
        system: (!system.is_empty()).then(|| SystemPrompt::Text(system.join("\n\n"))),
        max_tokens: req.max_output_tokens().unwrap_or(DEFAULT_MAX_TOKENS),
        tools,
        tool_choice: req
            .tool_choice
            .as_ref()
            .and_then(|c| tool_choice_to_anthropic(c, req.parallel_tool_calls)),
        stop_sequences: (!stops.is_empty()).then_some(stops),
        temperature: req.temperature,
        top_p: req.top_p,
        stream: req.stream.filter(|s| *s),
        metadata: req.user.as_ref().map(|u| json!({"user_id": u})),
        rest: Rest::new(),
    }
}

/// A Messages answer as an OpenAI chat answer.
pub fn response_to_openai(resp: &MessagesResponse, created: u64) -> ChatResponse {
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in &resp.content {
        match b.kind.as_str() {
            "text" => text.push_str(b.text.as_deref().unwrap_or("")),
            "tool_use" => calls.push(ToolCall {
                id: b.id.clone().unwrap_or_default(),
                kind: "function".into(),
                function: FunctionCall {
                    name: b.name.clone().unwrap_or_default(),
                    arguments: arguments_text(b.input.as_ref().unwrap_or(&json!({}))),
                },
                rest: Rest::new(),
            }),
            _ => {}
        }
    }
    let message = Message {
        role: "assistant".into(),
        content: (!text.is_empty() || calls.is_empty()).then_some(Content::Text(text)),
        tool_calls: (!calls.is_empty()).then_some(calls),
        ..Default::default()
    };
    ChatResponse {
        id: resp.id.clone(),
        object: "chat.completion".into(),
        created,
        model: resp.model.clone(),
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: Some(finish_reason_from_stop(resp.stop_reason.as_deref()).into()),
            rest: Rest::new(),
        }],
        usage: Some(resp.usage.to_usage().to_openai()),
        rest: Rest::new(),
    }
}

// ------------------------------------------------------------------------------------------
// Anthropic → OpenAI (client-facing direction)

fn tool_result_text(content: Option<&Value>) -> String {
    match content {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        Some(other) => other.to_string(),
    }
}

fn tool_choice_to_openai(choice: &Value) -> (Option<Value>, Option<bool>) {
    let parallel = choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        .filter(|d| *d)
        .map(|_| false);
    let c = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => Some(json!("auto")),
        Some("any") => Some(json!("required")),
        Some("none") => Some(json!("none")),
        Some("tool") => choice
            .get("name")
            .map(|n| json!({"type": "function", "function": {"name": n}})),
        _ => None,
    };
    (c, parallel)
}

/// A Messages request as an OpenAI chat request.
pub fn request_to_openai(req: &MessagesRequest) -> ChatRequest {
    let mut messages = Vec::new();
    if let Some(s) = &req.system {
        messages.push(Message {
            role: "system".into(),
            content: Some(Content::Text(s.text())),
            ..Default::default()
        });
    }
    for m in &req.messages {
        let blocks = m.content.clone().into_blocks();
        if m.role == "assistant" {
            let mut text = String::new();
            let mut calls = Vec::new();
            for b in blocks {
                match b.kind.as_str() {
                    "text" => text.push_str(b.text.as_deref().unwrap_or("")),
                    "tool_use" => calls.push(ToolCall {
                        id: b.id.unwrap_or_default(),
                        kind: "function".into(),
                        function: FunctionCall {
                            name: b.name.unwrap_or_default(),
                            arguments: arguments_text(b.input.as_ref().unwrap_or(&json!({}))),
                        },
                        rest: Rest::new(),
                    }),
                    _ => {}
                }
            }
            messages.push(Message {
                role: "assistant".into(),
                content: (!text.is_empty() || calls.is_empty()).then_some(Content::Text(text)),
                tool_calls: (!calls.is_empty()).then_some(calls),
                ..Default::default()
            });
            continue;
        }
        // user turn: tool results first (they answer the preceding assistant turn), then the
        // rest as one user message.
        let mut parts: Vec<ContentPart> = Vec::new();
        for b in blocks {
            match b.kind.as_str() {
                "tool_result" => messages.push(Message {
                    role: "tool".into(),
                    content: Some(Content::Text(tool_result_text(b.content.as_ref()))),
                    tool_call_id: b.tool_use_id,
                    ..Default::default()
                }),
                "text" => parts.push(ContentPart::text(b.text.unwrap_or_default())),
                "image" => {
                    let src = b.source.unwrap_or(Value::Null);
                    let url = match src.get("type").and_then(Value::as_str) {
                        Some("base64") => format!(
                            "data:{};base64,{}",
                            src.get("media_type")
                                .and_then(Value::as_str)
                                .unwrap_or("image/png"),
                            src.get("data").and_then(Value::as_str).unwrap_or("")
                        ),
                        _ => src
                            .get("url")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    };
                    parts.push(ContentPart {
                        kind: "image_url".into(),
                        text: None,
                        image_url: Some(json!({"url": url})),
                        rest: Rest::new(),
                    });
                }
                _ => {}
            }
        }
        if parts.is_empty() {
            continue;
        }
        let content = if parts.len() == 1 && parts[0].kind == "text" {
            Content::Text(parts.remove(0).text.unwrap_or_default())
        } else {
            Content::Parts(parts)
        };
        messages.push(Message {
            role: "user".into(),
            content: Some(content),
            ..Default::default()
        });
    }
    let (tool_choice, parallel_tool_calls) = req
        .tool_choice
        .as_ref()
        .map_or((None, None), tool_choice_to_openai);
    let stop = req
        .stop_sequences
        .as_ref()
        .filter(|s| !s.is_empty())
        .map(|s| Value::Array(s.iter().cloned().map(Value::String).collect()));
    let stream = req.stream.filter(|s| *s);
    ChatRequest {
        model: req.model.clone(),
        messages,
        tools: req.tools.as_ref().map(|ts| {
            ts.iter()
                .map(|t| Tool {
                    kind: "function".into(),
                    function: FunctionDef {
                        name: t.name.clone(),
                        description: t.description.clone(),
                        parameters: Some(t.input_schema.clone()),
                        rest: Rest::new(),
                    },
                    rest: Rest::new(),
                })
                .collect()
        }),
        tool_choice,
        parallel_tool_calls,
        max_tokens: Some(req.max_tokens),
        max_completion_tokens: None,
        temperature: req.temperature,
        top_p: req.top_p,
        stop,
        stream,
        stream_options: stream.map(|_| json!({"include_usage": true})),
        user: req
            .metadata
            .as_ref()
            .and_then(|m| m.get("user_id"))
            .and_then(Value::as_str)
            .map(str::to_string),
        rest: Rest::new(),
    }
}

/// An OpenAI chat answer as a Messages answer.
pub fn response_from_openai(resp: &ChatResponse) -> MessagesResponse {
    let choice = resp.choices.first();
    let mut content = Vec::new();
    if let Some(c) = choice {
        let text = c.message.text();
        if !text.is_empty() {
            content.push(Block::text(text));
        }
        for tc in c.message.tool_calls.iter().flatten() {
            content.push(Block {
                kind: "tool_use".into(),
                id: Some(tc.id.clone()),
                name: Some(tc.function.name.clone()),
                input: Some(arguments_value(&tc.function.arguments)),
                ..Default::default()
            });
        }
    }
    let usage = resp
        .usage
        .as_ref()
        .map(TokenUsage::from_openai)
        .unwrap_or_default();
    MessagesResponse {
        id: message_id(&resp.id),
        kind: "message".into(),
        role: "assistant".into(),
        model: resp.model.clone(),
        content,
        stop_reason: Some(
            stop_from_finish_reason(choice.and_then(|c| c.finish_reason.as_deref())).into(),
        ),
        stop_sequence: None,
        usage: AnthropicUsage::from_usage(usage),
        rest: Rest::new(),
    }
}

fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_string()
    } else {
        format!("msg_{}", id.trim_start_matches("chatcmpl-"))
    }
}

/// Parse a Messages request body and return the OpenAI chat body for it.
pub fn openai_body_from_messages(body: &[u8]) -> Result<Bytes, TranslateError> {
    let req: MessagesRequest =
        serde_json::from_slice(body).map_err(|e| TranslateError::InvalidRequest(e.to_string()))?;
    let out = request_to_openai(&req);
    serde_json::to_vec(&out)
        .map(Bytes::from)
        .map_err(|e| TranslateError::InvalidRequest(e.to_string()))
}

/// An OpenAI answer body as a Messages answer body.
pub fn messages_body_from_openai(body: &[u8]) -> Result<Bytes, TranslateError> {
    let resp: ChatResponse =
        serde_json::from_slice(body).map_err(|e| TranslateError::InvalidResponse(e.to_string()))?;
    serde_json::to_vec(&response_from_openai(&resp))
        .map(Bytes::from)
        .map_err(|e| TranslateError::InvalidResponse(e.to_string()))
}

/// Anthropic's error `type` for a status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// An error as Anthropic shapes it: `{"type":"error","error":{"type","message"}}`.
pub fn error_body(status: u16, message: &str) -> Bytes {
    let v = json!({"type": "error", "error": {"type": error_type(status), "message": message}});
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

/// The same, as a terminal SSE event of a Messages stream.
pub fn error_event(status: u16, message: &str) -> Bytes {
    let mut out = b"event: error\ndata: ".to_vec();
    out.extend_from_slice(&error_body(status, message));
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

// ------------------------------------------------------------------------------------------
// the provider

pub struct Anthropic;

impl Provider for Anthropic {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Anthropic
    }

    fn build_request(
        &self,
        body: &Bytes,
        target: &Target<'_>,
    ) -> Result<UpstreamRequest, TranslateError> {
        crate::validate_model_name(target.model)?;
        if target.operation != Operation::Chat {
            return Err(TranslateError::Unsupported {
                provider: "Anthropic",
                operation: target.operation.name(),
            });
        }
        let req: ChatRequest = serde_json::from_slice(body)
            .map_err(|e| TranslateError::InvalidRequest(e.to_string()))?;
        let mut out = request_from_openai(&req);
        out.model = target.model.to_string();
        out.stream = target.stream.then_some(true);
        let mut headers = json_headers();
        headers.push((
            http::HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(API_VERSION),
        ));
        Ok(UpstreamRequest {
            path_and_query: "/v1/messages".into(),
            body: Bytes::from(
                serde_json::to_vec(&out)
                    .map_err(|e| TranslateError::InvalidRequest(e.to_string()))?,
            ),
            headers,
        })
    }

    fn translate_response(
        &self,
        body: &Bytes,
        target: &Target<'_>,
    ) -> Result<Bytes, TranslateError> {
        let resp: MessagesResponse = serde_json::from_slice(body)
            .map_err(|e| TranslateError::InvalidResponse(e.to_string()))?;
        serde_json::to_vec(&response_to_openai(&resp, target.created))
            .map(Bytes::from)
            .map_err(|e| TranslateError::InvalidResponse(e.to_string()))
    }

    fn stream_translator(&self, target: &Target<'_>) -> Box<dyn StreamTranslator> {
        Box::new(MessagesStreamDecoder::new(target.model, target.created))
    }
}

// ------------------------------------------------------------------------------------------
// Anthropic stream → OpenAI chunks

#[derive(Deserialize)]
struct StreamEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: Option<MessagesResponse>,
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    content_block: Option<Block>,
    #[serde(default)]
    delta: Option<Value>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
    #[serde(default)]
    error: Option<Value>,
}

/// Per-stream state: which Anthropic block index is which OpenAI tool-call index, and the usage
/// seen so far (input at `message_start`, output at `message_delta`).
pub struct MessagesStreamDecoder {
    splitter: infergate_protocol::SseSplitter,
    writer: ChunkWriter,
    tool_index: Vec<(usize, usize)>,
    usage: AnthropicUsage,
    finish: Option<&'static str>,
    done: bool,
}

impl MessagesStreamDecoder {
    pub fn new(model: &str, created: u64) -> Self {
        Self {
            splitter: infergate_protocol::SseSplitter::new(),
            writer: ChunkWriter::new("", model, created),
            tool_index: Vec::new(),
            usage: AnthropicUsage::default(),
            finish: None,
            done: false,
        }
    }

    fn event(&mut self, raw: &[u8], out: &mut dyn FnMut(Bytes)) {
        let Some(data) = infergate_protocol::sse::event_data(raw) else {
            return;
        };
        let Ok(ev) = serde_json::from_slice::<StreamEvent>(&data) else {
            return;
        };
        match ev.kind.as_str() {
            "message_start" => {
                if let Some(m) = ev.message {
                    self.writer.id = m.id.replace("msg_", "chatcmpl-");
                    if !m.model.is_empty() {
                        self.writer.model = m.model;
                    }
                    self.usage = m.usage;
                }
                out(self.writer.role());
            }
            "content_block_start" => {
                if let Some(b) = ev.content_block {
                    if b.kind == "tool_use" {
                        let oi = self.tool_index.len();
                        self.tool_index.push((ev.index.unwrap_or(0), oi));
                        out(self.writer.tool_call_start(
                            oi,
                            b.id.as_deref().unwrap_or(""),
                            b.name.as_deref().unwrap_or(""),
                        ));
                    } else if let Some(t) = b.text.filter(|t| !t.is_empty()) {
                        out(self.writer.content(&t));
                    }
                }
            }
            "content_block_delta" => {
                let Some(d) = ev.delta else { return };
                match d.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        out(self
                            .writer
                            .content(d.get("text").and_then(Value::as_str).unwrap_or("")));
                    }
                    Some("input_json_delta") => {
                        let idx = ev.index.unwrap_or(0);
                        if let Some((_, oi)) = self.tool_index.iter().find(|(ai, _)| *ai == idx) {
                            let partial =
                                d.get("partial_json").and_then(Value::as_str).unwrap_or("");
                            out(self.writer.tool_call_arguments(*oi, partial));
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(d) = ev.delta {
                    self.finish = Some(finish_reason_from_stop(
                        d.get("stop_reason").and_then(Value::as_str),
                    ));
                }
                if let Some(u) = ev.usage {
                    self.usage.output_tokens = u.output_tokens;
                    if u.input_tokens > 0 {
                        self.usage.input_tokens = u.input_tokens;
                    }
                    if u.cache_read_input_tokens.is_some() {
                        self.usage.cache_read_input_tokens = u.cache_read_input_tokens;
                    }
                    if u.cache_creation_input_tokens.is_some() {
                        self.usage.cache_creation_input_tokens = u.cache_creation_input_tokens;
                    }
                }
            }
            "message_stop" => {
                out(self.writer.finish(self.finish.unwrap_or("stop")));
                out(self.writer.usage(self.usage.to_usage()));
                out(ChunkWriter::done());
                self.done = true;
            }
            "error" => {
                let err = ev.error.unwrap_or(Value::Null);
                let msg = err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("the provider reported an error");
                let kind = err
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("api_error");
                out(ChunkWriter::error(msg, "server_error", kind));
            }
            _ => {} // ping, content_block_stop, unknown future events
        }
    }
}

impl StreamTranslator for MessagesStreamDecoder {
    fn feed(&mut self, chunk: Bytes, out: &mut dyn FnMut(Bytes)) {
        let mut events = Vec::new();
        self.splitter.feed(chunk, |e| events.push(e));
        for e in events {
            self.event(&e, out);
        }
    }

    fn finish(&mut self, out: &mut dyn FnMut(Bytes)) {
        if let Some(tail) = self.splitter.finish() {
            self.event(&tail, out);
        }
    }
}

// ------------------------------------------------------------------------------------------
// OpenAI chunks → Anthropic stream (client-facing)

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenBlock {
    None,
    Text,
    Tool(usize),
}

/// Turns the OpenAI events of one stream into Messages events: `message_start` first, one
/// content block per text run or tool call, `message_delta` with the stop reason and usage, then
/// `message_stop` at `[DONE]`.
pub struct MessagesStreamEncoder {
    model: String,
    started: bool,
    block_index: usize,
    open: OpenBlock,
    finish: Option<String>,
    usage: TokenUsage,
    pub done: bool,
}

fn named_event(name: &str, v: &Value) -> Vec<u8> {
    let mut out = format!("event: {name}\n").into_bytes();
    out.extend_from_slice(&sse_data(v));
    out
}

impl MessagesStreamEncoder {
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            started: false,
            block_index: 0,
            open: OpenBlock::None,
            finish: None,
            usage: TokenUsage::default(),
            done: false,
        }
    }

    fn start(&mut self, id: &str, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        out.extend(named_event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": message_id(id), "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        ));
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if self.open != OpenBlock::None {
            out.extend(named_event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": self.block_index}),
            ));
            self.block_index += 1;
            self.open = OpenBlock::None;
        }
    }

    /// One OpenAI SSE event in; the Messages events it stands for out (possibly none).
    pub fn process(&mut self, event: &[u8]) -> Bytes {
        let mut out = Vec::new();
        let Some(data) = infergate_protocol::sse::event_data(event) else {
            return Bytes::new();
        };
        if data.as_ref() == b"[DONE]" {
            self.start("msg_gateway", &mut out);
            self.close_block(&mut out);
            let usage = AnthropicUsage::from_usage(self.usage);
            out.extend(named_event(
                "message_delta",
                &json!({"type": "message_delta",
                        "delta": {"stop_reason": stop_from_finish_reason(self.finish.as_deref()), "stop_sequence": null},
                        "usage": usage}),
            ));
            out.extend(named_event(
                "message_stop",
                &json!({"type": "message_stop"}),
            ));
            self.done = true;
            return Bytes::from(out);
        }
        let Ok(v) = serde_json::from_slice::<Value>(&data) else {
            return Bytes::new();
        };
        if let Some(err) = v.get("error") {
            let msg = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("upstream error");
            return error_event(502, msg);
        }
        self.start(v.get("id").and_then(Value::as_str).unwrap_or(""), &mut out);
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            if let Ok(u) = serde_json::from_value::<crate::wire::OpenAiUsage>(u.clone()) {
                self.usage = TokenUsage::from_openai(&u);
            }
        }
        let Some(choice) = v.get("choices").and_then(|c| c.get(0)) else {
            return Bytes::from(out);
        };
        if let Some(fr) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(fr.to_string());
        }
        let Some(delta) = choice.get("delta") else {
            return Bytes::from(out);
        };
        if let Some(text) = delta
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            if self.open != OpenBlock::Text {
                self.close_block(&mut out);
                out.extend(named_event(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": self.block_index,
                            "content_block": {"type": "text", "text": ""}}),
                ));
                self.open = OpenBlock::Text;
            }
            out.extend(named_event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": self.block_index,
                        "delta": {"type": "text_delta", "text": text}}),
            ));
        }
        for tc in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let idx = tc.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            if self.open != OpenBlock::Tool(idx) {
                self.close_block(&mut out);
                out.extend(named_event(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": self.block_index,
                            "content_block": {"type": "tool_use",
                                "id": tc.get("id").and_then(Value::as_str).unwrap_or(""),
                                "name": tc.pointer("/function/name").and_then(Value::as_str).unwrap_or(""),
                                "input": {}}}),
                ));
                self.open = OpenBlock::Tool(idx);
            }
            if let Some(args) = tc
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty())
            {
                out.extend(named_event(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": self.block_index,
                            "delta": {"type": "input_json_delta", "partial_json": args}}),
                ));
            }
        }
        Bytes::from(out)
    }
}
