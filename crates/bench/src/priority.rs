//! `infergate bench priority`: critical traffic on a pool saturated by sheddable batch traffic.
//!
//! The same simulated fleet and gateway as the routing benchmark (default profile, flow control
//! on, the anchor's saturation defaults). Two InferenceObjectives: `critical` (priority 10) and
//! `batch` (priority −1, sheddable). A warm-up (critical traffic only, faster, not reported)
//! puts the critical workload's shared system prompts in the replicas' caches, so both measured
//! phases see the same cache. Phase 1: critical traffic alone (the idle baseline). Phase 2: the
//! same critical traffic plus batch traffic at several times the pool's capacity: batch prompts
//! are their own (a sequence number starts each one, so they never hit the cache — batch jobs
//! do not share the interactive system prompts, and batch traffic that did would both warm
//! the critical cache and cost the pool almost nothing). Reported: critical TTFT in both phases
//! (target: p90 within 2× of idle) and what batch requests got (target: refusals are 429s,
//! never timeouts or 503s).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use rand::SeedableRng;
use serde::Serialize;

use crate::report::{write_json, Machine, Table, Verdict};
use crate::routing::{
    drive, shared_prefix_bodies, stage_result, start_bench_with, text, SimModelArgs, StageResult,
    Traffic, WorkloadArgs, PUBLIC_MODEL,
};

/// `infergate bench priority`.
#[derive(clap::Args, Debug, Clone)]
pub struct PriorityArgs {
    #[arg(long, default_value = "docs/benchmarks/priority.md")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 8)]
    pub replicas: usize,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    #[command(flatten)]
    pub sim: SimModelArgs,
    /// Critical requests per second (model time), in both phases.
    #[arg(long, default_value_t = 4.0)]
    pub critical_rate: f64,
    /// Sheddable batch requests per second (model time) in the saturated phase.
    #[arg(long, default_value_t = 120.0)]
    pub batch_rate: f64,
    /// Batch prompt length, tokens (every batch prompt is its own: no cache hits).
    #[arg(long, default_value_t = 2000)]
    pub batch_prompt_tokens: usize,
    /// Warm-up before the idle phase: critical traffic at this rate (model time), not reported.
    #[arg(long, default_value_t = 20.0)]
    pub warmup_rate: f64,
    #[arg(long, default_value_t = 40.0)]
    pub warmup_secs: f64,
    /// Length of each phase, model time (seconds).
    #[arg(long, default_value_t = 60.0)]
    pub phase_secs: f64,
    /// Pass each request's priority to the engines (`flowControl.enginePriority`, the replicas
    /// started with `--scheduling-policy priority`, as vLLM needs). `false` measures the
    /// gateway's queueing alone: engines then serve first come, first served.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub engine_priority: bool,
    /// Add the `prefill-scorer` to the default profile with this weight (0 = not in the
    /// profile: the anchor's default weights alone).
    #[arg(long, default_value_t = 0.0)]
    pub prefill_scorer_weight: f64,
    /// `flowControl.nonSheddableReserve.endpointShare`: the share of replicas that take no
    /// sheddable request while critical traffic is present (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub reserve_share: f64,
    /// `flowControl.nonSheddableReserve.preferReserved`: critical requests go to the reserved
    /// replicas first.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub reserve_prefer: bool,
    /// A short run: a smoke test, not figures to publish.
    #[arg(long)]
    pub quick: bool,
}

const OBJECTIVES: &str = "---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceObjective
metadata: {name: batch}
spec: {priority: -1, poolRef: {name: pool}}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceObjective
metadata: {name: critical}
spec: {priority: 10, poolRef: {name: pool}}
";

#[derive(Debug, Clone, Serialize)]
struct PriorityReport {
    command: String,
    machine: Machine,
    replicas: usize,
    workload: WorkloadArgs,
    sim: SimModelArgs,
    critical_rate: f64,
    batch_rate: f64,
    batch_prompt_tokens: usize,
    engine_priority: bool,
    prefill_scorer_weight: f64,
    reserve_share: f64,
    reserve_prefer: bool,
    /// Replicas the reserve held back from batch traffic.
    reserved_replicas: usize,
    warmup: (f64, f64),
    phase_secs: f64,
    critical_idle: StageResult,
    critical_saturated: StageResult,
    batch: StageResult,
    batch_statuses: BTreeMap<String, usize>,
    verdicts: BTreeMap<String, Verdict>,
}

pub async fn run(args: &PriorityArgs) -> anyhow::Result<()> {
    let mut args = args.clone();
    if args.quick {
        args.workload.groups = args.workload.groups.min(30);
        args.phase_secs = args.phase_secs.min(20.0);
        args.warmup_secs = args.warmup_secs.min(20.0);
    }
    let scale = args.sim.time_scale;
    let mut machine = Machine::probe();
    let bodies = Arc::new(shared_prefix_bodies(&args.workload));
    // The default profile with flow control (the anchor's saturation defaults).
    let (picker, sim_yaml) = picker_and_sim(&args);
    let bench = start_bench_with(args.replicas, &sim_yaml, &picker, OBJECTIVES).await?;
    let header = |o: &str| {
        Arc::new(vec![(
            "x-gateway-inference-objective".to_string(),
            o.to_string(),
        )])
    };
    let (batch_bodies, unique_at) = batch_bodies(&args);
    let traffic = [
        Traffic {
            bodies: bodies.clone(),
            headers: header("critical"),
            unique_at: None,
        },
        Traffic {
            bodies: Arc::new(batch_bodies),
            headers: header("batch"),
            unique_at: Some(unique_at),
        },
    ];
    let phase = args.phase_secs * scale;
    let warmup = args.warmup_secs * scale;
    let stages = vec![
        (vec![(0usize, args.warmup_rate / scale)], warmup),
        (vec![(0usize, args.critical_rate / scale)], phase),
        (
            vec![
                (0, args.critical_rate / scale),
                (1, args.batch_rate / scale),
            ],
            phase,
        ),
    ];
    let started = Instant::now();
    let limit = Duration::from_secs_f64(warmup + phase * 6.0);
    let samples = drive(&bench.url, &traffic, &stages, args.workload.seed, limit).await;
    eprintln!("priority: ran {:.0}s", started.elapsed().as_secs_f64());
    bench.stop().await;
    machine.loadavg_end = crate::report::loadavg();

    let idle = stage_result(
        &samples,
        1,
        Some(0),
        args.critical_rate,
        (warmup, warmup + phase),
        scale,
    );
    let sat = stage_result(
        &samples,
        2,
        Some(0),
        args.critical_rate,
        (warmup + phase, warmup + 2.0 * phase),
        scale,
    );
    let batch = stage_result(
        &samples,
        2,
        Some(1),
        args.batch_rate,
        (warmup + phase, warmup + 2.0 * phase),
        scale,
    );
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.class == 1) {
        let key = match &s.error {
            Some(e) => format!("error: {e}"),
            None => s.status.to_string(),
        };
        *statuses.entry(key).or_default() += 1;
    }
    let mut verdicts = BTreeMap::new();
    verdicts.insert(
        "critical p90 TTFT within 2x of idle".to_string(),
        Verdict::at_most(
            sat.ttft_p90_s,
            idle.ttft_p90_s.map_or(f64::NAN, |x| 2.0 * x),
        ),
    );
    let refused_ok = statuses.keys().all(|k| k == "200" || k == "429");
    verdicts.insert(
        "sheddable requests get 429, not timeouts".to_string(),
        if refused_ok && statuses.contains_key("429") {
            Verdict::Pass
        } else {
            Verdict::Miss
        },
    );
    verdicts.insert(
        "every critical request served".to_string(),
        if idle.errors == 0 && sat.errors == 0 {
            Verdict::Pass
        } else {
            Verdict::Miss
        },
    );
    let report = PriorityReport {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine,
        replicas: args.replicas,
        workload: args.workload.clone(),
        sim: args.sim.clone(),
        critical_rate: args.critical_rate,
        batch_rate: args.batch_rate,
        batch_prompt_tokens: args.batch_prompt_tokens,
        engine_priority: args.engine_priority,
        prefill_scorer_weight: args.prefill_scorer_weight,
        reserve_share: args.reserve_share,
        reserve_prefer: args.reserve_prefer,
        reserved_replicas: infergate_control::picker::ReserveConfig {
            endpoint_share: args.reserve_share,
            ..Default::default()
        }
        .reserved_of(args.replicas),
        warmup: (args.warmup_rate, args.warmup_secs),
        phase_secs: args.phase_secs,
        critical_idle: idle,
        critical_saturated: sat,
        batch,
        batch_statuses: statuses,
        verdicts,
    };
    write_json(&args.out.with_extension("json"), &report)?;
    std::fs::write(&args.out, markdown(&report))
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!("priority: wrote {}", args.out.display());
    Ok(())
}

/// The `EndpointPickerConfig` body and the replicas' configuration for `args`.
fn picker_and_sim(args: &PriorityArgs) -> (String, String) {
    let mut picker = String::from("metadata: {name: default}\n");
    if args.prefill_scorer_weight > 0.0 {
        // The anchor's default profile plus the prefill scorer.
        let _ = write!(
            picker,
            "plugins:\n- type: queue-scorer\n- type: kv-cache-utilization-scorer\n\
             - type: prefix-cache-scorer\n- type: prefill-scorer\n- type: max-score-picker\n\
             schedulingProfiles:\n- name: default\n  plugins:\n\
             \x20 - {{pluginRef: queue-scorer, weight: 2}}\n\
             \x20 - {{pluginRef: kv-cache-utilization-scorer, weight: 2}}\n\
             \x20 - {{pluginRef: prefix-cache-scorer, weight: 3}}\n\
             \x20 - {{pluginRef: prefill-scorer, weight: {}}}\n\
             \x20 - {{pluginRef: max-score-picker}}\n",
            args.prefill_scorer_weight
        );
    }
    let mut flow = Vec::new();
    if args.engine_priority {
        flow.push("enginePriority: true".to_string());
    }
    if args.reserve_share > 0.0 {
        flow.push(format!(
            "nonSheddableReserve: {{endpointShare: {}, preferReserved: {}}}",
            args.reserve_share, args.reserve_prefer
        ));
    }
    if !flow.is_empty() {
        let _ = writeln!(picker, "flowControl: {{{}}}", flow.join(", "));
    }
    let mut sim = args.sim.sim_yaml(None);
    if args.engine_priority {
        sim.push_str("scheduling-policy: priority\n");
    }
    (picker, sim)
}

/// Batch request bodies (streamed chats, one user message of `batch_prompt_tokens` tokens) and
/// the byte offset where [`drive`] inserts each request's sequence number: the start of the
/// text, so every batch prompt differs from its first block on.
fn batch_bodies(args: &PriorityArgs) -> (Vec<Bytes>, usize) {
    const MARK: &str = "batch job ";
    let mut rng = rand::rngs::SmallRng::seed_from_u64(args.workload.seed ^ 0xBA7C);
    let bodies: Vec<Bytes> = (0..16)
        .map(|_| {
            let body = serde_json::json!({
                "model": PUBLIC_MODEL,
                "messages": [{"role": "user", "content": format!(
                    "{MARK}{}", text(args.batch_prompt_tokens, &mut rng)
                )}],
                "max_tokens": args.workload.output_tokens,
                "stream": true,
                "stream_options": {"include_usage": true},
            });
            Bytes::from(body.to_string())
        })
        .collect();
    // Every body starts alike up to the text: one offset serves them all.
    let at = bodies
        .first()
        .and_then(|b| {
            let s = std::str::from_utf8(b).ok()?;
            s.find(MARK).map(|i| i + MARK.len())
        })
        .unwrap_or(0);
    (bodies, at)
}

fn f(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |x| format!("{x:.3}"))
}

fn markdown(r: &PriorityReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Critical traffic on a pool saturated by sheddable traffic\n"
    );
    let _ = writeln!(
        s,
        "Produced by `{}` (see `crates/bench/src/priority.rs`). {} simulated replicas (the \
         routing benchmark's model: prefill-bound, {} KV blocks each), the gateway's default \
         profile with flow control and the anchor's saturation defaults (queue 5, KV 0.8). \
         Critical requests (InferenceObjective priority 10, the shared-prefix workload) arrive \
         at {:.0}/s in both phases, after a warm-up of {:.0}/s for {:.0} s that puts their \
         system prompts in the caches (so both phases see the same cache). In the second phase \
         sheddable batch requests (priority −1) arrive at {:.0}/s, each with a prompt of its own \
         ({} tokens, never a cache hit: about {:.0} such prefills per second is all the pool \
         computes). Model time ({}× faster than the model). {}\n",
        r.command,
        r.replicas,
        r.sim.kv_cache_blocks,
        r.critical_rate,
        r.warmup.0,
        r.warmup.1,
        r.batch_rate,
        r.batch_prompt_tokens,
        r.replicas as f64 * r.sim.prefill_parallelism.max(1) as f64
            / ((r.sim.prefill_overhead_ms
                + r.batch_prompt_tokens as f64 * r.sim.prefill_ms_per_token)
                / 1000.0),
        1.0 / r.sim.time_scale,
        if r.engine_priority {
            "Engine priority on: the gateway sends each request's priority to the replicas \
             (`flowControl.enginePriority: true`; the replicas run `--scheduling-policy \
             priority`, as vLLM does), so a critical request overtakes the batch prefills \
             already queued there."
        } else {
            "Engine priority off: the replicas serve their queues first come, first served; only \
             the gateway's own queue knows priorities."
        }
    );
    let _ = writeln!(
        s,
        "Critical-traffic protection: {}; {}.\n",
        if r.prefill_scorer_weight > 0.0 {
            format!(
                "`prefill-scorer` in the profile with weight {} (beside queue 2, KV 2, prefix 3: \
                 a request prefers replicas where none of the gateway's requests is waiting for \
                 its first token)",
                r.prefill_scorer_weight
            )
        } else {
            "no `prefill-scorer` (the anchor's default weights)".to_string()
        },
        if r.reserve_share > 0.0 {
            format!(
                "`flowControl.nonSheddableReserve: {{endpointShare: {}, preferReserved: {}}}` \
                 ({} of {} replicas take no batch request while critical traffic is present; \
                 batch traffic is shed when the other {} are saturated; {})",
                r.reserve_share,
                r.reserve_prefer,
                r.reserved_replicas,
                r.replicas,
                r.replicas - r.reserved_replicas,
                if r.reserve_prefer {
                    "critical requests go to the reserved replicas first"
                } else {
                    "critical requests may go to any replica"
                }
            )
        } else {
            "no reserve (batch traffic may use every replica)".to_string()
        }
    );
    let mut t = Table::new(&["target", "verdict"]);
    for (k, v) in &r.verdicts {
        t.row(vec![k.clone(), v.label().to_string()]);
    }
    s.push_str(&t.render());
    let _ = writeln!(s);
    let mut t = Table::new(&[
        "traffic",
        "ok / sent",
        "TTFT p50 (s)",
        "TTFT p90 (s)",
        "output tok/s",
        "prefix-cache hit rate",
    ]);
    for (name, st) in [
        ("critical, idle pool", &r.critical_idle),
        ("critical, saturated pool", &r.critical_saturated),
        ("batch (sheddable), saturated pool", &r.batch),
    ] {
        t.row(vec![
            name.to_string(),
            format!("{} / {}", st.ok, st.sent),
            f(st.ttft_p50_s),
            f(st.ttft_p90_s),
            format!("{:.0}", st.output_tokens_per_s),
            format!("{:.1} %", st.prefix_cache_hit_rate * 100.0),
        ]);
    }
    s.push_str(&t.render());
    let statuses: Vec<String> = r
        .batch_statuses
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let _ = writeln!(s, "\nBatch requests by outcome: {}.", statuses.join(", "));
    let _ = writeln!(
        s,
        "\nMachine: {} CPUs ({}), load average {} → {}.",
        r.machine.nproc, r.machine.cpu_model, r.machine.loadavg_start, r.machine.loadavg_end
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: PriorityArgs,
    }

    #[test]
    fn every_mode_gives_a_valid_configuration() {
        let addrs: Vec<std::net::SocketAddr> = vec!["127.0.0.1:9000".parse().unwrap()];
        for flags in [
            vec!["x"],
            vec!["x", "--engine-priority", "false"],
            vec![
                "x",
                "--prefill-scorer-weight",
                "2",
                "--reserve-share",
                "0.25",
            ],
        ] {
            let args = Cli::parse_from(flags.clone()).args;
            let (picker, sim) = picker_and_sim(&args);
            let yaml = crate::routing::gateway_yaml(&addrs, &picker) + OBJECTIVES;
            let cfg = infergate_control::load_str("t.yaml", &yaml)
                .unwrap_or_else(|e| panic!("{flags:?}: {e}\n{yaml}"));
            let p = &cfg.pickers[0];
            assert_eq!(p.flow_control.engine_priority, args.engine_priority);
            assert_eq!(p.flow_control.reserve.endpoint_share, args.reserve_share);
            let with_prefill = p
                .profile
                .scorers
                .iter()
                .any(|(s, w)| s.name == "prefill-scorer" && *w == 2.0);
            assert_eq!(with_prefill, args.prefill_scorer_weight > 0.0, "{picker}");
            assert_eq!(p.profile.scorers.len(), 3 + usize::from(with_prefill));
            assert_eq!(
                sim.contains("scheduling-policy: priority"),
                args.engine_priority
            );
        }
    }

    #[test]
    fn batch_prompts_are_made_unique_at_the_start_of_their_text() {
        let args = Cli::parse_from(["x", "--batch-prompt-tokens", "50"]).args;
        let (bodies, at) = batch_bodies(&args);
        assert!(!bodies.is_empty());
        for b in &bodies {
            // What `drive` does with `unique_at`.
            let mut v = b[..at].to_vec();
            v.extend_from_slice(b"42 ");
            v.extend_from_slice(&b[at..]);
            let json: serde_json::Value = serde_json::from_slice(&v).unwrap();
            let content = json["messages"][0]["content"].as_str().unwrap();
            assert!(content.starts_with("batch job 42 "), "{content}");
        }
    }
}
