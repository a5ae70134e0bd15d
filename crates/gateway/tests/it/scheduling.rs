//! Endpoint picking through the real data plane with simulated model servers: live metrics, the
//! approximate prefix index, and the precise index fed by the simulators' KV events over ZMQ.

#![allow(clippy::unwrap_used)]

use crate::common::*;

fn long_chat(system: &str, question: &str) -> String {
    serde_json::json!({
        "model": MODEL,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": question},
        ],
        "max_tokens": 4,
    })
    .to_string()
}

fn system_prompt(seed: &str) -> String {
    (0..300)
        .map(|i| format!("{seed} rule {i} says be precise. "))
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn picker(body: &str) -> String {
    format!(
        "---
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
{body}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precise_prefix_follows_the_blocks_engines_report() {
    let port = free_port();
    let zmq = format!("tcp://127.0.0.1:{port}");
    let sims = fleet(
        3,
        &format!("zmq-endpoint: {zmq}\nevent-batch-size: 4\nkv-cache-size: 4096\n"),
    )
    .await;
    // Precise scoring only, no speculation: routing can follow only what the engines reported.
    let cfg = config_yaml(&sims.addrs(), "")
        + &picker(&format!(
            "plugins:
- type: precise-prefix-cache-scorer
  parameters: {{zmqEndpoint: \"{zmq}\", speculativeTtl: 0s, minMatchBlocksForFullScore: 1}}
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins: [{{pluginRef: precise-prefix-cache-scorer}}, {{pluginRef: max-score-picker}}]
"
        ));
    let gw = gateway(&cfg).await;
    let url = format!("{}/v1/chat/completions", gw.base);
    let system = system_prompt("alpha");
    // ZMQ PUB/SUB drops what is published before the connection is up ("slow joiner"): the
    // simulators started before the gateway bound its SUB socket and reconnect every 100 ms.
    // Events lost here would hide the first request's blocks for good (later requests only
    // store the blocks after them), so wait until every simulator's events arrive: send each
    // one a request of its own, directly, until the gateway's index holds blocks from it. (A
    // fixed one-second wait was not always enough on a loaded machine: the gateway then routed
    // at random and the prefix ended up on several replicas.)
    let scheduler = gw.running.gateway.snapshot().pools["pool"]
        .scheduler
        .clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for (n, addr) in sims.addrs().iter().enumerate() {
        let host_port = addr.to_string();
        for attempt in 0.. {
            let indexed = scheduler
                .kv_event_blocks()
                .expect("the precise scorer is configured")
                .iter()
                .any(|(ep, blocks)| **ep == *host_port && *blocks > 0);
            if indexed {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no KV events from {host_port} reached the gateway within 60 s"
            );
            // A new prefix each time: a lost store is not published again.
            let warm = long_chat(&system_prompt(&format!("warm-up {n} {attempt}")), "hi")
                .replace(MODEL, TARGET);
            let r = post(&format!("http://{addr}/v1/chat/completions"), warm).await;
            assert_eq!(r.status, 200, "{}", r.text());
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    let first = post(&url, long_chat(&system, "first question")).await;
    assert_eq!(first.status, 200, "{}", first.text());

    // Once the engine's BlockStored events reach the gateway (the simulators publish in
    // batches of 4 events), requests sharing the system prompt go where its blocks are — and
    // hit that engine's cache. One hit can be luck (a random pick among unscored replicas);
    // eight in a row, each hitting, is the index at work.
    let mut followed = false;
    let mut streak = 0;
    // (endpoint, cached tokens) of every request, for the failure messages
    let endpoint = |r: &Reply| {
        r.headers
            .get("x-infergate-endpoint")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?")
            .to_string()
    };
    let mut seen: Vec<(String, u64)> = Vec::new();
    for i in 0..200 {
        let r = post(&url, long_chat(&system, &format!("question {i}"))).await;
        assert_eq!(r.status, 200);
        let cached = r.json()["usage"]["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap_or(0);
        seen.push((endpoint(&r), cached));
        streak = if cached > 0 { streak + 1 } else { 0 };
        if streak >= 8 {
            followed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(followed, "requests never followed the reported blocks");
    // From now on every such request goes to a replica holding the prefix (the first miss
    // may have left copies on several; any of them is a cache hit).
    for i in 0..5 {
        let r = post(&url, long_chat(&system, &format!("again {i}"))).await;
        let cached = r.json()["usage"]["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap_or(0);
        assert!(
            cached > 0,
            "request {i} missed the cache at {}: {}; earlier requests (endpoint, cached tokens): {seen:?}",
            endpoint(&r),
            r.text()
        );
        seen.push((endpoint(&r), cached));
    }
    // Another prefix is free to go anywhere; once it is cached somewhere, it sticks there too.
    let other = system_prompt("beta");
    let r = post(&url, long_chat(&other, "hello")).await;
    assert_eq!(r.status, 200);
    gw.running.shutdown(std::time::Duration::from_secs(1)).await;
    sims.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_profile_keeps_a_shared_prefix_on_one_replica_and_spreads_the_rest() {
    let sims = fleet(4, "").await;
    let gw = gateway(&config_yaml(&sims.addrs(), "")).await;
    let url = format!("{}/v1/chat/completions", gw.base);
    let system = system_prompt("gamma");
    let mut homes = std::collections::BTreeSet::new();
    for i in 0..12 {
        let r = post(&url, long_chat(&system, &format!("q{i}"))).await;
        assert_eq!(r.status, 200);
        homes.insert(
            r.headers["x-infergate-endpoint"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(homes.len(), 1, "one shared prefix, one replica: {homes:?}");
    // Short unrelated prompts are not pinned anywhere (GIE #2561: no hot-spot).
    let mut spread = std::collections::BTreeSet::new();
    for i in 0..40 {
        let r = post(
            &url,
            chat(MODEL, false).replace("Say hello", &format!("hi {i}")),
        )
        .await;
        assert_eq!(r.status, 200);
        spread.insert(
            r.headers["x-infergate-endpoint"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    assert!(spread.len() > 1, "short prompts all went to {spread:?}");
    // The scraper reads the engines' metrics.
    let m = get(&format!("{}/metrics", gw.admin)).await.text();
    assert!(
        m.contains("infergate_endpoint_kv_cache_utilization{"),
        "{m}"
    );
    assert!(m.contains("infergate_pool_saturation{pool=\"pool\"}"));
    gw.running.shutdown(std::time::Duration::from_secs(1)).await;
    sims.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_endpoint_picker_config_is_rejected_with_file_line_and_field() {
    let sims = fleet(1, "").await;
    let cfg = config_yaml(&sims.addrs(), "")
        + &picker(
            "plugins:
- type: queue-scorer
- type: prefix-cache-scorer
  parameters: {blockSizeTokens: zero}
schedulingProfiles:
- name: default
  plugins: [{pluginRef: queue-scorer}, {pluginRef: kv-scorer, weight: 2}]
",
        );
    let err = infergate_control::load_str("gw.yaml", &cfg)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("plugins[1].parameters.blockSizeTokens"),
        "{err}"
    );
    assert!(err.contains("no plugin named `kv-scorer`"), "{err}");
    assert!(err.contains("gw.yaml:"), "{err}");
    sims.shutdown().await;
}
