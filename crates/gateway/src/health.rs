//! Readiness probes for ejected endpoints: passive health takes an endpoint out after failures;
//! once its cool-down has passed, a `GET {probePath}` answering 200 brings it back.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use infergate_scheduler::{now_ms, Endpoint};

use crate::dispatch::PROBE_TIMEOUT;
use crate::Gateway;

/// Run forever: every probe interval, probe the endpoints that are due.
pub async fn run_prober(gw: Arc<Gateway>) {
    loop {
        let snap = gw.snapshot();
        let interval = snap.settings().probe_interval;
        let now = now_ms();
        for pool in snap.pools.values() {
            for ep in &pool.endpoints {
                if ep.due_for_probe(now) {
                    // Not due again until this probe has had its chance.
                    ep.probe_failed(PROBE_TIMEOUT);
                    let client = snap.upstreams.client(pool.protocol).clone();
                    let path = snap.settings().probe_path.clone();
                    let cooldown = snap.settings().eject_cooldown;
                    tokio::spawn(probe(client, ep.clone(), path, cooldown));
                }
            }
        }
        drop(snap);
        tokio::time::sleep(interval).await;
    }
}

async fn probe(
    client: crate::snapshot::HttpClient,
    ep: Endpoint,
    path: String,
    cooldown: Duration,
) {
    let uri = format!("http://{}{}", ep.host_port, path);
    let Ok(req) = Request::get(uri).body(Full::new(Bytes::new())) else {
        return;
    };
    let ok = matches!(
        tokio::time::timeout(PROBE_TIMEOUT, client.request(req)).await,
        Ok(Ok(resp)) if resp.status().is_success()
    );
    if ok {
        tracing::info!(pool = %ep.pool, endpoint = %ep.host_port, "endpoint ready again");
        ep.mark_ready();
    } else {
        ep.probe_failed(cooldown);
    }
}
