//! The shared state in Redis: limits and budgets (one atomic Lua script per admission, see
//! `infergate_policy::redis_script`), API key records, and the health of the connection.
//!
//! When a call fails to connect, or calls time out and none has succeeded for a second, Redis is
//! marked **down**: requests stop waiting on it at once
//! (the admit stage applies the configured fail mode) and one background task probes it every
//! 200 ms, reconnecting as needed. When a probe answers, Redis is **up** again and settlements
//! that could not be written meanwhile are replayed (bounded queue) — including the spend of
//! requests admitted under the local fallback, so budgets stay whole across an outage.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use infergate_policy::access::KeyRecord;
use infergate_policy::limit::{Demand, Denied, Grant};
use infergate_policy::redis_script::{self, SettleEntry, ADMIT_LUA, SETTLE_LUA};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use tokio::sync::{mpsc, Notify};

/// Settlements kept while Redis is down; beyond this the oldest are dropped (and counted).
const BACKLOG: usize = 100_000;
/// At most this many settlements go in one script call.
const SETTLE_BATCH: usize = 64;
const PROBE_EVERY: Duration = Duration::from_millis(200);
/// A timeout marks Redis down only when nothing has succeeded for this long (a connection error
/// does at once): slow answers on a busy machine are not an outage, and many calls time out
/// together when they do.
const DOWN_AFTER_MS: u64 = 1000;

/// One request's settlement.
#[derive(Debug, Clone)]
pub struct SettleJob {
    pub entries: Vec<SettleEntry>,
    pub lease: String,
}

/// Redis answered the call with an error about the call itself (not a lost connection, a
/// timeout or a server that is loading): the same call would fail again.
fn rejected(e: &RedisError) -> bool {
    use redis::ErrorKind as K;
    match e {
        RedisError::Down | RedisError::Timeout => false,
        RedisError::Protocol(_) => true,
        RedisError::Redis(r) => matches!(
            r.kind(),
            K::ResponseError | K::TypeError | K::ExtensionError | K::CrossSlot | K::ExecAbortError
        ),
    }
}

pub struct RedisState {
    client: redis::Client,
    conn: ArcSwapOption<ConnectionManager>,
    pub prefix: String,
    timeout: Duration,
    up: AtomicBool,
    probing: AtomicBool,
    /// Unix ms of the last call that succeeded.
    last_ok_ms: AtomicU64,
    came_back: Notify,
    admit_script: Script,
    settle_script: Script,
    settle_tx: mpsc::UnboundedSender<SettleJob>,
    settle_rx: parking_lot::Mutex<Option<mpsc::UnboundedReceiver<SettleJob>>>,
    /// Settlements dropped: the backlog was full, or Redis refused their call.
    pub dropped: AtomicU64,
    /// Transitions to down.
    pub outages: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("Redis is unreachable")]
    Down,
    #[error("Redis call timed out")]
    Timeout,
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis: {0}")]
    Protocol(String),
}

impl RedisState {
    /// Prepare the client; connecting happens in the background (the gateway starts even when
    /// Redis is not up yet, in its fail mode).
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Arc<Self>, String> {
        let client = redis::Client::open(url).map_err(|e| format!("invalid Redis URL: {e}"))?;
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(Arc::new(Self {
            client,
            conn: ArcSwapOption::empty(),
            prefix: prefix.to_string(),
            timeout,
            up: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            last_ok_ms: AtomicU64::new(0),
            came_back: Notify::new(),
            admit_script: Script::new(ADMIT_LUA),
            settle_script: Script::new(SETTLE_LUA),
            settle_tx: tx,
            settle_rx: parking_lot::Mutex::new(Some(rx)),
            dropped: AtomicU64::new(0),
            outages: AtomicU64::new(0),
        }))
    }

    /// Connect (waiting up to the timeout) and start the background tasks.
    pub async fn start(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        if self.connect().await.is_ok() {
            self.last_ok_ms.store(super::now_ms(), Ordering::Relaxed);
            self.up.store(true, Ordering::SeqCst);
        } else {
            tracing::warn!(
                "Redis is not reachable at start; serving in the configured fail mode until it is"
            );
            self.mark_down();
        }
        let mut tasks = Vec::new();
        if let Some(rx) = self.settle_rx.lock().take() {
            let me = self.clone();
            tasks.push(tokio::spawn(async move { me.settle_worker(rx).await }));
        }
        tasks
    }

    async fn connect(&self) -> Result<(), RedisError> {
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(self.timeout)
            .set_connection_timeout(self.timeout.max(Duration::from_millis(200)))
            .set_number_of_retries(0);
        let mgr = tokio::time::timeout(
            self.timeout.max(Duration::from_millis(200)) * 2,
            ConnectionManager::new_with_config(self.client.clone(), cfg),
        )
        .await
        .map_err(|_| RedisError::Timeout)??;
        self.conn.store(Some(Arc::new(mgr)));
        Ok(())
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn conn(&self) -> Result<ConnectionManager, RedisError> {
        if !self.is_up() {
            return Err(RedisError::Down);
        }
        self.conn
            .load_full()
            .map(|c| (*c).clone())
            .ok_or(RedisError::Down)
    }

    /// Mark Redis down and start probing it (once).
    pub fn mark_down(self: &Arc<Self>) {
        if self.up.swap(false, Ordering::SeqCst) {
            self.outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("Redis became unreachable; limits use the configured fail mode until it answers again");
        }
        if self.probing.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                if me.probe().await {
                    me.last_ok_ms.store(super::now_ms(), Ordering::Relaxed);
                    me.probing.store(false, Ordering::SeqCst);
                    me.up.store(true, Ordering::SeqCst);
                    tracing::info!("Redis answers again; shared limits are back");
                    me.came_back.notify_waiters();
                    return;
                }
            }
        });
    }

    async fn probe(&self) -> bool {
        let existing = self.conn.load_full();
        let mut conn = match existing {
            Some(c) => (*c).clone(),
            None => {
                if self.connect().await.is_err() {
                    return false;
                }
                match self.conn.load_full() {
                    Some(c) => (*c).clone(),
                    None => return false,
                }
            }
        };
        let ping = tokio::time::timeout(self.timeout.max(Duration::from_millis(200)), async {
            redis::cmd("PING").query_async::<String>(&mut conn).await
        })
        .await;
        match ping {
            Ok(Ok(_)) => true,
            _ => {
                // Start from a fresh connection next time.
                self.conn.store(None);
                false
            }
        }
    }

    async fn call<T>(
        self: &Arc<Self>,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisError> {
        let timed_out = || {
            let last = self.last_ok_ms.load(Ordering::Relaxed);
            if super::now_ms().saturating_sub(last) > DOWN_AFTER_MS {
                self.mark_down();
            }
            RedisError::Timeout
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => {
                self.last_ok_ms.store(super::now_ms(), Ordering::Relaxed);
                Ok(v)
            }
            Ok(Err(e)) if e.is_timeout() => Err(timed_out()),
            Ok(Err(e)) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
                    self.mark_down();
                }
                Err(RedisError::Redis(e))
            }
            Err(_) => Err(timed_out()),
        }
    }

    /// Decide a demand atomically in Redis.
    pub async fn admit(
        self: &Arc<Self>,
        demand: &Demand,
        lease: &str,
        lease_ms: u64,
    ) -> Result<Result<Grant, Denied>, RedisError> {
        let mut conn = self.conn()?;
        let (keys, argv) = redis_script::admit_args(&self.prefix, demand, lease, lease_ms);
        let mut inv = self.admit_script.prepare_invoke();
        for k in &keys {
            inv.key(k);
        }
        for a in &argv {
            inv.arg(a);
        }
        let reply: Vec<i64> = self.call(inv.invoke_async(&mut conn)).await?;
        match redis_script::admit_reply(demand, &reply, lease) {
            Ok(g) => Ok(Ok(g)),
            Err(Ok(d)) => Ok(Err(d)),
            Err(Err(e)) => Err(RedisError::Protocol(e)),
        }
    }

    /// Queue a settlement (never waits).
    pub fn settle(&self, job: SettleJob) {
        if job.entries.is_empty() {
            return;
        }
        let _ = self.settle_tx.send(job);
    }

    /// Write these settlements in one script call (Redis runs it with no other command in
    /// between).
    async fn run_settle(self: &Arc<Self>, jobs: &[SettleJob]) -> Result<(), RedisError> {
        let mut conn = self.conn()?;
        let (keys, argv) =
            redis_script::settle_args(jobs.iter().map(|j| (&j.entries[..], &j.lease[..])));
        let mut inv = self.settle_script.prepare_invoke();
        for k in &keys {
            inv.key(k);
        }
        for a in &argv {
            inv.arg(a);
        }
        let _: i64 = self.call(inv.invoke_async(&mut conn)).await?;
        Ok(())
    }

    /// Redis answered a settle call with an error: sending it again cannot succeed, and keeping
    /// it would hold up every settlement behind it.
    fn drop_refused(&self, e: &RedisError, settlements: usize) {
        tracing::warn!(
            error = %e,
            settlements,
            "Redis refused a settle call; its settlements are dropped"
        );
        self.dropped
            .fetch_add(settlements as u64, Ordering::Relaxed);
    }

    /// Writes queued settlements, batching what queued while the previous call was out (one
    /// script call per batch instead of one per request); keeps them, bounded, while Redis is
    /// down and replays them when it returns.
    async fn settle_worker(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<SettleJob>) {
        let mut backlog: VecDeque<SettleJob> = VecDeque::new();
        let mut batch: Vec<SettleJob> = Vec::with_capacity(SETTLE_BATCH);
        loop {
            while !backlog.is_empty() && self.is_up() {
                let n = backlog.len().min(SETTLE_BATCH);
                batch.extend(backlog.drain(..n));
                match self.run_settle(&batch).await {
                    Ok(()) => {}
                    Err(e) if rejected(&e) => self.drop_refused(&e, batch.len()),
                    Err(_) => {
                        for job in batch.drain(..).rev() {
                            backlog.push_front(job);
                        }
                        break;
                    }
                }
                batch.clear();
            }
            let job = if backlog.is_empty() || self.is_up() {
                rx.recv().await
            } else {
                tokio::select! {
                    j = rx.recv() => j,
                    () = self.came_back.notified() => continue,
                }
            };
            let Some(job) = job else { return };
            batch.push(job);
            while batch.len() < SETTLE_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            if backlog.is_empty() {
                match self.run_settle(&batch).await {
                    Ok(()) => {
                        batch.clear();
                        continue;
                    }
                    Err(e) if rejected(&e) => {
                        self.drop_refused(&e, batch.len());
                        batch.clear();
                        continue;
                    }
                    Err(_) => {}
                }
            }
            for job in batch.drain(..) {
                if backlog.len() >= BACKLOG {
                    backlog.pop_front();
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                backlog.push_back(job);
            }
        }
    }

    // ---------------------------------------------------------------- key records

    fn key_key(&self, id: &str) -> String {
        format!("{{{}}}:key:{id}", self.prefix)
    }

    fn hash_key(&self, hash: &str) -> String {
        format!("{{{}}}:keyhash:{hash}", self.prefix)
    }

    fn ids_key(&self) -> String {
        format!("{{{}}}:keys", self.prefix)
    }

    /// The record a key hash belongs to.
    pub async fn key_by_hash(
        self: &Arc<Self>,
        hash: &str,
    ) -> Result<Option<KeyRecord>, RedisError> {
        let mut conn = self.conn()?;
        let id: Option<String> = self.call(conn.get(self.hash_key(hash))).await?;
        let Some(id) = id else { return Ok(None) };
        self.key_by_id(&id).await
    }

    pub async fn key_by_id(self: &Arc<Self>, id: &str) -> Result<Option<KeyRecord>, RedisError> {
        let mut conn = self.conn()?;
        let json: Option<String> = self.call(conn.get(self.key_key(id))).await?;
        match json {
            None => Ok(None),
            Some(j) => serde_json::from_str(&j)
                .map(Some)
                .map_err(|e| RedisError::Protocol(format!("unreadable key record {id}: {e}"))),
        }
    }

    pub async fn put_key(self: &Arc<Self>, rec: &KeyRecord) -> Result<(), RedisError> {
        let mut conn = self.conn()?;
        let json = serde_json::to_string(rec).map_err(|e| RedisError::Protocol(e.to_string()))?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .set(self.key_key(&rec.id), json)
            .ignore()
            .sadd(self.ids_key(), &rec.id)
            .ignore();
        for s in &rec.secrets {
            pipe.set(self.hash_key(&s.hash), &rec.id).ignore();
        }
        let () = self.call(pipe.query_async(&mut conn)).await?;
        Ok(())
    }

    pub async fn all_keys(self: &Arc<Self>) -> Result<Vec<KeyRecord>, RedisError> {
        let mut conn = self.conn()?;
        let ids: Vec<String> = self.call(conn.smembers(self.ids_key())).await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = self.key_by_id(&id).await? {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}
