//! One HTTP request through the proxy, as the Endpoint Picker sees it on one ext_proc stream
//! (FULL_DUPLEX_STREAMED bodies). A state machine with no I/O: each proxy message goes in, the
//! messages to send back come out, and when the request body is complete it asks for one
//! scheduling decision ([`Step::Schedule`]), which the caller makes and hands back through
//! [`Exchange::on_picked`].
//!
//! Request path: headers are held (no reply) while body chunks accumulate; at end of body the
//! JSON is parsed once, the picker decides, and the reply is a headers response
//! (`x-gateway-destination-endpoint`, `Content-Length`, `clear_route_cache`, and
//! `envoy.lb` dynamic metadata) followed by the body — the client's bytes with only the `model`
//! value spliced (and, for streams, `stream_options.include_usage` so usage can be read) — in
//! pieces of at most 62,000 bytes. Failures become immediate responses (400/404/413/429/503).
//!
//! Response path: SSE streams are rewritten event by event as they arrive (model name back to
//! the client's, usage read, the usage chunk the client did not ask for removed); whole JSON
//! bodies are held to the end, rewritten once and re-emitted with an exact `Content-Length`;
//! error responses pass through untouched. The ordering per direction is always headers →
//! body → trailers.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    processing_request, CommonResponse, HeaderMutation, HttpBody, HttpHeaders, ProcessingRequest,
    ProcessingResponse,
};
use infergate_protocol::response::rewrite_body;
use infergate_protocol::{EventOutcome, OpenAiStreamRewriter, RequestBody, SseSplitter, Usage};
use infergate_scheduler::PromptKind;

use crate::error::EppError;
use crate::metrics::{Metrics, PoolLabels, RequestLabels, TokenLabels};
use crate::scheduling::{Finished, PickError, PickRequest, Picked, Ticket};
use crate::wire::{self, Direction, Headers};

/// Largest whole (non-streamed) response held for the model rewrite; a bigger one passes
/// through unchanged.
const MAX_BUFFERED_RESPONSE: usize = 16 << 20;

/// What the caller does next.
#[derive(Debug)]
pub enum Step {
    /// Send these (possibly none) and keep reading.
    Send(Vec<ProcessingResponse>),
    /// The request is complete: call the picker with [`Exchange::pick_request`], then
    /// [`Exchange::on_picked`].
    Schedule,
    /// Send these, then end the stream (an immediate response was produced).
    Close(Vec<ProcessingResponse>),
}

/// Settings that hold for every stream of one picker.
#[derive(Debug, Clone, Default)]
pub struct ExchangeOptions {
    /// Honour the `test-epp-endpoint-selection` header and echo the conformance headers.
    pub test_endpoint_selection: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestPhase {
    /// Waiting for headers.
    Start,
    /// Headers seen, body arriving.
    Body,
    /// The decision was asked for.
    Scheduling,
    /// Headers and body were sent back.
    Forwarded,
    /// An immediate response ended the exchange.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseMode {
    /// Not seen yet.
    Pending,
    /// Pass chunks through untouched.
    Pass,
    /// SSE, rewritten event by event.
    Events,
    /// A whole JSON body, held to the end.
    Whole,
}

struct Decision<T> {
    pool: Arc<str>,
    public_model: Option<Arc<str>>,
    target_model: Option<String>,
    primary: Arc<str>,
    /// The client sent `stream_options.include_usage: true` (otherwise the usage chunk the
    /// picker asked for is removed from the stream).
    client_wants_usage: bool,
    ticket: Option<T>,
}

/// The state of one ext_proc stream.
pub struct Exchange<T: Ticket> {
    opts: ExchangeOptions,
    metrics: Arc<Metrics>,
    max_body: usize,
    phase: RequestPhase,
    headers: Headers,
    /// Pool named by the proxy's configuration (gRPC metadata or `infergate.pool`).
    pool_hint: Option<String>,
    subset: Option<Vec<String>>,
    body: BytesMut,
    parsed: Option<RequestBody>,
    /// Request trailers arrived before the body ended: they end the body.
    request_trailers: bool,
    body_done_at: Option<Instant>,
    decision: Option<Decision<T>>,
    // response
    mode: ResponseMode,
    status: u16,
    served: Option<String>,
    deferred_headers: Option<HeaderMutation>,
    held: BytesMut,
    splitter: SseSplitter,
    rewriter: Option<OpenAiStreamRewriter>,
    usage: Option<Usage>,
    /// The ticket was told the response's first byte passed.
    first_byte: bool,
    done: bool,
}

impl<T: Ticket> Exchange<T> {
    pub fn new(
        opts: ExchangeOptions,
        metrics: Arc<Metrics>,
        max_body: usize,
        pool_hint: Option<String>,
    ) -> Self {
        metrics.streams.inc();
        Self {
            opts,
            metrics,
            max_body,
            phase: RequestPhase::Start,
            headers: Headers::default(),
            pool_hint,
            subset: None,
            body: BytesMut::new(),
            parsed: None,
            request_trailers: false,
            body_done_at: None,
            decision: None,
            mode: ResponseMode::Pending,
            status: 0,
            served: None,
            deferred_headers: None,
            held: BytesMut::new(),
            splitter: SseSplitter::new(),
            rewriter: None,
            usage: None,
            first_byte: false,
            done: false,
        }
    }

    /// Feed one message from the proxy.
    pub fn on_message(&mut self, msg: ProcessingRequest) -> Step {
        let metadata = msg.metadata_context;
        let attributes = msg.attributes;
        match msg.request {
            Some(processing_request::Request::RequestHeaders(h)) => {
                self.on_request_headers(&h, metadata.as_ref())
            }
            Some(processing_request::Request::RequestBody(b)) => self.on_request_body(b),
            Some(processing_request::Request::RequestTrailers(_)) => self.on_request_trailers(),
            Some(processing_request::Request::ResponseHeaders(h)) => {
                let served = wire::metadata_value(
                    metadata.as_ref(),
                    wire::DESTINATION_NAMESPACE,
                    wire::SERVED_KEY,
                )
                .and_then(|v| wire::metadata_list(v).into_iter().next())
                .or_else(|| {
                    wire::attribute(&attributes, wire::UPSTREAM_ADDRESS_ATTRIBUTE).map(String::from)
                });
                self.on_response_headers(&h, served)
            }
            Some(processing_request::Request::ResponseBody(b)) => self.on_response_body(b),
            Some(processing_request::Request::ResponseTrailers(_)) => self.on_response_trailers(),
            None => Step::Send(Vec::new()),
        }
    }

    // ------------------------------------------------------------------ request

    fn on_request_headers(&mut self, h: &HttpHeaders, metadata: Option<&Metadata>) -> Step {
        if self.phase != RequestPhase::Start {
            return Step::Send(Vec::new());
        }
        self.headers = Headers::from_http(Some(h));
        if self.pool_hint.is_none() {
            self.pool_hint = wire::metadata_value(metadata, wire::POOL_NAMESPACE, wire::POOL_KEY)
                .and_then(|v| wire::metadata_list(v).into_iter().next());
        }
        let mut subset = wire::metadata_value(metadata, wire::SUBSET_NAMESPACE, wire::SUBSET_KEY)
            .map(wire::metadata_list);
        if self.opts.test_endpoint_selection {
            if let Some(v) = self.headers.get(wire::TEST_SELECTION_HEADER) {
                let list: Vec<String> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                if !list.is_empty() {
                    subset = Some(list);
                }
            }
        }
        self.subset = subset;
        if h.end_of_stream {
            self.phase = RequestPhase::Scheduling;
            self.body_done_at = Some(Instant::now());
            return Step::Schedule;
        }
        self.phase = RequestPhase::Body;
        Step::Send(Vec::new())
    }

    fn on_request_body(&mut self, b: HttpBody) -> Step {
        if self.phase != RequestPhase::Body {
            // Late chunks after an immediate response (or after trailers) are ignored.
            return Step::Send(Vec::new());
        }
        if self.body.len() + b.body.len() > self.max_body {
            let limit = self.max_body;
            return self.fail(EppError::BodyTooLarge { limit }, None);
        }
        if self.body.is_empty() && b.end_of_stream {
            // The whole body in one message: keep it without another copy.
            self.body = BytesMut::from(&b.body[..]);
        } else {
            self.body.extend_from_slice(&b.body);
        }
        if b.end_of_stream {
            return self.body_complete();
        }
        Step::Send(Vec::new())
    }

    fn on_request_trailers(&mut self) -> Step {
        match self.phase {
            RequestPhase::Body => {
                self.request_trailers = true;
                self.body_complete()
            }
            RequestPhase::Forwarded => {
                Step::Send(vec![wire::trailers_response(Direction::Request)])
            }
            // Scheduling (headers-only request with trailers is not an HTTP thing) or closed.
            _ => Step::Send(Vec::new()),
        }
    }

    fn body_complete(&mut self) -> Step {
        self.body_done_at = Some(Instant::now());
        self.phase = RequestPhase::Scheduling;
        let bytes = std::mem::take(&mut self.body).freeze();
        self.metrics.request_bytes.observe(bytes.len() as f64);
        if bytes.is_empty() {
            // A POST without a body: schedule like a request without one.
            return Step::Schedule;
        }
        match RequestBody::parse(bytes) {
            Ok(parsed) => {
                self.parsed = Some(parsed);
                Step::Schedule
            }
            Err(e) => self.fail(e.into(), None),
        }
    }

    /// What to ask the picker (valid after [`Step::Schedule`]).
    pub fn pick_request(&self) -> PickRequest<'_> {
        PickRequest {
            model: self.parsed.as_ref().map_or("", |p| p.model()),
            rewrite_header: self.headers.get(wire::MODEL_REWRITE_HEADER),
            objective: self.headers.get(wire::OBJECTIVE_HEADER),
            fairness_id: self.headers.get(wire::FAIRNESS_HEADER),
            pool: self.pool_hint.as_deref(),
            subset: self.subset.as_deref(),
            prompt: self.parsed.as_ref().map_or(&[][..], |p| p.prompt_raw()),
            prompt_kind: match &self.parsed {
                Some(p) if p.has_messages() => PromptKind::Chat,
                Some(p) if p.has_prompt() => PromptKind::Completion,
                _ => PromptKind::Other,
            },
            max_tokens: self.parsed.as_ref().and_then(|p| p.max_tokens()),
            size_bytes: self.parsed.as_ref().map_or(0, |p| p.bytes().len() as u64),
        }
    }

    /// The picker's answer.
    pub fn on_picked(&mut self, result: Result<Picked<T>, PickError>) -> Step {
        if let Some(t) = self.body_done_at {
            self.metrics.scheduling.observe(t.elapsed().as_secs_f64());
        }
        let picked = match result {
            Ok(p) => p,
            Err(e) => {
                let pool = match &e {
                    PickError::Shed { pool, .. } => Some(Arc::from(pool.as_str())),
                    _ => None,
                };
                return self.fail(e.into(), pool);
            }
        };
        let Some(primary) = picked.endpoints.first().cloned() else {
            return self.fail(
                PickError::NoEndpoint(format!("pool `{}` returned no endpoint", picked.pool))
                    .into(),
                Some(picked.pool),
            );
        };
        let destination = picked
            .endpoints
            .iter()
            .map(|e| &**e)
            .collect::<Vec<_>>()
            .join(",");

        let body = self.parsed.as_ref().map(|p| match &picked.target_model {
            Some(m) => p.upstream_bytes_with(m, picked.engine_priority),
            None => p.upstream_bytes_with(p.model(), picked.engine_priority),
        });

        let mut set_headers = vec![wire::header(wire::DESTINATION_KEY, &destination)];
        if let Some(b) = &body {
            set_headers.push(wire::header("content-length", &b.len().to_string()));
        }
        let mut remove_headers: Vec<String> = [
            wire::SUBSET_KEY,
            wire::SERVED_KEY,
            wire::LEGACY_FALLBACK_KEY,
            wire::OBJECTIVE_HEADER,
            wire::FAIRNESS_HEADER,
            wire::MODEL_REWRITE_HEADER,
        ]
        .iter()
        .filter(|h| self.headers.contains(h))
        .map(|h| (*h).to_string())
        .collect();
        if self.opts.test_endpoint_selection && self.headers.contains(wire::TEST_SELECTION_HEADER) {
            remove_headers.push(wire::TEST_SELECTION_HEADER.to_string());
        }
        let common = CommonResponse {
            header_mutation: Some(HeaderMutation {
                set_headers,
                remove_headers,
            }),
            clear_route_cache: true,
            ..Default::default()
        };
        let mut out = vec![wire::request_headers_response(
            common,
            Some(wire::destination_metadata(&destination)),
        )];
        if let Some(b) = &body {
            wire::body_chunks(Direction::Request, b, !self.request_trailers, &mut out);
        }
        if self.request_trailers {
            out.push(wire::trailers_response(Direction::Request));
        }
        let client_wants_usage = self
            .parsed
            .as_ref()
            .is_some_and(RequestBody::client_wants_usage);
        self.parsed = None;
        self.decision = Some(Decision {
            client_wants_usage,
            pool: picked.pool,
            public_model: picked.public_model,
            target_model: picked.target_model,
            primary,
            ticket: Some(picked.ticket),
        });
        self.phase = RequestPhase::Forwarded;
        Step::Send(out)
    }

    fn fail(&mut self, e: EppError, pool: Option<Arc<str>>) -> Step {
        let api = e.to_api();
        tracing::debug!(reason = e.reason(), status = api.status.as_u16(), "{e}");
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                pool: pool.unwrap_or_else(|| Arc::from("")),
                code: api.status.as_u16(),
                reason: e.reason(),
            })
            .inc();
        self.phase = RequestPhase::Closed;
        self.done = true;
        Step::Close(vec![wire::immediate_response(
            api.status.as_u16(),
            &api.body(),
            api.retry_after,
            &format!("infergate_epp_{}", e.reason()),
        )])
    }

    // ------------------------------------------------------------------ response

    fn on_response_headers(&mut self, h: &HttpHeaders, served: Option<String>) -> Step {
        let headers = Headers::from_http(Some(h));
        self.status = headers
            .get(":status")
            .or_else(|| headers.get("status"))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut set = Vec::new();
        if let Some(d) = &mut self.decision {
            set.push(wire::header(wire::POOL_RESPONSE_HEADER, &d.pool));
            let served_ep = served.clone().unwrap_or_else(|| d.primary.to_string());
            set.push(wire::header(wire::ENDPOINT_RESPONSE_HEADER, &served_ep));
            if served_ep != *d.primary {
                self.metrics
                    .served_by_fallback
                    .get_or_create(&PoolLabels {
                        pool: d.pool.clone(),
                    })
                    .inc();
            }
            if let Some(t) = d.ticket.as_mut() {
                t.served_by(&served_ep);
            }
            if self.opts.test_endpoint_selection {
                set.push(wire::header(wire::TEST_SELECTED_HEADER, &d.primary));
            }
        }
        if self.opts.test_endpoint_selection {
            let v = served
                .clone()
                .unwrap_or_else(|| "fail: missing destination endpoint served metadata".into());
            set.push(wire::header(wire::TEST_SERVED_HEADER, &v));
        }
        self.served = served;
        // Engines send a stream's headers before its prefill ends (vLLM, the simulator): only
        // a body, an answer without one, or an error status ends the prefill.
        if h.end_of_stream || !(200..300).contains(&self.status) {
            self.mark_first_byte();
        }

        let client_model = self.decision.as_ref().and_then(|d| {
            let public = d.public_model.as_ref()?;
            (d.target_model.as_deref() != Some(&**public)).then(|| public.to_string())
        });
        let content_type = headers.get("content-type").unwrap_or("");
        let success = (200..300).contains(&self.status);
        self.mode = if !success || self.decision.is_none() {
            ResponseMode::Pass
        } else if content_type.starts_with("text/event-stream") {
            // The picker forced include_usage upstream; hide the usage chunk unless the client
            // asked for it (the same rule as the gateway).
            let hide = !self.decision.as_ref().is_some_and(|d| d.client_wants_usage);
            self.rewriter = Some(OpenAiStreamRewriter::new(client_model, hide));
            ResponseMode::Events
        } else if content_type.starts_with("application/json") {
            ResponseMode::Whole
        } else {
            ResponseMode::Pass
        };
        if self.mode == ResponseMode::Events {
            // Length changes as events are rewritten.
            let mutation = HeaderMutation {
                set_headers: set,
                remove_headers: vec!["content-length".into()],
            };
            if h.end_of_stream {
                self.finish();
            }
            return Step::Send(vec![wire::response_headers_response(mutation)]);
        }
        let mutation = HeaderMutation {
            set_headers: set,
            remove_headers: Vec::new(),
        };
        if h.end_of_stream {
            self.finish();
            return Step::Send(vec![wire::response_headers_response(mutation)]);
        }
        if self.mode == ResponseMode::Whole {
            // Answered with the body, once its final length is known.
            self.deferred_headers = Some(mutation);
            return Step::Send(Vec::new());
        }
        Step::Send(vec![wire::response_headers_response(mutation)])
    }

    /// Tell the ticket (once) that the response's first byte passed.
    fn mark_first_byte(&mut self) {
        if std::mem::replace(&mut self.first_byte, true) {
            return;
        }
        if let Some(t) = self.decision.as_mut().and_then(|d| d.ticket.as_mut()) {
            t.first_byte();
        }
    }

    fn on_response_body(&mut self, b: HttpBody) -> Step {
        let eos = b.end_of_stream;
        if !b.body.is_empty() || eos {
            self.mark_first_byte();
        }
        let mut out = Vec::new();
        match self.mode {
            ResponseMode::Pending | ResponseMode::Pass => {
                out.push(wire::body_chunk(Direction::Response, &b.body, eos));
            }
            ResponseMode::Events => {
                let mut buf = BytesMut::new();
                self.rewrite_events(Bytes::from(b.body), &mut buf);
                if eos {
                    if let Some(rest) = self.splitter.finish() {
                        self.rewrite_event(&rest, &mut buf);
                    }
                }
                if !buf.is_empty() || eos {
                    wire::body_chunks(Direction::Response, &buf, eos, &mut out);
                }
            }
            ResponseMode::Whole => {
                self.held.extend_from_slice(&b.body);
                if eos {
                    self.flush_whole(true, &mut out);
                } else if self.held.len() > MAX_BUFFERED_RESPONSE {
                    // Too big to hold: give up the rewrite and stream the rest through.
                    if let Some(m) = self.deferred_headers.take() {
                        out.push(wire::response_headers_response(m));
                    }
                    let held = std::mem::take(&mut self.held);
                    wire::body_chunks(Direction::Response, &held, false, &mut out);
                    self.mode = ResponseMode::Pass;
                }
            }
        }
        if eos {
            self.finish();
        }
        Step::Send(out)
    }

    fn on_response_trailers(&mut self) -> Step {
        let mut out = Vec::new();
        match self.mode {
            ResponseMode::Whole => self.flush_whole(false, &mut out),
            ResponseMode::Events => {
                let mut buf = BytesMut::new();
                if let Some(rest) = self.splitter.finish() {
                    self.rewrite_event(&rest, &mut buf);
                }
                if !buf.is_empty() {
                    wire::body_chunks(Direction::Response, &buf, false, &mut out);
                }
            }
            _ => {}
        }
        out.push(wire::trailers_response(Direction::Response));
        self.finish();
        Step::Send(out)
    }

    fn flush_whole(&mut self, eos: bool, out: &mut Vec<ProcessingResponse>) {
        let held = std::mem::take(&mut self.held).freeze();
        let client_model = self.decision.as_ref().and_then(|d| {
            let public = d.public_model.as_ref()?;
            (d.target_model.as_deref() != Some(&**public)).then(|| public.to_string())
        });
        let r = rewrite_body(held, client_model.as_deref());
        self.usage = r.usage;
        let mut mutation = self.deferred_headers.take().unwrap_or_default();
        mutation
            .set_headers
            .push(wire::header("content-length", &r.body.len().to_string()));
        out.push(wire::response_headers_response(mutation));
        wire::body_chunks(Direction::Response, &r.body, eos, out);
    }

    fn rewrite_events(&mut self, chunk: Bytes, buf: &mut BytesMut) {
        let Some(rewriter) = self.rewriter.as_mut() else {
            buf.extend_from_slice(&chunk);
            return;
        };
        self.splitter
            .feed(chunk, |event| match rewriter.process(&event) {
                EventOutcome::Forward(b) => buf.extend_from_slice(&b),
                EventOutcome::Drop => {}
            });
    }

    fn rewrite_event(&mut self, event: &Bytes, buf: &mut BytesMut) {
        match self.rewriter.as_mut().map(|r| r.process(event)) {
            Some(EventOutcome::Forward(b)) => buf.extend_from_slice(&b),
            Some(EventOutcome::Drop) => {}
            None => buf.extend_from_slice(event),
        }
    }

    fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        if let Some(r) = &self.rewriter {
            self.usage = self.usage.or(r.usage);
        }
        let Some(d) = self.decision.as_mut() else {
            return;
        };
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                pool: d.pool.clone(),
                code: self.status,
                reason: "",
            })
            .inc();
        if let Some(u) = self.usage {
            for (kind, n) in [("input", u.input_tokens), ("output", u.output_tokens)] {
                self.metrics
                    .tokens
                    .get_or_create(&TokenLabels {
                        pool: d.pool.clone(),
                        gen_ai_token_type: kind,
                    })
                    .inc_by(n);
            }
        }
        if let Some(t) = d.ticket.take() {
            t.finish(Finished {
                status: self.status,
                usage: self.usage,
            });
        }
    }

    /// Usage read from the response (after it ended).
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The endpoint the proxy reported as serving.
    pub fn served(&self) -> Option<&str> {
        self.served.as_deref()
    }
}

impl<T: Ticket> Drop for Exchange<T> {
    fn drop(&mut self) {
        self.metrics.streams.dec();
        // The proxy went away mid-request (client disconnect, reset): still report it finished.
        if let Some(t) = self.decision.as_mut().and_then(|d| d.ticket.take()) {
            t.finish(Finished {
                status: self.status,
                usage: self.usage,
            });
        }
    }
}
