//! `infergate epp`: run the Endpoint Picker — Envoy's ext_proc service with the Gateway API
//! Inference Extension protocol — over the pools of a configuration, until SIGINT / SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct EppArgs {
    /// Configuration file or directory of YAML resources (InferencePool, InferenceObjective,
    /// InferenceModelRewrite, PublicModel, …); every InferencePool in it is served.
    #[arg(long, short = 'c')]
    config: PathBuf,
    /// ext_proc gRPC address (also serves grpc.health.v1).
    #[arg(long, default_value = "0.0.0.0:9002")]
    grpc: SocketAddr,
    /// gRPC health address (services `liveness`, `readiness`,
    /// `envoy.service.ext_proc.v3.ExternalProcessor`).
    #[arg(long, default_value = "0.0.0.0:9003")]
    health: SocketAddr,
    /// Prometheus metrics address (GET /metrics).
    #[arg(long, default_value = "0.0.0.0:9090")]
    metrics: SocketAddr,
    /// On SIGTERM, report NOT_SERVING and keep serving this many seconds before closing, so
    /// the proxy's health check takes this picker out first (0 = stop at once).
    #[arg(long, default_value_t = 3.0)]
    drain_seconds: f64,
    /// TEST ONLY: honour the `test-epp-endpoint-selection: ip[:port][,…]` request header and
    /// echo `x-conformance-test-served-endpoint` (Gateway API Inference Extension conformance).
    /// Never enable in production: any client could choose its endpoint.
    #[arg(long, hide = true)]
    enable_test_endpoint_selection: bool,
}

pub async fn run(args: EppArgs) -> anyhow::Result<()> {
    let sources =
        infergate_control::read_sources(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let config = infergate_control::load_sources(&sources)
        .map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let pools: Vec<String> = config.pools.iter().map(|p| p.name.clone()).collect();
    let running = infergate_extproc::start(
        config,
        infergate_extproc::EppOptions {
            grpc: args.grpc,
            health: args.health,
            metrics: args.metrics,
            test_endpoint_selection: args.enable_test_endpoint_selection,
            config_path: Some(args.config.clone()),
            config_fingerprint: infergate_control::watch::fingerprint(&sources),
            drain: Duration::try_from_secs_f64(args.drain_seconds.max(0.0))
                .map_err(|e| anyhow::anyhow!("--drain-seconds: {e}"))?,
        },
    )
    .await?;
    if args.enable_test_endpoint_selection {
        tracing::warn!("test endpoint selection is ON: clients can choose endpoints (tests only)");
    }
    eprintln!(
        "infergate epp: ext_proc grpc://{} health grpc://{} metrics http://{} (pools: {})",
        running.grpc_addr,
        running.health_addr,
        running.metrics_addr,
        pools.join(", ")
    );
    crate::serve::wait_for_signal().await;
    eprintln!("infergate epp: shutting down");
    running.shutdown(Duration::from_secs(10)).await;
    Ok(())
}
