//! `infergate`: the command line. Each subcommand is a thin shell over a library crate.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod admin_cli;
mod epp;
#[cfg(feature = "embed-candle")]
mod semantic;
mod serve;

#[derive(Parser)]
#[command(
    name = "infergate",
    version,
    about = "A Kubernetes-native AI gateway: routes by model, picks replicas by live signals, limits by tokens."
)]
struct Cli {
    /// Log format for the gateway's own logs (stderr): text or json.
    #[arg(
        long,
        global = true,
        default_value = "text",
        env = "INFERGATE_LOG_FORMAT"
    )]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(serve::ServeArgs),
    /// Run the Endpoint Picker for Envoy-based gateways (ext_proc, Gateway API Inference
    /// Extension protocol): gRPC 9002, health 9003, metrics 9090.
    Epp(epp::EppArgs),
    /// Validate a configuration file (or directory) and exit non-zero on errors.
    Check {
        #[arg(long, short = 'c')]
        config: PathBuf,
    },
    /// Run a vLLM-compatible simulated model server (or a fleet on consecutive ports).
    Sim(Box<infergate_sim::SimArgs>),
    /// Benchmarks (load generation and the overhead comparison).
    #[command(subcommand)]
    Bench(infergate_bench::BenchCommand),
    /// Measurements of the embedding model, guardrails, semantic cache and routing.
    #[cfg(feature = "embed-candle")]
    #[command(subcommand)]
    Semantic(semantic::SemanticCommand),
    /// API keys: create, list, rotate, expire, revoke (through the admin API); hash, generate.
    Keys(admin_cli::KeysArgs),
    /// Spend report by tenant, key, model and day (through the admin API).
    Spend(admin_cli::SpendArgs),
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("INFERGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn check(config: &std::path::Path) -> ExitCode {
    match infergate_control::load_path(config) {
        Ok(set) => {
            for w in &set.warnings {
                eprintln!("warning: {w}");
            }
            eprintln!(
                "{}: OK ({} pools, {} public models, {} objectives, {} rewrites, {} legacy models)",
                config.display(),
                set.pools.len(),
                set.public_models.len(),
                set.objectives.len(),
                set.rewrites.len(),
                set.legacy_models.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            eprintln!(
                "{}: {} error(s); nothing was applied",
                config.display(),
                errors.0.len()
            );
            ExitCode::FAILURE
        }
    }
}

/// mimalloc instead of glibc's malloc (feature `mimalloc`, on by default); why, and why without
/// transparent huge pages, in docs/architecture.md.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // The embedding model runs on its own bounded pool of threads (GatewaySettings
    // spec.embeddings.workers), each single-threaded: keep candle's matrix kernels from starting
    // a thread per core of their own, unless the operator asked for it. Set before any thread
    // exists.
    for var in ["RAYON_NUM_THREADS", "CANDLE_NUM_THREADS"] {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, "1");
        }
    }
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    match cli.command {
        Command::Check { config } => check(&config),
        #[cfg(feature = "embed-candle")]
        Command::Semantic(cmd) => match semantic::run(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        command => {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let result = rt.block_on(async move {
                match command {
                    Command::Serve(args) => serve::run(args).await,
                    Command::Epp(args) => epp::run(args).await,
                    Command::Sim(args) => infergate_sim::run(*args).await,
                    Command::Bench(cmd) => infergate_bench::run(cmd).await,
                    Command::Keys(args) => admin_cli::keys(args).await,
                    Command::Spend(args) => admin_cli::spend(args).await,
                    Command::Check { .. } => Ok(()),
                    #[cfg(feature = "embed-candle")]
                    Command::Semantic(_) => Ok(()),
                }
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
