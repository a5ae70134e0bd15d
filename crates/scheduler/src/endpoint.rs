//! One model-server endpoint and what the gateway knows about it right now: requests it has in
//! flight there (and which of them have not produced a first byte yet: prefilling, or queued in
//! the engine), passive health (ejected after failures, back after a good probe), and the live
//! signals of its last metrics scrape.
//!
//! State lives in atomics (and one `ArcSwap` for the scraped signals) so the hot path takes no
//! lock. An [`Endpoint`] outlives configuration
//! snapshots: the registry hands the same `Arc` to every snapshot that lists the same pool and
//! address, so counts and health survive a reload.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use infergate_control::EndpointSpec;

use crate::pool::PoolShared;
use crate::signals::EndpointMetrics;

static NEXT_UID: AtomicU32 = AtomicU32::new(1);

/// Milliseconds on a process-wide monotonic clock.
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[derive(Debug)]
pub struct EndpointState {
    pub pool: Arc<str>,
    pub spec: EndpointSpec,
    /// `host:port`, as used upstream and in `x-gateway-destination-endpoint`.
    pub host_port: Arc<str>,
    /// Unique in this process; keys the endpoint in prefix indexes.
    pub uid: u32,
    /// `xxh64(host:port)`: orders a pool's endpoints the same way in every gateway or picker
    /// replica (which ones the non-sheddable reserve holds back).
    pub(crate) rank: u64,
    in_flight: AtomicU32,
    /// Estimated tokens (prompt + max output) of the requests in flight.
    in_flight_tokens: AtomicU64,
    /// Requests in flight that have not produced a first byte yet (their prefill runs or waits
    /// in the engine), and how many of those are sheddable.
    awaiting_first_byte: AtomicU32,
    sheddable_awaiting_first_byte: AtomicU32,
    metrics: ArcSwapOption<EndpointMetrics>,
    /// Monotonic ms until which the endpoint is ejected; 0 = in service.
    ejected_until: AtomicU64,
    /// Set while ejected; cleared only by a good probe or a good response.
    ejected: AtomicU32,
    consecutive_5xx: AtomicU32,
    /// Total ejections (for metrics).
    pub ejections: AtomicU64,
}

pub type Endpoint = Arc<EndpointState>;

/// Why an endpoint was ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Connect,
    Status5xx,
    Timeout,
}

impl EndpointState {
    pub fn new(pool: Arc<str>, spec: EndpointSpec) -> Self {
        let host_port = spec.host_port();
        Self {
            rank: xxhash_rust::xxh64::xxh64(host_port.as_bytes(), 0),
            host_port: Arc::from(host_port),
            pool,
            spec,
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
            in_flight: AtomicU32::new(0),
            in_flight_tokens: AtomicU64::new(0),
            awaiting_first_byte: AtomicU32::new(0),
            sheddable_awaiting_first_byte: AtomicU32::new(0),
            metrics: ArcSwapOption::empty(),
            ejected_until: AtomicU64::new(0),
            ejected: AtomicU32::new(0),
            consecutive_5xx: AtomicU32::new(0),
            ejections: AtomicU64::new(0),
        }
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn in_flight_tokens(&self) -> u64 {
        self.in_flight_tokens.load(Ordering::Relaxed)
    }

    /// This gateway's requests here that have not produced a first byte yet: dispatched and
    /// prefilling, or waiting in the engine's queue. A request counts from the moment it is
    /// scheduled here until [`InFlight::first_byte`] (or until it ends). A non-streamed response
    /// has its first byte only when it is complete, so it counts for its whole life.
    pub fn awaiting_first_byte(&self) -> u32 {
        self.awaiting_first_byte.load(Ordering::Relaxed)
    }

    /// Of [`EndpointState::awaiting_first_byte`], the sheddable ones (priority < 0).
    pub fn sheddable_awaiting_first_byte(&self) -> u32 {
        self.sheddable_awaiting_first_byte.load(Ordering::Relaxed)
    }

    /// Count a request (not sheddable) as in flight until the guard drops (no pool is told
    /// when it ends; the scheduler's
    /// [`ScheduledEndpoints::begin`](crate::ScheduledEndpoints::begin) is the
    /// counted-and-notified way).
    pub fn begin_request(self: &Arc<Self>) -> InFlight {
        InFlight::new(self.clone(), 0, None, false)
    }

    /// [`EndpointState::begin_request`] for a sheddable request.
    pub fn begin_sheddable_request(self: &Arc<Self>) -> InFlight {
        InFlight::new(self.clone(), 0, None, true)
    }

    fn add_awaiting(&self, sheddable: bool) {
        self.awaiting_first_byte.fetch_add(1, Ordering::Relaxed);
        if sheddable {
            self.sheddable_awaiting_first_byte
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn sub_awaiting(&self, sheddable: bool) {
        self.awaiting_first_byte.fetch_sub(1, Ordering::Relaxed);
        if sheddable {
            self.sheddable_awaiting_first_byte
                .fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The signals of the last successful scrape, if any.
    pub fn metrics(&self) -> Option<Arc<EndpointMetrics>> {
        self.metrics.load_full()
    }

    /// Store a scrape's signals (stamped with the time and the in-flight count now).
    pub fn set_metrics(&self, mut m: EndpointMetrics) {
        m.updated_ms = now_ms();
        m.in_flight_at_scrape = self.in_flight();
        self.metrics.store(Some(Arc::new(m)));
    }

    /// Forget the scraped signals (tests; an endpoint whose metrics vanished).
    pub fn clear_metrics(&self) {
        self.metrics.store(None);
    }

    /// The engine's waiting queue as best known now: the last scrape's count plus the requests
    /// this gateway sent since (they are counted as queued until the next scrape says
    /// otherwise). `None` without a scrape.
    pub fn queue_estimate(&self) -> Option<f64> {
        let m = self.metrics.load();
        let m = m.as_ref()?;
        let since = f64::from(self.in_flight().saturating_sub(m.in_flight_at_scrape));
        Some(m.waiting + since)
    }

    /// Out of rotation: ejected by passive health and not yet brought back by a probe.
    pub fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Relaxed) != 0
    }

    /// Ejected and the cool-down has passed: time to probe.
    pub fn due_for_probe(&self, now: u64) -> bool {
        self.is_ejected() && now >= self.ejected_until.load(Ordering::Relaxed)
    }

    /// Record a failure; returns true when this failure ejected the endpoint.
    pub fn record_failure(&self, kind: Failure, threshold_5xx: u32, cooldown: Duration) -> bool {
        let eject = match kind {
            Failure::Connect | Failure::Timeout => true,
            Failure::Status5xx => {
                self.consecutive_5xx.fetch_add(1, Ordering::Relaxed) + 1 >= threshold_5xx
            }
        };
        if eject {
            let until = now_ms() + u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX / 2);
            self.ejected_until.store(until, Ordering::Relaxed);
            if self.ejected.swap(1, Ordering::Relaxed) == 0 {
                self.ejections.fetch_add(1, Ordering::Relaxed);
                return true;
            }
        }
        false
    }

    /// A good response: reset the 5xx streak (does not un-eject; probes do that).
    pub fn record_success(&self) {
        if self.consecutive_5xx.load(Ordering::Relaxed) != 0 {
            self.consecutive_5xx.store(0, Ordering::Relaxed);
        }
    }

    /// A good readiness probe: back in service.
    pub fn mark_ready(&self) {
        self.consecutive_5xx.store(0, Ordering::Relaxed);
        self.ejected_until.store(0, Ordering::Relaxed);
        self.ejected.store(0, Ordering::Relaxed);
    }

    /// A failed readiness probe: stay out for another cool-down.
    pub fn probe_failed(&self, cooldown: Duration) {
        let until = now_ms() + u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX / 2);
        self.ejected_until.store(until, Ordering::Relaxed);
    }
}

/// A request in flight to an endpoint: counted while it lives; dropping it (response finished,
/// failed, or the client went away) uncounts it and tells the pool's flow control that capacity
/// freed. Until [`InFlight::first_byte`] it also counts as awaiting its first byte there.
pub struct InFlight {
    ep: Endpoint,
    tokens: u64,
    pool: Option<Arc<PoolShared>>,
    /// Still counted in `awaiting_first_byte`.
    awaiting: bool,
    sheddable: bool,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight")
            .field("endpoint", &self.ep.host_port)
            .field("tokens", &self.tokens)
            .field("awaiting_first_byte", &self.awaiting)
            .finish()
    }
}

impl InFlight {
    pub(crate) fn new(
        ep: Endpoint,
        tokens: u64,
        pool: Option<Arc<PoolShared>>,
        sheddable: bool,
    ) -> Self {
        ep.in_flight.fetch_add(1, Ordering::Relaxed);
        ep.in_flight_tokens.fetch_add(tokens, Ordering::Relaxed);
        ep.add_awaiting(sheddable);
        Self {
            ep,
            tokens,
            pool,
            awaiting: true,
            sheddable,
        }
    }

    /// The response's first byte arrived (a streamed response's first event, a whole response,
    /// or an error answer): the request no longer holds the engine's prefill. Idempotent.
    pub fn first_byte(&mut self) {
        if std::mem::take(&mut self.awaiting) {
            self.ep.sub_awaiting(self.sheddable);
        }
    }

    /// Whether the request still awaits its first byte.
    pub fn awaiting_first_byte(&self) -> bool {
        self.awaiting
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.ep
    }

    /// The request ended; `usage` (when the response reported it) feeds the pool's cache-hit
    /// statistics. Same as dropping the guard otherwise.
    pub fn finish(self, usage: Option<RequestUsage>) {
        if let (Some(pool), Some(u)) = (&self.pool, usage) {
            pool.record_usage(u);
        }
    }

    /// The request was actually served by `other` (e.g. the proxy retried on a fallback): move
    /// the count there.
    pub fn move_to(&mut self, other: &Endpoint) {
        if Arc::ptr_eq(&self.ep, other) {
            return;
        }
        other.in_flight.fetch_add(1, Ordering::Relaxed);
        other
            .in_flight_tokens
            .fetch_add(self.tokens, Ordering::Relaxed);
        if self.awaiting {
            other.add_awaiting(self.sheddable);
        }
        let old = std::mem::replace(&mut self.ep, other.clone());
        old.in_flight.fetch_sub(1, Ordering::Relaxed);
        old.in_flight_tokens
            .fetch_sub(self.tokens, Ordering::Relaxed);
        if self.awaiting {
            old.sub_awaiting(self.sheddable);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.ep.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.ep
            .in_flight_tokens
            .fetch_sub(self.tokens, Ordering::Relaxed);
        if self.awaiting {
            self.ep.sub_awaiting(self.sheddable);
        }
        if let Some(pool) = &self.pool {
            pool.on_capacity_freed();
        }
    }
}

/// Token counts a finished request reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestUsage {
    pub prompt_tokens: u64,
    /// Prompt tokens the engine served from its prefix cache.
    pub cached_tokens: u64,
    pub output_tokens: u64,
}

/// Keeps one [`EndpointState`] per (pool, address) across configuration snapshots.
#[derive(Debug, Default)]
pub struct EndpointRegistry {
    by_key: Mutex<HashMap<(String, String), Endpoint>>,
}

impl EndpointRegistry {
    /// The endpoints of `pool` for this snapshot, reusing live state where the address is
    /// unchanged. Endpoints no longer listed anywhere are dropped from the registry (requests
    /// still holding them finish normally).
    pub fn resolve_pools(
        &self,
        pools: &[(Arc<str>, Vec<EndpointSpec>)],
    ) -> HashMap<Arc<str>, Vec<Endpoint>> {
        let mut map = self
            .by_key
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = HashMap::new();
        let mut out = HashMap::new();
        for (pool, specs) in pools {
            let mut eps = Vec::with_capacity(specs.len());
            for spec in specs {
                let key = (pool.to_string(), spec.host_port());
                let ep = match map.remove(&key) {
                    Some(ep) if ep.spec == *spec => ep,
                    _ => Arc::new(EndpointState::new(pool.clone(), spec.clone())),
                };
                next.insert(key, ep.clone());
                eps.push(ep);
            }
            out.insert(pool.clone(), eps);
        }
        *map = next;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(port: u16) -> EndpointSpec {
        EndpointSpec {
            name: format!("e{port}"),
            address: "127.0.0.1".into(),
            port,
            labels: Default::default(),
        }
    }

    #[test]
    fn in_flight_guard_counts() {
        let ep = Arc::new(EndpointState::new("p".into(), spec(1)));
        let g1 = ep.begin_request();
        let g2 = ep.begin_request();
        assert_eq!(ep.in_flight(), 2);
        drop(g1);
        drop(g2);
        assert_eq!(ep.in_flight(), 0);
    }

    #[test]
    fn awaiting_first_byte_counts_until_the_first_byte_or_the_end() {
        let (a, b) = (
            Arc::new(EndpointState::new("p".into(), spec(1))),
            Arc::new(EndpointState::new("p".into(), spec(2))),
        );
        let mut critical = a.begin_request();
        let mut batch = a.begin_sheddable_request();
        assert_eq!(
            (a.awaiting_first_byte(), a.sheddable_awaiting_first_byte()),
            (2, 1)
        );
        // The proxy reports another endpoint served the batch request: the count moves.
        batch.move_to(&b);
        assert_eq!(
            (a.awaiting_first_byte(), a.sheddable_awaiting_first_byte()),
            (1, 0)
        );
        assert_eq!(
            (b.awaiting_first_byte(), b.sheddable_awaiting_first_byte()),
            (1, 1)
        );
        critical.first_byte();
        critical.first_byte();
        assert_eq!(a.awaiting_first_byte(), 0, "first_byte is idempotent");
        assert_eq!(a.in_flight(), 1, "still in flight while it streams");
        assert!(!critical.awaiting_first_byte());
        drop(critical);
        // Ending before the first byte (an error, the client left) uncounts it too.
        drop(batch);
        assert_eq!(
            (b.awaiting_first_byte(), b.sheddable_awaiting_first_byte()),
            (0, 0)
        );
        // Moving after the first byte moves only the in-flight count.
        let mut g = a.begin_request();
        g.first_byte();
        g.move_to(&b);
        assert_eq!((a.in_flight(), b.in_flight()), (0, 1));
        assert_eq!((a.awaiting_first_byte(), b.awaiting_first_byte()), (0, 0));
    }

    #[test]
    fn ejection_and_recovery() {
        let ep = EndpointState::new("p".into(), spec(1));
        assert!(!ep.record_failure(Failure::Status5xx, 3, Duration::ZERO));
        assert!(!ep.record_failure(Failure::Status5xx, 3, Duration::ZERO));
        assert!(ep.record_failure(Failure::Status5xx, 3, Duration::ZERO));
        assert!(ep.is_ejected());
        assert!(ep.due_for_probe(now_ms()));
        ep.mark_ready();
        assert!(!ep.is_ejected());
        assert!(ep.record_failure(Failure::Connect, 3, Duration::from_secs(60)));
        assert!(!ep.due_for_probe(now_ms()));
        assert_eq!(ep.ejections.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn registry_keeps_state_across_snapshots() {
        let reg = EndpointRegistry::default();
        let pool: Arc<str> = "p".into();
        let a = reg.resolve_pools(&[(pool.clone(), vec![spec(1), spec(2)])]);
        let _g = a[&pool][0].begin_request();
        let b = reg.resolve_pools(&[(pool.clone(), vec![spec(1), spec(3)])]);
        assert!(Arc::ptr_eq(&a[&pool][0], &b[&pool][0]));
        assert_eq!(b[&pool][0].in_flight(), 1);
        assert_eq!(b[&pool][1].spec.port, 3);
    }
}
