//! Failures the client must not see (a dead replica, a config change) and the ones it must see
//! clearly (a stream cut mid-way).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_three_endpoints_killed_during_200_requests_none_fail() {
    let fleet = Arc::new(
        fleet(
            3,
            "time-to-first-token: 5\ninter-token-latency: 1\nmax-num-seqs: 64",
        )
        .await,
    );
    let gw = gateway(&config_yaml(&fleet.addrs(), "")).await;
    let url = format!("{}/v1/chat/completions", gw.base);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let url = url.clone();
        let fleet = fleet.clone();
        tasks.push(tokio::spawn(async move {
            if i == 60 {
                fleet.kill(1);
            }
            // Spread over ~1 s so the kill lands mid-run.
            tokio::time::sleep(Duration::from_millis(i * 5)).await;
            let r = post(&url, chat(MODEL, i % 2 == 0)).await;
            (r.status, r.text())
        }));
    }
    let mut failed = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        if status != 200 || body.contains("\"error\"") {
            failed.push((status, body));
        }
    }
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    let m = get(&format!("{}/metrics", gw.admin)).await.text();
    let ejected = metric(&m, "infergate_endpoint_ejected{pool=\"pool\",endpoint=\"").is_some();
    assert!(ejected, "{m}");
    assert!(
        m.lines()
            .any(|l| l.starts_with("infergate_endpoint_ejected{") && l.ends_with(" 1")),
        "the killed endpoint is out of rotation"
    );
}

#[tokio::test]
async fn stream_cut_midway_ends_with_an_error_event() {
    let fleet = fleet(1, "").await;
    let gw = gateway(&config_yaml(&fleet.addrs(), "")).await;
    let r = post_with(
        &format!("{}/v1/chat/completions", gw.base),
        chat(MODEL, true),
        &[("x-fail-after-tokens", "3")],
    )
    .await;
    assert_eq!(r.status, 200);
    let data = sse_data(&r.text());
    assert!(!data.iter().any(|d| d == "[DONE]"), "{data:?}");
    let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_error", "{last}");
    // the tokens before the cut did arrive
    assert!(data.len() >= 3, "{data:?}");
}

#[tokio::test]
async fn ejected_endpoint_comes_back_after_a_good_probe() {
    let fleet = fleet(2, "").await;
    let gw = gateway(&config_yaml(
        &fleet.addrs(),
        "  health: {consecutive5xx: 1, cooldown: 100ms, probeInterval: 20ms}",
    ))
    .await;
    // X-Return-Error makes every attempt answer 503: with a threshold of 1, each endpoint the
    // gateway tries is ejected, and after the last attempt the client gets the upstream's 503.
    let r = post_with(
        &format!("{}/v1/chat/completions", gw.base),
        chat(MODEL, false),
        &[("x-return-error", "503")],
    )
    .await;
    assert_eq!(r.status, 503);
    let snap = gw.running.gateway.snapshot();
    let eps = &snap.pools.values().next().unwrap().endpoints;
    assert!(eps.iter().all(|e| e.is_ejected()));
    // Probes (GET /health → 200) bring them back after the cool-down.
    for _ in 0..100 {
        if eps.iter().all(|e| !e.is_ejected()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(eps.iter().all(|e| !e.is_ejected()));
    let r = post(
        &format!("{}/v1/chat/completions", gw.base),
        chat(MODEL, false),
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_change_during_50_streams_drops_none_and_bad_config_is_rejected() {
    let fleet = fleet(
        2,
        "time-to-first-token: 20\ninter-token-latency: 20\nmax-num-seqs: 100",
    )
    .await;
    let addrs = fleet.addrs();
    let yaml = config_yaml(&addrs, "  reload: {interval: 50ms}");
    let gw = gateway(&yaml).await;
    let url = format!("{}/v1/chat/completions", gw.base);
    let body = serde_json::json!({
        "model": MODEL, "stream": true, "max_tokens": 30,
        "messages": [{"role": "user", "content": "long answer please"}]
    })
    .to_string();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (url, body) = (url.clone(), body.clone());
        tasks.push(tokio::spawn(async move { post(&url, body).await.text() }));
    }
    // Streams are under way (30 tokens × 20 ms ≈ 0.6 s). Change the config: a second public
    // model, and the first pool now lists only one endpoint.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let changed = config_yaml(&addrs[..1], "  reload: {interval: 50ms}")
        + "---\napiVersion: infergate.dev/v1alpha1\nkind: PublicModel\nmetadata: {name: second}\nspec:\n  targets: [{pool: pool, model: served/model-7b}]\n";
    replace_file(&gw.config_file, &changed);
    let models_url = format!("{}/v1/models", gw.base);
    let mut reloaded = false;
    for _ in 0..100 {
        if get(&models_url).await.text().contains("second") {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reloaded, "new config served");
    for t in tasks {
        let text = t.await.unwrap();
        let data = sse_data(&text);
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
        assert!(!text.contains("\"error\""));
    }

    // A broken file is rejected; the previous config keeps serving.
    replace_file(&gw.config_file, "apiVersion: infergate.dev/v1alpha1\nkind: PublicModel\nmetadata: {name: x}\nspec:\n  targets: [{pool: missing}]\n");
    let admin_metrics = format!("{}/metrics", gw.admin);
    let mut rejected = false;
    for _ in 0..100 {
        let m = get(&admin_metrics).await.text();
        if metric(&m, "infergate_config_reloads_total{result=\"failure\"}").unwrap_or(0.0) >= 1.0 {
            rejected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(rejected, "the failed reload is counted");
    let r = post(&url, chat("second", false)).await;
    assert_eq!(r.status, 200, "old config still serves: {}", r.text());
    let m = get(&admin_metrics).await.text();
    assert_eq!(metric(&m, "infergate_config_generation"), Some(2.0));
}

/// Replace a file atomically (write beside it, rename over it), as config tools do: a plain
/// write truncates first, and a reload poll that lands in between reads an empty — valid, and
/// empty — configuration.
fn replace_file(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
