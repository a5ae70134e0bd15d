//! `infergate bench limits`: how accurate a tokens-per-minute limit is when many clients hammer
//! it through several gateway replicas, measured with real processes.
//!
//! Runs:
//! 1. **shared** — three `infergate serve` replicas sharing one `redis-server`; one tenant with a
//!    `tokens: L per: 1m` limit; 100 concurrent clients (each pinned to a replica, round robin)
//!    send chat requests with random prompt sizes and `max_tokens`, back to back; on a 429 a
//!    client waits 50–150 ms and sends a new random request (so demand always exceeds L). In
//!    the middle of one window Redis is stopped, then started again: the report shows what the
//!    replicas did meanwhile (fail-open with `fallbackShare: 1/3`) and that they use Redis again.
//! 2. **in-process** — the same clients against one replica with the in-process limiter.
//!
//! A window is a clock-aligned minute (the limiter's windows use Redis server time, or the
//! gateway's clock; both are this machine's clock). A request's tokens (its `usage`) count in
//! the window it was sent in; requests whose answer arrived in the next window are counted and
//! reported (they could belong to either). Offered load = admitted tokens + the tokens that
//! refused requests asked for (the 429 says `Requested N`).
//!
//! Targets (issue 4): admitted ≤ 1.02 × L in every window; ≥ 0.95 × L admitted when the offered
//! load exceeds L. Windows touched by the Redis outage are shown but not judged.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use bytes::Bytes;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::cluster::{start_sim, Conn, RedisServer, Replica};
use crate::load::chat_body;
use crate::report::{loadavg, write_json, Machine, Table, Verdict};

const PUBLIC_MODEL: &str = "bench-model";
const TARGET_MODEL: &str = "bench-target-model";
const KEY: &str = "igk_0bench00_limitsbenchmarkkeylimitsbench00";
const TARGET_MAX: f64 = 1.02;
const TARGET_MIN: f64 = 0.95;

/// `infergate bench limits`.
#[derive(clap::Args, Debug, Clone)]
pub struct LimitsArgs {
    /// Markdown report; the raw figures go beside it with a `.json` extension.
    #[arg(long, default_value = "docs/benchmarks/limits.md")]
    pub out: PathBuf,
    /// Short windows (10s), fewer of them: a smoke test, not figures to publish.
    #[arg(long)]
    pub quick: bool,
    /// Concurrent clients.
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// The tokens-per-window limit L.
    #[arg(long, default_value_t = 200_000)]
    pub tokens: u64,
    /// Windows measured per run (default 4; the shared run adds one for the Redis outage).
    #[arg(long)]
    pub windows: Option<u64>,
    /// Gateway replicas in the shared run.
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// Prompt sizes are drawn uniformly from this range of bytes.
    #[arg(long, default_value = "200-6000")]
    pub prompt_bytes: String,
    /// `max_tokens` is drawn uniformly from this range.
    #[arg(long, default_value = "16-512")]
    pub max_tokens: String,
    /// Skip the Redis outage.
    #[arg(long)]
    pub no_outage: bool,
    /// Replicas (the last ones) configured `onUnavailable: failClosed`; the others fail open
    /// with `fallbackShare: 1/replicas`. The outage shows what each mode does.
    #[arg(long, default_value_t = 1)]
    pub fail_closed: usize,
    /// Keep the working directory (configs, logs).
    #[arg(long)]
    pub keep_work_dir: bool,
}

fn range(s: &str) -> anyhow::Result<(u64, u64)> {
    let (a, b) = s
        .split_once('-')
        .with_context(|| format!("`{s}`: write a range as MIN-MAX"))?;
    let (a, b): (u64, u64) = (a.trim().parse()?, b.trim().parse()?);
    anyhow::ensure!(
        a >= 1 && a <= b,
        "`{s}`: MIN must be at least 1 and at most MAX"
    );
    Ok((a, b))
}

/// One request as a client saw it.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Index of the replica the client sent to.
    replica: usize,
    sent_ms: u64,
    done_ms: u64,
    status: u16,
    /// `usage.total_tokens` (200) or the `Requested N` of a 429.
    tokens: u64,
    /// `x-ratelimit-reset-tokens` of an admitted request, in ms.
    reset_ms: Option<u64>,
}

/// Parse a Go-style duration (`20ms`, `1.5s`, `1m59.512s`, `1h2m3s`) into ms.
fn parse_go_duration(s: &str) -> Option<u64> {
    if let Some(ms) = s.strip_suffix("ms") {
        return ms.parse().ok();
    }
    let mut total = 0f64;
    let mut num = String::new();
    for c in s.chars() {
        match c {
            '0'..='9' | '.' => num.push(c),
            'h' | 'm' | 's' => {
                let v: f64 = num.parse().ok()?;
                num.clear();
                total += v * match c {
                    'h' => 3_600_000.0,
                    'm' => 60_000.0,
                    _ => 1000.0,
                };
            }
            _ => return None,
        }
    }
    num.is_empty().then(|| total.round() as u64)
}

/// The window an admitted request was admitted in. The gateway answers with the time until the
/// tokens bucket is back to full, which (with tokens admitted in the current window) is the rest
/// of that window plus one more; the admission happened between `sent` and `done`, so the
/// window's end is the one boundary in `[sent + reset − w, done + reset − w]`.
fn admitted_window(s: &Sample, start_ms: u64, window_ms: u64) -> u64 {
    let by_send = s.sent_ms.saturating_sub(start_ms) / window_ms;
    let Some(reset) = s.reset_ms.filter(|r| *r >= window_ms) else {
        return by_send;
    };
    let earliest_end = (s.sent_ms + reset).saturating_sub(window_ms);
    let end = earliest_end.div_ceil(window_ms) * window_ms;
    if end > s.done_ms + reset - window_ms + 1 {
        return by_send;
    }
    (end.saturating_sub(start_ms) / window_ms).saturating_sub(1)
}

/// One window's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WindowFigures {
    pub index: u64,
    pub start_unix_ms: u64,
    pub admitted_tokens: u64,
    pub admitted_requests: u64,
    pub refused_requests: u64,
    pub refused_tokens: u64,
    pub offered_tokens: u64,
    /// Other statuses (503 fail-closed, 5xx, transport errors).
    pub other: u64,
    /// Admitted requests sent in this window but answered in the next one.
    pub straddling_requests: u64,
    pub straddling_tokens: u64,
    pub admitted_over_limit: f64,
    /// Part of this window had Redis stopped.
    pub outage: bool,
}

/// One run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct RunFigures {
    pub name: String,
    pub backend: String,
    pub replicas: usize,
    pub clients: usize,
    pub limit: u64,
    pub window_s: u64,
    pub windows: Vec<WindowFigures>,
    pub max_ratio: Option<f64>,
    pub min_ratio_when_over: Option<f64>,
    pub verdict_max: String,
    pub verdict_min: String,
    /// What happened around the outage, in words.
    pub outage_note: Option<String>,
    /// What each replica answered to requests sent while Redis was stopped.
    pub outage_by_replica: Vec<ReplicaOutage>,
}

/// One replica's answers to the requests sent to it while Redis was stopped.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplicaOutage {
    pub replica: usize,
    pub fail_mode: String,
    pub admitted: u64,
    pub admitted_tokens: u64,
    pub rate_limited: u64,
    /// 503 (`limiter_unavailable`).
    pub unavailable: u64,
    pub other: u64,
}

fn outage_by_replica(
    samples: &[Sample],
    down: u64,
    up: u64,
    replicas: usize,
    fail_closed: usize,
) -> Vec<ReplicaOutage> {
    let mut out: Vec<ReplicaOutage> = (0..replicas)
        .map(|i| ReplicaOutage {
            replica: i,
            fail_mode: if i + fail_closed >= replicas {
                "failClosed".into()
            } else {
                "failOpen".into()
            },
            ..Default::default()
        })
        .collect();
    for s in samples
        .iter()
        .filter(|s| s.sent_ms >= down && s.sent_ms < up)
    {
        let Some(r) = out.get_mut(s.replica) else {
            continue;
        };
        match s.status {
            200 => {
                r.admitted += 1;
                r.admitted_tokens += s.tokens;
            }
            429 => r.rate_limited += 1,
            503 => r.unavailable += 1,
            _ => r.other += 1,
        }
    }
    out
}

#[derive(Debug, Clone, Serialize)]
pub struct LimitsResults {
    pub command: String,
    pub machine: Machine,
    pub runs: Vec<RunFigures>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0))
}

fn config(
    sim: SocketAddr,
    limit: u64,
    window_s: u64,
    redis: Option<(&str, usize, bool)>,
    state: &Path,
) -> String {
    let redis = match redis {
        Some((url, _, true)) => {
            format!("\n    redis: {{url: '{url}', timeout: 1s, onUnavailable: failClosed}}")
        }
        Some((url, replicas, false)) => format!(
            "\n    redis: {{url: '{url}', timeout: 1s, onUnavailable: failOpen, fallbackShare: {:.4}}}",
            1.0 / replicas as f64
        ),
        None => String::new(),
    };
    let hash = infergate_policy::key::sha256_hex(KEY.as_bytes());
    format!(
        "apiVersion: infergate.dev/v1alpha1
kind: GatewaySettings
metadata: {{name: bench}}
spec:
  accessLog: {{enabled: false}}
  state:
    path: {}{redis}
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {{name: sim-pool}}
spec:
  selector: {{matchLabels: {{app: sim}}}}
  targetPorts: [{{number: {}}}]
  endpoints: [{{address: 127.0.0.1}}]
---
apiVersion: infergate.dev/v1alpha1
kind: PublicModel
metadata: {{name: {PUBLIC_MODEL}}}
spec: {{targets: [{{pool: sim-pool, model: {TARGET_MODEL}}}]}}
---
apiVersion: infergate.dev/v1alpha1
kind: Tenant
metadata: {{name: bench}}
spec:
  models: ['*']
  limits: {{tokens: {limit}, per: {window_s}s, tokenType: total}}
  keys: [{{name: bench, sha256: {hash}}}]
",
        state.display(),
        sim.port()
    )
}

/// Parse `Requested N` from a 429 body.
fn requested(body: &Bytes) -> u64 {
    let text = String::from_utf8_lossy(body);
    text.split("Requested ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

struct Drive {
    replicas: Vec<SocketAddr>,
    clients: usize,
    start_ms: u64,
    end_ms: u64,
    prompt: (u64, u64),
    max_tokens: (u64, u64),
}

async fn drive(d: Drive) -> Vec<Sample> {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let wait = d.start_ms.saturating_sub(now_ms());
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let mut tasks = Vec::new();
    for c in 0..d.clients {
        let replica = c % d.replicas.len();
        let addr = d.replicas[replica];
        let samples = samples.clone();
        let (prompt, max_tokens, end_ms) = (d.prompt, d.max_tokens, d.end_ms);
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(c as u64 + 1);
            let mut conn = Conn::new(addr);
            let auth = format!("Bearer {KEY}");
            let mut local = Vec::new();
            while now_ms() < end_ms {
                let bytes = rng.random_range(prompt.0..=prompt.1) as usize;
                let mt = rng.random_range(max_tokens.0..=max_tokens.1) as u32;
                let body = chat_body(PUBLIC_MODEL, bytes, false, mt);
                let sent_ms = now_ms();
                let r = conn
                    .call(
                        http::Method::POST,
                        "/v1/chat/completions",
                        &[("authorization", &auth)],
                        body,
                        Duration::from_secs(30),
                    )
                    .await;
                let done_ms = now_ms();
                let (status, tokens) = match &r {
                    Ok(a) if a.status == 200 => {
                        (200, a.json()["usage"]["total_tokens"].as_u64().unwrap_or(0))
                    }
                    Ok(a) if a.status == 429 => (429, requested(&a.body)),
                    Ok(a) => (a.status, 0),
                    Err(_) => (0, 0),
                };
                let reset_ms = r.as_ref().ok().and_then(|a| {
                    a.headers
                        .get("x-ratelimit-reset-tokens")
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_go_duration)
                });
                local.push(Sample {
                    replica,
                    sent_ms,
                    done_ms,
                    status,
                    tokens,
                    reset_ms,
                });
                if status != 200 {
                    let ms = rng.random_range(50..=150);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
            }
            samples.lock().extend(local);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut v = std::mem::take(&mut *samples.lock());
    v.sort_by_key(|s| s.sent_ms);
    v
}

fn figures(
    samples: &[Sample],
    start_ms: u64,
    window_ms: u64,
    n: u64,
    limit: u64,
    outage: Option<(u64, u64)>,
) -> Vec<WindowFigures> {
    let mut w: Vec<WindowFigures> = (0..n)
        .map(|i| {
            let s = start_ms + i * window_ms;
            WindowFigures {
                index: i,
                start_unix_ms: s,
                outage: outage.is_some_and(|(a, b)| a < s + window_ms && b > s),
                ..Default::default()
            }
        })
        .collect();
    for s in samples {
        if s.sent_ms < start_ms {
            continue;
        }
        let sent_in = (s.sent_ms - start_ms) / window_ms;
        let i = if s.status == 200 {
            admitted_window(s, start_ms, window_ms)
        } else {
            sent_in
        };
        let Some(f) = w.get_mut(i as usize) else {
            continue;
        };
        match s.status {
            200 => {
                f.admitted_tokens += s.tokens;
                f.admitted_requests += 1;
                if (s.done_ms.saturating_sub(start_ms)) / window_ms != sent_in {
                    f.straddling_requests += 1;
                    f.straddling_tokens += s.tokens;
                }
            }
            429 => {
                f.refused_requests += 1;
                f.refused_tokens += s.tokens;
            }
            _ => f.other += 1,
        }
    }
    for f in &mut w {
        f.offered_tokens = f.admitted_tokens + f.refused_tokens;
        f.admitted_over_limit = f.admitted_tokens as f64 / limit as f64;
    }
    w
}

fn judge(
    name: &str,
    backend: &str,
    replicas: usize,
    clients: usize,
    limit: u64,
    window_s: u64,
    windows: Vec<WindowFigures>,
) -> RunFigures {
    let judged: Vec<&WindowFigures> = windows.iter().filter(|w| !w.outage).collect();
    let max_ratio = judged
        .iter()
        .map(|w| w.admitted_over_limit)
        .reduce(f64::max);
    let min_ratio = judged
        .iter()
        .filter(|w| w.offered_tokens > limit)
        .map(|w| w.admitted_over_limit)
        .reduce(f64::min);
    RunFigures {
        name: name.into(),
        backend: backend.into(),
        replicas,
        clients,
        limit,
        window_s,
        max_ratio,
        min_ratio_when_over: min_ratio,
        verdict_max: Verdict::at_most(max_ratio, TARGET_MAX).label().into(),
        verdict_min: Verdict::at_least(min_ratio, Some(TARGET_MIN))
            .label()
            .into(),
        windows,
        outage_note: None,
        outage_by_replica: Vec::new(),
    }
}

async fn metric(admin: SocketAddr, name: &str) -> String {
    match crate::cluster::call(admin, http::Method::GET, "/metrics", &[], Bytes::new()).await {
        Ok(a) => String::from_utf8_lossy(&a.body)
            .lines()
            .filter(|l| l.starts_with(name))
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => format!("(metrics unavailable: {e})"),
    }
}

pub async fn run(args: &LimitsArgs) -> anyhow::Result<()> {
    let bin = std::env::current_exe().context("cannot find the infergate binary")?;
    let dir = std::env::temp_dir().join(format!("infergate-bench-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    eprintln!("bench limits: working directory {}", dir.display());
    let window_s: u64 = if args.quick { 10 } else { 60 };
    let window_ms = window_s * 1000;
    let n = args.windows.unwrap_or(if args.quick { 2 } else { 4 });
    let prompt = range(&args.prompt_bytes)?;
    let max_tokens = range(&args.max_tokens)?;
    let mut machine = Machine::probe();
    let command = format!(
        "infergate bench limits --clients {} --tokens {} --replicas {}{}{}",
        args.clients,
        args.tokens,
        args.replicas,
        if args.quick { " --quick" } else { "" },
        args.windows
            .map(|w| format!(" --windows {w}"))
            .unwrap_or_default()
    );
    let (_sim, sim) = start_sim(
        &bin,
        TARGET_MODEL,
        &["--max-num-seqs", "1024"],
        &dir.join("sim.log"),
        None,
    )
    .await?;
    let mut runs = Vec::new();

    // ---- shared: replicas + Redis
    {
        let mut redis = RedisServer::start(&dir, None).await?;
        let mut reps = Vec::new();
        for i in 0..args.replicas {
            let cfg = dir.join(format!("shared-{i}.yaml"));
            std::fs::write(
                &cfg,
                config(
                    sim,
                    args.tokens,
                    window_s,
                    Some((
                        &redis.url(),
                        args.replicas,
                        i + args.fail_closed >= args.replicas,
                    )),
                    &dir.join(format!("shared-{i}.db")),
                ),
            )?;
            reps.push(
                Replica::start(
                    &bin,
                    &format!("gateway-{i}"),
                    &cfg,
                    &dir.join(format!("shared-{i}.log")),
                    None,
                    &[],
                )
                .await?,
            );
        }
        let windows = n + u64::from(!args.no_outage);
        // Start at the next window boundary (plus one, so every replica is warm).
        let start_ms = (now_ms() / window_ms + 2) * window_ms;
        let end_ms = start_ms + windows * window_ms;
        let outage = (!args.no_outage).then(|| {
            let w = start_ms + (windows - 1) * window_ms;
            (w + window_ms / 4, w + window_ms / 2)
        });
        eprintln!(
            "shared run: {} replicas + redis-server, {} clients, L = {} tokens per {window_s}s, {windows} windows from {}",
            args.replicas, args.clients, args.tokens, start_ms
        );
        let drive_task = tokio::spawn(drive(Drive {
            replicas: reps.iter().map(|r| r.listen).collect(),
            clients: args.clients,
            start_ms,
            end_ms,
            prompt,
            max_tokens,
        }));
        let mut note = None;
        if let Some((down, up)) = outage {
            tokio::time::sleep(Duration::from_millis(down.saturating_sub(now_ms()))).await;
            redis.stop_server();
            eprintln!("redis-server stopped");
            tokio::time::sleep(Duration::from_millis(up.saturating_sub(now_ms()))).await;
            let during = metric(reps[0].admin, "infergate_limiter_redis_up").await;
            redis.restart().await?;
            eprintln!("redis-server started again");
            let back = Instant::now();
            let mut recovered: Vec<Option<Duration>> = vec![None; reps.len()];
            while back.elapsed() < Duration::from_secs(10) && recovered.iter().any(Option::is_none)
            {
                for (i, r) in reps.iter().enumerate() {
                    if recovered[i].is_some() {
                        continue;
                    }
                    let m = metric(r.admin, "infergate_limiter_redis_up").await;
                    if m.lines()
                        .any(|l| l.trim() == "infergate_limiter_redis_up 1")
                    {
                        recovered[i] = Some(back.elapsed());
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let recovered: Vec<String> = recovered
                .iter()
                .map(|d| {
                    d.map_or_else(
                        || "not within 10s".to_string(),
                        |d| format!("{:.2}s", d.as_secs_f64()),
                    )
                })
                .collect();
            let alive: Vec<bool> = reps
                .iter_mut()
                .map(|r| r.process.exited().is_none())
                .collect();
            note = Some(format!(
                "Redis stopped {:.1}s into window {} for {:.1}s. While it was down replica 0 reported `{}`. \
                 Replicas 0–{} fail open (each admits against its local fallback, fallbackShare {:.2} × L, \
                 which starts from that replica's own use of the window so far); replica(s) {} fail \
                 closed. Redis was in use again after it restarted (`infergate_limiter_redis_up 1`), per \
                 replica after: {}. Replicas alive after the outage: {alive:?}.",
                (down - (start_ms + (windows - 1) * window_ms)) as f64 / 1000.0,
                windows - 1,
                (up - down) as f64 / 1000.0,
                during.replace('\n', "; "),
                args.replicas.saturating_sub(args.fail_closed).max(1) - 1,
                1.0 / args.replicas as f64,
                (args.replicas.saturating_sub(args.fail_closed)..args.replicas)
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                recovered.join(", "),
            ));
        }
        let samples = drive_task.await?;
        let decisions = metric(reps[0].admin, "infergate_limit_decisions_total").await;
        let by_replica = outage.map(|(down, up)| {
            outage_by_replica(&samples, down, up, args.replicas, args.fail_closed)
        });
        if let Some(n) = &mut note {
            let _ = write!(
                n,
                " Replica 0's admission counters at the end: `{}`.",
                decisions.replace('\n', "; ")
            );
        }
        let windows_fig = figures(&samples, start_ms, window_ms, windows, args.tokens, outage);
        let mut run = judge(
            "shared",
            "redis",
            args.replicas,
            args.clients,
            args.tokens,
            window_s,
            windows_fig,
        );
        run.outage_note = note;
        run.outage_by_replica = by_replica.unwrap_or_default();
        runs.push(run);
        drop(reps);
        redis.stop_server();
    }

    // ---- in-process: one replica
    {
        let cfg = dir.join("local.yaml");
        std::fs::write(
            &cfg,
            config(sim, args.tokens, window_s, None, &dir.join("local.db")),
        )?;
        let rep = Replica::start(
            &bin,
            "gateway-local",
            &cfg,
            &dir.join("local.log"),
            None,
            &[],
        )
        .await?;
        let start_ms = (now_ms() / window_ms + 2) * window_ms;
        let end_ms = start_ms + n * window_ms;
        eprintln!(
            "in-process run: 1 replica, {} clients, {n} windows from {start_ms}",
            args.clients
        );
        let samples = drive(Drive {
            replicas: vec![rep.listen],
            clients: args.clients,
            start_ms,
            end_ms,
            prompt,
            max_tokens,
        })
        .await;
        let w = figures(&samples, start_ms, window_ms, n, args.tokens, None);
        runs.push(judge(
            "in-process",
            "local",
            1,
            args.clients,
            args.tokens,
            window_s,
            w,
        ));
    }

    machine.loadavg_end = loadavg();
    let results = LimitsResults {
        command,
        machine,
        runs,
    };
    let md = render(&results, args);
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, &md)?;
    write_json(&args.out.with_extension("json"), &results)?;
    eprintln!("{md}");
    eprintln!(
        "wrote {} and {}",
        args.out.display(),
        args.out.with_extension("json").display()
    );
    if args.keep_work_dir {
        eprintln!("work directory kept: {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

fn render(r: &LimitsResults, args: &LimitsArgs) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Token-limit accuracy\n");
    let _ = writeln!(
        s,
        "Produced by `{}` on {} × {} ({} MB, kernel {}; load average {} at start, {} at end). \
         Everything on one machine: redis-server, the simulated backend, the gateway replicas and \
         the {} clients share its cores.\n",
        r.command,
        r.machine.nproc,
        r.machine.cpu_model,
        r.machine.memory_mb,
        r.machine.kernel,
        r.machine.loadavg_start,
        r.machine.loadavg_end,
        args.clients
    );
    let _ = writeln!(
        s,
        "Each client sends non-streamed chat requests back to back with a random prompt of {} bytes \
         and a random `max_tokens` of {} (the simulator answers exactly `max_tokens` tokens); on a \
         429 it waits 50–150 ms and sends a new random request, so demand always exceeds the limit. \
         One tenant, one key, `limits: {{tokens: L, per: 1 window, tokenType: total}}`. A request's \
         `usage.total_tokens` counts in the clock-aligned window it was admitted in: admission \
         happened between sending and the answer, and the answer's `x-ratelimit-reset-tokens` \
         (to the millisecond) names the window's end. Offered = admitted + the `Requested N` of \
         every 429. Redis `timeout` is 1s in this run (the machine is shared and loaded); \
         `other` counts 503s (a Redis call slower than that) and transport errors.\n",
        args.prompt_bytes, args.max_tokens
    );
    let _ = writeln!(s, "## Summary\n");
    let mut t = Table::new(&[
        "run",
        "limiter",
        "replicas",
        "L (tokens/window)",
        "max admitted / L (target ≤ 1.02)",
        "",
        "min admitted / L when offered > L (target ≥ 0.95)",
        "",
    ]);
    for run in &r.runs {
        t.row(vec![
            run.name.clone(),
            run.backend.clone(),
            run.replicas.to_string(),
            format!("{} per {}s", run.limit, run.window_s),
            run.max_ratio.map_or("-".into(), |v| format!("{v:.4}")),
            run.verdict_max.clone(),
            run.min_ratio_when_over
                .map_or("-".into(), |v| format!("{v:.4}")),
            run.verdict_min.clone(),
        ]);
    }
    s.push_str(&t.render());
    for run in &r.runs {
        let _ = writeln!(
            s,
            "\n## {} ({} limiter, {} replica(s))\n",
            run.name, run.backend, run.replicas
        );
        let mut t = Table::new(&[
            "window",
            "offered tokens",
            "admitted tokens",
            "admitted / L",
            "admitted requests",
            "429s",
            "other",
            "answered in next window (req / tokens)",
            "note",
        ]);
        for w in &run.windows {
            t.row(vec![
                w.index.to_string(),
                w.offered_tokens.to_string(),
                w.admitted_tokens.to_string(),
                format!("{:.4}", w.admitted_over_limit),
                w.admitted_requests.to_string(),
                w.refused_requests.to_string(),
                w.other.to_string(),
                format!("{} / {}", w.straddling_requests, w.straddling_tokens),
                if w.outage {
                    "Redis stopped during this window (not judged)".into()
                } else {
                    String::new()
                },
            ]);
        }
        s.push_str(&t.render());
        if let Some(n) = &run.outage_note {
            let _ = writeln!(s, "\n{n}");
        }
        if !run.outage_by_replica.is_empty() {
            let _ = writeln!(
                s,
                "\nRequests sent while Redis was stopped, by the replica they went to:\n"
            );
            let mut t = Table::new(&[
                "replica",
                "onUnavailable",
                "200 (tokens)",
                "429",
                "503 limiter_unavailable",
                "other",
            ]);
            for r in &run.outage_by_replica {
                t.row(vec![
                    r.replica.to_string(),
                    r.fail_mode.clone(),
                    format!("{} ({})", r.admitted, r.admitted_tokens),
                    r.rate_limited.to_string(),
                    r.unavailable.to_string(),
                    r.other.to_string(),
                ]);
            }
            s.push_str(&t.render());
        }
    }
    let _ = writeln!(
        s,
        "\n## Reading the figures\n\n\
         - The limiter reserves each request's estimate (prompt tokens by tokenizer + `max_tokens`) \
         at admission in the same atomic step that checks the limit, and settles to the real usage \
         when the response ends, in the window the reservation went into. Concurrent requests \
         therefore cannot push a window past L; admitted tokens exceed L only when a request's real \
         usage exceeds its estimate (here the prompt estimate is a few tokens above the simulator's \
         count, so settles only refund).\n\
         - Windows are a sliding-window counter over clock-aligned windows: a window admits at most L \
         and the previous window's use fades out as the current one fills, so a boundary cannot \
         double the rate.\n\
         - While Redis is down, a fail-open replica admits against `fallbackShare × L` locally. Its \
         local limiter has counted the requests this replica admitted through Redis (its own share \
         of the shared use), so the fleet stays near L as long as the replicas got similar shares; \
         what other replicas admitted is not known to it. When Redis returns, the tokens and \
         requests the fallback admitted are added to the shared windows that still count (and the \
         spend to the shared budgets). A fail-closed replica answers 503 `limiter_unavailable` \
         with `Retry-After` meanwhile.\n"
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_is_read_from_the_429_message() {
        let b = Bytes::from_static(b"{\"error\":{\"message\":\"Rate limit reached ... Limit 600, Used 590, Requested 58. Please\"}}");
        assert_eq!(requested(&b), 58);
        assert_eq!(requested(&Bytes::from_static(b"nope")), 0);
    }

    #[test]
    fn windows_attribute_by_send_time() {
        let s = |sent_ms, done_ms, status, tokens| Sample {
            replica: 0,
            sent_ms,
            done_ms,
            status,
            tokens,
            reset_ms: None,
        };
        let samples = vec![
            s(1000, 1010, 200, 100),
            s(1990, 2010, 200, 50),
            s(2500, 2501, 429, 70),
            s(500, 600, 200, 1000),
        ];
        let w = figures(&samples, 1000, 1000, 2, 200, Some((2200, 2300)));
        assert_eq!(w[0].admitted_tokens, 150);
        assert_eq!(w[0].straddling_requests, 1);
        assert_eq!(w[1].refused_tokens, 70);
        assert_eq!(w[1].offered_tokens, 70);
        assert!(w[1].outage && !w[0].outage);
        assert!((w[0].admitted_over_limit - 0.75).abs() < 1e-9);
    }

    #[test]
    fn outage_answers_are_counted_per_replica() {
        let s = |replica, sent_ms, status| Sample {
            replica,
            sent_ms,
            done_ms: sent_ms + 1,
            status,
            tokens: 10,
            reset_ms: None,
        };
        let samples = vec![
            s(0, 50, 200),
            s(0, 100, 200),
            s(0, 150, 429),
            s(1, 120, 503),
            s(1, 250, 200),
        ];
        let r = outage_by_replica(&samples, 100, 200, 2, 1);
        assert_eq!(r[0].fail_mode, "failOpen");
        assert_eq!(
            (r[0].admitted, r[0].admitted_tokens, r[0].rate_limited),
            (1, 10, 1)
        );
        assert_eq!(r[1].fail_mode, "failClosed");
        assert_eq!((r[1].unavailable, r[1].admitted), (1, 0));
    }

    #[test]
    fn reset_header_places_an_admission_in_its_window() {
        assert_eq!(parse_go_duration("1m59.512s"), Some(119_512));
        assert_eq!(parse_go_duration("20ms"), Some(20));
        assert_eq!(parse_go_duration("1.5s"), Some(1500));
        // Sent at 9.990 s into window 0, admitted at 10.030 (window 1): reset = 10 - 0.030 + 10.
        let late = Sample {
            replica: 0,
            sent_ms: 9_990,
            done_ms: 10_050,
            status: 200,
            tokens: 5,
            reset_ms: Some(19_970),
        };
        assert_eq!(admitted_window(&late, 0, 10_000), 1);
        let on_time = Sample {
            reset_ms: Some(10_020),
            ..late
        };
        assert_eq!(admitted_window(&on_time, 0, 10_000), 0);
    }
}
