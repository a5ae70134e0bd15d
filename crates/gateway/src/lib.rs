//! The infergate data plane: listeners, the request pipeline (see [`pipeline`] for the stages in
//! order), upstream pools with retries and passive health, the admin listener, and hot reload of
//! the configuration snapshot.

pub mod access_log;
pub mod admin;
pub mod admin_api;
pub mod context;
pub mod dispatch;
pub mod error;
pub mod health;
pub mod metrics;
pub mod pipeline;
pub mod respond;
pub mod server;
pub mod shadow;
pub mod snapshot;
pub mod stages;
pub mod state;
pub mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use infergate_control::{ConfigErrors, ConfigSet};
use infergate_scheduler::EndpointRegistry;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::access_log::AccessLog;
use crate::metrics::{Metrics, ResultLabels};
use crate::snapshot::{Shared, Snapshot};
use crate::stages::runtime::SemanticRuntime;
use crate::upstream::budget::RetryBudget;
use crate::upstream::circuit::CircuitRegistry;
use crate::upstream::credentials::CredentialStore;

/// Shared state of one running gateway.
pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    registry: EndpointRegistry,
    schedulers: infergate_scheduler::SchedulerRegistry,
    pub circuits: CircuitRegistry,
    pub credentials: Arc<CredentialStore>,
    pub retry_budget: RetryBudget,
    /// Bounds shadow copies in flight.
    pub shadow_slots: Arc<tokio::sync::Semaphore>,
    pub metrics: Metrics,
    pub access_log: Option<AccessLog>,
    /// Limiter backends, key store, spend ledger, JWKS: state that outlives snapshots.
    pub policy: Arc<state::PolicyState>,
    generation: AtomicU64,
    pub(crate) ready: AtomicBool,
    /// Reloads run one at a time (building a payload runtime takes a moment).
    reloading: tokio::sync::Mutex<()>,
}

impl Gateway {
    /// A gateway serving `config` (not yet listening), without payload features; see
    /// [`Gateway::with_semantic`].
    pub fn new(config: ConfigSet) -> std::io::Result<Self> {
        Self::with_semantic(config, Arc::default())
    }

    /// A gateway serving `config` with its payload runtime already built
    /// ([`SemanticRuntime::build`]).
    pub fn with_semantic(
        config: ConfigSet,
        semantic: Arc<SemanticRuntime>,
    ) -> std::io::Result<Self> {
        let metrics = Metrics::new();
        let access_log = match &config.settings.access_log {
            Some(target) => Some(AccessLog::start(
                target,
                metrics.access_log_dropped.clone(),
            )?),
            None => None,
        };
        let policy = Arc::new(state::PolicyState::new(&config).map_err(std::io::Error::other)?);
        let registry = EndpointRegistry::default();
        let schedulers = infergate_scheduler::SchedulerRegistry::default();
        let circuits = CircuitRegistry::default();
        let credentials = Arc::new(CredentialStore::default());
        let mut snap = Snapshot::build(
            1,
            config,
            &Shared {
                registry: &registry,
                schedulers: &schedulers,
                circuits: &circuits,
                credentials: &credentials,
            },
            None,
        );
        snap.semantic = semantic;
        metrics.config_generation.set(1);
        Ok(Self {
            snapshot: ArcSwap::from_pointee(snap),
            registry,
            schedulers,
            circuits,
            credentials,
            retry_budget: RetryBudget::default(),
            shadow_slots: Arc::new(tokio::sync::Semaphore::new(shadow::MAX_IN_FLIGHT)),
            metrics,
            access_log,
            policy,
            generation: AtomicU64::new(1),
            ready: AtomicBool::new(false),
            reloading: tokio::sync::Mutex::new(()),
        })
    }

    /// The snapshot to serve one request from; hold it for the request's lifetime.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Swap in a new configuration atomically, keeping the current payload runtime. Requests
    /// already running finish on the old one.
    pub fn apply(&self, config: ConfigSet) -> u64 {
        self.apply_with(config, None)
    }

    /// Swap in a new configuration and, when given, the payload runtime built for it.
    pub fn apply_with(&self, config: ConfigSet, semantic: Option<Arc<SemanticRuntime>>) -> u64 {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let prev = self.snapshot.load();
        let current = &prev.config.settings;
        let next = &config.settings;
        if current.listen != next.listen || current.admin != next.admin || current.tls != next.tls {
            tracing::warn!(
                "listener addresses or TLS changed in the configuration; they take effect at the next restart"
            );
        }
        if current.access_log != next.access_log {
            tracing::warn!("access log target changed; it takes effect at the next restart");
        }
        let (cp, np) = (&current.policy, &next.policy);
        if cp.state != np.state
            || cp.auth.admin_token != np.auth.admin_token
            || cp.auth.jwt != np.auth.jwt
            || prev.config.tenants.is_empty() != config.tenants.is_empty()
        {
            tracing::warn!(
                "state (SQLite path, Redis), admin token, JWT settings or turning identities on/off changed; \
                 they take effect at the next restart (tenants, keys in config, limits, budgets and prices apply now)"
            );
        }
        let mut snap = Snapshot::build(
            generation,
            config,
            &Shared {
                registry: &self.registry,
                schedulers: &self.schedulers,
                circuits: &self.circuits,
                credentials: &self.credentials,
            },
            Some(&prev),
        );
        if let Some(s) = semantic {
            snap.semantic = s;
        }
        drop(prev);
        self.snapshot.store(Arc::new(snap));
        self.metrics
            .config_generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
        generation
    }

    /// Handle a reload result from the watcher: apply a valid configuration (after building its
    /// payload runtime), keep serving the old one on errors.
    pub async fn on_reload(&self, result: Result<ConfigSet, ConfigErrors>) {
        let _serial = self.reloading.lock().await;
        match result {
            Ok(config) => {
                for w in &config.warnings {
                    tracing::warn!("config: {w}");
                }
                let prev = self.snapshot();
                let semantic = if prev.config.settings.embeddings == config.settings.embeddings
                    && prev.config.guardrail_policies == config.guardrail_policies
                    && prev.config.cache_policies == config.cache_policies
                    && prev.config.semantic_routers == config.semantic_routers
                    && prev.config.collections == config.collections
                {
                    None
                } else {
                    match SemanticRuntime::build(&config, Some(&prev.semantic)).await {
                        Ok(rt) => Some(Arc::new(rt)),
                        Err(e) => {
                            self.metrics
                                .config_reloads
                                .get_or_create(&ResultLabels { result: "failure" })
                                .inc();
                            tracing::error!(
                                "configuration rejected, still serving the previous one: {e}"
                            );
                            return;
                        }
                    }
                };
                drop(prev);
                let generation = self.apply_with(config, semantic);
                self.metrics
                    .config_reloads
                    .get_or_create(&ResultLabels { result: "success" })
                    .inc();
                tracing::info!(generation, "configuration reloaded");
            }
            Err(errors) => {
                self.metrics
                    .config_reloads
                    .get_or_create(&ResultLabels { result: "failure" })
                    .inc();
                tracing::error!(
                    "configuration rejected, still serving the previous one:\n{errors}"
                );
            }
        }
    }
}

/// Where to listen and what to watch.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// The `--config` path to watch for changes (None = no reload).
    pub config_path: Option<PathBuf>,
    /// Fingerprint of the sources `config` was loaded from (see `infergate_control::watch`).
    pub config_fingerprint: u64,
    /// Overrides `GatewaySettings.spec.listen`.
    pub listen: Option<SocketAddr>,
    /// Overrides `GatewaySettings.spec.admin`.
    pub admin: Option<SocketAddr>,
}

/// A gateway that is listening.
pub struct RunningGateway {
    pub gateway: Arc<Gateway>,
    pub listen_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
}

impl RunningGateway {
    /// Stop accepting, let open requests finish (up to `drain`), stop background tasks.
    pub async fn shutdown(self, drain: Duration) {
        let _ = self.shutdown.send(true);
        for s in self.servers {
            let _ = tokio::time::timeout(drain + Duration::from_secs(1), s).await;
        }
        if let Some(ledger) = &self.gateway.policy.ledger {
            ledger.flush().await;
        }
        for b in self.background {
            b.abort();
        }
    }
}

/// Start serving `config`.
pub async fn start(config: ConfigSet, opts: ServeOptions) -> std::io::Result<RunningGateway> {
    let listen = opts.listen.unwrap_or(config.settings.listen);
    let admin = opts.admin.unwrap_or(config.settings.admin);
    let tls = match &config.settings.tls {
        Some((cert, key)) => Some(server::tls_acceptor(cert, key)?),
        None => None,
    };
    let header_timeout = config.settings.request_read_timeout;
    let reload_interval = config.settings.reload_interval;
    for w in &config.warnings {
        tracing::warn!("config: {w}");
    }
    let data_listener = server::bind(listen, "data plane").await?;
    let admin_listener = server::bind(admin, "admin listener").await?;
    let listen_addr = data_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    let semantic = SemanticRuntime::build(&config, None)
        .await
        .map_err(|e| std::io::Error::other(format!("payload features: {e}")))?;
    let gw = Arc::new(Gateway::with_semantic(config, Arc::new(semantic))?);
    let policy_tasks = {
        let snap = gw.snapshot();
        gw.policy
            .init(&snap.config, &snap.policy)
            .await
            .map_err(std::io::Error::other)?
    };
    let (tx, rx) = watch::channel(false);
    let drain = Duration::from_secs(30);

    let g = gw.clone();
    let data = tokio::spawn(server::serve(
        data_listener,
        tls,
        header_timeout,
        move |req| pipeline::handle(g.clone(), req),
        rx.clone(),
        drain,
    ));
    let g = gw.clone();
    let admin_srv = tokio::spawn(server::serve(
        admin_listener,
        None,
        header_timeout,
        move |req| admin::handle(g.clone(), req),
        rx,
        Duration::from_secs(1),
    ));
    let mut background = vec![
        tokio::spawn(health::run_prober(gw.clone())),
        tokio::spawn(upstream::credentials::run_file_watcher(
            gw.credentials.clone(),
            reload_interval.unwrap_or(Duration::from_secs(1)),
        )),
    ];
    background.extend(policy_tasks);
    let snap = gw.snapshot();
    if snap.policy.enabled {
        // Build the tokenizers the public models need now, off the request path.
        let models = snap.model_names.clone();
        background.push(tokio::task::spawn_blocking(move || {
            infergate_policy::estimate::warm_up_for(models.iter().map(|m| &**m));
        }));
    }
    // Not kept: a reload must be able to free this snapshot.
    drop(snap);
    if let (Some(path), Some(interval)) = (opts.config_path, reload_interval) {
        let g = gw.clone();
        background.push(infergate_control::watch::spawn_watcher(
            path,
            interval,
            opts.config_fingerprint,
            move |r| {
                let g = g.clone();
                tokio::spawn(async move { g.on_reload(r).await });
            },
        ));
    }
    gw.ready.store(true, Ordering::Relaxed);
    tracing::info!(%listen_addr, %admin_addr, "infergate gateway listening");
    Ok(RunningGateway {
        gateway: gw,
        listen_addr,
        admin_addr,
        shutdown: tx,
        servers: vec![data, admin_srv],
        background,
    })
}
