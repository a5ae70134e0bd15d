//! State the policy stages keep across requests and reloads: the limiter backends (in-process,
//! or Redis with a local fallback), API key records, the spend ledger, the JWT verifier and the
//! admin credential. Decisions are `infergate_policy`'s; this module does the I/O.

pub mod jwks;
pub mod keys;
pub mod redis;
pub mod sqlite;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use infergate_control::policy::{FailMode, SecretRef, SecretRefUrl};
use infergate_control::ConfigSet;
use infergate_policy::access::PolicyTable;
use infergate_policy::budget::{self, Period};
use infergate_policy::jwt::JwtVerifier;
use infergate_policy::limit::{Actual, Demand, Denied, Grant, LocalLimiter, Reserved, Window};
use infergate_policy::redis_script;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use self::keys::KeyStore;
use self::redis::{RedisState, SettleJob};
use self::sqlite::SqliteStore;

/// Unix time in ms.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Which backend decided an admission (and so must settle it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Local,
    Redis,
    /// Redis was unreachable and the configuration fails open.
    LocalFallback,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::Redis => "redis",
            Backend::LocalFallback => "local_fallback",
        }
    }
}

/// Why an admission did not go through.
#[derive(Debug)]
pub enum AdmitError {
    Denied(Denied),
    /// Redis is unreachable and the configuration fails closed.
    Unavailable,
}

pub struct PolicyState {
    pub local: LocalLimiter,
    pub redis: Option<Arc<RedisState>>,
    pub fail_mode: FailMode,
    pub fallback_share: f64,
    pub keys: Option<KeyStore>,
    pub ledger: Option<SqliteStore>,
    pub jwt: ArcSwapOption<JwtVerifier>,
    pub jwks_wanted: Notify,
    /// SHA-256 hex of the admin token.
    pub admin_token_hash: Option<String>,
    pub lease_ms: u64,
    lease_seq: AtomicU64,
    replica: u32,
    pub db_path: Option<String>,
}

impl PolicyState {
    /// Open the stores the configuration asks for (no network yet).
    pub fn new(config: &ConfigSet) -> Result<Self, String> {
        let p = &config.settings.policy;
        let needed = !config.tenants.is_empty();
        let ledger = if needed {
            Some(SqliteStore::open(&p.state.path, p.state.ledger_flush)?)
        } else {
            None
        };
        let (redis, fail_mode, fallback_share) = match (&p.state.redis, needed) {
            (Some(r), true) => {
                let url = match &r.url {
                    SecretRefUrl::Url(u) => u.clone(),
                    SecretRefUrl::Env(var) => std::env::var(var).map_err(|_| {
                        format!("spec.state.redis.urlEnv names `{var}`, which is not set")
                    })?,
                };
                (
                    Some(RedisState::new(&url, &r.key_prefix, r.timeout)?),
                    r.on_unavailable,
                    r.fallback_share,
                )
            }
            _ => (None, FailMode::FailOpen, 1.0),
        };
        let keys = match (&redis, &ledger) {
            (Some(r), _) => Some(KeyStore::redis(r.clone())),
            (None, Some(db)) => Some(KeyStore::sqlite(db.clone())),
            _ => None,
        };
        let admin_token_hash = match &p.auth.admin_token {
            Some(SecretRef::Sha256(h)) => Some(h.clone()),
            Some(SecretRef::Env(var)) => {
                let v = std::env::var(var).map_err(|_| {
                    format!("spec.auth.adminToken.env names `{var}`, which is not set")
                })?;
                if v.len() < 16 {
                    return Err(format!(
                        "the admin token in `{var}` is shorter than 16 characters; use a long random one"
                    ));
                }
                Some(infergate_policy::key::sha256_hex(v.as_bytes()))
            }
            None => None,
        };
        Ok(Self {
            local: LocalLimiter::new(),
            redis,
            fail_mode,
            fallback_share,
            keys,
            ledger,
            jwt: ArcSwapOption::empty(),
            jwks_wanted: Notify::new(),
            admin_token_hash,
            lease_ms: u64::try_from(p.concurrency_lease.as_millis()).unwrap_or(600_000),
            lease_seq: AtomicU64::new(0),
            replica: rand::random(),
            db_path: needed.then(|| p.state.path.clone()),
        })
    }

    /// Connect, load keys and budgets, start background work. Returns the tasks to stop at
    /// shutdown.
    pub async fn init(
        self: &Arc<Self>,
        config: &ConfigSet,
        table: &PolicyTable,
    ) -> Result<Vec<JoinHandle<()>>, String> {
        let mut tasks = Vec::new();
        if let Some(r) = &self.redis {
            tasks.extend(r.start().await);
        }
        if let Some(k) = &self.keys {
            let n = k.load().await.map_err(|e| e.to_string())?;
            if n > 0 {
                tracing::info!(keys = n, store = k.kind(), "API keys loaded");
            }
        }
        if let Some(j) = &config.settings.policy.auth.jwt {
            match jwks::load(j).await {
                Ok(v) => self.jwt.store(Some(Arc::new(v))),
                Err(e) => tracing::error!("JWT tokens will be refused until the JWKS loads: {e}"),
            }
            tasks.push(tokio::spawn(jwks::refresh_loop(self.clone(), j.clone())));
        }
        if self.redis.is_none() {
            self.preload_budgets(table).await?;
        }
        if self.ledger.is_some() || self.redis.is_some() {
            let me = self.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(10));
                loop {
                    tick.tick().await;
                    me.local.sweep(now_ms());
                }
            }));
        }
        Ok(tasks)
    }

    /// The in-process limiter forgets spend at restart; the ledger does not. Bring this
    /// window's spend back for every tenant and key budget.
    async fn preload_budgets(&self, table: &PolicyTable) -> Result<(), String> {
        let Some(db) = &self.ledger else {
            return Ok(());
        };
        let now = now_ms();
        let tz = &table.time_zone;
        let windows: Vec<(Period, budget::CalendarWindow)> =
            [Period::Day, Period::Week, Period::Month, Period::Lifetime]
                .into_iter()
                .map(|p| (p, budget::window(p, now, tz)))
                .collect();
        let earliest = windows
            .iter()
            .filter_map(|(_, w)| w.first_day)
            .min()
            .map(|d| d.to_string())
            .unwrap_or_default();
        let since = db.spend_since(earliest).await?;
        let sum = |days: &std::collections::HashMap<(String, String), u64>,
                   who: &str,
                   w: &budget::CalendarWindow|
         -> u64 {
            let first = w.first_day.map(|d| d.to_string()).unwrap_or_default();
            days.iter()
                .filter(|((k, d), _)| k == who && *d >= first)
                .map(|(_, v)| *v)
                .sum()
        };
        for (p, w) in &windows {
            for tenant in table.tenants.keys() {
                let spent = match p {
                    Period::Lifetime => since.tenant_total.get(&**tenant).copied().unwrap_or(0),
                    _ => sum(&since.tenant_days, tenant, w),
                };
                if spent > 0 {
                    let bucket: Arc<str> = Arc::from(format!("tb:{tenant}:{}", p.as_str()));
                    self.local.add_spend(&bucket, &w.id, spent);
                }
            }
            for key in since.key_total.keys() {
                let spent = match p {
                    Period::Lifetime => since.key_total.get(key).copied().unwrap_or(0),
                    _ => sum(&since.key_days, key, w),
                };
                if spent > 0 {
                    let bucket: Arc<str> = Arc::from(format!("kb:{key}:{}", p.as_str()));
                    self.local.add_spend(&bucket, &w.id, spent);
                }
            }
        }
        Ok(())
    }

    fn lease(&self) -> String {
        format!(
            "{:08x}-{:x}",
            self.replica,
            self.lease_seq.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Decide a demand on the configured backend.
    pub async fn admit(&self, demand: &Demand, now: u64) -> Result<(Grant, Backend), AdmitError> {
        if let Some(r) = &self.redis {
            if r.is_up() {
                let lease = self.lease();
                match r.admit(demand, &lease, self.lease_ms).await {
                    Ok(Ok(mut g)) => {
                        if self.fail_mode == FailMode::FailOpen {
                            // This replica's part of the shared use, for the local fallback.
                            g.shadow = self.local.record(demand, now);
                        }
                        return Ok((g, Backend::Redis));
                    }
                    Ok(Err(d)) => return Err(AdmitError::Denied(d)),
                    // One slow answer while Redis is otherwise up: whether the script admitted
                    // or refused is unknown, so admitting could overshoot and refusing with 429
                    // would be a guess. The request gets 503 + Retry-After; a reservation the
                    // script may have made stays counted (the safe side).
                    Err(self::redis::RedisError::Timeout) if r.is_up() => {
                        return Err(AdmitError::Unavailable);
                    }
                    Err(e) => tracing::debug!("shared limiter unavailable: {e}"),
                }
            }
            return match self.fail_mode {
                FailMode::FailClosed => Err(AdmitError::Unavailable),
                FailMode::FailOpen => self
                    .local
                    .admit(demand, now, self.fallback_share)
                    .map(|g| (g, Backend::LocalFallback))
                    .map_err(AdmitError::Denied),
            };
        }
        self.local
            .admit(demand, now, 1.0)
            .map(|g| (g, Backend::Local))
            .map_err(AdmitError::Denied)
    }

    /// True up an admission to real usage (never waits on I/O).
    pub fn settle(&self, grant: &Grant, backend: Backend, actual: &Actual) {
        let now = now_ms();
        match backend {
            Backend::Local => self.local.settle(&grant.reserved, actual, now),
            Backend::Redis => {
                if !grant.shadow.is_empty() {
                    self.local.settle(&grant.shadow, actual, now);
                }
                if let Some(r) = &self.redis {
                    r.settle(SettleJob {
                        entries: redis_script::settle_entries(&r.prefix, &grant.reserved, actual),
                        lease: grant.lease.as_deref().unwrap_or("-").to_string(),
                    });
                }
            }
            Backend::LocalFallback => {
                self.local.settle(&grant.reserved, actual, now);
                // Spend made while Redis was away still counts against the shared budgets, and
                // the tokens and requests against the shared rate windows that still count.
                if let Some(r) = &self.redis {
                    let spend: Vec<Reserved> = grant
                        .reserved
                        .iter()
                        .filter(|x| matches!(x.window, Window::Calendar { .. }))
                        .map(|x| Reserved {
                            amount: 0,
                            ..x.clone()
                        })
                        .collect();
                    let mut entries = redis_script::settle_entries(&r.prefix, &spend, actual);
                    entries.extend(redis_script::replay_entries(
                        &r.prefix,
                        &grant.reserved,
                        actual,
                        now,
                    ));
                    r.settle(SettleJob {
                        entries,
                        lease: "-".into(),
                    });
                }
            }
        }
    }

    /// Whether `token` is the admin credential.
    pub fn is_admin(&self, token: &str) -> bool {
        let Some(want) = &self.admin_token_hash else {
            return false;
        };
        let got = infergate_policy::key::sha256_hex(token.as_bytes());
        // Constant-time compare of equal-length hex strings.
        got.len() == want.len()
            && got
                .bytes()
                .zip(want.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}
