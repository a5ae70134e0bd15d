//! [`PoolScheduler`]: the one entry point for picking endpoints in a pool, used by infergate's own
//! data plane and by the Endpoint Picker (`infergate epp`) alike.
//!
//! It owns the pool's endpoints and their live signals (the metrics scraper, the KV-event
//! subscription), the configured profile, the saturation detector and the flow-control queues.
//! [`PoolScheduler::schedule`] is admission + flow control + pick; the returned
//! [`ScheduledEndpoints`] carries the primary endpoint (already counted in flight) and ordered
//! fallbacks, and [`ScheduledEndpoints::begin`] marks the endpoint a request is actually sent
//! to. The [`InFlight`] guard it returns is the "request finished" hook: dropping it (or
//! [`InFlight::finish`] with the usage) uncounts the request and lets flow control dispatch the
//! next waiter.
//!
//! The decision itself ([`SchedulingProfile::run`]) is synchronous and lock-light; the only
//! await is the flow-control wait, which holds no lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use infergate_control::picker::{PickerConfig, PluginInstance, PluginKind, SaturationConfig};
use parking_lot::Mutex;

use crate::endpoint::{now_ms, Endpoint, InFlight, RequestUsage};
use crate::flow::{Admission, BandStats, FlowControl, Go, Refusal};
use crate::kv_subscriber::{subscribe, subscribe_connect, KvSubscription};
use crate::plugins::{
    ApproxPrefixScorer, HealthyFilter, InFlightScorer, KvCacheScorer, LoraAffinityScorer,
    MaxScorePicker, PrecisePrefixScorer, PrefillScorer, QueueScorer, RandomPicker,
    RoundRobinPicker, UtilizationFilter, WeightedRandomPicker,
};
use crate::prefix::ApproxPrefixIndex;
use crate::profile::{CycleState, Filter, Picker, SchedulingProfile, SchedulingRequest, Scorer};
use crate::saturation::SaturationDetector;
use crate::signals::EngineCatalog;

/// Why no endpoint was scheduled. [`SchedulingError::status`] is the HTTP status the anchor's
/// protocol gives each case.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchedulingError {
    #[error("pool `{pool}` has no endpoints")]
    NoEndpoints { pool: String },
    #[error("none of pool `{pool}`'s endpoints is in the requested subset ({subset})")]
    NoCandidates { pool: String, subset: String },
    #[error("every endpoint of pool `{pool}` was already tried ({total})")]
    AllExcluded { pool: String, total: usize },
    #[error("pool `{pool}` is saturated (saturation {saturation:.2}{}) and the request is sheddable (priority < 0)", reserve_note(*reserved))]
    Shed {
        pool: String,
        /// Of the endpoints open to sheddable requests.
        saturation: f64,
        /// Endpoints held back for non-sheddable traffic (`flowControl.nonSheddableReserve`).
        reserved: usize,
    },
    #[error("the queue of pool `{pool}` is full for priority {priority} ({limit} limit)")]
    QueueFull {
        pool: String,
        priority: i32,
        limit: &'static str,
    },
    #[error("the request waited {}s in the queue of saturated pool `{pool}` without getting an endpoint", waited.as_secs_f64().round())]
    QueueTimeout { pool: String, waited: Duration },
}

fn reserve_note(reserved: usize) -> String {
    if reserved == 0 {
        String::new()
    } else {
        format!(
            " over the endpoints open to sheddable requests; {reserved} reserved for non-sheddable traffic"
        )
    }
}

impl SchedulingError {
    /// 503 when no endpoint can take the request or it timed out in the queue; 429 when it was
    /// shed or the queue is full (GIE protocol §2.4).
    pub fn status(&self) -> u16 {
        match self {
            SchedulingError::Shed { .. } | SchedulingError::QueueFull { .. } => 429,
            _ => 503,
        }
    }
}

/// One pool's runtime, built from its `EndpointPickerConfig`.
struct Runtime {
    config: Arc<PickerConfig>,
    profile: SchedulingProfile,
    detector: SaturationDetector,
    catalog: Arc<EngineCatalog>,
    approx: Option<Arc<ApproxPrefixScorer>>,
    precise: Option<(Arc<PrecisePrefixScorer>, Arc<KvSubscription>)>,
}

/// Shares one scorer between the profile and the pool (which records what the scorer needs
/// after the request is sent).
struct SharedScorer<T>(Arc<T>);

impl<T: Scorer> Scorer for SharedScorer<T> {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn score(&self, cx: &CycleState<'_>, candidates: &[Endpoint], out: &mut [f64]) {
        self.0.score(cx, candidates, out);
    }
}

fn build_runtime(config: Arc<PickerConfig>, approx_index: &Arc<ApproxPrefixIndex>) -> Runtime {
    let detector = match &config.saturation {
        SaturationConfig::Utilization(p) => SaturationDetector::Utilization(p.clone()),
        SaturationConfig::Concurrency(p) => SaturationDetector::Concurrency(p.clone()),
    };
    let mut filters: Vec<Box<dyn Filter>> = vec![Box::new(HealthyFilter)];
    for f in &config.profile.filters {
        if let PluginKind::UtilizationDetector(p) = &f.kind {
            filters.push(Box::new(UtilizationFilter {
                name: f.name.clone(),
                params: p.clone(),
            }));
        }
    }
    let mut approx = None;
    let mut precise = None;
    let mut scorers: Vec<(Box<dyn Scorer>, f64)> = Vec::new();
    for (PluginInstance { name, kind }, weight) in &config.profile.scorers {
        let scorer: Box<dyn Scorer> = match kind {
            PluginKind::QueueScorer => Box::new(QueueScorer),
            PluginKind::KvCacheUtilizationScorer => Box::new(KvCacheScorer),
            PluginKind::RunningRequestsScorer => Box::new(InFlightScorer),
            PluginKind::LoraAffinityScorer => Box::new(LoraAffinityScorer),
            PluginKind::PrefillScorer => Box::new(PrefillScorer),
            PluginKind::PrefixCacheScorer(p) => {
                let s = Arc::new(ApproxPrefixScorer {
                    name: name.clone(),
                    params: p.clone(),
                    index: approx_index.clone(),
                });
                approx = Some(s.clone());
                Box::new(SharedScorer(s))
            }
            PluginKind::PrecisePrefixCacheScorer(p) => {
                let sub = if p.zmq_connect.is_empty() {
                    subscribe(&p.zmq_endpoint, &p.topic_filter)
                } else {
                    subscribe_connect(&p.zmq_connect, &p.topic_filter)
                };
                let s = Arc::new(PrecisePrefixScorer {
                    name: name.clone(),
                    params: p.clone(),
                    index: sub.index.clone(),
                });
                precise = Some((s.clone(), sub));
                Box::new(SharedScorer(s))
            }
            _ => continue,
        };
        scorers.push((scorer, *weight));
    }
    let picker: Box<dyn Picker> = match &config.profile.picker.kind {
        PluginKind::RandomPicker(p) => Box::new(RandomPicker {
            max_endpoints: p.max_num_of_endpoints,
        }),
        PluginKind::WeightedRandomPicker(p) => Box::new(WeightedRandomPicker {
            max_endpoints: p.max_num_of_endpoints,
        }),
        PluginKind::RoundRobinPicker(p) => Box::new(RoundRobinPicker {
            max_endpoints: p.max_num_of_endpoints,
            next: AtomicUsize::new(0),
        }),
        PluginKind::MaxScorePicker(p) => Box::new(MaxScorePicker {
            max_endpoints: p.max_num_of_endpoints,
        }),
        _ => Box::new(MaxScorePicker { max_endpoints: 1 }),
    };
    Runtime {
        catalog: Arc::new(EngineCatalog::new(&config.extractor)),
        profile: SchedulingProfile {
            name: config.profile.name.clone(),
            filters,
            scorers,
            picker,
        },
        detector,
        approx,
        precise,
        config,
    }
}

/// What the pool shares with its background tasks and in-flight guards.
pub struct PoolShared {
    name: Arc<str>,
    endpoints: ArcSwap<Vec<Endpoint>>,
    runtime: ArcSwap<Runtime>,
    approx_index: Arc<ApproxPrefixIndex>,
    flow: FlowControl,
    prompt_tokens: AtomicU64,
    cached_tokens: AtomicU64,
    finished: AtomicU64,
    /// `now_ms()` of the last non-sheddable request (0 = none yet): the reserve is active within
    /// its window after it.
    last_non_sheddable_ms: AtomicU64,
}

/// Saturation as the two kinds of request see it.
#[derive(Debug, Clone, Copy)]
struct Saturation {
    /// The pool (non-sheddable requests).
    saturated: bool,
    /// Over the endpoints open to sheddable requests (the pool without the reserve).
    sheddable: f64,
    sheddable_saturated: bool,
    /// Endpoints reserved for non-sheddable traffic now (0 when the reserve is off or idle).
    reserved: usize,
}

/// Which of `endpoints` the non-sheddable reserve holds back: the `k` of lowest rank (a hash of
/// the address, so every replica of the gateway or picker agrees, whatever the listing order).
fn reserved_mask(endpoints: &[Endpoint], k: usize) -> Vec<bool> {
    let mut mask = vec![false; endpoints.len()];
    if k == 0 {
        return mask;
    }
    let mut order: Vec<usize> = (0..endpoints.len()).collect();
    order.sort_unstable_by_key(|&i| (endpoints[i].rank, endpoints[i].uid));
    for &i in order.iter().take(k) {
        mask[i] = true;
    }
    mask
}

impl PoolShared {
    /// Endpoints reserved for non-sheddable traffic now: the configured share while such
    /// traffic arrived within the window, else none.
    fn reserved_count(&self, rt: &Runtime, n: usize, now: u64) -> usize {
        let r = &rt.config.flow_control.reserve;
        if r.endpoint_share <= 0.0 {
            return 0;
        }
        let last = self.last_non_sheddable_ms.load(Ordering::Relaxed);
        let window = u64::try_from(r.window.as_millis()).unwrap_or(u64::MAX);
        if last == 0 || now.saturating_sub(last) > window {
            return 0;
        }
        r.reserved_of(n)
    }

    /// The pool's saturation for non-sheddable and for sheddable requests.
    fn saturation(&self, rt: &Runtime, endpoints: &[Endpoint], now: u64) -> Saturation {
        let pool = rt.detector.pool_saturation(endpoints, now);
        let limit = 1.0 + rt.detector.headroom();
        let reserved = self.reserved_count(rt, endpoints.len(), now);
        let sheddable = if reserved == 0 {
            pool
        } else {
            let mask = reserved_mask(endpoints, reserved);
            let open: Vec<Endpoint> = endpoints
                .iter()
                .zip(&mask)
                .filter(|(_, r)| !**r)
                .map(|(e, _)| e.clone())
                .collect();
            rt.detector.pool_saturation(&open, now)
        };
        Saturation {
            saturated: pool >= limit,
            sheddable,
            sheddable_saturated: sheddable >= limit,
            reserved,
        }
    }

    pub(crate) fn record_usage(&self, u: RequestUsage) {
        self.prompt_tokens
            .fetch_add(u.prompt_tokens, Ordering::Relaxed);
        self.cached_tokens
            .fetch_add(u.cached_tokens, Ordering::Relaxed);
        self.finished.fetch_add(1, Ordering::Relaxed);
    }

    /// A request ended (or a scrape landed): let flow control send the next waiter if there is
    /// room.
    pub(crate) fn on_capacity_freed(&self) {
        if self.flow.queued() > 0 {
            self.try_dispatch();
        }
    }

    pub(crate) fn try_dispatch(&self) {
        let rt = self.runtime.load();
        let eps = self.endpoints.load();
        let s = self.saturation(&rt, &eps, now_ms());
        self.flow.dispatch(s.saturated, s.sheddable_saturated);
    }

    pub(crate) fn endpoints(&self) -> Arc<Vec<Endpoint>> {
        self.endpoints.load_full()
    }

    pub(crate) fn scrape_settings(
        &self,
    ) -> (
        infergate_control::picker::MetricsSourceParams,
        Arc<EngineCatalog>,
    ) {
        let rt = self.runtime.load();
        (rt.config.metrics_source.clone(), rt.catalog.clone())
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A pool's scheduler. Cheap to share (`Arc`); keep one per pool for the life of the process
/// (indexes, queues and signals live here) and call [`PoolScheduler::update`] on reload.
pub struct PoolScheduler {
    shared: Arc<PoolShared>,
    scraper: Mutex<Option<tokio::task::AbortHandle>>,
}

impl std::fmt::Debug for PoolScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolScheduler")
            .field("pool", &self.shared.name)
            .field("endpoints", &self.shared.endpoints.load().len())
            .field("profile", &self.shared.runtime.load().profile)
            .finish()
    }
}

impl Drop for PoolScheduler {
    fn drop(&mut self) {
        if let Some(t) = self.scraper.lock().take() {
            t.abort();
        }
    }
}

/// A pool's state for metrics and autoscalers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolStats {
    /// Mean endpoint utilisation per the saturation detector (≥ 1 = saturated).
    pub saturation: f64,
    /// Waiting requests per priority band, highest first.
    pub queued: Vec<BandStats>,
    /// Prompt and cached tokens of finished requests that reported usage.
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    /// Endpoints held back from sheddable requests now (`flowControl.nonSheddableReserve`).
    pub reserved_endpoints: usize,
}

impl PoolScheduler {
    /// A scheduler for `pool` (no I/O yet: call [`PoolScheduler::start`] on a tokio runtime).
    pub fn new(pool: &str, endpoints: Vec<Endpoint>, config: Arc<PickerConfig>) -> Self {
        let approx_index = Arc::new(ApproxPrefixIndex::default());
        let rt = build_runtime(config.clone(), &approx_index);
        Self {
            shared: Arc::new(PoolShared {
                name: Arc::from(pool),
                endpoints: ArcSwap::from_pointee(endpoints),
                flow: FlowControl::new(config.flow_control.clone()),
                runtime: ArcSwap::from_pointee(rt),
                approx_index,
                prompt_tokens: AtomicU64::new(0),
                cached_tokens: AtomicU64::new(0),
                finished: AtomicU64::new(0),
                last_non_sheddable_ms: AtomicU64::new(0),
            }),
            scraper: Mutex::new(None),
        }
    }

    /// Start the metrics scraper (once) on the current tokio runtime.
    pub fn start(&self) {
        let mut s = self.scraper.lock();
        if s.is_none() {
            let weak: Weak<PoolShared> = Arc::downgrade(&self.shared);
            *s = Some(tokio::spawn(crate::scrape::run(weak)).abort_handle());
        }
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The pool's endpoints now.
    pub fn endpoints(&self) -> Arc<Vec<Endpoint>> {
        self.shared.endpoints()
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<PickerConfig> {
        self.shared.runtime.load().config.clone()
    }

    /// A reload: new endpoints and/or configuration. Queues, indexes and signals carry over;
    /// endpoints that left are forgotten by the prefix index.
    pub fn update(&self, endpoints: Vec<Endpoint>, config: Arc<PickerConfig>) {
        let old = self.shared.endpoints.load_full();
        for e in old.iter() {
            if !endpoints.iter().any(|n| Arc::ptr_eq(n, e)) {
                self.shared.approx_index.forget_endpoint(e.uid);
            }
        }
        self.shared.endpoints.store(Arc::new(endpoints));
        if *self.shared.runtime.load().config != *config {
            self.shared.flow.reconfigure(config.flow_control.clone());
            let rt = build_runtime(config, &self.shared.approx_index);
            self.shared.runtime.store(Arc::new(rt));
        }
        self.shared.try_dispatch();
    }

    /// With the precise prefix scorer: how many KV blocks its index (fed by the servers' KV
    /// events) holds for each endpoint. Every picker replica should show the same figures; a
    /// replica showing none for a busy endpoint does not receive its events.
    pub fn kv_event_blocks(&self) -> Option<Vec<(Arc<str>, usize)>> {
        let rt = self.shared.runtime.load();
        let (_, sub) = rt.precise.as_ref()?;
        Some(
            self.endpoints()
                .iter()
                .map(|e| (e.host_port.clone(), sub.index.blocks_of(&e.host_port)))
                .collect(),
        )
    }

    /// The pool's saturation, queues and cache statistics.
    pub fn stats(&self) -> PoolStats {
        let rt = self.shared.runtime.load();
        let eps = self.shared.endpoints.load();
        let now = now_ms();
        PoolStats {
            saturation: rt.detector.pool_saturation(&eps, now),
            reserved_endpoints: self.shared.reserved_count(&rt, eps.len(), now),
            queued: self.shared.flow.stats(),
            prompt_tokens: self.shared.prompt_tokens.load(Ordering::Relaxed),
            cached_tokens: self.shared.cached_tokens.load(Ordering::Relaxed),
        }
    }

    /// Whether the saturation detector says the pool is saturated now.
    pub fn is_saturated(&self) -> bool {
        let rt = self.shared.runtime.load();
        rt.detector
            .is_saturated(&self.shared.endpoints.load(), now_ms())
    }

    /// Let flow control re-check for room now (the scraper and finishing requests do this on
    /// their own; tests and feeders of metrics may call it).
    pub fn poke(&self) {
        self.shared.try_dispatch();
    }

    fn candidates(
        &self,
        endpoints: &[Endpoint],
        req: &SchedulingRequest<'_>,
    ) -> Result<Vec<Endpoint>, SchedulingError> {
        let pool = || self.shared.name.to_string();
        if endpoints.is_empty() {
            return Err(SchedulingError::NoEndpoints { pool: pool() });
        }
        let mut c: Vec<Endpoint> = match req.subset {
            Some(subset) => endpoints
                .iter()
                .filter(|e| subset.contains(&&*e.host_port))
                .cloned()
                .collect(),
            None => endpoints.to_vec(),
        };
        if c.is_empty() {
            return Err(SchedulingError::NoCandidates {
                pool: pool(),
                subset: req.subset.map(|s| s.join(",")).unwrap_or_default(),
            });
        }
        if !req.exclude.is_empty() {
            c.retain(|e| !req.exclude.iter().any(|x| Arc::ptr_eq(x, e)));
            if c.is_empty() {
                return Err(SchedulingError::AllExcluded {
                    pool: pool(),
                    total: endpoints.len(),
                });
            }
        }
        Ok(c)
    }

    /// The non-sheddable reserve, while active: a sheddable request may use only the endpoints
    /// open to it; a non-sheddable one (with `preferReserved`) the reserved ones, unless none of
    /// those has room (then any).
    fn apply_reserve(
        &self,
        rt: &Runtime,
        endpoints: &[Endpoint],
        req: &SchedulingRequest<'_>,
        candidates: &mut Vec<Endpoint>,
        now: u64,
    ) -> Result<(), SchedulingError> {
        let reserved = self.shared.reserved_count(rt, endpoints.len(), now);
        if reserved == 0 {
            return Ok(());
        }
        let mask = reserved_mask(endpoints, reserved);
        let is_reserved = |c: &Endpoint| {
            endpoints
                .iter()
                .zip(&mask)
                .any(|(e, r)| *r && Arc::ptr_eq(e, c))
        };
        if req.priority >= 0 {
            if rt.config.flow_control.reserve.prefer_reserved {
                let limit = 1.0 + rt.detector.headroom();
                let room =
                    |c: &Endpoint| !c.is_ejected() && rt.detector.endpoint_score(c, now) < limit;
                if candidates.iter().any(|c| is_reserved(c) && room(c)) {
                    candidates.retain(is_reserved);
                }
            }
            return Ok(());
        }
        candidates.retain(|c| !is_reserved(c));
        if candidates.is_empty() {
            return Err(SchedulingError::Shed {
                pool: self.shared.name.to_string(),
                saturation: 1.0,
                reserved,
            });
        }
        Ok(())
    }

    /// The decision alone — filters, scorers, picker — without admission or flow control.
    /// The primary is counted in flight as with [`PoolScheduler::schedule`].
    pub fn pick(&self, req: &SchedulingRequest<'_>) -> Result<ScheduledEndpoints, SchedulingError> {
        let endpoints = self.shared.endpoints.load_full();
        let mut candidates = self.candidates(&endpoints, req)?;
        let rt = self.shared.runtime.load_full();
        self.apply_reserve(&rt, &endpoints, req, &mut candidates, now_ms())?;
        self.pick_among(&rt, req, candidates, Duration::ZERO)
    }

    fn pick_among(
        &self,
        rt: &Arc<Runtime>,
        req: &SchedulingRequest<'_>,
        candidates: Vec<Endpoint>,
        queued_for: Duration,
    ) -> Result<ScheduledEndpoints, SchedulingError> {
        let total = candidates.len();
        let cx = CycleState::new(req, now_ms());
        let mut picked = rt
            .profile
            .run(&cx, candidates, &mut rand::rng())
            .into_iter();
        let Some(primary) = picked.next() else {
            return Err(SchedulingError::AllExcluded {
                pool: self.shared.name.to_string(),
                total,
            });
        };
        let reservation = InFlight::new(
            primary.clone(),
            req.estimated_tokens,
            Some(self.shared.clone()),
            req.priority < 0,
        );
        Ok(ScheduledEndpoints {
            primary,
            fallbacks: picked.collect(),
            queued_for,
            reservation: Some(reservation),
            tokens: req.estimated_tokens,
            sheddable: req.priority < 0,
            approx_hashes: cx.approx_hashes.into_inner(),
            precise_keys: cx.precise_keys.into_inner(),
            runtime: rt.clone(),
            shared: self.shared.clone(),
        })
    }

    /// Admission, flow control and the pick: the primary endpoint (counted in flight) and
    /// ordered fallbacks, or why there is none.
    ///
    /// - sheddable (priority < 0) while saturated → [`SchedulingError::Shed`] (429); with
    ///   `flowControl.nonSheddableReserve` active, saturated means the endpoints open to
    ///   sheddable requests, and only those are candidates;
    /// - saturated, or others already waiting → wait in the request's priority band (bounded →
    ///   [`SchedulingError::QueueFull`], 429) until capacity frees, at most the TTL
    ///   ([`SchedulingError::QueueTimeout`], 503);
    /// - no endpoint in the pool / subset → 503.
    ///
    /// Cancel-safe: dropping the future leaves the queue.
    pub async fn schedule(
        &self,
        req: &SchedulingRequest<'_>,
    ) -> Result<ScheduledEndpoints, SchedulingError> {
        let endpoints = self.shared.endpoints.load_full();
        let mut candidates = self.candidates(&endpoints, req)?;
        let rt = self.shared.runtime.load_full();
        let now = now_ms();
        if req.priority >= 0 {
            // Non-sheddable traffic is present: the reserve (if configured) holds from now.
            self.shared
                .last_non_sheddable_ms
                .store(now.max(1), Ordering::Relaxed);
        }
        let sat = self.shared.saturation(&rt, &endpoints, now);
        let shed = |s: &Saturation| SchedulingError::Shed {
            pool: self.shared.name.to_string(),
            saturation: s.sheddable,
            reserved: s.reserved,
        };
        match self.shared.flow.admit(
            req.priority,
            req.fairness_id,
            req.size_bytes,
            sat.saturated,
            sat.sheddable_saturated,
        ) {
            Admission::Now => {
                self.apply_reserve(&rt, &endpoints, req, &mut candidates, now)?;
                drop(endpoints);
                self.pick_among(&rt, req, candidates, Duration::ZERO)
            }
            Admission::Refused(Refusal::Shed) => Err(shed(&sat)),
            Admission::Refused(Refusal::QueueFull { limit }) => Err(SchedulingError::QueueFull {
                pool: self.shared.name.to_string(),
                priority: req.priority,
                limit,
            }),
            Admission::Queued { seq, rx } => {
                let started = Instant::now();
                let _ticket = Ticket {
                    shared: &self.shared,
                    seq,
                    priority: req.priority,
                    flow: req.fairness_id,
                };
                self.shared.try_dispatch();
                let ttl = self.shared.flow.request_ttl();
                match tokio::time::timeout(ttl, rx).await {
                    Ok(Ok(Go::Dispatch)) => {
                        // Pick against the endpoints and configuration of now, not of arrival.
                        let rt = self.shared.runtime.load_full();
                        let endpoints = self.shared.endpoints.load_full();
                        let mut candidates = self.candidates(&endpoints, req)?;
                        self.apply_reserve(&rt, &endpoints, req, &mut candidates, now_ms())?;
                        self.pick_among(&rt, req, candidates, started.elapsed())
                        // `_ticket` drops here: the token goes back, the next may go.
                    }
                    Ok(Ok(Go::Shed)) => {
                        let rt = self.shared.runtime.load();
                        let sat =
                            self.shared
                                .saturation(&rt, &self.shared.endpoints.load(), now_ms());
                        Err(shed(&sat))
                    }
                    Ok(Err(_)) | Err(_) => Err(SchedulingError::QueueTimeout {
                        pool: self.shared.name.to_string(),
                        waited: started.elapsed(),
                    }),
                }
            }
        }
    }
}

/// A queued request's place: leaving (TTL, client gone) removes it from the queue, and a
/// dispatched one gives the token back — either way the next waiter may go.
struct Ticket<'a> {
    shared: &'a Arc<PoolShared>,
    seq: u64,
    priority: i32,
    flow: &'a str,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.shared.flow.cancel(self.seq, self.priority, self.flow) {
            self.shared.try_dispatch();
        }
    }
}

/// The outcome of scheduling: where to send the request, best first.
pub struct ScheduledEndpoints {
    pub primary: Endpoint,
    /// In order; the data plane (or the proxy) tries them when the primary fails.
    pub fallbacks: Vec<Endpoint>,
    /// Time spent waiting in flow control (zero when admitted at once).
    pub queued_for: Duration,
    reservation: Option<InFlight>,
    tokens: u64,
    sheddable: bool,
    approx_hashes: Option<Arc<Vec<u64>>>,
    precise_keys: Option<Arc<Vec<u64>>>,
    runtime: Arc<Runtime>,
    shared: Arc<PoolShared>,
}

impl std::fmt::Debug for ScheduledEndpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScheduledEndpoints")
            .field("primary", &self.primary.host_port)
            .field(
                "fallbacks",
                &self
                    .fallbacks
                    .iter()
                    .map(|e| &*e.host_port)
                    .collect::<Vec<_>>(),
            )
            .field("queued_for", &self.queued_for)
            .finish()
    }
}

impl ScheduledEndpoints {
    /// The primary, then the fallbacks.
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        std::iter::once(&self.primary).chain(&self.fallbacks)
    }

    /// `ip:port[,ip:port…]` as `x-gateway-destination-endpoint` carries it.
    pub fn destination_header(&self) -> String {
        self.endpoints()
            .map(|e| &*e.host_port)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The request is being sent to `ep` (the primary, or a fallback after a failure): count it
    /// in flight there and remember its prefix there. Keep the guard until the response ends.
    pub fn begin(&mut self, ep: &Endpoint) -> InFlight {
        let guard = match self.reservation.take() {
            Some(r) if Arc::ptr_eq(r.endpoint(), ep) => r,
            other => {
                drop(other);
                InFlight::new(
                    ep.clone(),
                    self.tokens,
                    Some(self.shared.clone()),
                    self.sheddable,
                )
            }
        };
        if let (Some(hashes), Some(scorer)) = (&self.approx_hashes, &self.runtime.approx) {
            self.shared
                .approx_index
                .record(ep.uid, hashes, scorer.capacity(ep));
        }
        if let (Some(keys), Some((scorer, _))) = (&self.precise_keys, &self.runtime.precise) {
            let now = now_ms();
            let ttl = u64::try_from(scorer.params.speculative_ttl.get().as_millis()).unwrap_or(0);
            scorer.index.speculate(&ep.host_port, keys, now, now + ttl);
        }
        guard
    }
}

/// Keeps one [`PoolScheduler`] per pool across configuration snapshots: its queues, prefix
/// indexes and scraped signals outlive a reload.
#[derive(Default)]
pub struct SchedulerRegistry {
    by_pool: Mutex<HashMap<Arc<str>, Arc<PoolScheduler>>>,
}

impl SchedulerRegistry {
    /// The schedulers for this snapshot's pools (created and started, or updated); pools no
    /// longer configured are dropped (their scraper stops).
    pub fn resolve(
        &self,
        pools: Vec<(Arc<str>, Vec<Endpoint>, Arc<PickerConfig>)>,
    ) -> HashMap<Arc<str>, Arc<PoolScheduler>> {
        let mut map = self.by_pool.lock();
        let mut next = HashMap::new();
        for (name, endpoints, config) in pools {
            let s = match map.remove(&name) {
                Some(s) => {
                    s.update(endpoints, config);
                    s
                }
                None => {
                    let s = Arc::new(PoolScheduler::new(&name, endpoints, config));
                    if tokio::runtime::Handle::try_current().is_ok() {
                        s.start();
                    }
                    s
                }
            };
            next.insert(name, s);
        }
        *map = next.clone();
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::EndpointState;
    use crate::signals::EndpointMetrics;
    use crate::PromptKind;
    use infergate_control::EndpointSpec;

    fn eps(n: u16) -> Vec<Endpoint> {
        (0..n)
            .map(|i| {
                Arc::new(EndpointState::new(
                    "p".into(),
                    EndpointSpec {
                        name: format!("e{i}"),
                        address: "10.0.0.1".into(),
                        port: 8000 + i,
                        labels: Default::default(),
                    },
                ))
            })
            .collect()
    }

    fn load(eps: &[Endpoint], waiting: f64) {
        for e in eps {
            e.set_metrics(EndpointMetrics {
                waiting,
                ..EndpointMetrics::default()
            });
        }
    }

    fn req(priority: i32) -> SchedulingRequest<'static> {
        SchedulingRequest {
            priority,
            ..SchedulingRequest::new("m", b"hello")
        }
    }

    fn pool(n: u16) -> (PoolScheduler, Vec<Endpoint>) {
        let e = eps(n);
        load(&e, 0.0);
        (
            PoolScheduler::new("p", e.clone(), Arc::new(PickerConfig::default())),
            e,
        )
    }

    #[tokio::test]
    async fn schedule_counts_the_primary_in_flight_until_the_request_ends() {
        let (p, _) = pool(3);
        let mut s = p.schedule(&req(0)).await.unwrap();
        let primary = s.primary.clone();
        assert_eq!(primary.in_flight(), 1, "reserved at schedule time");
        let g = s.begin(&primary);
        assert_eq!(primary.in_flight(), 1, "begin takes the reservation");
        drop(s);
        g.finish(Some(RequestUsage {
            prompt_tokens: 10,
            cached_tokens: 4,
            output_tokens: 1,
        }));
        assert_eq!(primary.in_flight(), 0);
        let st = p.stats();
        assert_eq!((st.prompt_tokens, st.cached_tokens), (10, 4));
    }

    #[tokio::test]
    async fn a_fallback_begin_moves_the_count() {
        let e = eps(3);
        load(&e, 0.0);
        let mut cfg = PickerConfig::default();
        cfg.profile.picker.kind =
            PluginKind::MaxScorePicker(infergate_control::picker::PickerParams {
                max_num_of_endpoints: 3,
            });
        let p = PoolScheduler::new("p", e, Arc::new(cfg));
        let mut s = p.schedule(&req(0)).await.unwrap();
        assert_eq!(s.fallbacks.len(), 2);
        assert_eq!(s.destination_header().split(',').count(), 3);
        let fb = s.fallbacks[0].clone();
        let g = s.begin(&fb);
        assert_eq!((s.primary.in_flight(), fb.in_flight()), (0, 1));
        drop(g);
        assert_eq!(fb.in_flight(), 0);
    }

    #[tokio::test]
    async fn sheddable_requests_get_429_when_the_pool_is_saturated() {
        let (p, e) = pool(2);
        load(&e, 10.0);
        assert!(p.is_saturated());
        let err = p.schedule(&req(-1)).await.unwrap_err();
        assert!(matches!(err, SchedulingError::Shed { .. }), "{err}");
        assert_eq!(err.status(), 429);
        assert!(err.to_string().contains("saturated"));
        assert!(err.to_string().contains("sheddable"));
        // not saturated: sheddable goes through
        load(&e, 0.0);
        assert!(p.schedule(&req(-1)).await.is_ok());
    }

    #[tokio::test]
    async fn waiting_requests_go_in_priority_order_as_capacity_frees() {
        let (p, e) = pool(2);
        load(&e, 10.0);
        let p = Arc::new(p);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for prio in [0, 5, 1] {
            let (p, tx) = (p.clone(), tx.clone());
            tasks.push(tokio::spawn(async move {
                let s = p.schedule(&req(prio)).await.unwrap();
                tx.send(prio).unwrap();
                s
            }));
            tokio::task::yield_now().await;
        }
        tokio::task::yield_now().await;
        assert!(rx.try_recv().is_err(), "saturated: everybody waits");
        assert_eq!(p.stats().queued.iter().map(|b| b.requests).sum::<u64>(), 3);
        load(&e, 0.0);
        p.poke();
        let mut order = Vec::new();
        for _ in 0..3 {
            order.push(rx.recv().await.unwrap());
        }
        assert_eq!(order, vec![5, 1, 0]);
        for t in tasks {
            assert!(t.await.unwrap().queued_for > Duration::ZERO);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_waits_past_the_ttl_gets_503() {
        let e = eps(1);
        load(&e, 10.0);
        let mut cfg = PickerConfig::default();
        cfg.flow_control.request_ttl = Duration::from_millis(300);
        let p = PoolScheduler::new("p", e, Arc::new(cfg));
        let err = p.schedule(&req(0)).await.unwrap_err();
        assert!(matches!(err, SchedulingError::QueueTimeout { .. }), "{err}");
        assert_eq!(err.status(), 503);
        assert!(
            p.stats().queued.is_empty(),
            "the timed-out request left the queue"
        );
    }

    #[tokio::test]
    async fn queued_sheddable_requests_are_refused_when_saturation_sets_in() {
        let (p, e) = pool(1);
        load(&e, 10.0);
        let p = Arc::new(p);
        // a standard request waits; the pool then looks idle long enough for a sheddable one to
        // queue behind it, then saturates again
        let waiter = {
            let p = p.clone();
            tokio::spawn(async move { p.schedule(&req(0)).await.map(|_| ()) })
        };
        tokio::task::yield_now().await;
        load(&e, 0.0);
        let shed = {
            let p = p.clone();
            tokio::spawn(async move { p.schedule(&req(-1)).await.map(|_| ()) })
        };
        tokio::task::yield_now().await;
        load(&e, 10.0);
        p.poke();
        let r = shed.await.unwrap();
        assert!(
            r.is_ok() || matches!(r, Err(SchedulingError::Shed { .. })),
            "{r:?}"
        );
        load(&e, 0.0);
        p.poke();
        assert!(waiter.await.unwrap().is_ok());
    }

    fn reserve_pool(n: u16, share: f64, window: Duration) -> (PoolScheduler, Vec<Endpoint>) {
        let e = eps(n);
        load(&e, 0.0);
        let mut cfg = PickerConfig::default();
        cfg.flow_control.reserve.endpoint_share = share;
        cfg.flow_control.reserve.window = window;
        (PoolScheduler::new("p", e.clone(), Arc::new(cfg)), e)
    }

    /// Where `n` requests of `priority` go (each finished at once).
    async fn homes(p: &PoolScheduler, priority: i32, n: usize) -> Vec<u16> {
        let mut out = Vec::new();
        for _ in 0..n {
            let s = p.schedule(&req(priority)).await.unwrap();
            out.push(s.primary.spec.port);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    #[tokio::test]
    async fn the_reserve_keeps_sheddable_requests_off_a_share_of_the_pool_while_critical_traffic_is_present(
    ) {
        let (p, e) = reserve_pool(4, 0.5, Duration::from_secs(60));
        // No non-sheddable traffic yet: sheddable requests may go anywhere.
        assert_eq!(p.stats().reserved_endpoints, 0);
        assert_eq!(homes(&p, -1, 200).await.len(), 4);
        // A critical request arrives: from now on two endpoints take no sheddable request.
        drop(p.schedule(&req(10)).await.unwrap());
        assert_eq!(p.stats().reserved_endpoints, 2);
        let open = homes(&p, -1, 200).await;
        assert_eq!(open.len(), 2, "{open:?}");
        // …the same two every time (the choice is stable); critical traffic goes to the other
        // two (its home, so batch prompts do not evict its prefixes).
        assert_eq!(homes(&p, -1, 100).await, open);
        let home = homes(&p, 10, 200).await;
        assert_eq!(home.len(), 2, "{home:?}");
        assert!(home.iter().all(|h| !open.contains(h)));
        // The open endpoints saturate while the reserved ones are idle: the pool as a whole is
        // not saturated, yet sheddable requests get 429 (not a wait, not a reserved endpoint).
        for ep in e.iter().filter(|x| open.contains(&x.spec.port)) {
            ep.set_metrics(EndpointMetrics {
                waiting: 6.0,
                ..EndpointMetrics::default()
            });
        }
        assert!(!p.is_saturated(), "mean (1.2 + 1.2 + 0 + 0) / 4 < 1");
        let err = p.schedule(&req(-1)).await.unwrap_err();
        assert!(
            matches!(err, SchedulingError::Shed { reserved: 2, .. }),
            "{err:?}"
        );
        assert_eq!(err.status(), 429);
        assert!(err.to_string().contains("2 reserved"), "{err}");
        let critical = p.schedule(&req(10)).await.unwrap();
        assert!(!open.contains(&critical.primary.spec.port));
        drop(critical);
        // The reserved endpoints fill up too: critical traffic spills over to the open ones.
        for ep in e.iter().filter(|x| home.contains(&x.spec.port)) {
            ep.set_metrics(EndpointMetrics {
                waiting: 6.0,
                ..EndpointMetrics::default()
            });
        }
        for ep in e.iter().filter(|x| open.contains(&x.spec.port)) {
            ep.set_metrics(EndpointMetrics {
                waiting: 1.0,
                ..EndpointMetrics::default()
            });
        }
        let spilled = p.schedule(&req(10)).await.unwrap();
        assert!(open.contains(&spilled.primary.spec.port));
    }

    #[tokio::test]
    async fn without_prefer_reserved_critical_traffic_uses_the_whole_pool() {
        let e = eps(4);
        load(&e, 0.0);
        let mut cfg = PickerConfig::default();
        cfg.flow_control.reserve.endpoint_share = 0.5;
        cfg.flow_control.reserve.prefer_reserved = false;
        let p = PoolScheduler::new("p", e, Arc::new(cfg));
        assert_eq!(homes(&p, 10, 200).await.len(), 4);
        assert_eq!(homes(&p, -1, 200).await.len(), 2);
    }

    #[tokio::test]
    async fn the_reserve_lapses_when_critical_traffic_stops() {
        let (p, _) = reserve_pool(4, 0.25, Duration::from_millis(1));
        drop(p.schedule(&req(0)).await.unwrap());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(p.stats().reserved_endpoints, 0);
        assert_eq!(homes(&p, -1, 200).await.len(), 4);
        // Share 1: no sheddable request at all while non-sheddable traffic is present.
        let (p, _) = reserve_pool(2, 1.0, Duration::from_secs(60));
        drop(p.schedule(&req(0)).await.unwrap());
        let err = p.schedule(&req(-1)).await.unwrap_err();
        assert!(
            matches!(err, SchedulingError::Shed { reserved: 2, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn the_reserved_endpoints_do_not_depend_on_the_listing_order() {
        let e = eps(8);
        let mut rev = e.clone();
        rev.reverse();
        let pick = |list: &[Endpoint]| {
            let mut v: Vec<u16> = list
                .iter()
                .zip(reserved_mask(list, 3))
                .filter(|(_, r)| *r)
                .map(|(e, _)| e.spec.port)
                .collect();
            v.sort_unstable();
            v
        };
        assert_eq!(pick(&e).len(), 3);
        assert_eq!(pick(&e), pick(&rev));
        assert!(reserved_mask(&e, 0).iter().all(|r| !r));
    }

    #[tokio::test]
    async fn the_primary_counts_as_awaiting_its_first_byte_from_the_pick_on() {
        let (p, _) = pool(2);
        let mut s = p.schedule(&req(-1)).await.unwrap();
        let ep = s.primary.clone();
        assert_eq!(
            (ep.awaiting_first_byte(), ep.sheddable_awaiting_first_byte()),
            (1, 1),
            "reserved at schedule time, so the next pick already sees it"
        );
        let mut g = s.begin(&ep);
        assert_eq!(ep.awaiting_first_byte(), 1);
        g.first_byte();
        assert_eq!(ep.awaiting_first_byte(), 0);
        assert_eq!(ep.in_flight(), 1);
    }

    #[tokio::test]
    async fn subset_hint_limits_the_choice() {
        let (p, _) = pool(4);
        let subset = ["10.0.0.1:8002"];
        let r = SchedulingRequest {
            subset: Some(&subset),
            ..req(0)
        };
        for _ in 0..20 {
            let s = p.schedule(&r).await.unwrap();
            assert_eq!(&*s.primary.host_port, "10.0.0.1:8002");
        }
        let none = ["10.9.9.9:1"];
        let r = SchedulingRequest {
            subset: Some(&none),
            ..req(0)
        };
        let err = p.schedule(&r).await.unwrap_err();
        assert!(matches!(err, SchedulingError::NoCandidates { .. }));
        assert_eq!(err.status(), 503);
        let empty = PoolScheduler::new("p", vec![], Arc::new(PickerConfig::default()));
        assert!(matches!(
            empty.schedule(&req(0)).await,
            Err(SchedulingError::NoEndpoints { .. })
        ));
    }

    #[tokio::test]
    async fn the_default_profile_follows_a_long_shared_prefix() {
        let (p, e) = pool(4);
        let system = "You are a careful assistant. ".repeat(200);
        let prompt = |q: &str| {
            format!(
                r#"[{{"role":"system","content":"{system}"}},{{"role":"user","content":"{q}"}}]"#
            )
        };
        let first = prompt("first question");
        let r = SchedulingRequest {
            prompt_kind: PromptKind::Chat,
            ..SchedulingRequest::new("m", first.as_bytes())
        };
        let mut s = p.schedule(&r).await.unwrap();
        let chosen = s.primary.clone();
        drop(s.begin(&chosen));
        drop(s);
        // later requests sharing the system prompt go to the same endpoint, even with a
        // slightly longer queue there
        chosen.set_metrics(EndpointMetrics {
            waiting: 1.0,
            ..EndpointMetrics::default()
        });
        for q in ["second", "third", "fourth"] {
            let text = prompt(q);
            let r = SchedulingRequest {
                prompt_kind: PromptKind::Chat,
                ..SchedulingRequest::new("m", text.as_bytes())
            };
            let s = p.schedule(&r).await.unwrap();
            assert!(Arc::ptr_eq(&s.primary, &chosen), "{q}");
        }
        assert_eq!(e.len(), 4);
    }

    #[tokio::test]
    async fn reload_keeps_the_queue_and_forgets_removed_endpoints() {
        let (p, e) = pool(3);
        let mut cfg = PickerConfig::default();
        cfg.flow_control.request_ttl = Duration::from_secs(5);
        p.update(e[..2].to_vec(), Arc::new(cfg));
        assert_eq!(p.endpoints().len(), 2);
        assert_eq!(p.config().flow_control.request_ttl, Duration::from_secs(5));
        for _ in 0..10 {
            let s = p.schedule(&req(0)).await.unwrap();
            assert!(!Arc::ptr_eq(&s.primary, &e[2]));
        }
    }
}
