//! The load generator: a fixed pool of HTTP/1.1 keep-alive connections driven either
//! **open-loop** (requests are due at `start + i / rate`, whatever the target is doing) or
//! **closed-loop** (every connection sends its next request as soon as the previous one ends, to
//! find the highest sustained rate).
//!
//! Open-loop latency is measured from the *scheduled* send time, not from the moment a free
//! connection got to send it, so a slow target cannot hide its own queueing (coordinated omission
//! is corrected the way wrk2 does). For that to mean anything at a 0.1 ms scale the pacer must be
//! on time: it sleeps on the runtime timer (1 ms granularity) until the last
//! [`SPIN_WINDOW`] before a send, then spins by yielding to the event loop, which keeps polling
//! sockets meanwhile. A run owns a single-threaded event loop on a thread of its own
//! ([`run_load`]), so pin the process (`taskset -c 0`) and it owns that core.
//!
//! The generator never asserts anything about the target; it counts and measures, and every
//! request scheduled in the measured window is accounted for exactly once: completed (with some
//! status), failed on the transport, unfinished at the deadline, never sent, or skipped by
//! `max_in_flight`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::header::{HeaderName, HeaderValue};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, Mutex};

use crate::report::LoadReport;

/// Before a scheduled send, the pacer stops sleeping on the (millisecond) timer and spins.
pub const SPIN_WINDOW: Duration = Duration::from_millis(2);

/// Highest latency the histograms hold (larger values are clamped), in µs.
const HISTOGRAM_MAX_US: u64 = 3_600_000_000;

/// How requests are issued.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// Open loop: this many requests per second, on schedule.
    Fixed(f64),
    /// Closed loop: each connection sends back to back.
    Max,
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Rate::Max);
        }
        match s.parse::<f64>() {
            Ok(r) if r.is_finite() && r > 0.0 => Ok(Rate::Fixed(r)),
            _ => Err(format!(
                "`{s}` is not a rate: give requests per second (> 0) or `max`"
            )),
        }
    }
}

/// Parse `10s`, `500ms`, `250us`, `2m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 10s, 500ms, 2m)"))?;
    let secs = match unit {
        "us" | "µs" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" | "min" => value * 60.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (us, ms, s, m)")),
    };
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(format!("`{s}` is not a duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// An OpenAI chat-completions request of exactly `bytes` bytes (or the smallest possible one when
/// `bytes` is smaller): `{"model":M,"messages":[{"role":"user","content":"<filler>"}],"max_tokens":N}`.
pub fn chat_body(model: &str, bytes: usize, stream: bool, max_tokens: u32) -> Bytes {
    let model = serde_json::Value::String(model.to_string()).to_string();
    let head = format!(r#"{{"model":{model},"messages":[{{"role":"user","content":""#);
    let stream = if stream { r#","stream":true"# } else { "" };
    let tail = format!(r#""}}],"max_tokens":{max_tokens}{stream}}}"#);
    let filler_len = bytes.saturating_sub(head.len() + tail.len());
    let mut out = Vec::with_capacity(head.len() + filler_len + tail.len());
    out.extend_from_slice(head.as_bytes());
    // Plain words (no JSON escapes), so the model server sees a realistic prompt.
    const WORDS: &[u8] = b"the quick brown fox jumps over the lazy dog while a patient gateway \
        routes every request to the right replica and counts each token it sees ";
    out.extend(WORDS.iter().copied().cycle().take(filler_len));
    out.extend_from_slice(tail.as_bytes());
    Bytes::from(out)
}

/// One load run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// `http://host:port/path` (HTTP/1.1, no TLS).
    pub url: Uri,
    pub rate: Rate,
    /// Measured window (after the warm-up).
    pub duration: Duration,
    /// Load before the measured window, not recorded.
    pub warmup: Duration,
    /// Connections in the pool; in closed loop, also the concurrency.
    pub connections: usize,
    /// Open loop: when this many requests are scheduled but unfinished, further ones are skipped
    /// (and counted) instead of queueing without bound.
    pub max_in_flight: Option<usize>,
    pub body: Bytes,
    /// Extra request headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// After the window ends, how long unfinished requests may still complete.
    pub drain: Duration,
    /// Make every request's prompt unique (a counter at the start of the first message's
    /// content), so caches in front of the model miss.
    pub unique_prompts: bool,
}

/// The send times of an open-loop run: request `i` is due at `start + i / rate`, for every `i`
/// due before `end`.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub start: Instant,
    pub end: Instant,
    pub rate: f64,
}

impl Schedule {
    /// When request `i` is due.
    pub fn due(&self, i: u64) -> Instant {
        // Computed from `start` each time, so rounding never accumulates into drift.
        #[allow(clippy::cast_precision_loss)]
        let offset = Duration::from_secs_f64(i as f64 / self.rate);
        self.start + offset
    }

    /// When the next request after the first `next` is due, or `None` when the run is over.
    pub fn next_due(&self, next: u64) -> Option<Instant> {
        let t = self.due(next);
        (t < self.end).then_some(t)
    }

    /// The requests due by `now` that were not issued yet, advancing `next` past them.
    pub fn take_due(&self, now: Instant, next: &mut u64) -> Range<u64> {
        let first = *next;
        while let Some(t) = self.next_due(*next) {
            if t > now {
                break;
            }
            *next += 1;
        }
        first..*next
    }
}

/// Counts and histograms of one connection (merged at the end of a run).
#[derive(Debug, Clone)]
pub struct Recorder {
    /// End-to-end latency (open loop: from the scheduled time; closed loop: from the send).
    pub latency: Histogram<u64>,
    /// Until the response headers arrived, same origin as `latency`.
    pub ttfb: Histogram<u64>,
    /// Open loop: from the scheduled time until the request went on the wire (a connection was
    /// free and the generator got to it). Large values mean the target fell behind — or the
    /// generator did.
    pub send_delay: Histogram<u64>,
    /// Requests in the measured window.
    pub scheduled: u64,
    /// Requests that went on the wire.
    pub sent: u64,
    /// Responses received in full, by status.
    pub status: BTreeMap<u16, u64>,
    /// Completed responses whose completion fell inside the measured window.
    pub completed_in_window: u64,
    /// Transport failures by kind (`connect`, `io`, `body`).
    pub transport_errors: BTreeMap<String, u64>,
    /// Still running at the drain deadline.
    pub unfinished: u64,
    /// Scheduled, never sent before the drain deadline (the target fell behind).
    pub unsent: u64,
    /// Skipped because `max_in_flight` requests were outstanding.
    pub skipped: u64,
    /// Connections re-established after the target closed or broke one.
    pub reconnects: u64,
    pub response_bytes: u64,
}

fn histogram() -> Histogram<u64> {
    // 3 significant digits: 1 µs resolution below 1 ms. The bounds are constants, so this
    // cannot fail; fall back to an auto-resizing histogram all the same.
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, 3)
        .or_else(|_| Histogram::new(3))
        .unwrap_or_else(|_| unreachable_histogram())
}

#[allow(clippy::panic)]
fn unreachable_histogram() -> Histogram<u64> {
    panic!("hdrhistogram rejected constant bounds")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            latency: histogram(),
            ttfb: histogram(),
            send_delay: histogram(),
            scheduled: 0,
            sent: 0,
            status: BTreeMap::new(),
            completed_in_window: 0,
            transport_errors: BTreeMap::new(),
            unfinished: 0,
            unsent: 0,
            skipped: 0,
            reconnects: 0,
            response_bytes: 0,
        }
    }
}

impl Recorder {
    /// Record a complete response.
    pub fn record_response(
        &mut self,
        status: u16,
        origin: Instant,
        headers_at: Instant,
        done_at: Instant,
        window_end: Instant,
    ) {
        self.latency
            .saturating_record(micros(done_at.saturating_duration_since(origin)));
        self.ttfb
            .saturating_record(micros(headers_at.saturating_duration_since(origin)));
        *self.status.entry(status).or_insert(0) += 1;
        if done_at <= window_end {
            self.completed_in_window += 1;
        }
    }

    pub fn record_transport_error(&mut self, kind: &str) {
        *self.transport_errors.entry(kind.to_string()).or_insert(0) += 1;
    }

    /// A request that never finished: its latency is at least `deadline − origin`, which is what
    /// goes into the histogram (dropping it would flatter the target).
    pub fn record_lower_bound(&mut self, origin: Instant, deadline: Instant) {
        self.latency
            .saturating_record(micros(deadline.saturating_duration_since(origin)));
    }

    pub fn completed(&self) -> u64 {
        self.status.values().sum()
    }

    pub fn merge(&mut self, other: &Recorder) {
        // Same bounds on both sides: `add` cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.ttfb.add(&other.ttfb);
        let _ = self.send_delay.add(&other.send_delay);
        self.scheduled += other.scheduled;
        self.sent += other.sent;
        for (k, v) in &other.status {
            *self.status.entry(*k).or_insert(0) += v;
        }
        self.completed_in_window += other.completed_in_window;
        for (k, v) in &other.transport_errors {
            *self.transport_errors.entry(k.clone()).or_insert(0) += v;
        }
        self.unfinished += other.unfinished;
        self.unsent += other.unsent;
        self.skipped += other.skipped;
        self.reconnects += other.reconnects;
        self.response_bytes += other.response_bytes;
    }
}

/// Times shared by all connections of a run.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// Requests scheduled (open) or sent (closed) from here on are recorded.
    record_from: Instant,
    /// End of the measured window; nothing new is scheduled or sent after it.
    end: Instant,
    /// Unfinished requests are abandoned here.
    deadline: Instant,
}

/// One keep-alive HTTP/1.1 connection to the target, re-established when it breaks.
struct Connection {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> std::io::Result<SendRequest<Full<Bytes>>> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// A sender ready for the next request, reconnecting if the target closed the connection.
    async fn ready(&mut self, rec: &mut Recorder) -> Result<&mut SendRequest<Full<Bytes>>, ()> {
        let reusable = match self.sender.as_mut() {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !reusable {
            if self.sender.take().is_some() {
                rec.reconnects += 1;
            }
            match Self::open(self.addr).await {
                Ok(s) => self.sender = Some(s),
                Err(_) => return Err(()),
            }
        }
        self.sender.as_mut().ok_or(())
    }
}

/// What one request needs, shared by all connections.
struct Target {
    uri: Uri,
    authority: HeaderValue,
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Where to insert a per-request counter (unique prompts), and the counter.
    unique_at: Option<(usize, std::sync::atomic::AtomicU64)>,
}

impl Target {
    fn request(&self) -> Result<Request<Full<Bytes>>, http::Error> {
        let mut b = Request::post(self.uri.clone())
            .header(http::header::HOST, self.authority.clone())
            .header(http::header::CONTENT_TYPE, "application/json");
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        let body = match &self.unique_at {
            None => self.body.clone(),
            Some((at, n)) => {
                let n = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut v = Vec::with_capacity(self.body.len() + 24);
                v.extend_from_slice(&self.body[..*at]);
                v.extend_from_slice(format!("request {n} asks: ").as_bytes());
                v.extend_from_slice(&self.body[*at..]);
                Bytes::from(v)
            }
        };
        b.body(Full::new(body))
    }
}

enum Outcome {
    Response {
        status: u16,
        sent_at: Instant,
        headers_at: Instant,
        done_at: Instant,
        bytes: u64,
    },
    Transport(&'static str),
}

/// Send one request on `conn` and read the whole response.
async fn exchange(conn: &mut Connection, target: &Target, rec: &mut Recorder) -> Outcome {
    let Ok(sender) = conn.ready(rec).await else {
        return Outcome::Transport("connect");
    };
    let Ok(req) = target.request() else {
        return Outcome::Transport("request");
    };
    rec.sent += 1;
    let sent_at = Instant::now();
    let Ok(resp) = sender.send_request(req).await else {
        conn.sender = None;
        return Outcome::Transport("io");
    };
    let headers_at = Instant::now();
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    bytes += d.len() as u64;
                }
            }
            Err(_) => {
                conn.sender = None;
                return Outcome::Transport("body");
            }
        }
    }
    Outcome::Response {
        status,
        sent_at,
        headers_at,
        done_at: Instant::now(),
        bytes,
    }
}

/// Send one request whose latency counts from `origin`, and record it if it is in the window.
async fn measured_exchange(
    conn: &mut Connection,
    target: &Target,
    rec: &mut Recorder,
    origin: Instant,
    window: Window,
) {
    let recorded = origin >= window.record_from;
    let outcome =
        tokio::time::timeout_at(window.deadline.into(), exchange(conn, target, rec)).await;
    if !recorded {
        return;
    }
    match outcome {
        Ok(Outcome::Response {
            status,
            sent_at,
            headers_at,
            done_at,
            bytes,
        }) => {
            rec.response_bytes += bytes;
            rec.send_delay
                .saturating_record(micros(sent_at.saturating_duration_since(origin)));
            rec.record_response(status, origin, headers_at, done_at, window.end);
        }
        Ok(Outcome::Transport(kind)) => rec.record_transport_error(kind),
        Err(_) => {
            conn.sender = None;
            rec.unfinished += 1;
            rec.record_lower_bound(origin, window.deadline);
        }
    }
}

/// Open loop, one connection: take the next due request from the shared queue, send it.
async fn open_loop_connection(
    mut conn: Connection,
    target: Arc<Target>,
    queue: Arc<Mutex<mpsc::UnboundedReceiver<Instant>>>,
    outstanding: Arc<AtomicUsize>,
    window: Window,
) -> Recorder {
    let mut rec = Recorder::default();
    loop {
        let next = {
            let mut q = queue.lock().await;
            tokio::time::timeout_at(window.deadline.into(), q.recv()).await
        };
        let Ok(Some(scheduled)) = next else {
            break;
        };
        measured_exchange(&mut conn, &target, &mut rec, scheduled, window).await;
        outstanding.fetch_sub(1, Ordering::Relaxed);
        if Instant::now() >= window.deadline {
            break;
        }
    }
    rec
}

/// Closed loop, one connection: send back to back until the window ends.
async fn closed_loop_connection(
    mut conn: Connection,
    target: Arc<Target>,
    window: Window,
) -> Recorder {
    let mut rec = Recorder::default();
    loop {
        let sent_at = Instant::now();
        if sent_at >= window.end {
            break;
        }
        if sent_at >= window.record_from {
            rec.scheduled += 1;
        }
        measured_exchange(&mut conn, &target, &mut rec, sent_at, window).await;
    }
    rec
}

/// Issue the open-loop schedule onto the queue; returns what the pacer itself recorded
/// (scheduled and skipped requests).
async fn pace(
    schedule: Schedule,
    record_from: Instant,
    max_in_flight: Option<usize>,
    queue: mpsc::UnboundedSender<Instant>,
    outstanding: Arc<AtomicUsize>,
) -> Recorder {
    let mut rec = Recorder::default();
    let mut next = 0u64;
    loop {
        for i in schedule.take_due(Instant::now(), &mut next) {
            let due = schedule.due(i);
            let recorded = due >= record_from;
            if recorded {
                rec.scheduled += 1;
            }
            if max_in_flight.is_some_and(|max| outstanding.load(Ordering::Relaxed) >= max) {
                if recorded {
                    rec.skipped += 1;
                }
                continue;
            }
            outstanding.fetch_add(1, Ordering::Relaxed);
            if queue.send(due).is_err() {
                break;
            }
        }
        let Some(due) = schedule.next_due(next) else {
            break;
        };
        let wait = due.saturating_duration_since(Instant::now());
        if wait > SPIN_WINDOW {
            tokio::time::sleep(wait - SPIN_WINDOW).await;
        } else {
            // Lets the event loop poll sockets and run connections, then comes straight back.
            tokio::task::yield_now().await;
        }
    }
    rec
}

async fn resolve(url: &Uri) -> anyhow::Result<SocketAddr> {
    if url.scheme_str().is_some_and(|s| s != "http") {
        anyhow::bail!("{url}: only http:// targets are supported (HTTP/1.1 without TLS)");
    }
    let host = url
        .host()
        .with_context(|| format!("{url}: the URL has no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_u16().unwrap_or(80);
    tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("cannot resolve {host}:{port}"))?
        .next()
        .with_context(|| format!("{host}:{port} resolves to no address"))
}

/// Run the load on the current runtime (prefer [`run_load`], which gives it a thread and an
/// event loop of its own).
pub async fn drive(spec: LoadSpec) -> anyhow::Result<LoadReport> {
    let addr = resolve(&spec.url).await?;
    let authority = spec
        .url
        .authority()
        .with_context(|| format!("{}: the URL has no host", spec.url))?;
    let target = Arc::new(Target {
        uri: spec.url.path_and_query().map_or_else(
            || Uri::from_static("/"),
            |pq| Uri::try_from(pq.as_str()).unwrap_or_else(|_| Uri::from_static("/")),
        ),
        authority: HeaderValue::from_str(authority.as_str())?,
        body: spec.body.clone(),
        headers: spec.headers.clone(),
        unique_at: spec
            .unique_prompts
            .then(|| {
                let marker = br#""content":""#;
                spec.body
                    .windows(marker.len())
                    .position(|w| w == marker)
                    .map(|i| (i + marker.len(), std::sync::atomic::AtomicU64::new(0)))
            })
            .flatten(),
    });
    let connections = spec.connections.max(1);

    // Connect the whole pool first: connection setup is not part of what is measured.
    let mut pool = Vec::with_capacity(connections);
    for _ in 0..connections {
        let sender = Connection::open(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        pool.push(Connection {
            addr,
            sender: Some(sender),
        });
    }

    let start = Instant::now();
    let record_from = start + spec.warmup;
    let end = record_from + spec.duration;
    let window = Window {
        record_from,
        end,
        deadline: end + spec.drain,
    };

    let mut total = Recorder::default();
    match spec.rate {
        Rate::Fixed(rate) => {
            let (tx, rx) = mpsc::unbounded_channel();
            let queue = Arc::new(Mutex::new(rx));
            let outstanding = Arc::new(AtomicUsize::new(0));
            let workers: Vec<_> = pool
                .into_iter()
                .map(|conn| {
                    tokio::spawn(open_loop_connection(
                        conn,
                        target.clone(),
                        queue.clone(),
                        outstanding.clone(),
                        window,
                    ))
                })
                .collect();
            let schedule = Schedule { start, end, rate };
            let pacer = tokio::spawn(pace(
                schedule,
                record_from,
                spec.max_in_flight,
                tx,
                outstanding.clone(),
            ));
            total.merge(&pacer.await?);
            for w in workers {
                total.merge(&w.await?);
            }
            // Whatever is still queued was never sent: the target fell too far behind.
            let mut q = queue.lock().await;
            while let Ok(scheduled) = q.try_recv() {
                if scheduled >= record_from {
                    total.unsent += 1;
                    total.record_lower_bound(scheduled, window.deadline);
                }
            }
        }
        Rate::Max => {
            let workers: Vec<_> = pool
                .into_iter()
                .map(|conn| tokio::spawn(closed_loop_connection(conn, target.clone(), window)))
                .collect();
            for w in workers {
                total.merge(&w.await?);
            }
        }
    }
    Ok(LoadReport::from_run(&spec, &total))
}

/// Run the load on a dedicated thread with its own single-threaded event loop, so the pacer and
/// the connections share one core predictably and the caller's runtime does not disturb them.
pub async fn run_load(spec: LoadSpec) -> anyhow::Result<LoadReport> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench-load".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(drive(spec)));
            let _ = tx.send(result);
        })?;
    rx.await?
}

/// `infergate bench load`.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// Target URL, e.g. http://127.0.0.1:8080/v1/chat/completions (a bare `/` path means
    /// /v1/chat/completions).
    #[arg(long)]
    pub url: String,
    /// Requests per second (open loop, latency from the scheduled send time), or `max` (closed
    /// loop: --concurrency connections send back to back).
    #[arg(long, default_value = "100")]
    pub rate: Rate,
    /// Measured duration (10s, 500ms, 2m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Load before the measured window, not recorded.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Keep-alive HTTP/1.1 connections (open loop).
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Closed loop (--rate max): requests in flight, one per connection.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Request body from a file (sent as is).
    #[arg(long, conflicts_with = "body_bytes")]
    pub body_file: Option<PathBuf>,
    /// Size of the generated chat-completions body, in bytes.
    #[arg(long, default_value_t = 1024)]
    pub body_bytes: usize,
    /// `model` of the generated body.
    #[arg(long, default_value = "sim-model")]
    pub model: String,
    /// Ask for a streamed response (`"stream":true`).
    #[arg(long)]
    pub stream: bool,
    /// `max_tokens` of the generated body.
    #[arg(long, default_value_t = 1)]
    pub max_tokens: u32,
    /// Open loop: skip (and count) requests while this many are outstanding.
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// Extra request header `Name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// How long requests still running at the end may take to finish.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub drain: Duration,
    /// Make each request's prompt unique (a counter before the first message's text), so
    /// caches in front of the model miss.
    #[arg(long)]
    pub unique_prompts: bool,
    /// Write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

impl LoadArgs {
    pub fn to_spec(&self) -> anyhow::Result<LoadSpec> {
        let mut url: Uri = self
            .url
            .parse()
            .with_context(|| format!("`{}` is not a URL", self.url))?;
        if url.path() == "/" && url.query().is_none() {
            let mut parts = url.into_parts();
            parts.path_and_query =
                Some(http::uri::PathAndQuery::from_static("/v1/chat/completions"));
            url = Uri::from_parts(parts)?;
        }
        let body = match &self.body_file {
            Some(f) => Bytes::from(
                std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?,
            ),
            None => chat_body(&self.model, self.body_bytes, self.stream, self.max_tokens),
        };
        let mut headers = Vec::new();
        for h in &self.headers {
            let (name, value) = h
                .split_once(':')
                .with_context(|| format!("header `{h}` is not `Name: value`"))?;
            headers.push((
                HeaderName::from_bytes(name.trim().as_bytes())?,
                HeaderValue::from_str(value.trim())?,
            ));
        }
        let connections = match self.rate {
            Rate::Max => self.concurrency,
            Rate::Fixed(_) => self.connections,
        };
        Ok(LoadSpec {
            url,
            rate: self.rate,
            duration: self.duration,
            warmup: self.warmup,
            connections: connections.max(1),
            max_in_flight: self.max_in_flight,
            body,
            headers,
            drain: self.drain,
            unique_prompts: self.unique_prompts,
        })
    }
}

/// `infergate bench load`: run, print a summary, optionally write JSON.
pub async fn run_cli(args: &LoadArgs) -> anyhow::Result<()> {
    let spec = args.to_spec()?;
    let report = run_load(spec).await?;
    let text = report.summary();
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
    }
    if let Some(path) = &args.json {
        report.write_json(path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_issues_every_request_once_in_order() {
        let start = Instant::now();
        let s = Schedule {
            start,
            end: start + Duration::from_secs(1),
            rate: 200.0,
        };
        let mut next = 0;
        let mut issued = Vec::new();
        // Walk time forward in uneven steps, as a late timer would.
        let mut t = start;
        for step_us in [0u64, 1, 4_999, 5_000, 20_000, 3, 700_000, 400_000]
            .iter()
            .cycle()
            .take(40)
        {
            t += Duration::from_micros(*step_us);
            issued.extend(s.take_due(t, &mut next));
        }
        assert_eq!(issued, (0..200).collect::<Vec<_>>());
        assert!(s.next_due(next).is_none());
        // Nothing more comes out later.
        assert!(s
            .take_due(t + Duration::from_secs(10), &mut next)
            .is_empty());
    }

    #[test]
    fn schedule_is_due_on_exact_offsets() {
        let start = Instant::now();
        let s = Schedule {
            start,
            end: start + Duration::from_secs(10),
            rate: 3000.0,
        };
        assert_eq!(s.due(0), start);
        assert_eq!(s.due(3000), start + Duration::from_secs(1));
        let d = s.due(29_999) - start;
        assert!(d < Duration::from_secs(10) && d > Duration::from_micros(9_999_000));
        let mut next = 0;
        // Exactly at a due time, that request is due too.
        assert_eq!(s.take_due(s.due(2), &mut next), 0..3);
        assert_eq!(s.take_due(s.due(2), &mut next), 3..3);
    }

    #[test]
    fn chat_body_has_the_requested_size_and_is_valid_json() {
        for size in [200usize, 1024, 225_280] {
            let b = chat_body("bench-model", size, false, 1);
            assert_eq!(b.len(), size);
            let v: serde_json::Value = serde_json::from_slice(&b).expect("valid JSON");
            assert_eq!(v["model"], "bench-model");
            assert_eq!(v["max_tokens"], 1);
            assert!(v.get("stream").is_none());
        }
        let s = chat_body("m\"x", 512, true, 4);
        let v: serde_json::Value = serde_json::from_slice(&s).expect("valid JSON");
        assert_eq!(v["model"], "m\"x");
        assert_eq!(v["stream"], true);
        assert_eq!(s.len(), 512);
        // Too small a size gives the smallest valid body.
        let tiny = chat_body("m", 1, false, 1);
        assert!(serde_json::from_slice::<serde_json::Value>(&tiny).is_ok());
    }

    #[test]
    fn durations_and_rates_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
        assert_eq!("max".parse::<Rate>(), Ok(Rate::Max));
        assert_eq!("1000".parse::<Rate>(), Ok(Rate::Fixed(1000.0)));
        assert!("0".parse::<Rate>().is_err());
        assert!("-3".parse::<Rate>().is_err());
    }

    #[test]
    fn recorder_counts_and_merges() {
        let t0 = Instant::now();
        let window_end = t0 + Duration::from_millis(10);
        let mut a = Recorder::default();
        a.record_response(
            200,
            t0,
            t0 + Duration::from_micros(100),
            t0 + Duration::from_micros(150),
            window_end,
        );
        a.record_response(503, t0, t0, t0 + Duration::from_millis(20), window_end);
        let mut b = Recorder::default();
        b.record_response(
            200,
            t0,
            t0 + Duration::from_micros(200),
            t0 + Duration::from_micros(300),
            window_end,
        );
        b.record_transport_error("io");
        b.unfinished += 1;
        b.record_lower_bound(t0, t0 + Duration::from_secs(2));
        a.merge(&b);
        assert_eq!(a.completed(), 3);
        assert_eq!(a.status.get(&200), Some(&2));
        assert_eq!(a.status.get(&503), Some(&1));
        // The 503 finished after the window.
        assert_eq!(a.completed_in_window, 2);
        assert_eq!(a.transport_errors.get("io"), Some(&1));
        // Three responses and the unfinished request's lower bound.
        assert_eq!(a.latency.len(), 4);
        assert_eq!(a.ttfb.len(), 3);
        assert!(a.latency.max() >= 1_999_000);
        assert_eq!(a.latency.min(), 150);
    }

    #[test]
    fn args_build_a_spec() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            load: LoadArgs,
        }
        let cli = Cli::parse_from([
            "x",
            "--url",
            "http://127.0.0.1:9/",
            "--rate",
            "max",
            "--concurrency",
            "7",
            "--body-bytes",
            "300",
            "-H",
            "authorization: Bearer k",
        ]);
        let spec = cli.load.to_spec().expect("spec");
        assert_eq!(spec.url.path(), "/v1/chat/completions");
        assert_eq!(spec.connections, 7);
        assert_eq!(spec.rate, Rate::Max);
        assert_eq!(spec.body.len(), 300);
        assert_eq!(spec.headers[0].0, "authorization");
        assert!(Cli::try_parse_from(["x", "--url", "u", "--rate", "fast"]).is_err());
    }
}
