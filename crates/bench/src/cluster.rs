//! Real processes for multi-replica runs: a `redis-server` on a free port with its own directory,
//! an `infergate sim` backend, and `infergate serve` replicas sharing one configuration. Used by
//! `bench limits` and by the multi-replica integration tests. Everything binds 127.0.0.1 and is
//! stopped by PID when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::process::{free_port, wait_ready, Placement, Process};

/// A `redis-server` this run started.
pub struct RedisServer {
    pub process: Option<Process>,
    pub port: u16,
    dir: PathBuf,
    placement: Placement,
}

fn redis_binary() -> anyhow::Result<PathBuf> {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("redis-server");
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!(
        "redis-server is not installed: run scripts/setup-test-deps (Debian package redis-server)"
    )
}

impl RedisServer {
    /// Start on `port` (a free one when `None`), persistence off, files under `dir`.
    pub async fn start(dir: &Path, port: Option<u16>) -> anyhow::Result<Self> {
        Self::start_placed(dir, port, Placement::default()).await
    }

    /// As [`RedisServer::start`], on the given CPUs / nice level.
    pub async fn start_placed(
        dir: &Path,
        port: Option<u16>,
        placement: Placement,
    ) -> anyhow::Result<Self> {
        let port = match port {
            Some(p) => p,
            None => free_port()?,
        };
        let dir = dir.join(format!("redis-{port}"));
        std::fs::create_dir_all(&dir)?;
        let mut s = Self {
            process: None,
            port,
            dir,
            placement,
        };
        s.restart().await?;
        Ok(s)
    }

    /// Start it again on the same port (after [`RedisServer::stop_server`]).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let args: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &self.dir.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let log = self.dir.join("redis.log");
        let mut p = Process::spawn(
            "redis-server",
            &self.placement,
            &redis_binary()?,
            &args,
            &[],
            &log,
        )?;
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = p.exited() {
                bail!("redis-server exited ({status}):\n{}", p.log_tail());
            }
            if ping(self.port).await {
                break;
            }
            if Instant::now() > until {
                bail!(
                    "redis-server did not answer PING within 10s:\n{}",
                    p.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.process = Some(p);
        Ok(())
    }

    /// Stop the server (by PID); the port stays ours for [`RedisServer::restart`].
    pub fn stop_server(&mut self) {
        if let Some(p) = self.process.take() {
            p.stop();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Run a command with `redis-cli` and return its output (tests inspect what is stored).
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = std::process::Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .output()
            .context("redis-cli is not installed: run scripts/setup-test-deps")?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

async fn ping(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(Ok(mut s)) = tokio::time::timeout(
        Duration::from_millis(200),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    else {
        return false;
    };
    if s.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await,
        Ok(Ok(n)) if buf[..n].starts_with(b"+PONG")
    )
}

/// One `infergate serve` process.
pub struct Replica {
    pub process: Process,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
}

impl Replica {
    /// Start `infergate serve -c config` on free ports; ready when `/readyz` answers 200.
    pub async fn start(
        bin: &Path,
        name: &str,
        config: &Path,
        log: &Path,
        cpus: Option<&str>,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let args = vec![
            "serve".to_string(),
            "--config".into(),
            config.display().to_string(),
            "--listen".into(),
            listen.to_string(),
            "--admin".into(),
            admin.to_string(),
        ];
        let placement = Placement {
            cpus: cpus.map(str::to_string),
            nice: None,
        };
        let mut process = Process::spawn(name, &placement, bin, &args, env, log)?;
        wait_ready(&mut process, admin, "/readyz", Duration::from_secs(30)).await?;
        Ok(Self {
            process,
            listen,
            admin,
        })
    }
}

/// Start `infergate sim` on a free port; returns the process and its address.
pub async fn start_sim(
    bin: &Path,
    model: &str,
    extra: &[&str],
    log: &Path,
    cpus: Option<&str>,
) -> anyhow::Result<(Process, SocketAddr)> {
    let port = free_port()?;
    let mut args = vec![
        "sim".to_string(),
        "--port".into(),
        port.to_string(),
        "--model".into(),
        model.to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let placement = Placement {
        cpus: cpus.map(str::to_string),
        nice: None,
    };
    let mut p = Process::spawn("sim", &placement, bin, &args, &[], log)?;
    wait_ready(&mut p, addr, "/health", Duration::from_secs(20)).await?;
    Ok((p, addr))
}

/// An HTTP/1.1 answer.
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A reusable HTTP/1.1 connection to one address (reconnects when the server closed it).
pub struct Conn {
    addr: SocketAddr,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, sender: None }
    }

    /// One request; `headers` are added as given.
    pub async fn call(
        &mut self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        timeout: Duration,
    ) -> anyhow::Result<Answer> {
        let fut = async {
            let ready = match &mut self.sender {
                Some(s) => s.ready().await.is_ok(),
                None => false,
            };
            if !ready {
                let tcp = tokio::net::TcpStream::connect(self.addr).await?;
                tcp.set_nodelay(true)?;
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                self.sender = Some(sender);
            }
            let Some(sender) = self.sender.as_mut() else {
                bail!("no connection");
            };
            let mut b = Request::builder()
                .method(method)
                .uri(path)
                .header(http::header::HOST, self.addr.to_string())
                .header(http::header::CONTENT_TYPE, "application/json");
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            let resp = sender.send_request(b.body(Full::new(body))?).await?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok(Answer {
                status,
                headers,
                body,
            })
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                bail!("{}{path}: no answer within {timeout:?}", self.addr)
            }
        }
    }
}

/// One request on a fresh connection.
pub async fn call(
    addr: SocketAddr,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> anyhow::Result<Answer> {
    Conn::new(addr)
        .call(method, path, headers, body.into(), Duration::from_secs(30))
        .await
}
