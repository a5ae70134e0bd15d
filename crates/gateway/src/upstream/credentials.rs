//! The gateway's credentials for external backends: loaded when a configuration is applied,
//! re-read when a credentials file changes (rotation without a restart; a changed `Secret`
//! arrives with the configuration reload), and, for Vertex AI, OAuth2 access tokens minted from
//! the service-account key, cached and refreshed a minute before they expire.
//!
//! Values never reach a log line or an error message; errors name the source only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use infergate_control::backends::load_material;
use infergate_control::{Backend, CredentialMaterial, CredentialSource};
use infergate_providers::ProviderKind;

/// One backend's credential.
pub struct CredentialEntry {
    pub backend: String,
    kind: ProviderKind,
    source: CredentialSource,
    material: ArcSwapOption<CredentialMaterial>,
    /// Hash of the credentials file's content as last read. Content, not mtime: two writes
    /// within one clock tick share an mtime, and a rotated key often has the same length.
    file_stamp: Mutex<Option<u64>>,
    /// Vertex AI: the current access token and when it stops being usable.
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
    /// Times the material was re-read after a change.
    pub rotations: AtomicU64,
}

impl CredentialEntry {
    fn new(backend: &str, kind: ProviderKind, source: CredentialSource) -> Self {
        let e = Self {
            backend: backend.to_string(),
            kind,
            source,
            material: ArcSwapOption::empty(),
            file_stamp: Mutex::new(None),
            token: tokio::sync::Mutex::new(None),
            rotations: AtomicU64::new(0),
        };
        e.reload();
        e
    }

    fn stamp(&self) -> Option<u64> {
        use std::hash::{Hash, Hasher};
        let path = self.source.file()?;
        let bytes = std::fs::read(path).ok()?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        Some(h.finish())
    }

    fn reload(&self) {
        *self
            .file_stamp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = self.stamp();
        match load_material(self.kind, &self.source) {
            Ok(m) => self.material.store(Some(Arc::new(m))),
            // Keep serving with the previous credential; the operator sees why.
            Err(e) => tracing::warn!(backend = %self.backend, "credentials not reloaded: {e}"),
        }
    }

    /// Re-read a credentials file if it changed since it was last read.
    pub fn refresh_if_changed(&self) -> bool {
        if self.source.file().is_none() {
            return false;
        }
        let now = self.stamp();
        let prev = *self
            .file_stamp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if now.is_some() && now != prev {
            self.reload();
            self.rotations.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut t) = self.token.try_lock() {
                *t = None;
            }
            tracing::info!(backend = %self.backend, "credentials file changed; reloaded");
            return true;
        }
        false
    }

    pub fn material(&self) -> Option<Arc<CredentialMaterial>> {
        self.material.load_full()
    }

    /// A cached access token, or `mint` a new one (`mint` returns the token and its lifetime).
    pub async fn access_token<F, Fut>(&self, mint: F) -> Result<String, String>
    where
        F: FnOnce(Arc<CredentialMaterial>) -> Fut,
        Fut: std::future::Future<Output = Result<(String, Duration), String>>,
    {
        let mut guard = self.token.lock().await;
        if let Some((tok, until)) = guard.as_ref() {
            if Instant::now() + Duration::from_secs(60) < *until {
                return Ok(tok.clone());
            }
        }
        let material = self
            .material()
            .ok_or_else(|| format!("backend `{}` has no usable credentials", self.backend))?;
        let (tok, ttl) = mint(material).await?;
        *guard = Some((tok.clone(), Instant::now() + ttl));
        Ok(tok)
    }

    /// Forget a cached token (after the provider refused it).
    pub fn invalidate_token(&self) {
        if let Ok(mut t) = self.token.try_lock() {
            *t = None;
        }
    }
}

/// Credentials of every backend, surviving configuration reloads.
#[derive(Default)]
pub struct CredentialStore {
    entries: Mutex<HashMap<String, Arc<CredentialEntry>>>,
}

impl CredentialStore {
    /// Entries for the backends of a new configuration; unchanged sources keep their entry
    /// (and cached token).
    pub fn sync(&self, backends: &[Backend]) -> HashMap<String, Arc<CredentialEntry>> {
        let mut map = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = HashMap::new();
        for b in backends {
            let Some(src) = &b.credentials else { continue };
            let entry = match map.get(&b.name) {
                Some(e) if e.source == *src && e.kind == b.provider => e.clone(),
                _ => Arc::new(CredentialEntry::new(&b.name, b.provider, src.clone())),
            };
            out.insert(b.name.clone(), entry);
        }
        *map = out.clone();
        out
    }

    /// Check every file-backed credential for changes.
    pub fn refresh_files(&self) {
        let entries: Vec<Arc<CredentialEntry>> = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for e in entries {
            e.refresh_if_changed();
        }
    }
}

/// Poll credential files for rotation.
pub async fn run_file_watcher(store: Arc<CredentialStore>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let s = store.clone();
        let _ = tokio::task::spawn_blocking(move || s.refresh_files()).await;
    }
}
