//! One structured JSON line per request, written off the hot path.
//!
//! Request tasks serialise their line and hand it to a bounded channel; one writer thread wakes
//! every [`FLUSH_INTERVAL`], drains what has queued and writes it in one buffered batch. The
//! writer is never woken per line: a request pays for a non-blocking enqueue, not a thread
//! switch. When the writer falls behind, lines are dropped and counted
//! (`infergate_access_log_dropped_total`) rather than letting memory grow or requests wait. Secrets never reach this module: the line is built from
//! the request context, which holds no credentials.

use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::time::Duration;

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
    /// The caller's tenant, when identities are configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<&'a str>,
    /// The API key's id (`igk_…`, never the key) or the token subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<&'a str>,
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
    /// Time spent waiting in the pool's flow-control queue, when it waited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_ms: Option<f64>,
    /// Stable error reason when the request failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    /// How the response ended for streams: `complete`, `client_disconnected`, `upstream_error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'a str>,
    /// Guardrail verdicts: guardrail, type, action, direction, entity types found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guardrails: Option<&'a [infergate_semantic::guard::Verdict]>,
    /// `hit`, `semantic-hit` or `miss`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_reason: Option<&'a str>,
    /// Retrieved chunks added to the prompt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrieved: Option<usize>,
    /// Time spent embedding the prompt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embed_ms: Option<f64>,
}

/// A handle to the writer thread.
#[derive(Clone)]
pub struct AccessLog {
    tx: SyncSender<Vec<u8>>,
    dropped: Counter,
}

const QUEUE_LINES: usize = 16 * 1024;

/// How long a line may wait before it is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(20);

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
    loop {
        std::thread::sleep(FLUSH_INTERVAL);
        let mut wrote = false;
        loop {
            match rx.try_recv() {
                Ok(line) => {
                    let _ = out.write_all(&line);
                    wrote = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let _ = out.flush();
                    return;
                }
            }
        }
        if wrote {
            let _ = out.flush();
        }
    }
}

/// RFC 3339 UTC timestamp with milliseconds, without pulling in a date crate. The date and time
/// of day are formatted once per second per thread; each call only appends the milliseconds.
pub fn rfc3339_now() -> String {
    use std::cell::RefCell;
    thread_local! {
        static PREFIX: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let millis = now.subsec_millis();
    PREFIX.with(|p| {
        let mut p = p.borrow_mut();
        if p.0 != secs {
            *p = (secs, civil_seconds(secs));
        }
        let mut out = String::with_capacity(24);
        out.push_str(&p.1);
        out.push('.');
        let m = u8::try_from(millis / 100).unwrap_or(0);
        out.push(char::from(b'0' + m));
        out.push(char::from(
            b'0' + u8::try_from((millis / 10) % 10).unwrap_or(0),
        ));
        out.push(char::from(b'0' + u8::try_from(millis % 10).unwrap_or(0)));
        out.push('Z');
        out
    })
}

/// `YYYY-MM-DDTHH:MM:SS` for a Unix time in seconds.
fn civil_seconds(secs: u64) -> String {
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
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_time_is_right() {
        assert_eq!(civil_seconds(0), "1970-01-01T00:00:00");
        assert_eq!(civil_seconds(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(civil_seconds(1_795_312_082), "2026-11-22T01:48:02");
    }

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
            tenant: None,
            key_id: None,
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
            queue_ms: None,
            error: None,
            outcome: None,
            guardrails: None,
            cache: None,
            route_reason: None,
            retrieved: None,
            embed_ms: None,
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
