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

/// Send request `n` as the `batch` objective (sheddable) in a task of its own.
fn spawn_batch(url: &str, n: usize) -> tokio::task::JoinHandle<Reply> {
    let url = url.to_string();
    tokio::spawn(async move {
        post_with(
            &url,
            request(n),
            &[("x-gateway-inference-objective", "batch")],
        )
        .await
    })
}

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

    let wave: Vec<_> = (0..40).map(|i| spawn_batch(&url, i)).collect();
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

/// The picker for the prefill tests: the anchor's default profile, with or without the
/// `prefill-scorer` (weight 2).
fn prefill_picker(with_prefill_scorer: bool) -> String {
    let (decl, used) = if with_prefill_scorer {
        (
            "- type: prefill-scorer\n",
            "  - {pluginRef: prefill-scorer, weight: 2}\n",
        )
    } else {
        ("", "")
    };
    format!(
        "---\napiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n\
         plugins:\n- type: queue-scorer\n- type: kv-cache-utilization-scorer\n\
         - type: prefix-cache-scorer\n{decl}- type: max-score-picker\n\
         schedulingProfiles:\n- name: default\n  plugins:\n\
         \x20 - {{pluginRef: queue-scorer, weight: 2}}\n\
         \x20 - {{pluginRef: kv-cache-utilization-scorer, weight: 2}}\n\
         \x20 - {{pluginRef: prefix-cache-scorer, weight: 3}}\n{used}\
         \x20 - {{pluginRef: max-score-picker}}\n"
    )
}

/// Poll (bounded) until `check` holds for the text at `url`.
async fn until(url: &str, what: &str, check: impl Fn(&str) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let m = get(url).await.text();
        if check(&m) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never saw {what} at {url}:\n{m}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Where a critical request goes when one replica is prefilling a batch request (one prefill
/// lane, 1 s per prefill) and the other is decoding a long answer, its prefill lane free.
/// Returns (the replica prefilling, the replica decoding, where the critical request went).
async fn critical_request_home(with_prefill_scorer: bool) -> (String, String, String) {
    // A small KV cache, so the long answer's blocks make its replica look fuller to the
    // KV-cache scorer: without the prefill scorer, the replica prefilling looks better.
    let sims = fleet(
        2,
        "max-num-seqs: 10\nprefill-parallelism: 1\nprefill-overhead: 1000\n\
         inter-token-latency: 25\nkv-cache-size: 256\n",
    )
    .await;
    let gw = gateway(
        &(config_yaml(&sims.addrs(), "") + OBJECTIVES + &prefill_picker(with_prefill_scorer)),
    )
    .await;
    let url = format!("{}/v1/chat/completions", gw.base);
    let admin = format!("{}/metrics", gw.admin);
    let series = |name: &str, ep: &str| format!("{name}{{pool=\"pool\",endpoint=\"{ep}\"}}");
    let addrs: Vec<String> = sims.addrs().iter().map(ToString::to_string).collect();

    // A long answer (800-token prompt, 200 tokens at 25 ms) on one replica.
    let long = serde_json::json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "word ".repeat(800)}],
        "max_tokens": 200,
        "stream": true,
    })
    .to_string();
    let long_task = {
        let url = url.clone();
        tokio::spawn(async move {
            post_with(&url, long, &[("x-gateway-inference-objective", "critical")]).await
        })
    };
    // …until its prefill is over: in flight there, no longer awaiting its first byte.
    let mut decoding = None;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while decoding.is_none() {
        let m = get(&admin).await.text();
        decoding = addrs
            .iter()
            .find(|a| {
                metric(&m, &series("infergate_endpoint_in_flight_requests", a)) == Some(1.0)
                    && metric(&m, &series("infergate_endpoint_awaiting_first_byte", a)) == Some(0.0)
            })
            .cloned();
        assert!(std::time::Instant::now() < deadline, "{m}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let decoding = decoding.unwrap();
    let prefilling = addrs.iter().find(|a| **a != decoding).unwrap().clone();
    // The gateway has scraped the long answer's KV blocks.
    until(&admin, "the long answer's KV use", |m| {
        metric(
            m,
            &series("infergate_endpoint_kv_cache_utilization", &decoding),
        )
        .is_some_and(|v| v > 0.2)
    })
    .await;

    // A batch request goes to the other replica (emptier cache) and starts its prefill.
    let batch_task = spawn_batch(&url, 1);
    until(&admin, "the batch request prefilling", |m| {
        metric(m, &series("infergate_endpoint_awaiting_first_byte", &prefilling)) == Some(1.0)
            // scraped since it was sent: the queue scorer sees both replicas alike
            && metric(m, &series("infergate_endpoint_queue_size", &prefilling)) == Some(0.0)
    })
    .await;

    // Now a critical request.
    let r = post_with(
        &url,
        request(2),
        &[("x-gateway-inference-objective", "critical")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let home = r.headers["x-infergate-endpoint"]
        .to_str()
        .unwrap()
        .to_string();
    let batch = batch_task.await.unwrap();
    assert_eq!(batch.status, 200, "{}", batch.text());
    assert_eq!(batch.headers["x-infergate-endpoint"], prefilling.as_str());
    assert_eq!(long_task.await.unwrap().status, 200);
    gw.running.shutdown(std::time::Duration::from_secs(1)).await;
    sims.shutdown().await;
    (prefilling, decoding, home)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_prefill_scorer_a_critical_request_avoids_the_replica_running_a_prefill() {
    // The running batch prefill cannot be preempted (engine priority only reorders the
    // waiting queue): the critical request goes where the prefill lane is free.
    let (_prefilling, decoding, home) = critical_request_home(true).await;
    assert_eq!(home, decoding);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_prefill_scorer_the_critical_request_queues_behind_the_batch_prefill() {
    // The control: the anchor's default weights prefer the replica with the emptier cache —
    // the one busy prefilling.
    let (prefilling, _decoding, home) = critical_request_home(false).await;
    assert_eq!(home, prefilling);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reserve_keeps_batch_traffic_off_a_replica_while_critical_traffic_is_present() {
    // Two replicas, half reserved: once a critical request has been seen, batch requests go
    // only to the open replica and are refused with 429 when it saturates — never queued,
    // never sent to the reserved replica.
    let sims = fleet(
        2,
        "max-num-seqs: 2\ntime-to-first-token: 100\ninter-token-latency: 50\n",
    )
    .await;
    let picker = "---\napiVersion: inference.networking.x-k8s.io/v1alpha1\n\
                  kind: EndpointPickerConfig\n\
                  flowControl: {nonSheddableReserve: {endpointShare: 0.5, window: 60s}}\n";
    let gw = gateway(&(config_yaml(&sims.addrs(), "") + OBJECTIVES + picker)).await;
    let url = format!("{}/v1/chat/completions", gw.base);
    let first = post_with(
        &url,
        request(0),
        &[("x-gateway-inference-objective", "critical")],
    )
    .await;
    assert_eq!(first.status, 200);
    let m = get(&format!("{}/metrics", gw.admin)).await.text();
    assert_eq!(
        metric(&m, "infergate_pool_reserved_endpoints{pool=\"pool\"}"),
        Some(1.0),
        "{m}"
    );
    let wave: Vec<_> = (0..30).map(|i| spawn_batch(&url, i)).collect();
    let mut served_by = std::collections::BTreeSet::new();
    let mut refused = 0;
    for w in wave {
        let r = w.await.unwrap();
        match r.status.as_u16() {
            200 => {
                served_by.insert(
                    r.headers["x-infergate-endpoint"]
                        .to_str()
                        .unwrap()
                        .to_string(),
                );
            }
            429 => {
                let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
                assert!(
                    msg.contains("1 more are reserved for non-sheddable traffic"),
                    "{msg}"
                );
                refused += 1;
            }
            other => panic!("batch request ended with {other}: {}", r.text()),
        }
    }
    assert_eq!(served_by.len(), 1, "batch traffic used {served_by:?}");
    assert!(
        refused > 0,
        "the open replica saturated: some batch requests got 429"
    );
    // Critical traffic still gets through (to either replica).
    let r = post_with(
        &url,
        request(99),
        &[("x-gateway-inference-objective", "critical")],
    )
    .await;
    assert_eq!(r.status, 200);
    gw.running.shutdown(std::time::Duration::from_secs(1)).await;
    sims.shutdown().await;
}
