//! The one call from the protocol handling into scheduling: "which endpoints of which pool should
//! serve this request", plus the "request finished" report. The ext_proc state machine only
//! knows the [`EndpointPicker`] trait; [`ConfigPicker`] implements it on the configuration
//! (`crates/control`) and the scheduler's profiles (`crates/scheduler`).
//!
//! Which pool a request belongs to (one picker serves every pool in its configuration):
//! 1. the pool the proxy names for the route (gRPC metadata `x-infergate-pool`, or metadata
//!    `infergate.pool`), with the model rewritten by that pool's `InferenceModelRewrite` rules;
//! 2. otherwise the model name in the body, through the same routing table the gateway uses
//!    (`PublicModel`, `InferenceModel`, `InferenceModelRewrite`): the first target pool that has
//!    a candidate, then its fallbacks in order;
//! 3. a request without a body (GET) goes to the only pool when there is one.
//!
//! Inside a pool, the decision is the scheduler crate's [`PoolScheduler::schedule`] — the same
//! admission, flow control (priority bands, fairness, TTL) and `Filter → Scorer → Picker`
//! profile the gateway's own data plane runs, configured by the pool's `EndpointPickerConfig`.
//! A sheddable request on a saturated pool gets 429; others may wait for capacity.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use arc_swap::ArcSwap;
use infergate_control::{ConfigSet, RouteError, RouteTable};
use infergate_protocol::Usage;
use infergate_scheduler::{
    Endpoint, EndpointRegistry, InFlight, PoolScheduler, PromptKind, RequestUsage,
    SchedulerRegistry, SchedulingError, SchedulingRequest, DEFAULT_FLOW,
};

/// What the protocol layer learned about a request, for scheduling.
#[derive(Debug, Clone, Copy, Default)]
pub struct PickRequest<'a> {
    /// The `model` of the body; empty for a request without a body.
    pub model: &'a str,
    /// `x-gateway-model-name-rewrite`.
    pub rewrite_header: Option<&'a str>,
    /// `x-gateway-inference-objective`.
    pub objective: Option<&'a str>,
    /// `x-gateway-inference-fairness-id`.
    pub fairness_id: Option<&'a str>,
    /// The pool named by the proxy for this route.
    pub pool: Option<&'a str>,
    /// Endpoints the picker must choose from (subset hint, or the test selection header):
    /// `ip:port` matches that endpoint, a bare `ip` every port of it.
    pub subset: Option<&'a [String]>,
    /// Raw prompt bytes (prefix affinity).
    pub prompt: &'a [u8],
    /// What the prompt bytes are (chat messages, completion prompt, other).
    pub prompt_kind: PromptKind,
    /// `max_tokens` of the body (the token estimate for the concurrency detector).
    pub max_tokens: Option<u64>,
    /// Body size (flow-control byte limits).
    pub size_bytes: u64,
}

/// The decision.
#[derive(Debug)]
pub struct Picked<T> {
    pub pool: Arc<str>,
    /// The name the client asked for (responses are rewritten back to it).
    pub public_model: Option<Arc<str>>,
    /// The name to put in the upstream body.
    pub target_model: Option<String>,
    /// Primary first, then fallbacks (`ip:port`).
    pub endpoints: Vec<Arc<str>>,
    pub priority: i32,
    /// The `priority` to put in the upstream body (vLLM's, lower = sooner) when the pool's
    /// `flowControl.enginePriority` is on.
    pub engine_priority: Option<i64>,
    /// Held until the response ends; reports the request as finished when dropped.
    pub ticket: T,
}

/// Why no endpoint was picked. Mapped to a status and an OpenAI-style body in `error.rs`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PickError {
    #[error(transparent)]
    UnknownModel(#[from] RouteError),
    #[error("the proxy routed this request to pool `{pool}`, which this endpoint picker does not know (it knows: {known})")]
    UnknownPool { pool: String, known: String },
    #[error("{0}")]
    NoEndpoint(String),
    #[error("pool `{pool}` is saturated and the request is sheddable (priority {priority})")]
    Shed { pool: String, priority: i32 },
    /// Flow control refused or gave up: queue full (429) or waited past the TTL (503).
    #[error(transparent)]
    Queue(SchedulingError),
    #[error("a request without a body does not name a model, and this endpoint picker serves {pools} pools")]
    NoPool { pools: usize },
}

/// What happened to a request, reported when it finishes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Finished {
    pub status: u16,
    pub usage: Option<Usage>,
}

/// The per-request handle the scheduler gets back when the request ends.
pub trait Ticket: Send + 'static {
    /// The proxy reports which endpoint really served (it may have moved down the fallback list).
    fn served_by(&mut self, endpoint: &str);
    /// The response's first body bytes passed (or an answer without a body, or an error): the
    /// request no longer holds the engine's prefill. Called once or more.
    fn first_byte(&mut self) {}
    /// The response ended (or the stream went away).
    fn finish(self, outcome: Finished);
}

/// Scheduling as the protocol layer sees it.
pub trait EndpointPicker: Send + Sync + 'static {
    type Ticket: Ticket;
    fn schedule(
        &self,
        req: &PickRequest<'_>,
    ) -> impl Future<Output = Result<Picked<Self::Ticket>, PickError>> + Send;
    /// Largest request body accepted (413 beyond).
    fn max_body_bytes(&self) -> usize;
    /// Whether the configuration has been loaded (gRPC readiness).
    fn ready(&self) -> bool;
}

/// One place to try: (pool, public model, target model).
type Attempt = (Arc<str>, Option<Arc<str>>, Option<String>);

struct PickerState {
    routes: RouteTable,
    pools: HashMap<Arc<str>, Arc<PoolScheduler>>,
    pool_names: Vec<Arc<str>>,
    max_body: usize,
}

/// The picker on the configuration and the scheduler crate's [`PoolScheduler`]s.
pub struct ConfigPicker {
    state: ArcSwap<PickerState>,
    registry: EndpointRegistry,
    schedulers: SchedulerRegistry,
}

impl ConfigPicker {
    /// Build the pools' schedulers (their metric scrapers start when a tokio runtime is
    /// running).
    pub fn new(config: &ConfigSet) -> Self {
        let registry = EndpointRegistry::default();
        let schedulers = SchedulerRegistry::default();
        let state = build_state(config, &registry, &schedulers);
        Self {
            state: ArcSwap::from_pointee(state),
            registry,
            schedulers,
        }
    }

    /// Swap in a new configuration; endpoint state, queues and prefix indexes carry over.
    pub fn apply(&self, config: &ConfigSet) {
        self.state.store(Arc::new(build_state(
            config,
            &self.registry,
            &self.schedulers,
        )));
    }

    pub fn pool_names(&self) -> Vec<Arc<str>> {
        self.state.load().pool_names.clone()
    }

    /// The scheduler of `pool` (saturation and queue statistics for metrics and tests).
    pub fn scheduler(&self, pool: &str) -> Option<Arc<PoolScheduler>> {
        self.state.load().pools.get(pool).cloned()
    }

    /// Requests in flight per endpoint of `pool` (for metrics and tests).
    pub fn in_flight(&self, pool: &str) -> Vec<(Arc<str>, u32)> {
        self.scheduler(pool)
            .map(|p| {
                p.endpoints()
                    .iter()
                    .map(|e| (e.host_port.clone(), e.in_flight()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Which (pool, public model, target model) to try, in order, and the request's priority.
    fn attempts(
        state: &PickerState,
        req: &PickRequest<'_>,
    ) -> Result<(Vec<Attempt>, i32), PickError> {
        let mut rng = rand::rng();
        let mut attempts: Vec<Attempt> = Vec::new();
        let mut priority = 0;
        // A gateway that names no pool but sends a subset hint (the pool's endpoints) names the
        // pool that way: use it when exactly one pool has endpoints in the subset.
        let inferred = match (req.pool, req.subset) {
            (None, Some(subset)) => {
                let mut hits = state.pool_names.iter().filter(|name| {
                    state
                        .pools
                        .get(*name)
                        .is_some_and(|p| p.endpoints().iter().any(|e| in_subset(e, subset)))
                });
                match (hits.next(), hits.next()) {
                    (Some(only), None) => Some(only.clone()),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(pool) = req.pool.or(inferred.as_deref()) {
            let Some((name, _)) = state.pools.get_key_value(pool) else {
                return Err(PickError::UnknownPool {
                    pool: pool.to_string(),
                    known: join(&state.pool_names),
                });
            };
            if req.model.is_empty() {
                attempts.push((name.clone(), None, None));
            } else {
                let d = state.routes.resolve_in_pool(
                    name,
                    req.model,
                    req.rewrite_header,
                    req.objective,
                    &mut rng,
                );
                priority = d.priority;
                // Only pool targets: the proxy reaches external backends on its own routes.
                for a in d.attempts {
                    if let Some(p) = a.pool().cloned() {
                        attempts.push((p, Some(d.public_model.clone()), Some(a.model)));
                    }
                }
            }
        } else if req.model.is_empty() {
            if state.pool_names.len() != 1 {
                return Err(PickError::NoPool {
                    pools: state.pool_names.len(),
                });
            }
            attempts.push((state.pool_names[0].clone(), None, None));
        } else {
            let d = state
                .routes
                .resolve(req.model, req.rewrite_header, req.objective, &mut rng)?;
            priority = d.priority;
            for a in d.attempts {
                if let Some(p) = a.pool().cloned() {
                    attempts.push((p, Some(d.public_model.clone()), Some(a.model)));
                }
            }
        }
        Ok((attempts, priority))
    }

    async fn pick(&self, req: &PickRequest<'_>) -> Result<Picked<InFlightTicket>, PickError> {
        let state = self.state.load_full();
        let (attempts, priority) = Self::attempts(&state, req)?;
        let mut reasons = Vec::new();
        for (pool_name, public_model, target_model) in attempts {
            let Some(pool) = state.pools.get(&pool_name) else {
                reasons.push(format!(
                    "pool `{pool_name}` is not served by this endpoint picker"
                ));
                continue;
            };
            // The proxy's subset (bare addresses match every port) as the pool's `host:port`s.
            let endpoints = pool.endpoints();
            let subset: Option<Vec<&str>> = req.subset.map(|subset| {
                endpoints
                    .iter()
                    .filter(|e| in_subset(e, subset))
                    .map(|e| &*e.host_port)
                    .collect()
            });
            if endpoints.is_empty() || subset.as_ref().is_some_and(Vec::is_empty) {
                reasons.push(if endpoints.is_empty() {
                    format!("pool `{pool_name}` has no endpoints")
                } else {
                    format!(
                        "none of the {} endpoints of pool `{pool_name}` is in the subset the proxy allowed",
                        endpoints.len()
                    )
                });
                continue;
            }
            let target = target_model.as_deref().unwrap_or(req.model);
            let sreq = SchedulingRequest {
                request_id: "",
                target_model: target,
                prompt: req.prompt,
                prompt_kind: req.prompt_kind,
                priority,
                fairness_id: req
                    .fairness_id
                    .filter(|f| !f.is_empty() && f.len() <= 256)
                    .unwrap_or(DEFAULT_FLOW),
                size_bytes: req.size_bytes,
                estimated_tokens: req.prompt.len() as u64 / 4 + req.max_tokens.unwrap_or(256),
                subset: subset.as_deref(),
                exclude: &[],
                min_endpoints: 0,
            };
            match pool.schedule(&sreq).await {
                Ok(mut scheduled) => {
                    let primary = scheduled.primary.clone();
                    let guard = scheduled.begin(&primary);
                    return Ok(Picked {
                        endpoints: scheduled.endpoints().map(|e| e.host_port.clone()).collect(),
                        pool: pool_name,
                        public_model,
                        target_model,
                        priority,
                        engine_priority: pool
                            .config()
                            .flow_control
                            .engine_priority
                            .then(|| -i64::from(priority)),
                        ticket: InFlightTicket {
                            guard: Some(guard),
                            pool_endpoints: endpoints,
                        },
                    });
                }
                Err(SchedulingError::Shed { pool, .. }) => {
                    return Err(PickError::Shed { pool, priority });
                }
                Err(
                    e @ (SchedulingError::QueueFull { .. } | SchedulingError::QueueTimeout { .. }),
                ) => {
                    return Err(PickError::Queue(e));
                }
                Err(
                    e @ (SchedulingError::NoEndpoints { .. }
                    | SchedulingError::NoCandidates { .. }
                    | SchedulingError::AllExcluded { .. }),
                ) => reasons.push(e.to_string()),
            }
        }
        Err(PickError::NoEndpoint(reasons.join("; ")))
    }
}

impl EndpointPicker for ConfigPicker {
    type Ticket = InFlightTicket;

    fn schedule(
        &self,
        req: &PickRequest<'_>,
    ) -> impl Future<Output = Result<Picked<InFlightTicket>, PickError>> + Send {
        self.pick(req)
    }

    fn max_body_bytes(&self) -> usize {
        self.state.load().max_body
    }

    fn ready(&self) -> bool {
        true
    }
}

fn join(names: &[Arc<str>]) -> String {
    if names.is_empty() {
        return "none".into();
    }
    names.iter().map(|n| &**n).collect::<Vec<_>>().join(", ")
}

/// `ip:port` matches exactly; a bare address matches every port of it (the anchor's test
/// header carries IPs only).
fn in_subset(e: &Endpoint, subset: &[String]) -> bool {
    subset.iter().any(|s| {
        let s = s.trim();
        s == &*e.host_port || s == e.spec.address || s.trim_matches(['[', ']']) == e.spec.address
    })
}

fn build_state(
    config: &ConfigSet,
    registry: &EndpointRegistry,
    schedulers: &SchedulerRegistry,
) -> PickerState {
    let specs: Vec<(Arc<str>, Vec<_>)> = config
        .pools
        .iter()
        .map(|p| (Arc::from(p.name.as_str()), p.endpoints.clone()))
        .collect();
    let resolved = registry.resolve_pools(&specs);
    let pools = schedulers.resolve(
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
    let mut pool_names: Vec<Arc<str>> = pools.keys().cloned().collect();
    pool_names.sort();
    PickerState {
        routes: RouteTable::build(config),
        pools,
        pool_names,
        max_body: usize::try_from(config.settings.max_request_body).unwrap_or(usize::MAX),
    }
}

/// Counts the request in flight at the endpoint that serves it, until the response ends.
#[derive(Debug)]
pub struct InFlightTicket {
    guard: Option<InFlight>,
    pool_endpoints: Arc<Vec<Endpoint>>,
}

impl Ticket for InFlightTicket {
    fn served_by(&mut self, endpoint: &str) {
        let (Some(guard), Some(e)) = (
            self.guard.as_mut(),
            self.pool_endpoints
                .iter()
                .find(|e| &*e.host_port == endpoint),
        ) else {
            return;
        };
        // Move the count to where the request really is.
        guard.move_to(e);
    }

    fn first_byte(&mut self) {
        if let Some(g) = self.guard.as_mut() {
            g.first_byte();
        }
    }

    fn finish(mut self, outcome: Finished) {
        // Usage feeds the pool's cache statistics; dropping the guard ends the in-flight count
        // and lets flow control dispatch the next waiting request.
        if let Some(guard) = self.guard.take() {
            guard.finish(outcome.usage.map(|u| RequestUsage {
                prompt_tokens: u.input_tokens,
                cached_tokens: u.cached_input_tokens,
                output_tokens: u.output_tokens,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use infergate_control::load_str;

    const CFG: &str = r#"
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: pool-a}
spec:
  selector: {matchLabels: {app: a}}
  targetPorts: [{number: 8000}]
  endpoints: [{address: 10.0.0.1}, {address: 10.0.0.2}, {address: 10.0.0.3}]
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: pool-b}
spec:
  selector: {matchLabels: {app: b}}
  targetPorts: [{number: 9000}]
  endpoints: [{address: 10.0.1.1}]
---
apiVersion: infergate.dev/v1alpha1
kind: PublicModel
metadata: {name: chat}
spec:
  targets: [{pool: pool-a, model: llama}]
  fallbacks: [{pool: pool-b, model: small}]
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModelRewrite
metadata: {name: b-rewrite}
spec:
  poolRef: {name: pool-b}
  rules:
  - matches: [{model: {value: summarize}}]
    targets: [{modelRewrite: summarize-lora}]
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceObjective
metadata: {name: batch}
spec: {priority: -1, poolRef: {name: pool-a}}
"#;

    /// Saturation at one request in flight per endpoint; three endpoints listed per decision.
    const SMALL_POOLS: &str = r#"
---
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: concurrency-detector
  parameters: {maxConcurrency: 1}
- type: max-score-picker
  parameters: {maxNumOfEndpoints: 3}
saturationDetector: {pluginRef: concurrency-detector}
flowControl: {defaultRequestTTL: 200ms}
"#;

    fn picker(max: u32) -> ConfigPicker {
        let cfg = if max == 1 {
            format!("{CFG}{SMALL_POOLS}")
        } else {
            CFG.replace("{maxConcurrency: 1}", "{maxConcurrency: 100}")
                + &SMALL_POOLS.replace("maxConcurrency: 1}", "maxConcurrency: 100}")
        };
        ConfigPicker::new(&load_str("t.yaml", &cfg).unwrap())
    }

    fn pick(p: &ConfigPicker, r: PickRequest<'_>) -> Result<Picked<InFlightTicket>, PickError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(p.pick(&r))
    }

    #[test]
    fn model_routes_to_its_pool_with_fallbacks_listed() {
        let p = picker(100);
        let got = pick(
            &p,
            PickRequest {
                model: "chat",
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(&*got.pool, "pool-a");
        assert_eq!(got.target_model.as_deref(), Some("llama"));
        assert_eq!(got.endpoints.len(), 3);
        assert!(got.endpoints.iter().all(|e| e.starts_with("10.0.0.")));
    }

    #[test]
    fn pool_named_by_the_proxy_wins_and_applies_its_rewrites() {
        let p = picker(100);
        let got = pick(
            &p,
            PickRequest {
                model: "summarize",
                pool: Some("pool-b"),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(&*got.pool, "pool-b");
        assert_eq!(got.target_model.as_deref(), Some("summarize-lora"));
        assert_eq!(&*got.endpoints[0], "10.0.1.1:9000");
        let e = pick(
            &p,
            PickRequest {
                model: "chat",
                pool: Some("nope"),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(matches!(e, PickError::UnknownPool { .. }), "{e}");
    }

    #[test]
    fn subset_is_respected_and_an_empty_match_moves_to_the_fallback_pool() {
        let p = picker(100);
        let subset = vec!["10.0.0.2:8000".to_string()];
        for _ in 0..20 {
            let got = pick(
                &p,
                PickRequest {
                    model: "chat",
                    subset: Some(&subset),
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(got.endpoints, vec![Arc::<str>::from("10.0.0.2:8000")]);
        }
        // Bare IPs match every port of that address.
        let subset = vec!["10.0.1.1".to_string()];
        let got = pick(
            &p,
            PickRequest {
                model: "chat",
                subset: Some(&subset),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(&*got.pool, "pool-b");
        assert_eq!(got.target_model.as_deref(), Some("small"));
        let subset = vec!["192.168.9.9:1".to_string()];
        let e = pick(
            &p,
            PickRequest {
                model: "chat",
                subset: Some(&subset),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(matches!(e, PickError::NoEndpoint(_)), "{e}");
    }

    #[test]
    fn a_subset_hint_alone_names_the_pool() {
        let p = picker(100);
        // `summarize` is not routed by model, but the hint holds pool-b's endpoint only:
        // pool-b's rewrite rules apply.
        let subset = vec!["10.0.1.1:9000".to_string()];
        let got = pick(
            &p,
            PickRequest {
                model: "summarize",
                subset: Some(&subset),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(&*got.pool, "pool-b");
        assert_eq!(got.target_model.as_deref(), Some("summarize-lora"));
    }

    #[test]
    fn sheddable_requests_are_shed_only_when_saturated() {
        let p = picker(1);
        let req = PickRequest {
            model: "chat",
            objective: Some("batch"),
            ..Default::default()
        };
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(pick(&p, req).unwrap());
        }
        // Three endpoints, one request each: saturated.
        let e = pick(&p, req).unwrap_err();
        assert!(matches!(e, PickError::Shed { priority: -1, .. }), "{e}");
        // Non-sheddable traffic waits in its band instead; here nothing frees up within the
        // TTL, so it times out with 503.
        let e = pick(
            &p,
            PickRequest {
                model: "chat",
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(e, PickError::Queue(SchedulingError::QueueTimeout { .. })),
            "{e}"
        );
        assert_eq!(
            crate::error::EppError::from(e).to_api().status.as_u16(),
            503
        );
        held.pop().unwrap().ticket.finish(Finished::default());
        assert!(pick(&p, req).is_ok());
    }

    #[test]
    fn served_endpoint_moves_the_in_flight_count() {
        let p = picker(100);
        let mut got = pick(
            &p,
            PickRequest {
                model: "chat",
                ..Default::default()
            },
        )
        .unwrap();
        let primary = got.endpoints[0].clone();
        let other = got.endpoints[1].clone();
        got.ticket.served_by(&other);
        let counts: HashMap<_, _> = p.in_flight("pool-a").into_iter().collect();
        assert_eq!(counts[&primary], 0);
        assert_eq!(counts[&other], 1);
        // The prefill-in-progress count moved too, and ends with the first byte.
        let awaiting = |hp: &str| {
            p.scheduler("pool-a")
                .unwrap()
                .endpoints()
                .iter()
                .find(|e| &*e.host_port == hp)
                .unwrap()
                .awaiting_first_byte()
        };
        assert_eq!((awaiting(&primary), awaiting(&other)), (0, 1));
        got.ticket.first_byte();
        assert_eq!(awaiting(&other), 0);
        assert_eq!(p.in_flight("pool-a").len(), 3);
        got.ticket.finish(Finished::default());
        assert!(p.in_flight("pool-a").iter().all(|(_, n)| *n == 0));
    }

    #[test]
    fn unknown_model_and_bodyless_requests() {
        let p = picker(100);
        let e = pick(
            &p,
            PickRequest {
                model: "gpt-9",
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(matches!(e, PickError::UnknownModel(_)));
        let e = pick(&p, PickRequest::default()).unwrap_err();
        assert_eq!(e, PickError::NoPool { pools: 2 });
        let got = pick(
            &p,
            PickRequest {
                pool: Some("pool-b"),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(got.target_model, None);
    }
}
