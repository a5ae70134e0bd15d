//! Google Gemini models: Vertex AI
//! (`/v1/projects/{project}/locations/{region}/publishers/google/models/{model}:generateContent`,
//! OAuth2 bearer token from a service account) and the Gemini API
//! (`/v1beta/models/{model}:generateContent`, `x-goog-api-key`). Same bodies; streams use
//! `:streamGenerateContent?alt=sse`, one `GenerateContentResponse` per SSE event.
//!
//! Mapping: system messages → `systemInstruction`; turns → `contents` with roles `user` /
//! `model`; tool calls → `functionCall` parts (their `id` carries the OpenAI call id); tool
//! messages → `functionResponse` parts (`response: {"content": text}`); `max_tokens`,
//! `temperature`, `top_p`, `stop` → `generationConfig`. Usage: `promptTokenCount` includes
//! `cachedContentTokenCount`.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::chunk::ChunkWriter;
use crate::model_name::path_segment;
use crate::openai::json_headers;
use crate::wire::{
    arguments_text, arguments_value, parse_data_url, ChatRequest, ChatResponse, Choice, Content,
    ContentPart, FunctionCall, FunctionDef, Message, Rest, TokenUsage, Tool, ToolCall,
};
use crate::{
    Operation, Provider, ProviderKind, StreamTranslator, Target, TranslateError, UpstreamRequest,
};

pub struct Gemini {
    /// Vertex AI paths (project + location) rather than the Gemini API's.
    pub vertex: bool,
}

pub fn finish_reason(reason: Option<&str>, has_calls: bool) -> &'static str {
    match reason {
        Some("MAX_TOKENS") => "length",
        Some(
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY",
        ) => "content_filter",
        _ if has_calls => "tool_calls",
        _ => "stop",
    }
}

pub fn gemini_finish(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "MAX_TOKENS",
        Some("content_filter") => "SAFETY",
        _ => "STOP",
    }
}

pub fn usage_from(u: &Value) -> TokenUsage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    TokenUsage {
        input: n("promptTokenCount"),
        output: n("candidatesTokenCount") + n("thoughtsTokenCount"),
        cache_read: n("cachedContentTokenCount"),
        cache_write: 0,
    }
}

pub fn usage_to(u: TokenUsage) -> Value {
    let mut v = json!({"promptTokenCount": u.input, "candidatesTokenCount": u.output,
                       "totalTokenCount": u.input + u.output});
    if u.cache_read > 0 {
        v["cachedContentTokenCount"] = u.cache_read.into();
    }
    v
}

/// JSON-schema keywords the Gemini `parameters` schema (an OpenAPI subset) refuses.
fn gemini_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "$schema" | "additionalProperties" | "strict")
                })
                .map(|(k, v)| (k.clone(), gemini_schema(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(gemini_schema).collect()),
        other => other.clone(),
    }
}

fn user_parts(content: Option<&Content>) -> Vec<Value> {
    match content {
        None => Vec::new(),
        Some(Content::Text(t)) => vec![json!({"text": t})],
        Some(Content::Parts(parts)) => parts
            .iter()
            .filter_map(|p| match p.kind.as_str() {
                "text" => Some(json!({"text": p.text.clone().unwrap_or_default()})),
                "image_url" => {
                    let url = p.image_url()?;
                    Some(match parse_data_url(url) {
                        Some((media, data)) => {
                            json!({"inlineData": {"mimeType": media, "data": data}})
                        }
                        None => json!({"fileData": {"mimeType": "image/*", "fileUri": url}}),
                    })
                }
                _ => None,
            })
            .collect(),
    }
}

fn push_turn(out: &mut Vec<Value>, role: &str, parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    if let Some(last) = out.last_mut() {
        if last["role"] == role {
            if let Some(p) = last["parts"].as_array_mut() {
                p.extend(parts);
                return;
            }
        }
    }
    out.push(json!({"role": role, "parts": parts}));
}

/// An OpenAI chat request as a `generateContent` body.
pub fn request_from_openai(req: &ChatRequest) -> Value {
    let mut system = Vec::new();
    let mut contents = Vec::new();
    // functionResponse needs the function's name; OpenAI tool messages only carry the call id.
    let mut call_names: Vec<(String, String)> = Vec::new();
    for m in &req.messages {
        match m.role.as_str() {
            "system" | "developer" => system.push(json!({"text": m.text()})),
            "assistant" => {
                let mut parts = Vec::new();
                let text = m.text();
                if !text.is_empty() {
                    parts.push(json!({"text": text}));
                }
                for tc in m.tool_calls.iter().flatten() {
                    call_names.push((tc.id.clone(), tc.function.name.clone()));
                    parts.push(
                        json!({"functionCall": {"id": tc.id, "name": tc.function.name,
                        "args": arguments_value(&tc.function.arguments)}}),
                    );
                }
                push_turn(&mut contents, "model", parts);
            }
            "tool" | "function" => {
                let id = m.tool_call_id.clone().unwrap_or_default();
                let name = call_names
                    .iter()
                    .find(|(i, _)| *i == id)
                    .map(|(_, n)| n.clone())
                    .or_else(|| m.name.clone())
                    .unwrap_or_default();
                push_turn(
                    &mut contents,
                    "user",
                    vec![json!({"functionResponse": {"id": id, "name": name,
                        "response": {"content": m.text()}}})],
                );
            }
            _ => push_turn(&mut contents, "user", user_parts(m.content.as_ref())),
        }
    }
    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system}));
    }
    let mut gen = Map::new();
    if let Some(n) = req.max_output_tokens() {
        gen.insert("maxOutputTokens".into(), n.into());
    }
    if let Some(t) = req.temperature {
        gen.insert("temperature".into(), t.into());
    }
    if let Some(p) = req.top_p {
        gen.insert("topP".into(), p.into());
    }
    let stops = req.stop_sequences();
    if !stops.is_empty() {
        gen.insert("stopSequences".into(), stops.into());
    }
    if !gen.is_empty() {
        body.insert("generationConfig".into(), Value::Object(gen));
    }
    if let Some(tools) = req.tools.as_ref().filter(|t| !t.is_empty()) {
        let decls: Vec<Value> = tools
            .iter()
            .map(|t| {
                let mut d = json!({"name": t.function.name});
                if let Some(desc) = &t.function.description {
                    d["description"] = desc.clone().into();
                }
                if let Some(p) = &t.function.parameters {
                    d["parameters"] = gemini_schema(p);
                }
                d
            })
            .collect();
        body.insert("tools".into(), json!([{"functionDeclarations": decls}]));
        let config = match &req.tool_choice {
            Some(Value::String(s)) if s == "required" => Some(json!({"mode": "ANY"})),
            Some(Value::String(s)) if s == "none" => Some(json!({"mode": "NONE"})),
            Some(Value::String(s)) if s == "auto" => Some(json!({"mode": "AUTO"})),
            Some(Value::Object(o)) => o
                .get("function")
                .and_then(|f| f.get("name"))
                .map(|n| json!({"mode": "ANY", "allowedFunctionNames": [n]})),
            _ => None,
        };
        if let Some(c) = config {
            body.insert("toolConfig".into(), json!({"functionCallingConfig": c}));
        }
    }
    Value::Object(body)
}

fn response_text(content: &Value) -> String {
    match content.get("content") {
        Some(Value::String(s)) if content.as_object().is_some_and(|o| o.len() == 1) => s.clone(),
        _ => content.to_string(),
    }
}

/// A `generateContent` answer as an OpenAI answer.
pub fn response_to_openai(resp: &Value, model: &str, id: &str, created: u64) -> ChatResponse {
    let cand = resp.pointer("/candidates/0").unwrap_or(&Value::Null);
    let mut text = String::new();
    let mut calls = Vec::new();
    for p in cand
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if p.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            text.push_str(t);
        } else if let Some(fc) = p.get("functionCall") {
            let n = calls.len();
            calls.push(ToolCall {
                id: fc
                    .get("id")
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("call_{n}"), str::to_string),
                kind: "function".into(),
                function: FunctionCall {
                    name: fc.get("name").and_then(Value::as_str).unwrap_or("").into(),
                    arguments: arguments_text(fc.get("args").unwrap_or(&json!({}))),
                },
                rest: Rest::new(),
            });
        }
    }
    let reason = finish_reason(
        cand.get("finishReason").and_then(Value::as_str),
        !calls.is_empty(),
    );
    ChatResponse {
        id: resp
            .get("responseId")
            .and_then(Value::as_str)
            .map_or_else(|| id.to_string(), |r| format!("chatcmpl-{r}")),
        object: "chat.completion".into(),
        created,
        model: resp
            .get("modelVersion")
            .and_then(Value::as_str)
            .unwrap_or(model)
            .to_string(),
        choices: vec![Choice {
            index: 0,
            message: Message {
                role: "assistant".into(),
                content: (!text.is_empty() || calls.is_empty()).then_some(Content::Text(text)),
                tool_calls: (!calls.is_empty()).then_some(calls),
                ..Default::default()
            },
            finish_reason: Some(reason.into()),
            rest: Rest::new(),
        }],
        usage: Some(usage_from(resp.get("usageMetadata").unwrap_or(&Value::Null)).to_openai()),
        rest: Rest::new(),
    }
}

/// A `generateContent` body as an OpenAI request (the inverse of [`request_from_openai`]; used
/// by the round-trip property tests and the test fakes).
pub fn request_to_openai(body: &Value, model: &str) -> ChatRequest {
    let mut messages = Vec::new();
    if let Some(parts) = body
        .pointer("/systemInstruction/parts")
        .and_then(Value::as_array)
    {
        for p in parts {
            messages.push(Message {
                role: "system".into(),
                content: Some(Content::Text(
                    p.get("text").and_then(Value::as_str).unwrap_or("").into(),
                )),
                ..Default::default()
            });
        }
    }
    for c in body
        .get("contents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let parts = c
            .get("parts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if c["role"] == "model" {
            let mut text = String::new();
            let mut calls = Vec::new();
            for p in parts {
                if let Some(t) = p.get("text").and_then(Value::as_str) {
                    text.push_str(t);
                } else if let Some(fc) = p.get("functionCall") {
                    calls.push(ToolCall {
                        id: fc["id"].as_str().unwrap_or("").into(),
                        kind: "function".into(),
                        function: FunctionCall {
                            name: fc["name"].as_str().unwrap_or("").into(),
                            arguments: arguments_text(&fc["args"]),
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
        let mut user = Vec::new();
        for p in parts {
            if let Some(fr) = p.get("functionResponse") {
                messages.push(Message {
                    role: "tool".into(),
                    content: Some(Content::Text(response_text(&fr["response"]))),
                    tool_call_id: fr["id"].as_str().map(str::to_string),
                    ..Default::default()
                });
            } else if let Some(t) = p.get("text").and_then(Value::as_str) {
                user.push(ContentPart::text(t));
            }
        }
        if !user.is_empty() {
            let content = if user.len() == 1 {
                Content::Text(user.remove(0).text.unwrap_or_default())
            } else {
                Content::Parts(user)
            };
            messages.push(Message {
                role: "user".into(),
                content: Some(content),
                ..Default::default()
            });
        }
    }
    let tools = body
        .pointer("/tools/0/functionDeclarations")
        .and_then(Value::as_array)
        .map(|ds| {
            ds.iter()
                .map(|d| Tool {
                    kind: "function".into(),
                    function: FunctionDef {
                        name: d["name"].as_str().unwrap_or("").into(),
                        description: d
                            .get("description")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        parameters: d.get("parameters").cloned(),
                        rest: Rest::new(),
                    },
                    rest: Rest::new(),
                })
                .collect()
        });
    let gen = body.get("generationConfig").cloned().unwrap_or(Value::Null);
    ChatRequest {
        model: model.to_string(),
        messages,
        tools,
        tool_choice: None,
        parallel_tool_calls: None,
        max_tokens: gen.get("maxOutputTokens").and_then(Value::as_u64),
        max_completion_tokens: None,
        temperature: gen.get("temperature").and_then(Value::as_f64),
        top_p: gen.get("topP").and_then(Value::as_f64),
        stop: gen.get("stopSequences").cloned(),
        stream: None,
        stream_options: None,
        user: None,
        rest: Rest::new(),
    }
}

/// An OpenAI answer as a `generateContent` answer (the inverse of [`response_to_openai`]).
pub fn response_from_openai(resp: &ChatResponse) -> Value {
    let choice = resp.choices.first();
    let mut parts = Vec::new();
    if let Some(c) = choice {
        let text = c.message.text();
        if !text.is_empty() {
            parts.push(json!({"text": text}));
        }
        for tc in c.message.tool_calls.iter().flatten() {
            parts.push(
                json!({"functionCall": {"id": tc.id, "name": tc.function.name,
                "args": arguments_value(&tc.function.arguments)}}),
            );
        }
    }
    json!({
        "candidates": [{"content": {"role": "model", "parts": parts},
                        "finishReason": gemini_finish(choice.and_then(|c| c.finish_reason.as_deref())),
                        "index": 0}],
        "usageMetadata": usage_to(resp.usage.as_ref().map(TokenUsage::from_openai).unwrap_or_default()),
        "modelVersion": resp.model,
    })
}

impl Provider for Gemini {
    fn kind(&self) -> ProviderKind {
        if self.vertex {
            ProviderKind::VertexAi
        } else {
            ProviderKind::Gemini
        }
    }

    fn build_request(
        &self,
        body: &Bytes,
        target: &Target<'_>,
    ) -> Result<UpstreamRequest, TranslateError> {
        crate::validate_model_name(target.model)?;
        if target.operation != Operation::Chat {
            return Err(TranslateError::Unsupported {
                provider: if self.vertex { "Vertex AI" } else { "Gemini" },
                operation: target.operation.name(),
            });
        }
        let req: ChatRequest = serde_json::from_slice(body)
            .map_err(|e| TranslateError::InvalidRequest(e.to_string()))?;
        let out = request_from_openai(&req);
        let action = if target.stream {
            "streamGenerateContent?alt=sse"
        } else {
            "generateContent"
        };
        let model = path_segment(target.model);
        let path = if self.vertex {
            let project = target.project.ok_or_else(|| {
                TranslateError::InvalidRequest("a Vertex AI backend needs a GCP project".into())
            })?;
            let region = target.region.unwrap_or("us-central1");
            format!(
                "/v1/projects/{}/locations/{}/publishers/google/models/{model}:{action}",
                path_segment(project),
                path_segment(region)
            )
        } else {
            format!("/v1beta/models/{model}:{action}")
        };
        Ok(UpstreamRequest {
            path_and_query: path,
            body: Bytes::from(
                serde_json::to_vec(&out)
                    .map_err(|e| TranslateError::InvalidRequest(e.to_string()))?,
            ),
            headers: json_headers(),
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
        Box::new(GenerateContentStreamDecoder {
            splitter: infergate_protocol::SseSplitter::new(),
            writer: ChunkWriter::new(
                format!("chatcmpl-{}", target.request_id),
                target.model,
                target.created,
            ),
            started: false,
            calls: 0,
            usage: TokenUsage::default(),
            finished: false,
        })
    }
}

/// Per-stream state for `streamGenerateContent?alt=sse`: Gemini has no end-of-stream event, so
/// the stream is complete only if a candidate carried a `finishReason` before the upstream
/// closed.
pub struct GenerateContentStreamDecoder {
    splitter: infergate_protocol::SseSplitter,
    writer: ChunkWriter,
    started: bool,
    calls: usize,
    usage: TokenUsage,
    finished: bool,
}

impl GenerateContentStreamDecoder {
    fn event(&mut self, raw: &[u8], out: &mut dyn FnMut(Bytes)) {
        let Some(data) = infergate_protocol::sse::event_data(raw) else {
            return;
        };
        let Ok(v) = serde_json::from_slice::<Value>(&data) else {
            return;
        };
        if let Some(err) = v.get("error") {
            let msg = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("Gemini reported an error");
            let status = err
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("upstream_error");
            out(ChunkWriter::error(msg, "server_error", status));
            return;
        }
        if !self.started {
            self.started = true;
            if let Some(m) = v.get("modelVersion").and_then(Value::as_str) {
                self.writer.model = m.to_string();
            }
            out(self.writer.role());
        }
        if let Some(u) = v.get("usageMetadata") {
            self.usage = usage_from(u);
        }
        let cand = v.pointer("/candidates/0").unwrap_or(&Value::Null);
        let mut had_calls = false;
        for p in cand
            .pointer("/content/parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if p.get("thought").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            if let Some(t) = p.get("text").and_then(Value::as_str) {
                out(self.writer.content(t));
            } else if let Some(fc) = p.get("functionCall") {
                let i = self.calls;
                self.calls += 1;
                had_calls = true;
                let id = fc
                    .get("id")
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("call_{i}"), str::to_string);
                out(self.writer.tool_call_start(
                    i,
                    &id,
                    fc.get("name").and_then(Value::as_str).unwrap_or(""),
                ));
                out(self
                    .writer
                    .tool_call_arguments(i, &arguments_text(fc.get("args").unwrap_or(&json!({})))));
            }
        }
        if let Some(r) = cand.get("finishReason").and_then(Value::as_str) {
            self.finished = true;
            out(self
                .writer
                .finish(finish_reason(Some(r), had_calls || self.calls > 0)));
        }
    }
}

impl StreamTranslator for GenerateContentStreamDecoder {
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
        if self.finished {
            out(self.writer.usage(self.usage));
            out(ChunkWriter::done());
        }
    }
}
