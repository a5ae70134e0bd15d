//! Processes a benchmark starts: optionally pinned to CPUs with `taskset`, output into a log
//! file, watched through `/proc/PID/status`, and stopped by their own PID (SIGTERM, then SIGKILL)
//! when dropped — a benchmark never leaves one running.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// Where and how a process runs: pinned to CPUs (`taskset -c`), at a scheduling priority.
///
/// With a `nice` level the process also gets a session of its own (`setsid`) and that
/// session's autogroup gets the same nice level: where the kernel groups processes by session
/// (`sched_autogroup_enabled`), a plain `nice` only ranks a process against its own session,
/// not against other people's work on a shared machine. Negative levels need root; without it
/// they are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    pub cpus: Option<String>,
    pub nice: Option<i32>,
}

impl Placement {
    /// The wrapper commands, e.g. `nice -n -19 taskset -c 1`.
    fn prefix(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(n) = self.nice {
            // setsid execs in place (a spawned child is never a process-group leader), so
            // the PID stays the program's.
            out.push("setsid".to_string());
            out.extend(["nice".to_string(), "-n".to_string(), n.to_string()]);
        }
        if let Some(c) = &self.cpus {
            out.extend(["taskset".to_string(), "-c".to_string(), c.clone()]);
        }
        out
    }
}

/// A started child process.
pub struct Process {
    name: String,
    child: Child,
    command_line: String,
    log: PathBuf,
    autogroup: Option<AutogroupNice>,
}

/// What became of the autogroup nice level a [`Placement`] asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutogroupNice {
    /// The process's own autogroup now runs at the nice level.
    Applied,
    /// This kernel (or sandbox) has no `/proc/PID/autogroup`.
    Unsupported,
    /// `setsid` did not give the process an autogroup of its own within 2 s (some sandboxes
    /// report one fixed autogroup for every process); only the plain nice level applies.
    SameAutogroup,
    /// The kernel refused the write.
    Refused(String),
}

impl Process {
    /// Start `program args…` (wrapped in `nice` / `taskset` as `placement` says), with stdout
    /// and stderr appended to `log`. The PID is the program's own: both wrappers exec it.
    pub fn spawn(
        name: &str,
        placement: &Placement,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
        log: &Path,
    ) -> anyhow::Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let err = out.try_clone()?;
        let prefix = placement.prefix();
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut cmd = Command::new(first);
                cmd.args(rest).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut command_line = String::new();
        for p in &prefix {
            command_line.push_str(&shell_quote(p));
            command_line.push(' ');
        }
        command_line.push_str(&program.display().to_string());
        for a in args {
            command_line.push(' ');
            command_line.push_str(&shell_quote(a));
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}: {command_line}"))?;
        let autogroup = placement.nice.map(|n| set_autogroup_nice(child.id(), n));
        if let Some(status) = autogroup.as_ref().filter(|s| **s != AutogroupNice::Applied) {
            eprintln!("{name}: autogroup nice level not applied: {status:?}");
        }
        Ok(Self {
            name: name.to_string(),
            child,
            command_line,
            log: log.to_path_buf(),
            autogroup,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What became of the autogroup nice level, when the placement asked for one.
    pub fn autogroup_nice(&self) -> Option<&AutogroupNice> {
        self.autogroup.as_ref()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn command_line(&self) -> &str {
        &self.command_line
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last lines of the log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Peak resident set size so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        proc_status_kib(self.pid(), "VmHWM")
    }

    /// Current resident set size (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        proc_status_kib(self.pid(), "VmRSS")
    }

    /// Wait for the process to exit by itself, up to `timeout`; `None` if it is still running.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            if Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stop it: SIGTERM, up to 5 s to exit, then SIGKILL.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if self.exited().is_some() {
            return;
        }
        // By PID, through kill(1): the workspace forbids `unsafe`, so no libc::kill.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// The autogroup a process belongs to (`/autogroup-N`), if the kernel has them.
fn autogroup(pid: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/autogroup")).ok()?;
    text.split_whitespace().next().map(ToString::to_string)
}

/// Give the autogroup of `pid` the nice level `n`, once `setsid` has moved it into a session of
/// its own. Writing earlier would change the autogroup of *our* session (the child still shares
/// it until `setsid` runs), so wait for the child's autogroup to differ from ours. Best effort:
/// the process runs either way, and the result says what happened.
fn set_autogroup_nice(pid: u32, n: i32) -> AutogroupNice {
    let Some(ours) = autogroup("self") else {
        return AutogroupNice::Unsupported;
    };
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        match autogroup(&pid.to_string()) {
            Some(theirs) if theirs != ours => {
                return match std::fs::write(format!("/proc/{pid}/autogroup"), n.to_string()) {
                    Ok(()) => AutogroupNice::Applied,
                    Err(e) => AutogroupNice::Refused(e.to_string()),
                };
            }
            Some(_) => std::thread::sleep(Duration::from_millis(1)),
            None => return AutogroupNice::Unsupported,
        }
    }
    AutogroupNice::SameAutogroup
}

/// The nice level of a running process (`/proc/PID/stat` field 19).
pub fn process_nice(pid: u32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(16)?.parse().ok()
}

/// A `/proc/PID/status` field given in kB (really KiB).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&text, field)
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// `/proc/stat` and `/proc/PID/stat` count in USER_HZ ticks, which Linux fixes at 100 per
/// second for user space whatever the kernel's own HZ.
const USER_HZ_US: u64 = 10_000;

/// CPU time (user + system, all threads) a process has used so far, in µs.
pub fn process_cpu_us(pid: u32) -> Option<u64> {
    parse_stat_cpu_us(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat_cpu_us(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) … utime(14) stime(15) → indices 11 and 12 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * USER_HZ_US)
}

/// Time the process's threads spent runnable but waiting for a CPU so far, in µs (sum of the
/// second field of `/proc/PID/task/*/schedstat`, which the kernel keeps in ns).
pub fn process_run_delay_us(pid: u32) -> Option<u64> {
    let mut total_ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(task) = task else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        total_ns += text
            .split_whitespace()
            .nth(1)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(total_ns / 1000)
}

/// Busy and total time of each CPU since boot, in µs (`/proc/stat`), indexed by CPU number.
pub fn cpu_times_us() -> Vec<(u64, u64)> {
    parse_proc_stat(&std::fs::read_to_string("/proc/stat").unwrap_or_default())
}

fn parse_proc_stat(text: &str) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        // `cpuN …` lines; the all-CPU line is `cpu  …`.
        let Some(rest) = line
            .strip_prefix("cpu")
            .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let Some(Ok(index)) = fields.next().map(str::parse::<usize>) else {
            continue;
        };
        let ticks: Vec<u64> = fields.filter_map(|f| f.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal (guest time is already in user).
        let total: u64 = ticks.iter().take(8).sum();
        let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
        if out.len() <= index {
            out.resize(index + 1, (0, 0));
        }
        out[index] = ((total - idle.min(total)) * USER_HZ_US, total * USER_HZ_US);
    }
    out
}

/// CPU numbers of a `taskset -c` list such as `0`, `1,3` or `0-2`.
pub fn parse_cpu_list(list: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(c) = part.parse() {
                    out.push(c);
                }
            }
        }
    }
    out
}

/// A loopback port that was free a moment ago (the OS picked it).
pub fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
    Ok(l.local_addr()?.port())
}

/// One HTTP/1.1 request on a fresh connection; returns the status and the whole body.
pub async fn http_call(
    addr: SocketAddr,
    method: http::Method,
    path: &str,
    body: Bytes,
    timeout: Duration,
) -> anyhow::Result<(u16, Bytes)> {
    http_call_with(addr, method, path, &[], body, timeout).await
}

/// [`http_call`] with extra request headers.
pub async fn http_call_with(
    addr: SocketAddr,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    timeout: Duration,
) -> anyhow::Result<(u16, Bytes)> {
    let call = async {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, addr.to_string())
            .header(http::header::CONTENT_TYPE, "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = sender.send_request(req.body(Full::new(body))?).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        driver.abort();
        anyhow::Ok((status, body))
    };
    tokio::time::timeout(timeout, call)
        .await
        .with_context(|| format!("{addr}{path}: no answer within {timeout:?}"))?
}

/// Poll `GET path` until it answers 200, the process exits, or `timeout` passes.
pub async fn wait_ready(
    process: &mut Process,
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let until = Instant::now() + timeout;
    loop {
        if let Some(status) = process.exited() {
            anyhow::bail!(
                "{} exited ({status}) before it was ready; log {}:\n{}",
                process.name(),
                process.log().display(),
                process.log_tail()
            );
        }
        if let Ok((200, _)) = http_call(
            addr,
            http::Method::GET,
            path,
            Bytes::new(),
            Duration::from_millis(500),
        )
        .await
        {
            return Ok(());
        }
        if Instant::now() >= until {
            anyhow::bail!(
                "{} did not answer 200 on http://{addr}{path} within {timeout:?}; log {}:\n{}",
                process.name(),
                process.log().display(),
                process.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Quote an argument for a shell command line shown to people.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `infergate sim` flags for a backend that adds no latency and never queues: what the overhead
/// benchmarks put behind the proxy under test.
pub const ZERO_LATENCY_SIM: [&str; 8] = [
    "--time-to-first-token",
    "0",
    "--inter-token-latency",
    "0",
    "--max-num-seqs",
    "100000",
    "--max-waiting-queue-length",
    "100000",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_parse() {
        let status =
            "Name:\tinfergate\nVmPeak:\t  123456 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(20480));
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(10240));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
        // Our own process has one.
        assert!(proc_status_kib(std::process::id(), "VmHWM").is_some_and(|k| k > 0));
    }

    #[test]
    fn cpu_times_parse() {
        let stat = "1234 (infer gate) (x) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 3 0";
        assert_eq!(parse_stat_cpu_us(stat), Some(175 * 10_000));
        assert!(process_cpu_us(std::process::id()).is_some());
        assert!(process_run_delay_us(std::process::id()).is_some());
        let proc_stat = "cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 4 1 5 40 10 0 0 0 0 0\ncpu1 6 0 5 60 0 0 1 0 0 0\nintr 1\n";
        assert_eq!(
            parse_proc_stat(proc_stat),
            vec![(10 * 10_000, 60 * 10_000), (12 * 10_000, 72 * 10_000)]
        );
        assert!(!cpu_times_us().is_empty());
        assert_eq!(parse_cpu_list("0"), vec![0]);
        assert_eq!(parse_cpu_list("1,3"), vec![1, 3]);
        assert_eq!(parse_cpu_list("0-2, 5"), vec![0, 1, 2, 5]);
        assert!(parse_cpu_list("x").is_empty());
    }

    #[test]
    fn a_nice_process_gets_its_own_autogroup_and_ours_is_untouched() {
        let ours_before = std::fs::read_to_string("/proc/self/autogroup").ok();
        let dir = tempfile::tempdir().expect("tempdir");
        let p = Process::spawn(
            "sleep",
            &Placement {
                cpus: None,
                nice: Some(5),
            },
            Path::new("sleep"),
            &["30".to_string()],
            &[],
            &dir.path().join("sleep.log"),
        )
        .expect("spawn");
        // The wrappers exec in place; wait until the PID runs `sleep` itself.
        let until = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(format!("/proc/{}/comm", p.pid()))
            .is_ok_and(|c| c.trim() != "sleep")
            && Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        // The plain nice level applies everywhere; `nice -n` adds to the level we run at
        // (a CI runner may itself run niced) and the kernel caps it at 19.
        let ours_nice = process_nice(std::process::id()).expect("our own nice level");
        assert_eq!(process_nice(p.pid()), Some((ours_nice + 5).min(19)));
        let status = p.autogroup_nice().cloned().expect("nice asked for");
        let theirs = std::fs::read_to_string(format!("/proc/{}/autogroup", p.pid())).ok();
        p.stop();
        match (&status, &ours_before) {
            (AutogroupNice::Applied, Some(ours)) => {
                // Applied means the child was seen in an autogroup other than ours and the
                // kernel took the write; what a sandbox then reports for it varies.
                let theirs = theirs.expect("applied, so readable");
                assert_ne!(
                    theirs.split_whitespace().next(),
                    ours.split_whitespace().next()
                );
            }
            (AutogroupNice::Applied, None) => {
                panic!("applied an autogroup nice level without an autogroup of our own")
            }
            (other, _) => eprintln!("no autogroup of its own here: {other:?}"),
        }
        // Whatever happened, our own session's autogroup is untouched.
        assert_eq!(
            std::fs::read_to_string("/proc/self/autogroup").ok(),
            ours_before
        );
    }

    #[test]
    fn placement_wraps_the_command() {
        let p = Placement {
            cpus: Some("1".into()),
            nice: Some(-5),
        };
        assert_eq!(
            p.prefix(),
            ["setsid", "nice", "-n", "-5", "taskset", "-c", "1"]
        );
        assert!(Placement::default().prefix().is_empty());
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("--rate"), "--rate");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[tokio::test]
    async fn processes_are_stopped_by_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("sleep.log");
        let mut p = Process::spawn(
            "sleep",
            &Placement::default(),
            Path::new("sleep"),
            &["30".to_string()],
            &[],
            &log,
        )
        .expect("spawn");
        let pid = p.pid();
        assert!(p.exited().is_none());
        assert!(p.wait_exit(Duration::from_millis(50)).await.is_none());
        p.stop();
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }
}
