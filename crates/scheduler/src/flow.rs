//! Flow control: who goes next when the pool is saturated.
//!
//! Requests that cannot be sent now wait in **priority bands**: strict priority between bands
//! (a higher band is always served first), **fairness between flows** within a band (flows —
//! `x-gateway-inference-fairness-id`, else the caller — take turns; or one FCFS order with
//! `global-strict-fairness-policy`), **first-come-first-served within a flow**. Bands and the
//! whole queue are bounded in requests and bytes (full → 429); a request waits at most the TTL
//! (→ 503). Sheddable requests (priority < 0) never wait for a saturated pool: they are refused
//! at once, and any still queued when saturation sets in are refused then. "Saturated" for them
//! is over the endpoints open to them: the whole pool, or without the endpoints the
//! non-sheddable reserve holds back (the pool computes both figures).
//!
//! Dispatch is "late binding", as the anchor's: a request leaves the queue only when the pool is
//! not saturated, and one at a time — the dispatched request holds the **dispatch token** until it
//! has picked its endpoint and counted itself in flight there, so the next saturation check sees
//! it. The pool calls [`FlowControl::dispatch`] whenever capacity may have freed (a request
//! finished, a metrics scrape landed, a token came back, a request arrived).
//!
//! Pure bookkeeping under one short lock; the waiting itself is the caller's (a oneshot).

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use infergate_control::picker::{BandConfig, FairnessPolicy, FlowControlConfig};
use parking_lot::Mutex;
use tokio::sync::oneshot;

/// What a waiting request is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Go {
    /// Your turn: pick an endpoint, then give the token back.
    Dispatch,
    /// Sheddable and the pool saturated: 429.
    Shed,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Sheddable while saturated.
    Shed,
    /// The band (or the whole queue) is full.
    QueueFull { limit: &'static str },
}

/// The admission decision.
pub(crate) enum Admission {
    /// Go ahead now (no token needed: nobody is waiting and the pool is not saturated).
    Now,
    /// Wait for a [`Go`].
    Queued {
        seq: u64,
        rx: oneshot::Receiver<Go>,
    },
    Refused(Refusal),
}

struct Waiter {
    seq: u64,
    bytes: u64,
    sheddable: bool,
    tx: oneshot::Sender<Go>,
}

struct Band {
    cfg: BandConfig,
    flows: HashMap<Arc<str>, VecDeque<Waiter>>,
    /// Flows with waiters, in turn order (round-robin).
    rotation: VecDeque<Arc<str>>,
    requests: u64,
    bytes: u64,
}

impl Band {
    fn new(cfg: BandConfig) -> Self {
        Self {
            cfg,
            flows: HashMap::new(),
            rotation: VecDeque::new(),
            requests: 0,
            bytes: 0,
        }
    }

    fn pop(&mut self) -> Option<Waiter> {
        let flow = match self.cfg.fairness {
            FairnessPolicy::RoundRobin => self.rotation.pop_front()?,
            FairnessPolicy::GlobalStrict => {
                let (i, _) = self.rotation.iter().enumerate().min_by_key(|(_, f)| {
                    self.flows
                        .get(*f)
                        .and_then(|q| q.front())
                        .map_or(u64::MAX, |w| w.seq)
                })?;
                self.rotation.remove(i)?
            }
        };
        let q = self.flows.get_mut(&flow)?;
        let w = q.pop_front()?;
        if q.is_empty() {
            self.flows.remove(&flow);
        } else {
            self.rotation.push_back(flow);
        }
        self.requests -= 1;
        self.bytes -= w.bytes;
        Some(w)
    }

    fn remove(&mut self, flow: &str, seq: u64) -> Option<Waiter> {
        let q = self.flows.get_mut(flow)?;
        let i = q.iter().position(|w| w.seq == seq)?;
        let w = q.remove(i)?;
        if q.is_empty() {
            self.flows.remove(flow);
            self.rotation.retain(|f| &**f != flow);
        }
        self.requests -= 1;
        self.bytes -= w.bytes;
        Some(w)
    }

    fn drain_sheddable(&mut self, out: &mut Vec<Waiter>) {
        let flows: Vec<Arc<str>> = self.flows.keys().cloned().collect();
        for f in flows {
            let seqs: Vec<u64> = self.flows[&f]
                .iter()
                .filter(|w| w.sheddable)
                .map(|w| w.seq)
                .collect();
            for s in seqs {
                if let Some(w) = self.remove(&f, s) {
                    out.push(w);
                }
            }
        }
    }
}

struct State {
    config: FlowControlConfig,
    bands: BTreeMap<Reverse<i32>, Band>,
    requests: u64,
    bytes: u64,
    token_holder: Option<u64>,
    next_seq: u64,
}

/// One band's queue, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BandStats {
    pub priority: i32,
    pub requests: u64,
    pub bytes: u64,
}

pub(crate) struct FlowControl {
    state: Mutex<State>,
}

impl FlowControl {
    pub(crate) fn new(config: FlowControlConfig) -> Self {
        Self {
            state: Mutex::new(State {
                config,
                bands: BTreeMap::new(),
                requests: 0,
                bytes: 0,
                token_holder: None,
                next_seq: 0,
            }),
        }
    }

    /// New limits (reload); bands already holding requests keep them.
    pub(crate) fn reconfigure(&self, config: FlowControlConfig) {
        let mut s = self.state.lock();
        for (Reverse(p), band) in s.bands.iter_mut() {
            band.cfg = config.band(*p);
        }
        s.config = config;
    }

    pub(crate) fn request_ttl(&self) -> std::time::Duration {
        self.state.lock().config.request_ttl
    }

    /// Decide for a new request. `saturated`: the pool; `sheddable_saturated`: the endpoints
    /// open to sheddable requests.
    pub(crate) fn admit(
        &self,
        priority: i32,
        flow: &str,
        bytes: u64,
        saturated: bool,
        sheddable_saturated: bool,
    ) -> Admission {
        let sheddable = priority < 0;
        let mut s = self.state.lock();
        if sheddable && (saturated || sheddable_saturated) {
            return Admission::Refused(Refusal::Shed);
        }
        if !s.config.enabled || (!saturated && s.requests == 0 && s.token_holder.is_none()) {
            return Admission::Now;
        }
        if s.requests >= s.config.max_requests || s.bytes.saturating_add(bytes) > s.config.max_bytes
        {
            return Admission::Refused(Refusal::QueueFull { limit: "pool" });
        }
        let cfg = s.config.band(priority);
        let (queued, queued_bytes) = s
            .bands
            .get(&Reverse(priority))
            .map_or((0, 0), |b| (b.requests, b.bytes));
        if queued >= cfg.max_requests || queued_bytes.saturating_add(bytes) > cfg.max_bytes {
            return Admission::Refused(Refusal::QueueFull { limit: "band" });
        }
        s.bands
            .entry(Reverse(priority))
            .or_insert_with(|| Band::new(cfg));
        let seq = s.next_seq;
        s.next_seq += 1;
        let (tx, rx) = oneshot::channel();
        let band = s
            .bands
            .get_mut(&Reverse(priority))
            .unwrap_or_else(|| unreachable!("band inserted above"));
        let flow: Arc<str> = Arc::from(flow);
        let q = band.flows.entry(flow.clone()).or_default();
        if q.is_empty() {
            band.rotation.push_back(flow);
        }
        q.push_back(Waiter {
            seq,
            bytes,
            sheddable,
            tx,
        });
        band.requests += 1;
        band.bytes += bytes;
        s.requests += 1;
        s.bytes += bytes;
        Admission::Queued { seq, rx }
    }

    /// Let the next request go if the pool has room (or refuse the sheddable ones if it, or the
    /// part open to them, is saturated). Call whenever capacity may have freed.
    pub(crate) fn dispatch(&self, saturated: bool, sheddable_saturated: bool) {
        let mut s = self.state.lock();
        if s.requests == 0 {
            return;
        }
        if saturated || sheddable_saturated {
            let mut shed = Vec::new();
            for band in s.bands.values_mut() {
                band.drain_sheddable(&mut shed);
            }
            for w in shed {
                s.requests -= 1;
                s.bytes -= w.bytes;
                let _ = w.tx.send(Go::Shed);
            }
            s.bands.retain(|_, b| b.requests > 0);
            if saturated {
                return;
            }
        }
        if s.token_holder.is_some() {
            return;
        }
        loop {
            let Some((key, band)) = s.bands.iter_mut().find(|(_, b)| b.requests > 0) else {
                return;
            };
            let key = *key;
            let Some(w) = band.pop() else {
                return;
            };
            if band.requests == 0 {
                s.bands.remove(&key);
            }
            s.requests -= 1;
            s.bytes -= w.bytes;
            if w.tx.send(Go::Dispatch).is_ok() {
                s.token_holder = Some(w.seq);
                return;
            }
            // The waiter is gone (client left); next.
        }
    }

    /// The dispatched request `seq` has counted itself in flight: the next may go.
    /// Returns whether `seq` held the token.
    #[cfg(test)]
    pub(crate) fn release(&self, seq: u64) -> bool {
        let mut s = self.state.lock();
        if s.token_holder == Some(seq) {
            s.token_holder = None;
            true
        } else {
            false
        }
    }

    /// The waiter `seq` gave up (TTL, client gone): leave the queue, or return the token.
    /// Returns whether it held the token (so the caller should dispatch again).
    pub(crate) fn cancel(&self, seq: u64, priority: i32, flow: &str) -> bool {
        let mut s = self.state.lock();
        if s.token_holder == Some(seq) {
            s.token_holder = None;
            return true;
        }
        let key = Reverse(priority);
        if let Some(band) = s.bands.get_mut(&key) {
            if let Some(w) = band.remove(flow, seq) {
                let empty = band.requests == 0;
                s.requests -= 1;
                s.bytes -= w.bytes;
                if empty {
                    s.bands.remove(&key);
                }
            }
        }
        false
    }

    /// Waiting requests per band, highest priority first.
    pub(crate) fn stats(&self) -> Vec<BandStats> {
        let s = self.state.lock();
        s.bands
            .iter()
            .map(|(Reverse(p), b)| BandStats {
                priority: *p,
                requests: b.requests,
                bytes: b.bytes,
            })
            .collect()
    }

    pub(crate) fn queued(&self) -> u64 {
        self.state.lock().requests
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fc() -> FlowControl {
        FlowControl::new(FlowControlConfig::default())
    }

    fn queued(a: Admission) -> (u64, oneshot::Receiver<Go>) {
        match a {
            Admission::Queued { seq, rx } => (seq, rx),
            Admission::Now => panic!("expected to queue, got Now"),
            Admission::Refused(r) => panic!("expected to queue, got {r:?}"),
        }
    }

    #[test]
    fn idle_pool_admits_at_once_and_saturated_pool_queues() {
        let f = fc();
        assert!(matches!(f.admit(0, "a", 10, false, false), Admission::Now));
        let (_, mut rx) = queued(f.admit(0, "a", 10, true, false));
        assert_eq!(f.queued(), 1);
        f.dispatch(true, false);
        assert!(rx.try_recv().is_err(), "still saturated");
        // while someone waits, even a non-saturated arrival queues behind them
        let (_, _rx2) = queued(f.admit(0, "a", 10, false, false));
        f.dispatch(false, false);
        assert_eq!(rx.try_recv().unwrap(), Go::Dispatch);
        assert_eq!(f.queued(), 1);
    }

    #[test]
    fn sheddable_requests_never_wait_for_a_saturated_pool() {
        let f = fc();
        assert!(matches!(
            f.admit(-1, "a", 1, true, false),
            Admission::Refused(Refusal::Shed)
        ));
        // queued while not saturated (behind others), then saturation sets in: refused
        let (s0, _keep) = queued(f.admit(0, "a", 1, true, false));
        let (_, mut shed) = queued(f.admit(-1, "b", 1, false, false));
        let (_, mut normal) = queued(f.admit(0, "c", 1, true, false));
        f.dispatch(true, false);
        assert_eq!(shed.try_recv().unwrap(), Go::Shed);
        assert!(normal.try_recv().is_err());
        assert_eq!(f.queued(), 2);
        assert!(!f.cancel(s0, 0, "a"));
    }

    #[test]
    fn strict_priority_between_bands_one_token_at_a_time() {
        let f = fc();
        let (s_low, mut low) = queued(f.admit(0, "a", 1, true, false));
        let (s_high, mut high) = queued(f.admit(5, "b", 1, true, false));
        f.dispatch(false, false);
        assert_eq!(high.try_recv().unwrap(), Go::Dispatch);
        // the token is out: nothing else goes until it comes back
        f.dispatch(false, false);
        assert!(low.try_recv().is_err());
        assert!(!f.release(s_low));
        assert!(f.release(s_high));
        f.dispatch(false, false);
        assert_eq!(low.try_recv().unwrap(), Go::Dispatch);
    }

    #[test]
    fn flows_take_turns_within_a_band_fcfs_within_a_flow() {
        let f = fc();
        let mut order = Vec::new();
        let mut rxs = Vec::new();
        // flow a floods first, then b and c arrive
        for (flow, n) in [("a", 4), ("b", 2), ("c", 1)] {
            for i in 0..n {
                let (seq, rx) = queued(f.admit(0, flow, 1, true, false));
                rxs.push((format!("{flow}{i}"), seq, rx));
            }
        }
        for _ in 0..7 {
            f.dispatch(false, false);
            let (name, seq) = rxs
                .iter_mut()
                .find_map(|(n, s, rx)| (rx.try_recv() == Ok(Go::Dispatch)).then(|| (n.clone(), *s)))
                .unwrap();
            order.push(name);
            assert!(f.release(seq));
        }
        assert_eq!(order, vec!["a0", "b0", "c0", "a1", "b1", "a2", "a3"]);
    }

    #[test]
    fn global_strict_policy_is_fcfs_across_flows() {
        let mut cfg = FlowControlConfig::default();
        cfg.default_band.fairness = FairnessPolicy::GlobalStrict;
        let f = FlowControl::new(cfg);
        let mut rxs = Vec::new();
        for flow in ["a", "a", "b", "a"] {
            rxs.push(queued(f.admit(0, flow, 1, true, false)));
        }
        for expect in 0..4 {
            f.dispatch(false, false);
            let i = rxs
                .iter_mut()
                .position(|(_, rx)| rx.try_recv() == Ok(Go::Dispatch))
                .unwrap();
            assert_eq!(i, expect);
            f.release(rxs[i].0);
        }
    }

    #[test]
    fn bounded_bands_and_cancellation() {
        let mut cfg = FlowControlConfig::default();
        cfg.default_band.max_requests = 2;
        cfg.default_band.max_bytes = 100;
        let f = FlowControl::new(cfg);
        let (s1, _r1) = queued(f.admit(0, "a", 10, true, false));
        let (_s2, _r2) = queued(f.admit(0, "a", 10, true, false));
        assert!(matches!(
            f.admit(0, "a", 10, true, false),
            Admission::Refused(Refusal::QueueFull { limit: "band" })
        ));
        // another band has its own room
        let (_s3, _r3) = queued(f.admit(3, "a", 10, true, false));
        assert!(!f.cancel(s1, 0, "a"));
        let (_s4, _r4) = queued(f.admit(0, "a", 10, true, false));
        assert!(matches!(
            f.admit(9, "z", 101, true, false),
            Admission::Refused(Refusal::QueueFull { .. })
        ));
        let stats = f.stats();
        assert_eq!(stats[0].priority, 3);
        assert_eq!(
            stats[1],
            BandStats {
                priority: 0,
                requests: 2,
                bytes: 20
            }
        );
    }

    #[test]
    fn a_dispatched_waiter_that_left_skips_to_the_next() {
        let f = fc();
        let (_, rx1) = queued(f.admit(0, "a", 1, true, false));
        let (_, mut rx2) = queued(f.admit(0, "a", 1, true, false));
        drop(rx1);
        f.dispatch(false, false);
        assert_eq!(rx2.try_recv().unwrap(), Go::Dispatch);
    }

    #[test]
    fn sheddable_requests_see_the_saturation_of_the_endpoints_open_to_them() {
        let f = fc();
        // The pool has room, the unreserved part does not: sheddable refused, others go.
        assert!(matches!(
            f.admit(-1, "a", 1, false, true),
            Admission::Refused(Refusal::Shed)
        ));
        assert!(matches!(f.admit(0, "a", 1, false, true), Admission::Now));
        // A sheddable request queued behind others is refused when the unreserved part fills,
        // while a standard one behind it still goes.
        let (s0, _keep) = queued(f.admit(0, "a", 1, true, false));
        let (_, mut shed) = queued(f.admit(-1, "b", 1, false, false));
        let (_, mut normal) = queued(f.admit(0, "c", 1, true, false));
        assert!(!f.cancel(s0, 0, "a"));
        f.dispatch(false, true);
        assert_eq!(shed.try_recv().unwrap(), Go::Shed);
        assert_eq!(normal.try_recv().unwrap(), Go::Dispatch);
    }

    #[test]
    fn disabled_flow_control_is_the_legacy_admission() {
        let f = FlowControl::new(FlowControlConfig {
            enabled: false,
            ..FlowControlConfig::default()
        });
        assert!(matches!(f.admit(0, "a", 1, true, false), Admission::Now));
        assert!(matches!(
            f.admit(-1, "a", 1, true, false),
            Admission::Refused(Refusal::Shed)
        ));
    }
}
