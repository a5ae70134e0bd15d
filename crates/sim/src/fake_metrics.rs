//! Fake metrics: operator-chosen values that replace what `/metrics` reports.
//!
//! Owns the `--fake-metrics` JSON schema (llm-d-inference-sim compatible keys) and the value
//! generators. Scorer and saturation tests use it to put a replica in a known state without
//! generating real load. It only changes what is *reported*; the engine keeps scheduling real
//! requests as usual.
//!
//! Keys: `running-requests`, `waiting-requests`, `kv-cache-usage` (each a number or a generator
//! string `fun:start:end:period`, `fun` ∈ `oscillate|ramp|rampreset|squarewave`, `period` a
//! duration such as `5s`), and `loras`: a list of `{"running":"a,b","waiting":"c","timestamp":T}`
//! series for `vllm:lora_requests_info`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::duration::parse_millis;

/// The values `/metrics` reports instead of the real ones. Absent keys keep the real value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FakeMetrics {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_requests: Option<FakeValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_requests: Option<FakeValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache_usage: Option<FakeValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loras: Vec<FakeLora>,
}

impl FakeMetrics {
    /// Parses the `--fake-metrics` JSON text.
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("invalid --fake-metrics JSON: {e}"))
    }
}

/// One `vllm:lora_requests_info` series.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FakeLora {
    /// Comma-separated running adapters.
    #[serde(default)]
    pub running: String,
    /// Comma-separated waiting adapters.
    #[serde(default)]
    pub waiting: String,
    /// The series value (unix seconds); defaults to the time of the scrape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<f64>,
}

/// A constant or a time-varying fake value.
#[derive(Clone, Debug, PartialEq)]
pub enum FakeValue {
    Constant(f64),
    Generated(Generator),
}

/// `fun:start:end:period`.
#[derive(Clone, Debug, PartialEq)]
pub struct Generator {
    pub shape: Shape,
    pub start: f64,
    pub end: f64,
    pub period: Duration,
}

/// The generator shapes, one period each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// start → end → start, smoothly (raised cosine).
    Oscillate,
    /// start → end linearly, then stays at end.
    Ramp,
    /// start → end linearly, then jumps back to start (sawtooth).
    RampReset,
    /// start for the first half period, end for the second.
    SquareWave,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Oscillate => "oscillate",
            Shape::Ramp => "ramp",
            Shape::RampReset => "rampreset",
            Shape::SquareWave => "squarewave",
        }
    }
}

impl FakeValue {
    /// The value `elapsed` after the fake metrics were set.
    pub fn value_at(&self, elapsed: Duration) -> f64 {
        match self {
            FakeValue::Constant(v) => *v,
            FakeValue::Generated(g) => g.value_at(elapsed),
        }
    }

    fn parse(text: &str) -> Result<Self, String> {
        if let Ok(v) = text.trim().parse::<f64>() {
            return Ok(FakeValue::Constant(v));
        }
        let parts: Vec<&str> = text.split(':').collect();
        let [fun, start, end, period] = parts.as_slice() else {
            return Err(format!(
                "invalid fake metric {text:?}: expected a number or fun:start:end:period"
            ));
        };
        let shape = match *fun {
            "oscillate" => Shape::Oscillate,
            "ramp" => Shape::Ramp,
            "rampreset" => Shape::RampReset,
            "squarewave" => Shape::SquareWave,
            other => {
                return Err(format!(
                    "unknown fake metric generator {other:?} (use oscillate, ramp, rampreset or squarewave)"
                ))
            }
        };
        let num = |s: &str| {
            s.trim()
                .parse::<f64>()
                .map_err(|_| format!("invalid number {s:?} in fake metric {text:?}"))
        };
        let period_ms = parse_millis(period)?;
        if period_ms <= 0.0 {
            return Err(format!("fake metric {text:?}: period must be positive"));
        }
        Ok(FakeValue::Generated(Generator {
            shape,
            start: num(start)?,
            end: num(end)?,
            period: Duration::from_secs_f64(period_ms / 1000.0),
        }))
    }
}

impl Generator {
    fn value_at(&self, elapsed: Duration) -> f64 {
        let period = self.period.as_secs_f64();
        let t = elapsed.as_secs_f64();
        let phase = (t % period) / period; // in [0, 1)
        let span = self.end - self.start;
        match self.shape {
            Shape::Oscillate => {
                self.start + span * (1.0 - (std::f64::consts::TAU * phase).cos()) / 2.0
            }
            Shape::Ramp => self.start + span * (t / period).min(1.0),
            Shape::RampReset => self.start + span * phase,
            Shape::SquareWave => {
                if phase < 0.5 {
                    self.start
                } else {
                    self.end
                }
            }
        }
    }
}

impl fmt::Display for FakeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FakeValue::Constant(v) => write!(f, "{v}"),
            FakeValue::Generated(g) => {
                write!(
                    f,
                    "{}:{}:{}:{}ms",
                    g.shape.name(),
                    g.start,
                    g.end,
                    g.period.as_secs_f64() * 1000.0
                )
            }
        }
    }
}

impl Serialize for FakeValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FakeValue::Constant(v) => s.serialize_f64(*v),
            FakeValue::Generated(_) => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for FakeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(v) => Ok(FakeValue::Constant(v)),
            Raw::Text(t) => FakeValue::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_llm_d_example() {
        let f = FakeMetrics::parse(
            r#"{"running-requests":"oscillate:0:10:5s","waiting-requests":30,"kv-cache-usage":0.4,
                "loras":[{"running":"a,b","waiting":"c","timestamp":1257894567}]}"#,
        )
        .unwrap();
        assert_eq!(f.waiting_requests, Some(FakeValue::Constant(30.0)));
        assert_eq!(f.kv_cache_usage, Some(FakeValue::Constant(0.4)));
        assert_eq!(f.loras[0].running, "a,b");
        let Some(FakeValue::Generated(g)) = &f.running_requests else {
            panic!("expected generator")
        };
        assert_eq!(g.shape, Shape::Oscillate);
        assert_eq!(g.period, Duration::from_secs(5));
    }

    #[test]
    fn rejects_unknown_keys_and_generators() {
        assert!(FakeMetrics::parse(r#"{"running":3}"#).is_err());
        assert!(FakeMetrics::parse(r#"{"running-requests":"zigzag:0:1:1s"}"#).is_err());
        assert!(FakeMetrics::parse(r#"{"running-requests":"ramp:0:1:0s"}"#).is_err());
    }

    #[test]
    fn generator_shapes() {
        let g = |shape| Generator {
            shape,
            start: 0.0,
            end: 10.0,
            period: Duration::from_secs(4),
        };
        let at = |g: &Generator, s: f64| g.value_at(Duration::from_secs_f64(s));
        let osc = g(Shape::Oscillate);
        assert!(at(&osc, 0.0).abs() < 1e-9);
        assert!((at(&osc, 2.0) - 10.0).abs() < 1e-9);
        assert!(at(&osc, 4.0).abs() < 1e-9);
        let ramp = g(Shape::Ramp);
        assert!((at(&ramp, 1.0) - 2.5).abs() < 1e-9);
        assert!((at(&ramp, 9.0) - 10.0).abs() < 1e-9);
        let saw = g(Shape::RampReset);
        assert!((at(&saw, 5.0) - 2.5).abs() < 1e-9);
        let sq = g(Shape::SquareWave);
        assert_eq!(at(&sq, 1.0), 0.0);
        assert_eq!(at(&sq, 3.0), 10.0);
    }

    #[test]
    fn round_trips_through_json() {
        let text = r#"{"running-requests":"squarewave:1:5:2s","kv-cache-usage":0.25}"#;
        let f = FakeMetrics::parse(text).unwrap();
        let again = FakeMetrics::parse(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(f, again);
    }
}
