//! Response bodies: whole bodies, and streams passed through as they arrive.
//!
//! A streamed response is an [`SseStream`]: each upstream frame goes through the provider's stream
//! translator (SSE or AWS event-stream in, OpenAI events out), each event through the rewriter
//! (model name back to what the client asked, the gateway's own usage chunk hidden, usage
//! learned) and, for Anthropic clients, the Messages encoder — O(1) work per chunk, no task per
//! chunk, at most one partial event held. When the upstream breaks, stalls past the idle timeout
//! or ends without completing, the client gets a terminal SSE error event in its own format
//! (OpenAI `data: {"error": …}`, Anthropic `event: error`), never a clean-looking end, and usage
//! is settled for what was delivered. A stream settles when it completes (before the last event
//! is forwarded); dropping the body (client disconnect) still settles.
//!
//! When response guardrails or a cache store apply, each forwarded event also goes through the
//! stream's [`StreamFilter`] (between the rewriter and the client's format): incremental
//! scanning with a small hold-back window (a secret split across chunks is still caught),
//! redaction in place, capture of the answer for the cache. A block ends the stream with a
//! terminal `content_policy_violation` error event; the held text that triggered it is never
//! sent.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use infergate_protocol::{ApiError, EventOutcome, OpenAiStreamRewriter};
use infergate_providers::anthropic::MessagesStreamEncoder;
use infergate_providers::StreamTranslator;
use infergate_scheduler::InFlight;

use crate::context::{Outcome, RequestContext};
use crate::error::GatewayError;
use crate::snapshot::Snapshot;
use crate::stages::payload::StreamFilter;
use crate::Gateway;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the data plane sends.
pub enum GatewayBody {
    Full(Option<Bytes>),
    Stream(Box<SseStream>),
}

impl GatewayBody {
    pub fn full(b: impl Into<Bytes>) -> Self {
        GatewayBody::Full(Some(b.into()))
    }
    pub fn empty() -> Self {
        GatewayBody::Full(None)
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            GatewayBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            GatewayBody::Stream(s) => Pin::new(s.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            GatewayBody::Full(b) => b.is_none(),
            GatewayBody::Stream(s) => s.finished,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            GatewayBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            GatewayBody::Full(None) => SizeHint::with_exact(0),
            GatewayBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// A streamed response on its way to the client: upstream bytes → the provider's stream
/// translator (OpenAI events out) → the rewriter (model name, usage) → the client's format
/// (OpenAI as is, or Anthropic Messages events).
pub struct SseStream {
    upstream: Incoming,
    translator: Box<dyn StreamTranslator>,
    rewriter: OpenAiStreamRewriter,
    /// Set when the client spoke Anthropic Messages.
    encoder: Option<MessagesStreamEncoder>,
    /// Response guardrails and cache capture, when any apply.
    filter: Option<StreamFilter>,
    /// Set when the filter blocked: the stream ends with this error next.
    blocked: Option<GatewayError>,
    /// Output ready to send before polling the upstream again.
    queued: Option<Bytes>,
    idle: Pin<Box<tokio::time::Sleep>>,
    idle_timeout: Duration,
    finished: bool,
    settle: Option<Settlement>,
}

/// What settling needs; taken exactly once (end of stream or drop).
struct Settlement {
    gw: Arc<Gateway>,
    snap: Arc<Snapshot>,
    ctx: RequestContext,
    in_flight: Option<InFlight>,
}

/// The per-event stages after the provider's translator.
struct Stages<'a> {
    rewriter: &'a mut OpenAiStreamRewriter,
    filter: &'a mut Option<StreamFilter>,
    blocked: &'a mut Option<GatewayError>,
    encoder: &'a mut Option<MessagesStreamEncoder>,
}

impl Stages<'_> {
    /// Run one OpenAI event through the rewriter, the response filter and, for Anthropic
    /// clients, the encoder. Nothing passes once the filter has blocked.
    fn emit(&mut self, event: &Bytes, out: &mut BytesMut) {
        if self.blocked.is_some() {
            return;
        }
        let EventOutcome::Forward(b) = self.rewriter.process(event) else {
            return;
        };
        let b = match self.filter.as_mut().map(|f| f.on_event(b.clone())) {
            None => b,
            Some(Ok(out)) => out,
            Some(Err(block)) => {
                *self.blocked = Some(GatewayError::ContentPolicy {
                    message: block.message(),
                    guardrail: block.guardrail.to_string(),
                });
                return;
            }
        };
        if b.is_empty() {
            return;
        }
        match self.encoder {
            Some(enc) => out.extend_from_slice(&enc.process(&b)),
            None => out.extend_from_slice(&b),
        }
    }
}

impl SseStream {
    /// `first` holds the first OpenAI events, already translated (the pipeline waits for them
    /// so that a failure before them can still be retried elsewhere).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gw: Arc<Gateway>,
        snap: Arc<Snapshot>,
        ctx: RequestContext,
        in_flight: Option<InFlight>,
        upstream: Incoming,
        first: Vec<Bytes>,
        translator: Box<dyn StreamTranslator>,
        rewriter: OpenAiStreamRewriter,
        encoder: Option<MessagesStreamEncoder>,
        idle_timeout: Duration,
        filter: Option<StreamFilter>,
    ) -> Self {
        let mut s = Self {
            upstream,
            translator,
            rewriter,
            encoder,
            filter,
            blocked: None,
            queued: None,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            idle_timeout,
            finished: false,
            settle: Some(Settlement {
                gw,
                snap,
                ctx,
                in_flight,
            }),
        };
        let t = Instant::now();
        let mut out = BytesMut::new();
        let mut stages = s.stages();
        for ev in &first {
            stages.emit(ev, &mut out);
        }
        s.account(t);
        s.queued = (!out.is_empty()).then(|| out.freeze());
        s
    }

    fn stages(&mut self) -> Stages<'_> {
        Stages {
            rewriter: &mut self.rewriter,
            filter: &mut self.filter,
            blocked: &mut self.blocked,
            encoder: &mut self.encoder,
        }
    }

    fn account(&mut self, t: Instant) {
        if let Some(st) = self.settle.as_mut() {
            st.ctx.chunk_work += t.elapsed();
        }
    }

    /// Run one upstream chunk through translator, rewriter and encoder; `None` if nothing to
    /// send yet. O(1) work per event; no task, no buffer that grows with the stream.
    fn process(&mut self, chunk: Bytes) -> Option<Bytes> {
        let t = Instant::now();
        let mut out = BytesMut::new();
        let mut stages = Stages {
            rewriter: &mut self.rewriter,
            filter: &mut self.filter,
            blocked: &mut self.blocked,
            encoder: &mut self.encoder,
        };
        self.translator
            .feed(chunk, &mut |ev| stages.emit(&ev, &mut out));
        self.account(t);
        (!out.is_empty()).then(|| out.freeze())
    }

    /// The upstream ended: whatever the translator still holds.
    fn drain(&mut self) -> Option<Bytes> {
        let mut out = BytesMut::new();
        let mut stages = Stages {
            rewriter: &mut self.rewriter,
            filter: &mut self.filter,
            blocked: &mut self.blocked,
            encoder: &mut self.encoder,
        };
        self.translator.finish(&mut |ev| stages.emit(&ev, &mut out));
        (!out.is_empty()).then(|| out.freeze())
    }

    fn finish(&mut self, outcome: Outcome, error: Option<&GatewayError>) {
        self.finished = true;
        if let Some(mut s) = self.settle.take() {
            s.ctx.usage = self.rewriter.usage;
            s.ctx.stream_events = self.rewriter.events;
            if let Some(e) = error {
                s.ctx.error = Some(e.reason());
            }
            if let Some(f) = self.filter.take() {
                f.finish(&s.gw, &mut s.ctx, outcome == Outcome::Complete);
            }
            s.ctx.settle(&s.gw, &s.snap, Some(outcome));
            // The scheduler learns the request ended (and how much of its prompt was cached).
            if let Some(f) = s.in_flight {
                f.finish(s.ctx.usage.map(scheduler_usage));
            }
        }
    }

    fn upstream_name(&self) -> String {
        self.settle
            .as_ref()
            .and_then(|s| s.ctx.pool.as_ref().or(s.ctx.backend.as_ref()))
            .map(|p| p.0.to_string())
            .unwrap_or_default()
    }

    /// End the stream with a terminal error event in the client's format. What was delivered
    /// before it is settled (usage seen so far).
    fn fail(
        &mut self,
        err: GatewayError,
        before: Option<Bytes>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let api: ApiError = err.to_api();
        let event = match self.encoder {
            Some(_) => crate::stages::messages::error_event(&api),
            None => api.sse_event(),
        };
        let outcome = if matches!(err, GatewayError::ContentPolicy { .. }) {
            Outcome::Blocked
        } else {
            Outcome::UpstreamError
        };
        self.finish(outcome, Some(&err));
        let out = match before {
            Some(b) => {
                let mut m = BytesMut::from(&b[..]);
                m.extend_from_slice(&event);
                m.freeze()
            }
            None => event,
        };
        Poll::Ready(Some(Ok(Frame::data(out))))
    }

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(b) = this.queued.take() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        if this.finished {
            return Poll::Ready(None);
        }
        if let Some(err) = this.blocked.take() {
            return this.fail(err, None);
        }
        loop {
            match Pin::new(&mut this.upstream).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let deadline = tokio::time::Instant::now() + this.idle_timeout;
                    this.idle.as_mut().reset(deadline);
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers
                    };
                    let out = this.process(data);
                    if let Some(err) = this.blocked.take() {
                        // What was released before the block, then the error event.
                        return this.fail(err, out);
                    }
                    if this.rewriter.done && !this.rewriter.upstream_error {
                        // Settle before `[DONE]` reaches the client: its next request then sees
                        // this one's real usage in every limit and budget, not the reservation.
                        this.finish(Outcome::Complete, None);
                    }
                    if let Some(out) = out {
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                    if this.finished {
                        return Poll::Ready(None);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let err = GatewayError::UpstreamBroken {
                        pool: this.upstream_name(),
                        detail: e.to_string(),
                    };
                    return this.fail(err, None);
                }
                Poll::Ready(None) => {
                    let tail = this.drain();
                    if let Some(err) = this.blocked.take() {
                        return this.fail(err, tail);
                    }
                    if !this.rewriter.done && !this.rewriter.upstream_error {
                        let err = GatewayError::UpstreamBroken {
                            pool: this.upstream_name(),
                            detail: "the upstream closed the stream before it was complete".into(),
                        };
                        return this.fail(err, tail);
                    }
                    let outcome = if this.rewriter.upstream_error {
                        Outcome::UpstreamError
                    } else {
                        Outcome::Complete
                    };
                    this.finish(outcome, None);
                    return Poll::Ready(tail.map(|t| Ok(Frame::data(t))));
                }
                Poll::Pending => {
                    if this.idle.as_mut().poll(cx).is_ready() {
                        let err = GatewayError::UpstreamBroken {
                            pool: this.upstream_name(),
                            detail: format!(
                                "no data from the upstream for {}s",
                                this.idle_timeout.as_secs_f64()
                            ),
                        };
                        return this.fail(err, None);
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

/// Usage as the scheduler's finish hook takes it.
pub fn scheduler_usage(u: infergate_protocol::Usage) -> infergate_scheduler::RequestUsage {
    infergate_scheduler::RequestUsage {
        prompt_tokens: u.input_tokens,
        cached_tokens: u.cached_input_tokens,
        output_tokens: u.output_tokens,
    }
}

impl Drop for SseStream {
    fn drop(&mut self) {
        if self.settle.is_some() {
            self.finish(Outcome::ClientDisconnected, None);
        }
    }
}
