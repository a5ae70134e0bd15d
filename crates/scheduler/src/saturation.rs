//! Saturation detection: is the pool too busy to take more work right now? Flow control holds
//! requests back (and sheds sheddable ones) while it is.
//!
//! - `utilization-detector` (the anchor's default): per endpoint
//!   `max(queue / queueDepthThreshold, kv / kvCacheUtilThreshold)`, 1.0 when its metrics are
//!   older than `metricsStalenessThreshold` (200 ms); the pool's saturation is the mean; ≥ 1.0 is
//!   saturated. An endpoint never scraped yet (the gateway just started, or it exports no
//!   metrics) counts the gateway's own in-flight requests as its queue instead of being "full",
//!   so a fresh gateway does not shed its first sheddable requests. The queue is the scraped queue plus what the gateway sent since the scrape.
//!   Ejected endpoints are left out (they take no traffic) unless every endpoint is ejected.
//! - `concurrency-detector`: the gateway's own in-flight requests (or tokens) over
//!   `maxConcurrency` per endpoint.
//!
//! Pure: reads endpoint state, never waits.

use infergate_control::picker::{ConcurrencyMode, ConcurrencyParams, UtilizationParams};

use crate::endpoint::Endpoint;

#[derive(Debug, Clone)]
pub enum SaturationDetector {
    Utilization(UtilizationParams),
    Concurrency(ConcurrencyParams),
}

impl SaturationDetector {
    /// One endpoint's utilisation (≥ 1.0 = full).
    pub fn endpoint_score(&self, ep: &Endpoint, now_ms: u64) -> f64 {
        match self {
            SaturationDetector::Utilization(p) => {
                let Some(m) = ep.metrics() else {
                    // Not scraped yet (just started, or it exports no metrics): what this
                    // gateway has in flight there stands in for its queue.
                    return f64::from(ep.in_flight()) / p.queue_depth_threshold;
                };
                let stale_ms =
                    u64::try_from(p.metrics_staleness_threshold.get().as_millis()).unwrap_or(0);
                if now_ms.saturating_sub(m.updated_ms) > stale_ms {
                    return 1.0;
                }
                let q = ep.queue_estimate().unwrap_or(m.waiting);
                (q / p.queue_depth_threshold).max(m.kv_usage / p.kv_cache_util_threshold)
            }
            SaturationDetector::Concurrency(p) => match p.concurrency_mode {
                ConcurrencyMode::Requests => {
                    f64::from(ep.in_flight()) / p.max_concurrency.max(1) as f64
                }
                ConcurrencyMode::Tokens => {
                    ep.in_flight_tokens() as f64 / p.max_token_concurrency.max(1) as f64
                }
            },
        }
    }

    /// The pool's saturation: the mean over endpoints in service (all of them when none is).
    pub fn pool_saturation(&self, endpoints: &[Endpoint], now_ms: u64) -> f64 {
        let serving = endpoints.iter().filter(|e| !e.is_ejected()).count();
        let (sum, n) = endpoints
            .iter()
            .filter(|e| serving == 0 || !e.is_ejected())
            .fold((0.0, 0usize), |(s, n), e| {
                (s + self.endpoint_score(e, now_ms), n + 1)
            });
        if n == 0 {
            // No endpoints: nothing can be sent; report full.
            return 1.0;
        }
        sum / n as f64
    }

    /// `headroom` on top of the thresholds.
    pub fn headroom(&self) -> f64 {
        match self {
            SaturationDetector::Utilization(p) => p.headroom,
            SaturationDetector::Concurrency(p) => p.headroom,
        }
    }

    pub fn is_saturated(&self, endpoints: &[Endpoint], now_ms: u64) -> bool {
        self.pool_saturation(endpoints, now_ms) >= 1.0 + self.headroom()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::{now_ms, EndpointState};
    use crate::signals::EndpointMetrics;
    use infergate_control::EndpointSpec;
    use std::sync::Arc;

    fn ep(port: u16) -> Endpoint {
        Arc::new(EndpointState::new(
            "p".into(),
            EndpointSpec {
                name: format!("e{port}"),
                address: "127.0.0.1".into(),
                port,
                labels: Default::default(),
            },
        ))
    }

    fn metrics(waiting: f64, kv: f64) -> EndpointMetrics {
        EndpointMetrics {
            waiting,
            kv_usage: kv,
            ..EndpointMetrics::default()
        }
    }

    #[test]
    fn utilization_roofline_with_anchor_defaults() {
        let d = SaturationDetector::Utilization(UtilizationParams::default());
        let (a, b) = (ep(1), ep(2));
        a.set_metrics(metrics(5.0, 0.1)); // queue 5/5 = 1.0
        b.set_metrics(metrics(0.0, 0.4)); // kv 0.4/0.8 = 0.5
        let now = now_ms();
        assert!((d.endpoint_score(&a, now) - 1.0).abs() < 1e-9);
        assert!((d.endpoint_score(&b, now) - 0.5).abs() < 1e-9);
        let pool = [a, b.clone()];
        assert!((d.pool_saturation(&pool, now) - 0.75).abs() < 1e-9);
        assert!(!d.is_saturated(&pool, now));
        b.set_metrics(metrics(0.0, 0.8));
        assert!(d.is_saturated(&pool, now_ms()));
    }

    #[test]
    fn stale_metrics_count_as_full_and_missing_ones_as_in_flight() {
        let d = SaturationDetector::Utilization(UtilizationParams::default());
        let a = ep(1);
        assert_eq!(d.endpoint_score(&a, now_ms()), 0.0);
        let g: Vec<_> = (0..5).map(|_| a.begin_request()).collect();
        assert_eq!(d.endpoint_score(&a, now_ms()), 1.0);
        drop(g);
        a.set_metrics(metrics(0.0, 0.0));
        let now = now_ms();
        assert_eq!(d.endpoint_score(&a, now), 0.0);
        assert_eq!(d.endpoint_score(&a, now + 201), 1.0);
    }

    #[test]
    fn requests_sent_since_the_scrape_count_as_queued() {
        let d = SaturationDetector::Utilization(UtilizationParams::default());
        let a = ep(1);
        a.set_metrics(metrics(2.0, 0.0));
        let guards: Vec<_> = (0..3).map(|_| a.begin_request()).collect();
        assert_eq!(a.queue_estimate(), Some(5.0));
        assert!(d.is_saturated(std::slice::from_ref(&a), now_ms()));
        drop(guards);
        assert_eq!(a.queue_estimate(), Some(2.0));
    }

    #[test]
    fn ejected_endpoints_are_left_out() {
        let d = SaturationDetector::Utilization(UtilizationParams::default());
        let (a, b) = (ep(1), ep(2));
        a.set_metrics(metrics(0.0, 0.0));
        b.record_failure(
            crate::endpoint::Failure::Connect,
            3,
            std::time::Duration::from_secs(60),
        );
        assert_eq!(d.pool_saturation(&[a, b], now_ms()), 0.0);
    }

    #[test]
    fn concurrency_detector_counts_in_flight() {
        let d = SaturationDetector::Concurrency(ConcurrencyParams {
            max_concurrency: 2,
            ..ConcurrencyParams::default()
        });
        let a = ep(1);
        let _g1 = a.begin_request();
        assert!(!d.is_saturated(std::slice::from_ref(&a), 0));
        let _g2 = a.begin_request();
        assert!(d.is_saturated(std::slice::from_ref(&a), 0));
    }
}
