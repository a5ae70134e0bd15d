//! `infergate bench routing`: how much endpoint picking matters, on the anchor's shared-prefix
//! workload, for round-robin, random, least-queue, the anchor's default weights, approximate
//! prefix alone and precise prefix (KV events).
//!
//! Setup, all in this process: a fleet of simulated vLLM replicas (`SimFleet`) whose latency
//! model is prefill-bound — one prefill lane per replica, so uncached prompt tokens queue — with a
//! prefix cache several times smaller than the workload's KV demand; the infergate gateway in
//! front (one InferencePool, one `EndpointPickerConfig` per strategy, flow control off so only
//! routing differs); a Poisson load generator sending streamed chats. Each strategy gets a fresh
//! fleet and gateway, a warm-up stage, then the ladder of rates back to back (as GIE's
//! inference-perf runs do), then a drain.
//!
//! Time is scaled (`--time-scale`): the simulator runs that much faster than the model it stands
//! for, the generator sends that much faster, and every figure is reported back in model time,
//! so a 40-second stage at 40 req/s takes 8 real seconds at 0.2. The default is 1 (real time):
//! the gateway's and the simulator's own CPU time is not scaled, so a faster clock magnifies
//! every wait for a CPU (five-fold at 0.2) and on a busy machine that noise, not routing,
//! decided the p90 TTFT of the strategies that all hit the cache.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::report::{write_json, Machine, Table, Verdict};

pub(crate) const PUBLIC_MODEL: &str = "bench-chat";
pub(crate) const TARGET_MODEL: &str = "bench/model-32b";

/// `infergate bench routing`.
#[derive(clap::Args, Debug, Clone)]
pub struct RoutingArgs {
    /// Markdown report; the figures go beside it as `.json` and the plot as `.svg`.
    #[arg(long, default_value = "docs/benchmarks/routing.md")]
    pub out: PathBuf,
    /// Simulated replicas.
    #[arg(long, default_value_t = 8)]
    pub replicas: usize,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    #[command(flatten)]
    pub sim: SimModelArgs,
    /// Request rates of the ladder, in model-time requests per second.
    #[arg(long, value_delimiter = ',', default_value = "5,10,20,30,40")]
    pub rates: Vec<f64>,
    /// Length of each ladder stage, model time (seconds).
    #[arg(long, default_value_t = 40.0)]
    pub stage_secs: f64,
    /// Warm-up rate and length (model time) before the ladder; not reported.
    #[arg(long, default_value_t = 10.0)]
    pub warmup_rate: f64,
    #[arg(long, default_value_t = 20.0)]
    pub warmup_secs: f64,
    /// Longest wait for the last requests after the ladder, model time (seconds).
    #[arg(long, default_value_t = 600.0)]
    pub drain_secs: f64,
    /// Strategies to run, in order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "round-robin,random,least-queue,default,approximate-prefix,precise-prefix"
    )]
    pub strategies: Vec<String>,
    /// A small, fast run (30 groups, two short stages): a smoke test, not figures to publish.
    #[arg(long)]
    pub quick: bool,
}

/// The shared-prefix workload (inference-perf `shared_prefix`, GIE's high-cache shape).
#[derive(clap::Args, Debug, Clone, Serialize, serde::Deserialize)]
pub struct WorkloadArgs {
    /// Groups, each with its own long system prompt.
    #[arg(long, default_value_t = 150)]
    pub groups: usize,
    /// Questions per group (each reused by later requests).
    #[arg(long, default_value_t = 5)]
    pub prompts_per_group: usize,
    /// System prompt length, tokens.
    #[arg(long, default_value_t = 6000)]
    pub system_tokens: usize,
    /// Question length, tokens.
    #[arg(long, default_value_t = 1200)]
    pub question_tokens: usize,
    /// Output length, tokens (exact: the simulator stops at max_tokens).
    #[arg(long, default_value_t = 50)]
    pub output_tokens: u32,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// The model the simulator stands for (model-time milliseconds).
#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct SimModelArgs {
    /// Simulated time per real time: 0.2 = the fleet runs five times faster than the model. The
    /// default is real time: the fleet, the gateway and the load generator share this process
    /// and the machine's CPUs, and at 0.2 every millisecond they wait for a CPU counts five times
    /// in model time (on a shared 2-CPU machine that noise swamped the TTFT tails).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    #[arg(long, default_value_t = 20.0)]
    pub prefill_overhead_ms: f64,
    /// Prefill cost per uncached prompt token (0.1 ms = 10k tokens/s per replica).
    #[arg(long, default_value_t = 0.1)]
    pub prefill_ms_per_token: f64,
    /// Prefills computed at once per replica.
    #[arg(long, default_value_t = 1)]
    pub prefill_parallelism: usize,
    #[arg(long, default_value_t = 20.0)]
    pub inter_token_ms: f64,
    #[arg(long, default_value_t = 64)]
    pub max_num_seqs: usize,
    #[arg(long, default_value_t = 1.5)]
    pub time_factor_under_load: f64,
    /// KV cache per replica, in 16-token blocks (16384 = 262k tokens).
    #[arg(long, default_value_t = 16384)]
    pub kv_cache_blocks: usize,
}

impl SimModelArgs {
    pub(crate) fn sim_yaml(&self, zmq: Option<&str>) -> String {
        let mut y = format!(
            "model: {TARGET_MODEL}\nmax-num-seqs: {}\nmax-waiting-queue-length: 100000\n\
             prefill-overhead: {}\nprefill-time-per-token: {}\nprefill-parallelism: {}\n\
             inter-token-latency: {}\ntime-factor-under-load: {}\ntime-scale: {}\n\
             kv-cache-size: {}\nblock-size: 16\n",
            self.max_num_seqs,
            self.prefill_overhead_ms,
            self.prefill_ms_per_token,
            self.prefill_parallelism,
            self.inter_token_ms,
            self.time_factor_under_load,
            self.time_scale,
            self.kv_cache_blocks,
        );
        if let Some(z) = zmq {
            let _ = writeln!(y, "zmq-endpoint: {z}\nevent-batch-size: 64");
        }
        y
    }
}

// ---------------------------------------------------------------- workload

/// A word the simulator's tokenizer counts as one token (letters only, at most 8).
fn word(rng: &mut rand::rngs::SmallRng) -> &'static str {
    const WORDS: &[&str] = &[
        "data", "model", "token", "cache", "query", "agent", "route", "serve", "prompt", "reply",
        "system", "user", "policy", "review", "answer", "context", "budget", "tenant", "region",
        "latency", "request", "stream", "engine", "replica", "kernel", "vector", "matrix", "graph",
        "order", "ticket", "invoice", "account", "product", "weather", "travel", "recipe",
        "health", "sports", "music", "garden", "planet", "ocean", "forest", "river", "mountain",
        "city", "market", "energy", "signal", "report",
    ];
    WORDS[rng.random_range(0..WORDS.len())]
}

pub(crate) fn text(tokens: usize, rng: &mut rand::rngs::SmallRng) -> String {
    let mut s = String::with_capacity(tokens * 7);
    for i in 0..tokens {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(word(rng));
    }
    s
}

/// Every request body of the workload: `bodies[g * prompts_per_group + p]`.
pub(crate) fn shared_prefix_bodies(w: &WorkloadArgs) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(w.groups * w.prompts_per_group);
    for g in 0..w.groups {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(w.seed ^ (g as u64 * 0x9E37_79B9));
        let system = format!("group {g}. {}", text(w.system_tokens, &mut rng));
        for p in 0..w.prompts_per_group {
            let question = text(w.question_tokens, &mut rng);
            let body = serde_json::json!({
                "model": PUBLIC_MODEL,
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": format!("question {p}: {question}")},
                ],
                "max_tokens": w.output_tokens,
                "stream": true,
                "stream_options": {"include_usage": true},
            });
            out.push(Bytes::from(body.to_string()));
        }
    }
    out
}

// ---------------------------------------------------------------- driver

/// One request's outcome, times in real seconds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sample {
    pub stage: usize,
    /// Index in the traffic mix (e.g. critical vs sheddable).
    pub class: usize,
    #[allow(dead_code)]
    pub sent: f64,
    pub done: f64,
    pub status: u16,
    pub ttft: Option<f64>,
    pub itl: Option<f64>,
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    pub output_tokens: u64,
    pub error: Option<String>,
}

pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub(crate) fn client() -> HttpClient {
    let mut c = HttpConnector::new();
    c.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(4096)
        .build(c)
}

/// Send one streamed chat and time it.
pub(crate) async fn send_one(
    client: HttpClient,
    url: Arc<str>,
    body: Bytes,
    headers: Arc<Vec<(String, String)>>,
    t0: Instant,
    limit: Duration,
) -> Sample {
    let sent = t0.elapsed().as_secs_f64();
    let mut s = Sample {
        sent,
        ..Sample::default()
    };
    let mut b = http::Request::post(&*url).header("content-type", "application/json");
    for (k, v) in headers.iter() {
        b = b.header(k.as_str(), v.as_str());
    }
    let Ok(req) = b.body(Full::new(body)) else {
        s.error = Some("request".into());
        return s;
    };
    let started = Instant::now();
    let work = async {
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        s.status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut first: Option<Instant> = None;
        let mut last: Option<Instant> = None;
        let mut text = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| e.to_string())?;
            if let Some(d) = frame.data_ref() {
                let now = Instant::now();
                if memchr_find(d, b"\"delta\"") {
                    first.get_or_insert(now);
                    last = Some(now);
                }
                text.extend_from_slice(d);
            }
        }
        Ok::<_, String>((first, last, text))
    };
    match tokio::time::timeout(limit, work).await {
        Err(_) => s.error = Some("timeout".into()),
        Ok(Err(e)) => s.error = Some(e),
        Ok(Ok((first, last, text))) => {
            if let Some(f) = first {
                s.ttft = Some(f.duration_since(started).as_secs_f64());
            }
            read_usage(&text, &mut s);
            if let (Some(f), Some(l)) = (first, last) {
                if s.output_tokens > 1 {
                    s.itl = Some(l.duration_since(f).as_secs_f64() / (s.output_tokens - 1) as f64);
                }
            }
        }
    }
    s.done = t0.elapsed().as_secs_f64();
    s
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The usage of a streamed response (its last `data:` event with a `usage` object), or of a
/// whole JSON body.
fn read_usage(body: &[u8], s: &mut Sample) {
    let text = String::from_utf8_lossy(body);
    let candidates: Vec<&str> = if text.trim_start().starts_with('{') {
        vec![text.trim()]
    } else {
        text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|l| l.contains("\"usage\":{"))
            .collect()
    };
    for c in candidates.iter().rev() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(c) {
            let u = &v["usage"];
            if u.is_object() {
                s.prompt_tokens = u["prompt_tokens"].as_u64().unwrap_or(0);
                s.output_tokens = u["completion_tokens"].as_u64().unwrap_or(0);
                s.cached_tokens = u["prompt_tokens_details"]["cached_tokens"]
                    .as_u64()
                    .unwrap_or(0);
                return;
            }
        }
    }
}

/// One traffic class: which bodies, which headers, what share of the arrivals.
pub(crate) struct Traffic {
    pub bodies: Arc<Vec<Bytes>>,
    pub headers: Arc<Vec<(String, String)>>,
    /// Make every request's prompt its own: a sequence number is inserted at this byte offset
    /// of each body (the start of its text), so no two requests share a prefix-cache block.
    pub unique_at: Option<usize>,
}

/// Poisson arrivals at `stages[i] = (rate real req/s, duration real s)`, each stage's requests
/// drawn from `mix[i]` (class index per stage); waits for every response (up to `limit`).
pub(crate) async fn drive(
    url: &str,
    traffic: &[Traffic],
    stages: &[(Vec<(usize, f64)>, f64)],
    seed: u64,
    limit: Duration,
) -> Vec<Sample> {
    let client = client();
    let url: Arc<str> = Arc::from(url);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut at = 0.0f64;
    let mut sequence = 0u64;
    for (stage, (classes, duration)) in stages.iter().enumerate() {
        let end = at + duration;
        // Each class is its own Poisson stream.
        let mut next: Vec<f64> = classes
            .iter()
            .map(|(_, rate)| at + exp(&mut rng, *rate))
            .collect();
        while let Some((k, t)) = next
            .iter()
            .copied()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
        {
            if t >= end {
                break;
            }
            let (class, rate) = classes[k];
            next[k] = t + exp(&mut rng, rate);
            let due = t0 + Duration::from_secs_f64(t);
            tokio::time::sleep_until(due.into()).await;
            let tr = &traffic[class];
            let mut body = tr.bodies[rng.random_range(0..tr.bodies.len())].clone();
            if let Some(at) = tr.unique_at.filter(|at| *at <= body.len()) {
                sequence += 1;
                let mark = format!("{sequence} ");
                let mut v = Vec::with_capacity(body.len() + mark.len());
                v.extend_from_slice(&body[..at]);
                v.extend_from_slice(mark.as_bytes());
                v.extend_from_slice(&body[at..]);
                body = Bytes::from(v);
            }
            let (c, u, h) = (client.clone(), url.clone(), tr.headers.clone());
            tasks.spawn(async move {
                let mut s = send_one(c, u, body, h, t0, limit).await;
                s.stage = stage;
                s.class = class;
                s
            });
        }
        at = end;
        tokio::time::sleep_until((t0 + Duration::from_secs_f64(at)).into()).await;
    }
    let mut out = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Ok(s) = r {
            out.push(s);
        }
    }
    out
}

fn exp(rng: &mut rand::rngs::SmallRng, rate: f64) -> f64 {
    if rate <= 0.0 {
        return f64::INFINITY;
    }
    let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    -u.ln() / rate
}

// ---------------------------------------------------------------- gateway + fleet

pub(crate) fn gateway_yaml(addrs: &[std::net::SocketAddr], picker: &str) -> String {
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
    format!(
        "apiVersion: infergate.dev/v1alpha1
kind: GatewaySettings
metadata: {{name: bench}}
spec:
  accessLog: {{enabled: false}}
  reload: {{enabled: false}}
  timeouts: {{responseHeaders: 3600s, streamIdle: 3600s}}
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
metadata: {{name: {PUBLIC_MODEL}}}
spec:
  targets: [{{pool: pool, model: {TARGET_MODEL}}}]
---
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
{picker}"
    )
}

/// The `EndpointPickerConfig` body of a strategy (flow control off: only routing differs).
pub(crate) fn strategy_picker(name: &str, zmq: &str) -> anyhow::Result<String> {
    let off = "flowControl: {enabled: false}\n";
    let one = |plugin: &str| {
        format!(
            "plugins:\n- type: {plugin}\nschedulingProfiles:\n- name: default\n  plugins: [{{pluginRef: {plugin}}}]\n{off}"
        )
    };
    Ok(match name {
        "round-robin" => one("round-robin-picker"),
        "random" => one("random-picker"),
        "least-queue" => format!(
            "plugins:\n- type: queue-scorer\n- type: max-score-picker\nschedulingProfiles:\n- name: default\n  plugins: [{{pluginRef: queue-scorer}}, {{pluginRef: max-score-picker}}]\n{off}"
        ),
        "default" => off.to_string(),
        "approximate-prefix" => format!(
            "plugins:\n- type: prefix-cache-scorer\n- type: max-score-picker\nschedulingProfiles:\n- name: default\n  plugins: [{{pluginRef: prefix-cache-scorer}}, {{pluginRef: max-score-picker}}]\n{off}"
        ),
        "precise-prefix" => format!(
            "plugins:\n- type: queue-scorer\n- type: kv-cache-utilization-scorer\n- type: precise-prefix-cache-scorer\n  parameters: {{zmqEndpoint: \"{zmq}\"}}\n- type: max-score-picker\nschedulingProfiles:\n- name: default\n  plugins:\n  - {{pluginRef: queue-scorer, weight: 2}}\n  - {{pluginRef: kv-cache-utilization-scorer, weight: 2}}\n  - {{pluginRef: precise-prefix-cache-scorer, weight: 3}}\n  - {{pluginRef: max-score-picker}}\n{off}"
        ),
        other => anyhow::bail!(
            "unknown strategy `{other}`; use round-robin, random, least-queue, default, approximate-prefix or precise-prefix"
        ),
    })
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A fleet and a gateway over it, both in this process.
pub(crate) struct Bench {
    pub fleet: infergate_sim::SimFleet,
    pub gateway: infergate_gateway::RunningGateway,
    pub url: String,
}

pub(crate) async fn start_bench(
    replicas: usize,
    sim_yaml: &str,
    picker: &str,
) -> anyhow::Result<Bench> {
    start_bench_with(replicas, sim_yaml, picker, "").await
}

/// As [`start_bench`], with more resources appended to the gateway configuration.
pub(crate) async fn start_bench_with(
    replicas: usize,
    sim_yaml: &str,
    picker: &str,
    extra: &str,
) -> anyhow::Result<Bench> {
    let cfg = infergate_sim::SimConfig::from_yaml(sim_yaml).context("simulator config")?;
    let fleet = infergate_sim::SimFleet::start(cfg, "127.0.0.1".parse()?, 0, replicas)
        .await
        .context("start the simulated fleet")?;
    let yaml = gateway_yaml(&fleet.addrs(), picker) + extra;
    let config = infergate_control::load_str("bench.yaml", &yaml)
        .map_err(|e| anyhow::anyhow!("bench configuration:\n{e}"))?;
    let gateway = infergate_gateway::start(
        config,
        infergate_gateway::ServeOptions {
            listen: Some("127.0.0.1:0".parse()?),
            admin: Some("127.0.0.1:0".parse()?),
            ..Default::default()
        },
    )
    .await
    .context("start the gateway")?;
    let url = format!("http://{}/v1/chat/completions", gateway.listen_addr);
    // Let the scraper see every replica once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(Bench {
        fleet,
        gateway,
        url,
    })
}

impl Bench {
    pub(crate) async fn stop(self) {
        self.gateway.shutdown(Duration::from_secs(1)).await;
        self.fleet.shutdown().await;
    }
}

// ---------------------------------------------------------------- figures

/// Percentile of sorted-by-caller values (nearest rank).
pub(crate) fn pct(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

/// One ladder stage of one strategy, in model time.
#[derive(Debug, Clone, Serialize)]
pub struct StageResult {
    pub rate: f64,
    pub sent: usize,
    pub ok: usize,
    pub errors: usize,
    pub ttft_p50_s: Option<f64>,
    pub ttft_p90_s: Option<f64>,
    pub itl_p50_ms: Option<f64>,
    pub itl_p90_ms: Option<f64>,
    /// Output tokens of requests that finished during the stage, per second.
    pub output_tokens_per_s: f64,
    /// Cached / prompt tokens of the stage's requests.
    pub prefix_cache_hit_rate: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StrategyResult {
    pub strategy: String,
    pub stages: Vec<StageResult>,
    /// Requests still unanswered after the drain.
    pub unfinished: usize,
    pub real_seconds: f64,
    /// Precise prefix: real seconds until the gateway had received KV events from every
    /// replica (probed before the warm-up, see [`wait_for_kv_events`]).
    pub kv_events_ready_s: Option<f64>,
}

pub(crate) fn stage_result(
    samples: &[Sample],
    stage: usize,
    class: Option<usize>,
    rate: f64,
    window: (f64, f64),
    scale: f64,
) -> StageResult {
    let mine: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.stage == stage && class.is_none_or(|c| s.class == c))
        .collect();
    let ok: Vec<&&Sample> = mine
        .iter()
        .filter(|s| s.status == 200 && s.error.is_none())
        .collect();
    let mut ttft: Vec<f64> = ok
        .iter()
        .filter_map(|s| s.ttft)
        .map(|t| t / scale)
        .collect();
    let mut itl: Vec<f64> = ok
        .iter()
        .filter_map(|s| s.itl)
        .map(|t| t / scale * 1000.0)
        .collect();
    let done_in_window: u64 = samples
        .iter()
        .filter(|s| class.is_none_or(|c| s.class == c))
        .filter(|s| s.status == 200 && s.done >= window.0 && s.done < window.1)
        .map(|s| s.output_tokens)
        .sum();
    let prompt: u64 = ok.iter().map(|s| s.prompt_tokens).sum();
    let cached: u64 = ok.iter().map(|s| s.cached_tokens).sum();
    StageResult {
        rate,
        sent: mine.len(),
        ok: ok.len(),
        errors: mine.len() - ok.len(),
        ttft_p50_s: pct(&mut ttft, 50.0),
        ttft_p90_s: pct(&mut ttft, 90.0),
        itl_p50_ms: pct(&mut itl, 50.0),
        itl_p90_ms: pct(&mut itl, 90.0),
        output_tokens_per_s: done_in_window as f64 / ((window.1 - window.0) / scale),
        prefix_cache_hit_rate: if prompt > 0 {
            cached as f64 / prompt as f64
        } else {
            0.0
        },
    }
}

async fn run_strategy(
    args: &RoutingArgs,
    name: &str,
    bodies: &Arc<Vec<Bytes>>,
) -> anyhow::Result<StrategyResult> {
    let scale = args.sim.time_scale;
    let zmq = format!("tcp://127.0.0.1:{}", free_port()?);
    let precise = name == "precise-prefix";
    let picker = strategy_picker(name, &zmq)?;
    let bench = start_bench(
        args.replicas,
        &args.sim.sim_yaml(precise.then_some(zmq.as_str())),
        &picker,
    )
    .await?;
    let kv_events_ready_s = if precise {
        match wait_for_kv_events(&bench, &zmq).await {
            Ok(d) => Some(d.as_secs_f64()),
            Err(e) => {
                bench.stop().await;
                return Err(e);
            }
        }
    } else {
        None
    };
    let traffic = [Traffic {
        bodies: bodies.clone(),
        headers: Arc::new(Vec::new()),
        unique_at: None,
    }];
    let mut stages = vec![(
        vec![(0usize, args.warmup_rate / scale)],
        args.warmup_secs * scale,
    )];
    for r in &args.rates {
        stages.push((vec![(0, r / scale)], args.stage_secs * scale));
    }
    let started = Instant::now();
    let limit = Duration::from_secs_f64(
        (args.warmup_secs + args.stage_secs * args.rates.len() as f64 + args.drain_secs) * scale,
    );
    let samples = drive(&bench.url, &traffic, &stages, args.workload.seed, limit).await;
    let real_seconds = started.elapsed().as_secs_f64();
    bench.stop().await;
    let unfinished = samples
        .iter()
        .filter(|s| s.error.as_deref() == Some("timeout"))
        .count();
    let mut out = Vec::new();
    let mut at = args.warmup_secs * scale;
    for (i, r) in args.rates.iter().enumerate() {
        let w = (at, at + args.stage_secs * scale);
        out.push(stage_result(&samples, i + 1, None, *r, w, scale));
        at = w.1;
    }
    Ok(StrategyResult {
        strategy: name.to_string(),
        stages: out,
        unfinished,
        real_seconds,
        kv_events_ready_s,
    })
}

/// ZMQ PUB/SUB drops what a publisher sends before its subscriber's connection and subscription
/// are up (the "slow joiner"). The replicas start before the gateway binds its SUB socket, so
/// without this the warm-up's `BlockStored` events could be lost: the precise index would then
/// never learn where the warm-up's system prompts are cached (later blocks chain onto parents it
/// never saw), and the benchmark would measure the slow joiner, not the scorer. Each replica is
/// sent a short prompt of its own directly, again every 500 ms, until the gateway's index holds
/// blocks from it.
async fn wait_for_kv_events(bench: &Bench, zmq: &str) -> anyhow::Result<Duration> {
    // The gateway's subscription (the hub hands out the one already bound at `zmq`).
    let sub = infergate_scheduler::kv_subscriber::subscribe(zmq, "kv@");
    let client = client();
    let started = Instant::now();
    for (i, addr) in bench.fleet.addrs().iter().enumerate() {
        let host_port = addr.to_string();
        let mut probes = 0u32;
        while sub.index.blocks_of(&host_port) == 0 {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(30),
                "no KV events from replica {i} ({host_port}) reached the gateway's index within \
                 30s of {probes} probe(s); is the precise scorer's zmqEndpoint the simulators'?"
            );
            let body = serde_json::json!({
                "model": TARGET_MODEL,
                "messages": [{"role": "user", "content": format!(
                    "probe {i} {probes} {}",
                    "kv events reach the gateway ".repeat(16)
                )}],
                "max_tokens": 1,
            });
            let req = http::Request::post(format!("http://{addr}/v1/chat/completions"))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))?;
            if let Ok(resp) = client.request(req).await {
                let _ = resp.into_body().collect().await;
            }
            probes += 1;
            for _ in 0..10 {
                if sub.index.blocks_of(&host_port) > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    Ok(started.elapsed())
}

#[derive(Debug, Clone, Serialize)]
struct RoutingReport {
    command: String,
    machine: Machine,
    replicas: usize,
    workload: WorkloadArgs,
    sim: SimModelArgs,
    stage_secs: f64,
    warmup: (f64, f64),
    results: Vec<StrategyResult>,
    verdicts: BTreeMap<String, Verdict>,
}

pub async fn run(args: &RoutingArgs) -> anyhow::Result<()> {
    let mut args = args.clone();
    if args.quick {
        args.workload.groups = args.workload.groups.min(30);
        args.rates = vec![5.0, 20.0];
        args.stage_secs = args.stage_secs.min(10.0);
        args.warmup_secs = args.warmup_secs.min(5.0);
    }
    let mut machine = Machine::probe();
    let bodies = Arc::new(shared_prefix_bodies(&args.workload));
    let mut results = Vec::new();
    for s in &args.strategies {
        eprintln!("routing: {s} …");
        let r = run_strategy(&args, s, &bodies).await?;
        if let Some(t) = r.kv_events_ready_s {
            eprintln!("routing: {s}: KV events from every replica after {t:.2}s");
        }
        if let Some(last) = r.stages.last() {
            eprintln!(
                "routing: {s}: top rate {:.0}/s p90 TTFT {:.3}s, {:.0} output tok/s, hit rate {:.0}% ({:.0}s)",
                last.rate,
                last.ttft_p90_s.unwrap_or(f64::NAN),
                last.output_tokens_per_s,
                last.prefix_cache_hit_rate * 100.0,
                r.real_seconds
            );
        }
        results.push(r);
    }
    machine.loadavg_end = crate::report::loadavg();
    let top = |name: &str| {
        results
            .iter()
            .find(|r| r.strategy == name)
            .and_then(|r| r.stages.last())
            .cloned()
    };
    let mut verdicts = BTreeMap::new();
    let rr = top("round-robin");
    let def = top("default");
    let approx = top("default");
    let precise = top("precise-prefix");
    let rr_unfinished = results
        .iter()
        .find(|r| r.strategy == "round-robin")
        .map(|r| r.unfinished);
    verdicts.insert(
        "round-robin completes at the highest rate".to_string(),
        match (&rr, rr_unfinished) {
            (Some(s), Some(0)) if s.errors == 0 => Verdict::Pass,
            (Some(_), Some(_)) => Verdict::Miss,
            _ => Verdict::NotMeasured,
        },
    );
    verdicts.insert(
        "default p90 TTFT <= 1/5 of round-robin's".to_string(),
        Verdict::at_most(
            def.as_ref().and_then(|d| d.ttft_p90_s),
            rr.as_ref()
                .and_then(|r| r.ttft_p90_s)
                .map_or(f64::NAN, |x| x / 5.0),
        ),
    );
    verdicts.insert(
        "default output tokens/s >= 1.5x round-robin's".to_string(),
        Verdict::at_least(
            def.as_ref().map(|d| d.output_tokens_per_s),
            rr.as_ref().map(|r| r.output_tokens_per_s * 1.5),
        ),
    );
    verdicts.insert(
        "precise prefix p90 TTFT < approximate (default profile)".to_string(),
        match (
            precise.as_ref().and_then(|p| p.ttft_p90_s),
            approx.as_ref().and_then(|a| a.ttft_p90_s),
        ) {
            (Some(p), Some(a)) if p < a => Verdict::Pass,
            (Some(_), Some(_)) => Verdict::Miss,
            _ => Verdict::NotMeasured,
        },
    );
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let report = RoutingReport {
        command,
        machine,
        replicas: args.replicas,
        workload: args.workload.clone(),
        sim: args.sim.clone(),
        stage_secs: args.stage_secs,
        warmup: (args.warmup_rate, args.warmup_secs),
        results,
        verdicts,
    };
    let svg = args.out.with_extension("svg");
    crate::plot::ladder_svg(
        &svg,
        &report
            .results
            .iter()
            .map(|r| {
                (
                    r.strategy.clone(),
                    r.stages
                        .iter()
                        .map(|s| {
                            (
                                s.rate,
                                [
                                    s.ttft_p90_s,
                                    Some(s.output_tokens_per_s),
                                    s.itl_p50_ms,
                                    Some(s.prefix_cache_hit_rate * 100.0),
                                ],
                            )
                        })
                        .collect(),
                )
            })
            .collect::<Vec<_>>(),
        [
            "p90 time to first token (s, log)",
            "output tokens/s",
            "p50 inter-token latency (ms)",
            "prefix-cache hit rate (%)",
        ],
        "request rate (req/s)",
    )?;
    write_json(&args.out.with_extension("json"), &report)?;
    std::fs::write(&args.out, markdown(&report, &svg))
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!("routing: wrote {}", args.out.display());
    Ok(())
}

fn f(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".into(), |x| format!("{x:.digits$}"))
}

fn markdown(r: &RoutingReport, svg: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Routing benchmark\n");
    let _ = writeln!(
        s,
        "Produced by `{}` (see `crates/bench/src/routing.rs`). {} simulated vLLM replicas, the \
         infergate gateway in front, Poisson arrivals of streamed chats; every figure is in model \
         time (the run was {}× faster than the model it simulates).\n",
        r.command,
        r.replicas,
        1.0 / r.sim.time_scale
    );
    let file = svg
        .file_name()
        .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
    let _ = writeln!(s, "![routing ladder]({file})\n");
    let _ = writeln!(s, "## Targets (highest rate)\n");
    let mut t = Table::new(&["target", "verdict"]);
    for (k, v) in &r.verdicts {
        t.row(vec![k.clone(), v.label().to_string()]);
    }
    s.push_str(&t.render());
    let _ = writeln!(s, "\n## Results\n");
    let mut t = Table::new(&[
        "strategy",
        "rate (req/s)",
        "ok / sent",
        "TTFT p50 (s)",
        "TTFT p90 (s)",
        "ITL p50 (ms)",
        "ITL p90 (ms)",
        "output tok/s",
        "prefix hit rate",
    ]);
    for res in &r.results {
        for st in &res.stages {
            t.row(vec![
                res.strategy.clone(),
                format!("{:.0}", st.rate),
                format!("{} / {}", st.ok, st.sent),
                f(st.ttft_p50_s, 3),
                f(st.ttft_p90_s, 3),
                f(st.itl_p50_ms, 1),
                f(st.itl_p90_ms, 1),
                format!("{:.0}", st.output_tokens_per_s),
                format!("{:.0}%", st.prefix_cache_hit_rate * 100.0),
            ]);
        }
    }
    s.push_str(&t.render());
    let unfinished: Vec<String> = r
        .results
        .iter()
        .map(|x| format!("{} {}", x.strategy, x.unfinished))
        .collect();
    let _ = writeln!(
        s,
        "\nUnanswered after the drain: {}.",
        unfinished.join(", ")
    );
    for x in &r.results {
        if let Some(t) = x.kv_events_ready_s {
            let _ = writeln!(
                s,
                "\n{}: every replica's KV events reached the gateway {:.2} s (real) after start, \
                 before the warm-up (probed; ZMQ drops what is published before a subscriber is \
                 connected).",
                x.strategy, t
            );
        }
    }
    let _ = writeln!(s);
    let w = &r.workload;
    let m = &r.sim;
    let _ = writeln!(s, "## Setup\n");
    let _ = writeln!(
        s,
        "- Workload (GIE's high-cache shared-prefix shape): {} groups × {} questions, system \
         prompts of {} tokens, questions of {} tokens, {} output tokens (shorter than the \
         anchor's 1,000 to keep streaming cheap on this machine; the regime routing changes is \
         prefill-bound). Warm-up {:.0} req/s for {:.0} s, then stages of {:.0} s.",
        w.groups,
        w.prompts_per_group,
        w.system_tokens,
        w.question_tokens,
        w.output_tokens,
        r.warmup.0,
        r.warmup.1,
        r.stage_secs
    );
    let demand =
        w.groups as f64 * (w.system_tokens + w.prompts_per_group * w.question_tokens) as f64;
    let _ = writeln!(
        s,
        "- Replicas (`infergate sim`): prefill {} ms + {} ms per uncached token on {} lane(s) \
         (queued prefills count as waiting), {} ms per output token, ×{} under full load, {} \
         running at most, {} KV blocks of 16 tokens ({:.0}k tokens). The workload's KV demand \
         is {:.0}k tokens, {:.1}× one replica's cache.",
        m.prefill_overhead_ms,
        m.prefill_ms_per_token,
        m.prefill_parallelism,
        m.inter_token_ms,
        m.time_factor_under_load,
        m.max_num_seqs,
        m.kv_cache_blocks,
        m.kv_cache_blocks as f64 * 16.0 / 1000.0,
        demand / 1000.0,
        demand / (m.kv_cache_blocks as f64 * 16.0)
    );
    let _ = writeln!(
        s,
        "- Strategies: `round-robin` (round-robin-picker, like a Kubernetes Service), `random` \
         (random-picker), `least-queue` (queue-scorer), `default` (the anchor's weights: queue \
         2, KV 2, approximate prefix 3), `approximate-prefix` (prefix-cache-scorer alone), \
         `precise-prefix` (queue 2, KV 2, precise prefix 3 from the replicas' KV events over \
         ZMQ). Flow control is off in all of them, so only routing differs.\n- TTFT is measured \
         by the client (gateway included), to the first streamed token; ITL is (last − first \
         token) / (tokens − 1); output tokens/s counts requests finishing within the stage; the \
         hit rate is cached / prompt tokens from the responses' usage."
    );
    let _ = writeln!(
        s,
        "- Machine: {} CPUs ({}), load average {} → {}.",
        r.machine.nproc, r.machine.cpu_model, r.machine.loadavg_start, r.machine.loadavg_end
    );
    s
}
