//! `infergate bench priority`: critical traffic on a pool saturated by sheddable batch traffic.
//!
//! The same simulated fleet and gateway as the routing benchmark (default profile, flow control
//! on, the anchor's saturation defaults). Two InferenceObjectives: `critical` (priority 10) and
//! `batch` (priority −1, sheddable). Phase 1: critical traffic alone (the idle baseline).
//! Phase 2: the same critical traffic plus batch traffic at several times the pool's capacity.
//! Reported: critical TTFT in both phases (target: p90 within 2× of idle) and what batch requests
//! got (target: refusals are 429s, never timeouts or 503s).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use crate::report::{write_json, Machine, Table, Verdict};
use crate::routing::{
    drive, shared_prefix_bodies, stage_result, start_bench_with, SimModelArgs, StageResult,
    Traffic, WorkloadArgs,
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
    /// Length of each phase, model time (seconds).
    #[arg(long, default_value_t = 60.0)]
    pub phase_secs: f64,
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
    }
    let scale = args.sim.time_scale;
    let mut machine = Machine::probe();
    let bodies = Arc::new(shared_prefix_bodies(&args.workload));
    // The default profile with flow control (the anchor's saturation defaults).
    let picker = "metadata: {name: default}\n";
    let sim_yaml = args.sim.sim_yaml(None);
    let bench = start_bench_with(args.replicas, &sim_yaml, picker, OBJECTIVES).await?;
    let header = |o: &str| {
        Arc::new(vec![(
            "x-gateway-inference-objective".to_string(),
            o.to_string(),
        )])
    };
    let traffic = [
        Traffic {
            bodies: bodies.clone(),
            headers: header("critical"),
        },
        Traffic {
            bodies: bodies.clone(),
            headers: header("batch"),
        },
    ];
    let phase = args.phase_secs * scale;
    let stages = vec![
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
    let limit = Duration::from_secs_f64(phase * 6.0);
    let samples = drive(&bench.url, &traffic, &stages, args.workload.seed, limit).await;
    eprintln!("priority: ran {:.0}s", started.elapsed().as_secs_f64());
    bench.stop().await;
    machine.loadavg_end = crate::report::loadavg();

    let idle = stage_result(
        &samples,
        0,
        Some(0),
        args.critical_rate,
        (0.0, phase),
        scale,
    );
    let sat = stage_result(
        &samples,
        1,
        Some(0),
        args.critical_rate,
        (phase, 2.0 * phase),
        scale,
    );
    let batch = stage_result(
        &samples,
        1,
        Some(1),
        args.batch_rate,
        (phase, 2.0 * phase),
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
         Critical requests (InferenceObjective priority 10) arrive at {:.0}/s in both phases; in \
         the second, sheddable batch requests (priority −1) arrive at {:.0}/s, several times \
         what the pool serves. Both use the shared-prefix workload. Model time ({}× faster).\n",
        r.command,
        r.replicas,
        r.sim.kv_cache_blocks,
        r.critical_rate,
        r.batch_rate,
        1.0 / r.sim.time_scale
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
