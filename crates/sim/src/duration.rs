//! Parsing of the simulator's duration settings.
//!
//! Every duration flag is held as milliseconds in an `f64` (sub-millisecond values such as a
//! 250 µs per-token prefill matter). Inputs may be a bare number (milliseconds, the unit the
//! flags document) or a Go-style duration string as llm-d-inference-sim accepts (`100ms`,
//! `1.5s`, `250us`), so its latency profiles can be reused unchanged.

use serde::{Deserialize, Deserializer};

/// Parses `"100"`, `"100ms"`, `"1.5s"`, `"250us"`, `"250µs"`, `"2m"`, `"10ns"` into milliseconds.
pub(crate) fn parse_millis(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| {
            !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E')
        })
        .unwrap_or(t.len());
    // "1e3" is a number; but "1s"/"1ms" must not treat the unit as exponent — units never start with 'e'.
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| {
        format!(
            "invalid duration {text:?}: expected milliseconds or a value like 100ms, 1.5s, 250us"
        )
    })?;
    let factor = match unit.trim() {
        "" | "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "us" | "µs" => 0.001,
        "ns" => 0.000_001,
        other => {
            return Err(format!(
                "invalid duration unit {other:?} in {text:?} (use ns, us, ms, s or m)"
            ))
        }
    };
    let ms = value * factor;
    if !ms.is_finite() || ms < 0.0 {
        return Err(format!(
            "invalid duration {text:?}: must be a non-negative finite value"
        ));
    }
    Ok(ms)
}

/// Serde helper: a duration given as a number of milliseconds or a duration string.
pub(crate) fn deserialize_millis<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(f64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Number(ms) if ms.is_finite() && ms >= 0.0 => Ok(ms),
        Raw::Number(ms) => Err(serde::de::Error::custom(format!(
            "invalid duration {ms}: must be non-negative"
        ))),
        Raw::Text(t) => parse_millis(&t).map_err(serde::de::Error::custom),
    }
}

/// Serde helper for optional durations (used by partial runtime updates).
pub(crate) fn deserialize_opt_millis<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<f64>, D::Error> {
    deserialize_millis(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_and_units() {
        assert_eq!(parse_millis("100"), Ok(100.0));
        assert_eq!(parse_millis("100ms"), Ok(100.0));
        assert_eq!(parse_millis("1.5s"), Ok(1500.0));
        assert_eq!(parse_millis("2m"), Ok(120_000.0));
        assert!((parse_millis("250us").unwrap() - 0.25).abs() < 1e-12);
        assert!((parse_millis("250µs").unwrap() - 0.25).abs() < 1e-12);
        assert_eq!(parse_millis(" 0 "), Ok(0.0));
    }

    #[test]
    fn rejects_garbage_and_negatives() {
        assert!(parse_millis("fast").is_err());
        assert!(parse_millis("10h").is_err());
        assert!(parse_millis("-5ms").is_err());
        assert!(parse_millis("").is_err());
    }

    #[test]
    fn serde_accepts_numbers_and_strings() {
        #[derive(Deserialize)]
        struct T {
            #[serde(deserialize_with = "deserialize_millis")]
            a: f64,
            #[serde(deserialize_with = "deserialize_millis")]
            b: f64,
        }
        let t: T = serde_json::from_str(r#"{"a": 12.5, "b": "2s"}"#).unwrap();
        assert_eq!((t.a, t.b), (12.5, 2000.0));
        assert!(serde_json::from_str::<T>(r#"{"a": -1, "b": "2s"}"#).is_err());
    }
}
