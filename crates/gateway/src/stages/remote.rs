//! The payload features' outbound HTTP: an OpenAI-compatible `/v1/embeddings` endpoint as an
//! [`Embedder`], and the external guardrail webhook.
//!
//! ## Webhook contract
//!
//! The gateway POSTs JSON to the configured URL:
//!
//! ```json
//! {"guardrail": "moderation", "direction": "request", "tenant": "acme", "model": "chat",
//!  "texts": [{"role": "user", "text": "..."}]}
//! ```
//!
//! and expects, within the timeout, `200` with
//!
//! ```json
//! {"verdict": "allow" | "block" | "flag", "reason": "optional, shown in the 400 message"}
//! ```
//!
//! `block` applies the guardrail's action (`block` refuses with 400 `content_policy_violation`;
//! `flag`/`log` record it). A timeout, connection error, non-200 or unreadable body is a webhook
//! failure: with `failMode: open` (default) the request goes on and the failure is recorded;
//! with `failMode: closed` it is blocked.

use std::time::Duration;

use bytes::Bytes;
use http::{header, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use infergate_semantic::embed::{BoxFuture, EmbedError, Embedder};
use infergate_semantic::guard::Action;
use infergate_semantic::vector::{normalize, Vector};
use serde::{Deserialize, Serialize};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    let mut c = HttpConnector::new();
    c.set_nodelay(true);
    c.set_connect_timeout(Some(Duration::from_secs(2)));
    Client::builder(TokioExecutor::new()).build(c)
}

async fn post_json(
    client: &HttpClient,
    url: &str,
    body: Vec<u8>,
    timeout: Duration,
    limit: usize,
) -> Result<Bytes, String> {
    let req = Request::post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let fut = async {
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), limit)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("status {status}"));
        }
        Ok(body)
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {}ms", timeout.as_millis())),
    }
}

/// Any OpenAI-compatible `/v1/embeddings` endpoint (another gateway pool, a TEI server, ...).
pub struct RemoteEmbedder {
    client: HttpClient,
    url: String,
    model: String,
    timeout: Duration,
    name: String,
    dim: std::sync::atomic::AtomicUsize,
}

impl RemoteEmbedder {
    pub fn new(url: &str, model: String, timeout: Duration) -> Result<Self, String> {
        url.parse::<http::Uri>()
            .map_err(|e| format!("embeddings endpoint `{url}`: {e}"))?;
        Ok(Self {
            client: client(),
            url: url.to_string(),
            name: format!("remote:{model}"),
            model,
            timeout,
            dim: std::sync::atomic::AtomicUsize::new(0),
        })
    }
}

#[derive(Deserialize)]
struct EmbeddingsResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

impl Embedder for RemoteEmbedder {
    fn dim(&self) -> usize {
        self.dim.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vector>, EmbedError>> {
        Box::pin(async move {
            if texts.is_empty() {
                return Ok(Vec::new());
            }
            let body =
                serde_json::to_vec(&serde_json::json!({"model": self.model, "input": texts}))
                    .map_err(|e| EmbedError::Remote(e.to_string()))?;
            let bytes = post_json(&self.client, &self.url, body, self.timeout, 64 << 20)
                .await
                .map_err(EmbedError::Remote)?;
            let mut resp: EmbeddingsResponse = serde_json::from_slice(&bytes)
                .map_err(|e| EmbedError::Remote(format!("unreadable response: {e}")))?;
            if resp.data.len() != texts.len() {
                return Err(EmbedError::Remote(format!(
                    "{} vectors for {} texts",
                    resp.data.len(),
                    texts.len()
                )));
            }
            resp.data.sort_by_key(|d| d.index.unwrap_or(0));
            let out: Vec<Vector> = resp
                .data
                .into_iter()
                .map(|mut d| {
                    normalize(&mut d.embedding);
                    Vector::from(d.embedding)
                })
                .collect();
            if let Some(v) = out.first() {
                self.dim
                    .store(v.len(), std::sync::atomic::Ordering::Relaxed);
            }
            Ok(out)
        })
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// The external guardrail.
pub struct Webhook {
    pub name: String,
    pub action: Action,
    url: String,
    timeout: Duration,
    pub fail_open: bool,
    client: HttpClient,
}

#[derive(Serialize)]
pub struct WebhookText<'a> {
    pub role: &'a str,
    pub text: &'a str,
}

#[derive(Serialize)]
struct WebhookRequest<'a> {
    guardrail: &'a str,
    direction: &'a str,
    tenant: Option<&'a str>,
    model: &'a str,
    texts: &'a [WebhookText<'a>],
}

#[derive(Deserialize)]
struct WebhookResponse {
    verdict: String,
    #[serde(default)]
    reason: Option<String>,
}

/// What the webhook said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookVerdict {
    Allow,
    /// The webhook found something (its reason, if any).
    Hit(Option<String>),
    /// The webhook could not be asked.
    Failed(String),
}

impl Webhook {
    pub fn new(
        name: &str,
        action: Action,
        url: &str,
        timeout: Duration,
        fail_open: bool,
    ) -> Result<Self, String> {
        url.parse::<http::Uri>()
            .map_err(|e| format!("webhook `{name}` url `{url}`: {e}"))?;
        Ok(Self {
            name: name.to_string(),
            action,
            url: url.to_string(),
            timeout,
            fail_open,
            client: client(),
        })
    }

    pub async fn check(
        &self,
        direction: &str,
        tenant: Option<&str>,
        model: &str,
        texts: &[WebhookText<'_>],
    ) -> WebhookVerdict {
        let body = match serde_json::to_vec(&WebhookRequest {
            guardrail: &self.name,
            direction,
            tenant,
            model,
            texts,
        }) {
            Ok(b) => b,
            Err(e) => return WebhookVerdict::Failed(e.to_string()),
        };
        match post_json(&self.client, &self.url, body, self.timeout, 1 << 20).await {
            Ok(bytes) => match serde_json::from_slice::<WebhookResponse>(&bytes) {
                Ok(r) => match r.verdict.as_str() {
                    "allow" => WebhookVerdict::Allow,
                    "block" | "flag" => WebhookVerdict::Hit(r.reason),
                    other => WebhookVerdict::Failed(format!("unknown verdict `{other}`")),
                },
                Err(e) => WebhookVerdict::Failed(format!("unreadable answer: {e}")),
            },
            Err(e) => WebhookVerdict::Failed(e),
        }
    }
}
