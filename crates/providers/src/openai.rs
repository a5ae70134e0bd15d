//! OpenAI and every OpenAI-compatible server (vLLM, Ollama, Groq …): the gateway's own format,
//! so requests and answers pass through as bytes. The base URL includes the API prefix, as the
//! OpenAI SDKs write it (`https://api.openai.com/v1`).

use bytes::Bytes;
use http::{header, HeaderValue};
use infergate_protocol::SseSplitter;

use crate::{
    Operation, Provider, ProviderKind, StreamTranslator, Target, TranslateError, UpstreamRequest,
};

pub struct OpenAi;

/// The path under the base URL for an operation.
pub fn operation_path(op: Operation) -> &'static str {
    match op {
        Operation::Chat => "/chat/completions",
        Operation::Completion => "/completions",
        Operation::Embeddings => "/embeddings",
    }
}

pub(crate) fn json_headers() -> Vec<(http::HeaderName, HeaderValue)> {
    vec![(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )]
}

impl Provider for OpenAi {
    fn kind(&self) -> ProviderKind {
        ProviderKind::OpenAi
    }

    fn build_request(
        &self,
        body: &Bytes,
        target: &Target<'_>,
    ) -> Result<UpstreamRequest, TranslateError> {
        crate::validate_model_name(target.model)?;
        Ok(UpstreamRequest {
            path_and_query: operation_path(target.operation).to_string(),
            body: body.clone(),
            headers: json_headers(),
        })
    }

    fn translate_response(
        &self,
        body: &Bytes,
        _target: &Target<'_>,
    ) -> Result<Bytes, TranslateError> {
        Ok(body.clone())
    }

    fn stream_translator(&self, _target: &Target<'_>) -> Box<dyn StreamTranslator> {
        Box::new(SsePassthrough::default())
    }
}

/// An OpenAI SSE stream cut into whole events, otherwise untouched.
#[derive(Default)]
pub struct SsePassthrough {
    splitter: SseSplitter,
}

impl StreamTranslator for SsePassthrough {
    fn feed(&mut self, chunk: Bytes, out: &mut dyn FnMut(Bytes)) {
        self.splitter.feed(chunk, out);
    }

    fn finish(&mut self, out: &mut dyn FnMut(Bytes)) {
        if let Some(tail) = self.splitter.finish() {
            out(tail);
        }
    }
}
