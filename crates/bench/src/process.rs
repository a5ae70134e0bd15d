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

/// A started child process.
pub struct Process {
    name: String,
    child: Child,
    command_line: String,
    log: PathBuf,
}

impl Process {
    /// Start `program args…` (under `taskset -c CPUS` when `cpus` is given), with stdout and
    /// stderr appended to `log`.
    pub fn spawn(
        name: &str,
        cpus: Option<&str>,
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
        let mut cmd = match cpus {
            Some(c) => {
                let mut cmd = Command::new("taskset");
                cmd.arg("-c").arg(c).arg(program);
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
        if let Some(c) = cpus {
            command_line.push_str(&format!("taskset -c {c} "));
        }
        command_line.push_str(&program.display().to_string());
        for a in args {
            command_line.push(' ');
            command_line.push_str(&shell_quote(a));
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}: {command_line}"))?;
        Ok(Self {
            name: name.to_string(),
            child,
            command_line,
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
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
    let call = async {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, addr.to_string())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        let resp = sender.send_request(req).await?;
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
            None,
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
