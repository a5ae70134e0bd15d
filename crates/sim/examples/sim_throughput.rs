//! Measures the zero-latency fast path: one simulator replica on a single-threaded runtime (one
//! core), driven by a minimal raw HTTP/1.1 keep-alive client on another thread.
//!
//! `cargo run --release -p infergate-sim --example sim_throughput -- [connections] [seconds]`

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use infergate_sim::{SimConfig, SimFleet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let connections: usize = args.next().map_or(Ok(32), |a| a.parse())?;
    let seconds: u64 = args.next().map_or(Ok(5), |a| a.parse())?;

    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();
    let server = std::thread::spawn(move || -> anyhow::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let fleet =
                SimFleet::start(SimConfig::default(), IpAddr::V4(Ipv4Addr::LOCALHOST), 0, 1)
                    .await?;
            addr_tx.send(fleet.addrs()[0])?;
            tokio::time::sleep(Duration::from_secs(seconds + 2)).await;
            fleet.shutdown().await;
            anyhow::Ok(())
        })
    });
    let addr = addr_rx.recv()?;

    let body = r#"{"model":"sim-model","messages":[{"role":"user","content":"Say hello to the benchmark."}],"max_tokens":16}"#;
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let elapsed = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let (request, done, count) = (request.clone(), Arc::clone(&done), Arc::clone(&count));
            tasks.push(tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let mut buf = vec![0u8; 64 * 1024];
                while !done.load(Ordering::Relaxed) {
                    stream.write_all(request.as_bytes()).await?;
                    let mut filled = 0;
                    loop {
                        let n = stream.read(&mut buf[filled..]).await?;
                        anyhow::ensure!(n > 0, "server closed the connection");
                        filled += n;
                        if let Some(len) = complete_response_len(&buf[..filled]) {
                            anyhow::ensure!(
                                len == filled,
                                "pipelining is not used, so one response per read loop"
                            );
                            break;
                        }
                    }
                    anyhow::ensure!(
                        buf.starts_with(b"HTTP/1.1 200"),
                        "{}",
                        String::from_utf8_lossy(&buf[..filled])
                    );
                    count.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(())
            }));
        }
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        done.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await??;
        }
        anyhow::Ok(start.elapsed())
    })?;
    let n = count.load(Ordering::Relaxed);
    writeln!(
        std::io::stdout(),
        "{n} requests in {:.2}s over {connections} connections: {:.0} req/s (server on one core)",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    )?;
    server
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))??;
    Ok(())
}

/// Total length of the first response in `buf` once it is complete.
fn complete_response_len(buf: &[u8]) -> Option<usize> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })?
        .parse()
        .ok()?;
    (buf.len() >= head_end + len).then_some(head_end + len)
}
