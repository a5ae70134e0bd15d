//! Identities, access control, token limits, budgets and spend, against a simulated pool and a
//! gateway in this process (in-process limiter, SQLite store in a temporary directory).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::common::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use infergate_policy::budget::Price;
use infergate_policy::estimate;
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

fn sha(s: &str) -> String {
    infergate_policy::key::sha256_hex(s.as_bytes())
}

/// Settings (admin token, SQLite in `dir`) plus extra settings lines, and Tenant documents.
fn config(
    addrs: &[std::net::SocketAddr],
    dir: &std::path::Path,
    settings: &str,
    tenants: &str,
) -> String {
    let extra = format!(
        "  auth:\n    adminToken: {{sha256: {}}}\n  state: {{path: {}/state.db, ledgerFlush: 20ms}}\n{settings}",
        sha(ADMIN_TOKEN),
        dir.display()
    );
    format!("{}---\n{tenants}", config_yaml(addrs, &extra))
}

async fn admin(gw: &TestGateway, method: &str, path: &str, body: Value) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri(format!("{}{path}", gw.admin))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    send(req).await
}

async fn new_key(gw: &TestGateway, tenant: &str) -> (String, String) {
    let r = admin(
        gw,
        "POST",
        "/admin/v1/keys",
        json!({"tenant": tenant, "name": "k"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    (
        v["id"].as_str().unwrap().to_string(),
        v["key"].as_str().unwrap().to_string(),
    )
}

async fn chat_as(gw: &TestGateway, key: &str, body: &Value) -> Reply {
    post_with(
        &format!("{}/v1/chat/completions", gw.base),
        body.to_string(),
        &[("authorization", &format!("Bearer {key}"))],
    )
    .await
}

const TENANT: &str = "apiVersion: infergate.dev/v1alpha1
kind: Tenant
metadata: {name: acme}
spec:
  models: [public-*]
";

#[tokio::test]
async fn missing_bad_and_unauthorized_credentials_say_what_to_change() {
    let fleet = fleet(1, "").await;
    let dir = tempfile::tempdir().unwrap();
    let tenants = format!(
        "{TENANT}---
apiVersion: infergate.dev/v1alpha1
kind: Tenant
metadata: {{name: narrow}}
spec:
  models: [other-model]
  keys: [{{name: n, sha256: {}}}]
",
        sha("igk_00000000_narrowkeynarrowkeynarrowkey0000")
    );
    let gw = gateway(&config(&fleet.addrs(), dir.path(), "", &tenants)).await;
    let url = format!("{}/v1/chat/completions", gw.base);

    let r = post(&url, chat(MODEL, false)).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "missing_credential");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Authorization: Bearer"));

    let r = post_with(
        &url,
        chat(MODEL, false),
        &[("authorization", "Bearer igk_12345678_wrongwrongwrong")],
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "invalid_api_key");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("igk_12345678"));

    // A declared key works, through any of the three headers, but only for its tenant's models.
    let narrow = "igk_00000000_narrowkeynarrowkeynarrowkey0000";
    for h in ["x-api-key", "api-key"] {
        let r = post_with(&url, chat(MODEL, false), &[(h, narrow)]).await;
        assert_eq!(r.status, 403, "{}", r.text());
        let e = &r.json()["error"];
        assert_eq!(e["code"], "model_not_allowed");
        assert_eq!(e["param"], "model");
        assert!(e["message"]
            .as_str()
            .unwrap()
            .contains("allowed: other-model"));
    }
    // /v1/models needs a credential and lists what the caller may use.
    assert_eq!(get(&format!("{}/v1/models", gw.base)).await.status, 401);

    let (_, key) = new_key(&gw, "acme").await;
    let r = chat_as(
        &gw,
        &key,
        &serde_json::from_str(&chat(MODEL, false)).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let m = get(&format!("{}/metrics", gw.admin)).await.text();
    assert_eq!(
        metric(
            &m,
            "infergate_auth_failures_total{reason=\"missing_credential\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &m,
            "infergate_auth_failures_total{reason=\"invalid_api_key\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "infergate_authz_denials_total{tenant=\"narrow\",reason=\"model_not_allowed\"}"
        ),
        Some(2.0)
    );
    // Labels never carry key ids.
    assert!(!m.contains("igk_"));
    gw.running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn concurrent_requests_cannot_overshoot_a_token_limit() {
    let fleet = fleet(1, "time-to-first-token: 100").await;
    let dir = tempfile::tempdir().unwrap();
    let limit = 600u64;
    let tenants = format!("{TENANT}  limits: {{tokens: {limit}}}\n");
    let gw = gateway(&config(&fleet.addrs(), dir.path(), "", &tenants)).await;
    let (_, key) = new_key(&gw, "acme").await;
    let body =
        json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50});
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let (gw_base, key, body) = (gw.base.clone(), key.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            post_with(
                &format!("{gw_base}/v1/chat/completions"),
                body.to_string(),
                &[("authorization", &format!("Bearer {key}"))],
            )
            .await
        }));
    }
    let mut used = 0u64;
    let (mut ok, mut limited) = (0, 0);
    for t in tasks {
        let r = t.await.unwrap();
        match r.status.as_u16() {
            200 => {
                ok += 1;
                used += r.json()["usage"]["total_tokens"].as_u64().unwrap();
                assert_eq!(r.headers["x-ratelimit-limit-tokens"], "600");
                assert!(r.headers.contains_key("x-ratelimit-remaining-tokens"));
                assert!(r.headers.contains_key("x-ratelimit-reset-tokens"));
            }
            429 => {
                limited += 1;
                assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
                let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=120).contains(&retry));
                assert_eq!(r.headers["x-ratelimit-limit-tokens"], "600");
                assert!(r.json()["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("Limit 600"));
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    // Every admitted request was reserved before any of them finished: none overshoots.
    assert!(
        used <= limit,
        "{used} tokens admitted against a limit of {limit}"
    );
    assert!(ok >= 8, "the limit is usable: {ok} admitted");
    assert_eq!(ok + limited, 30);
    gw.running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn concurrency_limit_counts_requests_in_flight() {
    let fleet = fleet(1, "time-to-first-token: 400").await;
    let dir = tempfile::tempdir().unwrap();
    let tenants = format!("{TENANT}  keyLimits: {{concurrency: 2}}\n");
    let gw = gateway(&config(&fleet.addrs(), dir.path(), "", &tenants)).await;
    let (_, key) = new_key(&gw, "acme").await;
    let body: Value = serde_json::from_str(&chat(MODEL, false)).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (base, key, body) = (gw.base.clone(), key.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            post_with(
                &format!("{base}/v1/chat/completions"),
                body.to_string(),
                &[("x-api-key", &key)],
            )
            .await
        }));
    }
    let mut statuses: Vec<u16> = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap().status.as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 200, 429, 429]);
    // Released at settle: the key can go again.
    assert_eq!(chat_as(&gw, &key, &body).await.status, 200);
    gw.running.shutdown(Duration::from_secs(1)).await;
}

/// Run requests until the budget cuts one off; return (index of the refused request, the
/// refusal, Σ cost of the admitted ones in nano-USD).
async fn run_until_cut(
    gw: &TestGateway,
    key: &str,
    stream: bool,
    price: Price,
    budget: u64,
) -> (usize, Reply, u64) {
    let body = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "Tell me about gateways"}],
        "max_tokens": 100,
        "stream": stream,
        "stream_options": {"include_usage": true},
    });
    let raw = serde_json::to_vec(&body["messages"]).unwrap();
    let est = estimate::estimate(MODEL, &raw, Some(100), 1024, true);
    let est_cost = price.cost(est.input, est.output, 0);
    let mut spent = 0u64;
    for i in 0..1000 {
        let r = chat_as(gw, key, &body).await;
        if r.status == 429 {
            // The refusal comes exactly when the estimate no longer fits.
            assert!(
                spent + est_cost > budget,
                "refused early at request {i}: spent {spent}"
            );
            return (i, r, spent);
        }
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            spent + est_cost <= budget,
            "request {i} should have been refused"
        );
        let usage = if stream {
            let data = sse_data(&r.text());
            let last = data
                .iter()
                .rev()
                .find(|d| d.contains("\"usage\""))
                .unwrap()
                .clone();
            serde_json::from_str::<Value>(&last).unwrap()["usage"].clone()
        } else {
            r.json()["usage"].clone()
        };
        spent += price.cost(
            usage["prompt_tokens"].as_u64().unwrap(),
            usage["completion_tokens"].as_u64().unwrap(),
            0,
        );
    }
    panic!("the budget never cut off");
}

#[tokio::test]
async fn a_one_cent_budget_cuts_off_at_the_right_request_streamed_or_not() {
    let fleet = fleet(1, "").await;
    let dir = tempfile::tempdir().unwrap();
    let settings = format!("  prices: [{{model: {MODEL}, input: 1.5, output: 2}}]\n");
    let tenants = "apiVersion: infergate.dev/v1alpha1
kind: Tenant
metadata: {name: plain}
spec:
  models: ['*']
  budgets: [{period: day, usd: 0.01}]
---
apiVersion: infergate.dev/v1alpha1
kind: Tenant
metadata: {name: streamer}
spec:
  models: ['*']
  budgets: [{period: day, usd: 0.01}]
";
    let gw = gateway(&config(&fleet.addrs(), dir.path(), &settings, tenants)).await;
    let price = Price::per_million(1.5, 2.0, None);
    let budget = 10_000_000; // $0.01 in nano-USD
    let (_, plain_key) = new_key(&gw, "plain").await;
    let (_, stream_key) = new_key(&gw, "streamer").await;
    let (cut_plain, refusal, spent_plain) =
        run_until_cut(&gw, &plain_key, false, price, budget).await;
    let (cut_stream, _, spent_stream) = run_until_cut(&gw, &stream_key, true, price, budget).await;
    assert_eq!(
        cut_plain, cut_stream,
        "streamed and non-streamed requests cost the same"
    );
    assert_eq!(spent_plain, spent_stream);
    assert!(cut_plain > 10);

    let e = &refusal.json()["error"];
    assert_eq!(e["code"], "budget_exceeded");
    assert_eq!(refusal.status, 429);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("daily budget is $0.01"),
        "{e}"
    );
    assert!(refusal.headers.contains_key("retry-after"));

    // The spend report is the sum of usage x price.
    let r = admin(&gw, "GET", "/admin/v1/spend?by=tenant", Value::Null).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rows = r.json()["rows"].as_array().unwrap().clone();
    let cost = |t: &str| {
        rows.iter()
            .find(|r| r["tenant"] == t)
            .map(|r| r["costNanos"].as_u64().unwrap())
            .unwrap()
    };
    assert_eq!(cost("plain"), spent_plain);
    assert_eq!(cost("streamer"), spent_stream);
    let by_day = admin(
        &gw,
        "GET",
        "/admin/v1/spend?by=day,tenant,key,model",
        Value::Null,
    )
    .await
    .json();
    assert_eq!(by_day["rows"].as_array().unwrap().len(), 2);
    assert_eq!(
        by_day["totalNanoUsd"].as_u64().unwrap(),
        spent_plain + spent_stream
    );
    gw.running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn keys_rotate_with_a_grace_period_expire_and_revoke() {
    let fleet = fleet(1, "").await;
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&config(&fleet.addrs(), dir.path(), "", TENANT)).await;
    let body: Value = serde_json::from_str(&chat(MODEL, false)).unwrap();
    let (id, old) = new_key(&gw, "acme").await;
    assert_eq!(chat_as(&gw, &old, &body).await.status, 200);

    let r = admin(
        &gw,
        "POST",
        &format!("/admin/v1/keys/{id}/rotate"),
        json!({"gracePeriod": "1500ms"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let new = r.json()["key"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(r.json()["id"], id.as_str(), "rotation keeps the key id");
    // During the grace period both work.
    assert_eq!(chat_as(&gw, &old, &body).await.status, 200);
    assert_eq!(chat_as(&gw, &new, &body).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let r = chat_as(&gw, &old, &body).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "expired_api_key");
    assert_eq!(chat_as(&gw, &new, &body).await.status, 200);

    let r = admin(
        &gw,
        "POST",
        &format!("/admin/v1/keys/{id}/revoke"),
        Value::Null,
    )
    .await;
    assert_eq!(r.json()["status"], "revoked");
    let r = chat_as(&gw, &new, &body).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "revoked_api_key");

    let (id2, k2) = new_key(&gw, "acme").await;
    admin(
        &gw,
        "POST",
        &format!("/admin/v1/keys/{id2}/expire"),
        json!({}),
    )
    .await;
    assert_eq!(
        chat_as(&gw, &k2, &body).await.json()["error"]["code"],
        "expired_api_key"
    );

    // Listings show ids and states, never keys or hashes.
    let list = admin(&gw, "GET", "/admin/v1/keys", Value::Null)
        .await
        .text();
    assert!(list.contains(&id) && list.contains(&id2));
    for secret in [&old, &new, &k2] {
        assert!(!list.contains(secret.as_str()));
        assert!(!list.contains(&sha(secret)));
    }
    // The admin API wants its own credential.
    let r = send(
        Request::get(format!("{}/admin/v1/keys", gw.admin))
            .header("authorization", format!("Bearer {new}"))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 401);
    gw.running.shutdown(Duration::from_secs(1)).await;

    // Stored as hashes only (the database and its write-ahead log).
    let mut db = String::new();
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let f = f.unwrap().path();
        if f.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("state.db")
        {
            db.push_str(&String::from_utf8_lossy(&std::fs::read(&f).unwrap()));
        }
    }
    assert!(db.contains(&sha(&new)));
    for secret in [&old, &new, &k2] {
        assert!(!db.contains(secret.as_str()));
    }
}

/// Serve `body` to every HTTP request on a loopback port (a stand-in identity provider).
async fn serve_jwks(body: String) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn jwt_bearer_tokens_map_claims_to_a_tenant_with_jwks_from_a_file() {
    jwt_case(false).await;
}

#[tokio::test]
async fn jwt_bearer_tokens_map_claims_to_a_tenant_with_jwks_from_a_url() {
    jwt_case(true).await;
}

async fn jwt_case(from_url: bool) {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let fleet = fleet(1, "").await;
    let dir = tempfile::tempdir().unwrap();
    let secret = b"jwt-secret-for-tests-only-0123456789";
    let k = "and0LXNlY3JldC1mb3ItdGVzdHMtb25seS0wMTIzNDU2Nzg5";
    let jwks_json = format!(r#"{{"keys":[{{"kty":"oct","kid":"t1","alg":"HS256","k":"{k}"}}]}}"#);
    let source = if from_url {
        format!(
            "jwksUrl: 'http://{}/jwks.json'",
            serve_jwks(jwks_json).await
        )
    } else {
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, jwks_json).unwrap();
        format!("jwksFile: {}", jwks.display())
    };
    let settings = format!(
        "  auth:\n    jwt: {{issuer: test-idp, audiences: [gw], {source}, tenantClaim: org}}\n"
    );
    // `auth` is set twice otherwise: merge the admin token in.
    let extra = settings.replace(
        "  auth:\n",
        &format!(
            "  auth:\n    adminToken: {{sha256: {}}}\n",
            sha(ADMIN_TOKEN)
        ),
    );
    let yaml = format!(
        "{}---\n{TENANT}",
        config_yaml(
            &fleet.addrs(),
            &format!("{extra}  state: {{path: {}/s.db}}\n", dir.path().display())
        )
    );
    let gw = gateway(&yaml).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("t1".into());
    let token = |claims: Value| encode(&h, &claims, &EncodingKey::from_secret(secret)).unwrap();
    let good = token(
        json!({"sub": "alice", "iss": "test-idp", "aud": "gw", "exp": now + 300, "org": "acme"}),
    );
    let body: Value = serde_json::from_str(&chat(MODEL, false)).unwrap();
    assert_eq!(chat_as(&gw, &good, &body).await.status, 200);
    let expired = token(
        json!({"sub": "alice", "iss": "test-idp", "aud": "gw", "exp": now - 300, "org": "acme"}),
    );
    let r = chat_as(&gw, &expired, &body).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "invalid_token");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("expired"));
    let stranger = token(
        json!({"sub": "bob", "iss": "test-idp", "aud": "gw", "exp": now + 300, "org": "nobody"}),
    );
    let r = chat_as(&gw, &stranger, &body).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "unknown_tenant");
    gw.running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn anonymous_access_only_where_configured() {
    let fleet = fleet(1, "").await;
    let dir = tempfile::tempdir().unwrap();
    let tenants = format!("{TENANT}  limits: {{requests: 2}}\n");
    let gw = gateway(
        &config(&fleet.addrs(), dir.path(), "", &tenants)
            .replace("  auth:\n", "  auth:\n    anonymousTenant: acme\n"),
    )
    .await;
    let url = format!("{}/v1/chat/completions", gw.base);
    assert_eq!(post(&url, chat(MODEL, false)).await.status, 200);
    let r = post(&url, chat(MODEL, false)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-ratelimit-remaining-requests"], "0");
    let r = post(&url, chat(MODEL, false)).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.headers["x-ratelimit-limit-requests"], "2");
    gw.running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn budgets_survive_a_restart_through_the_ledger() {
    let fleet = fleet(1, "").await;
    let dir = tempfile::tempdir().unwrap();
    let settings = format!("  prices: [{{model: {MODEL}, input: 1000, output: 1000}}]\n");
    let tenants = "apiVersion: infergate.dev/v1alpha1
kind: Tenant
metadata: {name: acme}
spec:
  models: ['*']
  budgets: [{period: lifetime, usd: 1}]
  keys: [{name: k, sha256: KEYHASH}]
";
    let key = "igk_00000001_restartrestartrestartrestart0001";
    let yaml = config(
        &fleet.addrs(),
        dir.path(),
        &settings,
        &tenants.replace("KEYHASH", &sha(key)),
    );
    // $1000 per million tokens: each request (~15 prompt + 8 output tokens) costs ~$0.023.
    let body: Value = serde_json::from_str(&chat(MODEL, false)).unwrap();
    let gw = gateway(&yaml).await;
    let mut first_run = 0;
    while chat_as(&gw, key, &body).await.status == 200 {
        first_run += 1;
        assert!(first_run < 100);
    }
    gw.running.shutdown(Duration::from_secs(1)).await;
    // Same state file, new process state: the lifetime budget is still spent.
    let gw = gateway(&yaml).await;
    let r = chat_as(&gw, key, &body).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "budget_exceeded");
    assert!(
        !r.headers.contains_key("retry-after"),
        "a lifetime budget does not reset"
    );
    gw.running.shutdown(Duration::from_secs(1)).await;
}
