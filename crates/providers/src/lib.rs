//! External model providers behind one API.
//!
//! The gateway speaks the OpenAI chat format inside; every provider is one file here behind the
//! one [`Provider`] trait, which knows how to turn an OpenAI request into the provider's request
//! (path, headers, body), the provider's answer back into OpenAI (whole bodies, streams with
//! per-stream state, errors), and how to classify a failure (retry elsewhere, fall over to a
//! larger-context model, or hand it to the client). Credentials are applied by the gateway per
//! attempt through [`auth`], which signs (SigV4) or mints (Google OAuth2 JWT) without any I/O.
//!
//! The client-facing Anthropic Messages format (`POST /v1/messages`) lives in [`anthropic`]
//! too: the same conversions, run the other way.
//!
//! Wire types are "passthrough": only the fields the gateway acts on are typed, the rest is kept
//! in `#[serde(flatten)] rest` maps so fields this version does not know survive a hop in the same
//! format. This crate never opens a socket: it is tested with golden fixtures
//! (`tests/fixtures/<provider>/<case>.json`) and property tests alone.

pub mod anthropic;
pub mod auth;
pub mod azure;
pub mod bedrock;
pub mod chunk;
pub mod error;
pub mod eventstream;
pub mod gemini;
pub mod model_name;
pub mod openai;
pub mod wire;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

pub use error::{classify_error, openai_error_body, ErrorClass, TranslateError};
pub use model_name::validate_model_name;

/// What an upstream speaks. Parsed from `Backend.spec.provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// api.openai.com.
    OpenAi,
    /// Any server with the OpenAI API (vLLM, Ollama, Groq, LiteLLM …).
    OpenAiCompatible,
    /// Azure OpenAI: deployments in the path, `api-version` in the query, `api-key` header.
    AzureOpenAi,
    /// Anthropic Messages API.
    Anthropic,
    /// AWS Bedrock Converse / ConverseStream, SigV4-signed.
    Bedrock,
    /// Google Vertex AI (Gemini models), OAuth2 access tokens from a service account.
    VertexAi,
    /// Google AI Studio Gemini API, `x-goog-api-key`.
    Gemini,
}

impl ProviderKind {
    /// Every kind with the name it has in configuration.
    pub const ALL: [(&'static str, ProviderKind); 7] = [
        ("OpenAI", ProviderKind::OpenAi),
        ("OpenAICompatible", ProviderKind::OpenAiCompatible),
        ("AzureOpenAI", ProviderKind::AzureOpenAi),
        ("Anthropic", ProviderKind::Anthropic),
        ("AWSBedrock", ProviderKind::Bedrock),
        ("GCPVertexAI", ProviderKind::VertexAi),
        ("Gemini", ProviderKind::Gemini),
    ];

    pub fn from_config(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
    }

    pub fn config_name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("OpenAI", |(n, _)| n)
    }

    /// `gen_ai.provider.name` as the OpenTelemetry GenAI conventions spell it.
    pub fn genai_name(self) -> &'static str {
        match self {
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => "openai",
            ProviderKind::AzureOpenAi => "azure.ai.openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Bedrock => "aws.bedrock",
            ProviderKind::VertexAi => "gcp.vertex_ai",
            ProviderKind::Gemini => "gcp.gemini",
        }
    }

    /// How the gateway authenticates to this kind.
    pub fn auth_scheme(self) -> AuthScheme {
        match self {
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => AuthScheme::Bearer,
            ProviderKind::AzureOpenAi => AuthScheme::Header("api-key"),
            ProviderKind::Anthropic => AuthScheme::Header("x-api-key"),
            ProviderKind::Bedrock => AuthScheme::AwsSigV4,
            ProviderKind::VertexAi => AuthScheme::GoogleServiceAccount,
            ProviderKind::Gemini => AuthScheme::Header("x-goog-api-key"),
        }
    }

    /// The provider implementation.
    pub fn provider(self) -> &'static dyn Provider {
        match self {
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => &openai::OpenAi,
            ProviderKind::AzureOpenAi => &azure::AzureOpenAi,
            ProviderKind::Anthropic => &anthropic::Anthropic,
            ProviderKind::Bedrock => &bedrock::Bedrock,
            ProviderKind::VertexAi => &gemini::Gemini { vertex: true },
            ProviderKind::Gemini => &gemini::Gemini { vertex: false },
        }
    }
}

/// How credentials are put on a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// The key in this header.
    Header(&'static str),
    /// AWS Signature Version 4 over the final body.
    AwsSigV4,
    /// OAuth2 access token minted from a service-account key, as `Authorization: Bearer`.
    GoogleServiceAccount,
}

/// What a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Chat,
    Completion,
    Embeddings,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Chat => "chat completions",
            Operation::Completion => "completions",
            Operation::Embeddings => "embeddings",
        }
    }
}

/// Where one attempt goes, as far as the translation needs to know.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The provider's model (or Azure deployment) name; validated before it reaches a path.
    pub model: &'a str,
    pub operation: Operation,
    pub stream: bool,
    /// Cloud region (Bedrock, Vertex AI).
    pub region: Option<&'a str>,
    /// GCP project (Vertex AI).
    pub project: Option<&'a str>,
    /// Azure `api-version`.
    pub api_version: Option<&'a str>,
    /// Unix seconds for `created` in translated responses.
    pub created: u64,
    /// The gateway's request id, for ids of translated responses that have none.
    pub request_id: &'a str,
}

/// The provider-format request one attempt sends (before credentials).
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    /// Path and query, appended to the backend's base URL path.
    pub path_and_query: String,
    pub body: Bytes,
    /// Headers the format needs (content type, API version …), not credentials.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Turns a provider's streamed answer into OpenAI SSE events, chunk by chunk, holding what the
/// stream needs between chunks (open content blocks, tool-call indexes, usage).
pub trait StreamTranslator: Send {
    /// One transport chunk in; complete OpenAI SSE events (`data: …\n\n`) out, in order.
    fn feed(&mut self, chunk: Bytes, out: &mut dyn FnMut(Bytes));
    /// The upstream ended. Emits what closes an OpenAI stream (`[DONE]`) only if the provider's
    /// stream was complete; a stream cut short emits nothing, so the gateway can say so.
    fn finish(&mut self, out: &mut dyn FnMut(Bytes));
}

/// One external provider: translation both ways and error classification.
pub trait Provider: Send + Sync {
    fn kind(&self) -> ProviderKind;

    /// The provider request for an OpenAI-format body (the model already set to the target's).
    fn build_request(
        &self,
        body: &Bytes,
        target: &Target<'_>,
    ) -> Result<UpstreamRequest, TranslateError>;

    /// A successful non-streamed answer, as an OpenAI body.
    fn translate_response(
        &self,
        body: &Bytes,
        target: &Target<'_>,
    ) -> Result<Bytes, TranslateError>;

    /// Per-stream state for a streamed answer.
    fn stream_translator(&self, target: &Target<'_>) -> Box<dyn StreamTranslator>;

    /// What a non-success answer means for failover.
    fn classify_error(&self, status: u16, body: &[u8]) -> ErrorClass {
        classify_error(status, body)
    }

    /// A non-success answer as an OpenAI error body (status kept by the caller).
    fn translate_error(&self, status: u16, body: &[u8]) -> Bytes {
        openai_error_body(status, body)
    }

    /// Whether the stream is AWS event-stream framed rather than SSE.
    fn stream_content_type(&self) -> &'static str {
        "text/event-stream"
    }
}
