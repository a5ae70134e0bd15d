//! The token estimate reserved at admission: prompt tokens counted with a tokenizer, plus the
//! output the request may produce (`max_tokens`, or a configured default).
//!
//! Which tokenizer: the `tiktoken` encoding of the model's family when the public model name is
//! an OpenAI one (`gpt-4o*`, `gpt-4.1*`, `gpt-5*`, `o1`/`o3`/`o4*` → `o200k_base`; `gpt-4*`,
//! `gpt-3.5*`, `text-embedding-*` → `cl100k_base`), otherwise **`cl100k_base` as the documented
//! fallback**: on English text it lands within ~10–15% of the Llama 3, Mistral and Qwen
//! tokenizers, and the settle step corrects the difference once the model server reports real
//! usage. Chat messages add 3 tokens each plus 3 for the reply's priming (OpenAI's accounting,
//! which also covers chat templates of the open models).
//!
//! Cost is bounded: the first [`EXACT_BYTES`] of prompt text are tokenized exactly; beyond that
//! the count is extrapolated from the prefix's tokens per byte, so a 220 KB prompt costs what a
//! 16 KB one does.
//!
//! The counting is `bpe-openai` (GitHub's `bpe` crates): the same encodings and the same counts
//! as `tiktoken` (a test compares them on varied text), but it counts without building the token
//! list — `tiktoken-rs`'s `fancy_regex` pre-tokenizer was the largest cost of a request with
//! limits on (`perf` under `infergate bench overhead --policy local`). Two shortcuts on top, both
//! exact: ASCII text in `cl100k_base` is split by a hand-written scanner of the encoding's
//! pattern ([`crate::pretokenize`], checked piece for piece against the library's regex), and
//! each thread remembers the counts of the short pieces (words) it has seen, so a common word is
//! one hash lookup instead of a byte-pair encoding (`docs/benchmarks/token-estimate.md`).

use bpe_openai::Tokenizer;
use rustc_hash::FxHashMap;
use serde_json::Value;

/// Prompt text tokenized exactly; longer text is extrapolated from this prefix.
pub const EXACT_BYTES: usize = 16 * 1024;
/// Per-message overhead in chat requests (role, separators).
pub const TOKENS_PER_MESSAGE: u64 = 3;
/// The assistant reply's priming tokens.
pub const REPLY_PRIMING: u64 = 3;

/// A tiktoken encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    O200kBase = 0,
    Cl100kBase = 1,
}

impl Encoding {
    /// The encoding for a model name (see the module doc for the families and the fallback).
    pub fn for_model(model: &str) -> Self {
        let m = model
            .rsplit('/')
            .next()
            .unwrap_or(model)
            .to_ascii_lowercase();
        let o200k = [
            "gpt-4o",
            "gpt-4.1",
            "gpt-4.5",
            "gpt-5",
            "chatgpt-4o",
            "o1",
            "o3",
            "o4",
            "gpt-oss",
        ];
        if o200k.iter().any(|p| m.starts_with(p)) {
            Encoding::O200kBase
        } else {
            Encoding::Cl100kBase
        }
    }

    fn bpe(self) -> &'static Tokenizer {
        match self {
            Encoding::O200kBase => bpe_openai::o200k_base(),
            Encoding::Cl100kBase => bpe_openai::cl100k_base(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
        }
    }
}

/// Load both encodings now (they take a while to build), so the first request does not pay.
pub fn warm_up() {
    let _ = Encoding::Cl100kBase.bpe();
    let _ = Encoding::O200kBase.bpe();
}

/// Load only the encodings these public models need: each costs tens of MB of memory, and most
/// deployments serve one family. An encoding not loaded here is built on first use.
pub fn warm_up_for<'a>(models: impl IntoIterator<Item = &'a str>) {
    // Each encoding is built once (a `LazyLock`); later models of the same family cost nothing.
    for m in models {
        let _ = Encoding::for_model(m).bpe();
    }
}

/// Tokens in `text`, exact up to [`EXACT_BYTES`], extrapolated beyond.
pub fn count_text(enc: Encoding, text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    if text.len() <= EXACT_BYTES {
        return count_exact(enc, text);
    }
    let mut cut = EXACT_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let prefix_tokens = count_exact(enc, &text[..cut]);
    // Round up: an estimate that errs high is settled down; one that errs low lets a limit
    // overshoot.
    (prefix_tokens * text.len() as u64).div_ceil(cut as u64)
}

/// Pieces longer than this are counted every time (they are rare and seldom repeat).
const MEMO_PIECE_BYTES: usize = 24;
/// Distinct pieces remembered per thread and encoding before the memo starts afresh (~1 MB).
const MEMO_ENTRIES: usize = 16 * 1024;

thread_local! {
    /// Token counts of recently seen pieces (words, mostly), per encoding: byte-pair-encoding a
    /// piece costs ~100 ns, looking it up a tenth of that, and prompts repeat their words.
    static MEMO: std::cell::RefCell<[Memo; 2]> = Default::default();
}

/// One encoding's memo. Pieces of up to 15 bytes (nearly every word with its leading space)
/// are keyed by their bytes packed into a `u128`, so a lookup hashes and compares one integer
/// with no allocation; longer pieces, up to [`MEMO_PIECE_BYTES`], by their bytes.
#[derive(Default)]
struct Memo {
    short: FxHashMap<u128, u32>,
    long: FxHashMap<Box<[u8]>, u32>,
}

/// Longest piece packed into a `u128` key (the 16th byte holds the length).
const PACKED_BYTES: usize = 15;

/// The piece (at most [`PACKED_BYTES`]) as one integer: its bytes, read as whole words where
/// they can be (overlapping reads of the same bytes), and its length in the top byte.
fn packed(p: &[u8]) -> u128 {
    let n = p.len();
    let u64_at = |i: usize| u64::from_le_bytes(p[i..i + 8].try_into().unwrap_or([0; 8]));
    let u32_at = |i: usize| u32::from_le_bytes(p[i..i + 4].try_into().unwrap_or([0; 4]));
    let (lo, hi) = if n >= 8 {
        // Bytes 8..n: the last eight, shifted down past the ones already in `lo`.
        let hi = u64_at(n - 8)
            .checked_shr(((16 - n) * 8) as u32)
            .unwrap_or(0);
        (u64_at(0), hi)
    } else if n >= 4 {
        let tail = u64::from(u32_at(n - 4)) << ((n - 4) * 8);
        (u64::from(u32_at(0)) | tail, 0)
    } else {
        (p.iter().rev().fold(0, |x, &b| x << 8 | u64::from(b)), 0)
    };
    u128::from(lo) | u128::from(hi) << 64 | (n as u128) << 120
}

impl Memo {
    fn clear(&mut self) {
        self.short.clear();
        self.long.clear();
    }

    /// The piece's count, from the memo or counted (and remembered) by `count`.
    fn count(&mut self, p: &[u8], count: impl FnOnce(&[u8]) -> usize) -> u64 {
        if p.len() > MEMO_PIECE_BYTES {
            return count(p) as u64;
        }
        let key = (p.len() <= PACKED_BYTES).then(|| packed(p));
        let known = match key {
            Some(k) => self.short.get(&k),
            None => self.long.get(p),
        };
        if let Some(&n) = known {
            return u64::from(n);
        }
        let n = u32::try_from(count(p)).unwrap_or(u32::MAX);
        if self.short.len() + self.long.len() >= MEMO_ENTRIES {
            self.clear();
        }
        match key {
            Some(k) => self.short.insert(k, n),
            None => self.long.insert(p.into(), n),
        };
        u64::from(n)
    }
}

/// Forget this thread's memo of piece counts (benchmarks measure the cold case with it).
#[doc(hidden)]
pub fn reset_memo() {
    MEMO.with(|m| m.borrow_mut().iter_mut().for_each(Memo::clear));
}

/// Exactly tiktoken's count: the text split by the encoding's pre-tokenizer (by hand for ASCII
/// text in `cl100k_base`, see [`crate::pretokenize`]), each piece byte-pair-encoded.
fn count_exact(enc: Encoding, text: &str) -> u64 {
    let tokenizer = enc.bpe();
    MEMO.with(|memo| {
        let mut memo = memo.borrow_mut();
        let memo = &mut memo[enc as usize];
        let mut total = 0u64;
        let mut piece = |p: &[u8]| total += memo.count(p, |p| tokenizer.bpe.count(p));
        if enc == Encoding::Cl100kBase {
            crate::pretokenize::cl100k_pieces(text, piece, |segment, f| {
                tokenizer.split(segment).for_each(|p| f(p.as_bytes()));
            });
        } else {
            // Neither encoding normalises (NFC is off for both), so the library's split of the
            // raw text is what its `count` splits.
            tokenizer.split(text).for_each(|p| piece(p.as_bytes()));
        }
        total
    })
}

/// Prompt tokens of a request, from the raw JSON of its `messages`, `prompt` or `input`.
pub fn prompt_tokens(enc: Encoding, raw: &[u8]) -> u64 {
    if raw.is_empty() {
        return 0;
    }
    let Ok(value) = serde_json::from_slice::<Value>(raw) else {
        // Not JSON we understand: a conservative byte-based guess (~3 bytes per token).
        return (raw.len() as u64).div_ceil(3);
    };
    let mut text = String::new();
    let mut extra = 0u64;
    match &value {
        Value::Array(items) if items.iter().any(Value::is_object) => {
            // Chat messages.
            for m in items {
                extra += TOKENS_PER_MESSAGE;
                if let Some(content) = m.get("content") {
                    push_text(content, &mut text, &mut extra);
                }
                if let Some(name) = m.get("name").and_then(Value::as_str) {
                    text.push_str(name);
                    text.push('\n');
                }
                if let Some(calls) = m.get("tool_calls") {
                    text.push_str(&calls.to_string());
                }
            }
            extra += REPLY_PRIMING;
        }
        other => push_text(other, &mut text, &mut extra),
    }
    count_text(enc, &text) + extra
}

/// Collect text from a content value; token-id arrays count one per id.
fn push_text(v: &Value, out: &mut String, extra: &mut u64) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(items) => {
            if !items.is_empty() && items.iter().all(Value::is_number) {
                *extra += items.len() as u64;
                return;
            }
            for it in items {
                match it {
                    Value::Object(o) => {
                        if let Some(Value::String(t)) = o.get("text") {
                            out.push_str(t);
                            out.push('\n');
                        } else if o.contains_key("image_url") {
                            // Images are billed by the provider's own rules; reserve a typical
                            // low-detail tile.
                            *extra += 85;
                        }
                    }
                    other => push_text(other, out, extra),
                }
            }
        }
        _ => {}
    }
}

/// What a request is expected to consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenEstimate {
    pub input: u64,
    pub output: u64,
}

impl TokenEstimate {
    pub fn total(&self) -> u64 {
        self.input + self.output
    }
}

/// The estimate for one request: prompt tokens plus `max_tokens` (or `default_max_tokens`).
/// Embeddings produce no output tokens.
pub fn estimate(
    model: &str,
    raw_prompt: &[u8],
    max_tokens: Option<u64>,
    default_max_tokens: u64,
    produces_output: bool,
) -> TokenEstimate {
    let input = prompt_tokens(Encoding::for_model(model), raw_prompt);
    let output = if produces_output {
        max_tokens.unwrap_or(default_max_tokens)
    } else {
        0
    };
    TokenEstimate { input, output }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_pick_their_encoding() {
        assert_eq!(Encoding::for_model("gpt-4o-mini"), Encoding::O200kBase);
        assert_eq!(Encoding::for_model("openai/gpt-5"), Encoding::O200kBase);
        assert_eq!(Encoding::for_model("o3-mini"), Encoding::O200kBase);
        assert_eq!(Encoding::for_model("gpt-4-turbo"), Encoding::Cl100kBase);
        assert_eq!(
            Encoding::for_model("meta-llama/Llama-3.1-8B-Instruct"),
            Encoding::Cl100kBase
        );
    }

    #[test]
    fn chat_messages_count_text_and_overhead() {
        let raw = br#"[{"role":"system","content":"You are terse."},{"role":"user","content":[{"type":"text","text":"hello world"}]}]"#;
        let n = prompt_tokens(Encoding::Cl100kBase, raw);
        let text = count_text(Encoding::Cl100kBase, "You are terse.\nhello world\n");
        assert_eq!(n, text + 2 * TOKENS_PER_MESSAGE + REPLY_PRIMING);
    }

    #[test]
    fn strings_and_token_arrays() {
        assert_eq!(prompt_tokens(Encoding::Cl100kBase, b"[1,2,3,4]"), 4);
        let n = prompt_tokens(Encoding::Cl100kBase, br#""hello there""#);
        assert!((2..=4).contains(&n), "{n}");
    }

    #[test]
    fn long_text_is_extrapolated_close_to_exact() {
        let text: String = "the quick brown fox jumps over the lazy dog "
            .repeat(2000)
            .chars()
            .collect();
        assert!(text.len() > EXACT_BYTES * 4);
        let est = count_text(Encoding::Cl100kBase, &text);
        let exact = Encoding::Cl100kBase.bpe().count(text.as_str()) as u64;
        let err = (est as f64 - exact as f64).abs() / exact as f64;
        assert!(err < 0.02, "estimate {est} vs exact {exact}");
    }

    /// The counts are tiktoken's, for both encodings (the ASCII samples through the hand-written
    /// `cl100k_base` pre-tokenizer, twice so that the second pass reads the memo), on text that exercises the
    /// pre-tokenizer's branches: contractions, digits, punctuation runs, newlines, trailing and
    /// repeated whitespace, code, JSON, accents, CJK, emoji.
    #[test]
    fn counts_equal_tiktoken() {
        let samples = [
            "Hello, world! I'm here; you're there, we'll see.\n\n",
            "    indented code:\n\tfn main() { println!(\"{}\", 42_000 + 3.14159); }\n   ",
            "Numbers 1 12 123 1234 12345 and 2026-11-22T17:20:00Z, $9.99 (≈ €9,21).",
            "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
            "Ünïcödé façade naïve — «quotes» ‘single’ “double”… ÀÉÎÕÜ",
            "日本語のテキストと中文文本，还有한국어 텍스트。",
            "emoji 🚀🔥👍🏽 and ZWJ 👨‍👩‍👧 sequences!!!???",
            "trailing spaces   \n\n\n   \r\n\r\n  tabs\t\t\tend   ",
            "",
            "a",
            "   ",
            "https://example.com/a/b?c=d&e=f#g <tag attr='x'>text</tag> ///// ::: ---",
            "ALLCAPS MixedCase camelCaseWord snake_case_word kebab-case-word O'Neil's",
            // Pieces of 15, 16, 24 and 25+ bytes: the memo's packed keys, its long keys, and
            // pieces too long to remember.
            " abcdefghijklmn Supercalifragilis Supercalifragilisticexpia pneumonoultramicroscopicsilicovolcanoconiosis",
        ];
        let long: String = samples.concat().repeat(40);
        let tk = [
            (Encoding::Cl100kBase, tiktoken_rs::cl100k_base_singleton()),
            (Encoding::O200kBase, tiktoken_rs::o200k_base_singleton()),
        ];
        for (enc, reference) in tk {
            for t in samples
                .iter()
                .chain(&samples)
                .copied()
                .chain([long.as_str()])
            {
                assert_eq!(
                    count_exact(enc, t),
                    reference.encode_ordinary(t).len() as u64,
                    "{} on {t:?}",
                    enc.name()
                );
            }
        }
    }

    /// Every piece length the packed keys take gives distinct keys for distinct pieces.
    #[test]
    fn packed_keys_are_distinct() {
        let words = [
            "",
            "a",
            "b",
            "ab",
            "ba",
            "abc",
            "abcd",
            "abce",
            "bbcd",
            "abcde",
            "abcdf",
            "abcdefg",
            "abcdefh",
            "abcdefgh",
            "abcdefgi",
            "bbcdefgh",
            "abcdefghi",
            "abcdefghj",
            "abcdefghijklmno",
            "abcdefghijklmnp",
            "bbcdefghijklmno",
            "abcdefghajklmno",
            "a\0",
            "a\0\0",
            "\0",
            "\0a",
        ];
        let keys: std::collections::HashSet<u128> =
            words.iter().map(|w| packed(w.as_bytes())).collect();
        assert_eq!(keys.len(), words.len());
        assert_eq!(packed(b"abcdefghijklmno") >> 120, 15);
    }

    #[test]
    fn output_uses_max_tokens_or_default() {
        let e = estimate("m", br#""hi""#, Some(50), 256, true);
        assert_eq!(e.output, 50);
        let e = estimate("m", br#""hi""#, None, 256, true);
        assert_eq!(e.output, 256);
        let e = estimate("m", br#""hi""#, None, 256, false);
        assert_eq!(e.output, 0);
    }
}
