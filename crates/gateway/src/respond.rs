//! Response bodies: whole bodies, and streams passed through as they arrive.
//!
//! A streamed response is an [`SseStream`]: each upstream frame is cut into SSE events, each event
//! goes through the rewriter (model name back to what the client asked, the gateway's own usage
//! chunk hidden, usage learned) and out again — O(1) work per chunk, no task per chunk, at most
//! one partial event held. When the upstream breaks, stalls past the idle timeout or ends without
//! `[DONE]`, the client gets a terminal SSE error event, never a clean-looking end. A stream
//! settles when `[DONE]` arrives (before it is forwarded); dropping the body (client disconnect)
//! still settles the request.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use infergate_protocol::{ApiError, EventOutcome, OpenAiStreamRewriter, SseSplitter};
use infergate_scheduler::InFlight;

use crate::context::{Outcome, RequestContext};
use crate::error::GatewayError;
use crate::snapshot::Snapshot;
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

/// A streamed OpenAI-format response on its way to the client.
pub struct SseStream {
    upstream: Incoming,
    splitter: SseSplitter,
    rewriter: OpenAiStreamRewriter,
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
    in_flight: InFlight,
}

impl SseStream {
    /// `first` is the first upstream data frame, already received (the pipeline waits for it
    /// so that a failure before it can still be retried elsewhere).
    pub fn new(
        gw: Arc<Gateway>,
        snap: Arc<Snapshot>,
        ctx: RequestContext,
        in_flight: InFlight,
        upstream: Incoming,
        first: Option<Bytes>,
        rewriter: OpenAiStreamRewriter,
    ) -> Self {
        let idle_timeout = snap.settings().stream_idle_timeout;
        let mut s = Self {
            upstream,
            splitter: SseSplitter::new(),
            rewriter,
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
        if let Some(first) = first {
            s.queued = s.process(first);
        }
        s
    }

    /// Run one upstream chunk through the splitter and rewriter; `None` if nothing to send yet.
    fn process(&mut self, chunk: Bytes) -> Option<Bytes> {
        let t = Instant::now();
        let mut single: Option<Bytes> = None;
        let mut many: Option<BytesMut> = None;
        let rewriter = &mut self.rewriter;
        self.splitter.feed(chunk, |event| {
            if let EventOutcome::Forward(b) = rewriter.process(&event) {
                match (&mut single, &mut many) {
                    (None, None) => single = Some(b),
                    (Some(_), None) => {
                        let mut buf = BytesMut::new();
                        if let Some(s) = single.take() {
                            buf.extend_from_slice(&s);
                        }
                        buf.extend_from_slice(&b);
                        many = Some(buf);
                    }
                    (_, Some(buf)) => buf.extend_from_slice(&b),
                }
            }
        });
        if let Some(s) = self.settle.as_mut() {
            s.ctx.chunk_work += t.elapsed();
        }
        many.map(BytesMut::freeze).or(single)
    }

    fn finish(&mut self, outcome: Outcome, error: Option<&GatewayError>) {
        self.finished = true;
        if let Some(mut s) = self.settle.take() {
            s.ctx.usage = self.rewriter.usage;
            s.ctx.stream_events = self.rewriter.events;
            if let Some(e) = error {
                s.ctx.error = Some(e.reason());
            }
            s.ctx.settle(&s.gw, &s.snap, Some(outcome));
            // The scheduler learns the request ended (and how much of its prompt was cached).
            s.in_flight.finish(s.ctx.usage.map(scheduler_usage));
        }
    }

    fn pool_name(&self) -> String {
        self.settle
            .as_ref()
            .and_then(|s| s.ctx.pool.as_ref())
            .map(|p| p.0.to_string())
            .unwrap_or_default()
    }

    /// End the stream with a terminal error event.
    fn fail(&mut self, err: GatewayError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let api: ApiError = err.to_api();
        self.finish(Outcome::UpstreamError, Some(&err));
        Poll::Ready(Some(Ok(Frame::data(api.sse_event()))))
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
        loop {
            match Pin::new(&mut this.upstream).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let deadline = tokio::time::Instant::now() + this.idle_timeout;
                    this.idle.as_mut().reset(deadline);
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers
                    };
                    let out = this.process(data);
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
                        pool: this.pool_name(),
                        detail: e.to_string(),
                    };
                    return this.fail(err);
                }
                Poll::Ready(None) => {
                    let tail = this.splitter.finish();
                    if !this.rewriter.done && !this.rewriter.upstream_error {
                        // A half-written last event is not worth forwarding: the client gets
                        // the error event instead.
                        let err = GatewayError::UpstreamBroken {
                            pool: this.pool_name(),
                            detail: "the model server closed the stream before [DONE]".into(),
                        };
                        return this.fail(err);
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
                            pool: this.pool_name(),
                            detail: format!(
                                "no data from the model server for {}s",
                                this.idle_timeout.as_secs()
                            ),
                        };
                        return this.fail(err);
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
