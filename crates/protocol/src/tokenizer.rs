//! A cheap, deterministic stand-in for a model's BPE tokenizer, shared by the simulator (usage
//! counts, context-length checks, prefix-cache blocks, echo streaming) and the scheduler's precise
//! prefix-cache scorer, which must cut a prompt into exactly the blocks the simulated engine
//! caches. Keeping one implementation is what keeps the two in agreement.
//!
//! Rules, chosen so that English text lands near the
//! ~1.3 tokens/word of real tokenizers without any vocabulary file:
//! - whitespace separates tokens and is not itself a token (BPE folds it into the next token);
//! - a run of letters/digits (any non-ASCII byte counts as a letter) is one token, split every
//!   [`MAX_TOKEN_BYTES`] bytes (never inside a UTF-8 character), so long words, identifiers and
//!   CJK text cost more than one token;
//! - every other ASCII character (punctuation, symbols) is one token.
//!
//! A token's id is the 32-bit FNV-1a hash of its bytes, so equal text gives equal ids and shared
//! prefixes give shared prefix-cache blocks. It must stay a single pass with no allocation beyond
//! the caller's id buffer.

use std::ops::Range;

/// Longest token, in bytes, before a letter run is split.
pub const MAX_TOKEN_BYTES: usize = 8;

/// Iterator over the byte ranges of the tokens in a text.
pub struct TokenSpans<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> TokenSpans<'a> {
    pub fn new(text: &'a str) -> Self {
        Self {
            bytes: text.as_bytes(),
            pos: 0,
        }
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

fn is_utf8_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

impl Iterator for TokenSpans<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        let bytes = self.bytes;
        let mut i = self.pos;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() {
            self.pos = i;
            return None;
        }
        let start = i;
        if is_word_byte(bytes[i]) {
            i += 1;
            while i < bytes.len() && is_word_byte(bytes[i]) && i - start < MAX_TOKEN_BYTES {
                i += 1;
            }
            // Never end a token inside a multi-byte character.
            while i < bytes.len() && is_utf8_continuation(bytes[i]) {
                i += 1;
            }
        } else {
            i += 1;
        }
        self.pos = i;
        Some(start..i)
    }
}

/// Number of tokens in `text`.
pub fn count_tokens(text: &str) -> usize {
    TokenSpans::new(text).count()
}

/// Appends the token ids of `text` to `out`.
pub fn push_token_ids(text: &str, out: &mut Vec<u32>) {
    let bytes = text.as_bytes();
    out.extend(TokenSpans::new(text).map(|r| token_id(&bytes[r])));
}

/// The id of one token: FNV-1a over its bytes.
pub fn token_id(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811C_9DC5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Byte offset just after the first `n` tokens of `text` (the whole text if it has fewer).
pub fn prefix_end(text: &str, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    TokenSpans::new(text)
        .nth(n - 1)
        .map_or(text.len(), |r| r.end)
}

/// The ChatML-like chat template: a message's role-start token.
pub fn role_token(role: &str) -> u32 {
    let mut h: u32 = token_id(b"<|im_start|>");
    for b in role.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h
}

/// The ChatML-like chat template: the token that ends every message.
pub fn message_end_token() -> u32 {
    token_id(b"<|im_end|>")
}

/// Prompt token ids of a chat conversation given as the raw JSON `messages` array, through the
/// template: per message its role-start token, the tokens of each text part (a string content, or
/// the `text` of each content part), an end token; then an assistant-start token. `None` when the
/// JSON is not a messages array.
pub fn chat_prompt_token_ids(messages_json: &[u8]) -> Option<Vec<u32>> {
    #[derive(serde::Deserialize)]
    struct Message<'a> {
        #[serde(borrow)]
        role: std::borrow::Cow<'a, str>,
        #[serde(default)]
        content: Option<serde_json::Value>,
    }
    let messages: Vec<Message<'_>> = serde_json::from_slice(messages_json).ok()?;
    let mut ids = Vec::with_capacity(messages_json.len() / 4);
    for m in &messages {
        ids.push(role_token(&m.role));
        match &m.content {
            Some(serde_json::Value::String(s)) => push_token_ids(s, &mut ids),
            Some(serde_json::Value::Array(parts)) => {
                for part in parts {
                    if let Some(t) = part.get("text").and_then(|t| t.as_str()) {
                        push_token_ids(t, &mut ids);
                    }
                }
            }
            _ => {}
        }
        ids.push(message_end_token());
    }
    ids.push(role_token("assistant"));
    Some(ids)
}

/// Prompt token ids of a completion `prompt` given as raw JSON: a string, a one-string list, or
/// token ids (`[1,2]` or `[[1,2]]`). `None` for anything else.
pub fn completion_prompt_token_ids(prompt_json: &[u8]) -> Option<Vec<u32>> {
    let v: serde_json::Value = serde_json::from_slice(prompt_json).ok()?;
    let text_ids = |s: &str| {
        let mut ids = Vec::with_capacity(s.len() / 4);
        push_token_ids(s, &mut ids);
        ids
    };
    let number_ids = |items: &[serde_json::Value]| -> Option<Vec<u32>> {
        items
            .iter()
            .map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()))
            .collect()
    };
    match &v {
        serde_json::Value::String(s) => Some(text_ids(s)),
        serde_json::Value::Array(items) => match items.first() {
            Some(serde_json::Value::String(s)) if items.len() == 1 => Some(text_ids(s)),
            Some(serde_json::Value::Array(inner)) if items.len() == 1 => number_ids(inner),
            Some(serde_json::Value::Number(_)) => number_ids(items),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<&str> {
        TokenSpans::new(text).map(|r| &text[r]).collect()
    }

    #[test]
    fn words_and_punctuation() {
        assert_eq!(tokens("Hello, world!"), vec!["Hello", ",", "world", "!"]);
        assert_eq!(tokens("  a  b\n"), vec!["a", "b"]);
        assert_eq!(count_tokens(""), 0);
        assert_eq!(count_tokens("   "), 0);
    }

    #[test]
    fn long_words_are_split() {
        assert_eq!(
            tokens("internationalization"),
            vec!["internat", "ionaliza", "tion"]
        );
    }

    #[test]
    fn utf8_is_never_split_inside_a_character() {
        let text = "日本語のテキストです";
        let parts = tokens(text);
        assert!(parts.len() > 1);
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn ids_are_deterministic_and_distinguish_tokens() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        push_token_ids("the cat sat", &mut a);
        push_token_ids("the cat sat", &mut b);
        assert_eq!(a, b);
        assert_eq!(a.len(), 3);
        assert_ne!(a[0], a[1]);
    }

    #[test]
    fn chat_template_wraps_each_message() {
        let ids = chat_prompt_token_ids(
            br#"[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi there"}]}]"#,
        )
        .unwrap();
        let mut expected = vec![role_token("system")];
        push_token_ids("be brief", &mut expected);
        expected.push(message_end_token());
        expected.push(role_token("user"));
        push_token_ids("hi there", &mut expected);
        expected.push(message_end_token());
        expected.push(role_token("assistant"));
        assert_eq!(ids, expected);
        assert!(chat_prompt_token_ids(b"{}").is_none());
    }

    #[test]
    fn completion_prompts_of_every_shape() {
        let mut hello = Vec::new();
        push_token_ids("hello world", &mut hello);
        assert_eq!(
            completion_prompt_token_ids(br#""hello world""#).unwrap(),
            hello
        );
        assert_eq!(
            completion_prompt_token_ids(br#"["hello world"]"#).unwrap(),
            hello
        );
        assert_eq!(
            completion_prompt_token_ids(b"[1,2,3]").unwrap(),
            vec![1, 2, 3]
        );
        assert_eq!(completion_prompt_token_ids(b"[[4,5]]").unwrap(), vec![4, 5]);
        assert!(completion_prompt_token_ids(br#"["a","b"]"#).is_none());
    }

    #[test]
    fn prefix_end_cuts_after_n_tokens() {
        let text = "one two, three";
        assert_eq!(&text[..prefix_end(text, 2)], "one two");
        assert_eq!(&text[..prefix_end(text, 3)], "one two,");
        assert_eq!(prefix_end(text, 10), text.len());
        assert_eq!(prefix_end(text, 0), 0);
    }
}
