//! The picker over real gRPC on loopback: the health service names gateways probe, one whole
//! ext_proc exchange through tonic, and the drain on shutdown.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    body_mutation, processing_request, processing_response, HttpBody, HttpHeaders,
    ProcessingRequest,
};
use infergate_extproc::{start, EppOptions, HEALTH_SERVICES};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const CFG: &str = r#"
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: pool-a}
spec:
  selector: {matchLabels: {app: a}}
  targetPorts: [{number: 8000}]
  endpoints: [{address: 10.1.0.1}, {address: 10.1.0.2}]
---
apiVersion: infergate.dev/v1alpha1
kind: PublicModel
metadata: {name: chat}
spec:
  targets: [{pool: pool-a, model: llama}]
"#;

fn opts(drain: Duration) -> EppOptions {
    EppOptions {
        grpc: "127.0.0.1:0".parse().unwrap(),
        health: "127.0.0.1:0".parse().unwrap(),
        metrics: "127.0.0.1:0".parse().unwrap(),
        drain,
        ..Default::default()
    }
}

async fn status(addr: std::net::SocketAddr, service: &str) -> i32 {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = HealthClient::new(channel);
    c.check(HealthCheckRequest {
        service: service.to_string(),
    })
    .await
    .unwrap()
    .into_inner()
    .status
}

#[tokio::test]
async fn health_names_on_both_ports_and_drain_on_shutdown() {
    let cfg = infergate_control::load_str("t.yaml", CFG).unwrap();
    let epp = start(cfg, opts(Duration::from_millis(600))).await.unwrap();
    for addr in [epp.grpc_addr, epp.health_addr] {
        for name in HEALTH_SERVICES {
            assert_eq!(
                status(addr, name).await,
                ServingStatus::Serving as i32,
                "{name}"
            );
        }
    }
    let health = epp.health_addr;
    let stop = tokio::spawn(epp.shutdown(Duration::from_secs(1)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Draining: still answering, but telling the proxy to stop sending.
    assert_eq!(
        status(health, "envoy.service.ext_proc.v3.ExternalProcessor").await,
        ServingStatus::NotServing as i32
    );
    stop.await.unwrap();
}

fn header(k: &str, v: &str) -> HeaderValue {
    HeaderValue {
        key: k.into(),
        value: String::new(),
        raw_value: v.as_bytes().to_vec(),
    }
}

#[tokio::test]
async fn one_exchange_over_grpc() {
    let cfg = infergate_control::load_str("t.yaml", CFG).unwrap();
    let epp = start(cfg, opts(Duration::ZERO)).await.unwrap();
    let mut client = ExternalProcessorClient::connect(format!("http://{}", epp.grpc_addr))
        .await
        .unwrap();
    let body = br#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#.to_vec();
    let msgs = vec![
        ProcessingRequest {
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
        },
        ProcessingRequest {
            request: Some(processing_request::Request::RequestBody(HttpBody {
                body: body.clone(),
                end_of_stream: true,
                ..Default::default()
            })),
            ..Default::default()
        },
    ];
    // Keep the request side open (as Envoy does until the response ends).
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    for m in msgs {
        tx.send(m).await.unwrap();
    }
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
    let dest = String::from_utf8(dest.raw_value.clone()).unwrap();
    assert!(dest.starts_with("10.1.0."), "{dest}");
    let second = responses.message().await.unwrap().unwrap();
    let Some(processing_response::Response::RequestBody(b)) = second.response else {
        panic!("expected the body next");
    };
    let Some(body_mutation::Mutation::StreamedResponse(s)) =
        b.response.unwrap().body_mutation.unwrap().mutation
    else {
        panic!("not streamed");
    };
    assert!(s.end_of_stream);
    let v: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
    assert_eq!(v["model"], "llama");
    // The picker counts the request in flight until the stream ends.
    let in_flight: u32 = epp.picker.in_flight("pool-a").iter().map(|(_, n)| n).sum();
    assert_eq!(in_flight, 1);
    drop(tx);
    // The proxy closing its side ends the exchange: the request no longer counts.
    assert!(responses.message().await.map_or(true, |m| m.is_none()));
    for _ in 0..100 {
        if epp.picker.in_flight("pool-a").iter().all(|(_, n)| *n == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(epp.picker.in_flight("pool-a").iter().all(|(_, n)| *n == 0));
    drop(responses);
    drop(client);
    epp.shutdown(Duration::from_secs(1)).await;
}
