//! External providers end to end: the gateway in-process, each provider played by a fake that
//! speaks its documented wire protocol (see `infergate-provider-fakes`), real HTTP on loopback.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use infergate_provider_fakes::{Credentials, Fake, Flavor, Mode};
use serde_json::{json, Value};

const KEY: &str = "sk-test-gateway-key";
const AK: &str = "AKIDEXAMPLE";
const SK: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SA_EMAIL: &str = "gateway@test-project.iam.gserviceaccount.com";

fn settings(extra: &str) -> String {
    format!(
        "apiVersion: infergate.dev/v1alpha1
kind: GatewaySettings
metadata: {{name: gw}}
spec:
  accessLog: {{enabled: false}}
  reload: {{interval: 50ms}}
{extra}
"
    )
}

fn api_key_fake_creds() -> Credentials {
    Credentials {
        api_key: Some(KEY.into()),
        ..Credentials::default()
    }
}

async fn fake(flavor: Flavor) -> Arc<Fake> {
    let creds = match flavor {
        Flavor::Bedrock => Credentials {
            aws: Some((AK.into(), SK.into())),
            ..Credentials::default()
        },
        Flavor::Vertex => Credentials {
            google: Some((
                SA_EMAIL.into(),
                include_str!("fixtures/test-sa-key.pub.pem").into(),
            )),
            ..Credentials::default()
        },
        _ => api_key_fake_creds(),
    };
    Fake::start(flavor, creds).await
}

/// A `Secret` with the gateway's key, and a backend of `provider` kind at `url`.
fn backend(name: &str, provider: &str, url: &str, extra: &str) -> String {
    format!(
        "---
apiVersion: infergate.dev/v1alpha1
kind: Backend
metadata: {{name: {name}}}
spec:
  provider: {provider}
  baseURL: {url}
  credentials: {{secretRef: {{name: keys}}}}
{extra}
"
    )
}

fn key_secret() -> String {
    format!(
        "---
apiVersion: v1
kind: Secret
metadata: {{name: keys}}
stringData: {{apiKey: {KEY}}}
"
    )
}

fn model(name: &str, targets: &str, extra: &str) -> String {
    format!(
        "---
apiVersion: infergate.dev/v1alpha1
kind: PublicModel
metadata: {{name: {name}}}
spec:
  targets: {targets}
{extra}
"
    )
}

fn chat_body(model: &str, stream: bool, text: &str) -> String {
    json!({"model": model, "stream": stream, "max_tokens": 32,
           "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]})
    .to_string()
}

fn stream_text(body: &str) -> (String, Vec<Value>) {
    let mut text = String::new();
    let mut chunks = Vec::new();
    for d in sse_data(body) {
        if d == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(&d).unwrap();
        if let Some(t) = v
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
        {
            text.push_str(t);
        }
        chunks.push(v);
    }
    (text, chunks)
}

/// One config with a backend per provider; all answer, streamed and not, with usage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_answers_in_openai_format_streamed_and_not() {
    let openai = fake(Flavor::OpenAi).await;
    let azure = fake(Flavor::Azure).await;
    let anthropic = fake(Flavor::Anthropic).await;
    let bedrock = fake(Flavor::Bedrock).await;
    let vertex = fake(Flavor::Vertex).await;
    let gemini = fake(Flavor::Gemini).await;
    let dir = tempfile::tempdir().unwrap();
    let sa_file = dir.path().join("sa.json");
    std::fs::write(
        &sa_file,
        json!({"type": "service_account", "client_email": SA_EMAIL, "private_key_id": "k1",
               "private_key": include_str!("fixtures/test-sa-key.pem"),
               "token_uri": format!("{}/token", vertex.base_url()), "project_id": "test-project"})
        .to_string(),
    )
    .unwrap();
    std::env::set_var("INFERGATE_TEST_GEMINI_KEY", KEY);
    let mut yaml = settings("") + &key_secret();
    yaml += &format!(
        "---
apiVersion: v1
kind: Secret
metadata: {{name: aws}}
data: {{accessKeyId: {}, secretAccessKey: {}}}
",
        b64(AK),
        b64(SK)
    );
    yaml += &backend("openai", "OpenAI", &format!("{}/v1", openai.base_url()), "");
    yaml += &backend(
        "azure",
        "AzureOpenAI",
        &azure.base_url(),
        "  apiVersion: 2024-10-21",
    );
    yaml += &backend("anthropic", "Anthropic", &anthropic.base_url(), "");
    yaml += &format!(
        "---
apiVersion: infergate.dev/v1alpha1
kind: Backend
metadata: {{name: bedrock}}
spec:
  provider: AWSBedrock
  region: eu-west-1
  baseURL: {}
  credentials: {{secretRef: {{name: aws}}}}
---
apiVersion: infergate.dev/v1alpha1
kind: Backend
metadata: {{name: vertex}}
spec:
  provider: GCPVertexAI
  region: europe-west4
  project: test-project
  baseURL: {}
  credentials: {{file: {}}}
---
apiVersion: infergate.dev/v1alpha1
kind: Backend
metadata: {{name: gemini}}
spec:
  provider: Gemini
  baseURL: {}
  credentials: {{env: INFERGATE_TEST_GEMINI_KEY}}
",
        bedrock.base_url(),
        vertex.base_url(),
        sa_file.display(),
        gemini.base_url()
    );
    let cases = [
        ("openai", "gpt-4o", "openai"),
        ("azure", "my-gpt4o-deployment", "azure.ai.openai"),
        ("anthropic", "claude-sonnet-4-5", "anthropic"),
        (
            "bedrock",
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
            "aws.bedrock",
        ),
        ("vertex", "gemini-2.0-flash", "gcp.vertex_ai"),
        ("gemini", "gemini-2.0-flash", "gcp.gemini"),
    ];
    for (b, m, _) in &cases {
        yaml += &model(
            &format!("m-{b}"),
            &format!("[{{backend: {b}, model: \"{m}\"}}]"),
            "",
        );
    }
    let gw = gateway(&yaml).await;
    let url = format!("{}/v1/chat/completions", gw.base);
    for (b, m, genai) in &cases {
        let public = format!("m-{b}");
        let r = post_with(
            &url,
            chat_body(&public, false, "Say hello"),
            &[("authorization", "Bearer client-key-never-forwarded")],
        )
        .await;
        assert_eq!(r.status, 200, "{b}: {}", r.text());
        let v = r.json();
        assert_eq!(
            v["choices"][0]["message"]["content"], "echo: Say hello",
            "{b}: {v}"
        );
        assert_eq!(
            v["model"],
            public.as_str(),
            "{b}: the client sees the name it asked for"
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop", "{b}");
        assert!(
            v["usage"]["prompt_tokens"].as_u64().unwrap() >= 2,
            "{b}: {v}"
        );
        assert_eq!(r.headers["x-infergate-backend"], *b);
        assert_eq!(r.headers["x-infergate-provider"], *genai);
        assert_eq!(r.headers["x-infergate-served-model"], *m);

        let body =
            json!({"model": public, "stream": true, "stream_options": {"include_usage": true},
                          "messages": [{"role": "user", "content": "Say hello"}]})
            .to_string();
        let r = post(&url, body).await;
        assert_eq!(r.status, 200, "{b}");
        assert_eq!(r.headers["content-type"], "text/event-stream", "{b}");
        let text = r.text();
        let (content, chunks) = stream_text(&text);
        assert_eq!(content, "echo: Say hello", "{b}: {text}");
        assert_eq!(
            sse_data(&text).last().map(String::as_str),
            Some("[DONE]"),
            "{b}: {text}"
        );
        assert!(
            chunks.iter().any(|c| c["usage"]["completion_tokens"]
                .as_u64()
                .is_some_and(|n| n > 0)),
            "{b}: usage chunk: {text}"
        );
        assert!(
            chunks
                .iter()
                .any(|c| c["choices"][0]["finish_reason"] == "stop"),
            "{b}"
        );
        assert!(!text.contains("\"error\""), "{b}: {text}");
    }
    // The gateway's key (not the client's) reached the API-key providers.
    let seen = openai.last_seen().unwrap();
    assert_eq!(
        seen.headers["authorization"],
        format!("Bearer {KEY}").as_str()
    );
    assert_eq!(anthropic.last_seen().unwrap().headers["x-api-key"], KEY);
    assert_eq!(azure.last_seen().unwrap().headers["api-key"], KEY);
    assert!(azure.last_seen().unwrap().path.contains(
        "/openai/deployments/my-gpt4o-deployment/chat/completions?api-version=2024-10-21"
    ));
    // Bedrock: every request was signed correctly (the fake checks independently).
    assert_eq!(bedrock.rejected.load(Ordering::SeqCst), 0);
    assert_eq!(bedrock.requests(), 2);
    assert!(bedrock
        .last_seen()
        .unwrap()
        .path
        .starts_with("/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"));
    // Vertex: one token minted, cached for the second request.
    assert_eq!(vertex.tokens_issued.load(Ordering::SeqCst), 1);
    assert_eq!(vertex.requests(), 2);

    // Metrics and the access log name the provider as the GenAI conventions spell it.
    let m = get(&format!("{}/metrics", gw.admin)).await.text();
    for (_, _, genai) in &cases {
        assert!(
            m.contains(&format!("gen_ai_provider_name=\"{genai}\"")),
            "{genai} in metrics"
        );
    }
}

fn b64(s: &str) -> String {
    use std::fmt::Write;
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                let _ = out.write_char(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn tool_calls_and_results_cross_providers() {
    for flavor in [Flavor::Anthropic, Flavor::Bedrock] {
        let f = fake(flavor).await;
        let (provider, extra, secret) = match flavor {
            Flavor::Bedrock => (
                "AWSBedrock",
                "  region: us-east-1",
                format!("---\napiVersion: v1\nkind: Secret\nmetadata: {{name: keys}}\nstringData: {{accessKeyId: {AK}, secretAccessKey: \"{SK}\"}}\n"),
            ),
            _ => ("Anthropic", "", key_secret()),
        };
        let yaml = settings("")
            + &secret
            + &backend("b", provider, &f.base_url(), extra)
            + &model("m", "[{backend: b, model: some-model}]", "");
        let gw = gateway(&yaml).await;
        let url = format!("{}/v1/chat/completions", gw.base);
        let tools = json!([{"type": "function", "function": {"name": "lookup", "description": "find things",
                            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]);
        for stream in [false, true] {
            let body = json!({"model": "m", "stream": stream, "tools": tools,
                              "messages": [{"role": "user", "content": "weather in Paris"}]});
            let r = post(&url, body.to_string()).await;
            assert_eq!(r.status, 200, "{flavor:?}: {}", r.text());
            let (name, args) = if stream {
                let (_, chunks) = stream_text(&r.text());
                let mut name = String::new();
                let mut args = String::new();
                for c in &chunks {
                    if let Some(tc) = c.pointer("/choices/0/delta/tool_calls/0") {
                        name.push_str(
                            tc.pointer("/function/name")
                                .and_then(Value::as_str)
                                .unwrap_or(""),
                        );
                        args.push_str(
                            tc.pointer("/function/arguments")
                                .and_then(Value::as_str)
                                .unwrap_or(""),
                        );
                    }
                }
                assert!(chunks
                    .iter()
                    .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
                (name, args)
            } else {
                let v = r.json();
                assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
                let tc = &v["choices"][0]["message"]["tool_calls"][0];
                (
                    tc["function"]["name"].as_str().unwrap().to_string(),
                    tc["function"]["arguments"].as_str().unwrap().to_string(),
                )
            };
            assert_eq!(name, "lookup");
            let args: Value = serde_json::from_str(&args).unwrap();
            assert_eq!(args["q"], "weather in Paris");
        }
        // The tool result goes back as the provider's tool-result block; the answer follows.
        let body = json!({"model": "m", "tools": tools, "messages": [
            {"role": "user", "content": "weather in Paris"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]});
        let r = post(&url, body.to_string()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["choices"][0]["message"]["content"], "echo: sunny");
        let sent: Value = serde_json::from_slice(&f.last_seen().unwrap().body).unwrap();
        let s = sent.to_string();
        match flavor {
            Flavor::Bedrock => assert!(
                s.contains("\"toolResult\"") && s.contains("\"toolUse\""),
                "{s}"
            ),
            _ => assert!(
                s.contains("\"tool_result\"") && s.contains("\"tool_use\""),
                "{s}"
            ),
        }
    }
}

#[tokio::test]
async fn bedrock_fake_rejects_a_bad_signature() {
    let f = fake(Flavor::Bedrock).await;
    let secret = format!("---\napiVersion: v1\nkind: Secret\nmetadata: {{name: keys}}\nstringData: {{accessKeyId: {AK}, secretAccessKey: not-the-secret}}\n");
    let yaml = settings("")
        + &secret
        + &backend("b", "AWSBedrock", &f.base_url(), "  region: us-east-1")
        + &model("m", "[{backend: b, model: amazon.nova-lite-v1:0}]", "");
    let gw = gateway(&yaml).await;
    let r = post(
        &format!("{}/v1/chat/completions", gw.base),
        chat_body("m", false, "hi"),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("signature"), "{}", r.text());
    assert_eq!(f.rejected.load(Ordering::SeqCst), 1);
}

/// primary (broken in some way) → fallback; the client sees a clean answer every time.
async fn failover_case(mode: Option<Mode>, stream: bool) {
    let primary = fake(Flavor::Anthropic).await;
    let fallback = fake(Flavor::OpenAi).await;
    let primary_url = match mode {
        Some(m) => {
            primary.set_mode(m);
            primary.base_url()
        }
        // Refused connections: a port nothing listens on.
        None => {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let a = l.local_addr().unwrap();
            drop(l);
            format!("http://{a}")
        }
    };
    let yaml = settings("")
        + &key_secret()
        + &backend(
            "primary",
            "Anthropic",
            &primary_url,
            "  timeouts: {firstToken: 300ms}",
        )
        + &backend(
            "fallback",
            "OpenAI",
            &format!("{}/v1", fallback.base_url()),
            "",
        )
        + &model(
            "m",
            "[{backend: primary, model: claude}]",
            "  fallbacks: [{backend: fallback, model: gpt-4o}]",
        );
    let gw = gateway(&yaml).await;
    let url = format!("{}/v1/chat/completions", gw.base);
    for _ in 0..4 {
        let r = post(&url, chat_body("m", stream, "Say hello")).await;
        let text = r.text();
        assert_eq!(r.status, 200, "{mode:?}: {text}");
        assert!(!text.contains("\"error\""), "{mode:?}: {text}");
        assert_eq!(r.headers["x-infergate-backend"], "fallback");
        if stream {
            assert_eq!(stream_text(&text).0, "echo: Say hello");
        }
    }
    assert_eq!(fallback.requests(), 4);
}

#[tokio::test]
async fn failover_on_503() {
    failover_case(Some(Mode::Status(503)), false).await;
    failover_case(Some(Mode::Status(503)), true).await;
}

#[tokio::test]
async fn failover_on_429_with_and_without_rate_limit_headers() {
    failover_case(Some(Mode::Status(429)), false).await;
    failover_case(Some(Mode::RateLimitedWithHeaders), true).await;
    failover_case(Some(Mode::Status(529)), false).await;
}

#[tokio::test]
async fn failover_when_primary_hangs() {
    failover_case(Some(Mode::Hang), false).await;
    failover_case(Some(Mode::Hang), true).await;
}

#[tokio::test]
async fn failover_when_primary_refuses_connections() {
    failover_case(None, false).await;
    failover_case(None, true).await;
}

#[tokio::test]
async fn stream_cut_midway_ends_with_a_terminal_error_event_in_the_clients_format() {
    for flavor in [
        Flavor::Anthropic,
        Flavor::Bedrock,
        Flavor::Vertex,
        Flavor::OpenAi,
    ] {
        let f = fake(flavor).await;
        f.set_mode(Mode::CutStreamAfter(5));
        let (provider, extra, secret) = match flavor {
            Flavor::Bedrock => ("AWSBedrock", "  region: us-east-1".to_string(),
                format!("---\napiVersion: v1\nkind: Secret\nmetadata: {{name: keys}}\nstringData: {{accessKeyId: {AK}, secretAccessKey: \"{SK}\"}}\n")),
            Flavor::Vertex => ("GCPVertexAI", "  region: us-central1\n  project: p".to_string(), String::new()),
            Flavor::OpenAi => ("OpenAI", String::new(), key_secret()),
            _ => ("Anthropic", String::new(), key_secret()),
        };
        let dir = tempfile::tempdir().unwrap();
        let sa = dir.path().join("sa.json");
        std::fs::write(&sa, json!({"client_email": SA_EMAIL, "private_key": include_str!("fixtures/test-sa-key.pem"), "token_uri": format!("{}/token", f.base_url())}).to_string()).unwrap();
        let backend_yaml = if flavor == Flavor::Vertex {
            format!("---\napiVersion: infergate.dev/v1alpha1\nkind: Backend\nmetadata: {{name: b}}\nspec:\n  provider: {provider}\n  baseURL: {}\n  credentials: {{file: {}}}\n{extra}\n", f.base_url(), sa.display())
        } else {
            backend("b", provider, &f.base_url(), &extra)
        };
        let yaml =
            settings("") + &secret + &backend_yaml + &model("m", "[{backend: b, model: x}]", "");
        let gw = gateway(&yaml).await;
        let long = "one two three four five six seven eight nine ten eleven twelve";
        let r = post(
            &format!("{}/v1/chat/completions", gw.base),
            chat_body("m", true, long),
        )
        .await;
        assert_eq!(r.status, 200, "{flavor:?}");
        let text = r.text();
        let data = sse_data(&text);
        assert!(!data.iter().any(|d| d == "[DONE]"), "{flavor:?}: {text}");
        let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
        assert_eq!(
            last["error"]["code"], "upstream_error",
            "{flavor:?}: {text}"
        );
        assert!(
            !stream_text(&text).0.is_empty(),
            "{flavor:?}: what arrived before the cut was delivered: {text}"
        );

        // The same through the Anthropic Messages endpoint: `event: error` at the end.
        let body = json!({"model": "m", "max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": long}]});
        let r = post(&format!("{}/v1/messages", gw.base), body.to_string()).await;
        assert_eq!(r.status, 200);
        let text = r.text();
        assert!(text.contains("event: message_start"), "{text}");
        assert!(!text.contains("message_stop"), "{text}");
        assert!(
            text.trim_end()
                .rsplit("\n\n")
                .next()
                .unwrap()
                .starts_with("event: error"),
            "{flavor:?}: {text}"
        );
    }
}

fn attempts_metric(m: &str, upstream: &str) -> f64 {
    m.lines()
        .filter(|l| {
            l.starts_with(&format!(
                "infergate_upstream_attempts_total{{upstream=\"{upstream}\""
            ))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_primary_costs_at_most_20_percent_extra_attempts() {
    // With a fallback and circuit breaking.
    let primary = fake(Flavor::OpenAi).await;
    let fallback = fake(Flavor::OpenAi).await;
    primary.set_mode(Mode::Status(503));
    let yaml = settings("  circuitBreaker: {consecutiveFailures: 5, cooldown: 200ms}")
        + &key_secret()
        + &backend("primary", "OpenAI", &primary.base_url(), "")
        + &backend("fallback", "OpenAI", &fallback.base_url(), "")
        + &model(
            "m",
            "[{backend: primary, model: a}]",
            "  fallbacks: [{backend: fallback, model: b}]",
        );
    let gw = gateway(&yaml).await;
    let url = format!("{}/v1/chat/completions", gw.base);
    let n = 300u64;
    let failed = Arc::new(AtomicU64::new(0));
    // Four clients at a time (a steady stream rather than a thundering herd).
    let slots = Arc::new(tokio::sync::Semaphore::new(4));
    let mut tasks = Vec::new();
    for i in 0..n {
        let (url, failed) = (url.clone(), failed.clone());
        let permit = slots.clone().acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let r = post(&url, chat_body("m", i % 2 == 0, "hi")).await;
            if r.status != 200 || r.text().contains("\"error\"") {
                failed.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let upstream = primary.requests() + fallback.requests();
    eprintln!(
        "with fallback + circuit: {n} requests, {} to the failing primary, {} to the fallback, {upstream} upstream attempts ({:.3}x)",
        primary.requests(),
        fallback.requests(),
        upstream as f64 / n as f64
    );
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert!(
        upstream as f64 <= 1.2 * n as f64,
        "{upstream} upstream attempts for {n} requests"
    );
    let m = get(&format!("{}/metrics", gw.admin)).await.text();
    assert!(attempts_metric(&m, "primary") >= 5.0);
    assert_eq!(
        attempts_metric(&m, "primary") + attempts_metric(&m, "fallback"),
        upstream as f64
    );

    // Without circuit breaking and without a fallback, the retry budget alone bounds it: the
    // primary is retried, but extra attempts stay within 20% of requests.
    let only = fake(Flavor::OpenAi).await;
    only.set_mode(Mode::Status(503));
    let yaml = settings("  circuitBreaker: {consecutiveFailures: 0}\n  retries: {attempts: 3}")
        + &key_secret()
        + &backend("only", "OpenAI", &only.base_url(), "")
        + &backend("only2", "OpenAI", &only.base_url(), "")
        + &model(
            "m",
            "[{backend: only, model: a}]",
            "  fallbacks: [{backend: only2, model: a}]",
        );
    let gw = gateway(&yaml).await;
    let url = format!("{}/v1/chat/completions", gw.base);
    for _ in 0..n {
        let r = post(&url, chat_body("m", false, "hi")).await;
        assert_eq!(
            r.status,
            503,
            "the upstream's own error comes back: {}",
            r.text()
        );
    }
    eprintln!(
        "budget only: {n} requests, {} upstream attempts ({:.3}x)",
        only.requests(),
        only.requests() as f64 / n as f64
    );
    assert!(
        only.requests() as f64 <= 1.2 * n as f64,
        "{} attempts for {n} requests",
        only.requests()
    );
    assert!(only.requests() > n, "some retries were allowed");
}

#[tokio::test]
async fn circuit_opens_and_later_closes() {
    let primary = fake(Flavor::OpenAi).await;
    let fallback = fake(Flavor::OpenAi).await;
    primary.set_mode(Mode::Status(500));
    let yaml = settings("  circuitBreaker: {consecutiveFailures: 3, cooldown: 300ms}")
        + &key_secret()
        + &backend("primary", "OpenAI", &primary.base_url(), "")
        + &backend("fallback", "OpenAI", &fallback.base_url(), "")
        + &model(
            "m",
            "[{backend: primary, model: a}]",
            "  fallbacks: [{backend: fallback, model: b}]",
        );
    let gw = gateway(&yaml).await;
    let url = format!("{}/v1/chat/completions", gw.base);
    let metrics = format!("{}/metrics", gw.admin);
    for _ in 0..10 {
        assert_eq!(post(&url, chat_body("m", false, "hi")).await.status, 200);
    }
    assert_eq!(
        primary.requests(),
        3,
        "after 3 failures the primary is skipped"
    );
    let m = get(&metrics).await.text();
    assert_eq!(
        metric(&m, "infergate_circuit_open{pool=\"primary\"}"),
        Some(1.0),
        "{m}"
    );
    // The primary recovers; after the cool-down one trial goes through and closes the circuit.
    primary.set_mode(Mode::Normal);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let r = post(&url, chat_body("m", false, "hi")).await;
    assert_eq!(r.headers["x-infergate-backend"], "primary");
    let m = get(&metrics).await.text();
    assert_eq!(
        metric(&m, "infergate_circuit_open{pool=\"primary\"}"),
        Some(0.0),
        "{m}"
    );
    for _ in 0..3 {
        let r = post(&url, chat_body("m", false, "hi")).await;
        assert_eq!(r.headers["x-infergate-backend"], "primary");
    }
}

#[tokio::test]
async fn context_length_error_fails_over_to_a_larger_context_model() {
    let small = fake(Flavor::Anthropic).await;
    small.max_prompt_words.store(6, Ordering::SeqCst);
    let big = fake(Flavor::OpenAi).await;
    let other = fake(Flavor::OpenAi).await;
    let yaml = settings("")
        + &key_secret()
        + &backend("small", "Anthropic", &small.base_url(), "")
        + &backend("other", "OpenAI", &other.base_url(), "")
        + &backend("big", "OpenAI", &big.base_url(), "")
        + &model(
            "m",
            "[{backend: small, model: s, contextWindow: 8}]",
            "  fallbacks: [{backend: other, model: o, contextWindow: 8}, {backend: big, model: b, contextWindow: 1000}]",
        );
    let gw = gateway(&yaml).await;
    let url = format!("{}/v1/chat/completions", gw.base);
    let r = post(&url, chat_body("m", false, "short")).await;
    assert_eq!(r.headers["x-infergate-backend"], "small");
    let long = "word ".repeat(40);
    let r = post(&url, chat_body("m", false, &long)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.headers["x-infergate-backend"], "big",
        "skips the same-size fallback"
    );
    assert_eq!(other.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eu_only_requests_never_reach_the_cheaper_us_backend() {
    let eu = fake(Flavor::OpenAi).await;
    let us = fake(Flavor::OpenAi).await;
    let yaml = settings("  dataResidency: {regionHeader: x-allowed-regions}")
        + &key_secret()
        + &backend(
            "eu",
            "OpenAI",
            &eu.base_url(),
            "  region: eu-west-1\n  pricing: {input: 5, output: 15}",
        )
        + &backend(
            "us",
            "OpenAI",
            &us.base_url(),
            "  region: us-east-1\n  pricing: {input: 1, output: 3}",
        )
        + &model(
            "m",
            "[{backend: us, model: a, weight: 90}, {backend: eu, model: a, weight: 10}]",
            "  fallbacks: [{backend: us, model: a}]",
        );
    let gw = gateway(&yaml).await;
    let url = format!("{}/v1/chat/completions", gw.base);
    let mut tasks = Vec::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(16));
    for i in 0..1000u64 {
        let url = url.clone();
        let permit = slots.clone().acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let r = post_with(
                &url,
                chat_body("m", i % 2 == 0, "hi"),
                &[("x-allowed-regions", "eu-*")],
            )
            .await;
            (
                r.status,
                r.headers
                    .get("x-infergate-region")
                    .map(|v| v.to_str().unwrap().to_string()),
            )
        }));
    }
    for t in tasks {
        let (status, region) = t.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(region.as_deref(), Some("eu-west-1"));
    }
    assert_eq!(us.requests(), 0, "nothing went to the US backend");
    assert_eq!(eu.requests(), 1000);
    // Unrestricted requests do use the cheaper one.
    for _ in 0..20 {
        post(&url, chat_body("m", false, "hi")).await;
    }
    assert!(us.requests() > 0);
    // No compliant target: 403 that says why, and nothing is sent.
    let before = eu.requests() + us.requests();
    let r = post_with(
        &url,
        chat_body("m", false, "hi"),
        &[("x-allowed-regions", "ap-southeast-2")],
    )
    .await;
    assert_eq!(r.status, 403);
    let v = r.json();
    assert_eq!(v["error"]["code"], "region_not_allowed");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("ap-southeast-2") && msg.contains("eu-west-1") && msg.contains("us-east-1"),
        "{msg}"
    );
    assert_eq!(eu.requests() + us.requests(), before);
    // An EU-only primary outage falls back only to compliant targets: here there is none.
    eu.set_mode(Mode::Status(503));
    let r = post_with(
        &url,
        chat_body("m", false, "hi"),
        &[("x-allowed-regions", "eu-west-1")],
    )
    .await;
    assert_eq!(r.status, 503);
    assert_eq!(
        us.requests() + eu.requests(),
        before + 1,
        "the US fallback was not used"
    );
}

#[tokio::test]
async fn rotated_credentials_file_is_used_without_a_restart() {
    let f = Fake::start(
        Flavor::OpenAi,
        Credentials {
            api_key: Some("key-2".into()),
            ..Credentials::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "key-1\n").unwrap();
    let yaml = settings("")
        + &format!("---\napiVersion: infergate.dev/v1alpha1\nkind: Backend\nmetadata: {{name: b}}\nspec:\n  provider: OpenAI\n  baseURL: {}\n  credentials: {{file: {}}}\n", f.base_url(), key_file.display())
        + &model("m", "[{backend: b, model: a}]", "");
    let gw = gateway(&yaml).await;
    let url = format!("{}/v1/chat/completions", gw.base);
    let r = post(&url, chat_body("m", false, "hi")).await;
    assert_eq!(r.status, 401, "the old key is refused: {}", r.text());
    write_atomic(&key_file, "key-2\n");
    let mut ok = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        if post(&url, chat_body("m", false, "hi")).await.status == 200 {
            ok = true;
            break;
        }
    }
    assert!(ok, "the rotated key is picked up");
}

#[tokio::test]
async fn client_credentials_are_forwarded_only_when_the_backend_passes_them_through() {
    let f = Fake::start(
        Flavor::Anthropic,
        Credentials {
            api_key: Some("client-own-key".into()),
            ..Credentials::default()
        },
    )
    .await;
    let yaml = settings("")
        + &format!("---\napiVersion: infergate.dev/v1alpha1\nkind: Backend\nmetadata: {{name: b}}\nspec:\n  provider: Anthropic\n  baseURL: {}\n  passthroughCredentials: true\n", f.base_url())
        + &model("m", "[{backend: b, model: a}]", "");
    let gw = gateway(&yaml).await;
    let url = format!("{}/v1/chat/completions", gw.base);
    let r = post_with(
        &url,
        chat_body("m", false, "hi"),
        &[("authorization", "Bearer client-own-key")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        f.last_seen().unwrap().headers["x-api-key"],
        "client-own-key"
    );
    let r = post(&url, chat_body("m", false, "hi")).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "missing_credentials");
}

/// A minimal HTTP CONNECT proxy that counts tunnels.
async fn connect_proxy() -> (SocketAddr, Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let tunnels = Arc::new(AtomicU64::new(0));
    let t = tunnels.clone();
    tokio::spawn(async move {
        loop {
            let (mut client, _) = l.accept().await.unwrap();
            let t = t.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut byte = [0u8; 1];
                while !buf.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    buf.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let target = head
                    .strip_prefix("CONNECT ")
                    .and_then(|r| r.split(' ').next())
                    .unwrap()
                    .to_string();
                let Ok(mut upstream) = tokio::net::TcpStream::connect(&target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                t.fetch_add(1, Ordering::SeqCst);
                client
                    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (addr, tunnels)
}

#[tokio::test]
async fn egress_goes_through_the_connect_proxy_when_configured() {
    let f = fake(Flavor::Anthropic).await;
    let (proxy, tunnels) = connect_proxy().await;
    let yaml = settings(&format!("  egress: {{proxy: http://{proxy}}}"))
        + &key_secret()
        + &backend("b", "Anthropic", &f.base_url(), "")
        + &model("m", "[{backend: b, model: a}]", "");
    let gw = gateway(&yaml).await;
    let r = post(
        &format!("{}/v1/chat/completions", gw.base),
        chat_body("m", true, "hi"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        tunnels.load(Ordering::SeqCst) >= 1,
        "the request went through the proxy"
    );
}

#[tokio::test]
async fn canaries_by_header_and_shadow_copies() {
    let stable = fake(Flavor::OpenAi).await;
    let canary = fake(Flavor::Anthropic).await;
    let shadow = fake(Flavor::OpenAi).await;
    let yaml = settings("")
        + &key_secret()
        + &backend("stable", "OpenAI", &stable.base_url(), "")
        + &backend("canary", "Anthropic", &canary.base_url(), "")
        + &backend("candidate", "OpenAI", &shadow.base_url(), "")
        + &model(
            "m",
            "[{backend: stable, model: a}]",
            "  canaries:\n  - match: {headers: {x-canary: \"yes\"}}\n    targets: [{backend: canary, model: c}]\n  shadow: {target: {backend: candidate, model: next}, percent: 100}",
        );
    let gw = gateway(&yaml).await;
    let url = format!("{}/v1/chat/completions", gw.base);
    for i in 0..10 {
        let r = post(&url, chat_body("m", i % 2 == 0, "hi")).await;
        assert_eq!(r.headers["x-infergate-backend"], "stable");
    }
    let r = post_with(&url, chat_body("m", false, "hi"), &[("x-canary", "yes")]).await;
    assert_eq!(r.headers["x-infergate-backend"], "canary");
    let metrics = format!("{}/metrics", gw.admin);
    let mut copies = 0.0;
    for _ in 0..100 {
        let m = get(&metrics).await.text();
        copies = metric(
            &m,
            "infergate_shadow_requests_total{upstream=\"candidate\",outcome=\"success\"}",
        )
        .unwrap_or(0.0);
        if copies >= 11.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(copies, 11.0);
    assert_eq!(shadow.requests(), 11);
    let seen: Value = serde_json::from_slice(&shadow.last_seen().unwrap().body).unwrap();
    assert_eq!(seen["model"], "next");
}

#[tokio::test]
async fn anthropic_clients_reach_a_pool_through_v1_messages() {
    let fleet = fleet(1, "").await;
    let gw = gateway(&config_yaml(&fleet.addrs(), "")).await;
    let url = format!("{}/v1/messages", gw.base);
    let body = json!({"model": MODEL, "max_tokens": 8, "system": "be brief",
                      "messages": [{"role": "user", "content": "Say hello"}]});
    let r = post_with(
        &url,
        body.to_string(),
        &[("x-api-key", "x"), ("anthropic-version", "2023-06-01")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], MODEL);
    assert_eq!(v["content"][0]["type"], "text");
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let mut body = body;
    body["stream"] = json!(true);
    let r = post(&url, body.to_string()).await;
    assert_eq!(r.status, 200);
    let text = r.text();
    for ev in [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ] {
        assert!(text.contains(&format!("event: {ev}\n")), "{ev}: {text}");
    }
    // Errors come back in Anthropic's shape.
    let r = post(
        &url,
        json!({"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})
            .to_string(),
    )
    .await;
    assert_eq!(r.status, 404);
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "not_found_error");
    let r = post(&url, r#"{"model": "x"}"#).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
}

/// The same rule from the caller's identity: a tenant whose `regions` are EU only, with its
/// key declared in configuration (by hash), never reaches the cheaper US backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eu_only_tenant_never_reaches_the_cheaper_us_backend() {
    let eu = fake(Flavor::OpenAi).await;
    let us = fake(Flavor::OpenAi).await;
    let dir = tempfile::tempdir().unwrap();
    let key = "igk_0000e000_eutenantkeyeutenantkeyeutenant00";
    let yaml = settings(&format!(
        "  state: {{path: {}/state.db}}",
        dir.path().display()
    )) + &key_secret()
        + &backend(
            "eu",
            "OpenAI",
            &eu.base_url(),
            "  region: eu-west-1\n  pricing: {input: 5, output: 15}",
        )
        + &backend(
            "us",
            "OpenAI",
            &us.base_url(),
            "  region: us-east-1\n  pricing: {input: 1, output: 3}",
        )
        + &model(
            "m",
            "[{backend: us, model: a, weight: 90}, {backend: eu, model: a, weight: 10}]",
            "  fallbacks: [{backend: us, model: a}]",
        )
        + &format!(
            "---
apiVersion: infergate.dev/v1alpha1
kind: Tenant
metadata: {{name: eu-bank}}
spec:
  models: ['*']
  regions: [eu-*]
  keys: [{{name: app, sha256: {}}}]
",
            infergate_policy::key::sha256_hex(key.as_bytes())
        );
    let gw = gateway(&yaml).await;
    let url = format!("{}/v1/chat/completions", gw.base);
    let auth = format!("Bearer {key}");
    let mut tasks = Vec::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(16));
    for i in 0..1000u64 {
        let (url, auth) = (url.clone(), auth.clone());
        let permit = slots.clone().acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let r = post_with(
                &url,
                chat_body("m", i % 2 == 0, "hi"),
                &[("authorization", auth.as_str())],
            )
            .await;
            (
                r.status,
                r.headers
                    .get("x-infergate-region")
                    .map(|v| v.to_str().unwrap().to_string()),
            )
        }));
    }
    for t in tasks {
        let (status, region) = t.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(region.as_deref(), Some("eu-west-1"));
    }
    assert_eq!(us.requests(), 0, "nothing went to the US backend");
    assert_eq!(eu.requests(), 1000);
    // Without the key there is no identity, and identities are configured: 401, nothing sent.
    let r = post(&url, chat_body("m", false, "hi")).await;
    assert_eq!(r.status, 401);
    assert_eq!(us.requests() + eu.requests(), 1000);
}
