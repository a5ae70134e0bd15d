//! One scheduling decision over 64 endpoints: filters, the anchor's default scorers (queue 2,
//! KV cache 2, approximate prefix 3) and the max-score picker, for a chat request with a long
//! shared system prompt whose prefix the index knows — plus the precise-prefix profile (the
//! prompt tokenized and matched against reported KV blocks).
//!
//! `cargo bench -p infergate-scheduler --bench decision` runs criterion (mean and spread), then
//! times 20,000 single decisions of each profile and writes their percentiles, next to
//! criterion's estimates (read back from its `estimates.json`), to
//! `docs/benchmarks/scheduling-decision.md` (the target is p99 ≤ 200 µs).

#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, Criterion};
use infergate_control::picker::{PickerConfig, PluginInstance, PluginKind, PrecisePrefixParams};
use infergate_control::EndpointSpec;
use infergate_scheduler::{
    EndpointMetrics, EndpointState, PoolScheduler, PromptKind, SchedulingRequest,
};

const ENDPOINTS: u16 = 64;

fn endpoints() -> Vec<Arc<EndpointState>> {
    (0..ENDPOINTS)
        .map(|i| {
            let ep = Arc::new(EndpointState::new(
                "bench".into(),
                EndpointSpec {
                    name: format!("e{i}"),
                    address: "10.0.0.1".into(),
                    port: 8000 + i,
                    labels: Default::default(),
                },
            ));
            ep.set_metrics(EndpointMetrics {
                waiting: f64::from(i % 7),
                running: f64::from(i % 5),
                kv_usage: f64::from(i % 10) / 10.0,
                block_size: Some(16),
                num_blocks: Some(16_384),
                ..EndpointMetrics::default()
            });
            ep
        })
        .collect()
}

fn words(n: usize, seed: usize) -> String {
    const W: &[&str] = &[
        "model", "cache", "token", "route", "serve", "query", "agent", "data",
    ];
    (0..n)
        .map(|i| W[(i * 7 + seed) % W.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// Chat `messages` JSON: a 6,000-token system prompt shared by the group, a 1,200-token question.
fn messages(group: usize, question: usize) -> String {
    serde_json::json!([
        {"role": "system", "content": format!("group {group} {}", words(6000, group))},
        {"role": "user", "content": format!("q{question} {}", words(1200, question + 3))},
    ])
    .to_string()
}

fn precise_config() -> PickerConfig {
    let mut c = PickerConfig::default();
    c.profile.scorers[2] = (
        PluginInstance {
            name: "precise-prefix-cache-scorer".into(),
            kind: PluginKind::PrecisePrefixCacheScorer(PrecisePrefixParams {
                // Never bound here (no runtime): the index is filled by `speculate` below.
                zmq_endpoint: "tcp://127.0.0.1:1".into(),
                ..PrecisePrefixParams::default()
            }),
        },
        3.0,
    );
    c
}

/// A pool whose prefix index holds 150 groups spread over the endpoints.
fn pool(config: PickerConfig) -> PoolScheduler {
    let eps = endpoints();
    let p = PoolScheduler::new("bench", eps, Arc::new(config));
    for g in 0..150 {
        let m = messages(g, 0);
        let req = SchedulingRequest {
            prompt_kind: PromptKind::Chat,
            ..SchedulingRequest::new("m", m.as_bytes())
        };
        let mut s = p.pick(&req).unwrap();
        let primary = s.primary.clone();
        drop(s.begin(&primary));
    }
    p
}

fn decide(p: &PoolScheduler, prompt: &str) {
    let req = SchedulingRequest {
        prompt_kind: PromptKind::Chat,
        min_endpoints: 3,
        ..SchedulingRequest::new("m", prompt.as_bytes())
    };
    let s = p.pick(black_box(&req)).unwrap();
    black_box(&s.primary);
}

fn criterion_benches(c: &mut Criterion) {
    let default = pool(PickerConfig::default());
    let precise = pool(precise_config());
    let prompt = messages(42, 3);
    c.bench_function("decision/64-endpoints/default-profile", |b| {
        b.iter(|| decide(&default, &prompt));
    });
    c.bench_function("decision/64-endpoints/precise-prefix-profile", |b| {
        b.iter(|| decide(&precise, &prompt));
    });
}

criterion_group!(benches, criterion_benches);

/// Per-decision percentiles (criterion reports means): µs.
fn percentiles(p: &PoolScheduler, n: usize) -> [f64; 4] {
    let prompts: Vec<String> = (0..64).map(|i| messages(i * 2 % 150, i % 5)).collect();
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let prompt = &prompts[i % prompts.len()];
        let t = Instant::now();
        decide(p, prompt);
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    v.sort_by(f64::total_cmp);
    let q = |x: f64| v[((x * v.len() as f64) as usize).min(v.len() - 1)];
    [q(0.5), q(0.9), q(0.99), v[v.len() - 1]]
}

const CRITERION_IDS: [&str; 2] = [
    "decision/64-endpoints/default-profile",
    "decision/64-endpoints/precise-prefix-profile",
];

/// Where criterion keeps its results: `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`,
/// else the workspace's `target/criterion` (criterion's own order, without `cargo metadata`).
fn criterion_home() -> std::path::PathBuf {
    if let Some(h) = std::env::var_os("CRITERION_HOME") {
        return h.into();
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return std::path::PathBuf::from(t).join("criterion");
    }
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/criterion")
}

/// Criterion's mean and its 95 % confidence interval for one benchmark id, in µs: found by
/// walking the criterion directory for the `new/benchmark.json` whose `full_id` matches.
fn criterion_mean(id: &str) -> Option<(f64, f64, f64)> {
    let home = criterion_home();
    let mut stack = vec![home];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let in_new = path
                .parent()
                .and_then(|p| p.file_name())
                .is_some_and(|n| n == "new");
            if !in_new || path.file_name().is_none_or(|n| n != "benchmark.json") {
                continue;
            }
            let meta: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
            if meta["full_id"].as_str() != Some(id) {
                continue;
            }
            let est: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(path.with_file_name("estimates.json")).ok()?,
            )
            .ok()?;
            let m = &est["mean"];
            let ci = &m["confidence_interval"];
            return Some((
                m["point_estimate"].as_f64()? / 1e3,
                ci["lower_bound"].as_f64()? / 1e3,
                ci["upper_bound"].as_f64()? / 1e3,
            ));
        }
    }
    None
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn write_report(load_start: &str) {
    let default = pool(PickerConfig::default());
    let precise = pool(precise_config());
    // Warm caches and allocator.
    percentiles(&default, 2_000);
    percentiles(&precise, 2_000);
    let d = percentiles(&default, 20_000);
    let pr = percentiles(&precise, 20_000);
    let mut s = String::new();
    let _ = writeln!(s, "# Scheduling decision benchmark\n");
    let _ = writeln!(
        s,
        "Produced by `cargo bench -p infergate-scheduler --bench decision` \
         (`crates/scheduler/benches/decision.rs`): one `PoolScheduler::pick` over {ENDPOINTS} \
         endpoints with scraped signals, for a chat request with a 6,000-token shared system \
         prompt and a 1,200-token question (~50 KB of JSON), primary + 2 fallbacks. The prefix \
         index holds 150 such groups. 20,000 decisions per profile, timed one by one on one \
         thread.\n"
    );
    let _ = writeln!(
        s,
        "| profile | p50 (µs) | p90 (µs) | p99 (µs) | max (µs) | target p99 |\n|---|---|---|---|---|---|"
    );
    for (name, p) in [
        ("default (queue 2, KV 2, approximate prefix 3)", d),
        ("precise prefix (queue 2, KV 2, precise prefix 3)", pr),
    ] {
        let verdict = if p[2] <= 200.0 { "PASS" } else { "MISS" };
        let _ = writeln!(
            s,
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | ≤ 200 µs: {verdict} |",
            p[0], p[1], p[2], p[3]
        );
    }
    let _ = writeln!(
        s,
        "\nCriterion (same binary, same prompt every iteration, so the prefix match is the \
         warmest case), mean with its 95 % confidence interval:\n\n\
         | benchmark | mean (µs) | 95 % CI (µs) |\n|---|---|---|"
    );
    for id in CRITERION_IDS {
        match criterion_mean(id) {
            Some((m, lo, hi)) => {
                let _ = writeln!(s, "| `{id}` | {m:.1} | {lo:.1} – {hi:.1} |");
            }
            None => {
                let _ = writeln!(
                    s,
                    "| `{id}` | not found under `{}` | |",
                    criterion_home().display()
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "\nThe precise profile tokenizes the prompt (the engine's tokenizer and chat template) \
         on every decision; the approximate one hashes 64-byte blocks of the raw JSON.\n"
    );
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let load_end = loadavg();
    let busy = load_start
        .split_whitespace()
        .next()
        .and_then(|l| l.parse::<f64>().ok())
        .is_some_and(|l| l >= 0.5);
    let _ = writeln!(
        s,
        "Machine: {cpus} CPUs, load average {load_start} at the start, {load_end} at the end.{}",
        if busy {
            " Other work (compilers) shared the CPUs during this run, so the tail figures are \
             noisier — and higher — than on a quiet machine: a decision preempted by another \
             process counts its wait."
        } else {
            ""
        }
    );
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/benchmarks/scheduling-decision.md");
    if let Some(dir) = out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&out, &s).unwrap();
    eprintln!("{s}");
}

fn main() {
    let load_start = loadavg();
    benches();
    Criterion::default().configure_from_args().final_summary();
    write_report(&load_start);
}
