//! Anthropic Messages (`POST /v1/messages`): `x-api-key` and `anthropic-version` required,
//! `max_tokens` required, turns must alternate starting with `user`; answers and SSE events
//! (`message_start`, `content_block_start`, `ping`, `content_block_delta`, `content_block_stop`,
//! `message_delta`, `message_stop`) as documented.

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{json, Value};

use crate::{json, pieces, reply_text, stream, words, Body, Call, Mode};

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .map(|b| match b["type"].as_str() {
                Some("tool_result") => text_of(&b["content"]),
                _ => b
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            })
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn invalid(c: &Call<'_>, msg: &str) -> Response<Body> {
    c.fake.error(400, msg, false)
}

pub fn handle(c: &Call<'_>) -> Response<Body> {
    let fake = c.fake;
    if c.uri_path != "/v1/messages" {
        return fake.error(404, "Not found", false);
    }
    if let Some(want) = &fake.creds.api_key {
        if c.header("x-api-key") != Some(want.as_str()) {
            return fake.reject(401, "invalid x-api-key");
        }
    }
    if c.header("anthropic-version").is_none() {
        return invalid(c, "anthropic-version: header is required");
    }
    let Ok(req) = serde_json::from_slice::<Value>(c.body) else {
        return invalid(c, "invalid JSON body");
    };
    if req.get("max_tokens").and_then(Value::as_u64).is_none() {
        return invalid(c, "max_tokens: Field required");
    }
    let Some(messages) = req
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
    else {
        return invalid(c, "messages: at least one message is required");
    };
    for (i, m) in messages.iter().enumerate() {
        let want = if i % 2 == 0 { "user" } else { "assistant" };
        if m["role"] != want {
            return invalid(c, &format!("messages: roles must alternate between \"user\" and \"assistant\"; messages.{i} should be {want}"));
        }
    }
    if let Some(sys) = req.get("system") {
        if !sys.is_string() && !sys.is_array() {
            return invalid(c, "system: Input should be a valid string or list");
        }
    }
    let system_words = req.get("system").map_or(0, |s| words(&text_of(s)));
    let prompt_words: usize = messages
        .iter()
        .map(|m| words(&text_of(&m["content"])))
        .sum::<usize>()
        + system_words;
    if c.too_long(prompt_words) {
        return invalid(
            c,
            &format!(
                "prompt is too long: {prompt_words} tokens > {} maximum",
                fake.max_prompt_words
                    .load(std::sync::atomic::Ordering::SeqCst)
            ),
        );
    }
    let model = req["model"].as_str().unwrap_or("").to_string();
    let last = messages.last().cloned().unwrap_or(Value::Null);
    let last_is_tool_result = last["content"]
        .as_array()
        .is_some_and(|b| b.iter().any(|x| x["type"] == "tool_result"));
    let last_text = text_of(&last["content"]);
    let tool = req
        .get("tools")
        .and_then(|t| t.get(0))
        .filter(|_| !last_is_tool_result);
    let text = reply_text(&last_text);
    // The system prompt counts as a cache hit: it exercises cache-read usage mapping.
    let usage = json!({"input_tokens": prompt_words - system_words, "output_tokens": words(&text),
                       "cache_read_input_tokens": system_words, "cache_creation_input_tokens": 0});
    let id = "msg_fake01";
    if req["stream"] == true {
        let ev = |name: &str, v: Value| Bytes::from(format!("event: {name}\ndata: {v}\n\n"));
        let mut events = vec![ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant",
                "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 1, "cache_read_input_tokens": system_words, "cache_creation_input_tokens": 0}}}),
        )];
        let stop = if let Some(t) = tool {
            events.push(ev("content_block_start", json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "tool_use", "id": "toolu_fake", "name": t["name"], "input": {}}})));
            let args = json!({"q": last_text}).to_string();
            let (a, b) = args.split_at(args.len() / 2);
            for part in [a, b] {
                events.push(ev(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": part}}),
                ));
            }
            events.push(ev(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ));
            "tool_use"
        } else {
            events.push(ev("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
            events.push(ev("ping", json!({"type": "ping"})));
            for p in pieces(&text) {
                events.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}})));
            }
            events.push(ev(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ));
            "end_turn"
        };
        events.push(ev(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
            "usage": {"output_tokens": usage["output_tokens"]}}),
        ));
        events.push(ev("message_stop", json!({"type": "message_stop"})));
        let cut = match fake.mode() {
            Mode::CutStreamAfter(n) => Some(n),
            _ => None,
        };
        return stream("text/event-stream", events, cut);
    }
    let (content, stop) = match tool {
        Some(t) => (
            json!([{"type": "tool_use", "id": "toolu_fake", "name": t["name"], "input": {"q": last_text}}]),
            "tool_use",
        ),
        None => (json!([{"type": "text", "text": text}]), "end_turn"),
    };
    json(
        StatusCode::OK,
        &json!({"id": id, "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": stop, "stop_sequence": null, "usage": usage}),
    )
}
