//! The OpenAI/vLLM wire format the simulator speaks: request bodies it reads and response
//! bodies it writes.
//!
//! Owns only shapes. Requests are parsed with borrowed strings and only the fields the simulator
//! acts on are typed; everything else is ignored, as vLLM ignores sampling parameters it does not
//! need here. Responses are serialised straight from borrowed structs (no intermediate JSON
//! tree). The chat template approximation (how messages become prompt tokens) lives here too.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::tokenizer::{message_end_token, push_token_ids, role_token};

/// A string that borrows from the request body when it has no escapes.
#[derive(Debug)]
pub(crate) struct Text<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }

        d.deserialize_str(TextVisitor(PhantomData))
    }
}

impl Text<'_> {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    pub(crate) include_usage: Option<bool>,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatRequest<'a> {
    #[serde(borrow, default)]
    pub(crate) model: Option<Text<'a>>,
    #[serde(borrow)]
    pub(crate) messages: Vec<ChatMessage<'a>>,
    #[serde(default)]
    pub(crate) stream: Option<bool>,
    #[serde(default)]
    pub(crate) stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub(crate) max_tokens: Option<u32>,
    #[serde(default)]
    pub(crate) max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub(crate) seed: Option<i64>,
    /// vLLM's request priority (lower = sooner) under `--scheduling-policy priority`.
    #[serde(default)]
    pub(crate) priority: Option<i64>,
}

/// One chat message; only its role and text matter here.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatMessage<'a> {
    #[serde(borrow)]
    pub(crate) role: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) content: Option<MessageContent<'a>>,
}

/// A message's text: a string, or the `text` of each content part.
#[derive(Debug, Default)]
pub(crate) struct MessageContent<'a>(pub(crate) Vec<Cow<'a, str>>);

impl MessageContent<'_> {
    /// The text, parts joined by newlines.
    pub(crate) fn joined(&self) -> String {
        self.0.join("\n")
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for MessageContent<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ContentVisitor<'a>(PhantomData<&'a ()>);

        #[derive(Deserialize)]
        struct Part<'a> {
            #[serde(borrow, default)]
            text: Option<Text<'a>>,
        }

        impl<'de: 'a, 'a> Visitor<'de> for ContentVisitor<'a> {
            type Value = MessageContent<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MessageContent(vec![Cow::Borrowed(v)]))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MessageContent(vec![Cow::Owned(v.to_owned())]))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(MessageContent(vec![Cow::Owned(v)]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut parts = Vec::new();
                while let Some(part) = seq.next_element::<Part<'a>>()? {
                    if let Some(text) = part.text {
                        parts.push(text.0);
                    }
                }
                Ok(MessageContent(parts))
            }
        }

        d.deserialize_any(ContentVisitor(PhantomData))
    }
}

/// A prompt or embedding input: text, texts, token ids, or batches of token ids.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum TextInput<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Texts(#[serde(borrow)] Vec<Cow<'a, str>>),
    Tokens(Vec<u32>),
    TokenBatches(Vec<Vec<u32>>),
}

/// `POST /v1/completions`.
#[derive(Debug, Deserialize)]
pub(crate) struct CompletionRequest<'a> {
    #[serde(borrow, default)]
    pub(crate) model: Option<Text<'a>>,
    #[serde(borrow)]
    pub(crate) prompt: TextInput<'a>,
    #[serde(default)]
    pub(crate) stream: Option<bool>,
    #[serde(default)]
    pub(crate) stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub(crate) max_tokens: Option<u32>,
    #[serde(default)]
    pub(crate) seed: Option<i64>,
    /// vLLM's request priority (lower = sooner) under `--scheduling-policy priority`.
    #[serde(default)]
    pub(crate) priority: Option<i64>,
}

/// `POST /v1/embeddings`.
#[derive(Debug, Deserialize)]
pub(crate) struct EmbeddingRequest<'a> {
    #[serde(borrow, default)]
    pub(crate) model: Option<Text<'a>>,
    #[serde(borrow)]
    pub(crate) input: TextInput<'a>,
    #[serde(default)]
    pub(crate) dimensions: Option<usize>,
    #[serde(borrow, default)]
    pub(crate) encoding_format: Option<Text<'a>>,
}

/// `POST /v1/load_lora_adapter` and `/v1/unload_lora_adapter`.
#[derive(Debug, Deserialize)]
pub(crate) struct LoraAdapterRequest {
    pub(crate) lora_name: String,
    #[serde(default)]
    pub(crate) lora_path: Option<String>,
}

/// A prompt as the engine sees it.
pub(crate) struct Prompt {
    pub(crate) token_ids: Vec<u32>,
    /// What `echo` mode answers with.
    pub(crate) echo_text: String,
    /// Identifies the prompt's content (seeds the response text).
    pub(crate) fingerprint: u64,
}

impl Prompt {
    pub(crate) fn tokens(&self) -> usize {
        self.token_ids.len()
    }

    /// Chat messages through a ChatML-like template: each message costs its content tokens plus
    /// a role-start and an end token, and the prompt ends with an assistant-start token (the
    /// ~3 tokens of overhead per message real templates add).
    pub(crate) fn from_chat(messages: &[ChatMessage<'_>]) -> Prompt {
        let mut token_ids = Vec::new();
        let mut echo_text = String::new();
        let mut hasher = xxhash_rust::xxh64::Xxh64::new(0);
        for m in messages {
            token_ids.push(role_token(&m.role));
            hasher.update(m.role.as_bytes());
            hasher.update(&[0]);
            if let Some(content) = &m.content {
                for part in &content.0 {
                    push_token_ids(part, &mut token_ids);
                    hasher.update(part.as_bytes());
                    hasher.update(&[0]);
                }
                if m.role == "user" {
                    echo_text = content.joined();
                }
            }
            token_ids.push(message_end_token());
        }
        token_ids.push(role_token("assistant"));
        Prompt {
            token_ids,
            echo_text,
            fingerprint: hasher.digest(),
        }
    }

    /// A completion prompt (text or token ids).
    pub(crate) fn from_text_input(input: &TextInput<'_>) -> Result<Prompt, &'static str> {
        match input {
            TextInput::Text(t) => Ok(Prompt::from_text(t)),
            TextInput::Texts(v) if v.len() == 1 => Ok(Prompt::from_text(&v[0])),
            TextInput::Tokens(ids) => Ok(Prompt::from_ids(ids.clone())),
            TextInput::TokenBatches(b) if b.len() == 1 => Ok(Prompt::from_ids(b[0].clone())),
            _ => Err(
                "batched prompts are not supported by the simulator; send one prompt per request",
            ),
        }
    }

    fn from_text(text: &str) -> Prompt {
        let mut token_ids = Vec::new();
        push_token_ids(text, &mut token_ids);
        Prompt {
            token_ids,
            echo_text: text.to_owned(),
            fingerprint: xxhash_rust::xxh64::xxh64(text.as_bytes(), 1),
        }
    }

    fn from_ids(token_ids: Vec<u32>) -> Prompt {
        let echo_text = token_ids
            .iter()
            .map(|t| format!("t{t}"))
            .collect::<Vec<_>>()
            .join(" ");
        let mut bytes = Vec::with_capacity(token_ids.len() * 4);
        for t in &token_ids {
            bytes.extend_from_slice(&t.to_le_bytes());
        }
        Prompt {
            token_ids,
            echo_text,
            fingerprint: xxhash_rust::xxh64::xxh64(&bytes, 2),
        }
    }
}

/// Inputs of an embedding request, as `(text for hashing, token count)`.
pub(crate) fn embedding_inputs(input: &TextInput<'_>) -> Vec<(Vec<u8>, usize)> {
    fn ids_bytes(ids: &[u32]) -> Vec<u8> {
        ids.iter().flat_map(|t| t.to_le_bytes()).collect()
    }
    match input {
        TextInput::Text(t) => vec![(t.as_bytes().to_vec(), crate::tokenizer::count_tokens(t))],
        TextInput::Texts(v) => v
            .iter()
            .map(|t| (t.as_bytes().to_vec(), crate::tokenizer::count_tokens(t)))
            .collect(),
        TextInput::Tokens(ids) => vec![(ids_bytes(ids), ids.len())],
        TextInput::TokenBatches(b) => b.iter().map(|ids| (ids_bytes(ids), ids.len())).collect(),
    }
}

// ---------------------------------------------------------------- responses

/// `usage` of every response.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct Usage {
    pub(crate) prompt_tokens: usize,
    pub(crate) completion_tokens: u32,
    pub(crate) total_tokens: usize,
    pub(crate) prompt_tokens_details: PromptTokensDetails,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct PromptTokensDetails {
    pub(crate) cached_tokens: usize,
}

impl Usage {
    pub(crate) fn new(prompt_tokens: usize, completion_tokens: u32, cached_tokens: usize) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens as usize,
            prompt_tokens_details: PromptTokensDetails { cached_tokens },
        }
    }
}

#[derive(Serialize)]
pub(crate) struct ChatCompletion<'a> {
    pub(crate) id: &'a str,
    pub(crate) object: &'static str,
    pub(crate) created: u64,
    pub(crate) model: &'a str,
    pub(crate) choices: [ChatChoice<'a>; 1],
    pub(crate) usage: Usage,
}

#[derive(Serialize)]
pub(crate) struct ChatChoice<'a> {
    pub(crate) index: u32,
    pub(crate) message: AssistantMessage<'a>,
    pub(crate) logprobs: Option<()>,
    pub(crate) finish_reason: &'static str,
}

#[derive(Serialize)]
pub(crate) struct AssistantMessage<'a> {
    pub(crate) role: &'static str,
    pub(crate) content: &'a str,
    pub(crate) tool_calls: [(); 0],
}

#[derive(Serialize)]
pub(crate) struct TextCompletion<'a> {
    pub(crate) id: &'a str,
    pub(crate) object: &'static str,
    pub(crate) created: u64,
    pub(crate) model: &'a str,
    pub(crate) choices: [TextChoice<'a>; 1],
    pub(crate) usage: Usage,
}

#[derive(Serialize)]
pub(crate) struct TextChoice<'a> {
    pub(crate) index: u32,
    pub(crate) text: &'a str,
    pub(crate) logprobs: Option<()>,
    pub(crate) finish_reason: &'static str,
}

#[derive(Serialize)]
pub(crate) struct EmbeddingList<'a> {
    pub(crate) object: &'static str,
    pub(crate) data: Vec<EmbeddingData>,
    pub(crate) model: &'a str,
    pub(crate) usage: EmbeddingUsage,
}

#[derive(Serialize)]
pub(crate) struct EmbeddingData {
    pub(crate) object: &'static str,
    pub(crate) index: usize,
    pub(crate) embedding: EmbeddingVector,
}

/// A vector as floats, or base64 of little-endian f32 (the OpenAI SDK's default request).
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum EmbeddingVector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
pub(crate) struct EmbeddingUsage {
    pub(crate) prompt_tokens: usize,
    pub(crate) total_tokens: usize,
}

#[derive(Serialize)]
pub(crate) struct ModelList {
    pub(crate) object: &'static str,
    pub(crate) data: Vec<ModelCard>,
}

#[derive(Serialize)]
pub(crate) struct ModelCard {
    pub(crate) id: String,
    pub(crate) object: &'static str,
    pub(crate) created: u64,
    pub(crate) owned_by: &'static str,
    pub(crate) root: String,
    pub(crate) parent: Option<String>,
    pub(crate) max_model_len: u32,
}

/// Standard base64 (RFC 4648, padded).
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(ALPHABET[(n >> 18) as usize & 63] as char);
        out.push(ALPHABET[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            ALPHABET[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            ALPHABET[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_request_with_string_and_part_contents() {
        let body = r#"{"model":"m","messages":[
            {"role":"system","content":"be brief"},
            {"role":"user","content":[{"type":"text","text":"hello"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"there"}]},
            {"role":"assistant","content":null,"tool_calls":[]}
        ],"stream":true,"stream_options":{"include_usage":true},"max_tokens":5,"temperature":0.2}"#;
        let r: ChatRequest<'_> = serde_json::from_str(body).unwrap();
        assert!(matches!(r.model, Some(Text(Cow::Borrowed("m")))));
        assert_eq!(r.messages.len(), 3);
        assert_eq!(
            r.messages[1].content.as_ref().unwrap().joined(),
            "hello\nthere"
        );
        assert_eq!(r.stream, Some(true));
        assert_eq!(r.stream_options.unwrap().include_usage, Some(true));
        let p = Prompt::from_chat(&r.messages);
        assert_eq!(p.echo_text, "hello\nthere");
        // system: 1 + 2 + 1, user: 1 + 2 + 1, assistant: 1 + 0 + 1, plus the assistant start
        assert_eq!(p.tokens(), 11);
    }

    #[test]
    fn the_scheduler_sees_the_same_prompt_tokens_as_the_engine() {
        // The precise prefix-cache scorer tokenizes with `chat_prompt_token_ids` /
        // `completion_prompt_token_ids`; they must agree with what the engine caches.
        let messages = r#"[{"role":"system","content":"be brief, always"},{"role":"user","content":[{"type":"text","text":"hello"},{"type":"text","text":"there"}]},{"role":"assistant","content":null}]"#;
        let body = format!(r#"{{"messages":{messages}}}"#);
        let r: ChatRequest<'_> = serde_json::from_str(&body).unwrap();
        assert_eq!(
            Prompt::from_chat(&r.messages).token_ids,
            crate::tokenizer::chat_prompt_token_ids(messages.as_bytes()).unwrap()
        );
        for prompt in [r#""a b, c""#, r#"["x y"]"#, "[1,2,3]", "[[7,8]]"] {
            let body = format!(r#"{{"prompt":{prompt}}}"#);
            let r: CompletionRequest<'_> = serde_json::from_str(&body).unwrap();
            assert_eq!(
                Prompt::from_text_input(&r.prompt).unwrap().token_ids,
                crate::tokenizer::completion_prompt_token_ids(prompt.as_bytes()).unwrap()
            );
        }
    }

    #[test]
    fn shared_system_prompts_share_token_prefixes() {
        let parse = |user: &str| {
            let body = format!(
                r#"{{"messages":[{{"role":"system","content":"you are a helpful model"}},{{"role":"user","content":"{user}"}}]}}"#
            );
            let r: ChatRequest<'_> = serde_json::from_str(&body).unwrap();
            Prompt::from_chat(&r.messages)
        };
        let (a, b) = (parse("one"), parse("two"));
        assert_eq!(a.token_ids[..7], b.token_ids[..7]);
        assert_ne!(a.token_ids, b.token_ids);
        assert_ne!(a.fingerprint, b.fingerprint);
    }

    #[test]
    fn bad_bodies_are_rejected() {
        assert!(serde_json::from_str::<ChatRequest<'_>>(r#"{"model":"m"}"#).is_err());
        assert!(
            serde_json::from_str::<ChatRequest<'_>>(r#"{"messages":[],"max_tokens":-1}"#).is_err()
        );
        assert!(serde_json::from_str::<ChatRequest<'_>>(
            r#"{"messages":[{"role":"user","content":5}]}"#
        )
        .is_err());
    }

    #[test]
    fn completion_prompts() {
        let r: CompletionRequest<'_> = serde_json::from_str(r#"{"prompt":"a b c"}"#).unwrap();
        assert_eq!(Prompt::from_text_input(&r.prompt).unwrap().tokens(), 3);
        let r: CompletionRequest<'_> = serde_json::from_str(r#"{"prompt":[1,2,3,4]}"#).unwrap();
        assert_eq!(
            Prompt::from_text_input(&r.prompt).unwrap().token_ids,
            vec![1, 2, 3, 4]
        );
        let r: CompletionRequest<'_> = serde_json::from_str(r#"{"prompt":["x y"]}"#).unwrap();
        assert_eq!(Prompt::from_text_input(&r.prompt).unwrap().tokens(), 2);
        let r: CompletionRequest<'_> = serde_json::from_str(r#"{"prompt":["x","y"]}"#).unwrap();
        assert!(Prompt::from_text_input(&r.prompt).is_err());
    }

    #[test]
    fn response_shapes() {
        let c = ChatCompletion {
            id: "chatcmpl-1",
            object: "chat.completion",
            created: 7,
            model: "m",
            choices: [ChatChoice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant",
                    content: "hi",
                    tool_calls: [],
                },
                logprobs: None,
                finish_reason: "stop",
            }],
            usage: Usage::new(3, 1, 0),
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "hi");
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"],
            serde_json::json!([])
        );
        assert_eq!(v["usage"]["total_tokens"], 4);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }
}
