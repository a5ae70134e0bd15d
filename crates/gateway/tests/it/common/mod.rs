//! Shared pieces for the gateway's integration tests: a simulated fleet on OS-chosen ports, a
//! gateway in-process on OS-chosen ports, and a small HTTP client.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use infergate_gateway::{RunningGateway, ServeOptions};
use infergate_sim::{SimConfig, SimFleet};

pub const MODEL: &str = "public-model";
pub const TARGET: &str = "served/model-7b";

pub async fn fleet(replicas: usize, yaml: &str) -> SimFleet {
    let cfg = SimConfig::from_yaml(&format!("model: {TARGET}\n{yaml}")).expect("sim config");
    SimFleet::start(cfg, "127.0.0.1".parse().unwrap(), 0, replicas)
        .await
        .expect("start sim fleet")
}

/// A configuration with one pool over `addrs` and a public model that rewrites to the
/// simulator's model name.
pub fn config_yaml(addrs: &[SocketAddr], extra_settings: &str) -> String {
    let eps: String = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| {
            format!(
                "  - {{address: {}, port: {}, name: sim-{i}}}\n",
                a.ip(),
                a.port()
            )
        })
        .collect();
    let health = if extra_settings.contains("health:") {
        ""
    } else {
        "  health: {probeInterval: 50ms, cooldown: 200ms}\n"
    };
    format!(
        "apiVersion: infergate.dev/v1alpha1
kind: GatewaySettings
metadata: {{name: gw}}
spec:
  accessLog: {{enabled: false}}
{health}{extra_settings}
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {{name: pool}}
spec:
  selector: {{matchLabels: {{app: sim}}}}
  targetPorts: [{{number: 8000}}]
  endpoints:
{eps}---
apiVersion: infergate.dev/v1alpha1
kind: PublicModel
metadata: {{name: {MODEL}}}
spec:
  targets: [{{pool: pool, model: {TARGET}}}]
"
    )
}

pub struct TestGateway {
    pub running: RunningGateway,
    pub base: String,
    pub admin: String,
    pub config_file: PathBuf,
    _dir: tempfile::TempDir,
}

pub async fn gateway(yaml: &str) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("gateway.yaml");
    std::fs::write(&config_file, yaml).unwrap();
    let sources = infergate_control::read_sources(&config_file).unwrap();
    let config = infergate_control::load_sources(&sources).expect("valid config");
    let running = infergate_gateway::start(
        config,
        ServeOptions {
            config_path: Some(config_file.clone()),
            config_fingerprint: infergate_control::watch::fingerprint(&sources),
            listen: Some("127.0.0.1:0".parse().unwrap()),
            admin: Some("127.0.0.1:0".parse().unwrap()),
        },
    )
    .await
    .expect("gateway starts");
    TestGateway {
        base: format!("http://{}", running.listen_addr),
        admin: format!("http://{}", running.admin_addr),
        running,
        config_file,
        _dir: dir,
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn send(req: Request<Full<Bytes>>) -> Reply {
    let resp = tokio::time::timeout(Duration::from_secs(30), client().request(req))
        .await
        .expect("response within 30s")
        .expect("request sent");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

pub async fn post(url: &str, body: impl Into<Bytes>) -> Reply {
    post_with(url, body, &[]).await
}

pub async fn post_with(url: &str, body: impl Into<Bytes>, headers: &[(&str, &str)]) -> Reply {
    let mut b = Request::post(url).header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(b.body(Full::new(body.into())).unwrap()).await
}

pub async fn get(url: &str) -> Reply {
    send(Request::get(url).body(Full::new(Bytes::new())).unwrap()).await
}

pub fn chat(model: &str, stream: bool) -> String {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "Say hello"}],
        "max_tokens": 8,
        "stream": stream,
    })
    .to_string()
}

/// Parse an SSE body into its `data:` payloads.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|ev| {
            ev.lines()
                .find_map(|l| l.strip_prefix("data: ").map(str::to_string))
        })
        .collect()
}

/// Read one metric's value from the exposition text (first matching series).
pub fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(name_and_labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Replace a file the way editors and ConfigMap updates do (write aside, rename), so a reload
/// poll never reads it half-written (an empty file is a valid, empty configuration).
pub fn write_atomic(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
