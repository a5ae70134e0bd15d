//! Cached answers sent back to clients: as an OpenAI JSON body, or — for a streaming request —
//! as a valid SSE stream (role chunk, content chunks, finish chunk, optional usage chunk,
//! `[DONE]`), whichever way the answer was first produced.

use bytes::{BufMut, Bytes, BytesMut};
use infergate_semantic::cache::CachedAnswer;
use serde_json::json;

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn usage(a: &CachedAnswer) -> serde_json::Value {
    json!({
        "prompt_tokens": a.prompt_tokens,
        "completion_tokens": a.completion_tokens,
        "total_tokens": a.prompt_tokens + a.completion_tokens,
    })
}

/// The JSON body of a non-streamed answer.
pub fn json_body(a: &CachedAnswer, id: &str, model: &str) -> Bytes {
    let v = if a.chat {
        json!({
            "id": format!("chatcmpl-{id}"),
            "object": "chat.completion",
            "created": now_secs(),
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": a.content},
                "logprobs": null,
                "finish_reason": a.finish_reason,
            }],
            "usage": usage(a),
        })
    } else {
        json!({
            "id": format!("cmpl-{id}"),
            "object": "text_completion",
            "created": now_secs(),
            "model": model,
            "choices": [{"index": 0, "text": a.content, "logprobs": null, "finish_reason": a.finish_reason}],
            "usage": usage(a),
        })
    };
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

/// Pieces of about `n` bytes, cut on char boundaries (a replay looks like a stream).
fn pieces(s: &str, n: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while rest.len() > n {
        let mut cut = n;
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

fn event(buf: &mut BytesMut, v: &serde_json::Value) {
    buf.put_slice(b"data: ");
    buf.put_slice(&serde_json::to_vec(v).unwrap_or_default());
    buf.put_slice(b"\n\n");
}

/// The whole SSE stream of a cached answer.
pub fn sse_body(a: &CachedAnswer, id: &str, model: &str, include_usage: bool) -> Bytes {
    let created = now_secs();
    let mut buf = BytesMut::with_capacity(a.content.len() * 2 + 512);
    if a.chat {
        let id = format!("chatcmpl-{id}");
        let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
            json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            })
        };
        event(
            &mut buf,
            &chunk(json!({"role": "assistant", "content": ""}), json!(null)),
        );
        for p in pieces(&a.content, 64) {
            event(&mut buf, &chunk(json!({"content": p}), json!(null)));
        }
        event(&mut buf, &chunk(json!({}), json!(a.finish_reason)));
        if include_usage {
            event(
                &mut buf,
                &json!({"id": id, "object": "chat.completion.chunk", "created": created,
                        "model": model, "choices": [], "usage": usage(a)}),
            );
        }
    } else {
        let id = format!("cmpl-{id}");
        let chunk = |text: &str, finish: serde_json::Value| {
            json!({
                "id": id, "object": "text_completion", "created": created, "model": model,
                "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": finish}],
            })
        };
        for p in pieces(&a.content, 64) {
            event(&mut buf, &chunk(p, json!(null)));
        }
        event(&mut buf, &chunk("", json!(a.finish_reason)));
        if include_usage {
            event(
                &mut buf,
                &json!({"id": id, "object": "text_completion", "created": created,
                        "model": model, "choices": [], "usage": usage(a)}),
            );
        }
    }
    buf.put_slice(b"data: [DONE]\n\n");
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_replay_reassembles_to_the_answer() {
        let a = CachedAnswer {
            chat: true,
            content: "héllo wörld ".repeat(20),
            finish_reason: "stop".into(),
            prompt_tokens: 3,
            completion_tokens: 40,
            served_model: "x".into(),
        };
        let body = sse_body(&a, "r1", "chat", true);
        let text = std::str::from_utf8(&body).unwrap();
        let mut content = String::new();
        let mut saw_usage = false;
        for ev in text.split("\n\n").filter(|e| !e.is_empty()) {
            let data = ev.strip_prefix("data: ").unwrap();
            if data == "[DONE]" {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(data).unwrap();
            if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
                content.push_str(c);
            }
            saw_usage |= v["usage"]["completion_tokens"] == 40;
        }
        assert_eq!(content, a.content);
        assert!(saw_usage);
        assert!(text.ends_with("data: [DONE]\n\n"));
    }
}
