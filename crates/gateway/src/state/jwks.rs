//! Loading the JWKS that JWT bearer tokens are verified against: from a file or a URL, at start,
//! every `refresh`, and — rate-limited to once per [`MIN_REFETCH`] — when a token names a key id
//! the current set does not have (the identity provider rotated its keys).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use infergate_control::policy::JwtSettings;
use infergate_policy::jwt::JwtVerifier;

use super::PolicyState;

pub const MIN_REFETCH: Duration = Duration::from_secs(10);
const MAX_JWKS_BYTES: usize = 1 << 20;

/// Fetch and parse the JWKS once.
pub async fn load(settings: &JwtSettings) -> Result<JwtVerifier, String> {
    let bytes = if let Some(path) = &settings.jwks_file {
        tokio::fs::read(path)
            .await
            .map_err(|e| format!("cannot read the JWKS file {path}: {e}"))?
    } else if let Some(url) = &settings.jwks_url {
        fetch(url).await?
    } else {
        return Err("no JWKS source configured".into());
    };
    JwtVerifier::from_jwks(&bytes, settings.clone())
}

async fn fetch(url: &str) -> Result<Vec<u8>, String> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(Arc::new(rustls::crypto::ring::default_provider()))
        .map_err(|e| format!("TLS setup for the JWKS URL failed: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("invalid JWKS URL {url}: {e}"))?;
    let req = http::Request::get(uri)
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| format!("the JWKS URL {url} did not answer within 10s"))?
        .map_err(|e| format!("cannot fetch the JWKS from {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("the JWKS URL {url} answered {}", resp.status()));
    }
    let body = Limited::new(resp.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
        .map_err(|e| format!("cannot read the JWKS from {url}: {e}"))?
        .to_bytes();
    Ok(body.to_vec())
}

/// Keep the verifier fresh: every `refresh`, or sooner when asked (unknown key id).
pub async fn refresh_loop(state: Arc<PolicyState>, settings: JwtSettings) {
    let mut last = Instant::now();
    loop {
        let asked = tokio::select! {
            () = tokio::time::sleep(settings.refresh) => false,
            () = state.jwks_wanted.notified() => true,
        };
        if asked && last.elapsed() < MIN_REFETCH {
            continue;
        }
        last = Instant::now();
        match load(&settings).await {
            Ok(v) => {
                tracing::debug!(keys = v.key_count(), "JWKS refreshed");
                state.jwt.store(Some(Arc::new(v)));
            }
            Err(e) => tracing::warn!("JWKS refresh failed, keeping the previous keys: {e}"),
        }
    }
}
