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
        let mut set = |name: &'static str, v: String| {
            if let Ok(v) = HeaderValue::from_str(&v) {
                headers.insert(HeaderName::from_static(name), v);
            }
        };
        if let Some(r) = self.requests {
            set("x-ratelimit-limit-requests", r.limit.to_string());
            set("x-ratelimit-remaining-requests", r.remaining.to_string());
            set("x-ratelimit-reset-requests", duration_text(r.reset_ms));
        }
        if let Some(t) = self.tokens {
            set("x-ratelimit-limit-tokens", t.limit.to_string());
            set("x-ratelimit-remaining-tokens", t.remaining.to_string());
            set("x-ratelimit-reset-tokens", duration_text(t.reset_ms));
        }
    }
}

/// `20ms`, `1s`, `1.5s`, `6m0s`, `1m59.512s`, `1h2m3s` — Go's duration format to the
/// millisecond, as OpenAI sends these headers.
pub fn duration_text(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, frac) = (rest / 1000, rest % 1000);
    let secs = if frac == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0'))
    };
    if h > 0 {
        format!("{h}h{m}m{secs}")
    } else if m > 0 {
        format!("{m}m{secs}")
    } else {
        secs
    }
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
    }
}
