//! Configuration of the payload features that run on embeddings: `GuardrailPolicy`,
//! `CachePolicy`, `SemanticRouter` and `Collection` (all `infergate.dev/v1alpha1`), plus the
//! embedder settings under `GatewaySettings.spec.embeddings`.
//!
//! The spec types are also the validated form (after [`validate_guardrails`] & co. have run):
//! the gateway builds its runtime objects from them.

use std::collections::HashSet;

use serde::Deserialize;

use crate::units::{ByteSize, Dur};

/// A similarity or threshold in config (compared bitwise so configs stay `Eq`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(transparent)]
pub struct Score(pub f32);

impl PartialEq for Score {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}
impl Eq for Score {}

/// Which requests a policy applies to (empty lists = all).
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selector {
    #[serde(default)]
    pub tenants: Vec<String>,
    #[serde(default)]
    pub models: Vec<String>,
}

impl Selector {
    /// Whether a request of `tenant` (None = anonymous) for public model `model` is selected.
    pub fn matches(&self, tenant: Option<&str>, model: &str) -> bool {
        (self.tenants.is_empty() || tenant.is_some_and(|t| self.tenants.iter().any(|x| x == t)))
            && (self.models.is_empty() || self.models.iter().any(|m| m == model))
    }
}

// ---------------------------------------------------------------- embeddings

#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmbeddingsSpec {
    /// In-process model directory (`config.json`, `tokenizer.json`, `model.safetensors`).
    #[serde(default)]
    pub model_dir: Option<String>,
    /// Or an OpenAI-compatible embeddings endpoint (`http://host:port/v1/embeddings`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The `model` sent to the endpoint.
    #[serde(default)]
    pub model: Option<String>,
    /// Endpoint timeout (default 2s).
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// Encoder threads (in-process; default 1).
    #[serde(default)]
    pub workers: Option<usize>,
    #[serde(default)]
    pub max_batch: Option<usize>,
    #[serde(default)]
    pub max_queue: Option<usize>,
    /// Embeddings kept in the LRU cache by text hash (default 10000).
    #[serde(default)]
    pub cache_entries: Option<usize>,
    /// In-process forward pass: `auto` (AMX-BF16 where the CPU and kernel allow it, candle's
    /// f32 otherwise; the default) or `candle` (always candle's f32).
    #[serde(default)]
    pub forward_pass: Option<String>,
    /// Where corpus vectors (injection corpus, topic and route examples) are kept between
    /// starts, keyed by the model and the texts; default `$TMPDIR/infergate-vectors`, `""` =
    /// off.
    #[serde(default)]
    pub vector_cache_dir: Option<String>,
}

// ---------------------------------------------------------------- guardrails

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GuardrailPolicySpec {
    /// Tenants this applies to (empty = all, anonymous included).
    #[serde(default)]
    pub tenants: Vec<String>,
    /// Public models this applies to (empty = all).
    #[serde(default)]
    pub models: Vec<String>,
    /// Checks on the prompt, in order.
    #[serde(default)]
    pub request: Vec<GuardrailSpec>,
    /// Checks on the answer (streamed answers too).
    #[serde(default)]
    pub response: Vec<GuardrailSpec>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GuardrailSpec {
    pub name: String,
    /// `pii`, `secrets`, `injection`, `patterns`, `topics`, `size` or `webhook`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `block`, `redact`, `flag` or `log`.
    pub action: String,
    /// pii / secrets: the entity types (empty = all).
    #[serde(default)]
    pub entities: Vec<String>,
    /// injection: use the rules (default true).
    #[serde(default)]
    pub rules: Option<bool>,
    /// injection: use embedding similarity to the corpus (default true when an embedder is
    /// configured).
    #[serde(default)]
    pub similarity: Option<bool>,
    /// injection: a corpus file (JSON lines) instead of the built-in one (`method: nearest`).
    #[serde(default)]
    pub corpus: Option<String>,
    /// injection: how the embedding is judged: `classifier` (the built-in trained classifier;
    /// the default) or `nearest` (nearest neighbours in the corpus; the default when `corpus`,
    /// `threshold` or `margin` is set, as before the classifier existed).
    #[serde(default)]
    pub method: Option<String>,
    /// injection, `method: classifier`: attack probability needed (0 to 1; default: the cutoff
    /// trained with the classifier).
    #[serde(default)]
    pub min_score: Option<Score>,
    /// injection (`method: nearest`) / topics: cosine similarity needed.
    #[serde(default)]
    pub threshold: Option<Score>,
    /// injection: lead of the nearest attack over the nearest benign example.
    #[serde(default)]
    pub margin: Option<Score>,
    /// patterns: deny list.
    #[serde(default)]
    pub deny: Vec<PatternEntry>,
    /// patterns: allow list (a text must match one).
    #[serde(default)]
    pub allow: Vec<PatternEntry>,
    /// topics: denied topics with example prompts.
    #[serde(default)]
    pub topics: Vec<TopicEntry>,
    /// size: longest prompt in characters.
    #[serde(default)]
    pub max_chars: Option<usize>,
    /// size: most messages.
    #[serde(default)]
    pub max_messages: Option<usize>,
    /// webhook: where to POST the check.
    #[serde(default)]
    pub url: Option<String>,
    /// webhook: time limit (default 1s).
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// webhook: `open` (let the request through when the webhook fails) or `closed` (block it).
    #[serde(default)]
    pub fail_mode: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatternEntry {
    pub name: String,
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopicEntry {
    pub name: String,
    pub examples: Vec<String>,
}

pub const GUARDRAIL_TYPES: &[&str] = &[
    "pii",
    "secrets",
    "injection",
    "patterns",
    "topics",
    "size",
    "webhook",
];
const RESPONSE_TYPES: &[&str] = &["pii", "secrets", "patterns", "webhook"];
const EMBEDDING_TYPES: &[&str] = &["topics"];

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardrailPolicy {
    pub name: String,
    pub spec: GuardrailPolicySpec,
}

/// Problems with one guardrail policy: (field, message).
pub fn validate_guardrails(
    spec: &GuardrailPolicySpec,
    has_embedder: bool,
) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    let mut names = HashSet::new();
    for (dir, list) in [("request", &spec.request), ("response", &spec.response)] {
        for (i, g) in list.iter().enumerate() {
            let f = |x: &str| format!("spec.{dir}[{i}].{x}");
            if !names.insert((dir, g.name.clone())) {
                errs.push((f("name"), format!("guardrail `{}` is listed twice", g.name)));
            }
            if !GUARDRAIL_TYPES.contains(&g.kind.as_str()) {
                errs.push((
                    f("type"),
                    format!(
                        "unknown guardrail type `{}`; use one of {}",
                        g.kind,
                        GUARDRAIL_TYPES.join(", ")
                    ),
                ));
                continue;
            }
            if dir == "response" && !RESPONSE_TYPES.contains(&g.kind.as_str()) {
                errs.push((
                    f("type"),
                    format!(
                        "`{}` checks prompts only; on responses use {}",
                        g.kind,
                        RESPONSE_TYPES.join(", ")
                    ),
                ));
            }
            if !matches!(g.action.as_str(), "block" | "redact" | "flag" | "log") {
                errs.push((
                    f("action"),
                    format!(
                        "unknown action `{}`; use block, redact, flag or log",
                        g.action
                    ),
                ));
            }
            if g.action == "redact" && !matches!(g.kind.as_str(), "pii" | "secrets" | "patterns") {
                errs.push((
                    f("action"),
                    format!(
                        "a `{}` guardrail has nothing to redact; use block, flag or log",
                        g.kind
                    ),
                ));
            }
            if (EMBEDDING_TYPES.contains(&g.kind.as_str())
                || (g.kind == "injection" && g.similarity == Some(true)))
                && !has_embedder
            {
                errs.push((
                    f("type"),
                    "this guardrail needs embeddings: set GatewaySettings spec.embeddings \
                     (modelDir or endpoint)"
                        .into(),
                ));
            }
            if g.kind == "injection" {
                let nearest_knobs =
                    g.corpus.is_some() || g.threshold.is_some() || g.margin.is_some();
                match g.method.as_deref() {
                    None | Some("nearest") => {}
                    Some("classifier") if nearest_knobs => errs.push((
                        f("method"),
                        "corpus, threshold and margin belong to `method: nearest`; the \
                         classifier is trained on the built-in corpus and its cutoff is minScore"
                            .into(),
                    )),
                    Some("classifier") => {}
                    Some(other) => errs.push((
                        f("method"),
                        format!("unknown injection method `{other}`; use classifier or nearest"),
                    )),
                }
                if let Some(Score(v)) = g.min_score {
                    if g.method.as_deref() == Some("nearest")
                        || (g.method.is_none() && nearest_knobs)
                    {
                        errs.push((
                            f("minScore"),
                            "minScore is the classifier's cutoff; with `method: nearest` use \
                             threshold and margin"
                                .into(),
                        ));
                    } else if !(0.0..=1.0).contains(&v) {
                        errs.push((
                            f("minScore"),
                            format!("{v} is not a probability; use 0 to 1"),
                        ));
                    }
                }
            } else if g.method.is_some() || g.min_score.is_some() {
                errs.push((
                    f(if g.method.is_some() {
                        "method"
                    } else {
                        "minScore"
                    }),
                    "only injection guardrails have a method and minScore".into(),
                ));
            }
            for (k, s) in [("threshold", g.threshold), ("margin", g.margin)] {
                if let Some(Score(v)) = s {
                    if !(-1.0..=1.0).contains(&v) {
                        errs.push((f(k), format!("{v} is not a cosine similarity; use -1 to 1")));
                    }
                }
            }
            match g.kind.as_str() {
                "pii" => {
                    const KNOWN: &[&str] = &[
                        "email",
                        "phone",
                        "payment_card",
                        "iban",
                        "us_ssn",
                        "uk_nino",
                        "es_dni",
                        "ca_sin",
                        "ipv4",
                        "ipv6",
                    ];
                    for (j, e) in g.entities.iter().enumerate() {
                        if !KNOWN.contains(&e.as_str()) {
                            errs.push((
                                f(&format!("entities[{j}]")),
                                format!("unknown PII entity `{e}`; known: {}", KNOWN.join(", ")),
                            ));
                        }
                    }
                }
                "secrets" => {
                    for (j, e) in g.entities.iter().enumerate() {
                        if !matches!(e.as_str(), "api_key" | "private_key" | "jwt") {
                            errs.push((
                                f(&format!("entities[{j}]")),
                                format!(
                                    "unknown secret type `{e}`; known: api_key, private_key, jwt"
                                ),
                            ));
                        }
                    }
                }
                "patterns" => {
                    if g.deny.is_empty() && g.allow.is_empty() {
                        errs.push((f("deny"), "give deny and/or allow patterns".into()));
                    }
                    for (lname, list) in [("deny", &g.deny), ("allow", &g.allow)] {
                        for (j, p) in list.iter().enumerate() {
                            let pf = f(&format!("{lname}[{j}]"));
                            match (&p.regex, p.keywords.is_empty()) {
                                (Some(r), true) => {
                                    if let Err(e) =
                                        regex::RegexBuilder::new(r).size_limit(1 << 20).build()
                                    {
                                        errs.push((
                                            format!("{pf}.regex"),
                                            format!("not a valid regular expression: {e}"),
                                        ));
                                    }
                                }
                                (None, false) => {}
                                _ => errs.push((
                                    pf,
                                    "give either `regex` or `keywords`, not both or neither".into(),
                                )),
                            }
                        }
                    }
                }
                "topics" => {
                    if g.topics.is_empty() {
                        errs.push((f("topics"), "list at least one topic with examples".into()));
                    }
                    for (j, t) in g.topics.iter().enumerate() {
                        if t.examples.is_empty() {
                            errs.push((
                                f(&format!("topics[{j}].examples")),
                                "give a few example prompts for the topic".into(),
                            ));
                        }
                    }
                }
                "size" if g.max_chars.is_none() && g.max_messages.is_none() => {
                    errs.push((f("maxChars"), "set maxChars and/or maxMessages".into()));
                }
                "webhook" => {
                    match &g.url {
                        Some(u) if u.starts_with("http://") => {}
                        Some(u) => errs.push((
                            f("url"),
                            format!(
                                "`{u}` is not an http:// URL (TLS webhooks are not supported yet)"
                            ),
                        )),
                        None => errs.push((f("url"), "a webhook needs a url".into())),
                    }
                    if let Some(m) = &g.fail_mode {
                        if m != "open" && m != "closed" {
                            errs.push((f("failMode"), format!("`{m}`: use open or closed")));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    errs
}

// ---------------------------------------------------------------- cache

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CachePolicySpec {
    /// Tenants this applies to (empty = all, anonymous included).
    #[serde(default)]
    pub tenants: Vec<String>,
    /// Public models this applies to (empty = all).
    #[serde(default)]
    pub models: Vec<String>,
    /// Semantic lookups (needs embeddings); false = exact only. Default true when an embedder
    /// is configured.
    #[serde(default)]
    pub semantic: Option<bool>,
    /// Cosine similarity for a semantic hit.
    #[serde(default)]
    pub threshold: Option<Score>,
    /// Check a semantic hit lexically before serving it (numbers, negation, names and their
    /// order, the kind of answer, a swapped key word). Default true.
    #[serde(default)]
    pub verify: Option<bool>,
    #[serde(default)]
    pub ttl: Option<Dur>,
    #[serde(default)]
    pub max_entries: Option<usize>,
    #[serde(default)]
    pub max_bytes: Option<ByteSize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    pub name: String,
    pub spec: CachePolicySpec,
}

// ---------------------------------------------------------------- semantic router

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SemanticRouterSpec {
    /// The public model name clients use (default `metadata.name`).
    #[serde(default)]
    pub name: Option<String>,
    pub routes: Vec<SemanticRouteSpec>,
    /// The public model used when no route is similar enough.
    pub default: String,
    /// Score a route needs (mean of its 3 best example similarities, plus signal boosts).
    #[serde(default)]
    pub threshold: Option<Score>,
    #[serde(default)]
    pub signals: Option<SignalsSpec>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SemanticRouteSpec {
    pub name: String,
    /// A public model.
    pub model: String,
    pub examples: Vec<String>,
    /// Complexity signals push prompts toward this route.
    #[serde(default)]
    pub complex: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignalsSpec {
    #[serde(default)]
    pub long_prompt_chars: Option<usize>,
    #[serde(default)]
    pub code: Option<bool>,
    #[serde(default)]
    pub reasoning: Option<bool>,
    #[serde(default)]
    pub weight: Option<Score>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemanticRouterConfig {
    /// The public name.
    pub name: String,
    pub spec: SemanticRouterSpec,
}

// ---------------------------------------------------------------- collections

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CollectionSpec {
    /// Tenants this applies to (empty = all, anonymous included).
    #[serde(default)]
    pub tenants: Vec<String>,
    /// Public models this applies to (empty = all).
    #[serde(default)]
    pub models: Vec<String>,
    /// Files or directories (`.md`, `.txt`, `.rst` inside, recursively); relative paths are
    /// relative to the gateway's working directory.
    pub paths: Vec<String>,
    #[serde(default)]
    pub top_k: Option<usize>,
    #[serde(default)]
    pub min_score: Option<Score>,
    #[serde(default)]
    pub chunk_chars: Option<usize>,
    /// Where the embedded index is persisted (default: none).
    #[serde(default)]
    pub index_path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionConfig {
    pub name: String,
    pub spec: CollectionSpec,
}

macro_rules! selectable {
    ($($t:ty),*) => {$(
        impl $t {
            pub fn selector(&self) -> Selector {
                Selector {
                    tenants: self.tenants.clone(),
                    models: self.models.clone(),
                }
            }
            pub fn matches(&self, tenant: Option<&str>, model: &str) -> bool {
                (self.tenants.is_empty()
                    || tenant.is_some_and(|t| self.tenants.iter().any(|x| x == t)))
                    && (self.models.is_empty() || self.models.iter().any(|m| m == model))
            }
        }
    )*};
}
selectable!(GuardrailPolicySpec, CachePolicySpec, CollectionSpec);
