//! AWS Bedrock Converse (`POST /model/{modelId}/converse`) and ConverseStream
//! (`/converse-stream`, answered in `application/vnd.amazon.eventstream` frames: `messageStart`,
//! `contentBlockStart`, `contentBlockDelta`, `contentBlockStop`, `messageStop`, `metadata`).
//! Every request's SigV4 signature is checked ([`crate::sigv4`]); a bad one gets 403
//! `InvalidSignatureException`.

use bytes::Bytes;
use http::{Response, StatusCode};
use infergate_providers::eventstream::encode_event;
use serde_json::{json, Value};

use crate::{json, pieces, reply_text, stream, words, Body, Call, Mode};

fn text_of(blocks: &Value) -> String {
    blocks
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| match b.get("toolResult") {
            Some(tr) => text_of(&tr["content"]),
            None => b
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        })
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn handle(c: &Call<'_>) -> Response<Body> {
    let fake = c.fake;
    let (raw_path, query) = c.path.split_once('?').unwrap_or((c.path, ""));
    if let Some((ak, sk)) = &fake.creds.aws {
        if let Err(e) = crate::sigv4::verify(
            c.method.as_str(),
            raw_path,
            query,
            c.headers,
            c.body,
            ak,
            sk,
        ) {
            return fake.reject(403, &e);
        }
    }
    let Some(rest) = raw_path.strip_prefix("/model/") else {
        return fake.error(404, "UnknownOperationException", false);
    };
    let Some((model_enc, action)) = rest.rsplit_once('/') else {
        return fake.error(404, "UnknownOperationException", false);
    };
    let model = percent_encoding::percent_decode_str(model_enc)
        .decode_utf8_lossy()
        .to_string();
    let streaming = match action {
        "converse" => false,
        "converse-stream" => true,
        _ => return fake.error(404, "UnknownOperationException", false),
    };
    let Ok(req) = serde_json::from_slice::<Value>(c.body) else {
        return fake.error(400, "Malformed input request", false);
    };
    let Some(messages) = req
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
    else {
        return fake.error(400, "A conversation must start with a user message.", false);
    };
    for (i, m) in messages.iter().enumerate() {
        let want = if i % 2 == 0 { "user" } else { "assistant" };
        if m["role"] != want {
            return fake.error(
                400,
                "A conversation must alternate between user and assistant roles.",
                false,
            );
        }
    }
    let system_words = words(&text_of(req.get("system").unwrap_or(&Value::Null)));
    let prompt_words: usize = messages
        .iter()
        .map(|m| words(&text_of(&m["content"])))
        .sum::<usize>()
        + system_words;
    if c.too_long(prompt_words) {
        return fake.error(400, "Input is too long for requested model.", false);
    }
    let last = messages.last().cloned().unwrap_or(Value::Null);
    let last_is_result = last["content"]
        .as_array()
        .is_some_and(|b| b.iter().any(|x| x.get("toolResult").is_some()));
    let last_text = text_of(&last["content"]);
    let tool = req
        .pointer("/toolConfig/tools/0/toolSpec")
        .filter(|_| !last_is_result);
    let text = reply_text(&last_text);
    let usage = json!({"inputTokens": prompt_words - system_words, "outputTokens": words(&text),
                       "totalTokens": prompt_words + words(&text), "cacheReadInputTokens": system_words});
    let _ = model;
    if streaming {
        let ev = |kind: &str, v: Value| Bytes::from(encode_event(kind, v.to_string().as_bytes()));
        let mut events = vec![ev("messageStart", json!({"role": "assistant"}))];
        let stop = if let Some(t) = tool {
            events.push(ev("contentBlockStart", json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "tooluse_fake", "name": t["name"]}}})));
            events.push(ev("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": json!({"q": last_text}).to_string()}}})));
            events.push(ev("contentBlockStop", json!({"contentBlockIndex": 0})));
            "tool_use"
        } else {
            for p in pieces(&text) {
                events.push(ev(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": p}}),
                ));
            }
            events.push(ev("contentBlockStop", json!({"contentBlockIndex": 0})));
            "end_turn"
        };
        events.push(ev("messageStop", json!({"stopReason": stop})));
        events.push(ev(
            "metadata",
            json!({"usage": usage, "metrics": {"latencyMs": 5}}),
        ));
        let cut = match fake.mode() {
            Mode::CutStreamAfter(n) => Some(n),
            _ => None,
        };
        return stream("application/vnd.amazon.eventstream", events, cut);
    }
    let (content, stop) = match tool {
        Some(t) => (
            json!([{"toolUse": {"toolUseId": "tooluse_fake", "name": t["name"], "input": {"q": last_text}}}]),
            "tool_use",
        ),
        None => (json!([{"text": text}]), "end_turn"),
    };
    json(
        StatusCode::OK,
        &json!({"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
                "usage": usage, "metrics": {"latencyMs": 5}}),
    )
}
