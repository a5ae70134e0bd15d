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

/// The order in which one replica (one prefill lane, 500 ms per prefill) finishes: batch A is
/// prefilling, batches B and C wait in the engine's queue, then critical D arrives.
async fn finishing_order(engine_priority: bool) -> Vec<&'static str> {
    let policy = if engine_priority {
        "scheduling-policy: priority\n"
    } else {
        ""
    };
    let sims = fleet(
        1,
        &format!("max-num-seqs: 10\nprefill-parallelism: 1\nprefill-overhead: 500\n{policy}"),
    )
    .await;
    let picker = format!(
        "---\napiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n\
         flowControl: {{enginePriority: {engine_priority}}}\n"
    );
    let gw = gateway(&(config_yaml(&sims.addrs(), "") + OBJECTIVES + &picker)).await;
    let url = format!("{}/v1/chat/completions", gw.base);
    let sim_metrics = format!("http://{}/metrics", sims.addrs()[0]);
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let spawn = |name: &'static str, objective: &'static str| {
        let (url, order) = (url.clone(), order.clone());
        tokio::spawn(async move {
            let r = post_with(
                &url,
                request(name.len() + name.as_bytes()[0] as usize),
                &[("x-gateway-inference-objective", objective)],
            )
            .await;
            assert_eq!(r.status, 200, "{name}: {}", r.text());
            order.lock().unwrap().push(name);
        })
    };
    // Wait (bounded) until the replica reports what we expect before the next step.
    let until = |what: &'static str, want: f64| {
        let sim_metrics = sim_metrics.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let m = get(&sim_metrics).await.text();
                if metric(&m, what).is_some_and(|v| v >= want) {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the replica never reported {what} ≥ {want}:\n{m}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    };
    let mut tasks = vec![spawn("A", "batch")];
    until("vllm:num_requests_running", 1.0).await;
    tasks.push(spawn("B", "batch"));
    until("vllm:num_requests_waiting", 1.0).await;
    tasks.push(spawn("C", "batch"));
    until("vllm:num_requests_waiting", 2.0).await;
    tasks.push(spawn("D", "critical"));
    for t in tasks {
        t.await.unwrap();
    }
    gw.running.shutdown(std::time::Duration::from_secs(1)).await;
    sims.shutdown().await;
    let order = order.lock().unwrap().clone();
    order
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_engine_priority_a_critical_request_overtakes_batch_work_queued_at_the_engine() {
    // `flowControl.enginePriority` sends vLLM's `priority` (minus the objective's): the engine
    // serves D's prefill as soon as A's ends, ahead of B and C.
    assert_eq!(finishing_order(true).await, ["A", "D", "B", "C"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_engine_priority_the_engine_serves_its_queue_in_arrival_order() {
    // The control: the same arrivals, engine first come first served.
    assert_eq!(finishing_order(false).await, ["A", "B", "C", "D"]);
}
