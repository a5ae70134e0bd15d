//! `infergate sim` without the rest of the binary, for trying the simulator by hand:
//! `cargo run -p infergate-sim --example sim_cli -- --port 8000 --model demo --replicas 2`

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    sim: infergate_sim::SimArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    infergate_sim::run(Cli::parse().sim).await
}
