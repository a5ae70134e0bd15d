//! Benchmarks: load generation against any OpenAI-compatible endpoint, and the reports built
//! from it.
//!
//! - [`load`]: the load generator (open loop at a fixed rate, coordinated-omission corrected, or
//!   closed-loop saturation) — what every benchmark drives traffic with.
//! - [`report`]: result files (JSON), Markdown tables, machine facts, target verdicts.
//! - [`process`]: the processes a benchmark starts (pinned, logged, stopped by PID).
//! - [`cluster`]: redis-server, a simulated backend and gateway replicas, for multi-replica runs.
//! - one module per benchmark: [`overhead`], [`epp`], [`limits`].

pub mod cluster;
pub mod epp;
pub mod limits;
pub mod load;
pub mod overhead;
pub mod process;
pub mod report;

/// `infergate bench …`
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Drive load at one URL: open loop at --rate req/s (latency from the scheduled send time),
    /// or closed loop with --rate max --concurrency C.
    Load(load::LoadArgs),
    /// Added latency, throughput and memory of infergate next to a direct call and Envoy, with
    /// real processes; writes docs/benchmarks/overhead.md and overhead.json.
    Overhead(overhead::OverheadArgs),
    /// What the Endpoint Picker adds behind Envoy (220 KB prompt, added p50) and how several
    /// picker replicas route; real Envoy, `infergate epp` and simulated pools. Writes
    /// docs/benchmarks/epp.md and epp.json.
    Epp(epp::EppBenchArgs),
    /// Accuracy of a shared tokens-per-minute limit: 3 replicas + redis-server and 100 clients,
    /// then the in-process limiter; writes docs/benchmarks/limits.md and limits.json.
    Limits(limits::LimitsArgs),
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Load(args) => load::run_cli(&args).await,
        BenchCommand::Overhead(args) => overhead::run(&args).await,
        BenchCommand::Epp(args) => epp::run(&args).await,
        BenchCommand::Limits(args) => limits::run(&args).await,
    }
}
