//! The Endpoint Picker protocol on the wire: header and metadata names from the Gateway API
//! Inference Extension (`docs/proposals/004-endpoint-picker-protocol`), and builders for the
//! ext_proc messages the picker sends. No state, no I/O.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption, Metadata};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    body_mutation, processing_response, BodyMutation, BodyResponse, CommonResponse, HeaderMutation,
    HeadersResponse, HttpHeaders, ImmediateResponse, ProcessingResponse, StreamedBodyResponse,
    TrailersResponse,
};
use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};

/// EPP → proxy: the picked endpoint(s), `ip:port[,ip:port…]`, primary first. A request header
/// and a key in the [`DESTINATION_NAMESPACE`] dynamic metadata.
pub const DESTINATION_KEY: &str = "x-gateway-destination-endpoint";
/// The dynamic-metadata namespace of [`DESTINATION_KEY`] and [`SERVED_KEY`].
pub const DESTINATION_NAMESPACE: &str = "envoy.lb";
/// Proxy → EPP (request metadata): the endpoints the EPP must choose from.
pub const SUBSET_NAMESPACE: &str = "envoy.lb.subset_hint";
pub const SUBSET_KEY: &str = "x-gateway-destination-endpoint-subset";
/// Proxy → EPP (response metadata, namespace `envoy.lb`): the endpoint that really served.
pub const SERVED_KEY: &str = "x-gateway-destination-endpoint-served";
/// The legacy (protocol v0.3) single fallback key; stripped from client requests.
pub const LEGACY_FALLBACK_KEY: &str = "x-gateway-destination-endpoint-fallback";

/// Client control headers (upstream names).
pub const OBJECTIVE_HEADER: &str = "x-gateway-inference-objective";
pub const FAIRNESS_HEADER: &str = "x-gateway-inference-fairness-id";
pub const MODEL_REWRITE_HEADER: &str = "x-gateway-model-name-rewrite";

/// infergate's way to name the pool of a request from the proxy's configuration: gRPC initial
/// metadata on the ext_proc stream (`grpc_service.initial_metadata` or, per route,
/// `ExtProcPerRoute.overrides.grpc_initial_metadata`), or the key `pool` in the
/// [`POOL_NAMESPACE`] metadata (dynamic or cluster metadata forwarded by the filter).
pub const POOL_GRPC_METADATA: &str = "x-infergate-pool";
pub const POOL_NAMESPACE: &str = "infergate";
pub const POOL_KEY: &str = "pool";

/// Response headers the picker adds so callers can see where a request went.
pub const POOL_RESPONSE_HEADER: &str = "x-infergate-pool";
pub const ENDPOINT_RESPONSE_HEADER: &str = "x-infergate-endpoint";

/// Test-only (behind `--enable-test-endpoint-selection`), as the anchor's conformance picker:
/// the request header that names the endpoints the picker must choose from, and the response
/// headers that echo the served and selected endpoints.
pub const TEST_SELECTION_HEADER: &str = "test-epp-endpoint-selection";
pub const TEST_SERVED_HEADER: &str = "x-conformance-test-served-endpoint";
pub const TEST_SELECTED_HEADER: &str = "x-conformance-test-selected-endpoint";

/// The attribute namespace under which Envoy puts `request_attributes` / `response_attributes`.
pub const ATTRIBUTES_NAMESPACE: &str = "envoy.filters.http.ext_proc";
/// The attribute that names the upstream host that served (`response_attributes`).
pub const UPSTREAM_ADDRESS_ATTRIBUTE: &str = "upstream.address";

/// Largest body piece sent back in one `StreamedBodyResponse`: some proxies cap a streamed chunk
/// at 64 KiB; the anchor uses the same margin (GIE #854).
pub const BODY_CHUNK_LIMIT: usize = 62_000;

/// The request headers, as Envoy sent them (names are lower case in HTTP/2 and Envoy).
#[derive(Debug, Default, Clone)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    pub fn from_http(h: Option<&HttpHeaders>) -> Self {
        let Some(map) = h.and_then(|h| h.headers.as_ref()) else {
            return Self::default();
        };
        Headers(
            map.headers
                .iter()
                .map(|hv| {
                    let v = if hv.raw_value.is_empty() {
                        hv.value.clone()
                    } else {
                        String::from_utf8_lossy(&hv.raw_value).into_owned()
                    };
                    (hv.key.to_ascii_lowercase(), v)
                })
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

pub fn header(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_string(),
            value: String::new(),
            raw_value: value.as_bytes().to_vec(),
        }),
        // OVERWRITE_IF_EXISTS_OR_ADD: a client cannot smuggle a second value in.
        append_action: 2,
        ..Default::default()
    }
}

fn string_value(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_string())),
    }
}

/// `{"envoy.lb": {"x-gateway-destination-endpoint": "<endpoints>"}}`
pub fn destination_metadata(endpoints: &str) -> Struct {
    let inner = Struct {
        fields: HashMap::from([(DESTINATION_KEY.to_string(), string_value(endpoints))]),
    };
    Struct {
        fields: HashMap::from([(
            DESTINATION_NAMESPACE.to_string(),
            Value {
                kind: Some(Kind::StructValue(inner)),
            },
        )]),
    }
}

/// A string-or-list metadata value as a list of non-empty, comma-split entries (the subset hint
/// may be written either way; the anchor's reference picker accepts both).
pub fn metadata_list(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |s: &str| {
        out.extend(
            s.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(String::from),
        );
    };
    match &value.kind {
        Some(Kind::StringValue(s)) => push(s),
        Some(Kind::ListValue(l)) => {
            for v in &l.values {
                if let Some(Kind::StringValue(s)) = &v.kind {
                    push(s);
                }
            }
        }
        _ => {}
    }
    out
}

/// A value in the request's metadata context: `filter_metadata[namespace][key]`.
pub fn metadata_value<'a>(
    md: Option<&'a Metadata>,
    namespace: &str,
    key: &str,
) -> Option<&'a Value> {
    md?.filter_metadata.get(namespace)?.fields.get(key)
}

/// A string attribute Envoy attached under [`ATTRIBUTES_NAMESPACE`].
pub fn attribute<'a>(attrs: &'a HashMap<String, Struct>, name: &str) -> Option<&'a str> {
    match &attrs.get(ATTRIBUTES_NAMESPACE)?.fields.get(name)?.kind {
        Some(Kind::StringValue(s)) => Some(s.as_str()),
        _ => None,
    }
}

pub fn request_headers_response(
    common: CommonResponse,
    dynamic_metadata: Option<Struct>,
) -> ProcessingResponse {
    ProcessingResponse {
        dynamic_metadata,
        response: Some(processing_response::Response::RequestHeaders(
            HeadersResponse {
                response: Some(common),
            },
        )),
        ..Default::default()
    }
}

pub fn response_headers_response(mutation: HeaderMutation) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(processing_response::Response::ResponseHeaders(
            HeadersResponse {
                response: Some(CommonResponse {
                    header_mutation: Some(mutation),
                    ..Default::default()
                }),
            },
        )),
        ..Default::default()
    }
}

/// Which direction a body or trailers message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

/// One streamed body piece (FULL_DUPLEX_STREAMED).
pub fn body_chunk(dir: Direction, body: &[u8], end_of_stream: bool) -> ProcessingResponse {
    let common = CommonResponse {
        body_mutation: Some(BodyMutation {
            mutation: Some(body_mutation::Mutation::StreamedResponse(
                StreamedBodyResponse {
                    body: body.to_vec(),
                    end_of_stream,
                    ..Default::default()
                },
            )),
        }),
        ..Default::default()
    };
    let r = BodyResponse {
        response: Some(common),
    };
    ProcessingResponse {
        response: Some(match dir {
            Direction::Request => processing_response::Response::RequestBody(r),
            Direction::Response => processing_response::Response::ResponseBody(r),
        }),
        ..Default::default()
    }
}

/// `body` as streamed pieces of at most [`BODY_CHUNK_LIMIT`] bytes; the last carries
/// `end_of_stream`. An empty body is one empty piece (the end-of-stream marker still has to go).
pub fn body_chunks(
    dir: Direction,
    body: &[u8],
    end_of_stream: bool,
    out: &mut Vec<ProcessingResponse>,
) {
    if body.is_empty() {
        out.push(body_chunk(dir, body, end_of_stream));
        return;
    }
    let n = body.len().div_ceil(BODY_CHUNK_LIMIT);
    for (i, piece) in body.chunks(BODY_CHUNK_LIMIT).enumerate() {
        out.push(body_chunk(dir, piece, end_of_stream && i + 1 == n));
    }
}

pub fn trailers_response(dir: Direction) -> ProcessingResponse {
    let r = TrailersResponse::default();
    ProcessingResponse {
        response: Some(match dir {
            Direction::Request => processing_response::Response::RequestTrailers(r),
            Direction::Response => processing_response::Response::ResponseTrailers(r),
        }),
        ..Default::default()
    }
}

/// A locally generated reply (429 shed, 503 no endpoint, 4xx bad request) with an OpenAI-style
/// JSON body.
pub fn immediate_response(
    status: u16,
    body: &[u8],
    retry_after: Option<u64>,
    details: &str,
) -> ProcessingResponse {
    let mut set_headers = vec![header("content-type", "application/json")];
    if let Some(secs) = retry_after {
        set_headers.push(header("retry-after", &secs.to_string()));
    }
    ProcessingResponse {
        response: Some(processing_response::Response::ImmediateResponse(
            ImmediateResponse {
                status: Some(HttpStatus {
                    code: i32::from(status),
                }),
                headers: Some(HeaderMutation {
                    set_headers,
                    remove_headers: Vec::new(),
                }),
                body: body.to_vec(),
                details: details.to_string(),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::ListValue;

    #[test]
    fn chunks_stay_under_the_limit_and_end_once() {
        let body = vec![b'x'; 220_000];
        let mut out = Vec::new();
        body_chunks(Direction::Request, &body, true, &mut out);
        assert_eq!(out.len(), 4);
        let mut total = 0;
        for (i, m) in out.iter().enumerate() {
            let Some(processing_response::Response::RequestBody(b)) = &m.response else {
                panic!("not a request body response");
            };
            let Some(body_mutation::Mutation::StreamedResponse(s)) = b
                .response
                .as_ref()
                .and_then(|c| c.body_mutation.as_ref())
                .and_then(|m| m.mutation.as_ref())
            else {
                panic!("not streamed");
            };
            assert!(s.body.len() <= BODY_CHUNK_LIMIT);
            assert_eq!(s.end_of_stream, i == 3);
            total += s.body.len();
        }
        assert_eq!(total, body.len());
    }

    #[test]
    fn subset_accepts_string_or_list() {
        let s = string_value("10.0.0.1:8000, 10.0.0.2:8000,");
        assert_eq!(metadata_list(&s), vec!["10.0.0.1:8000", "10.0.0.2:8000"]);
        let l = Value {
            kind: Some(Kind::ListValue(ListValue {
                values: vec![string_value("a:1"), string_value("b:2,c:3")],
            })),
        };
        assert_eq!(metadata_list(&l), vec!["a:1", "b:2", "c:3"]);
    }
}
