//! Who a caller is allowed to be and what they may do: tenants compiled from configuration, key
//! records (declared in config or made through the admin API), authorization of a model, and
//! the [`Demand`] a request is charged at admission.
//!
//! Deny by default: once any identity is configured, a request needs a credential that maps to
//! a configured tenant (or the tenant named by `auth.anonymousTenant`), and may only use models
//! that the tenant's patterns — and, if set, the key's — allow.

use std::collections::HashMap;
use std::sync::Arc;

use infergate_control::policy::{self as cfg, Budget, Limits, Period as CfgPeriod};
use infergate_control::ConfigSet;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::budget::{self, Period, Price, PriceEntry, PriceTable};
use crate::estimate::TokenEstimate;
use crate::limit::{Charge, Demand, Metric, Scope, TokenType, Window};
use crate::Identity;

/// A model-name pattern: `*` matches any run of characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPattern(String);

impl ModelPattern {
    pub fn new(p: &str) -> Self {
        ModelPattern(p.to_string())
    }

    pub fn matches(&self, model: &str) -> bool {
        glob(self.0.as_bytes(), model.as_bytes())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    // Iterative wildcard match with backtracking to the last `*`.
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|b| *b == b'*')
}

fn any_match(patterns: &[ModelPattern], model: &str) -> bool {
    patterns.iter().any(|p| p.matches(model))
}

/// A tenant, compiled from configuration.
#[derive(Debug, Clone)]
pub struct TenantPolicy {
    pub name: Arc<str>,
    pub models: Vec<ModelPattern>,
    pub roles: Vec<Arc<str>>,
    pub regions: Vec<Arc<str>>,
    pub priority: Option<i32>,
    pub limits: Limits,
    pub key_limits: Limits,
    pub model_limits: HashMap<String, Limits>,
    pub budgets: Vec<Budget>,
    pub key_budgets: Vec<Budget>,
}

/// Limits a key made through the admin API carries instead of its tenant's `keyLimits`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u64>,
    /// Window in seconds (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_seconds: Option<u64>,
    /// `input`, `output` or `total`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
}

impl KeyLimits {
    fn to_limits(&self) -> Limits {
        Limits {
            requests: self.requests,
            tokens: self.tokens,
            concurrency: self.concurrency,
            per: std::time::Duration::from_secs(self.per_seconds.unwrap_or(60).max(1)),
            token_type: match self.token_type.as_deref() {
                Some("input") => cfg::TokenType::Input,
                Some("output") => cfg::TokenType::Output,
                _ => cfg::TokenType::Total,
            },
        }
    }
}

/// One secret of a key (a key has two during a rotation's grace period).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeySecret {
    /// SHA-256 hex of the key.
    pub hash: String,
    pub created_ms: u64,
    /// When this secret stops working (set on the old secret at rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
}

/// A key as stored: never the key itself, only its hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRecord {
    /// `igk_xxxxxxxx`; stays the same across rotations.
    pub id: String,
    pub tenant: String,
    pub name: String,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Narrows the tenant's models (patterns); empty = the tenant's.
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<KeyLimits>,
    /// Per-key budgets in USD by period (`day`, `week`, `month`, `lifetime`), replacing the
    /// tenant's `keyBudgets`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budgets_usd: Option<std::collections::BTreeMap<String, f64>>,
    pub created_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_ms: Option<u64>,
    pub secrets: Vec<KeySecret>,
    /// `config` for keys declared in a Tenant, `api` for keys made through the admin API.
    pub source: String,
}

/// Why a credential was not accepted (401) or a caller not allowed (403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credential")]
    Missing,
    #[error("unknown API key")]
    UnknownKey { claimed_id: Option<String> },
    #[error("API key {id} has expired")]
    ExpiredKey { id: String },
    #[error("API key {id} was revoked")]
    RevokedKey { id: String },
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("tenant `{0}` is not configured")]
    UnknownTenant(String),
    #[error("the key store is unreachable")]
    StoreUnavailable,
}

impl AuthError {
    /// Stable reason (metric label, access log).
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing_credential",
            AuthError::UnknownKey { .. } => "invalid_api_key",
            AuthError::ExpiredKey { .. } => "expired_api_key",
            AuthError::RevokedKey { .. } => "revoked_api_key",
            AuthError::InvalidToken(_) => "invalid_token",
            AuthError::UnknownTenant(_) => "unknown_tenant",
            AuthError::StoreUnavailable => "auth_unavailable",
        }
    }
}

/// Check a key record against the time and the secret that matched.
pub fn check_key(record: &KeyRecord, hash: &str, now_ms: u64) -> Result<(), AuthError> {
    if record.revoked_ms.is_some_and(|t| t <= now_ms) {
        return Err(AuthError::RevokedKey {
            id: record.id.clone(),
        });
    }
    if record.expires_ms.is_some_and(|t| t <= now_ms) {
        return Err(AuthError::ExpiredKey {
            id: record.id.clone(),
        });
    }
    match record.secrets.iter().find(|s| s.hash == hash) {
        Some(s) if s.expires_ms.is_some_and(|t| t <= now_ms) => Err(AuthError::ExpiredKey {
            id: record.id.clone(),
        }),
        Some(_) => Ok(()),
        None => Err(AuthError::UnknownKey {
            claimed_id: Some(record.id.clone()),
        }),
    }
}

/// An authenticated caller: the shared [`Identity`] plus what the policy stages need.
#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Arc<Identity>,
    pub tenant: Arc<TenantPolicy>,
    pub key: Option<Arc<KeyRecord>>,
}

/// 403: the caller may not use the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDenied {
    pub model: String,
    pub tenant: String,
    /// Patterns that would have allowed it.
    pub allowed: Vec<String>,
    /// Denied by the key's own narrowing, not the tenant's.
    pub by_key: bool,
}

/// Everything the policy stages decide from, compiled once per configuration snapshot.
#[derive(Debug, Clone)]
pub struct PolicyTable {
    /// Identities are configured: requests need a credential.
    pub enabled: bool,
    pub tenants: HashMap<Arc<str>, Arc<TenantPolicy>>,
    /// Keys declared in configuration, by hash.
    pub declared_keys: HashMap<String, Arc<KeyRecord>>,
    pub anonymous: Option<Arc<str>>,
    pub model_limits: HashMap<String, Limits>,
    pub prices: PriceTable,
    pub time_zone: TimeZone,
    pub default_max_tokens: u64,
}

fn arcs(v: &[String]) -> Vec<Arc<str>> {
    v.iter().map(|s| Arc::from(s.as_str())).collect()
}

impl PolicyTable {
    pub fn compile(config: &ConfigSet) -> Self {
        let p = &config.settings.policy;
        let mut tenants = HashMap::new();
        let mut declared_keys = HashMap::new();
        for t in &config.tenants {
            let name: Arc<str> = Arc::from(t.name.as_str());
            tenants.insert(
                name.clone(),
                Arc::new(TenantPolicy {
                    name: name.clone(),
                    models: t.models.iter().map(|m| ModelPattern::new(m)).collect(),
                    roles: arcs(&t.roles),
                    regions: arcs(&t.regions),
                    priority: t.priority,
                    limits: t.limits.clone(),
                    key_limits: t.key_limits.clone(),
                    model_limits: t.model_limits.iter().cloned().collect(),
                    budgets: t.budgets.clone(),
                    key_budgets: t.key_budgets.clone(),
                }),
            );
            for k in &t.keys {
                // Declared keys get a stable id derived from their hash.
                let id = format!("{}{}", crate::key::KEY_PREFIX, &k.sha256[..8]);
                declared_keys.insert(
                    k.sha256.clone(),
                    Arc::new(KeyRecord {
                        id,
                        tenant: t.name.clone(),
                        name: k.name.clone(),
                        roles: k.roles.clone(),
                        models: k.models.clone(),
                        limits: None,
                        budgets_usd: None,
                        created_ms: 0,
                        expires_ms: k.expires_ms,
                        revoked_ms: None,
                        secrets: vec![KeySecret {
                            hash: k.sha256.clone(),
                            created_ms: 0,
                            expires_ms: None,
                        }],
                        source: "config".into(),
                    }),
                );
            }
        }
        let prices = PriceTable::new(
            p.prices
                .iter()
                .map(|e| PriceEntry {
                    model: e.model.clone(),
                    backend: e.backend.clone(),
                    price: Price::per_million(e.input, e.output, e.cached_input),
                })
                .collect(),
        );
        Self {
            enabled: config.identities_configured(),
            tenants,
            declared_keys,
            anonymous: p.auth.anonymous_tenant.as_deref().map(Arc::from),
            model_limits: p.model_limits.iter().cloned().collect(),
            prices,
            time_zone: TimeZone::get(&p.time_zone).unwrap_or(TimeZone::UTC),
            default_max_tokens: p.default_max_tokens,
        }
    }

    pub fn tenant(&self, name: &str) -> Option<&Arc<TenantPolicy>> {
        self.tenants.get(name)
    }

    /// The caller behind a valid key record.
    pub fn caller_for_key(&self, record: Arc<KeyRecord>) -> Result<Caller, AuthError> {
        let tenant = self
            .tenants
            .get(record.tenant.as_str())
            .cloned()
            .ok_or_else(|| AuthError::UnknownTenant(record.tenant.clone()))?;
        let mut roles = tenant.roles.clone();
        roles.extend(record.roles.iter().map(|r| Arc::from(r.as_str())));
        roles.dedup();
        let identity = Identity {
            tenant: tenant.name.clone(),
            key_id: Some(Arc::from(record.id.as_str())),
            subject: None,
            roles,
            regions: tenant.regions.clone(),
            priority: tenant.priority,
        };
        Ok(Caller {
            identity: Arc::new(identity),
            tenant,
            key: Some(record),
        })
    }

    /// The caller behind verified token claims.
    pub fn caller_for_token(
        &self,
        tenant: &str,
        subject: Option<&str>,
        token_roles: Vec<String>,
    ) -> Result<Caller, AuthError> {
        let tenant = self
            .tenants
            .get(tenant)
            .cloned()
            .ok_or_else(|| AuthError::UnknownTenant(tenant.to_string()))?;
        let mut roles = tenant.roles.clone();
        roles.extend(token_roles.iter().map(|r| Arc::from(r.as_str())));
        roles.dedup();
        Ok(Caller {
            identity: Arc::new(Identity {
                tenant: tenant.name.clone(),
                key_id: None,
                subject: subject.map(Arc::from),
                roles,
                regions: tenant.regions.clone(),
                priority: tenant.priority,
            }),
            tenant,
            key: None,
        })
    }

    /// The anonymous caller, when configuration allows one.
    pub fn anonymous_caller(&self) -> Option<Caller> {
        let name = self.anonymous.as_ref()?;
        let tenant = self.tenants.get(name)?.clone();
        Some(Caller {
            identity: Arc::new(Identity {
                tenant: tenant.name.clone(),
                key_id: None,
                subject: None,
                roles: tenant.roles.clone(),
                regions: tenant.regions.clone(),
                priority: tenant.priority,
            }),
            tenant,
            key: None,
        })
    }

    /// May `caller` use `model`?
    pub fn authorize(&self, caller: &Caller, model: &str) -> Result<(), ModelDenied> {
        let denied = |by_key: bool, allowed: Vec<String>| ModelDenied {
            model: model.to_string(),
            tenant: caller.tenant.name.to_string(),
            allowed,
            by_key,
        };
        if !any_match(&caller.tenant.models, model) {
            return Err(denied(
                false,
                caller.tenant.models.iter().map(|p| p.0.clone()).collect(),
            ));
        }
        if let Some(k) = &caller.key {
            if !k.models.is_empty() && !k.models.iter().any(|p| ModelPattern::new(p).matches(model))
            {
                return Err(denied(true, k.models.clone()));
            }
        }
        Ok(())
    }

    /// Models `caller` may use, from `names` (for `GET /v1/models`).
    pub fn visible_models<'a>(&self, caller: &Caller, names: &'a [Arc<str>]) -> Vec<&'a Arc<str>> {
        names
            .iter()
            .filter(|m| self.authorize(caller, m).is_ok())
            .collect()
    }

    /// Whether a request by `caller` to `model` needs a token estimate (any token limit or
    /// budget applies); skipping the tokenizer otherwise keeps the hot path cheap.
    pub fn needs_estimate(&self, caller: &Caller, model: &str) -> bool {
        let t = &caller.tenant;
        let key_limits = self.key_limits(caller);
        t.limits.tokens.is_some()
            || key_limits.tokens.is_some()
            || t.model_limits
                .get(model)
                .is_some_and(|l| l.tokens.is_some())
            || self
                .model_limits
                .get(model)
                .is_some_and(|l| l.tokens.is_some())
            || (!self.budgets(caller).is_empty() && self.prices.max_price(model).is_some())
    }

    fn key_limits(&self, caller: &Caller) -> Limits {
        match caller.key.as_ref().and_then(|k| k.limits.as_ref()) {
            Some(l) => l.to_limits(),
            None => caller.tenant.key_limits.clone(),
        }
    }

    /// Budgets that apply: (bucket prefix, budget).
    fn budgets(&self, caller: &Caller) -> Vec<(String, Budget)> {
        let t = &caller.tenant;
        let mut out: Vec<(String, Budget)> = t
            .budgets
            .iter()
            .map(|b| (format!("tb:{}", t.name), *b))
            .collect();
        if let Some(k) = &caller.key {
            let key_budgets: Vec<Budget> = match &k.budgets_usd {
                Some(map) => map
                    .iter()
                    .filter_map(|(p, usd)| {
                        let period = match p.as_str() {
                            "day" => CfgPeriod::Day,
                            "week" => CfgPeriod::Week,
                            "month" => CfgPeriod::Month,
                            "lifetime" => CfgPeriod::Lifetime,
                            _ => return None,
                        };
                        Some(Budget {
                            period,
                            nanos: (usd.max(0.0) * 1e9).round() as u64,
                        })
                    })
                    .collect(),
                None => t.key_budgets.clone(),
            };
            out.extend(key_budgets.into_iter().map(|b| (format!("kb:{}", k.id), b)));
        }
        out
    }

    /// Everything a request is charged at admission.
    pub fn demand(
        &self,
        caller: &Caller,
        model: &str,
        estimate: TokenEstimate,
        now_ms: u64,
    ) -> Demand {
        let mut charges = Vec::new();
        let t = &caller.tenant;
        let key_subject = caller
            .key
            .as_ref()
            .map(|k| (format!("k:{}", k.id), k.id.clone()))
            .or_else(|| {
                caller
                    .identity
                    .subject
                    .as_ref()
                    .map(|s| (format!("u:{}:{s}", t.name), format!("subject {s}")))
            });
        if let Some((bucket, subject)) = key_subject {
            push_limits(
                &mut charges,
                &self.key_limits(caller),
                &bucket,
                Scope::Key,
                &subject,
                estimate,
            );
        }
        push_limits(
            &mut charges,
            &t.limits,
            &format!("t:{}", t.name),
            Scope::Tenant,
            &t.name,
            estimate,
        );
        if let Some(l) = self.model_limits.get(model) {
            push_limits(
                &mut charges,
                l,
                &format!("m:{model}"),
                Scope::Model,
                model,
                estimate,
            );
        }
        if let Some(l) = t.model_limits.get(model) {
            push_limits(
                &mut charges,
                l,
                &format!("tm:{}:{model}", t.name),
                Scope::TenantModel,
                &format!("{}/{model}", t.name),
                estimate,
            );
        }
        let budgets = self.budgets(caller);
        if !budgets.is_empty() {
            let cost = self
                .prices
                .max_price(model)
                .map_or(0, |p| p.cost(estimate.input, estimate.output, 0));
            for (prefix, b) in budgets {
                let period = period(b.period);
                let w = budget::window(period, now_ms, &self.time_zone);
                let scope = if prefix.starts_with("kb:") {
                    Scope::Key
                } else {
                    Scope::Tenant
                };
                let subject = prefix.split_once(':').map_or("", |(_, s)| s);
                charges.push(Charge {
                    bucket: Arc::from(format!("{prefix}:{}", period.as_str())),
                    scope,
                    subject: Arc::from(subject),
                    metric: Metric::Spend,
                    window: Window::Calendar {
                        id: w.id,
                        end_ms: w.end_ms,
                    },
                    limit: b.nanos,
                    amount: cost,
                });
            }
        }
        Demand { charges }
    }

    /// The cost of real usage, in nano-USD (0 when the model has no price).
    pub fn cost(
        &self,
        model: &str,
        backend: Option<&str>,
        input: u64,
        output: u64,
        cached: u64,
    ) -> u64 {
        self.prices
            .price(model, backend)
            .map_or(0, |p| p.cost(input, output, cached))
    }
}

/// Map a configured period.
pub fn period(p: CfgPeriod) -> Period {
    match p {
        CfgPeriod::Day => Period::Day,
        CfgPeriod::Week => Period::Week,
        CfgPeriod::Month => Period::Month,
        CfgPeriod::Lifetime => Period::Lifetime,
    }
}

fn token_type(t: cfg::TokenType) -> TokenType {
    match t {
        cfg::TokenType::Input => TokenType::Input,
        cfg::TokenType::Output => TokenType::Output,
        cfg::TokenType::Total => TokenType::Total,
    }
}

fn push_limits(
    out: &mut Vec<Charge>,
    l: &Limits,
    bucket: &str,
    scope: Scope,
    subject: &str,
    estimate: TokenEstimate,
) {
    let per = u64::try_from(l.per.as_millis()).unwrap_or(60_000).max(1);
    let subject: Arc<str> = Arc::from(subject);
    if let Some(limit) = l.requests {
        out.push(Charge {
            bucket: Arc::from(format!("{bucket}:r:{per}")),
            scope,
            subject: subject.clone(),
            metric: Metric::Requests,
            window: Window::Sliding { ms: per },
            limit,
            amount: 1,
        });
    }
    if let Some(limit) = l.tokens {
        let tt = token_type(l.token_type);
        let amount = match tt {
            TokenType::Input => estimate.input,
            TokenType::Output => estimate.output,
            TokenType::Total => estimate.total(),
        };
        out.push(Charge {
            bucket: Arc::from(format!("{bucket}:t{}:{per}", &tt.as_str()[..1])),
            scope,
            subject: subject.clone(),
            metric: Metric::Tokens(tt),
            window: Window::Sliding { ms: per },
            limit,
            amount,
        });
    }
    if let Some(limit) = l.concurrency {
        out.push(Charge {
            bucket: Arc::from(format!("{bucket}:c")),
            scope,
            subject,
            metric: Metric::Concurrency,
            window: Window::InFlight,
            limit,
            amount: 1,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_patterns() {
        let m = |p: &str, s: &str| ModelPattern::new(p).matches(s);
        assert!(m("*", "anything"));
        assert!(m("llama-*", "llama-3-8b"));
        assert!(!m("llama-*", "mistral"));
        assert!(m("*-instruct", "llama-3-instruct"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("chat", "chat"));
        assert!(!m("chat", "chat2"));
    }

    fn table(yaml: &str) -> PolicyTable {
        let config = infergate_control::load_str("t.yaml", yaml).unwrap();
        PolicyTable::compile(&config)
    }

    const YAML: &str = "
apiVersion: infergate.dev/v1alpha1
kind: Tenant
metadata: {name: acme}
spec:
  models: [chat, 'llama-*']
  regions: [eu]
  priority: -1
  limits: {requests: 100, tokens: 10000, concurrency: 4}
  keyLimits: {tokens: 1000, tokenType: output}
  modelLimits: [{model: chat, tokens: 5000, per: 10s}]
  budgets: [{period: day, usd: 1}]
  keys:
  - {name: ci, sha256: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', models: [chat]}
---
apiVersion: infergate.dev/v1alpha1
kind: GatewaySettings
metadata: {name: gw}
spec:
  limits:
    models: [{model: chat, requests: 1000}]
  prices: [{model: chat, input: 1, output: 2}]
";

    #[test]
    fn key_callers_carry_tenant_identity() {
        let t = table(YAML);
        assert!(t.enabled);
        let rec = t.declared_keys.values().next().unwrap().clone();
        let c = t.caller_for_key(rec).unwrap();
        assert_eq!(&*c.identity.tenant, "acme");
        assert_eq!(c.identity.priority, Some(-1));
        assert_eq!(c.identity.regions, vec![Arc::<str>::from("eu")]);
        assert!(t.authorize(&c, "chat").is_ok());
        // The tenant allows llama-*, the key narrows to chat.
        let d = t.authorize(&c, "llama-3").unwrap_err();
        assert!(d.by_key);
        assert!(t.authorize(&c, "other").is_err());
    }

    #[test]
    fn demand_covers_every_scope() {
        let t = table(YAML);
        let rec = t.declared_keys.values().next().unwrap().clone();
        let c = t.caller_for_key(rec).unwrap();
        let d = t.demand(
            &c,
            "chat",
            TokenEstimate {
                input: 100,
                output: 50,
            },
            0,
        );
        let names: Vec<&str> = d.charges.iter().map(|c| &*c.bucket).collect();
        assert!(
            names.iter().any(|n| n.starts_with("k:igk_aaaaaaaa:to")),
            "{names:?}"
        );
        assert!(names.contains(&"t:acme:r:60000"));
        assert!(names.contains(&"t:acme:tt:60000"));
        assert!(names.contains(&"t:acme:c"));
        assert!(names.contains(&"m:chat:r:60000"));
        assert!(names.contains(&"tm:acme:chat:tt:10000"));
        assert!(names.contains(&"tb:acme:day"));
        let key_tokens = d
            .charges
            .iter()
            .find(|c| c.bucket.starts_with("k:"))
            .unwrap();
        assert_eq!(key_tokens.amount, 50, "output tokens only");
        let budget = d
            .charges
            .iter()
            .find(|c| c.metric == Metric::Spend)
            .unwrap();
        assert_eq!(budget.amount, 100 * 1000 + 50 * 2000);
        assert_eq!(budget.limit, 1_000_000_000);
    }

    #[test]
    fn key_checks() {
        let mut r = KeyRecord {
            id: "igk_00000000".into(),
            tenant: "t".into(),
            name: "n".into(),
            roles: vec![],
            models: vec![],
            limits: None,
            budgets_usd: None,
            created_ms: 0,
            expires_ms: None,
            revoked_ms: None,
            secrets: vec![
                KeySecret {
                    hash: "old".into(),
                    created_ms: 0,
                    expires_ms: Some(100),
                },
                KeySecret {
                    hash: "new".into(),
                    created_ms: 50,
                    expires_ms: None,
                },
            ],
            source: "api".into(),
        };
        assert!(check_key(&r, "old", 99).is_ok(), "grace period");
        assert!(check_key(&r, "new", 99).is_ok());
        assert!(matches!(
            check_key(&r, "old", 100),
            Err(AuthError::ExpiredKey { .. })
        ));
        r.revoked_ms = Some(200);
        assert!(check_key(&r, "new", 199).is_ok());
        assert!(matches!(
            check_key(&r, "new", 200),
            Err(AuthError::RevokedKey { .. })
        ));
    }
}
