//! The metrics scraper: every `refreshInterval` (50 ms by default), `GET /metrics` from each of a
//! pool's endpoints, at most `maxConcurrency` at once, and store what the engine's metric names
//! say (see [`crate::signals`]). After each round flow control is poked, since a fresher picture
//! may show room.
//!
//! I/O beside the decision path: it only writes each endpoint's signals (an atomic swap). A scrape
//! that fails or times out leaves the previous signals, which then go stale and count as
//! saturated, as in the anchor.

use std::sync::Weak;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::endpoint::Endpoint;
use crate::pool::PoolShared;
use crate::signals::{read_metrics, EngineCatalog};

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// Largest `/metrics` body read.
const MAX_BODY: usize = 8 << 20;

pub(crate) async fn run(pool: Weak<PoolShared>) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_millis(500)));
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector);
    loop {
        let round = Instant::now();
        let Some(shared) = pool.upgrade() else {
            return;
        };
        let (params, catalog) = shared.scrape_settings();
        let endpoints = shared.endpoints();
        let timeout = params.timeout.get();
        let path: std::sync::Arc<str> = params.path.as_str().into();
        futures_util::stream::iter(endpoints.iter().cloned())
            .map(|ep| {
                let (client, catalog, path) = (client.clone(), catalog.clone(), path.clone());
                async move { scrape_one(&client, &ep, &catalog, &path, timeout).await }
            })
            .buffer_unordered(params.max_concurrency.max(1))
            .for_each(|()| async {})
            .await;
        shared.on_capacity_freed();
        drop(shared);
        let next = round + params.refresh_interval.get();
        tokio::time::sleep_until(next.into()).await;
    }
}

async fn scrape_one(
    client: &HttpClient,
    ep: &Endpoint,
    catalog: &EngineCatalog,
    path: &str,
    timeout: Duration,
) {
    let uri = format!("http://{}{}", ep.host_port, path);
    let Ok(req) = http::Request::get(uri).body(Empty::new()) else {
        return;
    };
    let fetch = async {
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("status {}", resp.status()));
        }
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(body.to_bytes())
    };
    match tokio::time::timeout(timeout, fetch).await {
        Ok(Ok(body)) => {
            let text = String::from_utf8_lossy(&body);
            match read_metrics(catalog.for_labels(&ep.spec.labels), &text) {
                Some(m) => ep.set_metrics(m),
                None => {
                    tracing::debug!(endpoint = %ep.host_port, "metrics have none of the engine's names");
                }
            }
        }
        Ok(Err(e)) => tracing::debug!(endpoint = %ep.host_port, "metrics scrape failed: {e}"),
        Err(_) => tracing::debug!(endpoint = %ep.host_port, "metrics scrape timed out"),
    }
}
