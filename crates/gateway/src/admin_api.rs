//! The admin API for keys and spend, on the admin listener, behind its own credential
//! (`GatewaySettings.spec.auth.adminToken`, sent as `Authorization: Bearer <token>`).
//!
//! | method | path | does |
//! |---|---|---|
//! | POST | `/admin/v1/keys` | create a key: `{tenant, name, roles?, models?, limits?, budgetsUsd?, expiresAt? \| expiresIn?}`; the answer carries the key, shown this once |
//! | GET | `/admin/v1/keys[?tenant=]` | list keys (API-made and declared in configuration); never hashes or keys |
//! | GET | `/admin/v1/keys/{id}` | one key |
//! | POST | `/admin/v1/keys/{id}/rotate` | new secret, same id; the old one keeps working for `gracePeriod` (default 1h) |
//! | POST | `/admin/v1/keys/{id}/expire` | stop the key at `at` (RFC 3339) or `in` (duration); now by default |
//! | POST | `/admin/v1/keys/{id}/revoke`, DELETE `/admin/v1/keys/{id}` | revoke now |
//! | GET | `/admin/v1/spend?by=tenant,key,model,day&from=&to=&tenant=&key=&model=` | spend report |

use std::collections::BTreeMap;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use infergate_policy::access::{KeyLimits, KeyRecord, KeySecret};
use infergate_policy::budget::format_usd;
use infergate_policy::key::{generate, KeyId};
use infergate_protocol::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::pipeline::error_response;
use crate::respond::GatewayBody;
use crate::state::now_ms;
use crate::state::sqlite::{GroupBy, SpendQuery};
use crate::Gateway;

const MAX_BODY: usize = 64 * 1024;

fn err(status: StatusCode, code: &'static str, msg: impl Into<String>) -> Response<GatewayBody> {
    let kind = if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    error_response(&ApiError::new(status, kind, code, msg))
}

fn json_resp(status: StatusCode, v: &Value) -> Response<GatewayBody> {
    let mut resp = Response::new(GatewayBody::full(v.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn rfc3339(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX))
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// A key as the admin API shows it: never a hash, never the key.
fn view(r: &KeyRecord, now: u64) -> Value {
    let status = if r.revoked_ms.is_some_and(|t| t <= now) {
        "revoked"
    } else if r.expires_ms.is_some_and(|t| t <= now)
        || r.secrets
            .iter()
            .all(|s| s.expires_ms.is_some_and(|t| t <= now))
    {
        "expired"
    } else {
        "active"
    };
    let secrets: Vec<Value> = r
        .secrets
        .iter()
        .map(|s| {
            json!({
                "createdAt": rfc3339(s.created_ms),
                "expiresAt": s.expires_ms.map(rfc3339),
                "active": s.expires_ms.is_none_or(|t| t > now),
            })
        })
        .collect();
    json!({
        "id": r.id,
        "tenant": r.tenant,
        "name": r.name,
        "roles": r.roles,
        "models": r.models,
        "limits": r.limits,
        "budgetsUsd": r.budgets_usd,
        "createdAt": (r.created_ms > 0).then(|| rfc3339(r.created_ms)),
        "expiresAt": r.expires_ms.map(rfc3339),
        "revokedAt": r.revoked_ms.map(rfc3339),
        "status": status,
        "source": r.source,
        "secrets": secrets,
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateKey {
    tenant: String,
    name: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    models: Vec<String>,
    #[serde(default)]
    limits: Option<KeyLimits>,
    #[serde(default)]
    budgets_usd: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    expires_in: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Rotate {
    #[serde(default)]
    grace_period: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Expire {
    #[serde(default)]
    at: Option<String>,
    #[serde(rename = "in", default)]
    in_: Option<String>,
}

fn when(at: Option<&str>, within: Option<&str>, now: u64) -> Result<Option<u64>, String> {
    match (at, within) {
        (Some(_), Some(_)) => Err("give either an absolute time or a duration, not both".into()),
        (Some(a), None) => infergate_control::policy::parse_rfc3339_ms(a)
            .map(Some)
            .ok_or_else(|| {
                format!("`{a}` is not an RFC 3339 time; write e.g. 2026-01-31T00:00:00Z")
            }),
        (None, Some(d)) => parse_span(d).map(|ms| Some(now + ms)),
        (None, None) => Ok(None),
    }
}

/// `90s`, `10m`, `24h`, `30d`.
fn parse_span(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Some(days) = s.strip_suffix('d') {
        return days
            .trim()
            .parse::<u64>()
            .map(|d| d * 86_400_000)
            .map_err(|_| format!("`{s}` is not a duration; write e.g. 30m, 24h or 30d"));
    }
    infergate_control::units::parse_duration(s)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn check_budgets(b: &Option<BTreeMap<String, f64>>) -> Result<(), String> {
    if let Some(map) = b {
        for (period, usd) in map {
            if !matches!(period.as_str(), "day" | "week" | "month" | "lifetime") {
                return Err(format!(
                    "budget period `{period}` is not one of day, week, month, lifetime"
                ));
            }
            if !(usd.is_finite() && *usd > 0.0) {
                return Err(format!(
                    "the {period} budget must be a positive number of dollars"
                ));
            }
        }
    }
    Ok(())
}

async fn body<T: for<'de> Deserialize<'de> + Default>(
    req: Request<Incoming>,
    required: bool,
) -> Result<T, Response<GatewayBody>> {
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| {
            err(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                "admin request bodies are at most 64 KiB",
            )
        })?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) && !required {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the request body is not what this endpoint takes: {e}"),
        )
    })
}

fn query_params(req: &Request<Incoming>) -> BTreeMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Handle `/admin/v1/...`; `None` when the path is not the admin API's.
pub async fn handle(gw: &Arc<Gateway>, req: Request<Incoming>) -> Option<Response<GatewayBody>> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let rest = path.strip_prefix("/admin/v1")?;
    let rest = rest.to_string();
    Some(route(gw, req, &rest).await)
}

async fn route(gw: &Arc<Gateway>, req: Request<Incoming>, rest: &str) -> Response<GatewayBody> {
    let state = &gw.policy;
    if state.admin_token_hash.is_none() {
        return err(
            StatusCode::FORBIDDEN,
            "admin_api_disabled",
            "The admin API is off: set GatewaySettings spec.auth.adminToken (sha256 or env) to turn it on.",
        );
    }
    let token = crate::stages::identify::credential(req.headers());
    if !token.is_some_and(|t| state.is_admin(t)) {
        return err(
            StatusCode::UNAUTHORIZED,
            "invalid_admin_token",
            "Send the admin token as `Authorization: Bearer <token>` (the one configured in spec.auth.adminToken).",
        );
    }
    let method = req.method().clone();
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match (method, segments.as_slice()) {
        (Method::POST, ["keys"]) => create_key(gw, req).await,
        (Method::GET, ["keys"]) => list_keys(gw, &query_params(&req)).await,
        (Method::GET, ["keys", id]) => get_key(gw, id).await,
        (Method::POST, ["keys", id, "rotate"]) => {
            let id = id.to_string();
            match body::<Rotate>(req, false).await {
                Ok(b) => rotate(gw, &id, b).await,
                Err(r) => r,
            }
        }
        (Method::POST, ["keys", id, "expire"]) => {
            let id = id.to_string();
            match body::<Expire>(req, false).await {
                Ok(b) => expire(gw, &id, b).await,
                Err(r) => r,
            }
        }
        (Method::POST, ["keys", id, "revoke"]) | (Method::DELETE, ["keys", id]) => {
            let id = id.to_string();
            revoke(gw, &id).await
        }
        (Method::GET, ["spend"]) => spend(gw, &query_params(&req)).await,
        (m, _) => err(
            StatusCode::NOT_FOUND,
            "unknown_url",
            format!(
                "{m} /admin/v1{rest} is not an admin endpoint; see POST/GET /admin/v1/keys, \
                 POST /admin/v1/keys/{{id}}/rotate|expire|revoke, GET /admin/v1/spend"
            ),
        ),
    }
}

fn store_unavailable(e: impl std::fmt::Display) -> Response<GatewayBody> {
    err(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        format!("the key store cannot be reached ({e}); try again shortly"),
    )
}

async fn create_key(gw: &Arc<Gateway>, req: Request<Incoming>) -> Response<GatewayBody> {
    let b: CreateKey = match body(req, true).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let snap = gw.snapshot();
    if snap.policy.tenant(&b.tenant).is_none() {
        let mut known: Vec<&str> = snap.policy.tenants.keys().map(|t| &**t).collect();
        known.sort_unstable();
        return err(
            StatusCode::BAD_REQUEST,
            "unknown_tenant",
            format!(
                "tenant `{}` is not declared; known tenants: [{}]. Declare a Tenant resource first.",
                b.tenant,
                known.join(", ")
            ),
        );
    }
    if b.name.trim().is_empty() || b.name.len() > 128 {
        return err(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "give the key a `name` of 1 to 128 characters",
        );
    }
    if let Some(p) = b
        .models
        .iter()
        .find(|p| !infergate_control::policy::valid_pattern(p))
    {
        return err(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            format!("`{p}` is not a model pattern"),
        );
    }
    if let Err(e) = check_budgets(&b.budgets_usd) {
        return err(StatusCode::BAD_REQUEST, "invalid_field", e);
    }
    let now = now_ms();
    let expires = match when(b.expires_at.as_deref(), b.expires_in.as_deref(), now) {
        Ok(t) => t,
        Err(e) => return err(StatusCode::BAD_REQUEST, "invalid_field", e),
    };
    let Some(store) = &gw.policy.keys else {
        return store_unavailable("no key store is configured");
    };
    let new = {
        let mut rng = rand::rng();
        generate(KeyId::random(&mut rng), &mut rng)
    };
    let rec = KeyRecord {
        id: new.id.to_string(),
        tenant: b.tenant,
        name: b.name,
        roles: b.roles,
        models: b.models,
        limits: b.limits,
        budgets_usd: b.budgets_usd,
        created_ms: now,
        expires_ms: expires,
        revoked_ms: None,
        secrets: vec![KeySecret {
            hash: new.hash.as_str().to_string(),
            created_ms: now,
            expires_ms: None,
        }],
        source: "api".into(),
    };
    match store.put(rec).await {
        Ok(rec) => {
            tracing::info!(key_id = %rec.id, tenant = %rec.tenant, "API key created");
            let mut v = view(&rec, now);
            v["key"] = Value::String(new.plaintext);
            json_resp(StatusCode::CREATED, &v)
        }
        Err(e) => store_unavailable(e),
    }
}

async fn list_keys(gw: &Arc<Gateway>, q: &BTreeMap<String, String>) -> Response<GatewayBody> {
    let now = now_ms();
    let snap = gw.snapshot();
    let mut out: Vec<Value> = Vec::new();
    let tenant = q.get("tenant");
    let mut declared: Vec<_> = snap.policy.declared_keys.values().collect();
    declared.sort_by(|a, b| a.id.cmp(&b.id));
    for r in declared {
        if tenant.is_none_or(|t| *t == r.tenant) {
            out.push(view(r, now));
        }
    }
    if let Some(store) = &gw.policy.keys {
        match store.list().await {
            Ok(list) => out.extend(
                list.iter()
                    .filter(|r| tenant.is_none_or(|t| *t == r.tenant))
                    .map(|r| view(r, now)),
            ),
            Err(e) => return store_unavailable(e),
        }
    }
    json_resp(StatusCode::OK, &json!({ "keys": out }))
}

async fn find(gw: &Arc<Gateway>, id: &str) -> Result<Arc<KeyRecord>, Response<GatewayBody>> {
    let snap = gw.snapshot();
    if snap.policy.declared_keys.values().any(|r| r.id == id) {
        return Err(err(
            StatusCode::CONFLICT,
            "declared_in_config",
            format!("key {id} is declared in configuration; change it in its Tenant resource"),
        ));
    }
    let Some(store) = &gw.policy.keys else {
        return Err(store_unavailable("no key store is configured"));
    };
    match store.get(id).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(err(
            StatusCode::NOT_FOUND,
            "key_not_found",
            format!("there is no key {id}; `GET /admin/v1/keys` lists them"),
        )),
        Err(e) => Err(store_unavailable(e)),
    }
}

async fn get_key(gw: &Arc<Gateway>, id: &str) -> Response<GatewayBody> {
    let now = now_ms();
    if let Some(r) = gw
        .snapshot()
        .policy
        .declared_keys
        .values()
        .find(|r| r.id == id)
    {
        return json_resp(StatusCode::OK, &view(r, now));
    }
    match find(gw, id).await {
        Ok(r) => json_resp(StatusCode::OK, &view(&r, now)),
        Err(resp) => resp,
    }
}

async fn save(
    gw: &Arc<Gateway>,
    rec: KeyRecord,
    plaintext: Option<String>,
) -> Response<GatewayBody> {
    let Some(store) = &gw.policy.keys else {
        return store_unavailable("no key store is configured");
    };
    match store.put(rec).await {
        Ok(rec) => {
            let mut v = view(&rec, now_ms());
            if let Some(k) = plaintext {
                v["key"] = Value::String(k);
            }
            json_resp(StatusCode::OK, &v)
        }
        Err(e) => store_unavailable(e),
    }
}

async fn rotate(gw: &Arc<Gateway>, id: &str, b: Rotate) -> Response<GatewayBody> {
    let rec = match find(gw, id).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if rec.revoked_ms.is_some() {
        return err(
            StatusCode::CONFLICT,
            "key_revoked",
            format!("key {id} is revoked; create a new key instead"),
        );
    }
    let now = now_ms();
    let grace = match parse_span(b.grace_period.as_deref().unwrap_or("1h")) {
        Ok(g) => g,
        Err(e) => return err(StatusCode::BAD_REQUEST, "invalid_field", e),
    };
    let Some(key_id) = KeyId::parse(id) else {
        return err(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            format!("`{id}` is not a key id"),
        );
    };
    let new = generate(key_id, &mut rand::rng());
    let mut r = (*rec).clone();
    for s in &mut r.secrets {
        let end = now + grace;
        s.expires_ms = Some(s.expires_ms.map_or(end, |e| e.min(end)));
    }
    // Secrets past their grace are of no use; keep the record small.
    r.secrets.retain(|s| s.expires_ms.is_none_or(|t| t > now));
    r.secrets.push(KeySecret {
        hash: new.hash.as_str().to_string(),
        created_ms: now,
        expires_ms: None,
    });
    tracing::info!(key_id = %id, grace_ms = grace, "API key rotated");
    save(gw, r, Some(new.plaintext)).await
}

async fn expire(gw: &Arc<Gateway>, id: &str, b: Expire) -> Response<GatewayBody> {
    let rec = match find(gw, id).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let now = now_ms();
    let at = match when(b.at.as_deref(), b.in_.as_deref(), now) {
        Ok(t) => t.unwrap_or(now),
        Err(e) => return err(StatusCode::BAD_REQUEST, "invalid_field", e),
    };
    let mut r = (*rec).clone();
    r.expires_ms = Some(at);
    tracing::info!(key_id = %id, "API key expiry set");
    save(gw, r, None).await
}

async fn revoke(gw: &Arc<Gateway>, id: &str) -> Response<GatewayBody> {
    let rec = match find(gw, id).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let mut r = (*rec).clone();
    r.revoked_ms.get_or_insert(now_ms());
    tracing::info!(key_id = %id, "API key revoked");
    save(gw, r, None).await
}

async fn spend(gw: &Arc<Gateway>, q: &BTreeMap<String, String>) -> Response<GatewayBody> {
    let Some(ledger) = &gw.policy.ledger else {
        return err(
            StatusCode::NOT_FOUND,
            "no_ledger",
            "there is no spend ledger: declare a Tenant to turn identities, limits and spend on",
        );
    };
    let mut group = GroupBy::default();
    for dim in q.get("by").map_or("tenant", String::as_str).split(',') {
        match dim.trim() {
            "tenant" => group.tenant = true,
            "key" => group.key = true,
            "model" => group.model = true,
            "day" => group.day = true,
            "" => {}
            other => {
                return err(
                    StatusCode::BAD_REQUEST,
                    "invalid_field",
                    format!("cannot group by `{other}`; use any of tenant, key, model, day"),
                )
            }
        }
    }
    for d in ["from", "to"] {
        if let Some(v) = q.get(d) {
            if v.parse::<jiff::civil::Date>().is_err() {
                return err(
                    StatusCode::BAD_REQUEST,
                    "invalid_field",
                    format!("`{d}={v}` is not a day; write YYYY-MM-DD"),
                );
            }
        }
    }
    let query = SpendQuery {
        group,
        from: q.get("from").cloned(),
        to: q.get("to").cloned(),
        tenant: q.get("tenant").cloned(),
        key_id: q.get("key").cloned(),
        model: q.get("model").cloned(),
    };
    match ledger.report(query).await {
        Ok(rows) => {
            let total: u64 = rows.iter().map(|r| r.totals.cost_nanos).sum();
            let rows: Vec<Value> = rows
                .iter()
                .map(|r| {
                    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
                    v["usd"] = Value::String(format_usd(r.totals.cost_nanos));
                    v
                })
                .collect();
            json_resp(
                StatusCode::OK,
                &json!({
                    "timeZone": gw.snapshot().config.settings.policy.time_zone,
                    "rows": rows,
                    "totalUsd": format_usd(total),
                    "totalNanoUsd": total,
                }),
            )
        }
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, "ledger_error", e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_percent_decoding() {
        assert_eq!(parse_span("30d").unwrap(), 30 * 86_400_000);
        assert_eq!(parse_span("10m").unwrap(), 600_000);
        assert!(parse_span("soon").is_err());
        assert_eq!(percent_decode("a%2Cb+c"), "a,b c");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
