//! The payload features of one configuration, ready to serve: the embedder, compiled guardrail
//! policies, cache stores, semantic routers and retrieval collections.
//!
//! Built asynchronously (embedding topic examples, the injection corpus, route examples and
//! documents takes a moment) before the snapshot that carries it is swapped in. What can
//! survive a reload does: the embedder when its settings are unchanged (with its vector cache,
//! so re-embedding an unchanged corpus is a cache hit), and a cache store whose policy is
//! unchanged (its entries stay valid).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use infergate_control::semantic::{
    CachePolicySpec, CollectionSpec, EmbeddingsSpec, GuardrailPolicySpec, GuardrailSpec,
};
use infergate_control::ConfigSet;
use infergate_semantic::cache::{CacheOptions, SemanticCache};
use infergate_semantic::embed::store::{self as vector_store, VectorStore};
use infergate_semantic::embed::{CachedEmbedder, Embedder, SharedEmbedder};
use infergate_semantic::guard::injection::{self, Corpus};
use infergate_semantic::guard::patterns::{PatternSpec, Patterns};
use infergate_semantic::guard::pii::Pii;
use infergate_semantic::guard::secrets::Secrets;
use infergate_semantic::guard::size::SizeCap;
use infergate_semantic::guard::topics::{Topic, Topics};
use infergate_semantic::guard::{Action, GuardSet, Guardrail};
use infergate_semantic::retrieval::{Collection, CollectionSource};
use infergate_semantic::router::{Route, SemanticRouter, Signals};
use infergate_semantic::vector::Vector;

use super::remote::{RemoteEmbedder, Webhook};

/// One guardrail policy, compiled.
pub struct GuardPolicy {
    pub name: Arc<str>,
    pub spec: GuardrailPolicySpec,
    pub request: GuardSet,
    pub response: GuardSet,
    pub request_webhooks: Vec<Arc<Webhook>>,
    pub response_webhooks: Vec<Arc<Webhook>>,
}

pub struct CacheStore {
    pub name: Arc<str>,
    pub spec: CachePolicySpec,
    pub cache: Arc<SemanticCache>,
    pub semantic: bool,
}

pub struct CollectionRuntime {
    pub name: Arc<str>,
    pub spec: CollectionSpec,
    pub collection: Arc<Collection>,
    pub top_k: usize,
    pub min_score: f32,
}

/// Everything payload processing needs, per configuration snapshot.
#[derive(Default)]
pub struct SemanticRuntime {
    pub embedder: Option<SharedEmbedder>,
    embed_spec: Option<EmbeddingsSpec>,
    /// Corpus vectors on disk (so a start does not re-embed unchanged corpora).
    vectors: Option<Arc<VectorStore>>,
    corpus: Option<Arc<Corpus>>,
    pub guard_policies: Vec<GuardPolicy>,
    pub caches: Vec<CacheStore>,
    /// Public router name → router.
    pub routers: HashMap<String, Arc<SemanticRouter>>,
    pub collections: Vec<CollectionRuntime>,
}

/// What applies to one request.
#[derive(Default)]
pub struct Plan<'a> {
    pub request: GuardSet,
    pub response: GuardSet,
    pub request_webhooks: Vec<Arc<Webhook>>,
    pub response_webhooks: Vec<Arc<Webhook>>,
    pub cache: Option<&'a CacheStore>,
}

impl SemanticRuntime {
    /// Whether any payload feature is configured at all (the pipeline skips every stage if not).
    pub fn is_active(&self) -> bool {
        !self.guard_policies.is_empty()
            || !self.caches.is_empty()
            || !self.routers.is_empty()
            || !self.collections.is_empty()
    }

    /// The guardrails and cache for a request by `tenant` for public model `model`.
    pub fn plan(&self, tenant: Option<&str>, model: &str) -> Plan<'_> {
        let mut plan = Plan::default();
        for p in &self.guard_policies {
            if p.spec.matches(tenant, model) {
                plan.request
                    .guardrails
                    .extend(p.request.guardrails.iter().cloned());
                plan.response
                    .guardrails
                    .extend(p.response.guardrails.iter().cloned());
                plan.request_webhooks
                    .extend(p.request_webhooks.iter().cloned());
                plan.response_webhooks
                    .extend(p.response_webhooks.iter().cloned());
            }
        }
        plan.cache = self.caches.iter().find(|c| c.spec.matches(tenant, model));
        plan
    }

    /// Collections attached to `model` for `tenant`.
    pub fn collections_for<'a>(
        &'a self,
        tenant: Option<&'a str>,
        model: &'a str,
    ) -> impl Iterator<Item = &'a CollectionRuntime> + 'a {
        self.collections
            .iter()
            .filter(move |c| c.spec.matches(tenant, model))
    }

    /// Build from a validated configuration, reusing what `prev` has that is still valid.
    pub async fn build(cfg: &ConfigSet, prev: Option<&SemanticRuntime>) -> Result<Self, String> {
        let mut rt = SemanticRuntime::default();
        let needs_embedder = !cfg.guardrail_policies.is_empty()
            || !cfg.cache_policies.is_empty()
            || !cfg.semantic_routers.is_empty()
            || !cfg.collections.is_empty();
        if let (Some(spec), true) = (&cfg.settings.embeddings, needs_embedder) {
            let reuse = prev.filter(|p| p.embed_spec.as_ref() == Some(spec));
            let (embedder, vectors) = match reuse.and_then(|p| p.embedder.clone()) {
                Some(e) => (e, reuse.and_then(|p| p.vectors.clone())),
                None => start_embedder(spec)?,
            };
            rt.embedder = Some(embedder);
            rt.vectors = vectors;
            rt.embed_spec = Some(spec.clone());
            rt.corpus = reuse.and_then(|p| p.corpus.clone());
        }
        let embedder = rt.embedder.clone();
        let vectors = rt.vectors.clone();
        let vectors = vectors.as_deref();

        for p in &cfg.guardrail_policies {
            let mut request = Vec::new();
            let mut request_webhooks = Vec::new();
            for g in &p.spec.request {
                match compile_guardrail(g, embedder.as_deref(), vectors, &mut rt.corpus).await? {
                    Compiled::Local(x) => request.push(x),
                    Compiled::Webhook(w) => request_webhooks.push(w),
                }
            }
            let mut response = Vec::new();
            let mut response_webhooks = Vec::new();
            for g in &p.spec.response {
                match compile_guardrail(g, embedder.as_deref(), vectors, &mut rt.corpus).await? {
                    Compiled::Local(x) => response.push(x),
                    Compiled::Webhook(w) => response_webhooks.push(w),
                }
            }
            rt.guard_policies.push(GuardPolicy {
                name: Arc::from(p.name.as_str()),
                spec: p.spec.clone(),
                request: GuardSet::new(request),
                response: GuardSet::new(response),
                request_webhooks,
                response_webhooks,
            });
        }

        for c in &cfg.cache_policies {
            let semantic = c.spec.semantic.unwrap_or(true) && embedder.is_some();
            let reused = prev.and_then(|p| {
                p.caches
                    .iter()
                    .find(|x| *x.name == *c.name && x.spec == c.spec && x.semantic == semantic)
                    .map(|x| x.cache.clone())
            });
            let cache = reused.unwrap_or_else(|| {
                let defaults = CacheOptions::default();
                let opts = CacheOptions {
                    threshold: c.spec.threshold.map_or(defaults.threshold, |t| t.0),
                    ttl: c.spec.ttl.map_or(defaults.ttl, |d| d.get()),
                    max_entries: c.spec.max_entries.unwrap_or(defaults.max_entries),
                    max_bytes: c.spec.max_bytes.map_or(defaults.max_bytes, |b| {
                        usize::try_from(b.0).unwrap_or(usize::MAX)
                    }),
                    index: defaults.index,
                    verify: c.spec.verify.unwrap_or(defaults.verify),
                };
                Arc::new(SemanticCache::new(
                    embedder.as_ref().map_or(0, |e| e.dim()),
                    opts,
                ))
            });
            rt.caches.push(CacheStore {
                name: Arc::from(c.name.as_str()),
                spec: c.spec.clone(),
                cache,
                semantic,
            });
        }

        if let Some(e) = embedder.as_deref() {
            for r in &cfg.semantic_routers {
                let mut routes = Vec::new();
                for route in &r.spec.routes {
                    routes.push(Route {
                        name: Arc::from(route.name.as_str()),
                        model: Arc::from(route.model.as_str()),
                        examples: embed_all(e, vectors, &route.examples).await?,
                        complex: route.complex,
                    });
                }
                let d = Signals::default();
                let s = r.spec.signals.as_ref();
                let signals = Signals {
                    long_prompt_chars: s
                        .and_then(|s| s.long_prompt_chars)
                        .unwrap_or(d.long_prompt_chars),
                    code: s.and_then(|s| s.code).unwrap_or(d.code),
                    reasoning: s.and_then(|s| s.reasoning).unwrap_or(d.reasoning),
                    weight: s.and_then(|s| s.weight).map_or(d.weight, |w| w.0),
                };
                rt.routers.insert(
                    r.name.clone(),
                    Arc::new(SemanticRouter::new(
                        routes,
                        Arc::from(r.spec.default.as_str()),
                        r.spec.threshold.map_or(DEFAULT_ROUTE_THRESHOLD, |t| t.0),
                        signals,
                    )),
                );
            }
            for c in &cfg.collections {
                let source = CollectionSource {
                    name: c.name.clone(),
                    paths: c.spec.paths.iter().map(PathBuf::from).collect(),
                    chunk_chars: c.spec.chunk_chars.unwrap_or(800),
                    index_path: c.spec.index_path.as_ref().map(PathBuf::from),
                };
                let collection = Collection::load(&source, e)
                    .await
                    .map_err(|err| format!("Collection `{}`: {err}", c.name))?;
                tracing::info!(collection = %c.name, chunks = collection.len(), "collection loaded");
                rt.collections.push(CollectionRuntime {
                    name: Arc::from(c.name.as_str()),
                    spec: c.spec.clone(),
                    collection: Arc::new(collection),
                    top_k: c.spec.top_k.unwrap_or(3),
                    min_score: c.spec.min_score.map_or(0.3, |s| s.0),
                });
            }
        }
        Ok(rt)
    }
}

/// Default route score (mean of the 3 best example similarities, plus signal boosts) below
/// which the router falls back to its default model. It only has to tell "like none of the
/// routes" from "like one of them": the best route wins on its own. The routing sweep in
/// `docs/benchmarks/semantic.md` shows accuracy flat from 0 to 0.2 and falling fast above
/// (short prompts have low absolute similarities to any example).
pub const DEFAULT_ROUTE_THRESHOLD: f32 = 0.2;
/// Default similarity for a denied topic.
pub const DEFAULT_TOPIC_THRESHOLD: f32 = 0.6;

type Started = (SharedEmbedder, Option<Arc<VectorStore>>);

fn start_embedder(spec: &EmbeddingsSpec) -> Result<Started, String> {
    let cache_entries = spec.cache_entries.unwrap_or(10_000);
    let (inner, identity): (SharedEmbedder, Option<u64>) = if let Some(endpoint) = &spec.endpoint {
        let model = spec
            .model
            .clone()
            .unwrap_or_else(|| "text-embedding".into());
        let identity = vector_store::remote_identity(endpoint, &model);
        (
            Arc::new(RemoteEmbedder::new(
                endpoint,
                model,
                spec.timeout.map_or(Duration::from_secs(2), |d| d.get()),
            )?),
            Some(identity),
        )
    } else {
        let dir = spec.model_dir.clone().unwrap_or_default();
        let identity = vector_store::model_identity(std::path::Path::new(&dir))
            .map_err(|e| tracing::warn!(model_dir = %dir, error = %e, "corpus vectors will not be kept on disk"))
            .ok();
        (local_embedder(spec)?, identity)
    };
    let dir = match spec.vector_cache_dir.as_deref() {
        Some("") => None,
        Some(d) => Some(PathBuf::from(d)),
        None => Some(std::env::temp_dir().join("infergate-vectors")),
    };
    let vectors = dir
        .zip(identity)
        .map(|(d, id)| Arc::new(VectorStore::new(d, id)));
    Ok((Arc::new(CachedEmbedder::new(inner, cache_entries)), vectors))
}

#[cfg(feature = "embed-candle")]
fn local_embedder(spec: &EmbeddingsSpec) -> Result<SharedEmbedder, String> {
    use infergate_semantic::embed::{
        bert::{Backend, BertEncoder},
        EncoderPool, PoolOptions,
    };
    let dir = spec.model_dir.clone().unwrap_or_default();
    let started = std::time::Instant::now();
    // Validated by the loader: `auto` (default) or `candle`.
    let pass = match spec.forward_pass.as_deref() {
        Some("candle") => Backend::Candle,
        _ => Backend::Auto,
    };
    let encoder =
        BertEncoder::load_with(std::path::Path::new(&dir), pass).map_err(|e| e.to_string())?;
    let backend = encoder.backend_name();
    let d = PoolOptions::default();
    let pool = EncoderPool::start(
        Arc::new(encoder),
        format!("local:{dir}"),
        PoolOptions {
            workers: spec.workers.unwrap_or(d.workers),
            max_batch: spec.max_batch.unwrap_or(d.max_batch),
            max_queue: spec.max_queue.unwrap_or(d.max_queue),
        },
    )
    .map_err(|e| format!("cannot start the embedding threads: {e}"))?;
    tracing::info!(model_dir = %dir, backend, ms = started.elapsed().as_millis() as u64, "embedding model loaded");
    Ok(Arc::new(pool))
}

#[cfg(not(feature = "embed-candle"))]
fn local_embedder(_spec: &EmbeddingsSpec) -> Result<SharedEmbedder, String> {
    Err(
        "this infergate was built without the `embed-candle` feature; set \
         GatewaySettings spec.embeddings.endpoint to an OpenAI-compatible embeddings endpoint"
            .into(),
    )
}

/// Embed a corpus, or read its vectors from `store` when it holds them for this model and these
/// exact texts (and keep them there after embedding).
async fn embed_all(
    e: &dyn Embedder,
    store: Option<&VectorStore>,
    texts: &[String],
) -> Result<Vec<Vector>, String> {
    if let Some(v) = store.and_then(|s| s.load(texts, e.dim())) {
        return Ok(v);
    }
    let mut out = Vec::with_capacity(texts.len());
    for batch in texts.chunks(16) {
        out.extend(e.embed(batch).await.map_err(|err| err.to_string())?);
    }
    if let Some(s) = store {
        if let Err(err) = s.save(texts, &out) {
            tracing::warn!(dir = %s.dir().display(), error = %err, "cannot keep corpus vectors on disk");
        }
    }
    Ok(out)
}

enum Compiled {
    Local(Arc<dyn Guardrail>),
    Webhook(Arc<Webhook>),
}

async fn compile_guardrail(
    g: &GuardrailSpec,
    embedder: Option<&dyn Embedder>,
    vectors: Option<&VectorStore>,
    corpus_cache: &mut Option<Arc<Corpus>>,
) -> Result<Compiled, String> {
    let action = Action::parse(&g.action).unwrap_or(Action::Log);
    let name = g.name.as_str();
    let local: Arc<dyn Guardrail> = match g.kind.as_str() {
        "pii" => Arc::new(Pii::new(name, action, &g.entities).map_err(|e| e.to_string())?),
        "secrets" => Arc::new(Secrets::new(name, action, &g.entities).map_err(|e| e.to_string())?),
        "size" => Arc::new(SizeCap::new(name, action, g.max_chars, g.max_messages)),
        "patterns" => {
            let conv = |list: &[infergate_control::semantic::PatternEntry]| -> Vec<PatternSpec> {
                list.iter()
                    .map(|p| match &p.regex {
                        Some(r) => PatternSpec::Regex {
                            name: p.name.clone(),
                            pattern: r.clone(),
                        },
                        None => PatternSpec::Keywords {
                            name: p.name.clone(),
                            words: p.keywords.clone(),
                        },
                    })
                    .collect()
            };
            Arc::new(
                Patterns::new(name, action, &conv(&g.deny), &conv(&g.allow))
                    .map_err(|e| e.to_string())?,
            )
        }
        "topics" => {
            let e = embedder.ok_or("topics guardrails need embeddings")?;
            let mut topics = Vec::new();
            for t in &g.topics {
                topics.push(Topic {
                    name: Arc::from(t.name.as_str()),
                    examples: embed_all(e, vectors, &t.examples).await?,
                });
            }
            Arc::new(Topics::new(
                name,
                action,
                topics,
                g.threshold.map_or(DEFAULT_TOPIC_THRESHOLD, |t| t.0),
            ))
        }
        "injection" => {
            // `nearest` when asked for, or when the config sets its knobs (configs written
            // before the classifier keep their meaning); the trained classifier otherwise.
            let nearest = match g.method.as_deref() {
                Some(m) => m == "nearest",
                None => g.corpus.is_some() || g.threshold.is_some() || g.margin.is_some(),
            };
            let method = match (embedder, g.similarity.unwrap_or(true), nearest) {
                (Some(e), true, true) => injection::Method::Nearest {
                    corpus: load_corpus(e, vectors, g.corpus.as_deref(), corpus_cache).await?,
                    threshold: g.threshold.map_or(injection::DEFAULT_THRESHOLD, |t| t.0),
                    margin: g.margin.map_or(injection::DEFAULT_MARGIN, |t| t.0),
                },
                (Some(e), true, false) => {
                    let classifier = injection::Classifier::builtin()?;
                    // (A remote embedder learns its width on first use: 0 until then; a text
                    // of another width is then left to the rules.)
                    if e.dim() != 0 && classifier.embedding_dim != e.dim() {
                        return Err(format!(
                            "the injection classifier reads {}-dimensional embeddings \
                             (all-MiniLM-L6-v2); the configured embedder gives {}; use \
                             `method: nearest`",
                            classifier.embedding_dim,
                            e.dim()
                        ));
                    }
                    injection::Method::Classifier {
                        min_score: g.min_score.map_or(classifier.threshold, |t| t.0),
                        classifier,
                    }
                }
                _ => injection::Method::None,
            };
            Arc::new(injection::Injection::with_method(
                name,
                action,
                g.rules.unwrap_or(true),
                method,
            ))
        }
        "webhook" => {
            return Ok(Compiled::Webhook(Arc::new(Webhook::new(
                name,
                action,
                g.url.as_deref().unwrap_or_default(),
                g.timeout.map_or(Duration::from_secs(1), |d| d.get()),
                g.fail_mode.as_deref() != Some("closed"),
            )?)))
        }
        other => return Err(format!("unknown guardrail type `{other}`")),
    };
    Ok(Compiled::Local(local))
}

/// Embed an injection corpus (the built-in one is embedded once and shared by every policy).
pub async fn load_corpus(
    e: &dyn Embedder,
    vectors: Option<&VectorStore>,
    path: Option<&str>,
    cache: &mut Option<Arc<Corpus>>,
) -> Result<Arc<Corpus>, String> {
    if path.is_none() {
        if let Some(c) = cache {
            return Ok(c.clone());
        }
    }
    let text = match path {
        Some(p) => {
            std::fs::read_to_string(p).map_err(|err| format!("injection corpus {p}: {err}"))?
        }
        None => injection::builtin_corpus().to_string(),
    };
    let (version, items) = injection::parse_corpus(&text)?;
    let texts: Vec<String> = items.iter().map(|i| i.text.clone()).collect();
    let vectors = embed_all(e, vectors, &texts).await?;
    let mut corpus = Corpus {
        version,
        attacks: Vec::new(),
        benign: Vec::new(),
    };
    for (item, v) in items.iter().zip(vectors) {
        if item.label == "attack" {
            corpus
                .attacks
                .push((injection::category(&item.category), v));
        } else {
            corpus.benign.push(v);
        }
    }
    let corpus = Arc::new(corpus);
    if path.is_none() {
        *cache = Some(corpus.clone());
    }
    Ok(corpus)
}
