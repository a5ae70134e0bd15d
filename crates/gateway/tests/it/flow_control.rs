//! Priority and flow control through the real data plane: a pool saturated by sheddable batch
//! traffic refuses further sheddable requests with 429 (never a timeout), while critical requests
//! still get through. No timing assertions: only who got what.

#![allow(clippy::unwrap_used)]


use crate::common::*;

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
    // Two replicas, two slots each, ~1 s per request: a wave of 40 batch requests is ten times
    // what the engines run at once, so the pool saturates (the gateway counts what it sent
    // before the engines' own queues are scraped).
    let sims = fleet(
        2,
        "max-num-seqs: 2\ntime-to-first-token: 100\ninter-token-latency: 100\n",
    )
    .await;
    let gw = gateway(&(config_yaml(&sims.addrs(), "") + OBJECTIVES)).await;
    let url = format!("{}/v1/chat/completions", gw.base);

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
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // Critical requests arrive in the middle of it: never refused, they wait for capacity.
    let critical: Vec<_> = (0..4)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                post_with(
                    &url,
                    request(100 + i),
                    &[("x-gateway-inference-objective", "critical")],
                )
                .await
            })
        })
        .collect();

    // Every batch request is either served or refused at once with 429 saying why — none
    // timed out or failed otherwise.
    let mut refused = 0;
    for w in wave {
        let r = w.await.unwrap();
        match r.status.as_u16() {
            200 => {}
            429 => {
                let body = r.json();
                assert_eq!(body["error"]["code"], "pool_saturated", "{body}");
                let msg = body["error"]["message"].as_str().unwrap();
                assert!(
                    msg.contains("saturated") && msg.contains("sheddable"),
                    "{msg}"
                );
                assert_eq!(r.headers["retry-after"], "1");
                refused += 1;
            }
            other => panic!("batch request ended with {other}: {}", r.text()),
        }
    }
    assert!(
        refused > 0,
        "sheddable requests to a saturated pool get 429"
    );
    assert!(refused < 40, "some batch requests were served");
    for c in critical {
        let r = c.await.unwrap();
        assert_eq!(r.status, 200, "critical request failed: {}", r.text());
    }
    let m = get(&format!("{}/metrics", gw.admin)).await.text();
    assert!(m.contains("reason=\"pool_saturated\""), "{m}");
    assert!(m.contains("infergate_flow_control_queue_size{pool=\"pool\"}"));
    assert!(m.contains("infergate_pool_saturation{pool=\"pool\"}"));
    gw.running.shutdown(std::time::Duration::from_secs(1)).await;
    sims.shutdown().await;
}
