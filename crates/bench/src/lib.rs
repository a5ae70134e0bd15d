//! Benchmarks: load generation against any OpenAI-compatible endpoint and reports.

/// `infergate bench …`
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Open-loop load at a fixed rate (being written).
    Load,
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    anyhow::bail!("`infergate bench {cmd:?}` is not available in this build yet")
}
