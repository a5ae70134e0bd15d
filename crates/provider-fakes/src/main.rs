//! `infergate-fake-provider <openai|azure|anthropic|bedrock|vertex|gemini> [--key KEY]`: run one
//! provider fake on 127.0.0.1 (OS-chosen port) for integration tests in other languages. Prints
//! `listening on http://ADDR` and serves until killed.

use infergate_provider_fakes::{Credentials, Fake, Flavor};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let flavor = args
        .get(1)
        .and_then(|f| Flavor::parse(f))
        .ok_or_else(|| anyhow::anyhow!("usage: infergate-fake-provider <openai|azure|anthropic|bedrock|vertex|gemini> [--key KEY]"))?;
    let key = args
        .iter()
        .position(|a| a == "--key")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let fake = Fake::start(
        flavor,
        Credentials {
            api_key: key,
            ..Credentials::default()
        },
    )
    .await;
    use std::io::Write;
    let mut out = std::io::stdout();
    writeln!(out, "listening on {}", fake.base_url())?;
    out.flush()?;
    std::future::pending::<()>().await;
    Ok(())
}
