//! Golden fixtures: `tests/fixtures/<provider>/<case>.json` × provider → `tests/snapshots/<provider>/<case>.json`.
//!
//! A fixture holds the input (an OpenAI request, or a provider's answer / stream / error written
//! from the provider's documented format) and the target; the snapshot holds what the
//! translation produced. Set `BLESS=1` to write snapshots after reviewing a change; without it a
//! difference (or a missing snapshot) fails.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use bytes::Bytes;
use infergate_providers::{anthropic, eventstream, Operation, ProviderKind, Target};
use serde_json::{json, Value};

fn provider_of(dir: &str) -> Option<ProviderKind> {
    Some(match dir {
        "openai" => ProviderKind::OpenAi,
        "azure" => ProviderKind::AzureOpenAi,
        "anthropic" => ProviderKind::Anthropic,
        "bedrock" => ProviderKind::Bedrock,
        "vertex" => ProviderKind::VertexAi,
        "gemini" => ProviderKind::Gemini,
        _ => return None,
    })
}

fn target(fx: &Value) -> (String, bool) {
    (
        fx.pointer("/target/model")
            .and_then(Value::as_str)
            .unwrap_or("test-model")
            .to_string(),
        fx.pointer("/target/stream")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    )
}

fn events_to_json(events: Vec<Bytes>) -> Value {
    Value::Array(
        events
            .iter()
            .map(|e| {
                let text = String::from_utf8_lossy(e).to_string();
                let name = infergate_protocol::sse::event_name(e).map(|n| String::from_utf8_lossy(n).to_string());
                let data = infergate_protocol::sse::event_data(e).map(|d| String::from_utf8_lossy(&d).to_string());
                match (name, data) {
                    (Some(n), Some(d)) => json!({"event": n, "data": serde_json::from_str::<Value>(&d).unwrap_or(Value::String(d))}),
                    (None, Some(d)) => serde_json::from_str::<Value>(&d).unwrap_or(Value::String(d)),
                    _ => Value::String(text),
                }
            })
            .collect(),
    )
}

fn run_case(dir: &str, fx: &Value) -> Value {
    let kind = fx["kind"].as_str().unwrap();
    let (model, stream) = target(fx);
    if dir == "anthropic-client" {
        return match kind {
            "request" => serde_json::from_slice(
                &anthropic::openai_body_from_messages(fx["input"].to_string().as_bytes()).unwrap(),
            )
            .unwrap(),
            "response" => serde_json::from_slice(
                &anthropic::messages_body_from_openai(fx["input"].to_string().as_bytes()).unwrap(),
            )
            .unwrap(),
            "stream" => {
                let mut enc = anthropic::MessagesStreamEncoder::new(model);
                let mut out = Vec::new();
                for ev in fx["input"].as_array().unwrap() {
                    let raw = match ev.as_str() {
                        Some(s) => format!("data: {s}\n\n"),
                        None => format!("data: {ev}\n\n"),
                    };
                    let b = enc.process(raw.as_bytes());
                    let mut sp = infergate_protocol::SseSplitter::new();
                    sp.feed(b, |e| out.push(e));
                }
                events_to_json(out)
            }
            other => panic!("unknown kind {other}"),
        };
    }
    let provider = provider_of(dir).unwrap().provider();
    let t = Target {
        model: &model,
        operation: Operation::Chat,
        stream,
        region: fx.pointer("/target/region").and_then(Value::as_str),
        project: fx.pointer("/target/project").and_then(Value::as_str),
        api_version: fx.pointer("/target/api_version").and_then(Value::as_str),
        created: 1_700_000_000,
        request_id: "req-1",
    };
    match kind {
        "request" => {
            let body = Bytes::from(fx["input"].to_string());
            let r = provider.build_request(&body, &t).unwrap();
            let headers: serde_json::Map<String, Value> = r
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        Value::String(v.to_str().unwrap().to_string()),
                    )
                })
                .collect();
            json!({"path": r.path_and_query, "headers": headers, "body": serde_json::from_slice::<Value>(&r.body).unwrap()})
        }
        "response" => {
            let body = Bytes::from(fx["input"].to_string());
            serde_json::from_slice(&provider.translate_response(&body, &t).unwrap()).unwrap()
        }
        "stream" => {
            // The same events, fed whole and fed one byte at a time, must translate the same.
            let wire: Vec<u8> = if dir == "bedrock" {
                fx["input"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|e| {
                        eventstream::encode_event(
                            e["event"].as_str().unwrap(),
                            e["payload"].to_string().as_bytes(),
                        )
                    })
                    .collect()
            } else {
                fx["input"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e.as_str().unwrap().to_string())
                    .collect::<String>()
                    .into_bytes()
            };
            let run = |chunk: usize| {
                let mut tr = provider.stream_translator(&t);
                let mut out = Vec::new();
                for piece in wire.chunks(chunk) {
                    tr.feed(Bytes::copy_from_slice(piece), &mut |b| out.push(b));
                }
                tr.finish(&mut |b| out.push(b));
                out
            };
            let whole = run(wire.len().max(1));
            let bytewise = run(1);
            assert_eq!(whole, bytewise, "{dir}: chunking changed the translation");
            events_to_json(whole)
        }
        "error" => {
            let status = fx["status"].as_u64().unwrap() as u16;
            let body = fx["input"].to_string();
            let class = format!("{:?}", provider.classify_error(status, body.as_bytes()));
            json!({"class": class, "body": serde_json::from_slice::<Value>(&provider.translate_error(status, body.as_bytes())).unwrap()})
        }
        other => panic!("unknown kind {other}"),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

#[test]
fn golden_fixtures() {
    let bless = std::env::var("BLESS").is_ok();
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(root().join("fixtures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_str().unwrap().to_string();
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            let fx: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
            let got = run_case(&name, &fx);
            let snap = root()
                .join("snapshots")
                .join(&name)
                .join(f.file_name().unwrap());
            let pretty = serde_json::to_string_pretty(&got).unwrap() + "\n";
            if bless {
                std::fs::create_dir_all(snap.parent().unwrap()).unwrap();
                std::fs::write(&snap, &pretty).unwrap();
            } else {
                match std::fs::read_to_string(&snap) {
                    Ok(want) if want == pretty => {}
                    Ok(want) => failures.push(format!(
                        "{}: differs\n--- want\n{want}\n--- got\n{pretty}",
                        snap.display()
                    )),
                    Err(_) => failures.push(format!(
                        "{}: no snapshot (run with BLESS=1 after review)",
                        snap.display()
                    )),
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} fixtures found");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
