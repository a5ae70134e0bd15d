//! Result files and reports: the JSON summary of one load run ([`LoadReport`]), its text form,
//! Markdown tables, and the facts about the machine a report must carry. Reports state figures
//! and compare them with targets; they never fail a run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::load::{LoadSpec, Rate, Recorder};

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub min_us: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Percentiles {
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            min_us: h.min(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// The outcome of one load run (`infergate bench load --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    pub url: String,
    /// `open` (fixed rate, latency from the scheduled time) or `closed` (back to back).
    pub mode: String,
    /// Open loop: the requested rate.
    pub target_rps: Option<f64>,
    pub connections: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub body_bytes: usize,
    /// Requests due (open) or started (closed) in the measured window.
    pub scheduled: u64,
    /// Requests that went on the wire (warm-up included).
    pub sent: u64,
    /// Responses received in full, any status.
    pub completed: u64,
    /// 2xx responses.
    pub ok: u64,
    /// Completed responses by status code.
    pub status: BTreeMap<String, u64>,
    pub transport_errors: BTreeMap<String, u64>,
    pub unfinished: u64,
    pub unsent: u64,
    pub skipped: u64,
    pub reconnects: u64,
    pub response_bytes: u64,
    /// Everything in the window that did not end in a 2xx response.
    pub errors: u64,
    /// Responses completed inside the measured window, per second.
    pub achieved_rps: f64,
    /// Whole response (open loop: from the scheduled send time). Unfinished and unsent requests
    /// are included at the lower bound of their latency.
    pub latency: Percentiles,
    /// Until the response headers, same origin.
    pub ttfb: Percentiles,
    /// Open loop: scheduled time → on the wire (the generator's own lateness plus waiting for a
    /// free connection).
    #[serde(default)]
    pub send_delay: Percentiles,
    /// CPU time the load generator's process used (user + system), in seconds.
    #[serde(default)]
    pub generator_cpu_s: Option<f64>,
    /// Time the load generator's threads waited for a CPU while runnable, in seconds.
    #[serde(default)]
    pub generator_run_delay_s: Option<f64>,
}

impl LoadReport {
    pub fn from_run(spec: &LoadSpec, rec: &Recorder) -> Self {
        let completed = rec.completed();
        let ok: u64 = rec
            .status
            .iter()
            .filter(|(s, _)| (200..300).contains(*s))
            .map(|(_, n)| n)
            .sum();
        let transport: u64 = rec.transport_errors.values().sum();
        let secs = spec.duration.as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let achieved_rps = if secs > 0.0 {
            rec.completed_in_window as f64 / secs
        } else {
            0.0
        };
        Self {
            url: spec.url.to_string(),
            mode: match spec.rate {
                Rate::Fixed(_) => "open".into(),
                Rate::Max => "closed".into(),
            },
            target_rps: match spec.rate {
                Rate::Fixed(r) => Some(r),
                Rate::Max => None,
            },
            connections: spec.connections,
            duration_s: secs,
            warmup_s: spec.warmup.as_secs_f64(),
            body_bytes: spec.body.len(),
            scheduled: rec.scheduled,
            sent: rec.sent,
            completed,
            ok,
            status: rec
                .status
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            transport_errors: rec.transport_errors.clone(),
            unfinished: rec.unfinished,
            unsent: rec.unsent,
            skipped: rec.skipped,
            reconnects: rec.reconnects,
            response_bytes: rec.response_bytes,
            errors: (completed - ok) + transport + rec.unfinished + rec.unsent + rec.skipped,
            achieved_rps,
            latency: Percentiles::from_histogram(&rec.latency),
            ttfb: Percentiles::from_histogram(&rec.ttfb),
            send_delay: Percentiles::from_histogram(&rec.send_delay),
            #[allow(clippy::cast_precision_loss)]
            generator_cpu_s: crate::process::process_cpu_us(std::process::id())
                .map(|us| us as f64 / 1e6),
            #[allow(clippy::cast_precision_loss)]
            generator_run_delay_s: crate::process::process_run_delay_us(std::process::id())
                .map(|us| us as f64 / 1e6),
        }
    }

    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        write_json(path, self)
    }

    pub fn read_json(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_slice(&text)
            .with_context(|| format!("{}: not a load report", path.display()))
    }

    /// A human-readable summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let mode = match self.target_rps {
            Some(r) => format!("open loop at {r} req/s"),
            None => format!("closed loop, {} in flight", self.connections),
        };
        let _ = writeln!(
            s,
            "{} — {mode}, {} connections, {:.1}s (+{:.1}s warm-up), body {} B",
            self.url, self.connections, self.duration_s, self.warmup_s, self.body_bytes
        );
        let _ = writeln!(
            s,
            "  requests: {} in window, {} completed ({} ok), {} errors; achieved {:.1} req/s",
            self.scheduled, self.completed, self.ok, self.errors, self.achieved_rps
        );
        let l = &self.latency;
        let _ = writeln!(
            s,
            "  latency ms: p50 {} p90 {} p99 {} p99.9 {} max {} (mean {:.3})",
            ms(l.p50_us),
            ms(l.p90_us),
            ms(l.p99_us),
            ms(l.p999_us),
            ms(l.max_us),
            l.mean_us / 1000.0
        );
        let t = &self.ttfb;
        let d = &self.send_delay;
        let _ = writeln!(
            s,
            "  to headers ms: p50 {} p99 {}; scheduled → sent ms: p50 {} p99 {} max {}",
            ms(t.p50_us),
            ms(t.p99_us),
            ms(d.p50_us),
            ms(d.p99_us),
            ms(d.max_us)
        );
        if !self.status.is_empty() {
            let list: Vec<String> = self
                .status
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let _ = writeln!(s, "  status: {}", list.join(", "));
        }
        let mut problems: Vec<String> = self
            .transport_errors
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        for (name, n) in [
            ("unfinished", self.unfinished),
            ("unsent", self.unsent),
            ("skipped", self.skipped),
            ("reconnects", self.reconnects),
        ] {
            if n > 0 {
                problems.push(format!("{name}: {n}"));
            }
        }
        if !problems.is_empty() {
            let _ = writeln!(s, "  problems: {}", problems.join(", "));
        }
        s
    }
}

/// Write any serialisable value as pretty JSON (parent directories created).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Microseconds as milliseconds with three decimals.
pub fn ms(us: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let v = us as f64 / 1000.0;
    format!("{v:.3}")
}

/// A signed difference of microseconds as milliseconds (`+0.081`).
pub fn ms_delta(us: i64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let v = us as f64 / 1000.0;
    format!("{v:+.3}")
}

/// Whether a figure meets its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Miss,
    /// Not measured (e.g. the reference proxy is missing).
    #[serde(rename = "N/A")]
    NotMeasured,
}

impl Verdict {
    pub fn at_most(value: Option<f64>, limit: f64) -> Self {
        match value {
            Some(v) if v <= limit => Verdict::Pass,
            Some(_) => Verdict::Miss,
            None => Verdict::NotMeasured,
        }
    }

    pub fn at_least(value: Option<f64>, floor: Option<f64>) -> Self {
        match (value, floor) {
            (Some(v), Some(f)) if v >= f => Verdict::Pass,
            (Some(_), Some(_)) => Verdict::Miss,
            _ => Verdict::NotMeasured,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Miss => "MISS",
            Verdict::NotMeasured => "n/a",
        }
    }
}

/// A Markdown table.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(ToString::to_string).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "| {} |", self.header.join(" | "));
        let _ = writeln!(
            s,
            "|{}|",
            self.header
                .iter()
                .map(|_| "---")
                .collect::<Vec<_>>()
                .join("|")
        );
        for r in &self.rows {
            let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        }
        s
    }
}

/// The machine a benchmark ran on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub memory_mb: u64,
    /// `/proc/loadavg` when the benchmark started and ended: other work on a shared machine
    /// shows up here.
    pub loadavg_start: String,
    pub loadavg_end: String,
}

impl Machine {
    pub fn probe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .and_then(|r| r.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_mb = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024 / 1_000_000);
        Self {
            nproc: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            cpu_model,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            memory_mb,
            loadavg_start: loadavg(),
            loadavg_end: String::new(),
        }
    }
}

/// The first three fields of `/proc/loadavg`.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The median of some figures (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{chat_body, Recorder};
    use std::time::{Duration, Instant};

    fn spec(rate: Rate) -> LoadSpec {
        LoadSpec {
            url: "http://127.0.0.1:1/v1/chat/completions"
                .parse()
                .expect("uri"),
            rate,
            duration: Duration::from_secs(2),
            warmup: Duration::from_secs(1),
            connections: 4,
            max_in_flight: None,
            body: chat_body("m", 1024, false, 1),
            headers: Vec::new(),
            drain: Duration::from_secs(1),
            unique_prompts: false,
        }
    }

    #[test]
    fn report_accounts_for_every_outcome() {
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(2);
        let mut rec = Recorder {
            scheduled: 10,
            sent: 9,
            ..Recorder::default()
        };
        for i in 0..6u64 {
            let done = t0 + Duration::from_micros(100 * (i + 1));
            rec.record_response(200, t0, done, done, end);
        }
        rec.record_response(502, t0, t0, t0 + Duration::from_millis(1), end);
        rec.record_transport_error("io");
        rec.unfinished = 1;
        rec.skipped = 1;
        let r = LoadReport::from_run(&spec(Rate::Fixed(5.0)), &rec);
        assert_eq!(r.mode, "open");
        assert_eq!(r.completed, 7);
        assert_eq!(r.ok, 6);
        assert_eq!(r.status.get("502"), Some(&1));
        // 1 non-2xx + 1 transport + 1 unfinished + 1 skipped.
        assert_eq!(r.errors, 4);
        assert!((r.achieved_rps - 3.5).abs() < 1e-9);
        assert_eq!(r.latency.count, 7);
        assert_eq!(r.latency.min_us, 100);
        assert_eq!(r.latency.max_us, 1000);
        assert!(r.latency.p50_us >= 300 && r.latency.p50_us <= 400);
        assert_eq!(r.body_bytes, 1024);

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.json");
        r.write_json(&path).expect("write");
        assert_eq!(LoadReport::read_json(&path).expect("read"), r);
        let text = r.summary();
        assert!(text.contains("502: 1"), "{text}");
        assert!(text.contains("unfinished: 1"), "{text}");
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("h");
        for v in 1..=1000u64 {
            h.record(v).expect("record");
        }
        let p = Percentiles::from_histogram(&h);
        assert_eq!(p.count, 1000);
        assert_eq!(p.p50_us, 500);
        assert_eq!(p.p90_us, 900);
        assert_eq!(p.p99_us, 990);
        assert_eq!(p.p999_us, 999);
        assert_eq!(p.max_us, 1000);
        assert_eq!(
            Percentiles::from_histogram(&Histogram::new(3).expect("h")).count,
            0
        );
    }

    #[test]
    fn verdicts_and_medians() {
        assert_eq!(Verdict::at_most(Some(0.1), 0.1), Verdict::Pass);
        assert_eq!(Verdict::at_most(Some(0.11), 0.1), Verdict::Miss);
        assert_eq!(Verdict::at_most(None, 0.1), Verdict::NotMeasured);
        assert_eq!(Verdict::at_least(Some(5.0), Some(4.0)), Verdict::Pass);
        assert_eq!(Verdict::at_least(Some(3.0), Some(4.0)), Verdict::Miss);
        assert_eq!(Verdict::at_least(Some(3.0), None), Verdict::NotMeasured);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(ms(1234), "1.234");
        assert_eq!(ms_delta(-81), "-0.081");
        assert_eq!(ms_delta(81), "+0.081");
    }

    #[test]
    fn tables_render_as_markdown() {
        let mut t = Table::new(&["a", "b"]);
        t.row(vec!["1".into(), "x|y".into()]);
        assert_eq!(t.render(), "| a | b |\n|---|---|\n| 1 | x\\|y |\n");
    }
}
