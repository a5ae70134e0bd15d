//! Scheduling: `Filter → Scorer (weighted) → Picker`, as the Gateway API Inference Extension's
//! endpoint picker composes it. Each plugin is one small type behind one trait; a
//! [`SchedulingProfile`] runs them in order over a pool's endpoints for one request.
//!
//! Scores are in [0, 1]; the profile sums `weight × score` per endpoint and the picker chooses the
//! primary endpoint plus ordered fallbacks. Nothing here does I/O.

use rand::Rng;

use crate::endpoint::Endpoint;

/// What the scheduler knows about one request.
#[derive(Debug, Clone, Copy)]
pub struct SchedulingRequest<'a> {
    /// The model name sent upstream (base model or LoRA adapter).
    pub target_model: &'a str,
    /// Raw prompt bytes (chat `messages` JSON, or `prompt`) for prefix affinity.
    pub prompt: &'a [u8],
    /// InferenceObjective priority; negative is sheddable.
    pub priority: i32,
}

/// Removes endpoints that must not serve the request.
pub trait Filter: Send + Sync {
    fn name(&self) -> &'static str;
    fn filter(&self, req: &SchedulingRequest<'_>, candidates: &mut Vec<Endpoint>);
}

/// Rates each candidate in [0, 1]; higher is better. `out[i]` belongs to `candidates[i]`.
pub trait Scorer: Send + Sync {
    fn name(&self) -> &'static str;
    fn score(&self, req: &SchedulingRequest<'_>, candidates: &[Endpoint], out: &mut [f64]);
}

/// Chooses from scored candidates: indices of the primary then fallbacks, best first.
pub trait Picker: Send + Sync {
    fn name(&self) -> &'static str;
    fn pick(
        &self,
        candidates: &[Endpoint],
        scores: &[f64],
        rng: &mut dyn rand::RngCore,
    ) -> Vec<usize>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulingError {
    #[error("pool `{pool}` has no endpoints")]
    NoEndpoints { pool: String },
    #[error("no endpoint of pool `{pool}` can take the request (all {total} were filtered out)")]
    AllFiltered { pool: String, total: usize },
}

/// One scheduling profile: filters, weighted scorers, a picker.
pub struct SchedulingProfile {
    pub name: String,
    pub filters: Vec<Box<dyn Filter>>,
    pub scorers: Vec<(Box<dyn Scorer>, f64)>,
    pub picker: Box<dyn Picker>,
}

impl std::fmt::Debug for SchedulingProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulingProfile")
            .field("name", &self.name)
            .field(
                "filters",
                &self.filters.iter().map(|x| x.name()).collect::<Vec<_>>(),
            )
            .field(
                "scorers",
                &self
                    .scorers
                    .iter()
                    .map(|(s, w)| (s.name(), *w))
                    .collect::<Vec<_>>(),
            )
            .field("picker", &self.picker.name())
            .finish()
    }
}

impl SchedulingProfile {
    /// The basic profile: healthy endpoints, fewest requests in flight, random tie-break.
    pub fn least_outstanding() -> Self {
        Self {
            name: "least-outstanding".into(),
            filters: vec![Box::new(HealthyFilter)],
            scorers: vec![(Box::new(InFlightScorer), 1.0)],
            picker: Box::new(MaxScorePicker {
                max_endpoints: 1 + 2,
            }),
        }
    }

    /// Pick the primary endpoint and fallbacks for `req` among `endpoints`, skipping `exclude`
    /// (endpoints already tried for this request).
    pub fn pick_endpoint(
        &self,
        pool: &str,
        req: &SchedulingRequest<'_>,
        endpoints: &[Endpoint],
        exclude: &[Endpoint],
        rng: &mut dyn rand::RngCore,
    ) -> Result<Vec<Endpoint>, SchedulingError> {
        if endpoints.is_empty() {
            return Err(SchedulingError::NoEndpoints {
                pool: pool.to_string(),
            });
        }
        let mut candidates: Vec<Endpoint> = endpoints
            .iter()
            .filter(|e| !exclude.iter().any(|x| std::sync::Arc::ptr_eq(x, e)))
            .cloned()
            .collect();
        let total = endpoints.len();
        for f in &self.filters {
            if candidates.is_empty() {
                break;
            }
            f.filter(req, &mut candidates);
        }
        if candidates.is_empty() {
            return Err(SchedulingError::AllFiltered {
                pool: pool.to_string(),
                total,
            });
        }
        let mut total_scores = vec![0.0; candidates.len()];
        let mut scratch = vec![0.0; candidates.len()];
        for (scorer, weight) in &self.scorers {
            scratch.iter_mut().for_each(|s| *s = 0.0);
            scorer.score(req, &candidates, &mut scratch);
            for (t, s) in total_scores.iter_mut().zip(&scratch) {
                *t += weight * s.clamp(0.0, 1.0);
            }
        }
        let picked = self.picker.pick(&candidates, &total_scores, rng);
        Ok(picked.into_iter().map(|i| candidates[i].clone()).collect())
    }
}

/// Drops ejected endpoints — unless every endpoint is ejected, in which case it keeps them all
/// (a pool that looks fully dead is more often a transient blip than an outage; trying beats a
/// certain 503).
#[derive(Debug, Default)]
pub struct HealthyFilter;

impl Filter for HealthyFilter {
    fn name(&self) -> &'static str {
        "healthy-filter"
    }
    fn filter(&self, _req: &SchedulingRequest<'_>, candidates: &mut Vec<Endpoint>) {
        if candidates.iter().any(|e| !e.is_ejected()) {
            candidates.retain(|e| !e.is_ejected());
        }
    }
}

/// Fewer requests in flight from this gateway scores higher:
/// `(max − n) / (max − min)`, all equal → 1.
#[derive(Debug, Default)]
pub struct InFlightScorer;

impl Scorer for InFlightScorer {
    fn name(&self) -> &'static str {
        "running-requests-size-scorer"
    }
    fn score(&self, _req: &SchedulingRequest<'_>, candidates: &[Endpoint], out: &mut [f64]) {
        min_max_score(candidates.iter().map(|e| f64::from(e.in_flight())), out);
    }
}

/// `(max − x) / (max − min)` over the values; 1.0 for all when they are equal.
pub fn min_max_score(values: impl Iterator<Item = f64> + Clone, out: &mut [f64]) {
    let (min, max) = values
        .clone()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    for (o, v) in out.iter_mut().zip(values) {
        *o = if max > min {
            (max - v) / (max - min)
        } else {
            1.0
        };
    }
}

/// Highest total score first, ties broken at random; up to `max_endpoints` (primary + fallbacks).
#[derive(Debug)]
pub struct MaxScorePicker {
    pub max_endpoints: usize,
}

impl Picker for MaxScorePicker {
    fn name(&self) -> &'static str {
        "max-score-picker"
    }
    fn pick(
        &self,
        candidates: &[Endpoint],
        scores: &[f64],
        rng: &mut dyn rand::RngCore,
    ) -> Vec<usize> {
        // Random keys break ties without bias; sort is over a handful of endpoints.
        let mut order: Vec<(usize, f64, u32)> = (0..candidates.len())
            .map(|i| (i, scores[i], rng.random::<u32>()))
            .collect();
        order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
        order
            .into_iter()
            .take(self.max_endpoints.max(1))
            .map(|(i, ..)| i)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::{EndpointState, Failure};
    use infergate_control::EndpointSpec;
    use rand::SeedableRng;
    use std::sync::Arc;
    use std::time::Duration;

    fn eps(n: u16) -> Vec<Endpoint> {
        (0..n)
            .map(|i| {
                Arc::new(EndpointState::new(
                    "p".into(),
                    EndpointSpec {
                        name: format!("e{i}"),
                        address: "127.0.0.1".into(),
                        port: 8000 + i,
                        labels: Default::default(),
                    },
                ))
            })
            .collect()
    }

    const REQ: SchedulingRequest<'static> = SchedulingRequest {
        target_model: "m",
        prompt: b"",
        priority: 0,
    };

    #[test]
    fn picks_least_outstanding() {
        let eps = eps(3);
        let _a = eps[0].begin_request();
        let _b = eps[0].begin_request();
        let _c = eps[2].begin_request();
        let p = SchedulingProfile::least_outstanding();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let picked = p.pick_endpoint("p", &REQ, &eps, &[], &mut rng).unwrap();
        assert_eq!(picked[0].spec.port, 8001);
        assert_eq!(picked[1].spec.port, 8002);
        assert_eq!(picked[2].spec.port, 8000);
    }

    #[test]
    fn skips_ejected_and_excluded() {
        let eps = eps(3);
        eps[1].record_failure(Failure::Connect, 3, Duration::from_secs(60));
        let p = SchedulingProfile::least_outstanding();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        for _ in 0..50 {
            let picked = p
                .pick_endpoint("p", &REQ, &eps, &[eps[0].clone()], &mut rng)
                .unwrap();
            assert_eq!(picked.len(), 1);
            assert_eq!(picked[0].spec.port, 8002);
        }
    }

    #[test]
    fn all_ejected_still_tries() {
        let eps = eps(2);
        for e in &eps {
            e.record_failure(Failure::Connect, 3, Duration::from_secs(60));
        }
        let p = SchedulingProfile::least_outstanding();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        assert_eq!(
            p.pick_endpoint("p", &REQ, &eps, &[], &mut rng)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn ties_are_spread() {
        let eps = eps(4);
        let p = SchedulingProfile::least_outstanding();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(9);
        let mut counts = [0; 4];
        for _ in 0..4000 {
            let picked = p.pick_endpoint("p", &REQ, &eps, &[], &mut rng).unwrap();
            counts[usize::from(picked[0].spec.port - 8000)] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
    }

    #[test]
    fn empty_pool_is_an_error() {
        let p = SchedulingProfile::least_outstanding();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        assert!(matches!(
            p.pick_endpoint("p", &REQ, &[], &[], &mut rng),
            Err(SchedulingError::NoEndpoints { .. })
        ));
    }
}
