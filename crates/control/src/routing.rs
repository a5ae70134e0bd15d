//! Routing by model: the public model name a client sends → an ordered list of attempts (a pool
//! or an external backend, plus the target model), the request's priority and an optional shadow
//! target. Pure: the random draw comes from the caller, headers through a lookup function.
//!
//! Sources of routes, in precedence order for one name:
//! 1. `PublicModel` — header-matched canaries (first match wins), else weighted targets; then
//!    ordered fallbacks; optionally a shadow target for a share of requests;
//! 2. legacy `InferenceModel` — `modelName` on a pool with weighted `targetModels`;
//! 3. `InferenceModelRewrite` exact matches — the matched name routes to the rewrite's pool.
//!
//! Inside a chosen pool the model name is then rewritten by the pool's `InferenceModelRewrite`
//! rules (an exact match beats a match-all rule; the first declared wins among equals), unless
//! the `x-gateway-model-name-rewrite` header forces a target.
//!
//! **Data residency**: when the request carries allowed regions, only targets whose region is
//! allowed are drawn, fallbacks outside them are dropped, and a shadow copy never leaves them.
//! If nothing compliant is left the request is refused ([`RouteError::RegionNotAllowed`]), never
//! sent elsewhere. A target's region is its backend's `region`, its pool's `infergate.dev/region`
//! label, or `dataResidency.localRegion`; a target without one is not compliant.

use std::collections::HashMap;
use std::sync::Arc;

use rand::Rng;

use crate::loader::{ConfigSet, Target, Upstream, WeightedName};

/// Why a request could not be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("The model `{model}` does not exist; available models: {available}")]
    UnknownModel { model: String, available: String },
    #[error(
        "The model `{model}` has no target in the regions this request may use ({allowed}); its \
         targets are in: {regions}"
    )]
    RegionNotAllowed {
        model: String,
        allowed: String,
        regions: String,
    },
}

/// Where one attempt goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteUpstream {
    Pool(Arc<str>),
    Backend(Arc<str>),
}

impl RouteUpstream {
    pub fn name(&self) -> &Arc<str> {
        match self {
            RouteUpstream::Pool(n) | RouteUpstream::Backend(n) => n,
        }
    }
}

/// One place to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTarget {
    pub upstream: RouteUpstream,
    /// The model name to put in the upstream body.
    pub model: String,
    /// The model's context window, when configured (context-length failover).
    pub context_window: Option<u64>,
    /// Where the target processes data.
    pub region: Option<Arc<str>>,
}

impl RouteTarget {
    /// The pool, when the target is one.
    pub fn pool(&self) -> Option<&Arc<str>> {
        match &self.upstream {
            RouteUpstream::Pool(p) => Some(p),
            RouteUpstream::Backend(_) => None,
        }
    }
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
    /// A candidate that gets a copy of this request (answer discarded).
    pub shadow: Option<RouteTarget>,
    /// The canary rule that matched, by index.
    pub canary: Option<usize>,
}

/// What routing looks at in one request.
pub struct RouteQuery<'a> {
    pub model: &'a str,
    /// `x-gateway-model-name-rewrite`.
    pub rewrite_header: Option<&'a str>,
    /// `x-gateway-inference-objective`.
    pub objective: Option<&'a str>,
    /// Request header lookup by lower-case name (canary matches).
    pub header: &'a dyn Fn(&str) -> Option<&'a str>,
    /// Regions the request may be served in; `None` = no restriction.
    pub allowed_regions: Option<&'a [Arc<str>]>,
}

#[derive(Debug, Clone)]
struct PublicEntry {
    targets: Vec<Target>,
    fallbacks: Vec<Target>,
    canaries: Vec<crate::loader::Canary>,
    shadow: Option<(Target, u32)>,
    priority: Option<i32>,
}

#[derive(Debug, Clone)]
enum ModelEntry {
    Public(Box<PublicEntry>),
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
    backends: HashMap<String, Arc<str>>,
    /// Region of each upstream (pool label / local region, backend region).
    regions: HashMap<RouteUpstream, Arc<str>>,
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

/// Whether `region` is allowed by `allowed` (exact, or a `prefix*` pattern; case-insensitive).
pub fn region_allowed(region: Option<&str>, allowed: &[Arc<str>]) -> bool {
    let Some(region) = region else { return false };
    allowed.iter().any(|a| match a.strip_suffix('*') {
        Some(prefix) => {
            region.len() >= prefix.len() && region[..prefix.len()].eq_ignore_ascii_case(prefix)
        }
        None => region.eq_ignore_ascii_case(a),
    })
}

/// Parse an allowed-regions header value: comma-separated, trimmed, empties dropped.
pub fn parse_regions(value: &str) -> Vec<Arc<str>> {
    value
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(Arc::from)
        .collect()
}

impl RouteTable {
    pub fn build(cfg: &ConfigSet) -> Self {
        let mut t = RouteTable::default();
        let local = cfg.settings.local_region.as_deref();
        for p in &cfg.pools {
            let name: Arc<str> = Arc::from(p.name.as_str());
            t.pools.insert(p.name.clone(), name.clone());
            if let Some(r) = p.region.as_deref().or(local) {
                t.regions.insert(RouteUpstream::Pool(name), Arc::from(r));
            }
        }
        for b in &cfg.backends {
            let name: Arc<str> = Arc::from(b.name.as_str());
            t.backends.insert(b.name.clone(), name.clone());
            if let Some(r) = &b.region {
                t.regions
                    .insert(RouteUpstream::Backend(name), Arc::from(r.as_str()));
            }
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
                ModelEntry::Public(Box::new(PublicEntry {
                    targets: m.targets.clone(),
                    fallbacks: m.fallbacks.clone(),
                    canaries: m.canaries.clone(),
                    shadow: m.shadow.as_ref().map(|s| (s.target.clone(), s.per_million)),
                    priority: m.priority,
                })),
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
                ModelEntry::Public(p) => out.extend(
                    p.targets
                        .iter()
                        .chain(&p.fallbacks)
                        .chain(p.canaries.iter().flat_map(|c| &c.targets))
                        .chain(p.shadow.iter().map(|s| &s.0))
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

    fn upstream_of(&self, u: &Upstream) -> RouteUpstream {
        match u {
            Upstream::Pool(p) => RouteUpstream::Pool(
                self.pools
                    .get(p)
                    .cloned()
                    .unwrap_or_else(|| Arc::from(p.as_str())),
            ),
            Upstream::Backend(b) => RouteUpstream::Backend(
                self.backends
                    .get(b)
                    .cloned()
                    .unwrap_or_else(|| Arc::from(b.as_str())),
            ),
        }
    }

    fn region_of(&self, u: &RouteUpstream) -> Option<&Arc<str>> {
        self.regions.get(u)
    }

    fn compliant(&self, t: &Target, allowed: Option<&[Arc<str>]>) -> bool {
        match allowed {
            None => true,
            Some(a) => region_allowed(
                self.region_of(&self.upstream_of(&t.upstream)).map(|r| &**r),
                a,
            ),
        }
    }

    fn route_target(
        &self,
        upstream: RouteUpstream,
        explicit: Option<&str>,
        public: &str,
        forced: Option<&str>,
        context_window: Option<u64>,
        rng: &mut impl Rng,
    ) -> RouteTarget {
        let model = match (forced, &upstream) {
            (Some(f), _) => f.to_string(),
            (None, RouteUpstream::Pool(pool)) => {
                self.rewrite_in_pool(pool, explicit.unwrap_or(public), rng)
            }
            (None, RouteUpstream::Backend(_)) => explicit.unwrap_or(public).to_string(),
        };
        let region = self.region_of(&upstream).cloned();
        RouteTarget {
            upstream,
            model,
            context_window,
            region,
        }
    }

    fn resolve_target(
        &self,
        t: &Target,
        public: &str,
        forced: Option<&str>,
        rng: &mut impl Rng,
    ) -> RouteTarget {
        self.route_target(
            self.upstream_of(&t.upstream),
            t.model.as_deref(),
            public,
            forced,
            t.context_window,
            rng,
        )
    }

    /// Route one request (no canary headers, no region restriction).
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
        let no_headers = |_: &str| None;
        self.resolve_with(
            &RouteQuery {
                model,
                rewrite_header,
                objective,
                header: &no_headers,
                allowed_regions: None,
            },
            rng,
        )
    }

    /// Route one request.
    pub fn resolve_with(
        &self,
        q: &RouteQuery<'_>,
        rng: &mut impl Rng,
    ) -> Result<RouteDecision, RouteError> {
        let model = q.model;
        let Some((name, entry)) = self.models.get_key_value(model) else {
            return Err(RouteError::UnknownModel {
                model: model.to_string(),
                available: self.available(),
            });
        };
        let forced = q.rewrite_header.filter(|h| !h.is_empty());
        let allowed = q.allowed_regions;
        let mut shadow = None;
        let mut canary = None;
        let mut candidates: Vec<RouteUpstream> = Vec::new();
        let (attempts, base_priority) = match entry {
            ModelEntry::Public(p) => {
                let mut list = &p.targets;
                for (i, c) in p.canaries.iter().enumerate() {
                    if c.headers
                        .iter()
                        .all(|(h, v)| (q.header)(h) == Some(v.as_str()))
                    {
                        list = &c.targets;
                        canary = Some(i);
                        break;
                    }
                }
                let mut attempts = Vec::with_capacity(1 + p.fallbacks.len());
                candidates.extend(
                    list.iter()
                        .chain(&p.fallbacks)
                        .map(|t| self.upstream_of(&t.upstream)),
                );
                let compliant: Vec<&Target> =
                    list.iter().filter(|t| self.compliant(t, allowed)).collect();
                if let Some(t) = draw(&compliant, |t| t.weight, rng) {
                    attempts.push(self.resolve_target(t, model, forced, rng));
                }
                for f in p.fallbacks.iter().filter(|t| self.compliant(t, allowed)) {
                    attempts.push(self.resolve_target(f, model, forced, rng));
                }
                if let Some((t, per_million)) = &p.shadow {
                    if self.compliant(t, allowed) && rng.random_range(0..1_000_000) < *per_million {
                        shadow = Some(self.resolve_target(t, model, forced, rng));
                    }
                }
                (attempts, p.priority.unwrap_or(0))
            }
            ModelEntry::Legacy {
                pool,
                targets,
                priority,
            } => {
                let upstream = RouteUpstream::Pool(pool.clone());
                candidates.push(upstream.clone());
                let target_model = match forced {
                    Some(f) => f.to_string(),
                    None => draw(targets, |t| t.weight, rng)
                        .map_or_else(|| model.to_string(), |t| t.name.clone()),
                };
                let region = self.region_of(&upstream).cloned();
                let ok = allowed.is_none_or(|a| region_allowed(region.as_deref(), a));
                let attempts = if ok {
                    vec![RouteTarget {
                        upstream,
                        model: target_model,
                        context_window: None,
                        region,
                    }]
                } else {
                    Vec::new()
                };
                (attempts, *priority)
            }
            ModelEntry::RewriteOnly { pool } => {
                let upstream = RouteUpstream::Pool(pool.clone());
                candidates.push(upstream.clone());
                let t = self.route_target(upstream, None, model, forced, None, rng);
                let ok = allowed.is_none_or(|a| region_allowed(t.region.as_deref(), a));
                (if ok { vec![t] } else { Vec::new() }, 0)
            }
        };
        if attempts.is_empty() {
            if let Some(a) = allowed {
                let mut regions: Vec<String> = candidates
                    .iter()
                    .map(|u| {
                        let r = self.region_of(u).map_or("no region", |r| &**r);
                        format!("{} ({r})", u.name())
                    })
                    .collect();
                regions.dedup();
                return Err(RouteError::RegionNotAllowed {
                    model: model.to_string(),
                    allowed: if a.is_empty() {
                        "none".to_string()
                    } else {
                        a.iter().map(|r| &**r).collect::<Vec<_>>().join(", ")
                    },
                    regions: regions.join(", "),
                });
            }
        }
        let (objective, priority) = match q.objective.and_then(|o| self.objectives.get_key_value(o))
        {
            Some((name, p)) => (Some(name.clone()), *p),
            None => (None, base_priority),
        };
        Ok(RouteDecision {
            public_model: name.clone(),
            attempts,
            priority,
            objective,
            shadow,
            canary,
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
                let hit = d.attempts.iter().position(|a| a.pool() == Some(pool))?;
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
            attempts: vec![self.route_target(
                RouteUpstream::Pool(pool.clone()),
                None,
                model,
                forced,
                None,
                rng,
            )],
            priority,
            objective,
            shadow: None,
            canary: None,
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
            if &**d.attempts[0].upstream.name() == "pool-a" {
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
        assert_eq!(&**d.attempts[0].upstream.name(), "pool-a");
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
        assert_eq!(&**d.attempts[0].upstream.name(), "pool-a");
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
        assert_eq!(d.attempts[0].pool().map(|p| &**p), Some("pool-b"));
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

    const PROVIDERS: &str = r#"
apiVersion: infergate.dev/v1alpha1
kind: GatewaySettings
metadata: {name: gw}
spec: {dataResidency: {localRegion: eu-central-1}}
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: local}
spec:
  selector: {matchLabels: {app: a}}
  targetPorts: [{number: 8000}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: tokyo, labels: {infergate.dev/region: ap-northeast-1}}
spec:
  selector: {matchLabels: {app: b}}
  targetPorts: [{number: 8000}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: infergate.dev/v1alpha1
kind: Backend
metadata: {name: us}
spec: {provider: OpenAICompatible, baseURL: "http://127.0.0.1:1/v1", region: us-east-1}
---
apiVersion: infergate.dev/v1alpha1
kind: Backend
metadata: {name: eu}
spec: {provider: OpenAICompatible, baseURL: "http://127.0.0.1:2/v1", region: eu-west-1}
---
apiVersion: infergate.dev/v1alpha1
kind: PublicModel
metadata: {name: chat}
spec:
  targets: [{backend: us, model: a, weight: 99}, {backend: eu, model: b, weight: 1}]
  fallbacks: [{pool: tokyo}, {pool: local, model: l}]
  canaries:
  - match: {headers: {x-canary: "1"}}
    targets: [{pool: tokyo, model: t}]
  shadow: {target: {backend: us, model: next}, percent: 50}
"#;

    #[test]
    fn regions_keep_requests_inside_and_say_why_when_they_cannot() {
        let t = RouteTable::build(&load_str("p.yaml", PROVIDERS).unwrap());
        let mut rng = rand::rngs::SmallRng::seed_from_u64(9);
        let none = |_: &str| None;
        let eu: Vec<Arc<str>> = vec![Arc::from("eu-*")];
        for _ in 0..200 {
            let d = t
                .resolve_with(
                    &RouteQuery {
                        model: "chat",
                        rewrite_header: None,
                        objective: None,
                        header: &none,
                        allowed_regions: Some(&eu),
                    },
                    &mut rng,
                )
                .unwrap();
            let regions: Vec<&str> = d
                .attempts
                .iter()
                .map(|a| a.region.as_deref().unwrap())
                .collect();
            // the 99-weight US target and the Tokyo fallback are gone; the local pool is EU
            assert_eq!(regions, vec!["eu-west-1", "eu-central-1"]);
            assert!(
                d.shadow.is_none(),
                "no shadow copy leaves the allowed regions"
            );
        }
        let ap: Vec<Arc<str>> = vec![Arc::from("sa-east-1")];
        let e = t
            .resolve_with(
                &RouteQuery {
                    model: "chat",
                    rewrite_header: None,
                    objective: None,
                    header: &none,
                    allowed_regions: Some(&ap),
                },
                &mut rng,
            )
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("sa-east-1")
                && msg.contains("us (us-east-1)")
                && msg.contains("tokyo (ap-northeast-1)"),
            "{msg}"
        );
    }

    #[test]
    fn canary_header_and_shadow_share() {
        let t = RouteTable::build(&load_str("p.yaml", PROVIDERS).unwrap());
        let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
        let canary = |h: &str| (h == "x-canary").then_some("1");
        let d = t
            .resolve_with(
                &RouteQuery {
                    model: "chat",
                    rewrite_header: None,
                    objective: None,
                    header: &canary,
                    allowed_regions: None,
                },
                &mut rng,
            )
            .unwrap();
        assert_eq!(d.canary, Some(0));
        assert_eq!(d.attempts[0].model, "t");
        assert_eq!(&**d.attempts[0].upstream.name(), "tokyo");
        let mut shadows = 0;
        for _ in 0..2000 {
            let d = t.resolve("chat", None, None, &mut rng).unwrap();
            assert_eq!(d.canary, None);
            if let Some(s) = d.shadow {
                assert_eq!(s.model, "next");
                shadows += 1;
            }
        }
        assert!((900..1100).contains(&shadows), "{shadows}");
    }

    #[test]
    fn region_patterns() {
        let a: Vec<Arc<str>> = parse_regions(" eu-* , us-east-1,");
        assert!(region_allowed(Some("eu-west-1"), &a));
        assert!(region_allowed(Some("US-EAST-1"), &a));
        assert!(!region_allowed(Some("europe-west4"), &a));
        assert!(!region_allowed(None, &a));
    }
}
