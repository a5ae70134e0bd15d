//! The settings that may change while a replica runs, and `POST /admin/config` updates to them.
//!
//! Owns the runtime-mutable subset of the configuration: latency, failure injection and fake
//! metrics. A replica keeps one immutable [`RuntimeSettings`] snapshot behind an `ArcSwap`;
//! requests load it once and an update swaps in a new one, so the hot path takes no lock.

use std::time::Instant;

use serde::{Deserialize, Deserializer, Serialize};

use crate::config::{LatencyCalculator, SimConfig};
use crate::duration::deserialize_opt_millis;
use crate::error::SimError;
use crate::failure::FailureType;
use crate::fake_metrics::FakeMetrics;
use crate::latency::LatencyParams;

/// A snapshot of the runtime-mutable settings.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct RuntimeSettings {
    #[serde(flatten)]
    pub(crate) latency: LatencyParams,
    pub(crate) failure_injection_rate: f64,
    pub(crate) failure_types: Vec<FailureType>,
    pub(crate) fake_metrics: Option<FakeMetrics>,
    /// When the fake metrics were set (generators run from here).
    #[serde(skip)]
    pub(crate) fake_metrics_since: Instant,
}

/// A partial update: absent keys keep their value; `"fake-metrics": null` clears fake metrics.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct AdminUpdate {
    #[serde(default, deserialize_with = "deserialize_fake_metrics_update")]
    fake_metrics: Option<Option<FakeMetrics>>,
    failure_injection_rate: Option<f64>,
    failure_types: Option<Vec<FailureType>>,
    latency_calculator: Option<LatencyCalculator>,
    #[serde(default, deserialize_with = "deserialize_opt_millis")]
    time_to_first_token: Option<f64>,
    #[serde(default, deserialize_with = "deserialize_opt_millis")]
    time_to_first_token_std_dev: Option<f64>,
    #[serde(default, deserialize_with = "deserialize_opt_millis")]
    inter_token_latency: Option<f64>,
    #[serde(default, deserialize_with = "deserialize_opt_millis")]
    inter_token_latency_std_dev: Option<f64>,
    #[serde(default, deserialize_with = "deserialize_opt_millis")]
    prefill_overhead: Option<f64>,
    #[serde(default, deserialize_with = "deserialize_opt_millis")]
    prefill_time_per_token: Option<f64>,
    #[serde(default, deserialize_with = "deserialize_opt_millis")]
    prefill_time_std_dev: Option<f64>,
    time_factor_under_load: Option<f64>,
    time_scale: Option<f64>,
}

/// `fake-metrics` may be an object, a JSON string (as on the command line), or null (clear).
fn deserialize_fake_metrics_update<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<FakeMetrics>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Map(FakeMetrics),
    }
    Ok(Some(match Option::<Raw>::deserialize(d)? {
        None => None,
        Some(Raw::Text(t)) => Some(FakeMetrics::parse(&t).map_err(serde::de::Error::custom)?),
        Some(Raw::Map(m)) => Some(m),
    }))
}

impl RuntimeSettings {
    pub(crate) fn from_config(c: &SimConfig) -> Self {
        Self {
            latency: LatencyParams::from_config(c),
            failure_injection_rate: c.failure_injection_rate,
            failure_types: c.failure_types.clone(),
            fake_metrics: c.fake_metrics.clone(),
            fake_metrics_since: Instant::now(),
        }
    }

    /// The settings after `update`, or why it is refused (nothing changes then).
    pub(crate) fn updated(&self, update: AdminUpdate) -> Result<RuntimeSettings, SimError> {
        let mut next = self.clone();
        if let Some(fake) = update.fake_metrics {
            next.fake_metrics = fake;
            next.fake_metrics_since = Instant::now();
        }
        if let Some(rate) = update.failure_injection_rate {
            if !(0.0..=100.0).contains(&rate) {
                return Err(SimError::InvalidConfig(
                    "failure-injection-rate must be between 0 and 100".into(),
                ));
            }
            next.failure_injection_rate = rate;
        }
        if let Some(types) = update.failure_types {
            next.failure_types = types;
        }
        let l = &mut next.latency;
        if let Some(v) = update.latency_calculator {
            l.latency_calculator = v;
        }
        let durations = [
            (update.time_to_first_token, &mut l.time_to_first_token),
            (
                update.time_to_first_token_std_dev,
                &mut l.time_to_first_token_std_dev,
            ),
            (update.inter_token_latency, &mut l.inter_token_latency),
            (
                update.inter_token_latency_std_dev,
                &mut l.inter_token_latency_std_dev,
            ),
            (update.prefill_overhead, &mut l.prefill_overhead),
            (update.prefill_time_per_token, &mut l.prefill_time_per_token),
            (update.prefill_time_std_dev, &mut l.prefill_time_std_dev),
        ];
        for (value, slot) in durations {
            if let Some(v) = value {
                *slot = v;
            }
        }
        if let Some(f) = update.time_factor_under_load {
            if !(f.is_finite() && f >= 1.0) {
                return Err(SimError::InvalidConfig(
                    "time-factor-under-load must be ≥ 1.0".into(),
                ));
            }
            l.time_factor_under_load = f;
        }
        if let Some(s) = update.time_scale {
            if !(s.is_finite() && s >= 0.0) {
                return Err(SimError::InvalidConfig(
                    "time-scale must be a non-negative number".into(),
                ));
            }
            l.time_scale = s;
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(json: &str) -> AdminUpdate {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn partial_update_changes_only_given_keys() {
        let base = RuntimeSettings::from_config(&SimConfig {
            inter_token_latency: 5.0,
            ..SimConfig::default()
        });
        let next = base
            .updated(update(r#"{"time-to-first-token":"250ms","failure-injection-rate":50,"failure-types":["rate_limit"]}"#))
            .unwrap();
        assert_eq!(next.latency.time_to_first_token, 250.0);
        assert_eq!(next.latency.inter_token_latency, 5.0);
        assert_eq!(next.failure_injection_rate, 50.0);
        assert_eq!(next.failure_types, vec![FailureType::RateLimit]);
    }

    #[test]
    fn fake_metrics_set_as_object_or_string_and_cleared_with_null() {
        let base = RuntimeSettings::from_config(&SimConfig::default());
        let set = base
            .updated(update(r#"{"fake-metrics":{"running-requests":4}}"#))
            .unwrap();
        assert!(set.fake_metrics.is_some());
        let set2 = base
            .updated(update(r#"{"fake-metrics":"{\"waiting-requests\":9}"}"#))
            .unwrap();
        assert!(set2.fake_metrics.is_some());
        let kept = set.updated(update(r#"{"time-scale":0.5}"#)).unwrap();
        assert!(kept.fake_metrics.is_some());
        let cleared = set.updated(update(r#"{"fake-metrics":null}"#)).unwrap();
        assert!(cleared.fake_metrics.is_none());
    }

    #[test]
    fn invalid_updates_are_refused() {
        let base = RuntimeSettings::from_config(&SimConfig::default());
        assert!(base
            .updated(update(r#"{"failure-injection-rate":150}"#))
            .is_err());
        assert!(base
            .updated(update(r#"{"time-factor-under-load":0.5}"#))
            .is_err());
        assert!(serde_json::from_str::<AdminUpdate>(r#"{"max-num-seqs":3}"#).is_err());
        assert!(serde_json::from_str::<AdminUpdate>(r#"{"time-to-first-token":"soon"}"#).is_err());
    }

    #[test]
    fn settings_serialize_with_flag_names() {
        let v = serde_json::to_value(RuntimeSettings::from_config(&SimConfig::default())).unwrap();
        for key in [
            "time-to-first-token",
            "inter-token-latency",
            "failure-injection-rate",
            "fake-metrics",
            "time-scale",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
    }
}
