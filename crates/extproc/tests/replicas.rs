//! Several picker replicas and the precise prefix scorer: every model server publishes its KV
//! events to every replica (the simulator's `--zmq-endpoint` lists one address per replica), so
//! each replica learns where a prefix is cached without having routed it, and both send a
//! request sharing that prefix to the server that holds it.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    processing_request, processing_response, HttpBody, HttpHeaders, ProcessingRequest,
};
use infergate_extproc::{start, EppOptions, RunningEpp};
use infergate_sim::{SimConfig, SimFleet};

const TARGET: &str = "served/model-7b";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One picker replica: the pool over `sims`, the precise scorer alone (no speculation, so only
/// what the servers reported can steer it), its KV-event socket bound at `zmq`.
fn picker_config(sims: &[SocketAddr], zmq: &str) -> String {
    let eps: String = sims
        .iter()
        .map(|a| format!("  - {{address: {}, port: {}}}\n", a.ip(), a.port()))
        .collect();
    format!(
        "apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {{name: pool}}
spec:
  selector: {{matchLabels: {{app: sim}}}}
  targetPorts: [{{number: 8000}}]
  endpoints:
{eps}---
apiVersion: infergate.dev/v1alpha1
kind: PublicModel
metadata: {{name: chat}}
spec:
  targets: [{{pool: pool, model: {TARGET}}}]
---
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: precise-prefix-cache-scorer
  parameters: {{zmqEndpoint: \"{zmq}\", speculativeTtl: 0s, minMatchBlocksForFullScore: 1}}
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins: [{{pluginRef: precise-prefix-cache-scorer}}, {{pluginRef: max-score-picker}}]
"
    )
}

async fn start_picker(sims: &[SocketAddr], zmq: &str) -> RunningEpp {
    let cfg = infergate_control::load_str("epp.yaml", &picker_config(sims, zmq)).unwrap();
    start(
        cfg,
        EppOptions {
            grpc: "127.0.0.1:0".parse().unwrap(),
            health: "127.0.0.1:0".parse().unwrap(),
            metrics: "127.0.0.1:0".parse().unwrap(),
            drain: Duration::ZERO,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

fn system_prompt() -> String {
    (0..300)
        .map(|i| format!("shared rule {i} says be precise. "))
        .collect()
}

fn chat(model: &str, question: &str) -> String {
    serde_json::json!({
        "model": model,
        "messages": [
            {"role": "system", "content": system_prompt()},
            {"role": "user", "content": question},
        ],
        "max_tokens": 2,
    })
    .to_string()
}

fn header(k: &str, v: &str) -> HeaderValue {
    HeaderValue {
        key: k.into(),
        value: String::new(),
        raw_value: v.as_bytes().to_vec(),
    }
}

/// One request through the picker's ext_proc service as Envoy sends it; the endpoint it picked.
async fn pick(epp: &RunningEpp, body: String) -> String {
    let mut client = ExternalProcessorClient::connect(format!("http://{}", epp.grpc_addr))
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(ProcessingRequest {
        request: Some(processing_request::Request::RequestHeaders(HttpHeaders {
            headers: Some(HeaderMap {
                headers: vec![
                    header(":method", "POST"),
                    header(":path", "/v1/chat/completions"),
                ],
            }),
            ..Default::default()
        })),
        ..Default::default()
    })
    .await
    .unwrap();
    tx.send(ProcessingRequest {
        request: Some(processing_request::Request::RequestBody(HttpBody {
            body: body.into_bytes(),
            end_of_stream: true,
            ..Default::default()
        })),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut responses = client
        .process(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = responses.message().await.unwrap().unwrap();
    let Some(processing_response::Response::RequestHeaders(h)) = first.response else {
        panic!("expected the request headers response first");
    };
    let set = h.response.unwrap().header_mutation.unwrap().set_headers;
    let dest = set
        .iter()
        .map(|o| o.header.as_ref().unwrap())
        .find(|h| h.key == "x-gateway-destination-endpoint")
        .unwrap();
    // Closing the request side ends the exchange (the request stops counting in flight).
    drop(tx);
    String::from_utf8(dest.raw_value.clone()).unwrap()
}

/// Blocks the picker's KV-event index holds for `endpoint`.
fn blocks(epp: &RunningEpp, endpoint: &str) -> usize {
    epp.picker
        .scheduler("pool")
        .unwrap()
        .kv_event_blocks()
        .unwrap()
        .into_iter()
        .find(|(e, _)| &**e == endpoint)
        .map_or(0, |(_, n)| n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_picker_replicas_both_follow_a_servers_kv_events() {
    let (zmq_a, zmq_b) = (
        format!("tcp://127.0.0.1:{}", free_port()),
        format!("tcp://127.0.0.1:{}", free_port()),
    );
    // Every server publishes to both replicas.
    let cfg = SimConfig::from_yaml(&format!(
        "model: {TARGET}\nzmq-endpoint: {zmq_a},{zmq_b}\nevent-batch-size: 4\nkv-cache-size: 4096\n"
    ))
    .unwrap();
    assert_eq!(cfg.zmq_endpoint, [zmq_a.clone(), zmq_b.clone()]);
    let sims = SimFleet::start(cfg, "127.0.0.1".parse().unwrap(), 0, 3)
        .await
        .unwrap();
    let addrs = sims.addrs();
    let a = start_picker(&addrs, &zmq_a).await;
    let b = start_picker(&addrs, &zmq_b).await;

    // The prefix gets cached on server 1 by a request that went there directly, past both
    // pickers: neither routed it, so only the server's events can tell them where it is.
    let holder = addrs[1].to_string();
    // ZMQ drops what is published before a subscriber's connection is up (the servers retry
    // connecting with backoff), so repeat the direct request (a new question each time, so it
    // stores new blocks) until both replicas hold blocks of server 1.
    let mut tries = 0;
    while blocks(&a, &holder) == 0 || blocks(&b, &holder) == 0 {
        assert!(
            tries < 150,
            "after {tries} direct requests to {holder}, replica A holds {} and replica B {} of its blocks",
            blocks(&a, &holder),
            blocks(&b, &holder)
        );
        let (status, text) = http(
            addrs[1],
            "POST /v1/chat/completions",
            &chat(TARGET, &format!("warm {tries}")),
        )
        .await;
        assert_eq!(status, 200, "{text}");
        tries += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(blocks(&a, &addrs[0].to_string()), 0);
    assert_eq!(blocks(&b, &addrs[2].to_string()), 0);

    // Both replicas send requests sharing the prefix to the server holding it (a random pick
    // among three would agree five times in a row for both with probability 3^-10).
    for i in 0..5 {
        for (name, epp) in [("A", &a), ("B", &b)] {
            let dest = pick(epp, chat("chat", &format!("question {i}"))).await;
            assert_eq!(dest, holder, "replica {name}, request {i}");
        }
    }
    // Each replica's metrics show what it learnt.
    let (_, m) = http(a.metrics_addr, "GET /metrics", "").await;
    assert!(
        m.lines()
            .any(|l| l.starts_with("infergate_epp_kv_event_blocks{")
                && l.contains(&holder)
                && !l.ends_with(" 0")),
        "{m}"
    );
    a.shutdown(Duration::from_secs(1)).await;
    b.shutdown(Duration::from_secs(1)).await;
    sims.shutdown().await;
}

/// A plain HTTP/1.1 request on a fresh connection; the status and the whole response.
async fn http(addr: SocketAddr, head: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{head} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}
