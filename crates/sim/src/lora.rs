//! The LoRA adapters a replica has loaded.
//!
//! Owns the registry behind `--lora-modules`, `POST /v1/load_lora_adapter`,
//! `POST /v1/unload_lora_adapter` and the adapter entries of `GET /v1/models`. It is bounded by
//! `--max-cpu-loras` (or an internal limit). Which adapters are *running* is the engine's
//! business ([`crate::engine`]).

use std::sync::Arc;

use parking_lot::RwLock;

use crate::config::LoraModule;
use crate::error::SimError;

/// One loaded adapter.
#[derive(Clone, Debug)]
pub(crate) struct LoadedLora {
    pub(crate) name: Arc<str>,
    pub(crate) path: Option<String>,
    /// The model it adapts, when `--lora-modules` names one.
    pub(crate) base_model_name: Option<String>,
    pub(crate) created: u64,
}

pub(crate) struct LoraRegistry {
    limit: usize,
    adapters: RwLock<Vec<LoadedLora>>,
}

impl LoraRegistry {
    pub(crate) fn new(modules: &[LoraModule], limit: usize, created: u64) -> Self {
        let mut adapters: Vec<LoadedLora> = Vec::with_capacity(modules.len());
        for m in modules {
            if !adapters.iter().any(|a| *a.name == *m.name) {
                adapters.push(LoadedLora {
                    name: Arc::from(m.name.as_str()),
                    path: m.path.clone(),
                    base_model_name: m.base_model_name.clone(),
                    created,
                });
            }
        }
        Self {
            limit,
            adapters: RwLock::new(adapters),
        }
    }

    /// The adapter called `name`, if loaded.
    pub(crate) fn resolve(&self, name: &str) -> Option<Arc<str>> {
        self.adapters
            .read()
            .iter()
            .find(|a| &*a.name == name)
            .map(|a| Arc::clone(&a.name))
    }

    pub(crate) fn list(&self) -> Vec<LoadedLora> {
        self.adapters.read().clone()
    }

    pub(crate) fn load(
        &self,
        name: &str,
        path: Option<String>,
        created: u64,
    ) -> Result<(), SimError> {
        if name.is_empty() || name.contains(',') {
            return Err(SimError::InvalidParam {
                message: "lora_name must be non-empty and contain no comma".to_owned(),
                param: "lora_name",
            });
        }
        let mut adapters = self.adapters.write();
        if adapters.iter().any(|a| &*a.name == name) {
            return Err(SimError::LoraAlreadyLoaded(name.to_owned()));
        }
        if adapters.len() >= self.limit {
            return Err(SimError::LoraLimit {
                name: name.to_owned(),
                max: self.limit,
            });
        }
        adapters.push(LoadedLora {
            name: Arc::from(name),
            path,
            base_model_name: None,
            created,
        });
        Ok(())
    }

    pub(crate) fn unload(&self, name: &str) -> Result<(), SimError> {
        let mut adapters = self.adapters.write();
        let before = adapters.len();
        adapters.retain(|a| &*a.name != name);
        if adapters.len() == before {
            return Err(SimError::LoraNotFound(name.to_owned()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn load_resolve_unload() {
        let modules = vec!["a=/p/a".parse::<LoraModule>().unwrap()];
        let r = LoraRegistry::new(&modules, 2, 0);
        assert!(r.resolve("a").is_some());
        assert!(r.resolve("b").is_none());
        r.load("b", None, 1).unwrap();
        assert_eq!(
            r.load("b", None, 1).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
        assert!(matches!(
            r.load("c", None, 1),
            Err(SimError::LoraLimit { max: 2, .. })
        ));
        r.unload("a").unwrap();
        assert_eq!(r.unload("a").unwrap_err().status(), StatusCode::NOT_FOUND);
        assert_eq!(
            r.list().iter().map(|l| &*l.name).collect::<Vec<_>>(),
            vec!["b"]
        );
        r.load("c", Some("/p/c".into()), 2).unwrap();
        assert_eq!(r.list()[1].path.as_deref(), Some("/p/c"));
    }
}
