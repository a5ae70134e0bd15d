//! `infergate semantic`: measurements of the payload features on the real model, written to
//! `docs/benchmarks/`.
//!
//! - `bench` → `semantic.md`: embedding latency (64-token text, one core), agreement with the
//!   sentence-transformers reference vectors, semantic cache lookup latency at 100,000 entries,
//!   the paraphrase workload (hit and wrong-hit rates per threshold), semantic routing accuracy
//!   and cost.
//! - `eval` → `guardrails.md`: prompt-injection recall and false positives, overall and per
//!   category, on the labelled evaluation set (kept apart from the detector's corpus).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use infergate_semantic::embed::bert::{Backend, BertEncoder};
use infergate_semantic::embed::SentenceEncoder;
use infergate_semantic::eval;
use infergate_semantic::guard::injection;
use infergate_semantic::guard::Action;

#[derive(clap::Subcommand)]
pub enum SemanticCommand {
    /// Embedding latency, reference agreement, cache and routing figures → semantic.md.
    Bench(Args),
    /// Prompt-injection detection on the labelled sets → guardrails.md.
    Eval(Args),
    /// The injection classifier's training features (embedding, rule hits, length) of a corpus,
    /// as JSON lines for `crates/semantic/data/injection/src/train.py`.
    Features(FeaturesArgs),
}

#[derive(clap::Args)]
pub struct FeaturesArgs {
    /// The model directory (scripts/fetch-model).
    #[arg(long, default_value = "models/all-MiniLM-L6-v2")]
    model_dir: PathBuf,
    /// The corpus (JSON lines); default: the built-in one.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Where the features go (JSON lines).
    #[arg(long)]
    out: PathBuf,
    /// Also cut long texts into windows, `CHARS:STRIDE:MAX` (e.g. `600:300:16`), and write each
    /// window's features; default: the built-in classifier's windows, if it has any; `none`: no
    /// windows.
    #[arg(long)]
    windows: Option<String>,
    /// Also write every text's final hidden states (token-level training data) to this file:
    /// per text and window, a u32 token count then count x 384 bf16 values.
    #[arg(long)]
    tokens: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct Args {
    /// The model directory (scripts/fetch-model).
    #[arg(long, default_value = "models/all-MiniLM-L6-v2")]
    model_dir: PathBuf,
    /// Where the Markdown report goes.
    #[arg(long, default_value = "docs/benchmarks")]
    out: PathBuf,
    /// Latency samples.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// eval: score this classifier file instead of the built-in one (to check a retrained
    /// classifier before rebuilding).
    #[arg(long)]
    classifier: Option<PathBuf>,
}

pub fn run(cmd: SemanticCommand) -> anyhow::Result<()> {
    match cmd {
        SemanticCommand::Bench(a) => bench(&a),
        SemanticCommand::Eval(a) => eval_guardrails(&a),
        SemanticCommand::Features(a) => features(&a),
    }
}

fn features(a: &FeaturesArgs) -> anyhow::Result<()> {
    let enc = load(&a.model_dir)?;
    let text = match &a.input {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?,
        None => injection::builtin_corpus().to_string(),
    };
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&a.out).with_context(|| format!("{}", a.out.display()))?,
    );
    let windows = match a.windows.as_deref() {
        Some("none") => None,
        Some(spec) => {
            let n: Vec<usize> = spec
                .split(':')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()
                .filter(|n: &Vec<usize>| n.len() == 3 && n.iter().all(|x| *x > 0))
                .ok_or_else(|| {
                    anyhow::anyhow!("--windows takes CHARS:STRIDE:MAX (e.g. 600:300:16) or none")
                })?;
            Some(injection::WindowSpec {
                chars: n[0],
                stride: n[1],
                max: n[2],
            })
        }
        None => {
            injection::Classifier::builtin()
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .windows
        }
    };
    let mut tokens = match &a.tokens {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("{}", p.display()))?,
        )),
        None => None,
    };
    let n = eval::injection_features(
        &enc,
        &text,
        &mut out,
        windows,
        tokens.as_mut().map(|w| w as &mut dyn std::io::Write),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(w) = &mut tokens {
        std::io::Write::flush(w)?;
    }
    std::io::Write::flush(&mut out)?;
    eprintln!("{n} feature rows written to {}", a.out.display());
    Ok(())
}

fn load(dir: &std::path::Path) -> anyhow::Result<BertEncoder> {
    BertEncoder::load(dir).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Logical CPUs of the machine (not only those this process is pinned to).
fn machine_cpus() -> usize {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| s.lines().filter(|l| l.starts_with("processor")).count())
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(0, |n| n.get()))
}

/// The CPU's model name (`?` where /proc is absent).
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

/// Latency of `enc` on one text over `samples` runs after 10 warm-up runs: sorted wall and
/// CPU (process) times.
fn time_one(
    enc: &BertEncoder,
    text: &str,
    samples: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    for _ in 0..10 {
        enc.encode(&[text]).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let mut times = Vec::with_capacity(samples);
    let mut cpu = Vec::with_capacity(samples);
    for _ in 0..samples {
        let c = eval::process_cpu_time();
        let t = Instant::now();
        enc.encode(&[text]).map_err(|e| anyhow::anyhow!("{e}"))?;
        times.push(t.elapsed());
        cpu.push(eval::process_cpu_time().saturating_sub(c));
    }
    times.sort();
    cpu.sort();
    Ok((times, cpu))
}

/// Wall and CPU time per text of `rounds` batches of 16 copies of `text`.
fn time_batch16(
    enc: &BertEncoder,
    text: &str,
    rounds: u32,
) -> anyhow::Result<(Duration, Duration)> {
    let batch: Vec<&str> = std::iter::repeat_n(text, 16).collect();
    enc.encode(&batch).map_err(|e| anyhow::anyhow!("{e}"))?;
    let c = eval::process_cpu_time();
    let t = Instant::now();
    for _ in 0..rounds {
        enc.encode(&batch).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok((
        t.elapsed() / (rounds * 16),
        eval::process_cpu_time().saturating_sub(c) / (rounds * 16),
    ))
}

fn latency_table(times: &[Duration], cpu: &[Duration]) -> String {
    format!(
        "| | p50 | p90 | p99 | max |\n|---|---:|---:|---:|---:|\n\
         | wall | {} ms | {} ms | {} ms | {} ms |\n\
         | CPU | {} ms | {} ms | {} ms | {} ms |\n",
        ms(pct(times, 0.5)),
        ms(pct(times, 0.9)),
        ms(pct(times, 0.99)),
        ms(*times.last().unwrap_or(&Duration::ZERO)),
        ms(pct(cpu, 0.5)),
        ms(pct(cpu, 0.9)),
        ms(pct(cpu, 0.99)),
        ms(*cpu.last().unwrap_or(&Duration::ZERO))
    )
}

/// The 1-minute load average (`?` where /proc is absent): printed beside every latency.
fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

const COMMAND: &str = "RAYON_NUM_THREADS=1 taskset -c 1 target/release/infergate semantic";

#[derive(serde::Deserialize)]
struct Reference {
    generator: String,
    items: Vec<RefItem>,
}

#[derive(serde::Deserialize)]
struct RefItem {
    text: String,
    tokens: usize,
    vector: Vec<f32>,
}

fn bench(a: &Args) -> anyhow::Result<()> {
    let enc = load(&a.model_dir)?;
    let mut md = String::new();
    let _ = writeln!(md, "# Semantic features: measured\n");
    let _ = writeln!(
        md,
        "Produced by `{COMMAND} bench --model-dir {}` (release build; one core: \
         `RAYON_NUM_THREADS=1`, pinned with `taskset`). Machine: {} logical CPUs \
         (shared with other work), `{}`, {}.\n",
        a.model_dir.display(),
        machine_cpus(),
        std::env::consts::ARCH,
        cpu_model()
    );
    // The fallback forward pass, measured beside the fast one when they differ.
    let fallback = if enc.backend_name() == "candle-f32" {
        None
    } else {
        Some(
            BertEncoder::load_with(&a.model_dir, Backend::Candle)
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        )
    };

    // reference agreement
    let reference: Reference = serde_json::from_str(include_str!(
        "../../semantic/data/reference/minilm-l6-v2.json"
    ))?;
    let texts: Vec<&str> = reference.items.iter().map(|i| i.text.as_str()).collect();
    let ours = enc.encode(&texts).map_err(|e| anyhow::anyhow!("{e}"))?;
    let theirs = match &fallback {
        Some(f) => Some(f.encode(&texts).map_err(|e| anyhow::anyhow!("{e}"))?),
        None => None,
    };
    let mut worst = 1.0f32;
    let mut worst_fallback = 1.0f32;
    let _ = writeln!(md, "## Agreement with sentence-transformers\n");
    let _ = writeln!(
        md,
        "{} sentences, reference vectors from {} (`crates/semantic/data/reference/`), embedded \
         as one batch with the `{}` forward pass{}. Target: cosine ≥ 0.999 for each.\n",
        reference.items.len(),
        reference.generator,
        enc.backend_name(),
        if fallback.is_some() {
            " (and, last column, with the `candle-f32` fallback)"
        } else {
            ""
        }
    );
    if fallback.is_some() {
        let _ = writeln!(
            md,
            "| tokens | cosine | cosine (candle-f32) | text |\n|---:|---:|---:|---|"
        );
    } else {
        let _ = writeln!(md, "| tokens | cosine | text |\n|---:|---:|---|");
    }
    for (i, (item, v)) in reference.items.iter().zip(&ours).enumerate() {
        let c = infergate_semantic::vector::cosine(v, &item.vector);
        worst = worst.min(c);
        let mut t: String = item.text.chars().take(60).collect();
        if item.text.chars().count() > 60 {
            t.push('…');
        }
        let t = t.replace('|', "\\|");
        if let Some(theirs) = &theirs {
            let cf = infergate_semantic::vector::cosine(&theirs[i], &item.vector);
            worst_fallback = worst_fallback.min(cf);
            let _ = writeln!(md, "| {} | {c:.6} | {cf:.6} | {t} |", item.tokens);
        } else {
            let _ = writeln!(md, "| {} | {c:.6} | {t} |", item.tokens);
        }
    }
    if fallback.is_some() {
        let _ = writeln!(
            md,
            "\n**Lowest cosine: {worst:.6}** ({}); {worst_fallback:.6} (candle-f32).\n",
            enc.backend_name()
        );
    } else {
        let _ = writeln!(md, "\n**Lowest cosine: {worst:.6}.**\n");
    }

    // latency
    let text64 = reference
        .items
        .iter()
        .find(|i| (60..=70).contains(&i.tokens))
        .map(|i| i.text.clone())
        .context("no ~64-token reference sentence")?;
    let tokens = enc.count_tokens(&text64).unwrap_or(0);
    let load_before = load_avg();
    let (times, cpu) = time_one(&enc, &text64, a.samples)?;
    let load_after = load_avg();
    let _ = writeln!(md, "## Embedding latency (one text, one core)\n");
    let _ = writeln!(
        md,
        "Forward pass `{}`{}. A {tokens}-token text (tokenization included), {} runs after 10 \
         warm-up runs. Wall = elapsed time, including time preempted by other processes; CPU = \
         the process's CPU time for the call. Load average (1 min) {load_before} before, \
         {load_after} after, on {} CPUs. Target: p50 ≤ 10 ms.\n",
        enc.backend_name(),
        match enc.backend_name() {
            "amx-bf16" => {
                " (linear layers as bf16 AMX tile multiplies with f32 accumulation, the rest in \
                 f32 on AVX-512; chosen automatically where the CPU has AMX-BF16)"
            }
            "avx512-bf16" => {
                " (linear layers as AVX512-BF16 dot products with f32 accumulation, the rest in \
                 f32 on AVX-512; chosen automatically where the CPU has AVX512-BF16 but no \
                 AMX)"
            }
            _ => " (candle, f32)",
        },
        a.samples,
        machine_cpus(),
    );
    let _ = writeln!(md, "{}", latency_table(&times, &cpu));
    let (wall16, cpu16) = time_batch16(&enc, &text64, 10)?;
    let _ = writeln!(
        md,
        "Coalesced batch of 16 such texts (one call, 1,024 tokens; 10 batches): {} ms wall, {} \
         ms CPU per text — against {} ms CPU p50 alone.\n",
        ms(wall16),
        ms(cpu16),
        ms(pct(&cpu, 0.5)),
    );
    if let Some(f) = &fallback {
        let samples = (a.samples / 4).max(10);
        let load_before = load_avg();
        let (times, cpu) = time_one(f, &text64, samples)?;
        let (wall16, cpu16) = time_batch16(f, &text64, 3)?;
        let _ = writeln!(
            md,
            "The `candle-f32` fallback (what a CPU without AMX-BF16 or AVX512-BF16 runs), same \
             text and machine, {samples} runs; load average {load_before} before, {} after:\n",
            load_avg()
        );
        let _ = writeln!(md, "{}", latency_table(&times, &cpu));
        let _ = writeln!(
            md,
            "Its batch of 16: {} ms wall, {} ms CPU per text.\n",
            ms(wall16),
            ms(cpu16)
        );
    }

    // cache lookup latency
    let load_before = load_avg();
    let l = eval::cache_lookup_latency(384, 100_000, 5_000);
    let load_after = load_avg();
    let _ = writeln!(md, "## Semantic cache lookup at 100,000 entries\n");
    let _ = writeln!(
        md,
        "One partition holding {} answers with 384-dimensional random unit vectors (IVF index: \
         {} lists, median {} vectors each, nprobe 12; list-major contiguous storage, int8 scan \
         then exact f32 re-rank), {} lookups of perturbed stored vectors (cosine ≈ 0.99); \
         embedding excluded. Wall = what the request waits, including time this thread was \
         preempted by other processes; CPU = the thread's own CPU time for the lookup. Load \
         average (1 min) {load_before} before, {load_after} after, on {} CPUs. Target: p99 ≤ 2 \
         ms.\n",
        l.entries,
        l.lists,
        l.median_list,
        l.queries,
        machine_cpus(),
    );
    let _ = writeln!(
        md,
        "| wall p50 | wall p99 | wall max | CPU p50 | CPU p99 | found its vector |\n\
         |---:|---:|---:|---:|---:|---:|\n\
         | {} ms | {} ms | {} ms | {} ms | {} ms | {:.1}% |\n",
        ms(l.p50),
        ms(l.p99),
        ms(l.max),
        ms(l.cpu_p50),
        ms(l.cpu_p99),
        l.recall * 100.0
    );

    // paraphrase workload
    let thresholds = [0.75, 0.80, 0.85, 0.88, 0.90, 0.92, 0.95];
    let default_t = infergate_semantic::cache::DEFAULT_THRESHOLD;
    let reports = eval::cache_workload(&enc, &thresholds).map_err(|e| anyhow::anyhow!("{e}"))?;
    let _ = writeln!(md, "## Paraphrase workload\n");
    let _ = writeln!(
        md,
        "`crates/semantic/data/cache/paraphrase.jsonl`: 50 questions are cached in one partition; \
         then each of their 100 paraphrases is asked (a hit is right only with its own question's \
         answer) and 50 near misses — questions with the same words and a different answer \
         (\"Celsius to Fahrenheit\" vs \"Fahrenheit to Celsius\"; any hit is wrong). Wrong-hit \
         rate = wrong hits / all hits. *Verified*: a semantic candidate is served only if it \
         passes the lexical check of `crates/semantic/src/verify.rs` (numbers, negation, names \
         and their order, the kind of answer asked for, a swapped key word; the next candidates \
         above the threshold are tried when the best fails); it is on by default (`verify: \
         true`). Target: ≤ 1% wrong hits at the default threshold ({default_t}).\n"
    );
    let _ = writeln!(
        md,
        "| threshold | verified | paraphrase hit rate | hits | wrong hits | wrong-hit rate |\n\
         |---:|:---:|---:|---:|---:|---:|"
    );
    for verify in [true, false] {
        for r in reports
            .iter()
            .filter(|r| r.verify == verify && r.half == eval::Half::All)
        {
            let mark = if (r.threshold - default_t).abs() < 1e-6 {
                " (default)"
            } else {
                ""
            };
            let _ = writeln!(
                md,
                "| {:.2}{mark} | {} | {:.1}% ({}/{}) | {} | {} | {:.1}% |",
                r.threshold,
                if verify { "yes" } else { "no" },
                r.hit_rate() * 100.0,
                r.paraphrase_hits,
                r.paraphrase_queries,
                r.total_hits,
                r.wrong_hits,
                r.wrong_rate() * 100.0
            );
        }
    }
    let _ = writeln!(
        md,
        "\nBy half, verified, at the default threshold (the verification rules were written \
         after reading the whole set, both halves — neither half is a blind test of them; the \
         split is there for any later tuning, which must use one half and report the other):\n\n\
         | groups | paraphrase hit rate | hits | wrong hits | wrong-hit rate |\n\
         |---|---:|---:|---:|---:|"
    );
    for r in reports
        .iter()
        .filter(|r| r.verify && r.half != eval::Half::All && (r.threshold - default_t).abs() < 1e-6)
    {
        let _ = writeln!(
            md,
            "| {} | {:.1}% ({}/{}) | {} | {} | {:.1}% |",
            r.half.label(),
            r.hit_rate() * 100.0,
            r.paraphrase_hits,
            r.paraphrase_queries,
            r.total_hits,
            r.wrong_hits,
            r.wrong_rate() * 100.0
        );
    }
    if let Some(r) = reports
        .iter()
        .find(|r| r.verify && r.half == eval::Half::All && (r.threshold - default_t).abs() < 1e-6)
    {
        if !r.wrong.is_empty() {
            let _ = writeln!(md, "\nWrong hits at the default threshold, verified:\n");
            for (q, base) in &r.wrong {
                let _ = writeln!(md, "- \"{q}\" answered with the answer to \"{base}\"");
            }
        }
    }
    let _ = writeln!(md);

    // routing
    let (small, strong) = (0.15, 2.50);
    let r = eval::evaluate_routing(
        &enc,
        infergate_gateway::stages::runtime::DEFAULT_ROUTE_THRESHOLD,
        small,
        strong,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let _ = writeln!(md, "## Semantic routing\n");
    let _ = writeln!(
        md,
        "Routes `simple` → small model and `complex` → strong model, each with 25 example \
         prompts (`data/routing/routes.json`); complexity signals (length, code, reasoning cues) \
         boost `complex`; default strong. Scored on 120 other labelled prompts \
         (`data/routing/eval.jsonl`). Target: accuracy ≥ 90%.\n"
    );
    let _ = writeln!(
        md,
        "**Accuracy: {:.1}% ({}/{}).**\n",
        r.correct as f64 * 100.0 / r.total.max(1) as f64,
        r.correct,
        r.total
    );
    let _ = writeln!(md, "| label → chosen | prompts |\n|---|---:|");
    for ((l, c), n) in &r.confusion {
        let _ = writeln!(md, "| {l} → {c} | {n} |");
    }
    let _ = writeln!(
        md,
        "\nCost, pricing each prompt as (characters/4 + 300 output tokens) at ${small}/M tokens \
         (small) and ${strong}/M (strong): router ${:.4} vs always-strong ${:.4} — **{:.1}% \
         saved**.\n",
        r.cost_router,
        r.cost_strong,
        (1.0 - r.cost_router / r.cost_strong.max(1e-12)) * 100.0
    );
    let _ = writeln!(
        md,
        "Route threshold sweep (same set; the default is marked — it only separates \"like no \
         route\" from \"like one\", the best route wins on its own):\n\n| threshold | accuracy \
         |\n|---:|---:|"
    );
    for t in [0.0f32, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35] {
        let sweep =
            eval::evaluate_routing(&enc, t, small, strong).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mark = if (t - infergate_gateway::stages::runtime::DEFAULT_ROUTE_THRESHOLD).abs() < 1e-6
        {
            " (default)"
        } else {
            ""
        };
        let _ = writeln!(
            md,
            "| {t}{mark} | {:.1}% |",
            sweep.correct as f64 * 100.0 / sweep.total.max(1) as f64
        );
    }
    let _ = writeln!(md);
    if !r.misrouted.is_empty() {
        let _ = writeln!(md, "Misrouted:\n");
        for (l, t) in &r.misrouted {
            let _ = writeln!(md, "- ({l}) {t}");
        }
        let _ = writeln!(md);
    }
    std::fs::create_dir_all(&a.out)?;
    let path = a.out.join("semantic.md");
    std::fs::write(&path, md)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn pct1(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn rate(c: &eval::Counts) -> String {
    pct1(c.flagged as f64 / c.total.max(1) as f64)
}

/// Per-category tables and the overall line of one report.
fn write_report(md: &mut String, r: &eval::InjectionReport, embedding_col: &str) {
    let _ = writeln!(
        md,
        "**Overall: recall {}, false positives {}.**\n",
        pct1(r.recall()),
        pct1(r.fpr())
    );
    let _ = writeln!(
        md,
        "| attack category | prompts | detected | recall | by rules | {embedding_col} |\n|---|---:|---:|---:|---:|---:|"
    );
    for (cat, c) in &r.attacks {
        let _ = writeln!(
            md,
            "| {cat} | {} | {} | {} | {} | {} |",
            c.total,
            c.flagged,
            rate(c),
            c.by_rules,
            c.by_embedding
        );
    }
    let _ = writeln!(
        md,
        "\n| benign category | prompts | flagged | false-positive rate |\n|---|---:|---:|---:|"
    );
    for (cat, c) in &r.benign {
        let _ = writeln!(md, "| {cat} | {} | {} | {} |", c.total, c.flagged, rate(c));
    }
    let _ = writeln!(md);
}

fn eval_guardrails(a: &Args) -> anyhow::Result<()> {
    let err = |e: infergate_semantic::embed::EmbedError| anyhow::anyhow!("{e}");
    let enc = load(&a.model_dir)?;
    let weights = match &a.classifier {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?,
        None => injection::BUILTIN_CLASSIFIER.to_string(),
    };
    let classifier =
        Arc::new(injection::Classifier::parse(&weights).map_err(|e| anyhow::anyhow!("{e}"))?);
    let meta: serde_json::Value = serde_json::from_str(&weights)?;
    eprintln!("embedding the corpus and the evaluation sets ...");
    let corpus = Arc::new(eval::builtin_corpus(&enc).map_err(err)?);
    let blind = eval::embed_set(
        &enc,
        "blind",
        eval::BLIND_ATTACKS,
        eval::BLIND_BENIGN,
        classifier.windows,
    )
    .map_err(err)?;
    let v1 = eval::embed_set(
        &enc,
        "v1",
        eval::V1_ATTACKS,
        eval::V1_BENIGN,
        classifier.windows,
    )
    .map_err(err)?;
    let min = classifier.threshold;
    let clf = |m: f32| {
        injection::Injection::with_method(
            "injection",
            Action::Block,
            true,
            injection::Method::Classifier {
                classifier: classifier.clone(),
                min_score: m,
            },
        )
    };
    let (t, mg) = (injection::DEFAULT_THRESHOLD, injection::DEFAULT_MARGIN);
    let nearest = injection::Injection::new(
        "injection",
        Action::Block,
        true,
        Some(corpus.clone()),
        t,
        mg,
    );
    let rules_only = injection::Injection::new("injection", Action::Block, true, None, t, mg);

    let r = eval::evaluate_injection(&clf(min), &blind, Some(&corpus));
    let mut md = String::new();
    let _ = writeln!(md, "# Guardrails: measured\n");
    let _ = writeln!(
        md,
        "Produced by `target/release/infergate semantic eval --model-dir {}{}` (accuracy figures \
         do not depend on CPU pinning).\n",
        a.model_dir.display(),
        a.classifier
            .as_ref()
            .map(|p| format!(" --classifier {}", p.display()))
            .unwrap_or_default()
    );
    let _ = writeln!(md, "## Prompt injection and jailbreaks\n");
    let met = r.recall() >= 0.9 && r.fpr() <= 0.05;
    let _ = writeln!(
        md,
        "**Blind set, default cutoff: recall {} at {} false positives — the target (recall ≥ 90% \
         at ≤ 5% false positives) is {}.**\n",
        pct1(r.recall()),
        pct1(r.fpr()),
        if met { "met overall" } else { "NOT met" }
    );
    // what kind of model the classifier is, and the script that trains that kind
    let (model_kind, trainer) = if classifier.hidden.is_empty() {
        ("a multinomial logistic regression".to_string(), "train.py")
    } else {
        (
            format!(
                "a neural network (one hidden layer of {} ReLU units, softmax over the classes)",
                classifier.hidden.len()
            ),
            "train_mlp.py",
        )
    };
    let lexical = classifier
        .lexical
        .as_ref()
        .map(|l| {
            format!(
                ", its class probabilities mixed {:.0}/{:.0} with those of a linear model over \
                 the prompt's character {}- to {}-grams (2^{} hashed buckets)",
                100.0 * (1.0 - l.mix),
                100.0 * l.mix,
                l.ngrams.0,
                l.ngrams.1,
                l.bits
            )
        })
        .unwrap_or_default();
    let _ = writeln!(
        md,
        "Detector (the default, `method: classifier`): the rules plus classifier `{}` — {} \
         over the all-MiniLM-L6-v2 embedding of the prompt, the \
         hits of the {} rules it was trained with on it and its length{lexical}{} — trained by \
         `crates/semantic/data/injection/src/{}` on corpus `{}` ({} attacks, {} benign), \
         cutoff `minScore` {min} (the default, chosen on held-out training data: {}){}. Target: \
         recall ≥ 90% at ≤ 5% false positives, with the same figures reported per category; \
         we hold each category to it as well, and the tables show which fall short.\n",
        classifier.version,
        model_kind,
        classifier.rules.len(),
        classifier
            .windows
            .map(|w| format!(
                "; a prompt longer than {} characters is also scored in overlapping windows of {} \
                 characters (stride {}, at most {}), and its score is the highest",
                w.chars, w.chars, w.stride, w.max
            ))
            .unwrap_or_default(),
        trainer,
        corpus.version,
        corpus.attacks.len(),
        corpus.benign.len(),
        meta.get("selection")
            .and_then(|s| s.get("rule"))
            .and_then(|s| s.as_str())
            .unwrap_or("see classifier.json"),
        {
            let later: Vec<&str> = injection::rule_names()
                .filter(|n| !classifier.rules.iter().any(|r| r == n))
                .collect();
            if later.is_empty() {
                String::new()
            } else {
                format!(
                    "; the rules added after it was trained ({}) flag on their own",
                    later
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        },
    );
    let _ = writeln!(md, "### Blind evaluation set\n");
    let _ = writeln!(
        md,
        "`crates/semantic/data/injection/eval/blind/` ({} attacks, {} benign): drawn from the v2 \
         pools by `build.py` with a fixed seed, whole groups at a time, and committed before any \
         detector was scored on it; no item or group of it is in the training corpus, and nothing \
         was tuned on it. {} of its attacks have a training attack at cosine ≥ 0.95.\n",
        blind.attacks(),
        blind.benign(),
        r.near_duplicates.unwrap_or(0)
    );
    write_report(&mut md, &r, "by classifier");

    // Sweep of the classifier's cutoff, per category.
    let cats: Vec<String> = r.attacks.keys().cloned().collect();
    let bcats: Vec<String> = r.benign.keys().cloned().collect();
    let _ = writeln!(
        md,
        "Sweep of `minScore` on the blind set (recall per attack category, false positives per \
         benign category; the default is marked):\n"
    );
    let mut head = String::from("| minScore | recall | FP |");
    let mut rule = String::from("|---:|---:|---:|");
    for c in cats.iter().chain(&bcats) {
        let _ = write!(head, " {c} |");
        rule.push_str("---:|");
    }
    let _ = writeln!(md, "{head}\n{rule}");
    let mut sweep: Vec<f32> = vec![0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, min];
    sweep.sort_by(f32::total_cmp);
    sweep.dedup_by(|x, y| (*x - *y).abs() < 1e-6);
    for m in sweep {
        let s = eval::evaluate_injection(&clf(m), &blind, None);
        let mark = if (m - min).abs() < 1e-6 {
            " (default)"
        } else {
            ""
        };
        let mut row = format!("| {m}{mark} | {} | {} |", pct1(s.recall()), pct1(s.fpr()));
        for c in &cats {
            let _ = write!(row, " {} |", s.attacks.get(c).map_or("-".into(), rate));
        }
        for c in &bcats {
            let _ = write!(row, " {} |", s.benign.get(c).map_or("-".into(), rate));
        }
        let _ = writeln!(md, "{row}");
    }
    let _ = writeln!(md);

    let _ = writeln!(md, "Other detectors on the blind set, for comparison:\n");
    let _ = writeln!(
        md,
        "| detector | recall | false positives |\n|---|---:|---:|"
    );
    let ro = eval::evaluate_injection(&rules_only, &blind, None);
    let _ = writeln!(
        md,
        "| rules only | {} | {} |",
        pct1(ro.recall()),
        pct1(ro.fpr())
    );
    for (tt, mm) in [(0.5, 0.04), (t, mg), (0.7, 0.04)] {
        let n = injection::Injection::new(
            "injection",
            Action::Block,
            true,
            Some(corpus.clone()),
            tt,
            mm,
        );
        let s = eval::evaluate_injection(&n, &blind, None);
        let _ = writeln!(
            md,
            "| rules + nearest neighbour (v1 method, corpus {}), threshold {tt}, margin {mm} | {} | {} |",
            corpus.version,
            pct1(s.recall()),
            pct1(s.fpr())
        );
    }
    let _ = writeln!(md);

    // The blind set's misses and false positives are deliberately not listed: reading them
    // and changing the detector would make the set no longer blind.

    let _ = writeln!(md, "### The v1 evaluation set (not blind)\n");
    let _ = writeln!(
        md,
        "`crates/semantic/data/injection/eval/v1/` ({} attacks, {} benign). The rules were \
         widened after reading which of its prompts the first detector missed, so figures on it \
         are optimistic for the rules; it is in neither the training corpus nor the blind set. \
         Before the classifier, rules + nearest neighbour over corpus v1 scored recall 86.2% at \
         1.0% false positives here.\n",
        v1.attacks(),
        v1.benign()
    );
    let rv1 = eval::evaluate_injection(&clf(min), &v1, None);
    write_report(&mut md, &rv1, "by classifier");
    let nv1 = eval::evaluate_injection(&nearest, &v1, None);
    let _ = writeln!(
        md,
        "Rules + nearest neighbour (corpus {}, threshold {t}, margin {mg}) on the v1 set: recall \
         {}, false positives {}.\n",
        corpus.version,
        pct1(nv1.recall()),
        pct1(nv1.fpr())
    );

    if let Some(spec) = classifier.windows {
        window_cost(&mut md, &enc, spec)?;
    }

    if let Some(sel) = meta.get("selection") {
        let _ = writeln!(md, "### Model selection (training data only)\n");
        let _ = writeln!(
            md,
            "From `classifier.json`, written by `train.py` (or `train_mlp.py`): the training corpus is split by group \
             into 5 folds; each candidate is trained on four and scored on the fifth, and the \
             choice is made on those out-of-fold scores. The blind set plays no part.\n"
        );
        let _ = writeln!(md, "```json\n{}\n```\n", serde_json::to_string_pretty(sel)?);
    }

    std::fs::create_dir_all(&a.out)?;
    let path = a.out.join("guardrails.md");
    std::fs::write(&path, md)?;
    eprintln!(
        "blind set: recall {}, false positives {}; v1 set: recall {}, false positives {}; wrote {}",
        pct1(r.recall()),
        pct1(r.fpr()),
        pct1(rv1.recall()),
        pct1(rv1.fpr()),
        path.display()
    );
    Ok(())
}

/// Embedding time of one long prompt with and without its windows (the gateway embeds the
/// message and its windows in one batch), on documents of the training corpus joined.
fn window_cost(
    md: &mut String,
    enc: &BertEncoder,
    spec: injection::WindowSpec,
) -> anyhow::Result<()> {
    let (_, items) =
        injection::parse_corpus(injection::builtin_corpus()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let docs: String = items
        .iter()
        .filter(|i| i.label == "benign" && i.category == "documents")
        .map(|i| i.text.as_str())
        .collect::<Vec<_>>()
        .join("\n\n");
    let _ = writeln!(md, "### What windows cost\n");
    let _ = writeln!(
        md,
        "Embedding time of one prompt (benign documents of the training corpus, cut to the \
         length shown), in process on this machine ({}), p50 of 15 runs: the message alone (what \
         the gateway embedded before windows) and the message plus its windows in one batch (what \
         it embeds now). Window spec: {} characters, stride {}, at most {} windows. Load average \
         at the start: {}.\n",
        cpu_model(),
        spec.chars,
        spec.stride,
        spec.max,
        load_avg()
    );
    let _ = writeln!(
        md,
        "| prompt (characters) | tokens read whole | windows | message alone p50 (ms) | with windows p50 (ms) | added (ms) |\n|---:|---:|---:|---:|---:|---:|"
    );
    for n in [800usize, 2_000, 4_000, 8_000, 16_000] {
        let cut = docs.char_indices().nth(n).map_or(docs.len(), |(i, _)| i);
        let text = &docs[..cut];
        let parts: Vec<&str> = injection::windows(text, spec)
            .into_iter()
            .filter_map(|r| text.get(r))
            .collect();
        let mut batch = vec![text];
        batch.extend(&parts);
        let time = |texts: &[&str]| -> anyhow::Result<Duration> {
            let mut t = Vec::new();
            for _ in 0..15 {
                let start = Instant::now();
                enc.encode(texts).map_err(|e| anyhow::anyhow!("{e}"))?;
                t.push(start.elapsed());
            }
            t.sort();
            Ok(t[t.len() / 2])
        };
        let alone = time(&[text])?;
        let with = time(&batch)?;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} |",
            text.chars().count(),
            enc.count_tokens(text).unwrap_or(0),
            parts.len(),
            ms(alone),
            ms(with),
            ms(with.saturating_sub(alone))
        );
    }
    let _ = writeln!(md);
    Ok(())
}
