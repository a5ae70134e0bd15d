//! admit: reserve the request's estimate in every limit and budget that applies, all at once;
//! and settle: true it up from real usage when the response ends (complete, failed, or the
//! client went away), write the spend ledger and count the spend.
//!
//! Estimate = prompt tokens (tokenizer) + `max_tokens` (or `limits.defaultMaxTokens`); cost =
//! estimate × the model's highest price. Actual usage comes from the response's `usage`. When a
//! response ends without usage (a stream cut short, a client that disconnected), the settle
//! uses the prompt estimate plus the output the client saw (one token per streamed event, at
//! most the reserved output); a request that never reached a model server is refunded in full.

use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use infergate_policy::access::Caller;
use infergate_policy::estimate::{self, TokenEstimate};
use infergate_policy::limit::{Actual, BucketView, Demand, Denied, Grant, Metric, Window};
use infergate_protocol::{Operation, RequestBody};

use crate::context::RequestContext;
use crate::error::{GatewayError, LimitHit};
use crate::metrics::{AdmissionLabels, Label, SpendLabels};
use crate::snapshot::Snapshot;
use crate::state::sqlite::SpendRecord;
use crate::state::{now_ms, AdmitError, Backend};
use crate::Gateway;

/// What admission reserved, carried to settle.
#[derive(Debug)]
pub struct Admission {
    pub grant: Grant,
    pub backend: Backend,
    pub estimate: TokenEstimate,
}

/// The `x-ratelimit-*` values of a response: the most constrained requests and tokens buckets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateHeaders {
    pub requests: Option<BucketView>,
    pub tokens: Option<BucketView>,
}

impl RateHeaders {
    fn from(demand: &Demand, views: &[BucketView]) -> Option<Self> {
        let mut out = RateHeaders::default();
        for (c, v) in demand.charges.iter().zip(views) {
            let slot = match c.metric {
                Metric::Requests => &mut out.requests,
                Metric::Tokens(_) => &mut out.tokens,
                _ => continue,
            };
            if slot.is_none_or(|s| v.remaining < s.remaining) {
                *slot = Some(*v);
            }
        }
        (out.requests.is_some() || out.tokens.is_some()).then_some(out)
    }

    /// Set the headers (OpenAI's names and formats).
    pub fn apply(&self, headers: &mut HeaderMap) {
        // Constant names and integer values: no parsing or `format!` per header (these six
        // headers cost ~10,000 instructions per request written with `to_string`).
        if let Some(r) = self.requests {
            headers.insert(LIMIT_REQUESTS, HeaderValue::from(r.limit));
            headers.insert(REMAINING_REQUESTS, HeaderValue::from(r.remaining));
            headers.insert(RESET_REQUESTS, duration_value(r.reset_ms));
        }
        if let Some(t) = self.tokens {
            headers.insert(LIMIT_TOKENS, HeaderValue::from(t.limit));
            headers.insert(REMAINING_TOKENS, HeaderValue::from(t.remaining));
            headers.insert(RESET_TOKENS, duration_value(t.reset_ms));
        }
    }
}

const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
const REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
const RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
const RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");

fn duration_value(ms: u64) -> HeaderValue {
    // Digits, letters and a dot only: always a valid header value.
    HeaderValue::try_from(duration_text(ms)).unwrap_or_else(|_| HeaderValue::from_static("0s"))
}

/// `20ms`, `1s`, `1.5s`, `6m0s`, `1m59.512s`, `1h2m3s` — Go's duration format to the
/// millisecond, as OpenAI sends these headers.
pub fn duration_text(ms: u64) -> String {
    let mut out = String::with_capacity(16);
    let mut digits = itoa::Buffer::new();
    if ms < 1000 {
        out.push_str(digits.format(ms));
        out.push_str("ms");
        return out;
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, frac) = (rest / 1000, rest % 1000);
    if h > 0 {
        out.push_str(digits.format(h));
        out.push('h');
    }
    if h > 0 || m > 0 {
        out.push_str(digits.format(m));
        out.push('m');
    }
    out.push_str(digits.format(s));
    if frac > 0 {
        // Milliseconds as a decimal fraction without trailing zeros: 500 → ".5", 1 → ".001".
        let ms3 = [frac / 100, frac / 10 % 10, frac % 10];
        let keep = ms3.iter().rposition(|&d| d != 0).map_or(0, |i| i + 1);
        out.push('.');
        out.extend(ms3[..keep].iter().map(|&d| char::from(b'0' + d as u8)));
    }
    out.push('s');
    out
}

fn count(
    gw: &Gateway,
    caller: &Caller,
    decision: &'static str,
    scope: &'static str,
    metric: &'static str,
    backend: &'static str,
) {
    gw.metrics
        .admissions
        .get_or_create(&AdmissionLabels {
            tenant: Label(caller.tenant.name.clone()),
            decision,
            scope,
            metric,
            backend,
        })
        .inc();
}

/// Reserve the request in every bucket that applies.
pub async fn admit(
    gw: &Gateway,
    snap: &Snapshot,
    ctx: &mut RequestContext,
    op: Operation,
    body: &RequestBody,
    model: &str,
) -> Result<(), GatewayError> {
    let Some(caller) = ctx.caller.clone() else {
        return Ok(());
    };
    let table = &snap.policy;
    let estimate = if table.needs_estimate(&caller, model) {
        estimate::estimate(
            model,
            body.prompt_raw(),
            body.max_tokens(),
            table.default_max_tokens,
            op != Operation::Embeddings,
        )
    } else {
        TokenEstimate::default()
    };
    let now = now_ms();
    let demand = table.demand(&caller, model, estimate, now);
    if demand.is_empty() {
        return Ok(());
    }
    match gw.policy.admit(&demand, now).await {
        Ok((grant, backend)) => {
            ctx.rate_headers = RateHeaders::from(&demand, &grant.views);
            count(gw, &caller, "admitted", "", "", backend.as_str());
            ctx.admission = Some(Admission {
                grant,
                backend,
                estimate,
            });
            Ok(())
        }
        Err(AdmitError::Unavailable) => {
            count(gw, &caller, "unavailable", "", "", "redis");
            Err(GatewayError::LimiterUnavailable)
        }
        Err(AdmitError::Denied(d)) => {
            ctx.rate_headers = RateHeaders::from(&demand, &d.views);
            Err(denied(gw, &caller, &demand, &d))
        }
    }
}

fn denied(gw: &Gateway, caller: &Caller, demand: &Demand, d: &Denied) -> GatewayError {
    let Some(c) = demand.charges.get(d.index) else {
        return GatewayError::LimiterUnavailable;
    };
    let backend = if gw.policy.redis.as_ref().is_some_and(|r| r.is_up()) {
        "redis"
    } else if gw.policy.redis.is_some() {
        "local_fallback"
    } else {
        "local"
    };
    let hit = LimitHit {
        scope: c.scope,
        subject: c.subject.to_string(),
        metric: c.metric,
        period: match c.metric {
            Metric::Spend => c.bucket.rsplit(':').next().map(|p| match p {
                "day" => "daily",
                "week" => "weekly",
                "month" => "monthly",
                _ => "lifetime",
            }),
            _ => None,
        },
        limit: d.limit,
        used: d.used,
        requested: d.amount,
        window_ms: match c.window {
            Window::Sliding { ms } => Some(ms),
            _ => None,
        },
        retry_after_ms: d.retry_after_ms,
    };
    if c.metric == Metric::Spend {
        count(
            gw,
            caller,
            "budget_exceeded",
            c.scope.as_str(),
            "spend",
            backend,
        );
        GatewayError::BudgetExceeded(Box::new(hit))
    } else {
        count(
            gw,
            caller,
            "rate_limited",
            c.scope.as_str(),
            c.metric.as_str(),
            backend,
        );
        GatewayError::RateLimited(Box::new(hit))
    }
}

/// True up the reservation, record spend. Called once, from `RequestContext::settle`.
pub fn settle(gw: &Gateway, snap: &Snapshot, ctx: &mut RequestContext) {
    let Some(caller) = ctx.caller.clone() else {
        return;
    };
    let admission = ctx.admission.take();
    let model = ctx.model.clone();
    // The upstream that served: a pool, or an external backend.
    let backend_name = ctx
        .pool
        .as_ref()
        .or(ctx.backend.as_ref())
        .map(|p| p.0.clone());
    let reached_upstream = ctx.attempts > 0 && (200..300).contains(&ctx.status);
    let (input, output, cached) = match (ctx.usage, &admission) {
        (Some(u), _) => (u.input_tokens, u.output_tokens, u.cached_input_tokens),
        (None, Some(a)) if reached_upstream => {
            let out = if ctx.stream {
                ctx.stream_events.min(a.estimate.output)
            } else {
                a.estimate.output
            };
            (a.estimate.input, out, 0)
        }
        _ => (0, 0, 0),
    };
    let table = &snap.policy;
    // The price table's entry for (model, backend) when there is one, else the serving
    // backend's own prices (`Backend spec.pricing`).
    let cost = model
        .as_deref()
        .map_or(0, |m| {
            table.cost(m, backend_name.as_deref(), input, output, cached)
        })
        .max(
            ctx.price
                .map_or(0, |p| (p.cost(input, cached, output) * 1e9).round() as u64),
        );
    if let Some(a) = &admission {
        gw.policy.settle(
            &a.grant,
            a.backend,
            &Actual {
                input_tokens: input,
                output_tokens: output,
                cost_nanos: cost,
            },
        );
    }
    if input == 0 && output == 0 {
        return;
    }
    let model_name: Arc<str> = model.unwrap_or_else(|| Arc::from(""));
    if cost > 0 {
        gw.metrics
            .spend_usd
            .get_or_create(&SpendLabels {
                tenant: Label(caller.tenant.name.clone()),
                gen_ai_request_model: Label(model_name.clone()),
            })
            .inc_by(cost as f64 / 1e9);
    }
    if let Some(ledger) = &gw.policy.ledger {
        let key_id = match (&caller.identity.key_id, &caller.identity.subject) {
            (Some(k), _) => k.to_string(),
            (None, Some(s)) => format!("sub:{s}"),
            _ => String::new(),
        };
        ledger.record_spend(SpendRecord {
            day: infergate_policy::budget::ledger_day(now_ms(), &table.time_zone),
            tenant: caller.tenant.name.to_string(),
            key_id,
            model: model_name.to_string(),
            backend: backend_name.map(|b| b.to_string()).unwrap_or_default(),
            input_tokens: input,
            output_tokens: output,
            cached_tokens: cached,
            cost_nanos: cost,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_openai() {
        assert_eq!(duration_text(20), "20ms");
        assert_eq!(duration_text(1000), "1s");
        assert_eq!(duration_text(1500), "1.5s");
        assert_eq!(duration_text(1001), "1.001s");
        assert_eq!(duration_text(360_000), "6m0s");
        assert_eq!(duration_text(119_512), "1m59.512s");
        assert_eq!(duration_text(3_723_000), "1h2m3s");
        assert_eq!(duration_text(3_600_010), "1h0m0.01s");
        assert_eq!(duration_text(999), "999ms");
        assert_eq!(duration_text(0), "0ms");
    }
}
