//! API key records made through the admin API, looked up by hash on every request.
//!
//! - **SQLite** (one replica): every record is held in memory and written through to the
//!   database; a lookup is a map read, and a change is visible to the next request.
//! - **Redis** (many replicas): Redis is the source of truth; each replica caches lookups
//!   (found or not) for at most [`CACHE_TTL`], so a key revoked on one replica stops working on
//!   every replica within that time — well inside a second. The replica that made the change
//!   drops its own cache entries at once.
//!
//! Keys declared in configuration are not here; they live in the snapshot's policy table.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use infergate_policy::access::KeyRecord;
use lru::LruCache;
use parking_lot::{Mutex, RwLock};

use super::redis::RedisState;
use super::sqlite::SqliteStore;

/// Longest a replica trusts a cached key lookup (Redis store).
pub const CACHE_TTL: Duration = Duration::from_millis(500);
const CACHE_ENTRIES: usize = 100_000;

/// A cached lookup: the record (or its absence) and when it was fetched.
type CacheEntry = (Option<Arc<KeyRecord>>, Instant);

enum Backend {
    Sqlite {
        db: SqliteStore,
        by_hash: RwLock<HashMap<String, Arc<KeyRecord>>>,
        by_id: RwLock<HashMap<String, Arc<KeyRecord>>>,
    },
    Redis {
        redis: Arc<RedisState>,
        cache: Mutex<LruCache<String, CacheEntry>>,
    },
}

/// Where API-made keys are kept.
pub struct KeyStore {
    backend: Backend,
}

/// The store could not answer.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

impl KeyStore {
    pub fn sqlite(db: SqliteStore) -> Self {
        Self {
            backend: Backend::Sqlite {
                db,
                by_hash: RwLock::new(HashMap::new()),
                by_id: RwLock::new(HashMap::new()),
            },
        }
    }

    pub fn redis(redis: Arc<RedisState>) -> Self {
        Self {
            backend: Backend::Redis {
                redis,
                cache: Mutex::new(LruCache::new(
                    NonZeroUsize::new(CACHE_ENTRIES).unwrap_or(NonZeroUsize::MIN),
                )),
            },
        }
    }

    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Redis { .. } => "redis",
        }
    }

    /// Load every record into memory (SQLite store; no-op for Redis).
    pub async fn load(&self) -> Result<usize, StoreError> {
        if let Backend::Sqlite { db, by_hash, by_id } = &self.backend {
            let all = db.all_keys().await.map_err(StoreError)?;
            let n = all.len();
            for rec in all {
                index(by_hash, by_id, Arc::new(rec));
            }
            return Ok(n);
        }
        Ok(0)
    }

    /// The record of a key hash; `Err` when the store cannot answer. `stale_ok`: when Redis is
    /// unreachable, answer from the cache however old (fail-open).
    pub async fn lookup(
        &self,
        hash: &str,
        stale_ok: bool,
    ) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        match &self.backend {
            Backend::Sqlite { by_hash, .. } => Ok(by_hash.read().get(hash).cloned()),
            Backend::Redis { redis, cache } => {
                let cached = cache.lock().get(hash).cloned();
                if let Some((rec, at)) = &cached {
                    if at.elapsed() < CACHE_TTL {
                        return Ok(rec.clone());
                    }
                }
                match redis.key_by_hash(hash).await {
                    Ok(rec) => {
                        let rec = rec.map(Arc::new);
                        cache
                            .lock()
                            .put(hash.to_string(), (rec.clone(), Instant::now()));
                        Ok(rec)
                    }
                    Err(e) => match cached {
                        Some((rec, _)) if stale_ok => Ok(rec),
                        _ => Err(StoreError(e.to_string())),
                    },
                }
            }
        }
    }

    pub async fn get(&self, id: &str) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        match &self.backend {
            Backend::Sqlite { by_id, .. } => Ok(by_id.read().get(id).cloned()),
            Backend::Redis { redis, .. } => redis
                .key_by_id(id)
                .await
                .map(|r| r.map(Arc::new))
                .map_err(|e| StoreError(e.to_string())),
        }
    }

    pub async fn list(&self) -> Result<Vec<Arc<KeyRecord>>, StoreError> {
        match &self.backend {
            Backend::Sqlite { by_id, .. } => {
                let mut v: Vec<_> = by_id.read().values().cloned().collect();
                v.sort_by(|a, b| a.id.cmp(&b.id));
                Ok(v)
            }
            Backend::Redis { redis, .. } => redis
                .all_keys()
                .await
                .map(|v| v.into_iter().map(Arc::new).collect())
                .map_err(|e| StoreError(e.to_string())),
        }
    }

    /// Write a record (new or changed).
    pub async fn put(&self, rec: KeyRecord) -> Result<Arc<KeyRecord>, StoreError> {
        match &self.backend {
            Backend::Sqlite { db, by_hash, by_id } => {
                db.put_key(rec.clone()).await.map_err(StoreError)?;
                let rec = Arc::new(rec);
                index(by_hash, by_id, rec.clone());
                Ok(rec)
            }
            Backend::Redis { redis, cache } => {
                redis
                    .put_key(&rec)
                    .await
                    .map_err(|e| StoreError(e.to_string()))?;
                let mut c = cache.lock();
                for s in &rec.secrets {
                    c.pop(&s.hash);
                }
                Ok(Arc::new(rec))
            }
        }
    }
}

fn index(
    by_hash: &RwLock<HashMap<String, Arc<KeyRecord>>>,
    by_id: &RwLock<HashMap<String, Arc<KeyRecord>>>,
    rec: Arc<KeyRecord>,
) {
    let mut h = by_hash.write();
    if let Some(old) = by_id.read().get(&rec.id) {
        for s in &old.secrets {
            h.remove(&s.hash);
        }
    }
    for s in &rec.secrets {
        h.insert(s.hash.clone(), rec.clone());
    }
    drop(h);
    by_id.write().insert(rec.id.clone(), rec);
}
