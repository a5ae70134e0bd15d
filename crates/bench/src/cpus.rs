//! The host under a benchmark: which CPU loses the least time to the host, and keeping the
//! benchmark's CPUs from going idle between requests.
//!
//! On a virtual machine a vCPU can be taken away by the host for hundreds of microseconds at a
//! time without the guest seeing any task run (on the machines this project is measured on, one
//! vCPU lost ~0.35 ms every ~51 ms while the other lost nothing). A request in flight on that CPU
//! waits it out, so the proxy under test belongs on the quietest CPU: [`probe`] measures each.
//!
//! A vCPU with nothing to run halts, and the next wake-up goes through the host; with
//! `haltpoll.guest_halt_poll_ns=0` (as on these machines) every idle period ends that way. A
//! [`KeepAwake`] spinner per CPU, in the `SCHED_IDLE` class (any other task preempts it at
//! once), keeps the CPUs busy the way `idle=poll` does on a tuned latency host. It applies to every
//! path measured alike, and its CPU time is accounted for, not counted as other work.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use serde::Serialize;

use crate::process::{process_cpu_us, Placement, Process};

/// What one CPU lost to anything but the probe during a short spin.
#[derive(Debug, Clone, Serialize)]
pub struct CpuProbe {
    pub cpu: usize,
    pub probe_ms: u64,
    /// Share of the probe's wall time lost in gaps of 20 µs or more between two clock reads.
    pub lost_share: f64,
    /// Gaps of 100 µs or more.
    pub gaps_over_100us: u64,
    pub longest_gap_us: u64,
}

impl CpuProbe {
    /// "CPU 1: 2.10% of 1000 ms lost; gaps ≥ 0.1 ms: 190, longest 0.45 ms".
    pub fn describe(&self) -> String {
        format!(
            "CPU {}: {:.2}% of {} ms lost; gaps ≥ 0.1 ms: {}, longest {:.2} ms",
            self.cpu,
            self.lost_share * 100.0,
            self.probe_ms,
            self.gaps_over_100us,
            self.longest_gap_us as f64 / 1000.0
        )
    }
}

/// Spin on `cpu` for `dur` reading the clock, and record the gaps (time the thread did not run).
/// Blocks the calling thread for `dur`; the spinning happens on a thread of its own.
pub fn probe(cpu: usize, dur: Duration) -> anyhow::Result<CpuProbe> {
    let handle = std::thread::Builder::new()
        .name(format!("cpu-probe-{cpu}"))
        .spawn(move || -> anyhow::Result<CpuProbe> {
            let mut set = CpuSet::new();
            set.set(cpu)?;
            sched_setaffinity(Pid::from_raw(0), &set)?;
            Ok(spin_and_record(cpu, dur))
        })?;
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("the CPU probe thread panicked"))?
}

#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
fn spin_and_record(cpu: usize, dur: Duration) -> CpuProbe {
    let start = Instant::now();
    let mut prev = start;
    let (mut lost, mut over_100, mut longest) = (Duration::ZERO, 0u64, Duration::ZERO);
    loop {
        let now = Instant::now();
        let gap = now - prev;
        prev = now;
        if gap >= Duration::from_micros(20) {
            lost += gap;
            longest = longest.max(gap);
            if gap >= Duration::from_micros(100) {
                over_100 += 1;
            }
        }
        if now - start >= dur {
            break;
        }
    }
    let wall = prev - start;
    CpuProbe {
        cpu,
        probe_ms: wall.as_millis() as u64,
        lost_share: lost.as_secs_f64() / wall.as_secs_f64().max(1e-9),
        gaps_over_100us: over_100,
        longest_gap_us: longest.as_micros() as u64,
    }
}

/// The CPUs to use for the system under test and for the load generator: the one that lost
/// the least time to the proxy, the next for the load. `None` with fewer than two CPUs.
pub fn choose(probes: &[CpuProbe]) -> Option<(usize, usize)> {
    let mut sorted: Vec<&CpuProbe> = probes.iter().collect();
    sorted.sort_by(|a, b| {
        a.lost_share
            .total_cmp(&b.lost_share)
            .then(a.gaps_over_100us.cmp(&b.gaps_over_100us))
            .then(a.cpu.cmp(&b.cpu))
    });
    match sorted.as_slice() {
        [quiet, next, ..] => Some((quiet.cpu, next.cpu)),
        _ => None,
    }
}

/// The CPUs this process may run on (its affinity mask).
pub fn allowed_cpus() -> Vec<usize> {
    nix::sched::sched_getaffinity(Pid::from_raw(0)).map_or_else(
        |_| Vec::new(),
        |set| {
            (0..CpuSet::count())
                .filter(|c| set.is_set(*c).unwrap_or(false))
                .collect()
        },
    )
}

/// One `SCHED_IDLE` busy loop per CPU, for as long as this value lives (each spinner is stopped
/// by PID when dropped).
pub struct KeepAwake {
    spinners: Vec<(usize, Process)>,
}

impl KeepAwake {
    /// Start a spinner on each of `cpus` (`chrt --idle 0 taskset -c N sh -c 'while :; do :; done'`:
    /// a shell loop of builtins, no system calls).
    pub fn start(cpus: &[usize], work: &Path) -> anyhow::Result<Self> {
        let mut spinners = Vec::new();
        for &cpu in cpus {
            let placement = Placement {
                cpus: Some(cpu.to_string()),
                nice: None,
            };
            let args: Vec<String> = ["--idle", "0", "sh", "-c", "while :; do :; done"]
                .iter()
                .map(ToString::to_string)
                .collect();
            let p = Process::spawn(
                &format!("keep-awake spinner on CPU {cpu}"),
                &placement,
                Path::new("chrt"),
                &args,
                &[],
                &work.join(format!("keep-awake-{cpu}.log")),
            )?;
            spinners.push((cpu, p));
        }
        Ok(Self { spinners })
    }

    /// CPU time the spinners on `cpus` have used so far, µs.
    pub fn cpu_us(&self, cpus: &[usize]) -> u64 {
        self.spinners
            .iter()
            .filter(|(c, _)| cpus.contains(c))
            .filter_map(|(_, p)| process_cpu_us(p.pid()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe_of(cpu: usize, lost_share: f64, gaps: u64) -> CpuProbe {
        CpuProbe {
            cpu,
            probe_ms: 1000,
            lost_share,
            gaps_over_100us: gaps,
            longest_gap_us: 0,
        }
    }

    #[test]
    fn the_quietest_cpu_gets_the_system_under_test() {
        let probes = [
            probe_of(0, 0.021, 190),
            probe_of(1, 0.003, 2),
            probe_of(2, 0.01, 1),
        ];
        assert_eq!(choose(&probes), Some((1, 2)));
        // Equal loss: fewer long gaps wins, then the lower CPU number.
        let probes = [probe_of(0, 0.01, 5), probe_of(1, 0.01, 1)];
        assert_eq!(choose(&probes), Some((1, 0)));
        assert_eq!(choose(&[probe_of(0, 0.0, 0)]), None);
    }

    #[test]
    fn keep_awake_spins_in_the_idle_class_and_stops_when_dropped() {
        let cpu = allowed_cpus()[0];
        let work = tempfile::tempdir().expect("tempdir");
        let awake = KeepAwake::start(&[cpu], work.path()).expect("chrt and taskset (util-linux)");
        let pid = awake.spinners[0].1.pid();
        // The wrappers exec in place: wait for the shell loop itself, in SCHED_IDLE (policy 5).
        let until = Instant::now() + Duration::from_secs(5);
        let sched = loop {
            let sched = std::fs::read_to_string(format!("/proc/{pid}/sched")).unwrap_or_default();
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "sh" || Instant::now() > until {
                break sched;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let policy = sched
            .lines()
            .find(|l| l.starts_with("policy"))
            .and_then(|l| l.split(':').nth(1))
            .map(str::trim);
        assert_eq!(policy, Some("5"), "{sched}");
        std::thread::sleep(Duration::from_millis(300));
        assert!(awake.cpu_us(&[cpu]) > 0, "the spinner used no CPU");
        assert_eq!(awake.cpu_us(&[cpu + 1]), 0);
        drop(awake);
        let until = Instant::now() + Duration::from_secs(5);
        while std::path::Path::new(&format!("/proc/{pid}/stat")).exists() && Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            state.is_empty() || state.contains(") Z"),
            "spinner still running: {state}"
        );
    }

    #[test]
    fn a_probe_measures_the_cpu_it_ran_on() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty(), "the affinity mask lists no CPU");
        let p = probe(cpus[0], Duration::from_millis(50)).expect("probe");
        assert_eq!(p.cpu, cpus[0]);
        assert!(p.probe_ms >= 50, "{p:?}");
        assert!((0.0..=1.0).contains(&p.lost_share), "{p:?}");
    }
}
