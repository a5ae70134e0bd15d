//! `bench load` against an in-process HTTP/1.1 server: every scheduled request is accounted for,
//! and what the generator says it sent is what the server received. No timing assertions.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use infergate_bench::load::{chat_body, run_load, LoadSpec, Rate};
use tokio::net::TcpListener;

/// A server that answers every request with a small chat completion, and every 10th with a 503.
async fn start_server() -> (SocketAddr, Arc<AtomicU64>, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let received = Arc::new(AtomicU64::new(0));
    let body_bytes = Arc::new(AtomicU64::new(0));
    let (r, b) = (received.clone(), body_bytes.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (r, b) = (r.clone(), b.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (r, b) = (r.clone(), b.clone());
                    async move {
                        let body = req.into_body().collect().await.map(|c| c.to_bytes());
                        b.fetch_add(body.map_or(0, |x| x.len() as u64), Ordering::Relaxed);
                        let n = r.fetch_add(1, Ordering::Relaxed) + 1;
                        let status = if n % 10 == 0 { 503 } else { 200 };
                        let resp = Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from_static(
                                br#"{"choices":[{"message":{"content":"ok"}}]}"#,
                            )))
                            .expect("response");
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, received, body_bytes)
}

fn spec(addr: SocketAddr, rate: Rate, duration: Duration, connections: usize) -> LoadSpec {
    LoadSpec {
        url: format!("http://{addr}/v1/chat/completions")
            .parse()
            .expect("url"),
        rate,
        duration,
        warmup: Duration::ZERO,
        connections,
        max_in_flight: None,
        body: chat_body("m", 1024, false, 1),
        headers: Vec::new(),
        drain: Duration::from_secs(5),
        unique_prompts: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_accounts_for_every_scheduled_request() {
    let (addr, received, body_bytes) = start_server().await;
    let report = run_load(spec(addr, Rate::Fixed(200.0), Duration::from_secs(1), 4))
        .await
        .expect("load");

    // 200 req/s for 1 s: requests 0..199 are due inside the window.
    assert_eq!(report.scheduled, 200);
    assert_eq!(report.mode, "open");
    // Each one ended exactly one way.
    let transport: u64 = report.transport_errors.values().sum();
    assert_eq!(
        report.completed + transport + report.unfinished + report.unsent + report.skipped,
        report.scheduled,
        "{report:?}"
    );
    // What the generator sent is what the server saw, bodies included.
    assert_eq!(report.sent, received.load(Ordering::Relaxed));
    assert_eq!(body_bytes.load(Ordering::Relaxed), report.sent * 1024);
    // Every 10th answer is a 503: counted by status and as errors.
    let s503 = report.status.get("503").copied().unwrap_or(0);
    let s200 = report.status.get("200").copied().unwrap_or(0);
    assert_eq!(s200 + s503, report.completed);
    assert_eq!(report.ok, s200);
    assert_eq!(s503, report.completed / 10);
    assert_eq!(
        report.errors,
        s503 + transport + report.unfinished + report.unsent + report.skipped
    );
    // Every request in the window has a latency (the unfinished at their lower bound).
    assert_eq!(
        report.latency.count,
        report.completed + report.unfinished + report.unsent
    );
    assert_eq!(report.ttfb.count, report.completed);
    assert_eq!(report.send_delay.count, report.completed);
    assert!(report.latency.p50_us <= report.latency.p99_us);
    assert!(report.latency.p99_us <= report.latency.max_us);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_is_sent_but_not_recorded() {
    let (addr, received, _) = start_server().await;
    let mut s = spec(addr, Rate::Fixed(100.0), Duration::from_millis(500), 2);
    s.warmup = Duration::from_millis(500);
    let report = run_load(s).await.expect("load");
    assert_eq!(report.scheduled, 50);
    assert_eq!(report.sent, received.load(Ordering::Relaxed));
    // 50 warm-up requests went out as well.
    assert_eq!(report.sent, 100);
    assert_eq!(report.latency.count, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_counts_what_it_sends() {
    let (addr, received, _) = start_server().await;
    let report = run_load(spec(addr, Rate::Max, Duration::from_millis(500), 4))
        .await
        .expect("load");
    assert_eq!(report.mode, "closed");
    assert!(report.completed > 0);
    assert_eq!(report.sent, received.load(Ordering::Relaxed));
    assert_eq!(report.scheduled, report.completed);
    assert_eq!(report.latency.count, report.completed);
}

#[tokio::test]
async fn an_unreachable_target_is_an_error_not_a_hang() {
    // Bind then drop: nothing listens there any more.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let result = run_load(spec(addr, Rate::Fixed(10.0), Duration::from_millis(200), 1)).await;
    assert!(result.is_err());
}
