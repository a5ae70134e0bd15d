//! The admin listener, on its own address: `/metrics` (Prometheus text), `/healthz` (the process
//! is alive), `/readyz` (configuration loaded and listeners up; the body lists pool health), and
//! the key and spend API under `/admin/v1/` (see [`crate::admin_api`]; it needs the admin token).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use infergate_protocol::ApiError;

use crate::metrics::{BandLabels, EndpointLabels, Label, PoolLabels};
use crate::pipeline::error_response;
use crate::respond::GatewayBody;
use crate::Gateway;

pub async fn handle(gw: Arc<Gateway>, req: Request<Incoming>) -> Response<GatewayBody> {
    if req.uri().path().starts_with("/admin/v1") {
        if let Some(resp) = crate::admin_api::handle(&gw, req).await {
            return resp;
        }
        return error_response(&ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "unknown_url",
            "unknown admin path",
        ));
    }
    if req.method() != Method::GET {
        return error_response(&ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method_not_allowed",
            "the admin endpoints answer GET",
        ));
    }
    match req.uri().path() {
        "/metrics" => {
            refresh_endpoint_gauges(&gw);
            if let Some(r) = &gw.policy.redis {
                gw.metrics.limiter_redis_up.set(i64::from(r.is_up()));
                let dropped = r.dropped.load(std::sync::atomic::Ordering::Relaxed);
                gw.metrics
                    .limiter_redis_settles_dropped
                    .set(i64::try_from(dropped).unwrap_or(i64::MAX));
            }
            let mut resp = Response::new(GatewayBody::full(gw.metrics.encode()));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            let snap = gw.snapshot();
            let pools: serde_json::Map<String, serde_json::Value> = snap
                .pools
                .values()
                .map(|p| {
                    let ready = p.endpoints.iter().filter(|e| !e.is_ejected()).count();
                    (
                        p.name.to_string(),
                        serde_json::json!({"endpoints": p.endpoints.len(), "ready": ready}),
                    )
                })
                .collect();
            let ready = gw.ready.load(Ordering::Relaxed);
            let body = serde_json::json!({
                "ready": ready,
                "generation": snap.generation,
                "pools": pools,
            });
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let mut resp = Response::new(GatewayBody::full(body.to_string()));
            *resp.status_mut() = status;
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        other => error_response(&ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "unknown_url",
            format!("unknown admin path {other}; try /metrics, /healthz or /readyz"),
        )),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<GatewayBody> {
    let mut resp = Response::new(GatewayBody::full(body));
    *resp.status_mut() = status;
    resp
}

/// Endpoint and pool gauges are read from the live state at scrape time.
fn refresh_endpoint_gauges(gw: &Gateway) {
    let snap = gw.snapshot();
    gw.metrics.band_queue_size.clear();
    for pool in snap.pools.values() {
        let stats = pool.scheduler.stats();
        let pl = PoolLabels {
            pool: pool.label.clone(),
        };
        gw.metrics
            .pool_saturation
            .get_or_create(&pl)
            .set(stats.saturation);
        gw.metrics
            .pool_reserved_endpoints
            .get_or_create(&pl)
            .set(i64::try_from(stats.reserved_endpoints).unwrap_or(i64::MAX));
        let (n, bytes) = stats
            .queued
            .iter()
            .fold((0u64, 0u64), |(n, b), s| (n + s.requests, b + s.bytes));
        gw.metrics
            .queue_size
            .get_or_create(&pl)
            .set(i64::try_from(n).unwrap_or(i64::MAX));
        gw.metrics
            .queue_bytes
            .get_or_create(&pl)
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        for b in &stats.queued {
            gw.metrics
                .band_queue_size
                .get_or_create(&BandLabels {
                    pool: pool.label.clone(),
                    priority: b.priority,
                })
                .set(i64::try_from(b.requests).unwrap_or(i64::MAX));
        }
        for ep in &pool.endpoints {
            let labels = EndpointLabels {
                pool: pool.label.clone(),
                endpoint: Label(ep.host_port.clone()),
            };
            gw.metrics
                .endpoint_in_flight
                .get_or_create(&labels)
                .set(i64::from(ep.in_flight()));
            gw.metrics
                .endpoint_awaiting_first_byte
                .get_or_create(&labels)
                .set(i64::from(ep.awaiting_first_byte()));
            gw.metrics
                .endpoint_ejected
                .get_or_create(&labels)
                .set(i64::from(ep.is_ejected()));
            if let Some(m) = ep.metrics() {
                gw.metrics
                    .endpoint_queue
                    .get_or_create(&labels)
                    .set(ep.queue_estimate().unwrap_or(m.waiting));
                gw.metrics
                    .endpoint_kv_usage
                    .get_or_create(&labels)
                    .set(m.kv_usage);
            }
            let total = ep.ejections.load(Ordering::Relaxed);
            let c = gw.metrics.endpoint_ejections.get_or_create(&labels);
            let seen = c.get();
            if total > seen {
                c.inc_by(total - seen);
            }
        }
    }
}
