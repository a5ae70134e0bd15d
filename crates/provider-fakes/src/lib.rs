//! Test-only fakes of external providers' wire protocols, as small in-process HTTP servers on
//! loopback ports the OS chooses: OpenAI (and any OpenAI-compatible server), Azure OpenAI,
//! Anthropic Messages, AWS Bedrock Converse / ConverseStream (SigV4 checked independently, answers
//! in the AWS event-stream framing) and Google Vertex AI / Gemini (with a token endpoint that
//! verifies the service account's RS256 assertion).
//!
//! Each fake reads requests in its provider's documented format (and refuses what that provider
//! refuses: a missing or wrong key, a bad signature, a missing `max_tokens`), and answers with an
//! echo of the last user message — or a tool call when tools are offered — in the provider's
//! format, streamed or not. Failure injection ([`Mode`]) makes it answer 503, 429 (with or
//! without rate-limit headers), hang, or cut a stream mid-way; a prompt longer than
//! [`Fake::max_prompt_words`] gets the provider's own context-length error.
//!
//! Never part of the shipped binary: the gateway's tests and the Python suite (through the
//! `infergate-fake-provider` binary) use it.

#![allow(clippy::unwrap_used)]

pub mod anthropic;
pub mod bedrock;
pub mod gemini;
pub mod openai;
pub mod sigv4;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Which provider a fake plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    OpenAi,
    Azure,
    Anthropic,
    Bedrock,
    Vertex,
    Gemini,
}

impl Flavor {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "openai" => Flavor::OpenAi,
            "azure" => Flavor::Azure,
            "anthropic" => Flavor::Anthropic,
            "bedrock" => Flavor::Bedrock,
            "vertex" => Flavor::Vertex,
            "gemini" => Flavor::Gemini,
            _ => return None,
        })
    }
}

/// Failure injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Normal,
    /// Answer every request with this status and the provider's error body.
    Status(u16),
    /// 429 with `retry-after` and `x-ratelimit-*` headers.
    RateLimitedWithHeaders,
    /// Accept the request and never answer.
    Hang,
    /// Stream this many content events, then drop the connection.
    CutStreamAfter(usize),
}

/// What a fake checks credentials against.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// API key (OpenAI, Azure, Anthropic, Gemini).
    pub api_key: Option<String>,
    /// AWS access key id and secret (Bedrock).
    pub aws: Option<(String, String)>,
    /// Service account email and PEM public key (Vertex).
    pub google: Option<(String, String)>,
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A running fake.
pub struct Fake {
    pub flavor: Flavor,
    pub addr: SocketAddr,
    pub creds: Credentials,
    pub mode: Mutex<Mode>,
    /// Model requests received (token requests excluded).
    pub requests: AtomicU64,
    /// Requests refused for bad credentials or signatures.
    pub rejected: AtomicU64,
    /// Vertex: access tokens issued.
    pub tokens_issued: AtomicU64,
    pub issued: Mutex<Vec<String>>,
    /// Longer prompts (in words) get the provider's context-length error.
    pub max_prompt_words: AtomicU64,
    pub seen: Mutex<Vec<Seen>>,
}

impl Fake {
    /// Start a fake on 127.0.0.1 (OS-chosen port).
    pub async fn start(flavor: Flavor, creds: Credentials) -> Arc<Fake> {
        Self::start_on(flavor, creds, "127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(flavor: Flavor, creds: Credentials, addr: SocketAddr) -> Arc<Fake> {
        let listener = TcpListener::bind(addr).await.unwrap();
        let fake = Arc::new(Fake {
            flavor,
            addr: listener.local_addr().unwrap(),
            creds,
            mode: Mutex::new(Mode::Normal),
            requests: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            tokens_issued: AtomicU64::new(0),
            issued: Mutex::new(Vec::new()),
            max_prompt_words: AtomicU64::new(u64::MAX),
            seen: Mutex::new(Vec::new()),
        });
        let f = fake.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let f = f.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let f = f.clone();
                        async move { Ok::<_, Infallible>(f.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        fake
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    pub fn mode(&self) -> Mode {
        *self.mode.lock().unwrap()
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn last_seen(&self) -> Option<Seen> {
        self.seen.lock().unwrap().last().cloned()
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let path = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
        if parts.method != Method::POST {
            return json(
                StatusCode::METHOD_NOT_ALLOWED,
                &serde_json::json!({"error": "POST only"}),
            );
        }
        if self.flavor == Flavor::Vertex && parts.uri.path() == "/token" {
            return gemini::token(&self, &body);
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
        {
            let mut seen = self.seen.lock().unwrap();
            if seen.len() > 256 {
                seen.remove(0);
            }
            seen.push(Seen {
                path: path.clone(),
                headers: parts.headers.clone(),
                body: body.clone(),
            });
        }
        match self.mode() {
            Mode::Hang => std::future::pending::<()>().await,
            Mode::Status(s) => return self.error(s, "injected failure", false),
            Mode::RateLimitedWithHeaders => return self.error(429, "rate limit reached", true),
            _ => {}
        }
        let ctx = Call {
            fake: &self,
            method: &parts.method,
            path: &path,
            uri_path: parts.uri.path(),
            headers: &parts.headers,
            body: &body,
        };
        match self.flavor {
            Flavor::OpenAi | Flavor::Azure => openai::handle(&ctx),
            Flavor::Anthropic => anthropic::handle(&ctx),
            Flavor::Bedrock => bedrock::handle(&ctx),
            Flavor::Vertex | Flavor::Gemini => gemini::handle(&ctx),
        }
    }

    /// An error answer in this provider's format.
    pub fn error(&self, status: u16, message: &str, rate_headers: bool) -> Response<Body> {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = match self.flavor {
            Flavor::OpenAi | Flavor::Azure => serde_json::json!({"error": {"message": message,
                "type": if status == 429 { "rate_limit_error" } else { "server_error" }, "param": null, "code": null}}),
            Flavor::Anthropic => serde_json::json!({"type": "error", "error": {
                "type": match status { 429 => "rate_limit_error", 529 => "overloaded_error", 401 => "authentication_error", 400 => "invalid_request_error", _ => "api_error" },
                "message": message}}),
            Flavor::Bedrock => serde_json::json!({"message": message}),
            Flavor::Vertex | Flavor::Gemini => {
                serde_json::json!({"error": {"code": status, "message": message,
                "status": match status { 429 => "RESOURCE_EXHAUSTED", 400 => "INVALID_ARGUMENT", 401 => "UNAUTHENTICATED", 403 => "PERMISSION_DENIED", _ => "UNAVAILABLE" }}})
            }
        };
        let mut resp = json(code, &body);
        if self.flavor == Flavor::Bedrock {
            let kind = match status {
                429 => "ThrottlingException",
                400 => "ValidationException",
                403 => "InvalidSignatureException",
                _ => "ServiceUnavailableException",
            };
            resp.headers_mut()
                .insert("x-amzn-errortype", kind.parse().unwrap());
        }
        if rate_headers {
            let h = resp.headers_mut();
            h.insert("retry-after", "1".parse().unwrap());
            h.insert("x-ratelimit-limit-requests", "100".parse().unwrap());
            h.insert("x-ratelimit-remaining-requests", "0".parse().unwrap());
            h.insert("x-ratelimit-reset-requests", "1s".parse().unwrap());
        }
        resp
    }

    fn reject(&self, status: u16, message: &str) -> Response<Body> {
        self.rejected.fetch_add(1, Ordering::SeqCst);
        self.error(status, message, false)
    }
}

/// One model request being answered.
pub struct Call<'a> {
    pub fake: &'a Fake,
    pub method: &'a Method,
    /// Path and query as received (still percent-encoded).
    pub path: &'a str,
    pub uri_path: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
}

impl Call<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Prompt too long for this fake's "model"?
    pub fn too_long(&self, prompt_words: usize) -> bool {
        prompt_words as u64 > self.fake.max_prompt_words.load(Ordering::SeqCst)
    }
}

pub type BoxErr = Box<dyn std::error::Error + Send + Sync>;

/// A whole body or a channel-fed stream (so a stream can be cut mid-way).
pub enum Body {
    Full(Full<Bytes>),
    Stream(StreamBody<tokio_stream::ReceiverStream>),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = BoxErr;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxErr>>> {
        match self.get_mut() {
            Body::Full(b) => std::pin::Pin::new(b).poll_frame(cx).map_err(|e| match e {}),
            Body::Stream(s) => std::pin::Pin::new(s).poll_frame(cx),
        }
    }
}

/// A tiny `Stream` over an mpsc receiver (avoids a tokio-stream dependency).
pub mod tokio_stream {
    use super::*;

    pub struct ReceiverStream(pub mpsc::Receiver<Result<Frame<Bytes>, BoxErr>>);

    impl futures_util::Stream for ReceiverStream {
        type Item = Result<Frame<Bytes>, BoxErr>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            self.0.poll_recv(cx)
        }
    }
}

pub fn json(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(Body::Full(Full::new(Bytes::from(
        serde_json::to_vec(v).unwrap(),
    ))));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

/// Stream `events` with a small pause between them; after `cut_after` events (if set) the
/// connection is dropped mid-stream instead of ending cleanly.
pub fn stream(
    content_type: &'static str,
    events: Vec<Bytes>,
    cut_after: Option<usize>,
) -> Response<Body> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        for (i, ev) in events.into_iter().enumerate() {
            if cut_after.is_some_and(|n| i >= n) {
                let _ = tx.send(Err("cut by the fake".into())).await;
                return;
            }
            if tx.send(Ok(Frame::data(ev))).await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    });
    let mut r = Response::new(Body::Stream(StreamBody::new(tokio_stream::ReceiverStream(
        rx,
    ))));
    r.headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    r
}

/// The fake "model": the reply text for a prompt.
pub fn reply_text(last_user: &str) -> String {
    format!("echo: {last_user}")
}

pub fn words(s: &str) -> usize {
    s.split_whitespace().count()
}

/// Cut points for streaming a reply word by word.
pub fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for (i, w) in text.split(' ').enumerate() {
        if i > 0 {
            cur.push(' ');
        }
        cur.push_str(w);
        out.push(std::mem::take(&mut cur));
    }
    out
}
