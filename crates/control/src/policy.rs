//! Configuration of who may call what and how much: the `Tenant` kind and the `auth`, `state`,
//! `limits`, `budgets` and `prices` sections of `GatewaySettings`. This module parses and
//! validates; `infergate-policy` turns the result into decisions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde::Deserialize;

use crate::loader::ConfigError;
use crate::units::Dur;

// ---------------------------------------------------------------- YAML shapes

/// `kind: Tenant` — a group of callers with its keys, allowed models, limits and budgets.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantSpec {
    /// Public model names the tenant may use; `*` matches any run of characters
    /// (`llama-*`, `*`). Empty = none.
    #[serde(default)]
    pub models: Vec<String>,
    /// Roles every identity of the tenant has (JWT roles are added to these).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Regions the tenant's data may be processed in (empty = any).
    #[serde(default)]
    pub regions: Vec<String>,
    /// Default priority of the tenant's requests (InferenceObjective semantics: negative =
    /// sheddable).
    #[serde(default)]
    pub priority: Option<i32>,
    /// Limits on the tenant as a whole.
    #[serde(default)]
    pub limits: Option<LimitsSpec>,
    /// Limits on each key of the tenant (a key made through the admin API may set its own).
    #[serde(default)]
    pub key_limits: Option<LimitsSpec>,
    /// Limits on the tenant's use of one model.
    #[serde(default)]
    pub model_limits: Vec<ModelLimitsSpec>,
    /// Spend budgets of the tenant as a whole.
    #[serde(default)]
    pub budgets: Vec<BudgetSpec>,
    /// Spend budgets of each key.
    #[serde(default)]
    pub key_budgets: Vec<BudgetSpec>,
    /// Keys declared in configuration, by hash (`infergate keys hash` prints one).
    #[serde(default)]
    pub keys: Vec<KeySpec>,
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsSpec {
    /// Requests per window.
    #[serde(default)]
    pub requests: Option<u64>,
    /// Tokens per window.
    #[serde(default)]
    pub tokens: Option<u64>,
    /// Which tokens count: `input`, `output` or `total` (default).
    #[serde(default)]
    pub token_type: Option<TokenTypeSpec>,
    /// Requests in flight at once.
    #[serde(default)]
    pub concurrency: Option<u64>,
    /// The window of `requests` and `tokens` (default `1m`: per minute).
    #[serde(default)]
    pub per: Option<Dur>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum TokenTypeSpec {
    Input,
    Output,
    #[default]
    Total,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelLimitsSpec {
    /// A public model name.
    pub model: String,
    #[serde(flatten)]
    pub limits: LimitsSpec,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum PeriodSpec {
    Day,
    Week,
    Month,
    Lifetime,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetSpec {
    pub period: PeriodSpec,
    /// US dollars per period.
    pub usd: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeySpec {
    /// A name for listings and the spend report.
    pub name: String,
    /// SHA-256 of the key, 64 hex characters.
    pub sha256: String,
    /// Extra roles for this key.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Narrows the tenant's models for this key (patterns; empty = the tenant's).
    #[serde(default)]
    pub models: Vec<String>,
    /// RFC 3339 time after which the key stops working.
    #[serde(default)]
    pub expires: Option<String>,
}

/// `GatewaySettings.spec.auth`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthSpec {
    /// Requests without a credential act as this tenant. Unset = they get 401 once any
    /// identity is configured.
    #[serde(default)]
    pub anonymous_tenant: Option<String>,
    /// The admin API's credential.
    #[serde(default)]
    pub admin_token: Option<SecretRefSpec>,
    #[serde(default)]
    pub jwt: Option<JwtSpec>,
}

/// A secret given by hash, or read from an environment variable at start.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRefSpec {
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub env: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtSpec {
    /// Expected `iss`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted `aud` values (any one must match); empty = `aud` not checked.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// JWKS from a file (re-read every `refresh`).
    #[serde(default)]
    pub jwks_file: Option<String>,
    /// JWKS from a URL (fetched at start, every `refresh`, and when a token names an unknown
    /// `kid`, at most every 10s).
    #[serde(default)]
    pub jwks_url: Option<String>,
    #[serde(default)]
    pub refresh: Option<Dur>,
    /// Claim holding the tenant name (dotted path for nested claims). Default `tenant`.
    #[serde(default)]
    pub tenant_claim: Option<String>,
    /// Claim holding roles (array or space-separated string). Default `roles`.
    #[serde(default)]
    pub roles_claim: Option<String>,
    /// Tenant for tokens without the tenant claim (unset = such tokens get 403).
    #[serde(default)]
    pub default_tenant: Option<String>,
    /// Clock skew tolerated on `exp`/`nbf`. Default 60s.
    #[serde(default)]
    pub leeway: Option<Dur>,
}

/// `GatewaySettings.spec.state`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StateSpec {
    /// SQLite file for keys (without Redis) and the spend ledger. Default `infergate.db`.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub redis: Option<RedisSpec>,
    /// How often the spend ledger is written. Default 1s.
    #[serde(default)]
    pub ledger_flush: Option<Dur>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisSpec {
    /// `redis://[:password@]host:port[/db]`.
    #[serde(default)]
    pub url: Option<String>,
    /// Read the URL from this environment variable instead (keeps passwords out of files).
    #[serde(default)]
    pub url_env: Option<String>,
    /// Prefix of every key, used as the Redis Cluster hash tag. Default `infergate`.
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// Longest wait for one Redis call. Default 100ms.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// `failOpen` (default): admit under the local fallback limits while Redis is unreachable;
    /// `failClosed`: refuse with 503.
    #[serde(default)]
    pub on_unavailable: Option<FailModeSpec>,
    /// Share of every limit and budget a replica enforces locally while Redis is unreachable
    /// (e.g. 0.34 with three replicas). Default 1.
    #[serde(default)]
    pub fallback_share: Option<f64>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum FailModeSpec {
    FailOpen,
    FailClosed,
}

/// `GatewaySettings.spec.limits`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GlobalLimitsSpec {
    /// Output tokens reserved for a request without `max_tokens`. Default 1024.
    #[serde(default)]
    pub default_max_tokens: Option<u64>,
    /// A concurrency slot is reclaimed after this long even if its request never settled (a
    /// replica that died). Default 10m.
    #[serde(default)]
    pub concurrency_lease: Option<Dur>,
    /// Limits on a model across all tenants.
    #[serde(default)]
    pub models: Vec<ModelLimitsSpec>,
}

/// `GatewaySettings.spec.budgets`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetSettingsSpec {
    /// IANA time zone of the day / week / month windows and of the spend report's days.
    #[serde(default)]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PriceSpec {
    /// Public model name.
    pub model: String,
    /// Pool (or provider backend) this price applies to; unset = any.
    #[serde(default)]
    pub backend: Option<String>,
    /// USD per million input tokens.
    pub input: f64,
    /// USD per million output tokens.
    pub output: f64,
    /// USD per million cached input tokens (default: the input price).
    #[serde(default)]
    pub cached_input: Option<f64>,
}

// ---------------------------------------------------------------- normalised forms

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenType {
    Input,
    Output,
    #[default]
    Total,
}

/// Limits on one subject; `None` = not limited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub requests: Option<u64>,
    pub tokens: Option<u64>,
    pub token_type: TokenType,
    pub concurrency: Option<u64>,
    pub per: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            requests: None,
            tokens: None,
            token_type: TokenType::Total,
            concurrency: None,
            per: Duration::from_secs(60),
        }
    }
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.requests.is_none() && self.tokens.is_none() && self.concurrency.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    Day,
    Week,
    Month,
    Lifetime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub period: Period,
    /// Nano-USD.
    pub nanos: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredKey {
    pub name: String,
    /// Lowercase hex SHA-256.
    pub sha256: String,
    pub roles: Vec<String>,
    pub models: Vec<String>,
    /// Unix ms.
    pub expires_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub name: String,
    pub models: Vec<String>,
    pub roles: Vec<String>,
    pub regions: Vec<String>,
    pub priority: Option<i32>,
    pub limits: Limits,
    pub key_limits: Limits,
    pub model_limits: Vec<(String, Limits)>,
    pub budgets: Vec<Budget>,
    pub key_budgets: Vec<Budget>,
    pub keys: Vec<DeclaredKey>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Sha256(String),
    Env(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    pub issuer: Option<String>,
    pub audiences: Vec<String>,
    pub jwks_file: Option<String>,
    pub jwks_url: Option<String>,
    pub refresh: Duration,
    pub tenant_claim: String,
    pub roles_claim: String,
    pub default_tenant: Option<String>,
    pub leeway: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthSettings {
    pub anonymous_tenant: Option<String>,
    pub admin_token: Option<SecretRef>,
    pub jwt: Option<JwtSettings>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    FailOpen,
    FailClosed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RedisSettings {
    /// The URL, or where to read it.
    pub url: SecretRefUrl,
    pub key_prefix: String,
    pub timeout: Duration,
    pub on_unavailable: FailMode,
    pub fallback_share: f64,
}

impl Eq for RedisSettings {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRefUrl {
    Url(String),
    Env(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSettings {
    pub path: String,
    pub redis: Option<RedisSettings>,
    pub ledger_flush: Duration,
}

impl Default for StateSettings {
    fn default() -> Self {
        Self {
            path: "infergate.db".into(),
            redis: None,
            ledger_flush: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PriceSetting {
    pub model: String,
    pub backend: Option<String>,
    pub input: f64,
    pub output: f64,
    pub cached_input: Option<f64>,
}

impl Eq for PriceSetting {}

/// Gateway-wide policy settings, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySettings {
    pub auth: AuthSettings,
    pub state: StateSettings,
    pub default_max_tokens: u64,
    pub concurrency_lease: Duration,
    pub model_limits: Vec<(String, Limits)>,
    pub time_zone: String,
    pub prices: Vec<PriceSetting>,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            auth: AuthSettings::default(),
            state: StateSettings::default(),
            default_max_tokens: 1024,
            concurrency_lease: Duration::from_secs(600),
            model_limits: Vec::new(),
            time_zone: "UTC".into(),
            prices: Vec::new(),
        }
    }
}

// ---------------------------------------------------------------- validation

/// Reports problems for one resource (file/line/field are the caller's business).
pub trait Report {
    fn err(&self, field: &str, message: String) -> ConfigError;
}

fn limits(
    spec: &LimitsSpec,
    field: &str,
    at: &dyn Report,
    errors: &mut Vec<ConfigError>,
) -> Limits {
    let mut l = Limits::default();
    let positive = |v: Option<u64>, name: &str, errors: &mut Vec<ConfigError>| {
        if v == Some(0) {
            errors.push(at.err(
                &format!("{field}.{name}"),
                "0 would refuse every request; remove the field for no limit".into(),
            ));
        }
        v
    };
    l.requests = positive(spec.requests, "requests", errors);
    l.tokens = positive(spec.tokens, "tokens", errors);
    l.concurrency = positive(spec.concurrency, "concurrency", errors);
    l.token_type = match spec.token_type.unwrap_or_default() {
        TokenTypeSpec::Input => TokenType::Input,
        TokenTypeSpec::Output => TokenType::Output,
        TokenTypeSpec::Total => TokenType::Total,
    };
    if let Some(per) = spec.per {
        let d = per.get();
        if d < Duration::from_secs(1) || d > Duration::from_secs(86_400) {
            errors.push(at.err(
                &format!("{field}.per"),
                "use a window from 1s to 24h (e.g. 1m for per minute)".into(),
            ));
        }
        l.per = d.max(Duration::from_secs(1));
    }
    l
}

fn budgets(
    specs: &[BudgetSpec],
    field: &str,
    at: &dyn Report,
    errors: &mut Vec<ConfigError>,
) -> Vec<Budget> {
    let mut seen = HashSet::new();
    specs
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if !(b.usd.is_finite() && b.usd > 0.0) {
                errors.push(at.err(
                    &format!("{field}[{i}].usd"),
                    "a budget is a positive number of US dollars".into(),
                ));
            }
            let period = match b.period {
                PeriodSpec::Day => Period::Day,
                PeriodSpec::Week => Period::Week,
                PeriodSpec::Month => Period::Month,
                PeriodSpec::Lifetime => Period::Lifetime,
            };
            if !seen.insert(period) {
                errors.push(at.err(
                    &format!("{field}[{i}].period"),
                    "one budget per period; remove the duplicate".into(),
                ));
            }
            Budget {
                period,
                nanos: (b.usd.max(0.0) * 1e9).round() as u64,
            }
        })
        .collect()
}

/// Check a model pattern (`*` wildcards only).
pub fn valid_pattern(p: &str) -> bool {
    !p.is_empty() && p.len() <= 256 && !p.chars().any(char::is_whitespace)
}

fn patterns(list: &[String], field: &str, at: &dyn Report, errors: &mut Vec<ConfigError>) {
    for (i, p) in list.iter().enumerate() {
        if !valid_pattern(p) {
            errors.push(at.err(
                &format!("{field}[{i}]"),
                format!("`{p}` is not a model pattern; write a model name, optionally with `*` (e.g. `llama-*`)"),
            ));
        }
    }
}

/// RFC 3339 to Unix ms.
pub fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let ts: jiff::Timestamp = s.parse().ok()?;
    u64::try_from(ts.as_millisecond()).ok()
}

fn hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Validate one tenant.
pub fn tenant(
    name: &str,
    spec: &TenantSpec,
    at: &dyn Report,
    errors: &mut Vec<ConfigError>,
) -> Tenant {
    patterns(&spec.models, "spec.models", at, errors);
    let mut key_names = HashSet::new();
    let keys = spec
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            if !hex64(&k.sha256) {
                errors.push(at.err(
                    &format!("spec.keys[{i}].sha256"),
                    "write the key's SHA-256 as 64 hex characters (`infergate keys hash` prints it), never the key itself".into(),
                ));
            }
            if k.name.is_empty() || !key_names.insert(k.name.clone()) {
                errors.push(at.err(
                    &format!("spec.keys[{i}].name"),
                    "give each key a unique, non-empty name".into(),
                ));
            }
            patterns(&k.models, &format!("spec.keys[{i}].models"), at, errors);
            let expires_ms = k.expires.as_deref().and_then(|e| {
                let ms = parse_rfc3339_ms(e);
                if ms.is_none() {
                    errors.push(at.err(
                        &format!("spec.keys[{i}].expires"),
                        format!("`{e}` is not an RFC 3339 time; write e.g. 2026-01-31T00:00:00Z"),
                    ));
                }
                ms
            });
            DeclaredKey {
                name: k.name.clone(),
                sha256: k.sha256.to_ascii_lowercase(),
                roles: k.roles.clone(),
                models: k.models.clone(),
                expires_ms,
            }
        })
        .collect();
    let mut model_seen = HashSet::new();
    let model_limits = spec
        .model_limits
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if !model_seen.insert(m.model.clone()) {
                errors.push(at.err(
                    &format!("spec.modelLimits[{i}].model"),
                    format!("model `{}` has limits twice; merge them", m.model),
                ));
            }
            (
                m.model.clone(),
                limits(&m.limits, &format!("spec.modelLimits[{i}]"), at, errors),
            )
        })
        .collect();
    Tenant {
        name: name.to_string(),
        models: spec.models.clone(),
        roles: spec.roles.clone(),
        regions: spec.regions.clone(),
        priority: spec.priority,
        limits: spec
            .limits
            .as_ref()
            .map(|l| limits(l, "spec.limits", at, errors))
            .unwrap_or_default(),
        key_limits: spec
            .key_limits
            .as_ref()
            .map(|l| limits(l, "spec.keyLimits", at, errors))
            .unwrap_or_default(),
        model_limits,
        budgets: budgets(&spec.budgets, "spec.budgets", at, errors),
        key_budgets: budgets(&spec.key_budgets, "spec.keyBudgets", at, errors),
        keys,
    }
}

/// The policy parts of `GatewaySettings.spec`.
pub struct PolicySpecs<'a> {
    pub auth: &'a AuthSpec,
    pub state: &'a StateSpec,
    pub limits: &'a GlobalLimitsSpec,
    pub budgets: &'a BudgetSettingsSpec,
    pub prices: &'a [PriceSpec],
}

/// Validate the gateway-wide policy settings.
pub fn settings(
    s: &PolicySpecs<'_>,
    at: &dyn Report,
    errors: &mut Vec<ConfigError>,
) -> PolicySettings {
    let mut out = PolicySettings::default();
    let a = s.auth;
    out.auth.anonymous_tenant = a.anonymous_tenant.clone();
    if let Some(t) = &a.admin_token {
        out.auth.admin_token = match (&t.sha256, &t.env) {
            (Some(h), None) if hex64(h) => Some(SecretRef::Sha256(h.to_ascii_lowercase())),
            (None, Some(e)) if !e.is_empty() => Some(SecretRef::Env(e.clone())),
            _ => {
                errors.push(at.err(
                    "spec.auth.adminToken",
                    "set exactly one of `sha256` (64 hex characters) or `env` (a variable holding the token)".into(),
                ));
                None
            }
        };
    }
    if let Some(j) = &a.jwt {
        if j.jwks_file.is_some() == j.jwks_url.is_some() {
            errors.push(at.err(
                "spec.auth.jwt",
                "set exactly one of `jwksFile` or `jwksUrl`".into(),
            ));
        }
        if let Some(u) = &j.jwks_url {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                errors.push(at.err(
                    "spec.auth.jwt.jwksUrl",
                    format!("`{u}` is not an http(s) URL"),
                ));
            }
        }
        out.auth.jwt = Some(JwtSettings {
            issuer: j.issuer.clone(),
            audiences: j.audiences.clone(),
            jwks_file: j.jwks_file.clone(),
            jwks_url: j.jwks_url.clone(),
            refresh: j.refresh.map_or(Duration::from_secs(300), |d| {
                d.get().max(Duration::from_secs(1))
            }),
            tenant_claim: j.tenant_claim.clone().unwrap_or_else(|| "tenant".into()),
            roles_claim: j.roles_claim.clone().unwrap_or_else(|| "roles".into()),
            default_tenant: j.default_tenant.clone(),
            leeway: j.leeway.map_or(Duration::from_secs(60), Dur::get),
        });
    }

    let st = s.state;
    if let Some(p) = &st.path {
        if p.is_empty() {
            errors.push(at.err("spec.state.path", "give a file path (or `:memory:`)".into()));
        }
        out.state.path = p.clone();
    }
    if let Some(d) = st.ledger_flush {
        out.state.ledger_flush = d
            .get()
            .clamp(Duration::from_millis(10), Duration::from_secs(60));
    }
    if let Some(r) = &st.redis {
        let url = match (&r.url, &r.url_env) {
            (Some(u), None) => {
                if !(u.starts_with("redis://")
                    || u.starts_with("rediss://")
                    || u.starts_with("unix://"))
                {
                    errors.push(at.err(
                        "spec.state.redis.url",
                        format!("`{u}` is not a Redis URL; write redis://host:port"),
                    ));
                }
                SecretRefUrl::Url(u.clone())
            }
            (None, Some(e)) => SecretRefUrl::Env(e.clone()),
            _ => {
                errors.push(at.err(
                    "spec.state.redis",
                    "set exactly one of `url` or `urlEnv`".into(),
                ));
                SecretRefUrl::Url(String::new())
            }
        };
        let share = r.fallback_share.unwrap_or(1.0);
        if !(share > 0.0 && share <= 1.0) {
            errors.push(at.err(
                "spec.state.redis.fallbackShare",
                "use a share in (0, 1], e.g. 0.34 with three replicas".into(),
            ));
        }
        let prefix = r.key_prefix.clone().unwrap_or_else(|| "infergate".into());
        if prefix.is_empty() || prefix.contains(['{', '}']) {
            errors.push(at.err(
                "spec.state.redis.keyPrefix",
                "a non-empty prefix without braces (it becomes the {hash tag})".into(),
            ));
        }
        out.state.redis = Some(RedisSettings {
            url,
            key_prefix: prefix,
            timeout: r.timeout.map_or(Duration::from_millis(100), |d| {
                d.get().max(Duration::from_millis(1))
            }),
            on_unavailable: match r.on_unavailable {
                Some(FailModeSpec::FailClosed) => FailMode::FailClosed,
                _ => FailMode::FailOpen,
            },
            fallback_share: share.clamp(f64::MIN_POSITIVE, 1.0),
        });
    }

    let l = s.limits;
    if let Some(n) = l.default_max_tokens {
        if n == 0 {
            errors.push(at.err(
                "spec.limits.defaultMaxTokens",
                "reserve at least 1 token".into(),
            ));
        }
        out.default_max_tokens = n.max(1);
    }
    if let Some(d) = l.concurrency_lease {
        out.concurrency_lease = d.get().max(Duration::from_secs(1));
    }
    let mut seen = HashSet::new();
    for (i, m) in l.models.iter().enumerate() {
        if !seen.insert(m.model.clone()) {
            errors.push(at.err(
                &format!("spec.limits.models[{i}].model"),
                format!("model `{}` has limits twice; merge them", m.model),
            ));
        }
        out.model_limits.push((
            m.model.clone(),
            limits(&m.limits, &format!("spec.limits.models[{i}]"), at, errors),
        ));
    }

    if let Some(tz) = &s.budgets.time_zone {
        if jiff::tz::TimeZone::get(tz).is_err() {
            errors.push(at.err(
                "spec.budgets.timeZone",
                format!("`{tz}` is not an IANA time zone; write e.g. UTC or Europe/Paris"),
            ));
        }
        out.time_zone = tz.clone();
    }

    let mut price_seen: HashMap<(String, Option<String>), usize> = HashMap::new();
    for (i, p) in s.prices.iter().enumerate() {
        for (name, v) in [
            ("input", Some(p.input)),
            ("output", Some(p.output)),
            ("cachedInput", p.cached_input),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && v >= 0.0) {
                    errors.push(at.err(
                        &format!("spec.prices[{i}].{name}"),
                        "a price is USD per million tokens, 0 or more".into(),
                    ));
                }
            }
        }
        if price_seen
            .insert((p.model.clone(), p.backend.clone()), i)
            .is_some()
        {
            errors.push(at.err(
                &format!("spec.prices[{i}]"),
                format!("model `{}` has two prices for the same backend", p.model),
            ));
        }
        out.prices.push(PriceSetting {
            model: p.model.clone(),
            backend: p.backend.clone(),
            input: p.input,
            output: p.output,
            cached_input: p.cached_input,
        });
    }
    out
}

/// Cross-resource checks: tenants named in settings exist, key hashes are unique.
pub fn cross_check(
    settings: &PolicySettings,
    tenants: &[(Tenant, &dyn Report)],
    settings_at: Option<&dyn Report>,
    errors: &mut Vec<ConfigError>,
) {
    let names: BTreeMap<&str, ()> = tenants.iter().map(|(t, _)| (t.name.as_str(), ())).collect();
    let known = || names.keys().copied().collect::<Vec<_>>().join(", ");
    let mut check = |field: &str, name: &Option<String>| {
        if let (Some(n), Some(at)) = (name, settings_at) {
            if !names.contains_key(n.as_str()) {
                errors.push(at.err(
                    field,
                    format!("tenant `{n}` is not declared; known tenants: [{}]", known()),
                ));
            }
        }
    };
    check("spec.auth.anonymousTenant", &settings.auth.anonymous_tenant);
    if let Some(j) = &settings.auth.jwt {
        check("spec.auth.jwt.defaultTenant", &j.default_tenant);
    }
    let mut hashes: HashMap<&str, &str> = HashMap::new();
    for (t, at) in tenants {
        for (i, k) in t.keys.iter().enumerate() {
            if let Some(prev) = hashes.insert(&k.sha256, &t.name) {
                errors.push(at.err(
                    &format!("spec.keys[{i}].sha256"),
                    format!("the same key is already declared for tenant `{prev}`; a key belongs to one tenant"),
                ));
            }
        }
    }
}
