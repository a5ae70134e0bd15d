//! The latency model: how long prefill and each decode step take for one request.
//!
//! Owns the formulas (llm-d-inference-sim's, see `docs/latency-simulation.md` there):
//! - constant: `prefill = time-to-first-token`;
//! - per-token: `prefill = prefill-overhead + (prompt_tokens − cached_tokens) × prefill-time-per-token`;
//! - decode: each token after the first takes `inter-token-latency`;
//! - every mean gets Gaussian jitter from its `-std-dev` companion, the deviation capped at 30% of
//!   the mean and each sample clamped to mean ± 70%;
//! - under load the GPU-bound times are multiplied by a factor growing linearly from 1.0 (this
//!   request alone) to `time-factor-under-load` (`max-num-seqs` requests running);
//! - `time-scale` multiplies everything last.
//!
//! Pure computation: it never sleeps and never reads a clock; callers do.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{LatencyCalculator, SimConfig};
use crate::rng::SimRng;

/// Largest standard deviation, as a fraction of the mean.
const MAX_STD_DEV_FRACTION: f64 = 0.3;
/// Largest deviation of one sample from the mean, as a fraction of the mean.
const MAX_DEVIATION_FRACTION: f64 = 0.7;

/// Latency settings, all durations in milliseconds. Changeable at runtime (`/admin/config`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct LatencyParams {
    pub(crate) latency_calculator: LatencyCalculator,
    pub(crate) time_to_first_token: f64,
    pub(crate) time_to_first_token_std_dev: f64,
    pub(crate) inter_token_latency: f64,
    pub(crate) inter_token_latency_std_dev: f64,
    pub(crate) prefill_overhead: f64,
    pub(crate) prefill_time_per_token: f64,
    pub(crate) prefill_time_std_dev: f64,
    pub(crate) time_factor_under_load: f64,
    pub(crate) time_scale: f64,
}

impl LatencyParams {
    pub(crate) fn from_config(c: &SimConfig) -> Self {
        Self {
            latency_calculator: c.latency_calculator,
            time_to_first_token: c.time_to_first_token,
            time_to_first_token_std_dev: c.time_to_first_token_std_dev,
            inter_token_latency: c.inter_token_latency,
            inter_token_latency_std_dev: c.inter_token_latency_std_dev,
            prefill_overhead: c.prefill_overhead,
            prefill_time_per_token: c.prefill_time_per_token,
            prefill_time_std_dev: c.prefill_time_std_dev,
            time_factor_under_load: c.time_factor_under_load,
            time_scale: c.time_scale,
        }
    }

    /// The calculator in effect (`auto` resolved).
    pub(crate) fn calculator(&self) -> LatencyCalculator {
        match self.latency_calculator {
            LatencyCalculator::Auto
                if self.prefill_overhead > 0.0 || self.prefill_time_per_token > 0.0 =>
            {
                LatencyCalculator::PerToken
            }
            LatencyCalculator::Auto => LatencyCalculator::Constant,
            other => other,
        }
    }

    /// True when no simulated time passes at all (the zero-latency fast path: no timers).
    pub(crate) fn is_zero(&self) -> bool {
        self.time_scale == 0.0
            || (self.inter_token_latency == 0.0
                && match self.calculator() {
                    LatencyCalculator::PerToken => {
                        self.prefill_overhead == 0.0 && self.prefill_time_per_token == 0.0
                    }
                    _ => self.time_to_first_token == 0.0,
                })
    }

    /// The load multiplier with `running` requests running (this one included) out of
    /// `max_num_seqs`: 1.0 alone, `time-factor-under-load` when full.
    pub(crate) fn load_factor(&self, running: usize, max_num_seqs: usize) -> f64 {
        let full = self.time_factor_under_load;
        if full <= 1.0 {
            return 1.0;
        }
        if max_num_seqs <= 1 {
            return full;
        }
        let busy = running.clamp(1, max_num_seqs) - 1;
        1.0 + (full - 1.0) * busy as f64 / (max_num_seqs - 1) as f64
    }

    /// Time from admission to the first token.
    pub(crate) fn prefill(
        &self,
        prompt_tokens: usize,
        cached_tokens: usize,
        load: f64,
        rng: &mut SimRng,
    ) -> Duration {
        let ms = match self.calculator() {
            LatencyCalculator::PerToken => {
                let uncached = prompt_tokens.saturating_sub(cached_tokens) as f64;
                let mean = self.prefill_overhead + uncached * self.prefill_time_per_token;
                sample(mean, self.prefill_time_std_dev, rng)
            }
            _ => sample(
                self.time_to_first_token,
                self.time_to_first_token_std_dev,
                rng,
            ),
        };
        self.scaled(ms * load)
    }

    /// Time between two output tokens.
    pub(crate) fn inter_token(&self, load: f64, rng: &mut SimRng) -> Duration {
        self.scaled(
            sample(
                self.inter_token_latency,
                self.inter_token_latency_std_dev,
                rng,
            ) * load,
        )
    }

    /// Total decode time for `steps` tokens after the first, in one draw: the sum of `steps`
    /// independent samples has mean `steps × ITL` and deviation `σ × √steps`.
    pub(crate) fn decode(&self, steps: u32, load: f64, rng: &mut SimRng) -> Duration {
        if steps == 0 {
            return Duration::ZERO;
        }
        let n = f64::from(steps);
        let std = self
            .inter_token_latency_std_dev
            .min(MAX_STD_DEV_FRACTION * self.inter_token_latency);
        self.scaled(sample(self.inter_token_latency * n, std * n.sqrt(), rng) * load)
    }

    fn scaled(&self, ms: f64) -> Duration {
        let secs = ms * self.time_scale / 1000.0;
        if secs.is_finite() && secs > 0.0 {
            Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
        } else {
            Duration::ZERO
        }
    }
}

/// One jittered sample of `mean` (ms).
fn sample(mean: f64, std_dev: f64, rng: &mut SimRng) -> f64 {
    if mean <= 0.0 {
        return 0.0;
    }
    let std = std_dev.min(MAX_STD_DEV_FRACTION * mean);
    if std <= 0.0 {
        return mean;
    }
    let v = mean + std * rng.standard_normal();
    v.clamp(
        mean * (1.0 - MAX_DEVIATION_FRACTION),
        mean * (1.0 + MAX_DEVIATION_FRACTION),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> LatencyParams {
        LatencyParams::from_config(&SimConfig::default())
    }

    fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1000.0
    }

    #[test]
    fn defaults_are_zero_latency() {
        let p = params();
        assert!(p.is_zero());
        let mut rng = SimRng::new(0);
        assert_eq!(p.prefill(1000, 0, 1.0, &mut rng), Duration::ZERO);
        assert_eq!(p.decode(100, 1.0, &mut rng), Duration::ZERO);
    }

    #[test]
    fn constant_mode_uses_ttft() {
        let p = LatencyParams {
            time_to_first_token: 100.0,
            ..params()
        };
        assert_eq!(p.calculator(), LatencyCalculator::Constant);
        assert!(!p.is_zero());
        let mut rng = SimRng::new(0);
        assert_eq!(ms(p.prefill(5000, 0, 1.0, &mut rng)), 100.0);
    }

    #[test]
    fn per_token_prefill_counts_only_uncached_tokens() {
        let p = LatencyParams {
            prefill_overhead: 10.0,
            prefill_time_per_token: 0.5,
            ..params()
        };
        assert_eq!(p.calculator(), LatencyCalculator::PerToken);
        let mut rng = SimRng::new(0);
        let cold = ms(p.prefill(1000, 0, 1.0, &mut rng));
        let warm = ms(p.prefill(1000, 800, 1.0, &mut rng));
        assert!((cold - 510.0).abs() < 1e-6, "{cold}");
        assert!((warm - 110.0).abs() < 1e-6, "{warm}");
        // cached beyond the prompt never goes negative
        assert!((ms(p.prefill(10, 50, 1.0, &mut rng)) - 10.0).abs() < 1e-6);
    }

    #[test]
    fn jitter_is_capped_and_clamped() {
        let p = LatencyParams {
            time_to_first_token: 100.0,
            time_to_first_token_std_dev: 1000.0,
            ..params()
        };
        let mut rng = SimRng::new(9);
        let samples: Vec<f64> = (0..5000)
            .map(|_| ms(p.prefill(1, 0, 1.0, &mut rng)))
            .collect();
        assert!(samples
            .iter()
            .all(|&s| (30.0 - 1e-9..=170.0 + 1e-9).contains(&s)));
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        assert!((mean - 100.0).abs() < 3.0, "{mean}");
        // the std-dev is capped at 30 ms, so most samples stay within 2σ = 60 ms
        let within = samples
            .iter()
            .filter(|&&s| (s - 100.0).abs() <= 60.0)
            .count();
        assert!(within as f64 / samples.len() as f64 > 0.9);
    }

    #[test]
    fn load_factor_grows_linearly_to_the_full_factor() {
        let p = LatencyParams {
            time_factor_under_load: 3.0,
            ..params()
        };
        assert_eq!(p.load_factor(1, 5), 1.0);
        assert_eq!(p.load_factor(3, 5), 2.0);
        assert_eq!(p.load_factor(5, 5), 3.0);
        assert_eq!(p.load_factor(50, 5), 3.0);
        assert_eq!(p.load_factor(1, 1), 3.0);
        assert_eq!(params().load_factor(5, 5), 1.0);
    }

    #[test]
    fn decode_and_time_scale() {
        let p = LatencyParams {
            inter_token_latency: 10.0,
            time_scale: 0.5,
            ..params()
        };
        let mut rng = SimRng::new(0);
        assert!((ms(p.decode(9, 1.0, &mut rng)) - 45.0).abs() < 1e-6);
        assert!((ms(p.decode(9, 2.0, &mut rng)) - 90.0).abs() < 1e-6);
        assert!((ms(p.inter_token(1.0, &mut rng)) - 5.0).abs() < 1e-6);
        assert_eq!(p.decode(0, 1.0, &mut rng), Duration::ZERO);
        let zero = LatencyParams {
            time_scale: 0.0,
            ..p
        };
        assert!(zero.is_zero());
    }
}
