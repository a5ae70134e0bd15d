//! `infergate serve`: load and validate the configuration, start the simulated fleets it
//! declares (demos and tests), start the gateway, run until SIGINT / SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use infergate_control::loader::Simulator;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Configuration file or directory of YAML resources.
    #[arg(long, short = 'c')]
    config: PathBuf,
    /// Data-plane address (overrides GatewaySettings spec.listen).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin address for /metrics, /healthz, /readyz (overrides GatewaySettings spec.admin).
    #[arg(long)]
    admin: Option<SocketAddr>,
}

fn sim_config(sim: &Simulator) -> anyhow::Result<infergate_sim::SimConfig> {
    let mut map = serde_json::Map::new();
    for (k, v) in &sim.args {
        map.insert(k.clone(), v.clone());
    }
    map.insert("model".into(), serde_json::Value::String(sim.model.clone()));
    let yaml = serde_yaml_ng::to_string(&map)?;
    infergate_sim::SimConfig::from_yaml(&yaml)
        .with_context(|| format!("Simulator `{}`: invalid args", sim.name))
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let sources =
        infergate_control::read_sources(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let config = infergate_control::load_sources(&sources)
        .map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
    let fingerprint = infergate_control::watch::fingerprint(&sources);

    let mut fleets = Vec::new();
    for sim in &config.simulators {
        let cfg = sim_config(sim)?;
        let ip = sim
            .host
            .parse()
            .with_context(|| format!("Simulator `{}`: host must be an IP address", sim.name))?;
        let fleet = infergate_sim::SimFleet::start(cfg, ip, sim.port, sim.replicas)
            .await
            .with_context(|| {
                format!(
                    "cannot start Simulator `{}` on {}:{}",
                    sim.name, sim.host, sim.port
                )
            })?;
        tracing::info!(
            simulator = %sim.name,
            model = %sim.model,
            addrs = ?fleet.addrs(),
            "simulated model servers started"
        );
        fleets.push(fleet);
    }

    let mut models: Vec<String> = infergate_control::RouteTable::build(&config)
        .model_names()
        .iter()
        .map(ToString::to_string)
        .collect();
    models.extend(config.semantic_routers.iter().map(|r| r.name.clone()));
    let running = infergate_gateway::start(
        config,
        infergate_gateway::ServeOptions {
            config_path: Some(args.config.clone()),
            config_fingerprint: fingerprint,
            listen: args.listen,
            admin: args.admin,
        },
    )
    .await?;
    eprintln!(
        "infergate: serving http://{} (models: {}), admin http://{}",
        running.listen_addr,
        models.join(", "),
        running.admin_addr
    );

    wait_for_signal().await;
    eprintln!("infergate: shutting down");
    running.shutdown(Duration::from_secs(30)).await;
    for f in fleets {
        f.shutdown().await;
    }
    Ok(())
}

pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
