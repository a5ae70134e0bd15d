//! Response bodies: a complete JSON body, or an SSE token stream.
//!
//! Owns the SSE wire shape (`data: {...}\n\n` chunks, then `data: [DONE]\n\n`; with
//! `stream_options.include_usage` every chunk carries `"usage":null` and a last chunk with
//! `"choices":[]` carries the usage, exactly as OpenAI and vLLM do) and the pacing of tokens.
//!
//! A [`TokenStream`] is a state machine polled by hyper: it waits for a running slot, sleeps the
//! prefill time, then emits one token per inter-token latency. It does O(1) work per token: one
//! re-armed timer (never a task per chunk), one small buffer per chunk, and no timer at all when
//! latencies are zero. Dropping it (client gone) frees the slot; `X-Fail-After-Tokens: N` ends it
//! with an error after min(N, all) tokens so the connection is cut without `[DONE]`.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use crate::api::Usage;
use crate::engine::{Admission, QueuedRequest, SeqSlot};
use crate::inference::{record_abort, Endpoint, Job, Running};
use crate::lanes::{LaneAdmission, LaneGuard, LaneWait};

/// Why a stream ended without `[DONE]`.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("stream aborted after {0} tokens (X-Fail-After-Tokens)")]
    FailAfterTokens(u32),
    #[error("the engine stopped before the request was admitted")]
    EngineStopped,
}

/// The body of every simulator response.
pub enum SimBody {
    Full(Option<Bytes>),
    Stream(Box<TokenStream>),
}

impl SimBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        SimBody::Full(Some(bytes.into()))
    }

    pub(crate) fn empty() -> Self {
        SimBody::Full(None)
    }
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        match self.get_mut() {
            SimBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            SimBody::Stream(stream) => stream.poll_next_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            SimBody::Full(bytes) => bytes.is_none(),
            SimBody::Stream(stream) => matches!(stream.phase, Phase::Done),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            SimBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            SimBody::Full(None) => SizeHint::with_exact(0),
            SimBody::Stream(_) => SizeHint::default(),
        }
    }
}

enum Phase {
    Queued(QueuedRequest),
    /// Running, waiting for a prefill lane.
    LaneQueued(LaneWait),
    Prefill,
    Decoding,
    Done,
}

/// An SSE completion stream.
pub struct TokenStream {
    job: Job,
    phase: Phase,
    running: Option<Running>,
    head: String,
    include_usage: bool,
    fail_after: Option<u32>,
    emitted: u32,
    /// When the next chunk is due (`None`: now).
    deadline: Option<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
    last_token_at: Instant,
    token_text: String,
    flushed_before_abort: bool,
}

impl TokenStream {
    pub(crate) fn new(
        job: Job,
        admission: Admission,
        include_usage: bool,
        fail_after: Option<u32>,
    ) -> Self {
        let head = job.chunk_head();
        let now = Instant::now();
        let mut stream = TokenStream {
            job,
            phase: Phase::Done,
            running: None,
            head,
            include_usage,
            fail_after,
            emitted: 0,
            deadline: None,
            sleep: None,
            last_token_at: now,
            token_text: String::new(),
            flushed_before_abort: false,
        };
        match admission {
            Admission::Running(slot) => stream.begin(slot),
            Admission::Queued(waiting) => stream.phase = Phase::Queued(waiting),
        }
        stream
    }

    fn begin(&mut self, slot: SeqSlot) {
        let running = self.job.start(slot);
        let prefill = !running.prefill.is_zero();
        self.running = Some(running);
        self.phase = Phase::Prefill;
        if prefill {
            match self.job.prefill_lane() {
                LaneAdmission::Now(lane) => self.start_prefill(lane),
                LaneAdmission::Queued(wait) => self.phase = Phase::LaneQueued(wait),
            }
        }
    }

    /// The prefill starts on `lane`: the first token is due one prefill time later.
    fn start_prefill(&mut self, lane: LaneGuard) {
        if let Some(running) = &mut self.running {
            self.deadline = Some(lane.started + running.prefill);
            running.lane = Some(lane);
        }
        self.phase = Phase::Prefill;
    }

    /// Ready once the current deadline has passed; arms (or re-arms) the one timer otherwise.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(deadline) = self.deadline else {
            return Poll::Ready(());
        };
        if Instant::now() >= deadline {
            return Poll::Ready(());
        }
        let deadline = tokio::time::Instant::from_std(deadline);
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                sleep
            }
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        sleep.as_mut().poll(cx)
    }

    /// Schedules the next token one inter-token latency after the previous deadline (not after
    /// "now", so pacing does not drift with scheduling delays).
    fn schedule_next_token(&mut self) {
        if self.job.latency.is_zero() {
            return;
        }
        let load = self.job.load_factor();
        let itl = self.job.latency.inter_token(load, &mut self.job.rng);
        if itl.is_zero() {
            self.deadline = None;
        } else {
            let base = self.deadline.unwrap_or_else(Instant::now);
            self.deadline = Some(base + itl);
        }
    }

    fn poll_next_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        loop {
            match &mut self.phase {
                Phase::Queued(waiting) => match ready!(Pin::new(waiting).poll(cx)) {
                    Ok(slot) => self.begin(slot),
                    Err(_) => {
                        self.phase = Phase::Done;
                        return Poll::Ready(Some(Err(StreamError::EngineStopped)));
                    }
                },
                Phase::LaneQueued(wait) => {
                    let lane = ready!(Pin::new(wait).poll(cx));
                    self.start_prefill(lane);
                }
                Phase::Prefill => {
                    ready!(self.poll_deadline(cx));
                    // The prefill is done: its lane goes to the next request.
                    if let Some(running) = &mut self.running {
                        running.lane = None;
                    }
                    if self.fail_after == Some(0) {
                        return self.abort(cx);
                    }
                    let now = Instant::now();
                    self.job
                        .replica
                        .metrics
                        .ttft
                        .observe(now.saturating_duration_since(self.job.arrival));
                    let mut buf = Vec::with_capacity(256);
                    if self.job.endpoint == Endpoint::Chat {
                        self.write_choice(
                            &mut buf,
                            r#""delta":{"role":"assistant","content":""}"#,
                            None,
                        );
                    }
                    self.write_next_token(&mut buf);
                    self.last_token_at = now;
                    self.phase = Phase::Decoding;
                    self.schedule_next_token();
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))));
                }
                Phase::Decoding => {
                    // A response shorter than N still ends in a cut, never in [DONE]: the header
                    // exists to simulate a failure mid-stream.
                    if self
                        .fail_after
                        .is_some_and(|n| self.emitted >= n.min(self.job.plan.count))
                    {
                        return self.abort(cx);
                    }
                    if self.emitted >= self.job.plan.count {
                        return Poll::Ready(Some(Ok(Frame::data(self.finish()))));
                    }
                    ready!(self.poll_deadline(cx));
                    let now = Instant::now();
                    self.job
                        .replica
                        .metrics
                        .itl
                        .observe(now.saturating_duration_since(self.last_token_at));
                    self.last_token_at = now;
                    let mut buf = Vec::with_capacity(128);
                    self.write_next_token(&mut buf);
                    self.schedule_next_token();
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))));
                }
                Phase::Done => return Poll::Ready(None),
            }
        }
    }

    /// Writes the next token's chunk, if any token is left.
    fn write_next_token(&mut self, buf: &mut Vec<u8>) {
        self.token_text.clear();
        if !self.job.plan.tokens.next_token(&mut self.token_text) {
            return;
        }
        self.emitted += 1;
        let chat = self.job.endpoint == Endpoint::Chat;
        self.open_choice(buf);
        buf.extend_from_slice(if chat {
            br#""delta":{"content":"#
        } else {
            br#""text":"#
        });
        if serde_json::to_writer(&mut *buf, self.token_text.as_str()).is_err() {
            buf.extend_from_slice(b"\"\"");
        }
        if chat {
            buf.push(b'}');
        }
        self.close_choice(buf, None);
    }

    /// `data: {head,"choices":[{"index":0,<field>,"logprobs":null,"finish_reason":..}](,"usage":null)}\n\n`
    fn write_choice(&self, buf: &mut Vec<u8>, field: &str, finish_reason: Option<&str>) {
        self.open_choice(buf);
        buf.extend_from_slice(field.as_bytes());
        self.close_choice(buf, finish_reason);
    }

    fn open_choice(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(b"data: ");
        buf.extend_from_slice(self.head.as_bytes());
        buf.extend_from_slice(br#","choices":[{"index":0,"#);
    }

    fn close_choice(&self, buf: &mut Vec<u8>, finish_reason: Option<&str>) {
        buf.extend_from_slice(br#","logprobs":null,"finish_reason":"#);
        match finish_reason {
            Some(reason) => {
                buf.push(b'"');
                buf.extend_from_slice(reason.as_bytes());
                buf.push(b'"');
            }
            None => buf.extend_from_slice(b"null"),
        }
        buf.extend_from_slice(b"}]");
        if self.include_usage {
            buf.extend_from_slice(br#","usage":null"#);
        }
        buf.extend_from_slice(b"}\n\n");
    }

    /// The final chunk(s) and `[DONE]`; records the finished request and frees its slot.
    fn finish(&mut self) -> Bytes {
        let reason = self.job.plan.finish_reason;
        let mut buf = Vec::with_capacity(512);
        let field = match self.job.endpoint {
            Endpoint::Chat => r#""delta":{}"#,
            Endpoint::Completion => r#""text":"""#,
        };
        self.write_choice(&mut buf, field, Some(reason.as_str()));
        if self.include_usage {
            let cached = self.running.as_ref().map_or(0, |r| r.cached_tokens);
            let usage: Usage = self.job.usage(self.emitted, cached);
            buf.extend_from_slice(b"data: ");
            buf.extend_from_slice(self.head.as_bytes());
            buf.extend_from_slice(br#","choices":[],"usage":"#);
            if serde_json::to_writer(&mut buf, &usage).is_err() {
                buf.extend_from_slice(b"null");
            }
            buf.extend_from_slice(b"}\n\n");
        }
        buf.extend_from_slice(b"data: [DONE]\n\n");
        self.job.replica.metrics.record_finished(
            reason,
            self.job.prompt.tokens(),
            self.emitted,
            self.job.arrival.elapsed(),
        );
        self.running = None;
        self.phase = Phase::Done;
        Bytes::from(buf)
    }

    /// Ends the stream with an error, which makes hyper cut the connection (HTTP/1.1) or reset
    /// the stream (HTTP/2). It first yields once so hyper flushes the chunks already produced:
    /// the client must really receive the N tokens before the cut.
    fn abort(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        if !self.flushed_before_abort {
            self.flushed_before_abort = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        record_abort(&self.job, self.emitted);
        self.running = None;
        self.phase = Phase::Done;
        Poll::Ready(Some(Err(StreamError::FailAfterTokens(self.emitted))))
    }
}

impl Drop for TokenStream {
    fn drop(&mut self) {
        // The client went away mid-stream.
        if self.running.is_some() && !matches!(self.phase, Phase::Done) {
            record_abort(&self.job, self.emitted);
        }
    }
}
