//! Limits: what a request is charged at admission, how a charge is decided, and how it is settled.
//!
//! **Reserve, then settle.** Admission charges a [`Demand`] — one [`Charge`] per bucket that
//! applies (per key, tenant, model, tenant × model; requests, tokens, concurrency, spend) — all
//! or nothing: if any bucket would go over its limit, none is charged and the caller gets a
//! [`Denied`] naming the bucket and when to retry. When the response ends (complete, failed or
//! abandoned), [`Reserved::settled_amount`] turns the real usage into the amount each bucket
//! should have been charged and the backend adds the difference to the *same* window the
//! reservation went into. Concurrent requests therefore cannot overshoot a limit by more than
//! the estimate's error, which is what the anchors get wrong (they check, then charge after).
//!
//! **Windows.** Rate limits use a sliding window counter over two fixed windows: the use that
//! counts is `prev × (time left in the current window / window) + curr`. Each clock-aligned
//! window therefore never admits more than the limit, and a burst at a window boundary is not
//! allowed to double it (a plain fixed window would). Budgets use calendar windows (see
//! [`crate::budget`]); concurrency counts requests in flight.
//!
//! The same arithmetic runs in-process ([`LocalLimiter`]) and in Redis
//! ([`crate::redis_script`]); the functions here are the reference for both.

use std::sync::Arc;

use parking_lot::Mutex;
use rustc_hash::FxHashMap;

/// Which tokens a token limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TokenType {
    Input,
    Output,
    #[default]
    Total,
}

impl TokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Input => "input",
            TokenType::Output => "output",
            TokenType::Total => "total",
        }
    }
}

/// What a bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    Requests,
    Tokens(TokenType),
    Concurrency,
    /// Money, in nano-USD.
    Spend,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Requests => "requests",
            Metric::Tokens(_) => "tokens",
            Metric::Concurrency => "concurrency",
            Metric::Spend => "spend",
        }
    }
}

/// Whose bucket it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Key,
    Tenant,
    Model,
    TenantModel,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::Tenant => "tenant",
            Scope::Model => "model",
            Scope::TenantModel => "tenant_model",
        }
    }
}

/// How a bucket's use is counted over time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Window {
    /// Sliding window counter of this length (rate limits).
    Sliding { ms: u64 },
    /// A calendar window (budgets): `id` names it (e.g. `d2025-03-01`), it ends at `end_ms`
    /// (Unix ms), never for a lifetime budget.
    Calendar { id: Arc<str>, end_ms: Option<u64> },
    /// No window: requests in flight (concurrency).
    InFlight,
}

/// One bucket a request is charged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// Unique name of the bucket (e.g. `t:acme:tok`); the backend's key.
    pub bucket: Arc<str>,
    pub scope: Scope,
    /// Who (key id, tenant, model, tenant/model), for messages.
    pub subject: Arc<str>,
    pub metric: Metric,
    pub window: Window,
    pub limit: u64,
    pub amount: u64,
}

/// Everything a request is charged at admission; decided atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Demand {
    pub charges: Vec<Charge>,
}

impl Demand {
    pub fn is_empty(&self) -> bool {
        self.charges.is_empty()
    }
}

/// A charge that was made; settled when the response ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    pub bucket: Arc<str>,
    pub metric: Metric,
    pub window: Window,
    /// For sliding windows: the index of the window the amount went into.
    pub window_index: u64,
    pub amount: u64,
}

/// What a request really consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Actual {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_nanos: u64,
}

impl Reserved {
    /// The amount this bucket should end up charged, given real usage; `None` = leave as
    /// reserved (requests) or release (concurrency, see [`Reserved::releases`]).
    pub fn settled_amount(&self, actual: &Actual) -> Option<u64> {
        match self.metric {
            Metric::Requests | Metric::Concurrency => None,
            Metric::Tokens(TokenType::Input) => Some(actual.input_tokens),
            Metric::Tokens(TokenType::Output) => Some(actual.output_tokens),
            Metric::Tokens(TokenType::Total) => Some(actual.input_tokens + actual.output_tokens),
            Metric::Spend => Some(actual.cost_nanos),
        }
    }

    /// Concurrency reservations are released at settle.
    pub fn releases(&self) -> bool {
        self.metric == Metric::Concurrency
    }

    /// Signed change to apply at settle (0 = nothing to do).
    pub fn delta(&self, actual: &Actual) -> i64 {
        match self.settled_amount(actual) {
            Some(a) => {
                i64::try_from(a).unwrap_or(i64::MAX)
                    - i64::try_from(self.amount).unwrap_or(i64::MAX)
            }
            None => 0,
        }
    }
}

/// The state of one bucket after a decision (for `x-ratelimit-*` headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketView {
    pub limit: u64,
    pub remaining: u64,
    /// Until the bucket is back to its full limit, if nothing else is charged.
    pub reset_ms: u64,
}

/// An admitted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub reserved: Vec<Reserved>,
    /// One view per charge, in the demand's order.
    pub views: Vec<BucketView>,
    /// Concurrency lease id (Redis backend), unique per request.
    pub lease: Option<Arc<str>>,
    /// A shared-backend grant's copy in the replica's local fallback limiter (see
    /// [`LocalLimiter::record`]); settled there too. Empty otherwise.
    pub shadow: Vec<Reserved>,
}

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// Index of the charge that did not fit.
    pub index: usize,
    pub used: u64,
    pub limit: u64,
    pub amount: u64,
    /// When the same request would fit, if nothing else is charged meanwhile; `None` when it
    /// never will (bigger than the limit, or a lifetime budget).
    pub retry_after_ms: Option<u64>,
    /// Views of every charge at the time of the decision.
    pub views: Vec<BucketView>,
}

// ------------------------------------------------------------------ sliding window arithmetic

/// Use that counts in a sliding window: `prev` weighted by the part of the previous window still
/// inside the sliding window, plus `curr`. Rounded up.
pub fn sliding_used(prev: u64, curr: u64, window_ms: u64, elapsed_ms: u64) -> u64 {
    let left = window_ms.saturating_sub(elapsed_ms);
    let weighted = (u128::from(prev) * u128::from(left)).div_ceil(u128::from(window_ms.max(1)));
    u64::try_from(weighted)
        .unwrap_or(u64::MAX)
        .saturating_add(curr)
}

/// Time until `amount` more fits under `limit`, if nothing else is charged.
pub fn sliding_retry_after(
    prev: u64,
    curr: u64,
    window_ms: u64,
    elapsed_ms: u64,
    amount: u64,
    limit: u64,
) -> Option<u64> {
    if amount > limit {
        return None;
    }
    let w = u128::from(window_ms.max(1));
    let room = u128::from(limit - amount);
    let (prev, curr, elapsed) = (u128::from(prev), u128::from(curr), u128::from(elapsed_ms));
    if sliding_used(prev as u64, curr as u64, window_ms, elapsed_ms) <= limit - amount {
        return Some(0);
    }
    let ms = if curr <= room && prev > 0 {
        // Later in this window, once enough of `prev` has slid out.
        let left_allowed = (room - curr) * w / prev;
        let needed = w - left_allowed.min(w);
        needed.saturating_sub(elapsed) + 1
    } else {
        // In the next window, where `curr` becomes the previous one.
        let to_next = w - elapsed.min(w);
        match (room * w).checked_div(curr) {
            None => to_next,
            Some(left_allowed) => to_next + (w - left_allowed.min(w)) + 1,
        }
    };
    Some(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// Time until the bucket is back to its full limit.
pub fn sliding_reset(prev: u64, curr: u64, window_ms: u64, elapsed_ms: u64) -> u64 {
    let to_next = window_ms.saturating_sub(elapsed_ms);
    if curr > 0 {
        to_next + window_ms
    } else if prev > 0 {
        to_next
    } else {
        0
    }
}

/// Scale a limit (local fallback share), never below 1.
pub fn scaled(limit: u64, scale: f64) -> u64 {
    if (scale - 1.0).abs() < f64::EPSILON {
        return limit;
    }
    ((limit as f64 * scale).floor() as u64).max(1)
}

// ------------------------------------------------------------------ the in-process backend

#[derive(Debug)]
enum Slot {
    Sliding {
        ms: u64,
        index: u64,
        curr: u64,
        prev: u64,
    },
    Calendar {
        id: Arc<str>,
        used: u64,
    },
    InFlight {
        n: u64,
    },
}

/// The in-process limiter: every bucket in one map behind one short lock, so a request's
/// charges are decided and applied together. Time is passed in (Unix ms).
#[derive(Debug, Default)]
pub struct LocalLimiter {
    // FxHash: bucket names come from configuration (tenants, keys, models), not from callers.
    slots: Mutex<FxHashMap<Arc<str>, Slot>>,
}

impl LocalLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decide a demand at `now_ms`, with every limit multiplied by `scale` (1.0 normally; the
    /// configured share while a shared backend is unreachable).
    pub fn admit(&self, demand: &Demand, now_ms: u64, scale: f64) -> Result<Grant, Denied> {
        let mut slots = self.slots.lock();
        let mut views = Vec::with_capacity(demand.charges.len());
        let mut denied: Option<(usize, u64, Option<u64>)> = None;
        for (i, c) in demand.charges.iter().enumerate() {
            let limit = scaled(c.limit, scale);
            let (used, view, retry) = match &c.window {
                Window::Sliding { ms } => {
                    let (prev, curr) = match slots.get(&c.bucket) {
                        Some(Slot::Sliding {
                            index, curr, prev, ..
                        }) => rolled(*index, *curr, *prev, now_ms / ms),
                        _ => (0, 0),
                    };
                    let el = now_ms % ms;
                    let used = sliding_used(prev, curr, *ms, el);
                    let view = BucketView {
                        limit,
                        remaining: limit.saturating_sub(used),
                        reset_ms: sliding_reset(prev, curr, *ms, el),
                    };
                    let retry = sliding_retry_after(prev, curr, *ms, el, c.amount, limit);
                    (used, view, retry)
                }
                Window::Calendar { id, end_ms } => {
                    let used = match slots.get(&c.bucket) {
                        Some(Slot::Calendar { id: cur, used }) if cur == id => *used,
                        _ => 0,
                    };
                    let reset = end_ms.map_or(0, |e| e.saturating_sub(now_ms));
                    let view = BucketView {
                        limit,
                        remaining: limit.saturating_sub(used),
                        reset_ms: reset,
                    };
                    let retry = (c.amount <= limit)
                        .then_some(reset)
                        .filter(|_| end_ms.is_some());
                    (used, view, retry)
                }
                Window::InFlight => {
                    let n = match slots.get(&c.bucket) {
                        Some(Slot::InFlight { n }) => *n,
                        _ => 0,
                    };
                    let view = BucketView {
                        limit,
                        remaining: limit.saturating_sub(n),
                        reset_ms: 0,
                    };
                    // Unknown: when some request in flight finishes.
                    (n, view, Some(1000))
                }
            };
            if denied.is_none() && used.saturating_add(c.amount) > limit {
                denied = Some((i, used, retry));
            }
            views.push(view);
        }
        if let Some((index, used, retry_after_ms)) = denied {
            let c = &demand.charges[index];
            return Err(Denied {
                index,
                used,
                limit: scaled(c.limit, scale),
                amount: c.amount,
                retry_after_ms,
                views,
            });
        }
        let reserved = charge(&mut slots, demand, now_ms, &mut views);
        Ok(Grant {
            reserved,
            views,
            lease: None,
            shadow: Vec::new(),
        })
    }

    /// Charge a demand that another backend (Redis) has admitted, without checking any limit:
    /// the replica's own share of the shared use, kept so that if Redis becomes unreachable the
    /// local fallback (`fallbackShare ×` each limit) starts from what this replica already
    /// admitted in the current window instead of from zero. Settle the result with
    /// [`LocalLimiter::settle`].
    pub fn record(&self, demand: &Demand, now_ms: u64) -> Vec<Reserved> {
        let mut slots = self.slots.lock();
        let mut views = vec![
            BucketView {
                limit: 0,
                remaining: 0,
                reset_ms: 0,
            };
            demand.charges.len()
        ];
        charge(&mut slots, demand, now_ms, &mut views)
    }

    /// True up a grant's charges to what the request really consumed; release concurrency.
    pub fn settle(&self, reserved: &[Reserved], actual: &Actual, now_ms: u64) {
        let mut slots = self.slots.lock();
        for r in reserved {
            let Some(slot) = slots.get_mut(&r.bucket) else {
                continue;
            };
            if r.releases() {
                if let Slot::InFlight { n } = slot {
                    *n = n.saturating_sub(1);
                }
                continue;
            }
            let delta = r.delta(actual);
            if delta == 0 {
                continue;
            }
            match (slot, &r.window) {
                (
                    Slot::Sliding {
                        index, curr, prev, ..
                    },
                    Window::Sliding { ms },
                ) => {
                    let now_index = now_ms / ms;
                    let (p, c) = rolled(*index, *curr, *prev, now_index);
                    *index = now_index;
                    *prev = p;
                    *curr = c;
                    if r.window_index == now_index {
                        *curr = apply(*curr, delta);
                    } else if r.window_index + 1 == now_index {
                        *prev = apply(*prev, delta);
                    }
                }
                (Slot::Calendar { id, used }, Window::Calendar { id: rid, .. }) if id == rid => {
                    *used = apply(*used, delta);
                }
                _ => {}
            }
        }
    }

    /// Add spend that happened elsewhere (the ledger at start-up, or while a shared backend was
    /// unreachable) to a calendar bucket.
    pub fn add_spend(&self, bucket: &Arc<str>, window_id: &Arc<str>, amount: u64) {
        let mut slots = self.slots.lock();
        match slots.get_mut(bucket) {
            Some(Slot::Calendar { id, used }) if id == window_id => *used += amount,
            _ => {
                slots.insert(
                    bucket.clone(),
                    Slot::Calendar {
                        id: window_id.clone(),
                        used: amount,
                    },
                );
            }
        }
    }

    /// Drop buckets that hold nothing any more (idle rate windows, empty concurrency). Calendar
    /// buckets stay: they are few (one per key or tenant and window) and cost money to forget.
    pub fn sweep(&self, now_ms: u64) {
        let mut slots = self.slots.lock();
        slots.retain(|_, s| match s {
            Slot::Sliding { ms, index, .. } => now_ms / *ms <= index.saturating_add(1),
            Slot::InFlight { n } => *n > 0,
            Slot::Calendar { .. } => true,
        });
    }

    /// Number of buckets held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.slots.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Add a demand's amounts to its buckets (no checks); `views` get the remaining and reset after.
fn charge(
    slots: &mut FxHashMap<Arc<str>, Slot>,
    demand: &Demand,
    now_ms: u64,
    views: &mut [BucketView],
) -> Vec<Reserved> {
    let mut reserved = Vec::with_capacity(demand.charges.len());
    for (c, view) in demand.charges.iter().zip(views.iter_mut()) {
        let mut window_index = 0;
        match &c.window {
            Window::Sliding { ms } => {
                let index = now_ms / ms;
                window_index = index;
                let slot = slots.entry(c.bucket.clone()).or_insert(Slot::Sliding {
                    ms: *ms,
                    index,
                    curr: 0,
                    prev: 0,
                });
                if let Slot::Sliding {
                    index: i,
                    curr,
                    prev,
                    ..
                } = slot
                {
                    let (p, cu) = rolled(*i, *curr, *prev, index);
                    *i = index;
                    *prev = p;
                    *curr = cu + c.amount;
                    view.reset_ms = sliding_reset(*prev, *curr, *ms, now_ms % ms);
                } else {
                    *slot = Slot::Sliding {
                        ms: *ms,
                        index,
                        curr: c.amount,
                        prev: 0,
                    };
                }
            }
            Window::Calendar { id, .. } => {
                let slot = slots.entry(c.bucket.clone()).or_insert(Slot::Calendar {
                    id: id.clone(),
                    used: 0,
                });
                match slot {
                    Slot::Calendar { id: cur, used } if cur == id => *used += c.amount,
                    other => {
                        *other = Slot::Calendar {
                            id: id.clone(),
                            used: c.amount,
                        }
                    }
                }
            }
            Window::InFlight => {
                let slot = slots
                    .entry(c.bucket.clone())
                    .or_insert(Slot::InFlight { n: 0 });
                match slot {
                    Slot::InFlight { n } => *n += 1,
                    other => *other = Slot::InFlight { n: 1 },
                }
            }
        }
        view.remaining = view.remaining.saturating_sub(c.amount);
        reserved.push(Reserved {
            bucket: c.bucket.clone(),
            metric: c.metric,
            window: c.window.clone(),
            window_index,
            amount: c.amount,
        });
    }
    reserved
}

/// Bring (index, curr, prev) forward to `now_index`: returns (prev, curr) as seen from there.
fn rolled(index: u64, curr: u64, prev: u64, now_index: u64) -> (u64, u64) {
    if now_index == index {
        (prev, curr)
    } else if now_index == index + 1 {
        (curr, 0)
    } else if now_index < index {
        // Clock went backwards (another replica's time): keep what we have.
        (prev, curr)
    } else {
        (0, 0)
    }
}

fn apply(v: u64, delta: i64) -> u64 {
    if delta >= 0 {
        v.saturating_add(delta.unsigned_abs())
    } else {
        v.saturating_sub(delta.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(bucket: &str, limit: u64, amount: u64) -> Charge {
        Charge {
            bucket: Arc::from(bucket),
            scope: Scope::Tenant,
            subject: Arc::from("t"),
            metric: Metric::Tokens(TokenType::Total),
            window: Window::Sliding { ms: 60_000 },
            limit,
            amount,
        }
    }

    fn demand(charges: Vec<Charge>) -> Demand {
        Demand { charges }
    }

    #[test]
    fn all_or_nothing_across_buckets() {
        let l = LocalLimiter::new();
        let now = 60_000 * 1000;
        let d = demand(vec![tokens("a", 1000, 300), tokens("b", 500, 400)]);
        assert!(l.admit(&d, now, 1.0).is_ok());
        // b is full: a must not be charged either.
        let err = l.admit(&d, now, 1.0).unwrap_err();
        assert_eq!(err.index, 1);
        let only_a = demand(vec![tokens("a", 1000, 700)]);
        assert!(l.admit(&only_a, now, 1.0).is_ok(), "a still has 700 left");
    }

    #[test]
    fn settle_refunds_into_the_reserved_window() {
        let l = LocalLimiter::new();
        let now = 60_000 * 1000;
        let g = l
            .admit(&demand(vec![tokens("a", 1000, 900)]), now, 1.0)
            .unwrap();
        assert!(l
            .admit(&demand(vec![tokens("a", 1000, 200)]), now, 1.0)
            .is_err());
        l.settle(
            &g.reserved,
            &Actual {
                input_tokens: 50,
                output_tokens: 50,
                cost_nanos: 0,
            },
            now + 10,
        );
        assert!(l
            .admit(&demand(vec![tokens("a", 1000, 900)]), now + 20, 1.0)
            .is_ok());
    }

    #[test]
    fn sliding_window_does_not_double_at_the_boundary() {
        let l = LocalLimiter::new();
        let w = 60_000;
        let end_of_window = w * 1000 + w - 1;
        assert!(l
            .admit(&demand(vec![tokens("a", 1000, 1000)]), end_of_window, 1.0)
            .is_ok());
        // One ms later a new fixed window starts, but the previous one still counts in full.
        let d = l.admit(
            &demand(vec![tokens("a", 1000, 100)]),
            end_of_window + 1,
            1.0,
        );
        let denied = d.unwrap_err();
        let retry = denied.retry_after_ms.unwrap();
        assert!((5_000..=7_000).contains(&retry), "{retry}");
        // After 10% of the new window has passed, 100 fits.
        assert!(l
            .admit(
                &demand(vec![tokens("a", 1000, 100)]),
                end_of_window + 1 + retry,
                1.0
            )
            .is_ok());
    }

    #[test]
    fn too_large_requests_never_fit() {
        let l = LocalLimiter::new();
        let err = l
            .admit(&demand(vec![tokens("a", 100, 101)]), 5, 1.0)
            .unwrap_err();
        assert_eq!(err.retry_after_ms, None);
    }

    #[test]
    fn concurrency_is_released_at_settle() {
        let l = LocalLimiter::new();
        let c = Charge {
            bucket: Arc::from("c"),
            scope: Scope::Key,
            subject: Arc::from("k"),
            metric: Metric::Concurrency,
            window: Window::InFlight,
            limit: 2,
            amount: 1,
        };
        let d = demand(vec![c]);
        let g1 = l.admit(&d, 0, 1.0).unwrap();
        let _g2 = l.admit(&d, 0, 1.0).unwrap();
        assert!(l.admit(&d, 0, 1.0).is_err());
        l.settle(&g1.reserved, &Actual::default(), 1);
        assert!(l.admit(&d, 1, 1.0).is_ok());
    }

    #[test]
    fn calendar_windows_start_fresh() {
        let l = LocalLimiter::new();
        let b = |id: &str, amount| Charge {
            bucket: Arc::from("spend"),
            scope: Scope::Tenant,
            subject: Arc::from("t"),
            metric: Metric::Spend,
            window: Window::Calendar {
                id: Arc::from(id),
                end_ms: Some(1_000),
            },
            limit: 10_000,
            amount,
        };
        assert!(l.admit(&demand(vec![b("d1", 9_000)]), 0, 1.0).is_ok());
        let err = l.admit(&demand(vec![b("d1", 2_000)]), 0, 1.0).unwrap_err();
        assert_eq!(err.retry_after_ms, Some(1_000));
        assert!(l.admit(&demand(vec![b("d2", 2_000)]), 1_000, 1.0).is_ok());
    }

    #[test]
    fn scale_applies_to_every_limit() {
        let l = LocalLimiter::new();
        assert!(l
            .admit(&demand(vec![tokens("a", 1000, 400)]), 0, 0.34)
            .is_err());
        assert!(l
            .admit(&demand(vec![tokens("a", 1000, 340)]), 0, 0.34)
            .is_ok());
    }

    #[test]
    fn recorded_shared_use_counts_against_the_fallback_share() {
        // Three replicas share a limit of 900 through Redis; this one admitted 250 of it.
        let l = LocalLimiter::new();
        let now = 60_000 * 1000 + 30_000;
        let shadow = l.record(&demand(vec![tokens("a", 900, 250)]), now);
        assert_eq!(shadow[0].window_index, 1000);
        // Redis goes away: with a share of 1/3 (300), only 50 more fit on this replica.
        let share = 1.0 / 3.0;
        assert!(l
            .admit(&demand(vec![tokens("a", 900, 60)]), now + 1, share)
            .is_err());
        assert!(l
            .admit(&demand(vec![tokens("a", 900, 50)]), now + 1, share)
            .is_ok());
        // Settling the shared grant's copy refunds it locally as well.
        l.settle(
            &shadow,
            &Actual {
                input_tokens: 100,
                output_tokens: 0,
                cost_nanos: 0,
            },
            now + 2,
        );
        assert!(l
            .admit(&demand(vec![tokens("a", 900, 150)]), now + 3, share)
            .is_ok());
        // Recording never refuses, even past the limit.
        assert_eq!(
            l.record(&demand(vec![tokens("a", 10, 5_000)]), now).len(),
            1
        );
    }

    proptest::proptest! {
        /// Whatever the arrivals, no clock-aligned window admits more than the limit, and no
        /// request is refused while the sliding use plus its amount fits.
        #[test]
        fn no_window_exceeds_the_limit(
            arrivals in proptest::collection::vec((0u64..30_000, 1u64..400), 1..300)
        ) {
            let l = LocalLimiter::new();
            let w = 10_000u64;
            let limit = 2_000u64;
            let mut t = 0u64;
            let mut per_window: std::collections::HashMap<u64, u64> = Default::default();
            for (gap, amount) in arrivals {
                t += gap / 10;
                if l.admit(&demand(vec![Charge { window: Window::Sliding { ms: w }, ..tokens("a", limit, amount) }]), t, 1.0).is_ok() {
                    *per_window.entry(t / w).or_default() += amount;
                }
            }
            for (_, admitted) in per_window {
                proptest::prop_assert!(admitted <= limit);
            }
        }
    }
}
