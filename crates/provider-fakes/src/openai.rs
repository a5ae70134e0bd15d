//! OpenAI chat completions (`POST /v1/chat/completions`, `Authorization: Bearer`) and Azure
//! OpenAI (`POST /openai/deployments/{deployment}/chat/completions?api-version=…`, `api-key`).

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{json, Value};

use crate::{json, pieces, reply_text, stream, words, Body, Call, Flavor, Mode};

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

pub fn handle(c: &Call<'_>) -> Response<Body> {
    let fake = c.fake;
    let (model_from_path, key) = match fake.flavor {
        Flavor::Azure => {
            let Some(rest) = c.uri_path.strip_prefix("/openai/deployments/") else {
                return fake.error(404, "Resource not found", false);
            };
            let Some((dep, op)) = rest.split_once('/') else {
                return fake.error(404, "Resource not found", false);
            };
            if op != "chat/completions" {
                return fake.error(404, "Resource not found", false);
            }
            if !c.path.contains("api-version=") {
                return fake.error(400, "Missing API version parameter.", false);
            }
            (
                Some(dep.to_string()),
                c.header("api-key").map(str::to_string),
            )
        }
        _ => {
            if !c.uri_path.ends_with("/chat/completions") {
                return fake.error(404, "Unknown path", false);
            }
            let key = c
                .header("authorization")
                .and_then(|a| a.strip_prefix("Bearer "))
                .map(str::to_string);
            (None, key)
        }
    };
    if let Some(want) = &fake.creds.api_key {
        if key.as_deref() != Some(want.as_str()) {
            return fake.reject(401, "Incorrect API key provided.");
        }
    }
    let Ok(req) = serde_json::from_slice::<Value>(c.body) else {
        return fake.error(
            400,
            "We could not parse the JSON body of your request.",
            false,
        );
    };
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return fake.error(400, "'messages' is a required property", false);
    };
    let model = model_from_path.unwrap_or_else(|| req["model"].as_str().unwrap_or("").to_string());
    let prompt: String = messages
        .iter()
        .map(|m| text_of(&m["content"]))
        .collect::<Vec<_>>()
        .join(" ");
    let prompt_words = words(&prompt);
    if c.too_long(prompt_words) {
        return json(
            StatusCode::BAD_REQUEST,
            &json!({"error": {"message": format!("This model's maximum context length is {} tokens. However, your messages resulted in {prompt_words} tokens.", fake.max_prompt_words.load(std::sync::atomic::Ordering::SeqCst)),
                "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}),
        );
    }
    let last = messages.last().cloned().unwrap_or(Value::Null);
    let last_text = text_of(&last["content"]);
    let tool = req
        .get("tools")
        .and_then(|t| t.get(0))
        .filter(|_| last["role"] == "user");
    let text = reply_text(&last_text);
    let usage = json!({"prompt_tokens": prompt_words, "completion_tokens": words(&text), "total_tokens": prompt_words + words(&text)});
    let id = "chatcmpl-fake";
    if req["stream"] == true {
        let chunk = |delta: Value, finish: Value| {
            Bytes::from(format!(
                "data: {}\n\n",
                json!({"id": id, "object": "chat.completion.chunk", "created": 1, "model": model,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            ))
        };
        let mut events = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        let finish = if let Some(t) = tool {
            let name = t["function"]["name"].as_str().unwrap_or("");
            events.push(chunk(json!({"tool_calls": [{"index": 0, "id": "call_fake", "type": "function", "function": {"name": name, "arguments": ""}}]}), Value::Null));
            events.push(chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": json!({"q": last_text}).to_string()}}]}), Value::Null));
            "tool_calls"
        } else {
            for p in pieces(&text) {
                events.push(chunk(json!({"content": p}), Value::Null));
            }
            "stop"
        };
        events.push(chunk(json!({}), json!(finish)));
        if req.pointer("/stream_options/include_usage") == Some(&json!(true)) {
            events.push(Bytes::from(format!(
                "data: {}\n\n",
                json!({"id": id, "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [], "usage": usage})
            )));
        }
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        let cut = match fake.mode() {
            Mode::CutStreamAfter(n) => Some(n),
            _ => None,
        };
        return stream("text/event-stream", events, cut);
    }
    let message = match tool {
        Some(t) => {
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_fake", "type": "function",
            "function": {"name": t["function"]["name"], "arguments": json!({"q": last_text}).to_string()}}]})
        }
        None => json!({"role": "assistant", "content": text}),
    };
    json(
        StatusCode::OK,
        &json!({"id": id, "object": "chat.completion", "created": 1, "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": if tool.is_some() { "tool_calls" } else { "stop" }}],
                "usage": usage}),
    )
}
