//! End-to-end tests: a fleet on OS-chosen loopback ports, driven over real HTTP/1.1 and h2c.
//!
//! Timing assertions are relative (warm vs cold, queued vs running) with generous margins, never
//! absolute milliseconds.

// Helpers outside #[test] functions are test code too.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use infergate_sim::{FailureType, KvEvent, SimConfig, SimFleet};
use serde_json::{json, Value};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn fleet(config: SimConfig, replicas: usize) -> SimFleet {
    SimFleet::start(config, LOCALHOST, 0, replicas)
        .await
        .expect("fleet starts")
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

fn h2c_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: Method,
    addr: SocketAddr,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let req = req
        .header("content-type", "application/json")
        .body(Full::new(body))
        .unwrap();
    let resp = client.request(req).await.expect("request sent");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body read").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

async fn post(addr: SocketAddr, path: &str, body: Value) -> Reply {
    send(&client(), Method::POST, addr, path, Some(body), &[]).await
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(&client(), Method::GET, addr, path, None, &[]).await
}

/// The JSON payloads of an SSE body (without `[DONE]`), and whether `[DONE]` ended it.
fn sse(body: &str) -> (Vec<Value>, bool) {
    assert!(
        body.ends_with("\n\n") || body.is_empty(),
        "events end with a blank line: {body:?}"
    );
    let mut events = Vec::new();
    let mut done = false;
    for event in body.split("\n\n").filter(|e| !e.is_empty()) {
        let data = event
            .strip_prefix("data: ")
            .unwrap_or_else(|| panic!("not an SSE data event: {event:?}"));
        assert!(!done, "nothing may follow [DONE]");
        if data == "[DONE]" {
            done = true;
        } else {
            events.push(
                serde_json::from_str(data).unwrap_or_else(|e| panic!("bad chunk {data:?}: {e}")),
            );
        }
    }
    (events, done)
}

/// The value of the first sample whose series starts with `prefix`.
fn metric(text: &str, prefix: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("{prefix} missing:\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

async fn metrics(addr: SocketAddr) -> String {
    let r = get(addr, "/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    r.text()
}

fn chat(model: &str, content: &str, extra: &Value) -> Value {
    let mut body = json!({"model": model, "messages": [{"role": "user", "content": content}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

fn config() -> SimConfig {
    SimConfig {
        model: "test-model".into(),
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn chat_completion_non_streamed() {
    let f = fleet(config(), 1).await;
    let addr = f.addrs()[0];
    let r = post(
        addr,
        "/v1/chat/completions",
        chat(
            "test-model",
            "Hello there, model!",
            &json!({"max_tokens": 12}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(
        r.headers["x-inference-port"],
        addr.port().to_string().as_str()
    );
    assert!(r.headers.contains_key("x-inference-pod"));
    assert!(r.headers.contains_key("x-inference-namespace"));
    let v = r.json();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "test-model");
    assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
    let choice = &v["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(
        choice["finish_reason"], "length",
        "max_tokens set: exactly that many tokens"
    );
    let content = choice["message"]["content"].as_str().unwrap();
    assert_eq!(infergate_sim::tokenizer::count_tokens(content), 12);
    let usage = &v["usage"];
    assert_eq!(usage["completion_tokens"], 12);
    // "Hello there, model!" = 5 tokens + 3 template tokens
    assert_eq!(usage["prompt_tokens"], 8);
    assert_eq!(usage["total_tokens"], 20);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);

    // without max_tokens: a random length, finish reason "stop"
    let v = post(
        addr,
        "/v1/chat/completions",
        chat("test-model", "hi", &json!({})),
    )
    .await
    .json();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let n = v["usage"]["completion_tokens"].as_u64().unwrap();
    assert!((1..=64).contains(&n));
    f.shutdown().await;
}

#[tokio::test]
async fn chat_stream_with_include_usage_has_the_openai_shape() {
    let f = fleet(config(), 1).await;
    let addr = f.addrs()[0];
    let request = chat("test-model", "stream me", &json!({"max_tokens": 5}));
    let full = post(addr, "/v1/chat/completions", request.clone())
        .await
        .json();

    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let r = post(addr, "/v1/chat/completions", streamed).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let (events, done) = sse(&r.text());
    assert!(done, "ends with [DONE]");
    // role chunk + 5 tokens + finish chunk + usage chunk
    assert_eq!(events.len(), 8, "{events:#?}");
    let id = events[0]["id"].as_str().unwrap();
    for e in &events {
        assert_eq!(e["id"], id);
        assert_eq!(e["object"], "chat.completion.chunk");
        assert_eq!(e["model"], "test-model");
        assert!(
            e.as_object().unwrap().contains_key("usage"),
            "every chunk carries usage: {e}"
        );
    }
    assert_eq!(
        events[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let mut content = String::new();
    for e in &events[1..6] {
        assert_eq!(e["usage"], Value::Null);
        assert_eq!(e["choices"][0]["finish_reason"], Value::Null);
        content.push_str(e["choices"][0]["delta"]["content"].as_str().unwrap());
    }
    assert_eq!(
        content,
        full["choices"][0]["message"]["content"].as_str().unwrap(),
        "same text streamed or not"
    );
    assert_eq!(events[6]["choices"][0]["delta"], json!({}));
    assert_eq!(events[6]["choices"][0]["finish_reason"], "length");
    assert_eq!(events[6]["usage"], Value::Null);
    assert_eq!(events[7]["choices"], json!([]));
    assert_eq!(events[7]["usage"]["completion_tokens"], 5);
    assert_eq!(
        events[7]["usage"]["prompt_tokens"],
        full["usage"]["prompt_tokens"]
    );

    // without include_usage no chunk mentions usage
    let mut plain = request;
    plain["stream"] = json!(true);
    let (events, done) = sse(&post(addr, "/v1/chat/completions", plain).await.text());
    assert!(done);
    assert_eq!(events.len(), 7);
    assert!(events
        .iter()
        .all(|e| !e.as_object().unwrap().contains_key("usage")));
    f.shutdown().await;
}

#[tokio::test]
async fn text_completions_streamed_and_not() {
    let f = fleet(
        SimConfig {
            mode: infergate_sim::Mode::Echo,
            ..config()
        },
        1,
    )
    .await;
    let addr = f.addrs()[0];
    let v = post(
        addr,
        "/v1/completions",
        json!({"model": "test-model", "prompt": "echo these words back"}),
    )
    .await
    .json();
    assert!(v["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], "echo these words back");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    assert_eq!(v["usage"]["completion_tokens"], 4);

    let body = json!({"model": "test-model", "prompt": "echo these words back", "max_tokens": 2, "stream": true,
                      "stream_options": {"include_usage": true}});
    let (events, done) = sse(&post(addr, "/v1/completions", body).await.text());
    assert!(done);
    let texts: Vec<&str> = events
        .iter()
        .filter_map(|e| e["choices"].get(0)?["text"].as_str())
        .collect();
    assert_eq!(texts, vec!["echo", " these", ""]);
    assert_eq!(events[2]["choices"][0]["finish_reason"], "length");
    assert_eq!(events[3]["choices"], json!([]));
    assert_eq!(events[3]["usage"]["completion_tokens"], 2);
    assert!(events.iter().all(|e| e["object"] == "text_completion"));

    // chat echo answers with the last user message
    let v = post(addr, "/v1/chat/completions", json!({"messages": [
        {"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "second one"}
    ]}))
    .await
    .json();
    assert_eq!(v["choices"][0]["message"]["content"], "second one");
    assert_eq!(
        v["model"], "test-model",
        "a request without model gets the served name"
    );
    f.shutdown().await;
}

#[tokio::test]
async fn embeddings_are_deterministic_unit_vectors() {
    let f = fleet(config(), 1).await;
    let addr = f.addrs()[0];
    let r = post(
        addr,
        "/v1/embeddings",
        json!({"model": "test-model", "input": ["alpha beta", "gamma"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    let first: Vec<f64> = v["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(first.len(), 384);
    let norm: f64 = first.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4);
    assert_eq!(v["data"][1]["index"], 1);
    assert_ne!(v["data"][0]["embedding"], v["data"][1]["embedding"]);

    let again = post(addr, "/v1/embeddings", json!({"input": "alpha beta"}))
        .await
        .json();
    assert_eq!(again["data"][0]["embedding"], v["data"][0]["embedding"]);

    let small = post(
        addr,
        "/v1/embeddings",
        json!({"input": "x", "dimensions": 8, "encoding_format": "base64"}),
    )
    .await
    .json();
    let b64 = small["data"][0]["embedding"].as_str().unwrap();
    assert_eq!(b64.len(), 44, "8 f32 = 32 bytes = 44 base64 characters");
    f.shutdown().await;
}

#[tokio::test]
async fn models_and_lora_adapters() {
    let cfg = SimConfig {
        lora_modules: vec![r#"{"name":"food-review","path":"/adapters/food"}"#.parse().unwrap()],
        served_model_name: vec!["alias-a".into(), "alias-b".into()],
        ..config()
    };
    let f = fleet(cfg, 1).await;
    let addr = f.addrs()[0];
    let ids = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let v = get(addr, "/v1/models").await.json();
    assert_eq!(ids(&v), vec!["alias-a", "alias-b", "food-review"]);
    assert_eq!(v["data"][2]["parent"], "alias-a");
    assert_eq!(v["data"][2]["root"], "/adapters/food");

    // served names replace --model
    assert_eq!(
        post(
            addr,
            "/v1/chat/completions",
            chat("test-model", "x", &json!({}))
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    let lora = post(
        addr,
        "/v1/chat/completions",
        chat("food-review", "x", &json!({})),
    )
    .await;
    assert_eq!(lora.status, StatusCode::OK);
    assert_eq!(lora.json()["model"], "food-review");

    let r = post(
        addr,
        "/v1/load_lora_adapter",
        json!({"lora_name": "sql", "lora_path": "/adapters/sql"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        post(
            addr,
            "/v1/load_lora_adapter",
            json!({"lora_name": "sql", "lora_path": "/x"})
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        ids(&get(addr, "/v1/models").await.json()),
        vec!["alias-a", "alias-b", "food-review", "sql"]
    );
    assert_eq!(
        post(
            addr,
            "/v1/completions",
            json!({"model": "sql", "prompt": "q"})
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        post(addr, "/v1/unload_lora_adapter", json!({"lora_name": "sql"}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        post(addr, "/v1/unload_lora_adapter", json!({"lora_name": "sql"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post(
            addr,
            "/v1/completions",
            json!({"model": "sql", "prompt": "q"})
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    f.shutdown().await;
}

fn assert_openai_error(r: &Reply, status: StatusCode, code: Option<&str>) {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    let e = v["error"]
        .as_object()
        .unwrap_or_else(|| panic!("no error object: {v}"));
    for key in ["message", "type", "param", "code"] {
        assert!(e.contains_key(key), "{key} missing: {v}");
    }
    assert!(!e["message"].as_str().unwrap().is_empty());
    if let Some(code) = code {
        assert_eq!(e["code"], code);
    }
    assert!(
        r.headers.contains_key("x-inference-pod"),
        "identity headers on errors too"
    );
}

#[tokio::test]
async fn request_validation_errors() {
    let f = fleet(
        SimConfig {
            max_model_len: 50,
            max_request_body_size_mb: 1,
            ..config()
        },
        1,
    )
    .await;
    let addr = f.addrs()[0];
    let c = client();
    let raw = |body: &'static str| {
        let c = c.clone();
        async move {
            let req = Request::post(format!("http://{addr}/v1/chat/completions"))
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            let resp = c.request(req).await.unwrap();
            let (parts, body) = resp.into_parts();
            Reply {
                status: parts.status,
                headers: parts.headers,
                body: body.collect().await.unwrap().to_bytes(),
            }
        }
    };
    assert_openai_error(&raw("{not json").await, StatusCode::BAD_REQUEST, None);
    assert_openai_error(
        &raw(r#"{"model":"test-model"}"#).await,
        StatusCode::BAD_REQUEST,
        None,
    );
    assert_openai_error(&raw("").await, StatusCode::BAD_REQUEST, None);
    assert_openai_error(
        &post(addr, "/v1/chat/completions", chat("nope", "x", &json!({}))).await,
        StatusCode::NOT_FOUND,
        Some("model_not_found"),
    );
    let long = "word ".repeat(40);
    assert_openai_error(
        &post(
            addr,
            "/v1/chat/completions",
            chat("test-model", &long, &json!({"max_tokens": 20})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        Some("context_length_exceeded"),
    );
    // fits without the completion budget
    assert_eq!(
        post(
            addr,
            "/v1/chat/completions",
            chat("test-model", &long, &json!({}))
        )
        .await
        .status,
        StatusCode::OK
    );
    let huge = "x".repeat(1024 * 1024 + 10);
    assert_openai_error(
        &post(addr, "/v1/completions", json!({"prompt": huge})).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        None,
    );
    assert_openai_error(&get(addr, "/v1/nothing").await, StatusCode::NOT_FOUND, None);
    assert_openai_error(
        &get(addr, "/v1/chat/completions").await,
        StatusCode::METHOD_NOT_ALLOWED,
        None,
    );
    f.shutdown().await;
}

#[tokio::test]
async fn x_return_error_forces_a_status() {
    let f = fleet(config(), 1).await;
    let addr = f.addrs()[0];
    let c = client();
    for (code, status, error_code) in [
        (
            "429",
            StatusCode::TOO_MANY_REQUESTS,
            Some("rate_limit_exceeded"),
        ),
        ("503", StatusCode::SERVICE_UNAVAILABLE, None),
        ("401", StatusCode::UNAUTHORIZED, Some("invalid_api_key")),
        ("500", StatusCode::INTERNAL_SERVER_ERROR, None),
    ] {
        let r = send(
            &c,
            Method::POST,
            addr,
            "/v1/chat/completions",
            Some(chat("test-model", "x", &json!({}))),
            &[("x-return-error", code)],
        )
        .await;
        assert_openai_error(&r, status, error_code);
    }
    let r = send(
        &c,
        Method::POST,
        addr,
        "/v1/chat/completions",
        Some(chat("test-model", "x", &json!({}))),
        &[("x-return-error", "429")],
    )
    .await;
    assert_eq!(r.headers["retry-after"], "1");
    f.shutdown().await;
}

#[tokio::test]
async fn failure_injection_rate_and_runtime_admin_config() {
    let cfg = SimConfig {
        failure_injection_rate: 100.0,
        failure_types: vec![FailureType::RateLimit],
        ..config()
    };
    let f = fleet(cfg, 1).await;
    let addr = f.addrs()[0];
    for _ in 0..10 {
        assert_openai_error(
            &post(
                addr,
                "/v1/chat/completions",
                chat("test-model", "x", &json!({})),
            )
            .await,
            StatusCode::TOO_MANY_REQUESTS,
            Some("rate_limit_exceeded"),
        );
    }
    // management endpoints never fail
    assert_eq!(get(addr, "/v1/models").await.status, StatusCode::OK);

    let r = post(
        addr,
        "/admin/config",
        json!({"failure-injection-rate": 50, "failure-types": ["server_error"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["failure-injection-rate"], 50.0);
    let mut failed = 0;
    for _ in 0..200 {
        let r = post(
            addr,
            "/v1/chat/completions",
            chat("test-model", "x", &json!({})),
        )
        .await;
        match r.status {
            StatusCode::OK => {}
            StatusCode::SERVICE_UNAVAILABLE => failed += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!((50..150).contains(&failed), "about half fail: {failed}/200");

    assert_eq!(
        post(addr, "/admin/config", json!({"failure-injection-rate": 0}))
            .await
            .status,
        StatusCode::OK
    );
    for _ in 0..20 {
        assert_eq!(
            post(
                addr,
                "/v1/chat/completions",
                chat("test-model", "x", &json!({}))
            )
            .await
            .status,
            StatusCode::OK
        );
    }
    assert_eq!(
        post(
            addr,
            "/admin/config",
            json!({"failure-injection-rate": 500})
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post(addr, "/admin/config", json!({"max-num-seqs": 3}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(addr, "/admin/config").await.json()["failure-injection-rate"],
        0.0
    );
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_num_seqs_queueing_is_visible_in_metrics() {
    // Streams of 3 tokens, 150 ms apart: requests hold their slot for ~300 ms.
    let cfg = SimConfig {
        max_num_seqs: 2,
        inter_token_latency: 150.0,
        ..config()
    };
    let f = fleet(cfg, 1).await;
    let addr = f.addrs()[0];
    let c = client();
    // A streamed response's headers come back once the request is queued or running, so after
    // five heads the engine state is settled and /metrics must show it.
    let mut bodies = Vec::new();
    for i in 0..5 {
        let body = chat(
            "test-model",
            &format!("request {i}"),
            &json!({"max_tokens": 3, "stream": true}),
        );
        let req = Request::post(format!("http://{addr}/v1/chat/completions"))
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let resp = c.request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        bodies.push(resp.into_body());
    }
    let m = metrics(addr).await;
    assert_eq!(metric(&m, "vllm:num_requests_running{"), 2.0, "{m}");
    assert_eq!(metric(&m, "vllm:num_requests_waiting{"), 3.0, "{m}");

    let started = Instant::now();
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            tokio::spawn(async move {
                let mut body = body;
                let mut first_data_at = None;
                let mut text = Vec::new();
                while let Some(frame) = body.frame().await {
                    let frame = frame.unwrap();
                    if let Some(data) = frame.data_ref() {
                        first_data_at.get_or_insert_with(Instant::now);
                        text.extend_from_slice(data);
                    }
                }
                (first_data_at.unwrap(), String::from_utf8(text).unwrap())
            })
        })
        .collect();
    let mut firsts = Vec::new();
    for t in tasks {
        let (first, text) = t.await.unwrap();
        assert!(sse(&text).1, "completed with [DONE]");
        firsts.push(first.duration_since(started));
    }
    // The three queued requests start only after a running one finishes (~300 ms).
    let running_max = firsts[..2].iter().max().unwrap();
    let queued_min = firsts[2..].iter().min().unwrap();
    assert!(
        queued_min > running_max,
        "queued requests start later: {firsts:?}"
    );

    let m = metrics(addr).await;
    assert_eq!(metric(&m, "vllm:num_requests_running{"), 0.0);
    assert_eq!(metric(&m, "vllm:num_requests_waiting{"), 0.0);
    assert_eq!(metric(&m, "vllm:request_queue_time_seconds_count{"), 5.0);
    assert!(
        metric(&m, "vllm:request_queue_time_seconds_sum{") > 0.2,
        "{m}"
    );
    assert_eq!(metric(&m, "vllm:generation_tokens_total{"), 15.0);
    assert_eq!(
        metric(
            &m,
            "vllm:request_success_total{model_name=\"test-model\",finish_reason=\"length\"}"
        ),
        5.0
    );
    assert_eq!(metric(&m, "vllm:inter_token_latency_seconds_count{"), 10.0);
    f.shutdown().await;
}

#[tokio::test]
async fn waiting_queue_overflow_is_429() {
    let cfg = SimConfig {
        max_num_seqs: 1,
        max_waiting_queue_length: 1,
        inter_token_latency: 10_000.0,
        ..config()
    };
    let f = fleet(cfg, 1).await;
    let addr = f.addrs()[0];
    let c = client();
    let mut held = Vec::new();
    for _ in 0..2 {
        let body = chat("test-model", "x", &json!({"max_tokens": 3, "stream": true}));
        let req = Request::post(format!("http://{addr}/v1/chat/completions"))
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        held.push(c.request(req).await.unwrap());
    }
    assert_openai_error(
        &post(
            addr,
            "/v1/chat/completions",
            chat("test-model", "x", &json!({"stream": true})),
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS,
        Some("rate_limit_exceeded"),
    );
    drop(held);
    f.shutdown().await;
}

#[tokio::test]
async fn prefix_cache_hits_shorten_time_to_first_token() {
    // Per-token prefill of a realistic-looking 10 ms/token, run 20× faster by time-scale:
    // ~400 prompt tokens cost ~200 ms cold; a cached prefix skips nearly all of it.
    let cfg = SimConfig {
        prefill_overhead: 10.0,
        prefill_time_per_token: 10.0,
        time_scale: 0.05,
        ..config()
    };
    let f = fleet(cfg, 1).await;
    let addr = f.addrs()[0];
    let mut events = f.kv_events(0).expect("kv cache enabled");
    let system = "You are a careful assistant that answers questions about routing. ".repeat(40);
    let ask = |question: &str| {
        json!({"model": "test-model", "max_tokens": 1, "messages": [
            {"role": "system", "content": system}, {"role": "user", "content": question}]})
    };
    let timed = |body: Value| async move {
        let start = Instant::now();
        let r = post(addr, "/v1/chat/completions", body).await;
        assert_eq!(r.status, StatusCode::OK);
        (start.elapsed(), r.json())
    };
    let (cold, v) = timed(ask("what is a replica?")).await;
    let prompt_tokens = v["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(prompt_tokens > 400, "{prompt_tokens}");
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    assert!(matches!(events.try_recv(), Ok(KvEvent::BlockStored { .. })));

    let (warm, v) = timed(ask("and what is a pool?")).await;
    let cached = v["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert!(
        cached >= prompt_tokens - 32 && cached % 16 == 0,
        "shared system prompt is cached: {cached}/{prompt_tokens}"
    );
    assert!(
        warm * 2 < cold,
        "a cached prefix shortens prefill: cold {cold:?}, warm {warm:?}"
    );

    let m = metrics(addr).await;
    assert_eq!(metric(&m, "vllm:prefix_cache_hits_total{"), cached as f64);
    assert!(metric(&m, "vllm:prefix_cache_queries_total{") >= (2 * prompt_tokens) as f64);
    assert_eq!(
        metric(&m, "vllm:kv_cache_usage_perc{"),
        0.0,
        "nothing running"
    );
    assert!(m.contains("vllm:cache_config_info{model_name=\"test-model\",block_size=\"16\""));
    f.shutdown().await;
}

// A current-thread runtime: kill must act before the caller awaits anything.
#[tokio::test]
async fn kill_refuses_connections_and_cuts_streams() {
    let cfg = SimConfig {
        inter_token_latency: 200.0,
        ..config()
    };
    let f = fleet(cfg, 3).await;
    let addrs = f.addrs();
    let c = client();
    let body = chat(
        "test-model",
        "x",
        &json!({"max_tokens": 50, "stream": true}),
    );
    let req = Request::post(format!("http://{}/v1/chat/completions", addrs[1]))
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let mut stream = c.request(req).await.unwrap().into_body();
    let first = stream.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    let idle = tokio::net::TcpStream::connect(addrs[1]).await.unwrap();

    f.kill(1);
    // New connections are refused as soon as kill returns.
    let refused = tokio::net::TcpStream::connect(addrs[1]).await;
    assert!(
        matches!(&refused, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "still accepting after kill: {refused:?}"
    );
    // An idle connection is closed.
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), idle.readable()).await;
    assert!(read.is_ok(), "idle connection not closed");
    assert!(!matches!(idle.try_read(&mut buf), Ok(n) if n > 0));
    // The in-flight stream is cut without [DONE].
    let mut rest = Vec::new();
    let ended_with_error = loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.frame())
            .await
            .expect("stream ends promptly")
        {
            Some(Ok(frame)) => {
                rest.extend_from_slice(frame.data_ref().map_or(&b""[..], |d| &d[..]));
            }
            Some(Err(_)) => break true,
            None => break false,
        }
    };
    assert!(
        ended_with_error,
        "a cut chunked body is an error, not a clean end"
    );
    assert!(!String::from_utf8_lossy(&rest).contains("[DONE]"));
    // The others keep serving.
    for i in [0, 2] {
        assert_eq!(
            post(
                addrs[i],
                "/v1/chat/completions",
                chat("test-model", "x", &json!({"max_tokens": 1}))
            )
            .await
            .status,
            StatusCode::OK
        );
    }
    f.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addrs[0]).await.is_err(),
        "shutdown closes the listeners"
    );
}

#[tokio::test]
async fn h2c_prior_knowledge_works() {
    let f = fleet(config(), 1).await;
    let addr = f.addrs()[0];
    let c = h2c_client();
    let req = Request::post(format!("http://{addr}/v1/chat/completions"))
        .body(Full::new(Bytes::from(
            chat("test-model", "over h2", &json!({"max_tokens": 4})).to_string(),
        )))
        .unwrap();
    let resp = c.request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().contains_key("x-inference-pod"));
    let streamed = chat(
        "test-model",
        "over h2",
        &json!({"max_tokens": 4, "stream": true}),
    );
    let r = send(
        &c,
        Method::POST,
        addr,
        "/v1/chat/completions",
        Some(streamed),
        &[],
    )
    .await;
    let (events, done) = sse(&r.text());
    assert!(done);
    assert_eq!(events.len(), 6);
    f.shutdown().await;
}

#[tokio::test]
async fn fake_metrics_from_flags_and_admin_config() {
    let cfg = SimConfig {
        fake_metrics: Some(
            infergate_sim::fake_metrics::FakeMetrics::parse(
                r#"{"running-requests":7,"kv-cache-usage":0.4}"#,
            )
            .unwrap(),
        ),
        ..config()
    };
    let f = fleet(cfg, 2).await;
    let [a, b] = [f.addrs()[0], f.addrs()[1]];
    let m = metrics(a).await;
    assert_eq!(metric(&m, "vllm:num_requests_running{"), 7.0);
    assert_eq!(metric(&m, "vllm:kv_cache_usage_perc{"), 0.4);
    assert_eq!(metric(&m, "vllm:gpu_cache_usage_perc{"), 0.4);
    assert_eq!(
        metric(&m, "vllm:num_requests_waiting{"),
        0.0,
        "keys not faked stay real"
    );

    // change one replica's reported load at runtime; the other keeps its own
    let r = post(b, "/admin/config", json!({"fake-metrics": {"waiting-requests": 12, "loras": [{"running": "x,y", "waiting": "z"}]}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let m = metrics(b).await;
    assert_eq!(metric(&m, "vllm:num_requests_waiting{"), 12.0);
    assert_eq!(metric(&m, "vllm:num_requests_running{"), 0.0);
    assert!(
        m.contains(r#"running_lora_adapters="x,y",waiting_lora_adapters="z""#),
        "{m}"
    );
    assert_eq!(metric(&metrics(a).await, "vllm:num_requests_running{"), 7.0);
    assert_eq!(
        post(b, "/admin/config", json!({"fake-metrics": null}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(metric(&metrics(b).await, "vllm:num_requests_waiting{"), 0.0);
    f.shutdown().await;
}

#[tokio::test]
async fn lora_requests_info_reports_running_adapters() {
    let cfg = SimConfig {
        lora_modules: vec!["a=/a".parse().unwrap(), "b=/b".parse().unwrap()],
        max_loras: 1,
        inter_token_latency: 10_000.0,
        ..config()
    };
    let f = fleet(cfg, 1).await;
    let addr = f.addrs()[0];
    let c = client();
    let mut held = Vec::new();
    for model in ["a", "b"] {
        let body = chat(model, "x", &json!({"max_tokens": 3, "stream": true}));
        let req = Request::post(format!("http://{addr}/v1/chat/completions"))
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        held.push(c.request(req).await.unwrap());
    }
    let m = metrics(addr).await;
    assert!(
        m.contains(r#"max_lora="1",running_lora_adapters="a",waiting_lora_adapters="b""#),
        "{m}"
    );
    let ts = metric(&m, "vllm:lora_requests_info{");
    assert!(ts > 1.6e9, "value is a unix timestamp: {ts}");
    drop(held);
    f.shutdown().await;
}

/// Sends a streamed chat with `X-Fail-After-Tokens` and reads until the stream ends: the text
/// received, and whether it ended with an error (a cut) rather than a clean end.
async fn stream_with_failure(
    addr: SocketAddr,
    max_tokens: u32,
    fail_after: &str,
) -> (String, bool) {
    let body = chat(
        "test-model",
        "x",
        &json!({"max_tokens": max_tokens, "stream": true}),
    );
    let req = Request::post(format!("http://{addr}/v1/chat/completions"))
        .header("x-fail-after-tokens", fail_after)
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut received = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => received.extend_from_slice(f.data_ref().map_or(&b""[..], |d| &d[..])),
            Err(_) => return (String::from_utf8(received).unwrap(), true),
        }
    }
    (String::from_utf8(received).unwrap(), false)
}

fn content_tokens(text: &str) -> usize {
    let (events, _) = sse(text);
    events
        .iter()
        .filter(|e| {
            e["choices"][0]["delta"]
                .get("content")
                .is_some_and(|c| c != "")
        })
        .count()
}

#[tokio::test]
async fn stream_fails_after_n_tokens_on_request() {
    let f = fleet(config(), 1).await;
    let addr = f.addrs()[0];
    let (text, cut) = stream_with_failure(addr, 10, "3").await;
    assert!(cut, "the connection is cut, not closed cleanly");
    assert!(!text.contains("[DONE]"));
    assert_eq!(content_tokens(&text), 3, "{text}");
    // a response shorter than N is cut after its last token
    let (text, cut) = stream_with_failure(addr, 2, "5").await;
    assert!(cut && !text.contains("[DONE]"));
    assert_eq!(content_tokens(&text), 2, "{text}");
    assert!(!text.contains("\"finish_reason\":\"length\""));
    let m = metrics(addr).await;
    assert_eq!(
        metric(
            &m,
            "vllm:request_success_total{model_name=\"test-model\",finish_reason=\"abort\"}"
        ),
        2.0
    );
    assert_openai_error(
        &send(
            &client(),
            Method::POST,
            addr,
            "/v1/chat/completions",
            Some(chat("test-model", "x", &json!({"stream": true}))),
            &[("x-fail-after-tokens", "soon")],
        )
        .await,
        StatusCode::BAD_REQUEST,
        None,
    );
    f.shutdown().await;
}

#[tokio::test]
async fn health_waits_for_startup_duration() {
    let f = fleet(
        SimConfig {
            startup_duration: 300.0,
            ..config()
        },
        1,
    )
    .await;
    let addr = f.addrs()[0];
    assert_eq!(
        get(addr, "/health").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get(addr, "/health/ready").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_openai_error(
        &post(
            addr,
            "/v1/chat/completions",
            chat("test-model", "x", &json!({})),
        )
        .await,
        StatusCode::SERVICE_UNAVAILABLE,
        None,
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(get(addr, "/health").await.status, StatusCode::OK);
    assert_eq!(get(addr, "/health/ready").await.status, StatusCode::OK);
    f.shutdown().await;
}

#[tokio::test]
async fn same_seed_same_texts() {
    let text = |seed: u64| async move {
        let f = fleet(SimConfig { seed, ..config() }, 2).await;
        let mut out = Vec::new();
        for (i, prompt) in ["one", "two", "three"].iter().enumerate() {
            let addr = f.addrs()[i % 2];
            let v = post(
                addr,
                "/v1/chat/completions",
                chat("test-model", prompt, &json!({})),
            )
            .await
            .json();
            out.push(
                v["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        f.shutdown().await;
        out
    };
    let a = text(7).await;
    assert_eq!(
        a,
        text(7).await,
        "same seed, same requests → same texts, whichever replica serves them"
    );
    assert_ne!(a, text(8).await);
    assert_ne!(a[0], a[1], "different prompts get different answers");
}

#[tokio::test]
async fn replicas_use_consecutive_ports() {
    // Find a free pair of ports by binding a probe fleet, then reuse its base port.
    let probe = fleet(config(), 1).await;
    let base = probe.addrs()[0].port();
    probe.shutdown().await;
    let Ok(f) = SimFleet::start(config(), LOCALHOST, base, 3).await else {
        return; // another process grabbed one of the ports; nothing to assert
    };
    let ports: Vec<u16> = f.addrs().iter().map(SocketAddr::port).collect();
    assert_eq!(ports, vec![base, base + 1, base + 2]);
    for addr in f.addrs() {
        let r = get(addr, "/health").await;
        assert_eq!(
            r.headers["x-inference-port"],
            addr.port().to_string().as_str()
        );
    }
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_frees_the_slot() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cfg = SimConfig {
        time_to_first_token: 30_000.0,
        inter_token_latency: 30_000.0,
        ..config()
    };
    let f = fleet(cfg, 1).await;
    let addr = f.addrs()[0];
    for stream in [false, true] {
        let body = chat(
            "test-model",
            "x",
            &json!({"max_tokens": 5, "stream": stream}),
        )
        .to_string();
        let raw = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: sim\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        socket.write_all(raw.as_bytes()).await.unwrap();
        if stream {
            // wait for the response head, so the request is surely running
            let mut buf = [0u8; 512];
            let n = socket.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        } else {
            let deadline = Instant::now() + Duration::from_secs(5);
            while metric(&metrics(addr).await, "vllm:num_requests_running{") != 1.0 {
                assert!(Instant::now() < deadline, "request never started");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        drop(socket);
        let deadline = Instant::now() + Duration::from_secs(5);
        while metric(&metrics(addr).await, "vllm:num_requests_running{") != 0.0 {
            assert!(
                Instant::now() < deadline,
                "slot not freed after disconnect (stream: {stream})"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let m = metrics(addr).await;
    assert_eq!(
        metric(
            &m,
            "vllm:request_success_total{model_name=\"test-model\",finish_reason=\"abort\"}"
        ),
        2.0
    );
    assert_eq!(metric(&m, "vllm:e2e_request_latency_seconds_count{"), 2.0);
    f.shutdown().await;
}
