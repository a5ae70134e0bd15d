//! Priority and flow control through the real data plane: a pool saturated by sheddable batch
//! traffic refuses further sheddable requests with 429 (never a timeout), while critical requests
//! still get through. No timing assertions: only who got what.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

const OBJECTIVES: &str = "---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceObjective
metadata: {name: batch}
spec: {priority: -1, poolRef: {name: pool}}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceObjective
metadata: {name: critical}
spec: {priority: 10, poolRef: {name: pool}}
";

fn request(n: usize) -> String {
    serde_json::json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": format!("batch item {n}")}],
        "max_tokens": 10,
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sheddable_traffic_is_refused_with_429_while_critical_traffic_gets_through() {
    // Two replicas, two slots each, ~0.2 s per request: 40 requests at once leave ~9 waiting per
    // replica, well past the saturation threshold (5).
    let sims = fleet(
        2,
        "max-num-seqs: 2\ntime-to-first-token: 100\ninter-token-latency: 10\n",
    )
    .await;
    let gw = gateway(&(config_yaml(&sims.addrs(), "") + OBJECTIVES)).await;
    let url = format!("{}/v1/chat/completions", gw.base);

    // The batch wave fills the engines.
    let wave: Vec<_> = (0..40)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                post_with(
                    &url,
                    request(i),
                    &[("x-gateway-inference-objective", "batch")],
                )
                .await
            })
        })
        .collect();
    // Wait until the gateway sees the pool saturated (its scraper reads the engines' queues).
    let mut saturated = false;
    for _ in 0..200 {
        let m = get(&format!("{}/metrics", gw.admin)).await.text();
        if metric(&m, "infergate_pool_saturation{pool=\"pool\"}").is_some_and(|s| s >= 1.0) {
            saturated = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(saturated, "the batch wave should saturate the pool");

    // More batch traffic while saturated: refused at once, saying why.
    let mut refused = 0;
    for i in 0..10 {
        let r = post_with(
            &url,
            request(100 + i),
            &[("x-gateway-inference-objective", "batch")],
        )
        .await;
        if r.status == 429 {
            let body = r.json();
            assert_eq!(body["error"]["code"], "pool_saturated", "{body}");
            let msg = body["error"]["message"].as_str().unwrap();
            assert!(
                msg.contains("saturated") && msg.contains("sheddable"),
                "{msg}"
            );
            assert_eq!(r.headers["retry-after"], "1");
            refused += 1;
        } else {
            assert_eq!(r.status, 200, "{}", r.text());
        }
    }
    assert!(
        refused > 0,
        "sheddable requests to a saturated pool get 429"
    );

    // Critical requests are never refused: they wait for capacity if they must.
    let critical: Vec<_> = (0..6)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                post_with(
                    &url,
                    request(200 + i),
                    &[("x-gateway-inference-objective", "critical")],
                )
                .await
            })
        })
        .collect();
    for c in critical {
        let r = c.await.unwrap();
        assert_eq!(r.status, 200, "critical request failed: {}", r.text());
    }
    // The first wave: each either served or refused with 429 — none timed out or failed.
    for w in wave {
        let r = w.await.unwrap();
        assert!(
            r.status == 200 || (r.status == 429 && r.json()["error"]["code"] == "pool_saturated"),
            "batch request ended with {}: {}",
            r.status,
            r.text()
        );
    }
    let m = get(&format!("{}/metrics", gw.admin)).await.text();
    assert!(m.contains("infergate_flow_control_queue_size{pool=\"pool\"}"));
    assert!(m.contains("reason=\"pool_saturated\""));
    gw.running.shutdown(std::time::Duration::from_secs(1)).await;
    sims.shutdown().await;
}
