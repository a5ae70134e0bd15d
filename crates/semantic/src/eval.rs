//! Evaluations on the labelled sets kept in `data/`: prompt-injection detection, semantic
//! routing, and the semantic cache on a paraphrase workload. Each returns figures; the CLI
//! (`infergate semantic eval` / `bench`) writes them to `docs/benchmarks/`.
//!
//! The injection detector is scored on `data/injection/eval/` only, and matches against
//! `data/injection/corpus.jsonl.gz` only: the two share no prompt (`data/injection/src/build.py`
//! asserts it).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::cache::{CacheOptions, CachedAnswer, Hit, PartitionKey, SemanticCache};
use crate::embed::{EmbedError, SentenceEncoder};
use crate::guard::injection::{self, Corpus, Injection};
use crate::guard::{Action, Direction, Guardrail, ScanInput};
use crate::router::{Route, SemanticRouter, Signals};
use crate::vector::{dot, Vector};
use crate::verify::Signature;

/// The blind evaluation set (v2): drawn from the v2 pools with a fixed seed before any detector
/// was scored on it; never used for tuning.
pub const BLIND_ATTACKS: &str = include_str!("../data/injection/eval/blind/attacks.jsonl");
pub const BLIND_BENIGN: &str = include_str!("../data/injection/eval/blind/benign.jsonl");
/// The v1 evaluation set: not blind (the rules were widened after reading its misses); kept out
/// of training so its figure stays comparable.
pub const V1_ATTACKS: &str = include_str!("../data/injection/eval/v1/attacks.jsonl");
pub const V1_BENIGN: &str = include_str!("../data/injection/eval/v1/benign.jsonl");
pub const ROUTES: &str = include_str!("../data/routing/routes.json");
pub const ROUTING_EVAL: &str = include_str!("../data/routing/eval.jsonl");
pub const PARAPHRASES: &str = include_str!("../data/cache/paraphrase.jsonl");

#[derive(Deserialize)]
struct Labelled {
    text: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    label: String,
}

fn lines<T: serde::de::DeserializeOwned>(text: &str) -> Vec<T> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn embed(enc: &dyn SentenceEncoder, texts: &[String]) -> Result<Vec<Vector>, EmbedError> {
    let mut out = Vec::with_capacity(texts.len());
    for batch in texts.chunks(16) {
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        out.extend(enc.encode(&refs)?.into_iter().map(Vector::from));
    }
    Ok(out)
}

/// Embed the built-in corpus.
pub fn builtin_corpus(enc: &dyn SentenceEncoder) -> Result<Corpus, EmbedError> {
    let (version, items) =
        injection::parse_corpus(injection::builtin_corpus()).map_err(EmbedError::Model)?;
    let texts: Vec<String> = items.iter().map(|i| i.text.clone()).collect();
    let vecs = embed(enc, &texts)?;
    let mut c = Corpus {
        version,
        attacks: Vec::new(),
        benign: Vec::new(),
    };
    for (i, v) in items.iter().zip(vecs) {
        if i.label == "attack" {
            c.attacks.push((injection::category(&i.category), v));
        } else {
            c.benign.push(v);
        }
    }
    Ok(c)
}

/// The classifier's input for each text of a JSON-lines file of `{"text", "label", "category",
/// ...}` (a `{"version"}` line is skipped): one JSON line per text with its label, category and
/// group, the embedding, the rule hits (0/1 in rule order) and the length in characters —
/// exactly what [`Injection::classify`] computes at run time. `data/injection/src/train.py`
/// reads it.
///
/// With `windows`, each row also lists the windows of a long text (as the gateway cuts them,
/// [`injection::windows`]), each with its text, embedding, rule hits and length.
///
/// With `tokens`, each text's final hidden states go there too (binary, for token-level
/// training): per text — the whole text, then its windows, row by row — a little-endian `u32`
/// token count, then `count x dim` bf16 values (little-endian `u16`, the high half of an f32).
/// The embeddings are then the L2-normalised mean of those rows (the same forward pass).
pub fn injection_features(
    enc: &dyn SentenceEncoder,
    jsonl: &str,
    out: &mut dyn std::io::Write,
    windows: Option<injection::WindowSpec>,
    mut tokens: Option<&mut dyn std::io::Write>,
) -> Result<usize, EmbedError> {
    #[derive(Deserialize)]
    struct Row {
        #[serde(default)]
        text: String,
        #[serde(default)]
        label: String,
        #[serde(default)]
        category: String,
        #[serde(default)]
        group: String,
    }
    let rows: Vec<Row> = lines::<Row>(jsonl)
        .into_iter()
        .filter(|r| !r.text.is_empty())
        .collect();
    let det = Injection::with_method("features", Action::Log, true, injection::Method::None);
    let dim = enc.dim();
    let io = |e: std::io::Error| EmbedError::Model(e.to_string());
    // Embeddings, and the token states behind them when asked for.
    let mut embed = |texts: &[String]| -> Result<Vec<Vector>, EmbedError> {
        let Some(w) = tokens.as_deref_mut() else {
            return embed(enc, texts);
        };
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(16) {
            let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
            let states = enc.token_states(&refs).ok_or_else(|| {
                EmbedError::Model("this encoder does not expose token states".into())
            })??;
            for rows in states {
                let n = rows.len() / dim;
                w.write_all(&(n as u32).to_le_bytes()).map_err(io)?;
                let mut buf = Vec::with_capacity(rows.len() * 2);
                for &x in &rows {
                    buf.extend_from_slice(&bf16_bits(x).to_le_bytes());
                }
                w.write_all(&buf).map_err(io)?;
                out.push(Vector::from(crate::embed::mean_pool(&rows, dim)));
            }
        }
        Ok(out)
    };
    let texts: Vec<String> = rows.iter().map(|r| r.text.clone()).collect();
    let vecs = embed(&texts)?;
    let hits = |t: &str| -> Vec<u8> {
        det.rule_matches(t)
            .iter()
            .map(|m| u8::from(m.is_some()))
            .collect()
    };
    for (r, v) in rows.iter().zip(vecs) {
        let parts: Vec<String> = windows
            .map(|spec| injection::windows(&r.text, spec))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|w| r.text.get(w).map(str::to_string))
            .collect();
        let wvecs = embed(&parts)?;
        let wins: Vec<serde_json::Value> = parts
            .iter()
            .zip(&wvecs)
            .map(|(t, wv)| {
                serde_json::json!({
                    "text": t,
                    "chars": t.chars().count(),
                    "rules": hits(t),
                    "embedding": &wv[..],
                })
            })
            .collect();
        let line = serde_json::json!({
            "text": r.text,
            "label": r.label,
            "category": r.category,
            "group": r.group,
            "chars": r.text.chars().count(),
            "rules": hits(&r.text),
            "embedding": &v[..],
            "windows": wins,
        });
        writeln!(out, "{line}").map_err(|e| EmbedError::Model(e.to_string()))?;
    }
    Ok(rows.len())
}

/// bf16 (round to nearest even) as the high 16 bits of an f32.
fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// A labelled evaluation set, embedded once and scored with several detectors.
pub struct EmbeddedSet {
    pub name: &'static str,
    /// (text, category, is attack, embedding)
    pub items: Vec<(String, String, bool, Vector)>,
    /// Per item: its windows and their embeddings (empty for a text that fits in one window).
    pub windows: Vec<Vec<(String, Vector)>>,
    /// Per item: its token maximum, then its windows' (empty when the encoder cannot give them).
    pub token_max: Vec<Vec<Vector>>,
}

impl EmbeddedSet {
    pub fn attacks(&self) -> usize {
        self.items.iter().filter(|i| i.2).count()
    }
    pub fn benign(&self) -> usize {
        self.items.len() - self.attacks()
    }
}

/// Embed an evaluation set given as attacks and benign JSON lines.
/// With `windows`, long texts are also cut into windows (as the gateway does) and those embedded.
pub fn embed_set(
    enc: &dyn SentenceEncoder,
    name: &'static str,
    attacks: &str,
    benign: &str,
    windows: Option<injection::WindowSpec>,
) -> Result<EmbeddedSet, EmbedError> {
    let mut items = Vec::new();
    let mut wins = Vec::new();
    let mut maxes = Vec::new();
    for (text, is_attack) in [(attacks, true), (benign, false)] {
        let set: Vec<Labelled> = lines(text);
        for l in set {
            let parts: Vec<String> = windows
                .map(|spec| injection::windows(&l.text, spec))
                .unwrap_or_default()
                .into_iter()
                .filter_map(|w| l.text.get(w).map(str::to_string))
                .collect();
            // the text and its windows in one batch, as the gateway embeds them
            let mut batch: Vec<&str> = vec![l.text.as_str()];
            batch.extend(parts.iter().map(String::as_str));
            let (vecs, max): (Vec<Vector>, Vec<Vector>) = match enc.encode_with_token_max(&batch) {
                Some(r) => r?
                    .into_iter()
                    .map(|(v, m)| (Vector::from(v), Vector::from(m)))
                    .unzip(),
                None => (
                    enc.encode(&batch)?.into_iter().map(Vector::from).collect(),
                    Vec::new(),
                ),
            };
            let mut vecs = vecs.into_iter();
            let v = vecs
                .next()
                .ok_or_else(|| EmbedError::Model("the encoder returned no vector".into()))?;
            wins.push(parts.into_iter().zip(vecs).collect());
            maxes.push(max);
            items.push((l.text, l.category, is_attack, v));
        }
    }
    Ok(EmbeddedSet {
        name,
        items,
        windows: wins,
        token_max: maxes,
    })
}

/// Per-category counts.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub total: usize,
    pub flagged: usize,
    pub by_rules: usize,
    pub by_embedding: usize,
}

#[derive(Debug)]
pub struct InjectionReport {
    pub attacks: BTreeMap<String, Counts>,
    pub benign: BTreeMap<String, Counts>,
    /// Eval attacks whose nearest corpus attack has cosine ≥ 0.95 (near-duplicates), when a
    /// corpus was given.
    pub near_duplicates: Option<usize>,
    /// Benign prompts flagged, with the category and what flagged them (for the report).
    pub false_positives: Vec<(String, String, String)>,
    /// Attacks missed.
    pub misses: Vec<(String, String)>,
}

impl InjectionReport {
    pub fn recall(&self) -> f64 {
        let (t, f) = self
            .attacks
            .values()
            .fold((0, 0), |(t, f), c| (t + c.total, f + c.flagged));
        f as f64 / t.max(1) as f64
    }
    pub fn fpr(&self) -> f64 {
        let (t, f) = self
            .benign
            .values()
            .fold((0, 0), |(t, f), c| (t + c.total, f + c.flagged));
        f as f64 / t.max(1) as f64
    }
}

/// Score a detector on an embedded evaluation set (`corpus`: to count near-duplicates).
pub fn evaluate_injection(
    det: &Injection,
    set: &EmbeddedSet,
    corpus: Option<&Corpus>,
) -> InjectionReport {
    let mut report = InjectionReport {
        attacks: BTreeMap::new(),
        benign: BTreeMap::new(),
        near_duplicates: corpus.map(|_| 0),
        false_positives: Vec::new(),
        misses: Vec::new(),
    };
    for (((text, category, is_attack, v), windows), max) in
        set.items.iter().zip(&set.windows).zip(&set.token_max)
    {
        let findings = det.scan(&ScanInput {
            text,
            embedding: Some(v),
            windows,
            token_max: max.first().map(|m| &m[..]),
            window_token_max: max.get(1..).unwrap_or(&[]),
            direction: Direction::Request,
            whole: None,
        });
        let by_rules = findings.iter().any(|f| f.span.is_some());
        let by_emb = findings.iter().any(|f| f.span.is_none());
        let map = if *is_attack {
            &mut report.attacks
        } else {
            &mut report.benign
        };
        let c = map.entry(category.clone()).or_default();
        c.total += 1;
        if !findings.is_empty() {
            c.flagged += 1;
        }
        c.by_rules += usize::from(by_rules);
        c.by_embedding += usize::from(by_emb);
        if *is_attack {
            if let (Some(corpus), Some(n)) = (corpus, report.near_duplicates.as_mut()) {
                let nearest = corpus
                    .attacks
                    .iter()
                    .map(|(_, a)| dot(a, v))
                    .fold(-1.0f32, f32::max);
                if nearest >= 0.95 {
                    *n += 1;
                }
            }
            if findings.is_empty() {
                report.misses.push((category.clone(), text.clone()));
            }
        } else if !findings.is_empty() {
            let why = findings
                .iter()
                .map(|f| match (f.span.is_some(), f.score) {
                    (false, Some(s)) => {
                        format!("{} ({:.2})", f.rule.as_deref().unwrap_or(f.kind), s)
                    }
                    _ => f.rule.as_deref().unwrap_or(f.kind).to_string(),
                })
                .collect::<Vec<_>>()
                .join("; ");
            report
                .false_positives
                .push((category.clone(), text.clone(), why));
        }
    }
    report
}

// ------------------------------------------------------------------ routing

#[derive(Debug)]
pub struct RoutingReport {
    pub total: usize,
    pub correct: usize,
    /// (label, chosen) → count
    pub confusion: BTreeMap<(String, String), usize>,
    pub cost_router: f64,
    pub cost_strong: f64,
    pub price_small: f64,
    pub price_strong: f64,
    pub misrouted: Vec<(String, String)>,
}

/// Route the labelled simple/complex prompts with the example routes in `data/routing`.
/// Cost: each prompt is priced as (its characters / 4 + 300 output tokens) × the chosen model's
/// price per token; `price_small` / `price_strong` are per million tokens.
pub fn evaluate_routing(
    enc: &dyn SentenceEncoder,
    threshold: f32,
    price_small: f64,
    price_strong: f64,
) -> Result<RoutingReport, EmbedError> {
    let routes: BTreeMap<String, Vec<String>> =
        serde_json::from_str(ROUTES).map_err(|e| EmbedError::Model(e.to_string()))?;
    let mut rs = Vec::new();
    for (name, examples) in &routes {
        rs.push(Route {
            name: Arc::from(name.as_str()),
            model: Arc::from(if name == "simple" { "small" } else { "strong" }),
            examples: embed(enc, examples)?,
            complex: name == "complex",
        });
    }
    let router = SemanticRouter::new(rs, Arc::from("strong"), threshold, Signals::default());
    let items: Vec<Labelled> = lines(ROUTING_EVAL);
    let texts: Vec<String> = items.iter().map(|i| i.text.clone()).collect();
    let vecs = embed(enc, &texts)?;
    let mut report = RoutingReport {
        total: 0,
        correct: 0,
        confusion: BTreeMap::new(),
        cost_router: 0.0,
        cost_strong: 0.0,
        price_small,
        price_strong,
        misrouted: Vec::new(),
    };
    for (item, v) in items.iter().zip(vecs) {
        let choice = router.choose(&item.text, &v);
        let chosen = if &*choice.model == "small" {
            "simple"
        } else {
            "complex"
        };
        report.total += 1;
        if chosen == item.label {
            report.correct += 1;
        } else {
            report
                .misrouted
                .push((item.label.clone(), item.text.clone()));
        }
        *report
            .confusion
            .entry((item.label.clone(), chosen.to_string()))
            .or_default() += 1;
        let tokens = item.text.len() as f64 / 4.0 + 300.0;
        let price = if chosen == "simple" {
            price_small
        } else {
            price_strong
        };
        report.cost_router += tokens * price / 1e6;
        report.cost_strong += tokens * price_strong / 1e6;
    }
    Ok(report)
}

// ------------------------------------------------------------------ cache

#[derive(Deserialize)]
struct Group {
    group: usize,
    base: String,
    paraphrases: Vec<String>,
    near_misses: Vec<String>,
}

/// Which groups of the paraphrase set a figure counts. Halves, so that later tuning can use one
/// and report the other. (The verification rules in [`crate::verify`] were written from a
/// reading of the whole set, so neither half is blind to them; the report says so.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    Tune,
    HeldOut,
    All,
}

impl Half {
    fn counts(self, group: usize) -> bool {
        match self {
            Half::Tune => group.is_multiple_of(2),
            Half::HeldOut => !group.is_multiple_of(2),
            Half::All => true,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Half::Tune => "even groups",
            Half::HeldOut => "odd groups",
            Half::All => "all groups",
        }
    }
}

#[derive(Debug, Clone)]
pub struct CacheWorkloadReport {
    pub threshold: f32,
    pub verify: bool,
    pub half: Half,
    pub paraphrase_queries: usize,
    pub paraphrase_hits: usize,
    pub near_miss_queries: usize,
    /// Hits that returned another question's answer.
    pub wrong_hits: usize,
    pub total_hits: usize,
    /// The wrong hits: (query, the cached question it was answered with).
    pub wrong: Vec<(String, String)>,
}

impl CacheWorkloadReport {
    pub fn hit_rate(&self) -> f64 {
        self.paraphrase_hits as f64 / self.paraphrase_queries.max(1) as f64
    }
    pub fn wrong_rate(&self) -> f64 {
        self.wrong_hits as f64 / self.total_hits.max(1) as f64
    }
}

/// The paraphrase workload: store each base question's answer (all 50 in one partition, so
/// every group competes), then ask every paraphrase (a hit is right only with its own base's
/// answer) and every near miss — a question with the same words and a different answer (any hit
/// is wrong). One report per threshold × verification on/off × half.
pub fn cache_workload(
    enc: &dyn SentenceEncoder,
    thresholds: &[f32],
) -> Result<Vec<CacheWorkloadReport>, EmbedError> {
    let groups: Vec<Group> = lines(PARAPHRASES);
    let bases: Vec<String> = groups.iter().map(|g| g.base.clone()).collect();
    let base_vecs = embed(enc, &bases)?;
    let mut queries: Vec<(usize, bool, String)> = Vec::new();
    for g in &groups {
        for p in &g.paraphrases {
            queries.push((g.group, true, p.clone()));
        }
        for n in &g.near_misses {
            queries.push((g.group, false, n.clone()));
        }
    }
    let qtexts: Vec<String> = queries.iter().map(|q| q.2.clone()).collect();
    let qvecs = embed(enc, &qtexts)?;
    let base_of: BTreeMap<String, String> = groups
        .iter()
        .map(|g| (format!("answer {}", g.group), g.base.clone()))
        .collect();
    let key = PartitionKey {
        tenant: "t".into(),
        model: "m".into(),
        fingerprint: 0,
    };
    let mut out = Vec::new();
    for verify in [false, true] {
        for &t in thresholds {
            let cache = SemanticCache::new(
                enc.dim(),
                CacheOptions {
                    threshold: t,
                    verify,
                    ..Default::default()
                },
            );
            for (g, v) in groups.iter().zip(&base_vecs) {
                cache.store(
                    &key,
                    g.group as u64,
                    Some((v, Signature::of(&g.base))),
                    CachedAnswer {
                        chat: true,
                        content: format!("answer {}", g.group),
                        finish_reason: "stop".into(),
                        prompt_tokens: 0,
                        completion_tokens: 0,
                        served_model: String::new(),
                    },
                );
            }
            let answers: Vec<Option<Arc<CachedAnswer>>> = queries
                .iter()
                .zip(&qvecs)
                .map(|((_, _, text), v)| {
                    let sig = Signature::of(text);
                    cache
                        .lookup(&key, u64::MAX - 1, Some((v, &sig)))
                        .map(|(a, h)| {
                            debug_assert!(matches!(h, Hit::Semantic(_)));
                            a
                        })
                })
                .collect();
            for half in [Half::Tune, Half::HeldOut, Half::All] {
                let mut r = CacheWorkloadReport {
                    threshold: t,
                    verify,
                    half,
                    paraphrase_queries: 0,
                    paraphrase_hits: 0,
                    near_miss_queries: 0,
                    wrong_hits: 0,
                    total_hits: 0,
                    wrong: Vec::new(),
                };
                for ((group, is_para, text), ans) in queries.iter().zip(&answers) {
                    if !half.counts(*group) {
                        continue;
                    }
                    if *is_para {
                        r.paraphrase_queries += 1;
                    } else {
                        r.near_miss_queries += 1;
                    }
                    if let Some(ans) = ans {
                        r.total_hits += 1;
                        if *is_para && ans.content == format!("answer {group}") {
                            r.paraphrase_hits += 1;
                        } else {
                            r.wrong_hits += 1;
                            r.wrong.push((
                                text.clone(),
                                base_of.get(&ans.content).cloned().unwrap_or_default(),
                            ));
                        }
                    }
                }
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// Cache lookup latency at `n` entries in one partition (embedding excluded).
#[derive(Debug, Clone, Copy)]
pub struct LookupLatency {
    pub entries: usize,
    pub queries: usize,
    /// Wall-clock time per lookup: what a request waits, including time the thread spent
    /// preempted by other work on the machine.
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// CPU time per lookup (the thread's own clock): the work itself, without preemption.
    pub cpu_p50: Duration,
    pub cpu_p99: Duration,
    /// Lookups that found the stored vector they were perturbed from.
    pub recall: f64,
    /// IVF lists and their median size.
    pub lists: usize,
    pub median_list: usize,
}

/// The calling thread's CPU time (zero where the platform has no per-thread clock).
pub fn thread_cpu_time() -> Duration {
    cpu_clock(true)
}

/// The process's CPU time, all threads (zero where the platform has no such clock): for work
/// that a thread pool does on the caller's behalf.
pub fn process_cpu_time() -> Duration {
    cpu_clock(false)
}

fn cpu_clock(thread: bool) -> Duration {
    #[cfg(unix)]
    {
        use nix::time::{clock_gettime, ClockId};
        let id = if thread {
            ClockId::CLOCK_THREAD_CPUTIME_ID
        } else {
            ClockId::CLOCK_PROCESS_CPUTIME_ID
        };
        clock_gettime(id).map(Duration::from).unwrap_or_default()
    }
    #[cfg(not(unix))]
    {
        let _ = thread;
        Duration::ZERO
    }
}

/// Lookup latency at `n` entries in one partition (embedding excluded): random unit vectors
/// stored, then queried with perturbed copies (cosine ≈ 0.99 to their original).
pub fn cache_lookup_latency(dim: usize, n: usize, queries: usize) -> LookupLatency {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    let mut rng = SmallRng::seed_from_u64(42);
    let unit = |rng: &mut SmallRng| {
        let mut v: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        crate::vector::normalize(&mut v);
        v
    };
    let cache = SemanticCache::new(
        dim,
        CacheOptions {
            threshold: 0.9,
            max_entries: n + 1,
            max_bytes: usize::MAX,
            ..Default::default()
        },
    );
    let key = PartitionKey {
        tenant: "t".into(),
        model: "m".into(),
        fingerprint: 0,
    };
    let text = |i: usize| format!("What is the answer to question number {i}?");
    let mut stored = Vec::with_capacity(n);
    for i in 0..n {
        let v = unit(&mut rng);
        cache.store(
            &key,
            i as u64,
            Some((&v, Signature::of(&text(i)))),
            CachedAnswer {
                chat: true,
                content: format!("answer {i}"),
                finish_reason: "stop".into(),
                prompt_tokens: 0,
                completion_tokens: 0,
                served_model: String::new(),
            },
        );
        stored.push(v);
    }
    let sizes = cache.list_sizes(&key);
    let mut times = Vec::with_capacity(queries);
    let mut cpu = Vec::with_capacity(queries);
    let mut found = 0;
    for q in 0..queries {
        let i = rng.random_range(0..n);
        let mut v = stored[i].clone();
        for x in &mut v {
            *x += rng.random_range(-0.01f32..0.01);
        }
        crate::vector::normalize(&mut v);
        let question = text(i);
        let c = thread_cpu_time();
        let t = Instant::now();
        // The signature is computed per request too: timed with the lookup.
        let sig = Signature::of(&question);
        let hit = cache.lookup(&key, u64::MAX - q as u64, Some((&v, &sig)));
        times.push(t.elapsed());
        cpu.push(thread_cpu_time().saturating_sub(c));
        if hit.is_some_and(|(a, _)| a.content == format!("answer {i}")) {
            found += 1;
        }
    }
    times.sort();
    cpu.sort();
    let pct = |v: &[Duration], p: f64| {
        v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    LookupLatency {
        entries: n,
        queries,
        p50: pct(&times, 0.50),
        p99: pct(&times, 0.99),
        max: times.last().copied().unwrap_or_default(),
        cpu_p50: pct(&cpu, 0.50),
        cpu_p99: pct(&cpu, 0.99),
        recall: found as f64 / queries.max(1) as f64,
        lists: sizes.len(),
        median_list: sizes.get(sizes.len() / 2).copied().unwrap_or(0),
    }
}
