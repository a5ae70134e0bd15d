//! The retry budget: extra attempts (retries on another endpoint and fallbacks to other targets)
//! are allowed while, over the last 10 seconds, they stay within `max(minRetries, ratio ×
//! requests)`. A failing upstream therefore costs at most `ratio` more upstream traffic, not a
//! multiple of it.
//!
//! Ten one-second slots of atomic counters; a slot is reset when a new second claims it. Counts
//! may be off by a request or two under a race at a slot boundary, never by more.

use std::sync::atomic::{AtomicU64, Ordering};

use infergate_scheduler::now_ms;

const SLOTS: usize = 10;

#[derive(Debug, Default)]
struct Slot {
    second: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

#[derive(Debug, Default)]
pub struct RetryBudget {
    slots: [Slot; SLOTS],
}

impl RetryBudget {
    fn slot(&self, second: u64) -> &Slot {
        let s = &self.slots[(second % SLOTS as u64) as usize];
        let seen = s.second.load(Ordering::Acquire);
        if seen != second
            && s.second
                .compare_exchange(seen, second, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            s.requests.store(0, Ordering::Release);
            s.retries.store(0, Ordering::Release);
        }
        s
    }

    fn totals(&self, second: u64) -> (u64, u64) {
        let mut req = 0;
        let mut ret = 0;
        for s in &self.slots {
            let sec = s.second.load(Ordering::Acquire);
            if sec + (SLOTS as u64) > second && sec <= second {
                req += s.requests.load(Ordering::Acquire);
                ret += s.retries.load(Ordering::Acquire);
            }
        }
        (req, ret)
    }

    /// Count one request.
    pub fn record_request(&self) {
        let sec = now_ms() / 1000;
        self.slot(sec).requests.fetch_add(1, Ordering::AcqRel);
    }

    /// Take one extra attempt from the budget, if it allows one.
    pub fn try_withdraw(&self, ratio: f64, min_retries: u32) -> bool {
        let sec = now_ms() / 1000;
        let slot = self.slot(sec);
        let (requests, retries) = self.totals(sec);
        let allowed = ((requests as f64) * ratio)
            .floor()
            .max(f64::from(min_retries));
        if (retries as f64) < allowed {
            slot.retries.fetch_add(1, Ordering::AcqRel);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_attempts_stay_within_ratio() {
        let b = RetryBudget::default();
        let mut granted = 0;
        for _ in 0..500 {
            b.record_request();
            if b.try_withdraw(0.2, 3) {
                granted += 1;
            }
        }
        assert!(granted <= 100, "{granted}");
        assert!(granted >= 95, "{granted}");
    }

    #[test]
    fn floor_lets_a_quiet_gateway_fail_over() {
        let b = RetryBudget::default();
        b.record_request();
        assert!(b.try_withdraw(0.2, 3));
        assert!(b.try_withdraw(0.2, 3));
        assert!(b.try_withdraw(0.2, 3));
        assert!(!b.try_withdraw(0.2, 3));
    }
}
