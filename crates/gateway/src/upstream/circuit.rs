//! Per-target circuit breaking. After `consecutiveFailures` failures in a row (connect errors,
//! timeouts, 5xx, 429) a target's circuit opens: requests skip it — no upstream attempt at all —
//! for the cool-down. Then one trial request per cool-down is let through (half-open); a success
//! closes the circuit, a failure opens it again.
//!
//! State is atomics (no lock on the hot path) and lives in a registry keyed by target, shared by
//! consecutive configuration snapshots so a reload neither resets nor leaks it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use infergate_control::{CircuitSettings, RouteUpstream};
use infergate_scheduler::now_ms;

#[derive(Debug, Default)]
pub struct Circuit {
    failures: AtomicU32,
    /// Monotonic ms the circuit stays open until; 0 = closed.
    open_until: AtomicU64,
    /// When the last half-open trial was let through.
    probe_at: AtomicU64,
    pub opened: AtomicU64,
}

/// What a state change means for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    Opened,
    Closed,
}

impl Circuit {
    /// May a request be sent now?
    pub fn allow(&self, settings: CircuitSettings) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = now_ms();
        if now < until {
            return false;
        }
        // Half-open: one trial per cool-down.
        let cooldown = u64::try_from(settings.cooldown.as_millis()).unwrap_or(u64::MAX);
        let last = self.probe_at.load(Ordering::Acquire);
        if last >= until && now < last.saturating_add(cooldown) {
            return false;
        }
        self.probe_at
            .compare_exchange(last, now.max(until), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Acquire) != 0
    }

    pub fn record_success(&self) -> Transition {
        self.failures.store(0, Ordering::Release);
        if self.open_until.swap(0, Ordering::AcqRel) != 0 {
            Transition::Closed
        } else {
            Transition::None
        }
    }

    pub fn record_failure(&self, settings: CircuitSettings) -> Transition {
        if settings.consecutive_failures == 0 {
            return Transition::None;
        }
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        let was_open = self.open_until.load(Ordering::Acquire) != 0;
        if was_open || n >= settings.consecutive_failures {
            let cooldown = u64::try_from(settings.cooldown.as_millis()).unwrap_or(u64::MAX);
            self.open_until
                .store(now_ms().saturating_add(cooldown).max(1), Ordering::Release);
            if !was_open {
                self.opened.fetch_add(1, Ordering::Relaxed);
                return Transition::Opened;
            }
        }
        Transition::None
    }
}

/// Circuits by target, surviving reloads.
#[derive(Debug, Default)]
pub struct CircuitRegistry {
    map: Mutex<HashMap<RouteUpstream, Arc<Circuit>>>,
}

impl CircuitRegistry {
    /// The circuit of a target (created on first use). Called at snapshot build, not per request.
    pub fn get(&self, upstream: &RouteUpstream) -> Arc<Circuit> {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(upstream.clone()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn opens_after_threshold_and_closes_after_a_good_trial() {
        let s = CircuitSettings {
            consecutive_failures: 3,
            cooldown: Duration::from_millis(50),
        };
        let c = Circuit::default();
        assert_eq!(c.record_failure(s), Transition::None);
        assert_eq!(c.record_failure(s), Transition::None);
        assert!(c.allow(s));
        assert_eq!(c.record_failure(s), Transition::Opened);
        assert!(!c.allow(s), "open: no attempts");
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.allow(s), "half-open: one trial");
        assert!(!c.allow(s), "only one trial per cool-down");
        assert_eq!(c.record_failure(s), Transition::None);
        assert!(!c.allow(s), "the failed trial reopens it");
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.allow(s));
        assert_eq!(c.record_success(), Transition::Closed);
        assert!(c.allow(s) && c.allow(s));
    }

    #[test]
    fn zero_threshold_never_opens() {
        let s = CircuitSettings {
            consecutive_failures: 0,
            cooldown: Duration::from_secs(1),
        };
        let c = Circuit::default();
        for _ in 0..100 {
            c.record_failure(s);
        }
        assert!(c.allow(s));
    }
}
