//! The ext_proc state machine, message by message, as Envoy drives it in FULL_DUPLEX_STREAMED
//! mode: what goes back to the proxy for each request and response shape.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue, Metadata};
use envoy_types::pb::envoy::service::ext_proc::v3::{
    body_mutation, processing_request, processing_response, HttpBody, HttpHeaders, HttpTrailers,
    ProcessingRequest, ProcessingResponse,
};
use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};
use infergate_extproc::metrics::Metrics;
use infergate_extproc::wire::BODY_CHUNK_LIMIT;
use infergate_extproc::{Exchange, ExchangeOptions, Finished, Picked, Step, Ticket};

#[derive(Default, Clone)]
struct Log(Arc<Mutex<Vec<String>>>);

struct TestTicket(Log);

impl Ticket for TestTicket {
    fn served_by(&mut self, endpoint: &str) {
        self.0 .0.lock().unwrap().push(format!("served {endpoint}"));
    }
    fn first_byte(&mut self) {
        self.0 .0.lock().unwrap().push("first byte".into());
    }
    fn finish(self, outcome: Finished) {
        let u = outcome.usage.map(|u| (u.input_tokens, u.output_tokens));
        self.0
             .0
            .lock()
            .unwrap()
            .push(format!("finish {} {u:?}", outcome.status));
    }
}

fn exchange(test_selection: bool) -> Exchange<TestTicket> {
    Exchange::new(
        ExchangeOptions {
            test_endpoint_selection: test_selection,
        },
        Arc::new(Metrics::new()),
        8 << 20,
        None,
    )
}

fn headers(pairs: &[(&str, &str)], eos: bool) -> HttpHeaders {
    HttpHeaders {
        headers: Some(HeaderMap {
            headers: pairs
                .iter()
                .map(|(k, v)| HeaderValue {
                    key: k.to_string(),
                    value: String::new(),
                    raw_value: v.as_bytes().to_vec(),
                })
                .collect(),
        }),
        end_of_stream: eos,
        ..Default::default()
    }
}

fn msg(r: processing_request::Request) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(r),
        ..Default::default()
    }
}

fn req_headers(pairs: &[(&str, &str)], eos: bool) -> ProcessingRequest {
    msg(processing_request::Request::RequestHeaders(headers(
        pairs, eos,
    )))
}

fn req_body(b: &[u8], eos: bool) -> ProcessingRequest {
    msg(processing_request::Request::RequestBody(HttpBody {
        body: b.to_vec(),
        end_of_stream: eos,
        ..Default::default()
    }))
}

fn resp_headers(pairs: &[(&str, &str)], served: Option<&str>) -> ProcessingRequest {
    let mut m = msg(processing_request::Request::ResponseHeaders(headers(
        pairs, false,
    )));
    if let Some(s) = served {
        m.metadata_context = Some(Metadata {
            filter_metadata: HashMap::from([(
                "envoy.lb".to_string(),
                Struct {
                    fields: HashMap::from([(
                        "x-gateway-destination-endpoint-served".to_string(),
                        Value {
                            kind: Some(Kind::StringValue(s.to_string())),
                        },
                    )]),
                },
            )]),
            ..Default::default()
        });
    }
    m
}

fn resp_body(b: &[u8], eos: bool) -> ProcessingRequest {
    msg(processing_request::Request::ResponseBody(HttpBody {
        body: b.to_vec(),
        end_of_stream: eos,
        ..Default::default()
    }))
}

fn sent(step: Step) -> Vec<ProcessingResponse> {
    match step {
        Step::Send(v) => v,
        other => panic!("expected Send, got {other:?}"),
    }
}

fn picked(log: &Log, endpoints: &[&str], public: &str, target: &str) -> Picked<TestTicket> {
    Picked {
        pool: Arc::from("pool-a"),
        public_model: Some(Arc::from(public)),
        target_model: Some(target.to_string()),
        endpoints: endpoints.iter().map(|e| Arc::from(*e)).collect(),
        priority: 0,
        engine_priority: None,
        ticket: TestTicket(log.clone()),
    }
}

/// (set headers, removed headers, clear_route_cache, dynamic metadata destination)
fn headers_response(
    m: &ProcessingResponse,
) -> (HashMap<String, String>, Vec<String>, bool, Option<String>) {
    let (hr, request) = match &m.response {
        Some(processing_response::Response::RequestHeaders(h)) => (h, true),
        Some(processing_response::Response::ResponseHeaders(h)) => (h, false),
        other => panic!("not a headers response: {other:?}"),
    };
    let c = hr.response.as_ref().unwrap();
    let hm = c.header_mutation.clone().unwrap_or_default();
    let set = hm
        .set_headers
        .iter()
        .map(|o| {
            let h = o.header.as_ref().unwrap();
            (
                h.key.clone(),
                String::from_utf8(h.raw_value.clone()).unwrap(),
            )
        })
        .collect();
    let md = m.dynamic_metadata.as_ref().and_then(|s| {
        let Some(Kind::StructValue(inner)) = &s.fields.get("envoy.lb")?.kind else {
            return None;
        };
        match &inner.fields.get("x-gateway-destination-endpoint")?.kind {
            Some(Kind::StringValue(v)) => Some(v.clone()),
            _ => None,
        }
    });
    let _ = request;
    (set, hm.remove_headers, c.clear_route_cache, md)
}

fn body_of(m: &ProcessingResponse) -> (Vec<u8>, bool) {
    let b = match &m.response {
        Some(processing_response::Response::RequestBody(b))
        | Some(processing_response::Response::ResponseBody(b)) => b,
        other => panic!("not a body response: {other:?}"),
    };
    match b
        .response
        .as_ref()
        .and_then(|c| c.body_mutation.as_ref())
        .and_then(|m| m.mutation.as_ref())
    {
        Some(body_mutation::Mutation::StreamedResponse(s)) => (s.body.clone(), s.end_of_stream),
        other => panic!("not streamed: {other:?}"),
    }
}

fn concat_bodies(msgs: &[ProcessingResponse]) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut eos = 0;
    for m in msgs {
        let (b, e) = body_of(m);
        assert!(b.len() <= BODY_CHUNK_LIMIT, "chunk of {} bytes", b.len());
        out.extend_from_slice(&b);
        eos += usize::from(e);
    }
    (out, eos)
}

#[test]
fn large_streamed_request_is_spliced_and_rechunked() {
    let log = Log::default();
    let mut ex = exchange(false);
    let prompt = "x".repeat(220_000);
    let body = format!(
        r#"{{"model":"chat","temperature":0.2,"messages":[{{"role":"user","content":"{prompt}"}}]}}"#
    );
    let client_headers = [
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        ("content-length", "220077"),
        ("x-gateway-destination-endpoint", "6.6.6.6:1"),
        ("x-gateway-inference-objective", "critical"),
    ];
    assert!(sent(ex.on_message(req_headers(&client_headers, false))).is_empty());
    // Envoy delivers the body in pieces; nothing goes back until it is complete.
    let bytes = body.as_bytes();
    for piece in bytes[..200_000].chunks(65_536) {
        assert!(sent(ex.on_message(req_body(piece, false))).is_empty());
    }
    assert!(matches!(
        ex.on_message(req_body(&bytes[200_000..], true)),
        Step::Schedule
    ));
    let pr = ex.pick_request();
    assert_eq!(pr.model, "chat");
    assert_eq!(pr.objective, Some("critical"));
    assert!(pr.prompt.len() > 220_000);

    let out = sent(ex.on_picked(Ok(picked(
        &log,
        &["10.0.0.2:8000", "10.0.0.3:8000"],
        "chat",
        "llama-3-8b",
    ))));
    let (set, removed, clear, md) = headers_response(&out[0]);
    assert_eq!(
        set["x-gateway-destination-endpoint"],
        "10.0.0.2:8000,10.0.0.3:8000"
    );
    assert_eq!(md.as_deref(), Some("10.0.0.2:8000,10.0.0.3:8000"));
    assert!(clear, "clear_route_cache must be set");
    assert!(removed.contains(&"x-gateway-inference-objective".to_string()));
    let (upstream, eos) = concat_bodies(&out[1..]);
    assert_eq!(eos, 1);
    assert!(matches!(body_of(out.last().unwrap()), (_, true)));
    assert_eq!(set["content-length"], upstream.len().to_string());
    let expected = body.replacen(r#""model":"chat""#, r#""model":"llama-3-8b""#, 1);
    assert_eq!(String::from_utf8(upstream).unwrap(), expected);
}

#[test]
fn engine_priority_goes_into_the_upstream_body() {
    // A pool with `flowControl.enginePriority`: the body sent on carries vLLM's `priority`.
    let log = Log::default();
    let mut ex = exchange(false);
    let body = br#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#;
    let client_headers = [(":method", "POST"), (":path", "/v1/chat/completions")];
    assert!(sent(ex.on_message(req_headers(&client_headers, false))).is_empty());
    assert!(matches!(
        ex.on_message(req_body(body, true)),
        Step::Schedule
    ));
    let mut p = picked(&log, &["10.0.0.2:8000"], "chat", "llama-3-8b");
    p.engine_priority = Some(-10);
    let out = sent(ex.on_picked(Ok(p)));
    let (set, _, _, _) = headers_response(&out[0]);
    let (upstream, _) = concat_bodies(&out[1..]);
    assert_eq!(set["content-length"], upstream.len().to_string());
    let v: serde_json::Value = serde_json::from_slice(&upstream).unwrap();
    assert_eq!(v["priority"], -10);
    assert_eq!(v["model"], "llama-3-8b");
}

#[test]
fn invalid_json_is_an_immediate_400() {
    let mut ex = exchange(false);
    let _ = ex.on_message(req_headers(&[(":method", "POST")], false));
    let Step::Close(out) = ex.on_message(req_body(b"{\"model\": ", true)) else {
        panic!("expected an immediate response");
    };
    let Some(processing_response::Response::ImmediateResponse(ir)) = &out[0].response else {
        panic!("not immediate");
    };
    assert_eq!(ir.status.as_ref().unwrap().code, 400);
    let v: serde_json::Value = serde_json::from_slice(&ir.body).unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("could not parse"));
}

#[test]
fn shed_is_an_immediate_429_with_retry_after() {
    let mut ex = exchange(false);
    let _ = ex.on_message(req_headers(&[], false));
    assert!(matches!(
        ex.on_message(req_body(br#"{"model":"m"}"#, true)),
        Step::Schedule
    ));
    let Step::Close(out) = ex.on_picked(Err(infergate_extproc::PickError::Shed {
        pool: "p".into(),
        priority: -1,
    })) else {
        panic!("expected close");
    };
    let Some(processing_response::Response::ImmediateResponse(ir)) = &out[0].response else {
        panic!("not immediate");
    };
    assert_eq!(ir.status.as_ref().unwrap().code, 429);
    let hm = ir.headers.as_ref().unwrap();
    assert!(hm
        .set_headers
        .iter()
        .any(|h| h.header.as_ref().unwrap().key == "retry-after"));
    let v: serde_json::Value = serde_json::from_slice(&ir.body).unwrap();
    assert_eq!(v["error"]["code"], "shed");
}

#[test]
fn sse_response_is_rewritten_as_it_arrives_and_usage_is_read() {
    let log = Log::default();
    let mut ex = exchange(true);
    let _ = ex.on_message(req_headers(&[], false));
    let _ = ex.on_message(req_body(br#"{"model":"chat","stream":true}"#, true));
    let out = sent(ex.on_picked(Ok(picked(&log, &["10.0.0.2:8000"], "chat", "llama"))));
    // include_usage is forced upstream so the picker can read usage.
    let (up, _) = concat_bodies(&out[1..]);
    let v: serde_json::Value = serde_json::from_slice(&up).unwrap();
    assert_eq!(v["stream_options"]["include_usage"], true);

    let out = sent(ex.on_message(resp_headers(
        &[(":status", "200"), ("content-type", "text/event-stream")],
        Some("10.0.0.3:8000"),
    )));
    let (set, removed, _, _) = headers_response(&out[0]);
    assert_eq!(set["x-conformance-test-served-endpoint"], "10.0.0.3:8000");
    assert_eq!(set["x-conformance-test-selected-endpoint"], "10.0.0.2:8000");
    assert_eq!(set["x-infergate-endpoint"], "10.0.0.3:8000");
    assert!(removed.contains(&"content-length".to_string()));

    let ev1 = b"data: {\"id\":\"1\",\"model\":\"llama\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n";
    let ev2 = b"data: {\"id\":\"1\",\"model\":\"llama\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\ndata: [DONE]\n\n";
    // The headers came before the prefill ended (engines send them at once): not a first byte.
    assert_eq!(*log.0.lock().unwrap(), vec!["served 10.0.0.3:8000"]);
    // The first event split across two chunks: the first half is held, not forwarded broken.
    let out = sent(ex.on_message(resp_body(&ev1[..20], false)));
    assert!(out.is_empty());
    let out = sent(ex.on_message(resp_body(&ev1[20..], false)));
    let (b, eos) = concat_bodies(&out);
    assert_eq!(eos, 0);
    let text = String::from_utf8(b).unwrap();
    assert!(text.contains("\"model\":\"chat\""), "{text}");
    assert!(!text.contains("usage"), "{text}");
    let out = sent(ex.on_message(resp_body(ev2, true)));
    let (b, eos) = concat_bodies(&out);
    assert_eq!(eos, 1);
    assert_eq!(String::from_utf8(b).unwrap(), "data: [DONE]\n\n");
    assert_eq!(
        *log.0.lock().unwrap(),
        vec![
            "served 10.0.0.3:8000",
            "first byte",
            "finish 200 Some((5, 2))"
        ]
    );
}

#[test]
fn whole_json_response_is_held_then_sent_with_its_length() {
    let log = Log::default();
    let mut ex = exchange(false);
    let _ = ex.on_message(req_headers(&[], false));
    let _ = ex.on_message(req_body(br#"{"model":"chat"}"#, true));
    let _ = ex.on_picked(Ok(picked(&log, &["10.0.0.2:8000"], "chat", "llama-3-8b")));
    let out = sent(ex.on_message(resp_headers(
        &[(":status", "200"), ("content-type", "application/json")],
        None,
    )));
    assert!(out.is_empty(), "headers wait for the body");
    let body = br#"{"id":"x","model":"llama-3-8b","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
    assert!(sent(ex.on_message(resp_body(&body[..30], false))).is_empty());
    let out = sent(ex.on_message(resp_body(&body[30..], true)));
    let (set, _, _, _) = headers_response(&out[0]);
    let (b, eos) = concat_bodies(&out[1..]);
    assert_eq!(eos, 1);
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["model"], "chat");
    assert_eq!(set["content-length"], b.len().to_string());
    assert_eq!(ex.usage().unwrap().output_tokens, 4);
}

#[test]
fn error_responses_pass_through_untouched() {
    let log = Log::default();
    let mut ex = exchange(false);
    let _ = ex.on_message(req_headers(&[], false));
    let _ = ex.on_message(req_body(br#"{"model":"chat"}"#, true));
    let _ = ex.on_picked(Ok(picked(&log, &["10.0.0.2:8000"], "chat", "llama")));
    let out = sent(ex.on_message(resp_headers(
        &[(":status", "503"), ("content-type", "application/json")],
        None,
    )));
    assert_eq!(out.len(), 1);
    assert_eq!(
        *log.0.lock().unwrap(),
        vec!["served 10.0.0.2:8000", "first byte"],
        "an error answer is no prefill in progress"
    );
    let body = br#"{"error":{"message":"busy","model":"llama"}}"#;
    let out = sent(ex.on_message(resp_body(body, true)));
    assert_eq!(body_of(&out[0]).0, body.to_vec());
}

#[test]
fn request_trailers_end_the_body_and_get_their_own_reply() {
    let log = Log::default();
    let mut ex = exchange(false);
    let _ = ex.on_message(req_headers(&[], false));
    let _ = ex.on_message(req_body(br#"{"model":"m"}"#, false));
    assert!(matches!(
        ex.on_message(msg(processing_request::Request::RequestTrailers(
            HttpTrailers::default()
        ))),
        Step::Schedule
    ));
    let out = sent(ex.on_picked(Ok(picked(&log, &["10.0.0.2:8000"], "m", "m"))));
    assert_eq!(out.len(), 3);
    assert!(
        !body_of(&out[1]).1,
        "trailers follow, so the body does not end the stream"
    );
    assert!(matches!(
        out[2].response,
        Some(processing_response::Response::RequestTrailers(_))
    ));
}

#[test]
fn bodyless_request_is_answered_at_once() {
    let log = Log::default();
    let mut ex = exchange(false);
    assert!(matches!(
        ex.on_message(req_headers(
            &[(":method", "GET"), (":path", "/v1/models")],
            true
        )),
        Step::Schedule
    ));
    assert_eq!(ex.pick_request().model, "");
    let out = sent(ex.on_picked(Ok(Picked {
        pool: Arc::from("p"),
        public_model: None,
        target_model: None,
        endpoints: vec![Arc::from("10.0.0.9:8000")],
        priority: 0,
        engine_priority: None,
        ticket: TestTicket(log.clone()),
    })));
    assert_eq!(out.len(), 1);
    let (set, _, _, _) = headers_response(&out[0]);
    assert_eq!(set["x-gateway-destination-endpoint"], "10.0.0.9:8000");
    assert!(!set.contains_key("content-length"));
    drop(ex);
    // A stream that ends without a response still reports the request finished.
    assert_eq!(log.0.lock().unwrap().len(), 1);
}

#[test]
fn subset_hint_and_test_header_reach_the_picker() {
    let mut ex = exchange(true);
    let mut m = req_headers(
        &[("test-epp-endpoint-selection", "10.0.0.7, 10.0.0.8:8000")],
        false,
    );
    m.metadata_context = Some(Metadata {
        filter_metadata: HashMap::from([(
            "envoy.lb.subset_hint".to_string(),
            Struct {
                fields: HashMap::from([(
                    "x-gateway-destination-endpoint-subset".to_string(),
                    Value {
                        kind: Some(Kind::StringValue("10.0.0.1:8000".into())),
                    },
                )]),
            },
        )]),
        ..Default::default()
    });
    let _ = ex.on_message(m);
    let _ = ex.on_message(req_body(br#"{"model":"m"}"#, true));
    // With the test flag on, the header wins over the hint (as the anchor's picker does).
    assert_eq!(
        ex.pick_request().subset.unwrap(),
        &["10.0.0.7".to_string(), "10.0.0.8:8000".to_string()]
    );
    let mut ex = exchange(false);
    let _ = ex.on_message(req_headers(
        &[("test-epp-endpoint-selection", "10.0.0.7")],
        false,
    ));
    let _ = ex.on_message(req_body(br#"{"model":"m"}"#, true));
    assert!(
        ex.pick_request().subset.is_none(),
        "ignored without the flag"
    );
}
