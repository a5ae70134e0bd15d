//! AWS Bedrock Converse (`POST /model/{modelId}/converse`) and ConverseStream
//! (`POST /model/{modelId}/converse-stream`, answered in the AWS event-stream framing, see
//! [`crate::eventstream`]). Requests are SigV4-signed by the gateway over the final body
//! ([`crate::auth::sign_sigv4`]).
//!
//! Mapping: system messages → `system: [{text}]`; `max_tokens`, `temperature`, `top_p`, `stop` →
//! `inferenceConfig`; tools → `toolConfig.tools[].toolSpec` (`inputSchema.json`); assistant tool
//! calls → `toolUse` blocks; tool messages → `toolResult` blocks in a user turn. Usage:
//! `inputTokens` excludes `cacheReadInputTokens` / `cacheWriteInputTokens`.

use bytes::Bytes;
use http::HeaderValue;
use serde_json::{json, Map, Value};

use crate::chunk::ChunkWriter;
use crate::eventstream::Decoder;
use crate::model_name::path_segment;
use crate::openai::json_headers;
use crate::wire::{
    arguments_text, arguments_value, parse_data_url, ChatRequest, ChatResponse, Choice, Content,
    ContentPart, FunctionCall, FunctionDef, Message, Rest, TokenUsage, Tool, ToolCall,
};
use crate::{
    Operation, Provider, ProviderKind, StreamTranslator, Target, TranslateError, UpstreamRequest,
};

pub struct Bedrock;

pub fn finish_reason(stop: Option<&str>) -> &'static str {
    match stop {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("guardrail_intervened") | Some("content_filtered") => "content_filter",
        _ => "stop",
    }
}

pub fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls") => "tool_use",
        Some("content_filter") => "content_filtered",
        _ => "end_turn",
    }
}

pub fn usage_from(u: &Value) -> TokenUsage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let read = n("cacheReadInputTokens");
    let write = n("cacheWriteInputTokens");
    TokenUsage {
        input: n("inputTokens") + read + write,
        output: n("outputTokens"),
        cache_read: read,
        cache_write: write,
    }
}

pub fn usage_to(u: TokenUsage) -> Value {
    let input = u.input.saturating_sub(u.cache_read + u.cache_write);
    let mut v =
        json!({"inputTokens": input, "outputTokens": u.output, "totalTokens": u.input + u.output});
    if u.cache_read > 0 {
        v["cacheReadInputTokens"] = u.cache_read.into();
    }
    if u.cache_write > 0 {
        v["cacheWriteInputTokens"] = u.cache_write.into();
    }
    v
}

fn image_format(media: &str) -> &str {
    media.strip_prefix("image/").unwrap_or(media)
}

fn user_blocks(content: Option<&Content>) -> Vec<Value> {
    match content {
        None => Vec::new(),
        Some(Content::Text(t)) => vec![json!({"text": t})],
        Some(Content::Parts(parts)) => parts
            .iter()
            .filter_map(|p| match p.kind.as_str() {
                "text" => Some(json!({"text": p.text.clone().unwrap_or_default()})),
                "image_url" => {
                    let (media, data) = parse_data_url(p.image_url()?)?;
                    Some(json!({"image": {"format": image_format(media), "source": {"bytes": data}}}))
                }
                _ => None,
            })
            .collect(),
    }
}

fn push_turn(out: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = out.last_mut() {
        if last["role"] == role {
            if let Some(c) = last["content"].as_array_mut() {
                c.extend(blocks);
                return;
            }
        }
    }
    out.push(json!({"role": role, "content": blocks}));
}

/// An OpenAI chat request as a Converse request body (the model goes in the path).
pub fn request_from_openai(req: &ChatRequest) -> Value {
    let mut system = Vec::new();
    let mut messages = Vec::new();
    for m in &req.messages {
        match m.role.as_str() {
            "system" | "developer" => system.push(json!({"text": m.text()})),
            "assistant" => {
                let mut blocks = Vec::new();
                let text = m.text();
                if !text.is_empty() {
                    blocks.push(json!({"text": text}));
                }
                for tc in m.tool_calls.iter().flatten() {
                    blocks.push(json!({"toolUse": {
                        "toolUseId": tc.id, "name": tc.function.name,
                        "input": arguments_value(&tc.function.arguments)}}));
                }
                push_turn(&mut messages, "assistant", blocks);
            }
            "tool" | "function" => {
                let id = m
                    .tool_call_id
                    .clone()
                    .or_else(|| m.name.clone())
                    .unwrap_or_default();
                push_turn(
                    &mut messages,
                    "user",
                    vec![json!({"toolResult": {"toolUseId": id, "content": [{"text": m.text()}]}})],
                );
            }
            _ => push_turn(&mut messages, "user", user_blocks(m.content.as_ref())),
        }
    }
    let mut body = Map::new();
    body.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    let mut inference = Map::new();
    if let Some(n) = req.max_output_tokens() {
        inference.insert("maxTokens".into(), n.into());
    }
    if let Some(t) = req.temperature {
        inference.insert("temperature".into(), t.into());
    }
    if let Some(p) = req.top_p {
        inference.insert("topP".into(), p.into());
    }
    let stops = req.stop_sequences();
    if !stops.is_empty() {
        inference.insert("stopSequences".into(), stops.into());
    }
    if !inference.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(inference));
    }
    if let Some(tools) = req.tools.as_ref().filter(|t| !t.is_empty()) {
        let specs: Vec<Value> = tools
            .iter()
            .map(|t| {
                let mut spec = json!({"name": t.function.name,
                    "inputSchema": {"json": t.function.parameters.clone().unwrap_or_else(|| json!({"type": "object"}))}});
                if let Some(d) = &t.function.description {
                    spec["description"] = d.clone().into();
                }
                json!({"toolSpec": spec})
            })
            .collect();
        let mut config = json!({"tools": specs});
        let choice = match &req.tool_choice {
            Some(Value::String(s)) if s == "required" => Some(json!({"any": {}})),
            Some(Value::String(s)) if s == "auto" => Some(json!({"auto": {}})),
            Some(Value::Object(o)) => o
                .get("function")
                .and_then(|f| f.get("name"))
                .map(|n| json!({"tool": {"name": n}})),
            _ => None,
        };
        if let Some(c) = choice {
            config["toolChoice"] = c;
        }
        body.insert("toolConfig".into(), config);
    }
    Value::Object(body)
}

/// A Converse answer as an OpenAI answer.
pub fn response_to_openai(resp: &Value, model: &str, id: &str, created: u64) -> ChatResponse {
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in resp
        .pointer("/output/message/content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            text.push_str(t);
        } else if let Some(tu) = block.get("toolUse") {
            calls.push(ToolCall {
                id: tu
                    .get("toolUseId")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .into(),
                kind: "function".into(),
                function: FunctionCall {
                    name: tu.get("name").and_then(Value::as_str).unwrap_or("").into(),
                    arguments: arguments_text(tu.get("input").unwrap_or(&json!({}))),
                },
                rest: Rest::new(),
            });
        }
    }
    ChatResponse {
        id: id.to_string(),
        object: "chat.completion".into(),
        created,
        model: model.to_string(),
        choices: vec![Choice {
            index: 0,
            message: Message {
                role: "assistant".into(),
                content: (!text.is_empty() || calls.is_empty()).then_some(Content::Text(text)),
                tool_calls: (!calls.is_empty()).then_some(calls),
                ..Default::default()
            },
            finish_reason: Some(
                finish_reason(resp.get("stopReason").and_then(Value::as_str)).into(),
            ),
            rest: Rest::new(),
        }],
        usage: Some(usage_from(resp.get("usage").unwrap_or(&Value::Null)).to_openai()),
        rest: Rest::new(),
    }
}

/// A Converse request as an OpenAI request (the inverse of [`request_from_openai`]; used by
/// the round-trip property tests).
pub fn request_to_openai(body: &Value, model: &str) -> ChatRequest {
    let mut messages = Vec::new();
    for s in body
        .get("system")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        messages.push(Message {
            role: "system".into(),
            content: Some(Content::Text(
                s.get("text").and_then(Value::as_str).unwrap_or("").into(),
            )),
            ..Default::default()
        });
    }
    for m in body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let blocks = m
            .get("content")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if m["role"] == "assistant" {
            let mut text = String::new();
            let mut calls = Vec::new();
            for b in blocks {
                if let Some(t) = b.get("text").and_then(Value::as_str) {
                    text.push_str(t);
                } else if let Some(tu) = b.get("toolUse") {
                    calls.push(ToolCall {
                        id: tu["toolUseId"].as_str().unwrap_or("").into(),
                        kind: "function".into(),
                        function: FunctionCall {
                            name: tu["name"].as_str().unwrap_or("").into(),
                            arguments: arguments_text(&tu["input"]),
                        },
                        rest: Rest::new(),
                    });
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
        let mut parts = Vec::new();
        for b in blocks {
            if let Some(tr) = b.get("toolResult") {
                let text: String = tr["content"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.get("text").and_then(Value::as_str))
                    .collect();
                messages.push(Message {
                    role: "tool".into(),
                    content: Some(Content::Text(text)),
                    tool_call_id: tr["toolUseId"].as_str().map(str::to_string),
                    ..Default::default()
                });
            } else if let Some(t) = b.get("text").and_then(Value::as_str) {
                parts.push(ContentPart::text(t));
            }
        }
        if !parts.is_empty() {
            let content = if parts.len() == 1 {
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
    }
    let tools = body
        .pointer("/toolConfig/tools")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .map(|t| Tool {
                    kind: "function".into(),
                    function: FunctionDef {
                        name: t
                            .pointer("/toolSpec/name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .into(),
                        description: t
                            .pointer("/toolSpec/description")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        parameters: t.pointer("/toolSpec/inputSchema/json").cloned(),
                        rest: Rest::new(),
                    },
                    rest: Rest::new(),
                })
                .collect()
        });
    ChatRequest {
        model: model.to_string(),
        messages,
        tools,
        tool_choice: None,
        parallel_tool_calls: None,
        max_tokens: body
            .pointer("/inferenceConfig/maxTokens")
            .and_then(Value::as_u64),
        max_completion_tokens: None,
        temperature: body
            .pointer("/inferenceConfig/temperature")
            .and_then(Value::as_f64),
        top_p: body
            .pointer("/inferenceConfig/topP")
            .and_then(Value::as_f64),
        stop: body.pointer("/inferenceConfig/stopSequences").cloned(),
        stream: None,
        stream_options: None,
        user: None,
        rest: Rest::new(),
    }
}

/// An OpenAI answer as a Converse answer (the inverse of [`response_to_openai`]).
pub fn response_from_openai(resp: &ChatResponse) -> Value {
    let mut content = Vec::new();
    let choice = resp.choices.first();
    if let Some(c) = choice {
        let text = c.message.text();
        if !text.is_empty() {
            content.push(json!({"text": text}));
        }
        for tc in c.message.tool_calls.iter().flatten() {
            content.push(
                json!({"toolUse": {"toolUseId": tc.id, "name": tc.function.name,
                "input": arguments_value(&tc.function.arguments)}}),
            );
        }
    }
    json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason(choice.and_then(|c| c.finish_reason.as_deref())),
        "usage": usage_to(resp.usage.as_ref().map(TokenUsage::from_openai).unwrap_or_default()),
        "metrics": {"latencyMs": 0},
    })
}

impl Provider for Bedrock {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Bedrock
    }

    fn build_request(
        &self,
        body: &Bytes,
        target: &Target<'_>,
    ) -> Result<UpstreamRequest, TranslateError> {
        crate::validate_model_name(target.model)?;
        if target.operation != Operation::Chat {
            return Err(TranslateError::Unsupported {
                provider: "AWS Bedrock",
                operation: target.operation.name(),
            });
        }
        let req: ChatRequest = serde_json::from_slice(body)
            .map_err(|e| TranslateError::InvalidRequest(e.to_string()))?;
        let out = request_from_openai(&req);
        let action = if target.stream {
            "converse-stream"
        } else {
            "converse"
        };
        let mut headers = json_headers();
        if target.stream {
            headers.push((
                http::header::ACCEPT,
                HeaderValue::from_static("application/vnd.amazon.eventstream"),
            ));
        }
        Ok(UpstreamRequest {
            path_and_query: format!("/model/{}/{action}", path_segment(target.model)),
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
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| TranslateError::InvalidResponse(e.to_string()))?;
        let id = format!("chatcmpl-{}", target.request_id);
        serde_json::to_vec(&response_to_openai(&v, target.model, &id, target.created))
            .map(Bytes::from)
            .map_err(|e| TranslateError::InvalidResponse(e.to_string()))
    }

    fn stream_translator(&self, target: &Target<'_>) -> Box<dyn StreamTranslator> {
        Box::new(ConverseStreamDecoder {
            decoder: Decoder::new(),
            writer: ChunkWriter::new(
                format!("chatcmpl-{}", target.request_id),
                target.model,
                target.created,
            ),
            tool_index: Vec::new(),
            usage: None,
            stopped: false,
            done: false,
            failed: false,
        })
    }

    fn stream_content_type(&self) -> &'static str {
        "application/vnd.amazon.eventstream"
    }
}

/// Per-stream state for ConverseStream: the binary decoder, Bedrock block index → OpenAI
/// tool-call index, and whether `messageStop` / `metadata` have been seen.
pub struct ConverseStreamDecoder {
    decoder: Decoder,
    writer: ChunkWriter,
    tool_index: Vec<(u64, usize)>,
    usage: Option<TokenUsage>,
    stopped: bool,
    done: bool,
    failed: bool,
}

impl ConverseStreamDecoder {
    fn event(&mut self, kind: &str, payload: &Value, out: &mut dyn FnMut(Bytes)) {
        match kind {
            "messageStart" => out(self.writer.role()),
            "contentBlockStart" => {
                if let Some(tu) = payload.pointer("/start/toolUse") {
                    let oi = self.tool_index.len();
                    let bi = payload
                        .get("contentBlockIndex")
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    self.tool_index.push((bi, oi));
                    out(self.writer.tool_call_start(
                        oi,
                        tu.get("toolUseId").and_then(Value::as_str).unwrap_or(""),
                        tu.get("name").and_then(Value::as_str).unwrap_or(""),
                    ));
                }
            }
            "contentBlockDelta" => {
                let delta = payload.get("delta").unwrap_or(&Value::Null);
                if let Some(t) = delta.get("text").and_then(Value::as_str) {
                    out(self.writer.content(t));
                } else if let Some(input) = delta.pointer("/toolUse/input").and_then(Value::as_str)
                {
                    let bi = payload
                        .get("contentBlockIndex")
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    if let Some((_, oi)) = self.tool_index.iter().find(|(b, _)| *b == bi) {
                        out(self.writer.tool_call_arguments(*oi, input));
                    }
                }
            }
            "messageStop" => {
                self.stopped = true;
                out(self.writer.finish(finish_reason(
                    payload.get("stopReason").and_then(Value::as_str),
                )));
            }
            "metadata" => {
                self.usage = Some(usage_from(payload.get("usage").unwrap_or(&Value::Null)));
                if self.stopped {
                    self.close(out);
                }
            }
            _ => {}
        }
    }

    fn close(&mut self, out: &mut dyn FnMut(Bytes)) {
        if self.done {
            return;
        }
        self.done = true;
        out(self.writer.usage(self.usage.unwrap_or_default()));
        out(ChunkWriter::done());
    }
}

impl StreamTranslator for ConverseStreamDecoder {
    fn feed(&mut self, chunk: Bytes, out: &mut dyn FnMut(Bytes)) {
        if self.failed {
            return;
        }
        self.decoder.feed(&chunk);
        loop {
            match self.decoder.next_message() {
                Ok(None) => break,
                Ok(Some(msg)) => {
                    let payload: Value =
                        serde_json::from_slice(&msg.payload).unwrap_or(Value::Null);
                    match msg.header(":message-type") {
                        Some("event") | None => {
                            let kind = msg.header(":event-type").unwrap_or("").to_string();
                            self.event(&kind, &payload, out);
                        }
                        Some("exception") => {
                            let kind = msg.header(":exception-type").unwrap_or("exception");
                            let text = crate::error::error_message(&msg.payload)
                                .unwrap_or_else(|| "Bedrock reported an error".into());
                            out(ChunkWriter::error(
                                &format!("{kind}: {text}"),
                                "server_error",
                                kind,
                            ));
                        }
                        Some(_) => {
                            let code = msg.header(":error-code").unwrap_or("error");
                            let text = msg
                                .header(":error-message")
                                .unwrap_or("Bedrock reported an error");
                            out(ChunkWriter::error(
                                &format!("{code}: {text}"),
                                "server_error",
                                "upstream_error",
                            ));
                        }
                    }
                }
                Err(e) => {
                    self.failed = true;
                    out(ChunkWriter::error(
                        &e.to_string(),
                        "server_error",
                        "upstream_error",
                    ));
                    break;
                }
            }
        }
    }

    fn finish(&mut self, out: &mut dyn FnMut(Bytes)) {
        // `messageStop` without a trailing `metadata` is still a complete answer.
        if self.stopped && !self.failed && self.decoder.pending() == 0 {
            self.close(out);
        }
    }
}
