//! The immutable configuration snapshot the data plane serves from.
//!
//! A [`Snapshot`] is built from a validated `ConfigSet` and swapped in atomically (`arc-swap`).
//! Each request loads the current one once and keeps its `Arc` until the response ends, so a
//! reload never changes a request half-way and in-flight requests finish on the old snapshot.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use infergate_control::{AppProtocol, CircuitSettings, ConfigSet, RouteTable, RouteUpstream};
use infergate_scheduler::{Endpoint, EndpointRegistry, PoolScheduler, SchedulerRegistry};

use crate::metrics::Label;
use crate::upstream::backend::{BackendClient, BackendRuntime};
use crate::upstream::circuit::{Circuit, CircuitRegistry};
use crate::upstream::credentials::CredentialStore;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Pooled HTTP clients to model servers: HTTP/1.1 and h2c (prior knowledge).
pub struct Upstreams {
    pub http1: HttpClient,
    pub h2c: HttpClient,
    pub connect_timeout: Duration,
}

impl Upstreams {
    pub fn new(connect_timeout: Duration) -> Self {
        let connector = || {
            let mut c = HttpConnector::new();
            c.set_nodelay(true);
            c.set_connect_timeout(Some(connect_timeout));
            c.enforce_http(true);
            c
        };
        let http1 = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(4096)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector());
        let h2c = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector());
        Self {
            http1,
            h2c,
            connect_timeout,
        }
    }

    pub fn client(&self, protocol: AppProtocol) -> &HttpClient {
        match protocol {
            AppProtocol::Http1 => &self.http1,
            AppProtocol::H2c => &self.h2c,
        }
    }
}

/// One InferencePool at run time.
pub struct PoolRuntime {
    pub name: Arc<str>,
    pub label: Label,
    pub endpoints: Vec<Endpoint>,
    /// Admission, flow control and endpoint picking for this pool.
    pub scheduler: Arc<PoolScheduler>,
    pub protocol: AppProtocol,
    /// `gen_ai.provider.name` for requests served by this pool (the engine type).
    pub provider: Label,
    pub circuit: Arc<Circuit>,
}

/// State that outlives snapshots: endpoint health, circuits, credentials.
pub struct Shared<'a> {
    pub registry: &'a EndpointRegistry,
    pub schedulers: &'a SchedulerRegistry,
    pub circuits: &'a CircuitRegistry,
    pub credentials: &'a CredentialStore,
}

pub struct Snapshot {
    pub generation: u64,
    pub config: ConfigSet,
    pub routes: RouteTable,
    pub pools: HashMap<Arc<str>, PoolRuntime>,
    /// External provider backends.
    pub backends: HashMap<Arc<str>, BackendRuntime>,
    /// Pre-rendered `GET /v1/models` body.
    pub models_body: Bytes,
    /// Public model names, for `GET /v1/models` filtered by what a caller may use.
    pub model_names: Vec<Arc<str>>,
    /// Tenants, keys declared in config, limits, prices: what the policy stages decide from.
    pub policy: infergate_policy::access::PolicyTable,
    pub upstreams: Arc<Upstreams>,
    /// Guardrails, caches, semantic routers and collections (empty when none are configured).
    pub semantic: Arc<crate::stages::runtime::SemanticRuntime>,
    /// Model names allowed as metric label values.
    label_models: HashSet<Arc<str>>,
    other: Label,
}

impl Snapshot {
    pub fn build(
        generation: u64,
        config: ConfigSet,
        shared: &Shared<'_>,
        previous: Option<&Snapshot>,
    ) -> Self {
        let registry = shared.registry;
        let routes = RouteTable::build(&config);
        let specs: Vec<(Arc<str>, Vec<_>)> = config
            .pools
            .iter()
            .map(|p| (Arc::from(p.name.as_str()), p.endpoints.clone()))
            .collect();
        let mut resolved = registry.resolve_pools(&specs);
        let mut scheds = shared.schedulers.resolve(
            config
                .pools
                .iter()
                .map(|p| {
                    let name: Arc<str> = Arc::from(p.name.as_str());
                    let eps = resolved.get(&name).cloned().unwrap_or_default();
                    (name, eps, config.picker_for(p))
                })
                .collect(),
        );
        let pools = config
            .pools
            .iter()
            .map(|p| {
                let name: Arc<str> = Arc::from(p.name.as_str());
                let endpoints = resolved.remove(&name).unwrap_or_default();
                let engine = p
                    .endpoints
                    .first()
                    .and_then(|e| e.labels.get("inference.networking.k8s.io/engine-type"))
                    .map_or("vllm", String::as_str);
                let rt = PoolRuntime {
                    label: Label(name.clone()),
                    name: name.clone(),
                    scheduler: scheds.remove(&name).unwrap_or_else(|| {
                        Arc::new(PoolScheduler::new(
                            &name,
                            endpoints.clone(),
                            config.picker_for(p),
                        ))
                    }),
                    endpoints,
                    protocol: p.app_protocol,
                    provider: Label::from(engine),
                    circuit: shared.circuits.get(&RouteUpstream::Pool(name.clone())),
                };
                (name, rt)
            })
            .collect();
        let upstreams = match previous {
            Some(prev) if prev.upstreams.connect_timeout == config.settings.connect_timeout => {
                prev.upstreams.clone()
            }
            _ => Arc::new(Upstreams::new(config.settings.connect_timeout)),
        };
        let credentials = shared.credentials.sync(&config.backends);
        let mut backends = HashMap::new();
        for b in &config.backends {
            let name: Arc<str> = Arc::from(b.name.as_str());
            let connect = b.connect_timeout.unwrap_or(config.settings.connect_timeout);
            let proxy = BackendRuntime::effective_proxy(b, &config.settings);
            let key = (b.base_url.clone(), connect, proxy.clone());
            let reuse = previous
                .and_then(|p| p.backends.get(&name))
                .filter(|rt| rt.client_key == key)
                .map(|rt| rt.client.clone());
            let client = match reuse {
                Some(c) => c,
                None => match BackendClient::new(connect, proxy.as_deref()) {
                    Ok(c) => Arc::new(c),
                    Err(e) => {
                        tracing::error!(backend = %b.name, "backend client: {e}");
                        continue;
                    }
                },
            };
            let rt = BackendRuntime {
                provider: b.provider.provider(),
                client,
                credentials: credentials.get(&b.name).cloned(),
                circuit: shared.circuits.get(&RouteUpstream::Backend(name.clone())),
                circuit_settings: b.circuit.unwrap_or(config.settings.circuit),
                label: Label(name.clone()),
                provider_label: Label::from(b.provider_name.as_str()),
                first_token_timeout: b
                    .first_token_timeout
                    .unwrap_or(config.settings.first_token_timeout),
                stream_idle_timeout: b
                    .stream_idle_timeout
                    .unwrap_or(config.settings.stream_idle_timeout),
                client_key: key,
                spec: b.clone(),
            };
            backends.insert(name, rt);
        }
        let mut data: Vec<serde_json::Value> = routes
            .model_names()
            .iter()
            .map(|m| {
                serde_json::json!({"id": &**m, "object": "model", "created": 0, "owned_by": "infergate"})
            })
            .collect();
        // Semantic routers are public models too.
        for r in &config.semantic_routers {
            data.push(serde_json::json!({"id": r.name, "object": "model", "created": 0, "owned_by": "infergate"}));
        }
        let models_body = Bytes::from(
            serde_json::to_vec(&serde_json::json!({"object": "list", "data": data}))
                .unwrap_or_default(),
        );
        let model_names = routes.model_names().to_vec();
        let policy = infergate_policy::access::PolicyTable::compile(&config);
        let mut label_models: HashSet<Arc<str>> = routes
            .known_target_models()
            .into_iter()
            .map(|m| Arc::from(m.as_str()))
            .collect();
        for r in &config.semantic_routers {
            label_models.insert(Arc::from(r.name.as_str()));
        }
        Self {
            generation,
            config,
            routes,
            pools,
            backends,
            models_body,
            model_names,
            policy,
            upstreams,
            semantic: previous.map_or_else(Default::default, |p| p.semantic.clone()),
            label_models,
            other: Label::from("other"),
        }
    }

    /// A metric label for a target model name: itself when the configuration knows it, `other`
    /// otherwise (a header can force any name; labels must stay bounded).
    pub fn model_label(&self, model: &str) -> Label {
        match self.label_models.get(model) {
            Some(m) => Label(m.clone()),
            None => self.other.clone(),
        }
    }

    /// The circuit of a target and the settings it runs with.
    pub fn circuit(&self, upstream: &RouteUpstream) -> (Arc<Circuit>, CircuitSettings) {
        match upstream {
            RouteUpstream::Pool(p) => match self.pools.get(p) {
                Some(rt) => (rt.circuit.clone(), self.config.settings.circuit),
                None => (Arc::new(Circuit::default()), self.config.settings.circuit),
            },
            RouteUpstream::Backend(b) => match self.backends.get(b) {
                Some(rt) => (rt.circuit.clone(), rt.circuit_settings),
                None => (Arc::new(Circuit::default()), self.config.settings.circuit),
            },
        }
    }

    pub fn settings(&self) -> &infergate_control::Settings {
        &self.config.settings
    }

    /// The `GET /v1/models` body listing only `names`.
    pub fn models_body_for(names: &[&Arc<str>]) -> Bytes {
        let data: Vec<serde_json::Value> = names
            .iter()
            .map(|m| {
                serde_json::json!({"id": &***m, "object": "model", "created": 0, "owned_by": "infergate"})
            })
            .collect();
        Bytes::from(
            serde_json::to_vec(&serde_json::json!({"object": "list", "data": data}))
                .unwrap_or_default(),
        )
    }
}
