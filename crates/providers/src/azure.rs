//! Azure OpenAI: the OpenAI body, with the deployment in the path
//! (`/openai/deployments/{deployment}/chat/completions?api-version=…`) and the key in the
//! `api-key` header. The target model is the deployment name.

use bytes::Bytes;

use crate::model_name::path_segment;
use crate::openai::{json_headers, SsePassthrough};
use crate::{
    Operation, Provider, ProviderKind, StreamTranslator, Target, TranslateError, UpstreamRequest,
};

pub struct AzureOpenAi;

/// The GA data-plane API version used when the backend sets none.
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

impl Provider for AzureOpenAi {
    fn kind(&self) -> ProviderKind {
        ProviderKind::AzureOpenAi
    }

    fn build_request(
        &self,
        body: &Bytes,
        target: &Target<'_>,
    ) -> Result<UpstreamRequest, TranslateError> {
        crate::validate_model_name(target.model)?;
        let op = match target.operation {
            Operation::Chat => "chat/completions",
            Operation::Completion => "completions",
            Operation::Embeddings => "embeddings",
        };
        let version = target.api_version.unwrap_or(DEFAULT_API_VERSION);
        let version = path_segment(version);
        Ok(UpstreamRequest {
            path_and_query: format!(
                "/openai/deployments/{}/{op}?api-version={version}",
                path_segment(target.model)
            ),
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
