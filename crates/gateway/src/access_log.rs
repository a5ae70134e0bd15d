//! One structured JSON line per request, written off the hot path.
//!
//! Request tasks serialise their line and hand it to a bounded channel; one writer thread
//! batches lines into a buffered writer and flushes whenever the channel runs dry. When the writer
//! falls behind, lines are dropped and counted (`infergate_access_log_dropped_total`) rather than
//! letting memory grow or requests wait. Secrets never reach this module: the line is built from
//! the request context, which holds no credentials.

use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};

use prometheus_client::metrics::counter::Counter;
use serde::Serialize;

/// The fields of one access-log line.
#[derive(Debug, Serialize)]
pub struct AccessRecord<'a> {
    /// RFC 3339 UTC time the request arrived.
    pub ts: String,
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    /// The model the client asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<&'a str>,
    /// The model the upstream was asked for (after rewrites).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_served: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<&'a str>,
    /// The external backend that served (`Backend` name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<&'a str>,
    /// USD at the backend's configured prices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<&'a str>,
    pub stream: bool,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_out: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_cached: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    pub duration_ms: f64,
    pub overhead_ms: f64,
    pub priority: i32,
    /// Stable error reason when the request failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    /// How the response ended for streams: `complete`, `client_disconnected`, `upstream_error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'a str>,
}

/// A handle to the writer thread.
#[derive(Clone)]
pub struct AccessLog {
    tx: SyncSender<Vec<u8>>,
    dropped: Counter,
}

const QUEUE_LINES: usize = 16 * 1024;

impl AccessLog {
    /// Start the writer for `target`: `stdout`, `stderr` or a file path (appended).
    pub fn start(target: &str, dropped: Counter) -> std::io::Result<Self> {
        let sink: Box<dyn Write + Send> = match target {
            "stdout" | "-" => Box::new(std::io::stdout()),
            "stderr" => Box::new(std::io::stderr()),
            path => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let (tx, rx) = sync_channel(QUEUE_LINES);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_loop(&rx, sink))?;
        Ok(Self { tx, dropped })
    }

    pub fn write(&self, record: &AccessRecord<'_>) {
        let mut line = Vec::with_capacity(384);
        if serde_json::to_writer(&mut line, record).is_err() {
            return;
        }
        line.push(b'\n');
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.inc();
            }
        }
    }
}

fn write_loop(rx: &Receiver<Vec<u8>>, sink: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, sink);
    while let Ok(line) = rx.recv() {
        let _ = out.write_all(&line);
        while let Ok(more) = rx.try_recv() {
            let _ = out.write_all(&more);
        }
        let _ = out.flush();
    }
}

/// RFC 3339 UTC timestamp with milliseconds, without pulling in a date crate.
pub fn rfc3339_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let millis = now.subsec_millis();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm), valid for the Unix era.
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_shape() {
        let t = rfc3339_now();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z'));
        assert!(t.starts_with("20"));
    }

    #[test]
    fn lines_reach_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::start(path.to_str().unwrap(), Counter::default()).unwrap();
        let rec = AccessRecord {
            ts: rfc3339_now(),
            request_id: "r1",
            method: "POST",
            path: "/v1/chat/completions",
            status: 200,
            model: Some("m"),
            model_served: Some("t"),
            pool: Some("p"),
            backend: None,
            region: None,
            cost_usd: None,
            endpoint: Some("127.0.0.1:1"),
            provider: None,
            stream: false,
            attempts: 1,
            tokens_in: Some(3),
            tokens_out: Some(4),
            tokens_cached: None,
            ttft_ms: None,
            duration_ms: 1.5,
            overhead_ms: 0.1,
            priority: 0,
            error: None,
            outcome: None,
        };
        log.write(&rec);
        for _ in 0..100 {
            if std::fs::read_to_string(&path)
                .unwrap_or_default()
                .ends_with('\n')
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["request_id"], "r1");
        assert_eq!(v["tokens_out"], 4);
    }
}
