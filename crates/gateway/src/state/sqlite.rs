//! The embedded SQLite store: API key records (hashes only) and the spend ledger.
//!
//! One dedicated thread owns the connection; the async runtime never touches SQLite. Spend
//! records are summed in memory per (day, tenant, key, model, backend) under a short lock by the
//! request path itself (no message, so no thread wake-up per request: on a one-core gateway
//! that wake-up was a context switch per request), and the thread writes the sums in one
//! transaction every `ledgerFlush` (default 1 s). Admin operations (key writes, reports) are
//! commands on a channel, answered through a oneshot.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use infergate_policy::access::KeyRecord;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use tokio::sync::oneshot;

/// One request's spend, as the settle step reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendRecord {
    /// Local day (`YYYY-MM-DD`) in the budgets' time zone.
    pub day: String,
    pub tenant: String,
    /// Key id, `sub:<subject>` for a JWT caller, or empty.
    pub key_id: String,
    pub model: String,
    pub backend: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cost_nanos: u64,
}

type DimKey = (String, String, String, String, String);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpendTotals {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cost_nanos: u64,
}

impl SpendTotals {
    fn add(&mut self, r: &SpendRecord) {
        self.requests += 1;
        self.input_tokens += r.input_tokens;
        self.output_tokens += r.output_tokens;
        self.cached_tokens += r.cached_tokens;
        self.cost_nanos += r.cost_nanos;
    }

    fn merge(&mut self, o: &SpendTotals) {
        self.requests += o.requests;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cached_tokens += o.cached_tokens;
        self.cost_nanos += o.cost_nanos;
    }
}

/// Which dimensions a spend report groups by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupBy {
    pub tenant: bool,
    pub key: bool,
    pub model: bool,
    pub day: bool,
}

/// A spend report query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpendQuery {
    pub group: GroupBy,
    /// Inclusive day range (`YYYY-MM-DD`).
    pub from: Option<String>,
    pub to: Option<String>,
    pub tenant: Option<String>,
    pub key_id: Option<String>,
    pub model: Option<String>,
}

/// One row of a spend report (dimensions not grouped by are `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpendRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(flatten)]
    pub totals: SpendTotals,
}

/// Spend per budget subject since a day, for loading budgets at start-up.
#[derive(Debug, Clone, Default)]
pub struct SpendSince {
    /// (tenant, day) → nano-USD
    pub tenant_days: HashMap<(String, String), u64>,
    /// (key id, day) → nano-USD
    pub key_days: HashMap<(String, String), u64>,
    /// Lifetime totals.
    pub tenant_total: HashMap<String, u64>,
    pub key_total: HashMap<String, u64>,
}

// FxHash: the keys are tenant, key id, model and day names from configuration and the clock.
type Pending = Arc<Mutex<rustc_hash::FxHashMap<DimKey, SpendTotals>>>;

enum Command {
    PutKey(Box<KeyRecord>, oneshot::Sender<Result<(), String>>),
    AllKeys(oneshot::Sender<Result<Vec<KeyRecord>, String>>),
    Report(SpendQuery, oneshot::Sender<Result<Vec<SpendRow>, String>>),
    SpendSince(String, oneshot::Sender<Result<SpendSince, String>>),
    Flush(oneshot::Sender<()>),
}

/// Handle to the SQLite thread. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    tx: SyncSender<Command>,
    /// Spend not yet written, summed per dimension (bounded by the number of dimensions).
    pending: Pending,
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    record TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS spend (
    day TEXT NOT NULL,
    tenant TEXT NOT NULL,
    key_id TEXT NOT NULL,
    model TEXT NOT NULL,
    backend TEXT NOT NULL,
    requests INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cost_nanos INTEGER NOT NULL,
    PRIMARY KEY (day, tenant, key_id, model, backend)
);
";

/// Capacity of the admin command channel.
const CHANNEL: usize = 1024;

impl SqliteStore {
    /// Open (or create) the database and start its thread.
    pub fn open(path: &str, flush_every: Duration) -> Result<Self, String> {
        let conn = if path == ":memory:" {
            Connection::open_in_memory()
        } else {
            if let Some(dir) = Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            Connection::open(path)
        }
        .map_err(|e| format!("cannot open the state database {path}: {e}"))?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| format!("cannot prepare the state database {path}: {e}"))?;
        let (tx, rx) = sync_channel(CHANNEL);
        let pending = Pending::default();
        let shared = pending.clone();
        std::thread::Builder::new()
            .name("infergate-sqlite".into())
            .spawn(move || run(conn, rx, &shared, flush_every))
            .map_err(|e| format!("cannot start the state database thread: {e}"))?;
        Ok(Self { tx, pending })
    }

    /// Record spend without waiting for the database: added to the in-memory sums the writer
    /// thread flushes (bounded by the number of distinct dimensions, never dropped).
    pub fn record_spend(&self, r: SpendRecord) {
        let mut one = SpendTotals::default();
        one.add(&r);
        let key = (r.day, r.tenant, r.key_id, r.model, r.backend);
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default()
            .merge(&one);
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, String>>) -> Command,
    ) -> Result<T, String> {
        let (tx, rx) = oneshot::channel();
        let cmd = make(tx);
        let sender = self.tx.clone();
        // The channel may be full of spend records; wait for room off the runtime.
        let sent = tokio::task::spawn_blocking(move || sender.send(cmd).is_ok())
            .await
            .map_err(|e| e.to_string())?;
        if !sent {
            return Err("the state database thread stopped".to_string());
        }
        rx.await
            .map_err(|_| "the state database thread stopped".to_string())?
    }

    pub async fn put_key(&self, record: KeyRecord) -> Result<(), String> {
        self.call(|tx| Command::PutKey(Box::new(record), tx)).await
    }

    pub async fn all_keys(&self) -> Result<Vec<KeyRecord>, String> {
        self.call(Command::AllKeys).await
    }

    pub async fn report(&self, q: SpendQuery) -> Result<Vec<SpendRow>, String> {
        self.call(|tx| Command::Report(q, tx)).await
    }

    /// Spend per tenant and key and day since `day` (inclusive), plus lifetime totals.
    pub async fn spend_since(&self, day: String) -> Result<SpendSince, String> {
        self.call(|tx| Command::SpendSince(day, tx)).await
    }

    /// Write what is pending now (tests, shutdown).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        let sender = self.tx.clone();
        let sent = tokio::task::spawn_blocking(move || sender.send(Command::Flush(tx)).is_ok())
            .await
            .unwrap_or(false);
        if sent {
            let _ = rx.await;
        }
    }
}

fn run(mut conn: Connection, rx: Receiver<Command>, pending: &Pending, flush_every: Duration) {
    let mut next_flush = Instant::now() + flush_every;
    loop {
        let wait = next_flush.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Command::PutKey(rec, reply)) => {
                let _ = reply.send(put_key(&conn, &rec));
            }
            Ok(Command::AllKeys(reply)) => {
                let _ = reply.send(all_keys(&conn));
            }
            Ok(Command::Report(q, reply)) => {
                flush(&mut conn, pending);
                let _ = reply.send(report(&conn, &q));
            }
            Ok(Command::SpendSince(day, reply)) => {
                flush(&mut conn, pending);
                let _ = reply.send(spend_since(&conn, &day));
            }
            Ok(Command::Flush(reply)) => {
                flush(&mut conn, pending);
                let _ = reply.send(());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                flush(&mut conn, pending);
                return;
            }
        }
        if Instant::now() >= next_flush {
            flush(&mut conn, pending);
            next_flush = Instant::now() + flush_every;
        }
    }
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn flush(conn: &mut Connection, shared: &Pending) {
    let mut pending = std::mem::take(&mut *shared.lock().unwrap_or_else(PoisonError::into_inner));
    if pending.is_empty() {
        return;
    }
    let result = (|| -> rusqlite::Result<()> {
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO spend (day, tenant, key_id, model, backend, requests, input_tokens,
                    output_tokens, cached_tokens, cost_nanos)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (day, tenant, key_id, model, backend) DO UPDATE SET
                    requests = requests + excluded.requests,
                    input_tokens = input_tokens + excluded.input_tokens,
                    output_tokens = output_tokens + excluded.output_tokens,
                    cached_tokens = cached_tokens + excluded.cached_tokens,
                    cost_nanos = cost_nanos + excluded.cost_nanos",
            )?;
            for ((day, tenant, key, model, backend), t) in pending.iter() {
                stmt.execute(params![
                    day,
                    tenant,
                    key,
                    model,
                    backend,
                    i(t.requests),
                    i(t.input_tokens),
                    i(t.output_tokens),
                    i(t.cached_tokens),
                    i(t.cost_nanos)
                ])?;
            }
        }
        tx.commit()
    })();
    if let Err(e) = result {
        // Keep the totals and try again at the next flush.
        tracing::error!("spend ledger write failed (will retry): {e}");
        let mut shared = shared.lock().unwrap_or_else(PoisonError::into_inner);
        for (k, t) in pending.drain() {
            shared.entry(k).or_default().merge(&t);
        }
    }
}

fn put_key(conn: &Connection, rec: &KeyRecord) -> Result<(), String> {
    let json = serde_json::to_string(rec).map_err(|e| e.to_string())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    conn.execute(
        "INSERT INTO api_keys (id, tenant, record, updated_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, record = excluded.record,
            updated_ms = excluded.updated_ms",
        params![rec.id, rec.tenant, json, now],
    )
    .map_err(|e| format!("cannot store key {}: {e}", rec.id))?;
    Ok(())
}

fn all_keys(conn: &Connection) -> Result<Vec<KeyRecord>, String> {
    let mut stmt = conn
        .prepare("SELECT record FROM api_keys ORDER BY id")
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for row in rows {
        let json = row.map_err(|e| e.to_string())?;
        match serde_json::from_str::<KeyRecord>(&json) {
            Ok(r) => out.push(r),
            Err(e) => tracing::error!("skipping an unreadable key record: {e}"),
        }
    }
    Ok(out)
}

/// Read one stored key by id (tests).
pub fn read_key(path: &str, id: &str) -> Result<Option<String>, String> {
    let conn = Connection::open(path).map_err(|e| e.to_string())?;
    conn.query_row("SELECT record FROM api_keys WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .optional()
    .map_err(|e| e.to_string())
}

fn report(conn: &Connection, q: &SpendQuery) -> Result<Vec<SpendRow>, String> {
    let g = q.group;
    let mut cols = Vec::new();
    if g.day {
        cols.push("day");
    }
    if g.tenant {
        cols.push("tenant");
    }
    if g.key {
        cols.push("key_id");
    }
    if g.model {
        cols.push("model");
    }
    let select = if cols.is_empty() {
        String::new()
    } else {
        format!("{}, ", cols.join(", "))
    };
    let group = if cols.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {} ORDER BY {}", cols.join(", "), cols.join(", "))
    };
    let mut conds = Vec::new();
    let mut args: Vec<String> = Vec::new();
    let mut add = |cond: &str, v: &Option<String>| {
        if let Some(v) = v {
            args.push(v.clone());
            conds.push(format!("{cond} ?{}", args.len()));
        }
    };
    add("day >=", &q.from);
    add("day <=", &q.to);
    add("tenant =", &q.tenant);
    add("key_id =", &q.key_id);
    add("model =", &q.model);
    let filter = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    let sql = format!(
        "SELECT {select}SUM(requests), SUM(input_tokens), SUM(output_tokens), SUM(cached_tokens),
            SUM(cost_nanos) FROM spend{filter}{group}"
    );
    let mut stmt = conn.prepare(&sql).map_err(|e| e.to_string())?;
    let n = cols.len();
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
            let mut dims: Vec<Option<String>> = Vec::new();
            for c in 0..n {
                dims.push(r.get::<_, Option<String>>(c)?);
            }
            let get = |c: usize| -> rusqlite::Result<u64> {
                Ok(u(r.get::<_, Option<i64>>(c)?.unwrap_or(0)))
            };
            Ok((
                dims,
                SpendTotals {
                    requests: get(n)?,
                    input_tokens: get(n + 1)?,
                    output_tokens: get(n + 2)?,
                    cached_tokens: get(n + 3)?,
                    cost_nanos: get(n + 4)?,
                },
            ))
        })
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for row in rows {
        let (dims, totals) = row.map_err(|e| e.to_string())?;
        if cols.is_empty() && totals.requests == 0 {
            continue;
        }
        let mut it = dims.into_iter();
        out.push(SpendRow {
            day: if g.day { it.next().flatten() } else { None },
            tenant: if g.tenant { it.next().flatten() } else { None },
            key_id: if g.key { it.next().flatten() } else { None },
            model: if g.model { it.next().flatten() } else { None },
            totals,
        });
    }
    Ok(out)
}

fn spend_since(conn: &Connection, day: &str) -> Result<SpendSince, String> {
    let mut out = SpendSince::default();
    let mut stmt = conn
        .prepare(
            "SELECT tenant, key_id, day, SUM(cost_nanos) FROM spend GROUP BY tenant, key_id, day",
        )
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                u(r.get::<_, i64>(3)?),
            ))
        })
        .map_err(|e| e.to_string())?;
    for row in rows {
        let (tenant, key, d, cost) = row.map_err(|e| e.to_string())?;
        *out.tenant_total.entry(tenant.clone()).or_default() += cost;
        if !key.is_empty() {
            *out.key_total.entry(key.clone()).or_default() += cost;
        }
        if d.as_str() >= day {
            *out.tenant_days.entry((tenant, d.clone())).or_default() += cost;
            if !key.is_empty() {
                *out.key_days.entry((key, d)).or_default() += cost;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(day: &str, tenant: &str, key: &str, model: &str, cost: u64) -> SpendRecord {
        SpendRecord {
            day: day.into(),
            tenant: tenant.into(),
            key_id: key.into(),
            model: model.into(),
            backend: "pool".into(),
            input_tokens: 10,
            output_tokens: 5,
            cached_tokens: 0,
            cost_nanos: cost,
        }
    }

    #[tokio::test]
    async fn ledger_sums_and_groups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = SqliteStore::open(path.to_str().unwrap(), Duration::from_millis(10)).unwrap();
        store.record_spend(rec("2025-01-01", "a", "k1", "m", 100));
        store.record_spend(rec("2025-01-01", "a", "k1", "m", 50));
        store.record_spend(rec("2025-01-02", "a", "k2", "m", 7));
        store.record_spend(rec("2025-01-02", "b", "", "n", 1));
        let by_tenant = store
            .report(SpendQuery {
                group: GroupBy {
                    tenant: true,
                    ..Default::default()
                },
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(by_tenant.len(), 2);
        assert_eq!(by_tenant[0].tenant.as_deref(), Some("a"));
        assert_eq!(by_tenant[0].totals.cost_nanos, 157);
        assert_eq!(by_tenant[0].totals.requests, 3);
        let day2 = store
            .report(SpendQuery {
                group: GroupBy {
                    key: true,
                    day: true,
                    ..Default::default()
                },
                from: Some("2025-01-02".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(day2.len(), 2);
        let since = store.spend_since("2025-01-02".into()).await.unwrap();
        assert_eq!(since.tenant_total["a"], 157);
        assert_eq!(
            since.tenant_days[&("a".to_string(), "2025-01-02".to_string())],
            7
        );
        assert!(!since
            .tenant_days
            .contains_key(&("a".to_string(), "2025-01-01".to_string())));
    }
}
