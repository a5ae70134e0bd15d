//! The sockets: Envoy's `ExternalProcessor/Process` (gRPC, port 9002 by default), the standard
//! gRPC health service on the same port and on its own (9003), and Prometheus metrics (9090).
//!
//! One ext_proc stream is one HTTP request. Each stream runs its [`Exchange`] in one task: read a
//! message, step the state machine, make the scheduling call when it asks, send what it
//! produced. Nothing here decides anything.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::{
    ExternalProcessor, ExternalProcessorServer,
};
use envoy_types::pb::envoy::service::ext_proc::v3::{ProcessingRequest, ProcessingResponse};
use http_body_util::Full;
use infergate_control::ConfigSet;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};
use tonic_health::ServingStatus;

use crate::exchange::{Exchange, ExchangeOptions, Step};
use crate::metrics::{EndpointLabels, Metrics};
use crate::scheduling::{ConfigPicker, EndpointPicker};
use crate::wire;

/// The gRPC health service names the anchor's gateways probe.
pub const HEALTH_SERVICES: [&str; 3] = [
    "liveness",
    "readiness",
    "envoy.service.ext_proc.v3.ExternalProcessor",
];

/// The ext_proc service over any [`EndpointPicker`].
pub struct EppService<P> {
    picker: Arc<P>,
    metrics: Arc<Metrics>,
    opts: ExchangeOptions,
}

impl<P> Clone for EppService<P> {
    fn clone(&self) -> Self {
        Self {
            picker: self.picker.clone(),
            metrics: self.metrics.clone(),
            opts: self.opts.clone(),
        }
    }
}

impl<P: EndpointPicker> EppService<P> {
    pub fn new(picker: Arc<P>, metrics: Arc<Metrics>, opts: ExchangeOptions) -> Self {
        Self {
            picker,
            metrics,
            opts,
        }
    }
}

async fn run_stream<P: EndpointPicker>(
    svc: EppService<P>,
    pool_hint: Option<String>,
    mut inbound: Streaming<ProcessingRequest>,
    tx: mpsc::Sender<Result<ProcessingResponse, Status>>,
) {
    let mut ex: Exchange<P::Ticket> = Exchange::new(
        svc.opts.clone(),
        svc.metrics.clone(),
        svc.picker.max_body_bytes(),
        pool_hint,
    );
    loop {
        // The proxy closed its side (request done) or the stream broke: either way the
        // exchange is over; dropping it reports the request finished.
        let Ok(Some(msg)) = inbound.message().await else {
            return;
        };
        let mut step = ex.on_message(msg);
        if matches!(step, Step::Schedule) {
            let result = svc.picker.schedule(&ex.pick_request()).await;
            step = ex.on_picked(result);
        }
        let (out, close) = match step {
            Step::Send(out) => (out, false),
            Step::Close(out) => (out, true),
            Step::Schedule => (Vec::new(), false),
        };
        for m in out {
            if tx.send(Ok(m)).await.is_err() {
                return;
            }
        }
        if close {
            return;
        }
    }
}

#[tonic::async_trait]
impl<P: EndpointPicker> ExternalProcessor for EppService<P> {
    type ProcessStream = ReceiverStream<Result<ProcessingResponse, Status>>;

    async fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        let pool_hint = request
            .metadata()
            .get(wire::POOL_GRPC_METADATA)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(run_stream(self.clone(), pool_hint, inbound, tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Where `infergate epp` listens and how it behaves.
#[derive(Debug, Clone)]
pub struct EppOptions {
    pub grpc: SocketAddr,
    pub health: SocketAddr,
    pub metrics: SocketAddr,
    /// Honour `test-epp-endpoint-selection` (conformance tests only).
    pub test_endpoint_selection: bool,
    /// Watch this path and apply valid changes.
    pub config_path: Option<PathBuf>,
    pub config_fingerprint: u64,
    /// On shutdown, report NOT_SERVING on every health service and keep serving this long, so
    /// the proxy's health check takes the picker out before its port closes (a proxy that
    /// learns of a dead picker mid-request cannot fail open for that request).
    pub drain: Duration,
}

impl Default for EppOptions {
    fn default() -> Self {
        Self {
            grpc: SocketAddr::from(([0, 0, 0, 0], 9002)),
            health: SocketAddr::from(([0, 0, 0, 0], 9003)),
            metrics: SocketAddr::from(([0, 0, 0, 0], 9090)),
            test_endpoint_selection: false,
            config_path: None,
            config_fingerprint: 0,
            drain: Duration::from_secs(3),
        }
    }
}

/// A running picker.
pub struct RunningEpp {
    pub grpc_addr: SocketAddr,
    pub health_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub picker: Arc<ConfigPicker>,
    pub metrics: Arc<Metrics>,
    health: tonic_health::server::HealthReporter,
    drain: Duration,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningEpp {
    /// Drain (health NOT_SERVING while still serving, for the configured drain time), then stop
    /// accepting streams and let open ones end (up to `grace`).
    pub async fn shutdown(self, grace: Duration) {
        if !self.drain.is_zero() {
            for name in HEALTH_SERVICES.iter().chain(std::iter::once(&"")) {
                self.health
                    .set_service_status(*name, ServingStatus::NotServing)
                    .await;
            }
            tokio::time::sleep(self.drain).await;
        }
        let _ = self.stop.send(true);
        for t in self.tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout(grace, t).await.is_err() {
                abort.abort();
            }
        }
    }
}

/// Why the picker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} for {what}: {source}")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
}

async fn bind(
    addr: SocketAddr,
    what: &'static str,
) -> Result<(TcpListener, SocketAddr), StartError> {
    let err = |source| StartError::Bind { addr, what, source };
    let l = TcpListener::bind(addr).await.map_err(err)?;
    let local = l.local_addr().map_err(err)?;
    Ok((l, local))
}

/// Start the picker on `config`.
pub async fn start(config: ConfigSet, opts: EppOptions) -> Result<RunningEpp, StartError> {
    let (grpc, grpc_addr) = bind(opts.grpc, "gRPC (ext_proc)").await?;
    let (health, health_addr) = bind(opts.health, "gRPC health").await?;
    let (metrics_l, metrics_addr) = bind(opts.metrics, "metrics").await?;

    let picker = Arc::new(ConfigPicker::new(&config));
    let metrics = Arc::new(Metrics::new());
    let svc = EppService::new(
        picker.clone(),
        metrics.clone(),
        ExchangeOptions {
            test_endpoint_selection: opts.test_endpoint_selection,
        },
    );

    let (reporter, health_svc) = tonic_health::server::health_reporter();
    for name in HEALTH_SERVICES.iter().chain(std::iter::once(&"")) {
        reporter
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }

    let (stop, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let mut tasks = Vec::new();

    let grpc_server = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        // Large prompts arrive in one burst; small default windows would add round trips.
        .initial_stream_window_size(Some(4 << 20))
        .initial_connection_window_size(Some(32 << 20))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(
            ExternalProcessorServer::new(svc)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
        )
        .add_service(health_svc.clone())
        .serve_with_incoming_shutdown(TcpListenerStream::new(grpc), stopped(stop_rx.clone()));
    tasks.push(tokio::spawn(async move {
        if let Err(e) = grpc_server.await {
            tracing::error!("ext_proc server failed: {e}");
        }
    }));

    let health_server = tonic::transport::Server::builder()
        .add_service(health_svc)
        .serve_with_incoming_shutdown(TcpListenerStream::new(health), stopped(stop_rx.clone()));
    tasks.push(tokio::spawn(async move {
        if let Err(e) = health_server.await {
            tracing::error!("health server failed: {e}");
        }
    }));

    let refresh = {
        let (p, m) = (picker.clone(), metrics.clone());
        Arc::new(move || refresh_gauges(&p, &m)) as Arc<dyn Fn() + Send + Sync>
    };
    tasks.push(tokio::spawn(serve_metrics(
        metrics_l,
        metrics.clone(),
        refresh,
        stopped(stop_rx.clone()),
    )));

    if let Some(path) = opts.config_path.clone() {
        let interval = config
            .settings
            .reload_interval
            .unwrap_or(Duration::from_secs(1));
        if config.settings.reload_interval.is_some() {
            let p = picker.clone();
            let watcher = infergate_control::watch::spawn_watcher(
                path,
                interval,
                opts.config_fingerprint,
                move |result| match result {
                    Ok(cfg) => {
                        p.apply(&cfg);
                        tracing::info!(pools = cfg.pools.len(), "configuration reloaded");
                    }
                    Err(e) => tracing::error!("configuration rejected, keeping the old one:\n{e}"),
                },
            );
            let mut rx = stop_rx;
            tasks.push(tokio::spawn(async move {
                let _ = rx.wait_for(|v| *v).await;
                watcher.abort();
            }));
        }
    }

    Ok(RunningEpp {
        grpc_addr,
        health_addr,
        metrics_addr,
        picker,
        metrics,
        health: reporter,
        drain: opts.drain,
        stop,
        tasks,
    })
}

/// Gauges read from the schedulers when `/metrics` is scraped.
fn refresh_gauges(picker: &ConfigPicker, metrics: &Metrics) {
    metrics.kv_event_blocks.clear();
    for pool in picker.pool_names() {
        let Some(blocks) = picker.scheduler(&pool).and_then(|s| s.kv_event_blocks()) else {
            continue;
        };
        for (endpoint, n) in blocks {
            metrics
                .kv_event_blocks
                .get_or_create(&EndpointLabels {
                    pool: pool.clone(),
                    endpoint,
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}

async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    refresh: Arc<dyn Fn() + Send + Sync>,
    stopped: impl std::future::Future<Output = ()>,
) {
    use hyper::service::service_fn;
    tokio::pin!(stopped);
    loop {
        let (sock, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => continue,
            },
            () = &mut stopped => return,
        };
        let m = metrics.clone();
        let refresh = refresh.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let m = m.clone();
                let refresh = refresh.clone();
                async move {
                    let (status, ctype, body) = match req.uri().path() {
                        "/metrics" => (
                            200,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            {
                                refresh();
                                m.encode()
                            },
                        ),
                        "/healthz" | "/readyz" => (200, "text/plain", "ok\n".to_string()),
                        _ => (404, "text/plain", "not found: try /metrics\n".to_string()),
                    };
                    let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
                    *resp.status_mut() = http::StatusCode::from_u16(status)
                        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
                    if let Ok(v) = http::HeaderValue::from_str(ctype) {
                        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
                .await;
        });
    }
}
