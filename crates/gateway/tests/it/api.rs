//! The OpenAI-compatible surface: routing by model, the model name rewrite both ways, streaming
//! with and without usage, and the error contract.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use crate::common::*;

#[tokio::test]
async fn chat_is_routed_and_model_rewritten_back() {
    let fleet = fleet(2, "").await;
    let gw = gateway(&config_yaml(&fleet.addrs(), "")).await;
    let r = post(
        &format!("{}/v1/chat/completions", gw.base),
        chat(MODEL, false),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["model"], MODEL, "client sees the name it asked for");
    assert_eq!(v["usage"]["completion_tokens"], 8);
    assert_eq!(r.headers["x-infergate-served-model"], TARGET);
    assert_eq!(r.headers["x-infergate-pool"], "pool");
    assert!(r.headers.contains_key("x-inference-pod"));
    assert!(r.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn stream_without_usage_hides_the_gateways_usage_chunk() {
    let fleet = fleet(1, "").await;
    let gw = gateway(&config_yaml(&fleet.addrs(), "")).await;
    let r = post(
        &format!("{}/v1/chat/completions", gw.base),
        chat(MODEL, true),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let data = sse_data(&r.text());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<serde_json::Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks.len() >= 8);
    for c in &chunks {
        assert_eq!(c["model"], MODEL);
        assert!(
            c.get("usage").is_none(),
            "client did not ask for usage: {c}"
        );
        assert!(!c["choices"].as_array().unwrap().is_empty());
    }
    // ...but the gateway learned it: the access-log/metrics path got token counts.
    let m = get(&format!("{}/metrics", gw.admin)).await.text();
    assert!(
        m.contains("gen_ai_client_token_usage_count{gen_ai_operation_name=\"chat\""),
        "{m}"
    );
}

#[tokio::test]
async fn stream_with_usage_keeps_it() {
    let fleet = fleet(1, "").await;
    let gw = gateway(&config_yaml(&fleet.addrs(), "")).await;
    let body = serde_json::json!({
        "model": MODEL, "stream": true, "max_tokens": 5,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}]
    });
    let r = post(
        &format!("{}/v1/chat/completions", gw.base),
        body.to_string(),
    )
    .await;
    let data = sse_data(&r.text());
    let usage_chunk: serde_json::Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 5);
    assert_eq!(usage_chunk["choices"].as_array().unwrap().len(), 0);
    assert_eq!(usage_chunk["model"], MODEL);
}

#[tokio::test]
async fn completions_embeddings_and_models() {
    let fleet = fleet(1, "").await;
    let gw = gateway(&config_yaml(&fleet.addrs(), "")).await;
    let r = post(
        &format!("{}/v1/completions", gw.base),
        serde_json::json!({"model": MODEL, "prompt": "Once upon", "max_tokens": 3}).to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["model"], MODEL);
    assert_eq!(r.json()["object"], "text_completion");

    let r = post(
        &format!("{}/v1/embeddings", gw.base),
        serde_json::json!({"model": MODEL, "input": ["a", "b"]}).to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 2);
    assert_eq!(r.json()["model"], MODEL);

    let r = get(&format!("{}/v1/models", gw.base)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"][0]["id"], MODEL);
}

fn assert_openai_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["type"].is_string());
    assert!(
        v["error"]["message"].as_str().map_or(0, str::len) > 20,
        "message says what to change: {v}"
    );
}

#[tokio::test]
async fn error_contract() {
    let fleet = fleet(1, "").await;
    let gw = gateway(&config_yaml(&fleet.addrs(), "  maxRequestBody: 4Ki")).await;
    let url = format!("{}/v1/chat/completions", gw.base);

    assert_openai_error(&post(&url, "{\"model\": ").await, 400, "invalid_json");
    assert_openai_error(&post(&url, "[]").await, 400, "invalid_json");
    let r = post(&url, r#"{"messages":[{"role":"user","content":"x"}]}"#).await;
    assert_openai_error(&r, 400, "missing_model");
    assert_eq!(r.json()["error"]["param"], "model");
    let r = post(&url, chat("no-such-model", false)).await;
    assert_openai_error(&r, 404, "model_not_found");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains(MODEL));
    let big = serde_json::json!({"model": MODEL, "messages": [{"role":"user","content": "x".repeat(8000)}]});
    assert_openai_error(&post(&url, big.to_string()).await, 413, "request_too_large");
    assert_openai_error(
        &get(&format!("{}/v1/nope", gw.base)).await,
        404,
        "unknown_url",
    );
    assert_openai_error(&get(&url).await, 405, "method_not_allowed");
    assert_openai_error(
        &post(&url, r#"{"model":"public-model","stream":"yes"}"#).await,
        400,
        "invalid_field",
    );

    // Every failure is counted by reason.
    let m = get(&format!("{}/metrics", gw.admin)).await.text();
    for reason in [
        "invalid_json",
        "missing_model",
        "model_not_found",
        "request_too_large",
        "unknown_url",
    ] {
        assert!(m.contains(&format!("reason=\"{reason}\"")), "{reason}");
    }
}

#[tokio::test]
async fn upstream_errors_pass_through_when_not_retryable() {
    let fleet = fleet(2, "").await;
    let gw = gateway(&config_yaml(&fleet.addrs(), "")).await;
    let r = post_with(
        &format!("{}/v1/chat/completions", gw.base),
        chat(MODEL, false),
        &[("x-return-error", "400")],
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].is_object());
}

#[tokio::test]
async fn h2c_clients_are_served() {
    let fleet = fleet(1, "").await;
    let gw = gateway(&config_yaml(&fleet.addrs(), "")).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let req = http::Request::post(format!("{}/v1/chat/completions", gw.base))
        .body(http_body_util::Full::new(bytes::Bytes::from(chat(
            MODEL, true,
        ))))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    use http_body_util::BodyExt;
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn header_forces_the_target_model() {
    let fleet = fleet(1, "").await;
    let gw = gateway(&config_yaml(&fleet.addrs(), "")).await;
    // The simulator only serves TARGET: forcing another name reaches it and it answers 404,
    // which proves the header, not the config, chose the upstream model.
    let r = post_with(
        &format!("{}/v1/chat/completions", gw.base),
        chat(MODEL, false),
        &[("x-gateway-model-name-rewrite", "other-model")],
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.headers["x-infergate-served-model"], "other-model");
}
