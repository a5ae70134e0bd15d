//! Several `infergate serve` replicas sharing one real `redis-server`: limits, keys and
//! revocations are shared; a Redis outage is handled as the fail mode says. Real processes on
//! loopback ports, stopped by PID at the end.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use infergate_bench::cluster::{call, start_sim, Answer, RedisServer, Replica};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_infergate");
const ADMIN_TOKEN: &str = "replica-test-admin-token-42";
const TARGET: &str = "sim-target";
const DEBUG_LOG: &str =
    "info,infergate=debug,infergate_gateway=debug,infergate_policy=debug,infergate_control=debug";

fn sha(s: &str) -> String {
    infergate_policy::key::sha256_hex(s.as_bytes())
}

fn config(sim: SocketAddr, redis: &str, state: &Path, redis_extra: &str, tenants: &str) -> String {
    format!(
        "apiVersion: infergate.dev/v1alpha1
kind: GatewaySettings
metadata: {{name: gw}}
spec:
  accessLog: {{enabled: true, path: stdout}}
  auth: {{adminToken: {{env: TEST_ADMIN_TOKEN}}}}
  state:
    path: {}
    redis: {{url: '{redis}', timeout: 100ms{redis_extra}}}
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {{name: pool}}
spec:
  selector: {{matchLabels: {{app: sim}}}}
  targetPorts: [{{number: {}}}]
  endpoints: [{{address: 127.0.0.1}}]
---
apiVersion: infergate.dev/v1alpha1
kind: PublicModel
metadata: {{name: chat}}
spec: {{targets: [{{pool: pool, model: {TARGET}}}]}}
---
{tenants}",
        state.display(),
        sim.port()
    )
}

async fn start_replicas(dir: &Path, n: usize, yaml: impl Fn(usize) -> String) -> Vec<Replica> {
    let mut out = Vec::new();
    for i in 0..n {
        let cfg = dir.join(format!("gw{i}.yaml"));
        std::fs::write(&cfg, yaml(i)).unwrap();
        let log = dir.join(format!("gw{i}.log"));
        let r = Replica::start(
            Path::new(BIN),
            &format!("gateway-{i}"),
            &cfg,
            &log,
            None,
            // Our crates log at debug, so "keys never appear in logs" covers debug lines too.
            &[
                ("TEST_ADMIN_TOKEN", ADMIN_TOKEN),
                ("INFERGATE_LOG", DEBUG_LOG),
            ],
        )
        .await
        .unwrap();
        out.push(r);
    }
    out
}

async fn admin(r: &Replica, method: http::Method, path: &str, body: Value) -> Answer {
    call(
        r.admin,
        method,
        path,
        &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        body.to_string(),
    )
    .await
    .unwrap()
}

async fn chat(r: &Replica, key: &str, max_tokens: u64) -> Answer {
    let body = json!({"model": "chat", "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "How do gateways share limits?"}]});
    call(
        r.listen,
        http::Method::POST,
        "/v1/chat/completions",
        &[("authorization", &format!("Bearer {key}"))],
        body.to_string(),
    )
    .await
    .unwrap()
}

const TENANT: &str = "apiVersion: infergate.dev/v1alpha1
kind: Tenant
metadata: {name: acme}
spec:
  models: [chat]
  limits: {tokens: 3000}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_limits_keys_and_revocations() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path(), None).await.unwrap();
    let (_sim, sim) = start_sim(
        Path::new(BIN),
        TARGET,
        &[],
        &dir.path().join("sim.log"),
        None,
    )
    .await
    .unwrap();
    let url = redis.url();
    let reps = start_replicas(dir.path(), 3, |i| {
        config(
            sim,
            &url,
            &dir.path().join(format!("state{i}.db")),
            "",
            TENANT,
        )
    })
    .await;

    // A key made on one replica works on the others.
    let a = admin(
        &reps[0],
        http::Method::POST,
        "/admin/v1/keys",
        json!({"tenant": "acme", "name": "shared"}),
    )
    .await;
    assert_eq!(a.status, 201, "{:?}", a.json());
    let id = a.json()["id"].as_str().unwrap().to_string();
    let key = a.json()["key"].as_str().unwrap().to_string();
    let mut admitted = 0u64;
    for r in &reps {
        let a = chat(r, &key, 10).await;
        assert_eq!(a.status, 200);
        admitted += a.json()["usage"]["total_tokens"].as_u64().unwrap();
    }

    // One token limit for the tenant, whichever replica a request lands on.
    let mut refused = 0;
    for i in 0..60 {
        let r = chat(&reps[i % 3], &key, 100).await;
        match r.status {
            200 => admitted += r.json()["usage"]["total_tokens"].as_u64().unwrap(),
            429 => {
                refused += 1;
                assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
                assert!(r.headers.contains_key("retry-after"));
                assert_eq!(r.headers["x-ratelimit-limit-tokens"], "3000");
            }
            s => panic!("unexpected {s}"),
        }
    }
    assert!(
        refused > 0,
        "60 requests of ~110 tokens must hit a 3000-token limit"
    );
    assert!(
        admitted <= 3000,
        "three replicas admitted {admitted} tokens against one limit of 3000"
    );
    assert!(
        admitted >= 2700,
        "the shared limit is usable: {admitted} admitted"
    );

    // Rotation with a grace period, seen by every replica.
    let r = admin(
        &reps[2],
        http::Method::POST,
        &format!("/admin/v1/keys/{id}/rotate"),
        json!({"gracePeriod": "1500ms"}),
    )
    .await;
    let new_key = r.json()["key"].as_str().unwrap().to_string();
    // Tokens are spent for this minute; a 401 vs 429 is what tells the keys apart.
    for r in &reps {
        assert_ne!(chat(r, &key, 1).await.status, 401);
        assert_ne!(chat(r, &new_key, 1).await.status, 401);
    }
    tokio::time::sleep(Duration::from_millis(1600)).await;
    for r in &reps {
        assert_eq!(
            chat(r, &key, 1).await.status,
            401,
            "old secret after its grace period"
        );
        assert_ne!(chat(r, &new_key, 1).await.status, 401);
    }

    // Revoked on one replica: 401 on all of them within a second (polled until a deadline one
    // second after the revoke call was sent; each replica caches key lookups for 500 ms).
    let revoked_at = Instant::now();
    let deadline = revoked_at + Duration::from_secs(1);
    let r = admin(
        &reps[1],
        http::Method::POST,
        &format!("/admin/v1/keys/{id}/revoke"),
        Value::Null,
    )
    .await;
    assert_eq!(r.status, 200);
    let mut seen: Vec<Option<Duration>> = vec![None; reps.len()];
    while seen.iter().any(Option::is_none) {
        for (i, r) in reps.iter().enumerate() {
            if seen[i].is_some() {
                continue;
            }
            let a = chat(r, &new_key, 1).await;
            if a.status == 401 {
                assert_eq!(a.json()["error"]["code"], "revoked_api_key");
                seen[i] = Some(revoked_at.elapsed());
            }
        }
        assert!(
            seen.iter().all(Option::is_some) || Instant::now() < deadline,
            "a revoked key still worked on some replica a second after revocation: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("revocation seen by the three replicas after {seen:?}");
    for r in &reps {
        assert_eq!(chat(r, &new_key, 1).await.status, 401);
    }

    // Keys never appear in logs, Redis or SQLite; their hashes are what is stored.
    let mut stored = redis.cli(&["--scan"]).unwrap();
    for k in stored.clone().lines() {
        stored.push_str(&redis.cli(&["DUMP", k]).unwrap_or_default());
        stored.push_str(&redis.cli(&["GET", k]).unwrap_or_default());
    }
    assert!(
        stored.contains(&sha(&new_key)),
        "the hash is stored in Redis"
    );
    let mut files = String::new();
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let p = f.unwrap().path();
        if p.is_file() {
            files.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
        }
    }
    assert!(files.contains(&id), "logs name the key id");
    for secret in [&key, &new_key] {
        assert!(!stored.contains(secret.as_str()), "plaintext key in Redis");
        assert!(
            !files.contains(secret.as_str()),
            "plaintext key in a log or database file"
        );
    }
    drop(reps);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_follows_the_fail_mode_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start(dir.path(), None).await.unwrap();
    let (_sim, sim) = start_sim(
        Path::new(BIN),
        TARGET,
        &[],
        &dir.path().join("sim.log"),
        None,
    )
    .await
    .unwrap();
    let key = "igk_0badcafe_outageoutageoutageoutageoutage12";
    let tenant = format!(
        "apiVersion: infergate.dev/v1alpha1
kind: Tenant
metadata: {{name: acme}}
spec:
  models: [chat]
  limits: {{requests: 1000, tokens: 1000000}}
  keys: [{{name: k, sha256: {}}}]
",
        sha(key)
    );
    let url = redis.url();
    let reps = start_replicas(dir.path(), 2, |i| {
        let mode = if i == 0 {
            ", onUnavailable: failOpen, fallbackShare: 0.5"
        } else {
            ", onUnavailable: failClosed"
        };
        config(
            sim,
            &url,
            &dir.path().join(format!("state{i}.db")),
            mode,
            &tenant,
        )
    })
    .await;
    let (open, closed) = (&reps[0], &reps[1]);
    for r in &reps {
        assert_eq!(chat(r, key, 5).await.status, 200);
    }

    redis.stop_server();
    // The first call after the outage may be the one that finds out; after that, each replica
    // answers as its fail mode says, without waiting on Redis.
    let _ = chat(open, key, 5).await;
    let _ = chat(closed, key, 5).await;
    for _ in 0..5 {
        let a = chat(open, key, 5).await;
        assert_eq!(
            a.status, 200,
            "fail-open serves under the local fallback limits"
        );
        let c = chat(closed, key, 5).await;
        assert_eq!(c.status, 503);
        assert_eq!(c.json()["error"]["code"], "limiter_unavailable");
        assert!(c.headers.contains_key("retry-after"));
    }
    let m = metrics(open).await;
    assert_eq!(gauge(&m, "infergate_limiter_redis_up"), Some(0.0));
    assert!(
        m.contains("decision=\"admitted\",scope=\"\",metric=\"\",backend=\"local_fallback\""),
        "{m}"
    );

    redis.restart().await.unwrap();
    // Both replicas use Redis again once their probe answers (every 200 ms).
    let deadline = Instant::now() + Duration::from_secs(10);
    for r in &reps {
        loop {
            if gauge(&metrics(r).await, "infergate_limiter_redis_up") == Some(1.0) {
                break;
            }
            assert!(Instant::now() < deadline, "Redis was not used again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let c = chat(closed, key, 5).await;
    assert_eq!(
        c.status,
        200,
        "{:?}\n{}",
        c.json(),
        closed.process.log_tail()
    );
    let before = redis_admissions(&metrics(open).await);
    assert_eq!(chat(open, key, 5).await.status, 200);
    assert_eq!(redis_admissions(&metrics(open).await), before + 1.0);
    // The shared buckets are in the restarted Redis again.
    assert!(redis
        .cli(&["--scan"])
        .unwrap()
        .contains("{infergate}:t:acme"));
    for r in &reps {
        let log = std::fs::read_to_string(r.process.log()).unwrap();
        assert!(!log.contains("panicked"), "{log}");
    }
}

async fn metrics(r: &Replica) -> String {
    let a = call(r.admin, http::Method::GET, "/metrics", &[], "")
        .await
        .unwrap();
    String::from_utf8_lossy(&a.body).into_owned()
}

fn gauge(m: &str, name: &str) -> Option<f64> {
    m.lines()
        .find(|l| l.split(' ').next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn redis_admissions(m: &str) -> f64 {
    m.lines()
        .find(|l| {
            l.starts_with("infergate_limit_decisions_total{")
                && l.contains("decision=\"admitted\"")
                && l.contains("backend=\"redis\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// One Redis command, its answer as `T`.
async fn redis_cmd<T: redis::FromRedisValue>(
    conn: &mut redis::aio::MultiplexedConnection,
    args: &[&str],
) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(conn).await.unwrap()
}

/// The gateway batches queued settlements into one call of the settle script: each job's
/// changes land on its own buckets, with its own lease, against a real redis-server.
#[tokio::test]
async fn one_settle_call_applies_several_requests() {
    use infergate_policy::redis_script::{settle_args, SettleEntry, SETTLE_LUA};
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path(), None).await.unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    let conn = &mut client.get_multiplexed_async_connection().await.unwrap();
    let () = redis_cmd(conn, &["HSET", "{t}:rate", "5", "100"]).await;
    for lease in ["L1", "L2", "L3"] {
        let () = redis_cmd(conn, &["ZADD", "{t}:conc", "4000000000000", lease]).await;
    }
    let e = |key: &str, kind: &'static str, delta: i64, window: &str| SettleEntry {
        key: key.into(),
        kind,
        delta,
        window: window.into(),
        expire_at_ms: 0,
    };
    // Request 1 used 30 tokens fewer than it reserved; request 2 spent 7 of a budget.
    let one = [e("{t}:rate", "s", -30, "5"), e("{t}:conc", "c", 0, "-")];
    let two = [e("{t}:conc", "c", 0, "-"), e("{t}:budget", "b", 7, "d1")];
    let (keys, argv) = settle_args([(&one[..], "L1"), (&two[..], "L2")]);
    let script = redis::Script::new(SETTLE_LUA);
    let mut inv = script.prepare_invoke();
    for k in &keys {
        inv.key(k);
    }
    for a in &argv {
        inv.arg(a);
    }
    let jobs: i64 = inv.invoke_async(conn).await.unwrap();
    assert_eq!(jobs, 2);
    let rate: i64 = redis_cmd(conn, &["HGET", "{t}:rate", "5"]).await;
    assert_eq!(rate, 70);
    let budget: i64 = redis_cmd(conn, &["HGET", "{t}:budget", "d1"]).await;
    assert_eq!(budget, 7);
    // Each request released its own lease; the third, not settled, still holds its place.
    let leases: Vec<String> = redis_cmd(conn, &["ZRANGE", "{t}:conc", "0", "-1"]).await;
    assert_eq!(leases, ["L3"]);
}
