//! Routing by model: the public model name a client sends → an ordered list of (pool, target
//! model) attempts, and the request's priority. Pure: the random draw comes from the caller.
//!
//! Sources of routes, in precedence order for one name:
//! 1. `PublicModel` — weighted targets (pool + optional model) and ordered fallbacks;
//! 2. legacy `InferenceModel` — `modelName` on a pool with weighted `targetModels`;
//! 3. `InferenceModelRewrite` exact matches — the matched name routes to the rewrite's pool.
//!
//! Inside the chosen pool the model name is then rewritten by the pool's
//! `InferenceModelRewrite` rules (an exact match beats a match-all rule; the first declared wins
//! among equals), unless the `x-gateway-model-name-rewrite` header forces a target.

use std::collections::HashMap;
use std::sync::Arc;

use rand::Rng;

use crate::loader::{ConfigSet, Target, WeightedName};

/// Why a request could not be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("The model `{model}` does not exist; available models: {available}")]
    UnknownModel { model: String, available: String },
}

/// One place to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTarget {
    pub pool: Arc<str>,
    /// The model name to put in the upstream body.
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDecision {
    /// The name the client asked for (and will see in responses).
    pub public_model: Arc<str>,
    /// Primary first, then fallbacks, in order.
    pub attempts: Vec<RouteTarget>,
    /// InferenceObjective priority: higher is more important, negative is sheddable.
    pub priority: i32,
    /// The objective named by the request, if it exists.
    pub objective: Option<Arc<str>>,
}

#[derive(Debug, Clone)]
enum ModelEntry {
    Public {
        targets: Vec<Target>,
        fallbacks: Vec<Target>,
        priority: Option<i32>,
    },
    Legacy {
        pool: Arc<str>,
        targets: Vec<WeightedName>,
        priority: i32,
    },
    RewriteOnly {
        pool: Arc<str>,
    },
}

#[derive(Debug, Clone, Default)]
struct PoolRewrites {
    exact: HashMap<String, Vec<WeightedName>>,
    generic: Option<Vec<WeightedName>>,
}

/// The routing table of one configuration snapshot.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    models: HashMap<Arc<str>, ModelEntry>,
    rewrites: HashMap<String, PoolRewrites>,
    objectives: HashMap<Arc<str>, i32>,
    names: Vec<Arc<str>>,
    pools: HashMap<String, Arc<str>>,
}

fn draw<'a, T>(items: &'a [T], weight: impl Fn(&T) -> u32, rng: &mut impl Rng) -> Option<&'a T> {
    let total: u64 = items.iter().map(|t| u64::from(weight(t))).sum();
    if total == 0 {
        return items.first();
    }
    let mut x = rng.random_range(0..total);
    for it in items {
        let w = u64::from(weight(it));
        if x < w {
            return Some(it);
        }
        x -= w;
    }
    items.last()
}

impl RouteTable {
    pub fn build(cfg: &ConfigSet) -> Self {
        let mut t = RouteTable::default();
        for p in &cfg.pools {
            t.pools.insert(p.name.clone(), Arc::from(p.name.as_str()));
        }
        let pool_arc = |t: &RouteTable, name: &str| -> Arc<str> {
            t.pools
                .get(name)
                .cloned()
                .unwrap_or_else(|| Arc::from(name))
        };
        for r in &cfg.rewrites {
            let entry = t.rewrites.entry(r.pool.clone()).or_default();
            if r.exact.is_empty() {
                entry.generic.get_or_insert_with(|| r.targets.clone());
            }
            for m in &r.exact {
                entry
                    .exact
                    .entry(m.clone())
                    .or_insert_with(|| r.targets.clone());
            }
        }
        for r in &cfg.rewrites {
            for m in &r.exact {
                let pool = pool_arc(&t, &r.pool);
                t.models
                    .entry(Arc::from(m.as_str()))
                    .or_insert(ModelEntry::RewriteOnly { pool });
            }
        }
        for m in &cfg.legacy_models {
            let pool = pool_arc(&t, &m.pool);
            t.models.insert(
                Arc::from(m.model_name.as_str()),
                ModelEntry::Legacy {
                    pool,
                    targets: m.targets.clone(),
                    priority: m.priority,
                },
            );
        }
        for m in &cfg.public_models {
            t.models.insert(
                Arc::from(m.name.as_str()),
                ModelEntry::Public {
                    targets: m.targets.clone(),
                    fallbacks: m.fallbacks.clone(),
                    priority: m.priority,
                },
            );
        }
        for o in &cfg.objectives {
            t.objectives.insert(Arc::from(o.name.as_str()), o.priority);
        }
        t.names = t.models.keys().cloned().collect();
        t.names.sort();
        t
    }

    /// Public model names, sorted (what `GET /v1/models` lists).
    pub fn model_names(&self) -> &[Arc<str>] {
        &self.names
    }

    /// Every target model name the configuration can produce (bounded; used for metric labels).
    pub fn known_target_models(&self) -> Vec<String> {
        let mut out: Vec<String> = self.names.iter().map(|n| n.to_string()).collect();
        for e in self.models.values() {
            match e {
                ModelEntry::Public {
                    targets, fallbacks, ..
                } => out.extend(
                    targets
                        .iter()
                        .chain(fallbacks)
                        .filter_map(|t| t.model.clone()),
                ),
                ModelEntry::Legacy { targets, .. } => {
                    out.extend(targets.iter().map(|t| t.name.clone()));
                }
                ModelEntry::RewriteOnly { .. } => {}
            }
        }
        for r in self.rewrites.values() {
            for ts in r.exact.values().chain(r.generic.iter()) {
                out.extend(ts.iter().map(|t| t.name.clone()));
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn rewrite_in_pool(&self, pool: &str, model: &str, rng: &mut impl Rng) -> String {
        let Some(r) = self.rewrites.get(pool) else {
            return model.to_string();
        };
        let rule = r.exact.get(model).or(r.generic.as_ref());
        match rule.and_then(|ts| draw(ts, |t| t.weight, rng)) {
            Some(t) => t.name.clone(),
            None => model.to_string(),
        }
    }

    fn target(
        &self,
        pool: &Arc<str>,
        explicit: Option<&str>,
        public: &str,
        forced: Option<&str>,
        rng: &mut impl Rng,
    ) -> RouteTarget {
        let model = match forced {
            Some(f) => f.to_string(),
            None => {
                let base = explicit.unwrap_or(public);
                self.rewrite_in_pool(pool, base, rng)
            }
        };
        RouteTarget {
            pool: pool.clone(),
            model,
        }
    }

    /// Route one request.
    ///
    /// `rewrite_header` is `x-gateway-model-name-rewrite`, `objective` is
    /// `x-gateway-inference-objective`.
    pub fn resolve(
        &self,
        model: &str,
        rewrite_header: Option<&str>,
        objective: Option<&str>,
        rng: &mut impl Rng,
    ) -> Result<RouteDecision, RouteError> {
        let Some((name, entry)) = self.models.get_key_value(model) else {
            return Err(RouteError::UnknownModel {
                model: model.to_string(),
                available: self.available(),
            });
        };
        let forced = rewrite_header.filter(|h| !h.is_empty());
        let (attempts, base_priority) = match entry {
            ModelEntry::Public {
                targets,
                fallbacks,
                priority,
            } => {
                let mut attempts = Vec::with_capacity(1 + fallbacks.len());
                if let Some(t) = draw(targets, |t| t.weight, rng) {
                    let pool = self
                        .pools
                        .get(&t.pool)
                        .cloned()
                        .unwrap_or_else(|| Arc::from(t.pool.as_str()));
                    attempts.push(self.target(&pool, t.model.as_deref(), model, forced, rng));
                }
                for f in fallbacks {
                    let pool = self
                        .pools
                        .get(&f.pool)
                        .cloned()
                        .unwrap_or_else(|| Arc::from(f.pool.as_str()));
                    attempts.push(self.target(&pool, f.model.as_deref(), model, forced, rng));
                }
                (attempts, priority.unwrap_or(0))
            }
            ModelEntry::Legacy {
                pool,
                targets,
                priority,
            } => {
                let target_model = match forced {
                    Some(f) => f.to_string(),
                    None => draw(targets, |t| t.weight, rng)
                        .map_or_else(|| model.to_string(), |t| t.name.clone()),
                };
                (
                    vec![RouteTarget {
                        pool: pool.clone(),
                        model: target_model,
                    }],
                    *priority,
                )
            }
            ModelEntry::RewriteOnly { pool } => {
                (vec![self.target(pool, None, model, forced, rng)], 0)
            }
        };
        let (objective, priority) = match objective.and_then(|o| self.objectives.get_key_value(o)) {
            Some((name, p)) => (Some(name.clone()), *p),
            None => (None, base_priority),
        };
        Ok(RouteDecision {
            public_model: name.clone(),
            attempts,
            priority,
            objective,
        })
    }

    /// Route a request whose pool the proxy already chose (an Endpoint Picker behind a route
    /// that names its `InferencePool`). The model's own route supplies the target model when
    /// it has a target in `pool`; otherwise the pool's `InferenceModelRewrite` rules (or the
    /// `x-gateway-model-name-rewrite` header) apply to the name as sent. A model this table does
    /// not know passes through unchanged, as the anchor's per-pool picker does.
    pub fn resolve_in_pool(
        &self,
        pool: &Arc<str>,
        model: &str,
        rewrite_header: Option<&str>,
        objective: Option<&str>,
        rng: &mut impl Rng,
    ) -> RouteDecision {
        let forced = rewrite_header.filter(|h| !h.is_empty());
        let routed = self
            .resolve(model, rewrite_header, objective, rng)
            .ok()
            .and_then(|d| {
                let hit = d.attempts.iter().position(|a| a.pool == *pool)?;
                let mut d = d;
                let a = d.attempts.swap_remove(hit);
                d.attempts = vec![a];
                Some(d)
            });
        if let Some(d) = routed {
            return d;
        }
        let (objective, priority) = match objective.and_then(|o| self.objectives.get_key_value(o)) {
            Some((name, p)) => (Some(name.clone()), *p),
            None => (None, 0),
        };
        RouteDecision {
            public_model: Arc::from(model),
            attempts: vec![self.target(pool, None, model, forced, rng)],
            priority,
            objective,
        }
    }

    fn available(&self) -> String {
        const SHOWN: usize = 20;
        let mut s: Vec<&str> = self.names.iter().take(SHOWN).map(|n| &**n).collect();
        if self.names.len() > SHOWN {
            s.push("…");
        }
        if s.is_empty() {
            "none are configured".into()
        } else {
            s.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::load_str;
    use rand::SeedableRng;

    const CFG: &str = r#"
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: pool-a}
spec:
  selector: {matchLabels: {app: a}}
  targetPorts: [{number: 8000}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: pool-b}
spec:
  selector: {app: b}
  targetPortNumber: 8001
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: infergate.dev/v1alpha1
kind: PublicModel
metadata: {name: chat}
spec:
  targets:
  - {pool: pool-a, model: llama-8b, weight: 90}
  - {pool: pool-b, weight: 10}
  fallbacks:
  - {pool: pool-b, model: small}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModelRewrite
metadata: {name: canary}
spec:
  poolRef: {name: pool-b}
  rules:
  - matches: [{model: {type: Exact, value: chat}}]
    targets:
    - {modelRewrite: chat-v1, weight: 50}
    - {modelRewrite: chat-v2, weight: 50}
  - targets: [{modelRewrite: generic}]
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModelRewrite
metadata: {name: summarize}
spec:
  poolRef: {name: pool-a}
  rules:
  - matches: [{model: {value: summarize}}]
    targets: [{modelRewrite: summarize-lora}]
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: food}
spec:
  modelName: food-review
  criticality: Sheddable
  poolRef: {name: pool-a}
  targetModels:
  - {name: food-review-1, weight: 90}
  - {name: food-review-2, weight: 10}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceObjective
metadata: {name: critical}
spec: {priority: 10, poolRef: {name: pool-a}}
"#;

    fn table() -> RouteTable {
        RouteTable::build(&load_str("t.yaml", CFG).unwrap())
    }

    #[test]
    fn weighted_targets_follow_weights() {
        let t = table();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut a = 0;
        for _ in 0..10_000 {
            let d = t.resolve("chat", None, None, &mut rng).unwrap();
            assert_eq!(&*d.public_model, "chat");
            assert_eq!(d.attempts.len(), 2);
            if &*d.attempts[0].pool == "pool-a" {
                assert_eq!(d.attempts[0].model, "llama-8b");
                a += 1;
            } else {
                // pool-b rewrites `chat` with its exact rule
                assert!(["chat-v1", "chat-v2"].contains(&d.attempts[0].model.as_str()));
            }
            // the fallback's explicit model goes through pool-b's generic rule
            assert_eq!(d.attempts[1].model, "generic");
        }
        assert!((8_700..9_300).contains(&a), "{a}");
    }

    #[test]
    fn header_forces_target_model() {
        let t = table();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let d = t.resolve("chat", Some("forced"), None, &mut rng).unwrap();
        assert!(d.attempts.iter().all(|a| a.model == "forced"));
    }

    #[test]
    fn legacy_model_and_priority() {
        let t = table();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let d = t.resolve("food-review", None, None, &mut rng).unwrap();
        assert_eq!(d.priority, -1);
        assert_eq!(&*d.attempts[0].pool, "pool-a");
        assert!(d.attempts[0].model.starts_with("food-review-"));
        let d = t
            .resolve("food-review", None, Some("critical"), &mut rng)
            .unwrap();
        assert_eq!(d.priority, 10);
        assert_eq!(d.objective.as_deref(), Some("critical"));
    }

    #[test]
    fn rewrite_exact_match_is_a_public_name_too() {
        let t = table();
        let names: Vec<&str> = t.model_names().iter().map(|n| &**n).collect();
        assert_eq!(names, vec!["chat", "food-review", "summarize"]);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let d = t.resolve("summarize", None, None, &mut rng).unwrap();
        assert_eq!(&*d.attempts[0].pool, "pool-a");
        assert_eq!(d.attempts[0].model, "summarize-lora");
    }

    #[test]
    fn resolve_in_pool_uses_the_route_then_the_pool_rules() {
        let t = table();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let b: Arc<str> = Arc::from("pool-b");
        // `chat` has a fallback target in pool-b (model `small`, then pool-b's generic rule).
        let d = t.resolve_in_pool(&b, "chat", None, None, &mut rng);
        assert_eq!(d.attempts.len(), 1);
        assert_eq!(&*d.attempts[0].pool, "pool-b");
        // A name the table does not route goes through pool-b's generic rewrite rule.
        let d = t.resolve_in_pool(&b, "anything", None, Some("critical"), &mut rng);
        assert_eq!(d.attempts[0].model, "generic");
        assert_eq!(d.priority, 10);
        // Pool-a has no rules: unknown names pass through unchanged.
        let a: Arc<str> = Arc::from("pool-a");
        let d = t.resolve_in_pool(&a, "anything", None, None, &mut rng);
        assert_eq!(d.attempts[0].model, "anything");
        assert_eq!(&*d.public_model, "anything");
        let d = t.resolve_in_pool(&a, "anything", Some("forced"), None, &mut rng);
        assert_eq!(d.attempts[0].model, "forced");
    }

    #[test]
    fn unknown_model_lists_available() {
        let t = table();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let e = t.resolve("gpt-9", None, None, &mut rng).unwrap_err();
        assert!(e.to_string().contains("The model `gpt-9` does not exist"));
        assert!(e.to_string().contains("chat, food-review, summarize"));
    }
}
