//! Budgets: calendar windows in a configured time zone, and prices.
//!
//! Money is counted in **nano-USD** (10⁻⁹ USD) as integers everywhere — limiter buckets, the
//! spend ledger, Redis — so sums are exact. A price in USD per million tokens is, conveniently,
//! micro-USD per token; it is kept as nano-USD per token, i.e. to $0.001 per million tokens.
//!
//! Windows: `day` (midnight to midnight), `week` (Monday 00:00 to the next Monday), `month` (the
//! 1st 00:00 to the next 1st) in the configured IANA time zone, DST included; `lifetime` never
//! resets. Each window has an id (`d2025-03-01`, `w2025-03-03`, `m2025-03`, `life`) under which
//! its spend is counted, so a new window starts from zero without any reset job.

use std::sync::Arc;

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Nano-USD per USD.
pub const NANOS_PER_USD: u64 = 1_000_000_000;

/// A budget's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    Day,
    Week,
    Month,
    Lifetime,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Lifetime => "lifetime",
        }
    }
}

/// One calendar window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarWindow {
    pub id: Arc<str>,
    /// First local day of the window (`None` for lifetime).
    pub first_day: Option<Date>,
    /// Unix ms when it ends (`None` for lifetime).
    pub end_ms: Option<u64>,
}

fn local_date(now_ms: u64, tz: &TimeZone) -> Date {
    let ts = Timestamp::from_millisecond(i64::try_from(now_ms).unwrap_or(i64::MAX))
        .unwrap_or(Timestamp::UNIX_EPOCH);
    ts.to_zoned(tz.clone()).date()
}

fn start_ms(date: Date, tz: &TimeZone) -> Option<u64> {
    let z = date.to_zoned(tz.clone()).ok()?;
    u64::try_from(z.timestamp().as_millisecond()).ok()
}

/// The local calendar day of an instant, `YYYY-MM-DD` (the spend ledger's day).
pub fn ledger_day(now_ms: u64, tz: &TimeZone) -> String {
    local_date(now_ms, tz).to_string()
}

/// The window of `period` that contains `now_ms`.
pub fn window(period: Period, now_ms: u64, tz: &TimeZone) -> CalendarWindow {
    let today = local_date(now_ms, tz);
    let (id, first, next) = match period {
        Period::Lifetime => {
            return CalendarWindow {
                id: Arc::from("life"),
                first_day: None,
                end_ms: None,
            }
        }
        Period::Day => (format!("d{today}"), today, today.tomorrow().ok()),
        Period::Week => {
            let back = i64::from(today.weekday().to_monday_zero_offset());
            let monday = today
                .checked_sub(jiff::Span::new().days(back))
                .unwrap_or(today);
            let next = monday.checked_add(jiff::Span::new().days(7)).ok();
            debug_assert_eq!(monday.weekday(), Weekday::Monday);
            (format!("w{monday}"), monday, next)
        }
        Period::Month => {
            let first = today.first_of_month();
            let next = today.last_of_month().tomorrow().ok();
            (
                format!("m{:04}-{:02}", first.year(), first.month()),
                first,
                next,
            )
        }
    };
    CalendarWindow {
        id: Arc::from(id),
        first_day: Some(first),
        end_ms: next.and_then(|d| start_ms(d, tz)),
    }
}

/// A price in nano-USD per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Price {
    pub input: u64,
    pub output: u64,
    /// Cached input tokens; the input price when not set.
    pub cached_input: u64,
}

impl Price {
    /// From USD per million tokens (rounded to $0.001 per million).
    pub fn per_million(input: f64, output: f64, cached_input: Option<f64>) -> Self {
        let n = |usd: f64| (usd * 1_000.0).round().max(0.0) as u64;
        Self {
            input: n(input),
            output: n(output),
            cached_input: n(cached_input.unwrap_or(input)),
        }
    }

    /// Cost in nano-USD of a request's usage. Cached input tokens are part of `input_tokens`
    /// (as OpenAI reports them) and priced at the cached rate.
    pub fn cost(&self, input_tokens: u64, output_tokens: u64, cached_input_tokens: u64) -> u64 {
        let cached = cached_input_tokens.min(input_tokens);
        (input_tokens - cached)
            .saturating_mul(self.input)
            .saturating_add(cached.saturating_mul(self.cached_input))
            .saturating_add(output_tokens.saturating_mul(self.output))
    }
}

/// One row of the price table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceEntry {
    /// Public model name.
    pub model: String,
    /// Pool or provider backend; `None` = any.
    pub backend: Option<String>,
    pub price: Price,
}

/// Prices per model and backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriceTable {
    entries: Vec<PriceEntry>,
}

impl PriceTable {
    pub fn new(entries: Vec<PriceEntry>) -> Self {
        Self { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The price of `model` served by `backend`: the entry naming that backend, else the one
    /// for any backend.
    pub fn price(&self, model: &str, backend: Option<&str>) -> Option<Price> {
        let mut any = None;
        for e in self.entries.iter().filter(|e| e.model == model) {
            match (&e.backend, backend) {
                (Some(b), Some(want)) if b == want => return Some(e.price),
                (None, _) => any = Some(e.price),
                _ => {}
            }
        }
        any
    }

    /// The highest price `model` can cost on any backend (what admission reserves before the
    /// backend is known).
    pub fn max_price(&self, model: &str) -> Option<Price> {
        self.entries
            .iter()
            .filter(|e| e.model == model)
            .map(|e| e.price)
            .reduce(|a, b| Price {
                input: a.input.max(b.input),
                output: a.output.max(b.output),
                cached_input: a.cached_input.max(b.cached_input),
            })
    }
}

/// USD as a decimal string from nano-USD (exact).
pub fn format_usd(nanos: u64) -> String {
    let whole = nanos / NANOS_PER_USD;
    let frac = nanos % NANOS_PER_USD;
    let s = format!("{whole}.{frac:09}");
    let trimmed = s.trim_end_matches('0');
    if trimmed.ends_with('.') {
        format!("{trimmed}00")
    } else if trimmed.len() - trimmed.find('.').unwrap_or(0) < 3 {
        format!("{trimmed}0")
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> u64 {
        s.parse::<Timestamp>().unwrap().as_millisecond() as u64
    }

    #[test]
    fn day_week_month_in_a_time_zone() {
        let tz = TimeZone::get("America/New_York").unwrap();
        // 2025-03-09 is the day US clocks go forward: 23 hours long.
        let now = ms("2025-03-09T12:00:00Z");
        let d = window(Period::Day, now, &tz);
        assert_eq!(&*d.id, "d2025-03-09");
        assert_eq!(d.end_ms, Some(ms("2025-03-10T04:00:00Z")));
        let w = window(Period::Week, now, &tz);
        assert_eq!(&*w.id, "w2025-03-03");
        assert_eq!(w.end_ms, Some(ms("2025-03-10T04:00:00Z")));
        let m = window(Period::Month, now, &tz);
        assert_eq!(&*m.id, "m2025-03");
        assert_eq!(m.end_ms, Some(ms("2025-04-01T04:00:00Z")));
        assert_eq!(window(Period::Lifetime, now, &tz).end_ms, None);
    }

    #[test]
    fn local_day_differs_from_utc_day() {
        let tz = TimeZone::get("Asia/Tokyo").unwrap();
        assert_eq!(ledger_day(ms("2025-01-01T16:00:00Z"), &tz), "2025-01-02");
        assert_eq!(
            ledger_day(ms("2025-01-01T16:00:00Z"), &TimeZone::UTC),
            "2025-01-01"
        );
    }

    #[test]
    fn prices_are_exact() {
        let p = Price::per_million(0.15, 0.60, Some(0.075));
        assert_eq!(p.input, 150);
        // 1,000 input of which 400 cached, 500 output.
        assert_eq!(p.cost(1000, 500, 400), 600 * 150 + 400 * 75 + 500 * 600);
        assert_eq!(format_usd(10_000_000), "0.01");
        assert_eq!(format_usd(1_234_567_891), "1.234567891");
        assert_eq!(format_usd(0), "0.00");
        assert_eq!(format_usd(2_500_000_000), "2.50");
    }

    #[test]
    fn backend_specific_prices_win() {
        let t = PriceTable::new(vec![
            PriceEntry {
                model: "chat".into(),
                backend: None,
                price: Price::per_million(1.0, 2.0, None),
            },
            PriceEntry {
                model: "chat".into(),
                backend: Some("openai".into()),
                price: Price::per_million(3.0, 4.0, None),
            },
        ]);
        assert_eq!(t.price("chat", Some("openai")).unwrap().input, 3000);
        assert_eq!(t.price("chat", Some("pool")).unwrap().input, 1000);
        assert_eq!(t.max_price("chat").unwrap().output, 4000);
        assert!(t.price("other", None).is_none());
    }
}
