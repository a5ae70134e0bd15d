//! infergate-sim: a vLLM-compatible model-server simulator for infergate's tests, demos and
//! benchmarks (a Rust take on llm-d-inference-sim).
//!
//! It speaks the OpenAI API (chat, completions, embeddings, models) and vLLM's management API
//! (health, LoRA load/unload, Prometheus metrics with vLLM names), schedules requests like an
//! engine (`--max-num-seqs` running, a bounded waiting queue), simulates a block-hash prefix
//! cache whose hits shorten prefill, paces tokens with a load-dependent latency model, and can
//! fake metrics and inject failures on demand. See `crates/sim/README.md`.
//!
//! Module map (each owns one thing):
//! - [`config`]: flags and validation; `settings`: what `/admin/config` may change at runtime;
//! - `fleet`: sockets and replica lifecycle; `server`: one replica's HTTP API;
//! - `engine`: running slots, waiting queue, LoRA accounting; [`kv_cache`]: the prefix cache;
//! - `latency`: the latency model; `inference`/`stream`: one request's life and its SSE body;
//! - `api`: wire shapes; `text`/`tokenizer`: output text and token counting;
//! - `metrics`: Prometheus text; `fake_metrics`, `failure`, `error`: what the names say.

mod api;
pub mod config;
mod duration;
mod engine;
mod error;
pub mod failure;
pub mod fake_metrics;
mod fleet;
mod inference;
pub mod kv_cache;
mod kv_publisher;
mod lanes;
mod latency;
mod lora;
mod metrics;
mod rng;
mod server;
mod settings;
mod stream;
mod text;
/// The tokenizer lives in `infergate-protocol` so the scheduler cuts prompts into the same blocks.
pub use infergate_protocol::tokenizer;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context as _;

pub use config::{LatencyCalculator, LoraModule, Mode, SchedulingPolicy, SimConfig};
pub use failure::FailureType;
pub use fleet::SimFleet;
pub use kv_cache::KvEvent;
pub use text::FinishReason;

/// `infergate sim` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port of replica 0; replica i listens on PORT+i.
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Number of replicas (each a separate simulated model server).
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    #[command(flatten)]
    pub config: SimConfig,
    /// YAML file with the same keys as the flags (`max-num-seqs: 16`); flags win.
    #[arg(long)]
    pub config_file: Option<PathBuf>,
}

const DEFAULT_HOST: &str = "127.0.0.1";
const DEFAULT_PORT: u16 = 8000;
const DEFAULT_REPLICAS: usize = 1;

impl SimArgs {
    /// The effective `(host, port, replicas, config)`: the config file layered under the flags.
    pub fn resolve(&self) -> anyhow::Result<(String, u16, usize, SimConfig)> {
        let (mut host, mut port, mut replicas) = (self.host.clone(), self.port, self.replicas);
        let config = match &self.config_file {
            None => self.config.clone(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read sim config file {}", path.display()))?;
                let mut file: BTreeMap<String, serde_json::Value> = serde_yaml_ng::from_str(&text)
                    .with_context(|| format!("invalid sim config file {}", path.display()))?;
                // Listener keys are SimArgs', not SimConfig's; the flags still win.
                if let Some(v) = file.remove("host") {
                    if host == DEFAULT_HOST {
                        host = v
                            .as_str()
                            .context("config file: host must be a string")?
                            .to_owned();
                    }
                }
                if let Some(v) = file.remove("port") {
                    if port == DEFAULT_PORT {
                        port = v
                            .as_u64()
                            .and_then(|p| u16::try_from(p).ok())
                            .context("config file: invalid port")?;
                    }
                }
                if let Some(v) = file.remove("replicas") {
                    if replicas == DEFAULT_REPLICAS {
                        replicas = v
                            .as_u64()
                            .and_then(|r| usize::try_from(r).ok())
                            .context("config file: invalid replicas")?;
                    }
                }
                // Check the file's own keys and values first, so its mistakes are reported as the
                // file's (YAML syntax errors already carry their line).
                serde_json::from_value::<SimConfig>(serde_json::Value::Object(
                    file.clone().into_iter().collect(),
                ))
                .with_context(|| format!("invalid sim config file {}", path.display()))?;
                self.config
                    .layered_over_file(&file)
                    .with_context(|| format!("in {}", path.display()))?
            }
        };
        config.validate()?;
        Ok((host, port, replicas, config))
    }
}

/// Entry point of `infergate sim`: starts the fleet, prints one line per replica
/// (`sim replica 0 listening on 127.0.0.1:8000 (model NAME)`) and runs until ctrl-c or SIGTERM.
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let (host, port, replicas, config) = args.resolve()?;
    if replicas == 0 {
        anyhow::bail!("--replicas must be at least 1");
    }
    let ip = resolve_host(&host).await?;
    let fleet = SimFleet::start(config, ip, port, replicas)
        .await
        .with_context(|| format!("cannot start {replicas} sim replica(s) on {host}:{port}"))?;
    let model = fleet.model_name().unwrap_or_default().to_owned();
    {
        let mut out = std::io::stdout().lock();
        for (i, addr) in fleet.addrs().iter().enumerate() {
            writeln!(out, "sim replica {i} listening on {addr} (model {model})")?;
        }
        out.flush()?;
    }
    wait_for_shutdown_signal().await?;
    fleet.shutdown().await;
    Ok(())
}

async fn resolve_host(host: &str) -> anyhow::Result<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let mut addrs = tokio::net::lookup_host((host, 0))
        .await
        .with_context(|| format!("cannot resolve --host {host}"))?;
    addrs
        .next()
        .map(|a| a.ip())
        .with_context(|| format!("--host {host} resolves to no address"))
}

async fn wait_for_shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot listen for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot listen for ctrl-c")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for ctrl-c")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn parse(args: &[&str]) -> SimArgs {
        Cli::try_parse_from(std::iter::once("sim").chain(args.iter().copied()))
            .unwrap()
            .sim
    }

    #[test]
    fn fleet_and_run_can_live_on_any_runtime_thread() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>(_: &T) {}
        send_sync::<SimFleet>();
        let args = parse(&[]);
        send(&run(args.clone()));
        send(&SimFleet::start(
            args.config,
            IpAddr::from([127, 0, 0, 1]),
            0,
            1,
        ));
    }

    #[test]
    fn cli_contract() {
        let a = parse(&[
            "--port",
            "9000",
            "--model",
            "m",
            "--replicas",
            "3",
            "--max-num-seqs",
            "8",
        ]);
        assert_eq!(
            (a.port, a.replicas, a.host.as_str()),
            (9000, 3, "127.0.0.1")
        );
        let (_, port, replicas, config) = a.resolve().unwrap();
        assert_eq!(
            (port, replicas, config.model.as_str(), config.max_num_seqs),
            (9000, 3, "m", 8)
        );
        assert!(Cli::try_parse_from(["sim", "--max-num-seqs", "0"])
            .unwrap()
            .sim
            .resolve()
            .is_err());
    }

    #[test]
    fn config_file_layers_under_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.yaml");
        std::fs::write(
            &path,
            "port: 9100\nreplicas: 2\nmodel: file-model\nmax-num-seqs: 16\ninter-token-latency: 12ms\n\
             lora-modules:\n  - name: a\n    path: /a\n  - b=/b\nfailure-types: [rate_limit]\n",
        )
        .unwrap();
        let path_arg = path.to_str().unwrap();
        let (_, port, replicas, config) =
            parse(&["--config-file", path_arg, "--max-num-seqs", "4"])
                .resolve()
                .unwrap();
        assert_eq!((port, replicas), (9100, 2));
        assert_eq!(config.model, "file-model");
        assert_eq!(config.max_num_seqs, 4, "flags win");
        assert_eq!(config.inter_token_latency, 12.0);
        assert_eq!(config.lora_modules.len(), 2);
        assert_eq!(config.failure_types, vec![FailureType::RateLimit]);

        std::fs::write(&path, "max-num-seq: 3\n").unwrap();
        let err = format!(
            "{:#}",
            parse(&["--config-file", path_arg]).resolve().unwrap_err()
        );
        assert!(err.contains("max-num-seq"), "{err}");
    }
}
