//! The simulator's tokenizer: a cheap, deterministic stand-in for a model's BPE tokenizer.
//!
//! Owns how text becomes tokens everywhere in the simulator (usage counts, context-length checks,
//! prefix-cache blocks, echo streaming). Rules, chosen so that English text lands near the
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
pub(crate) struct TokenSpans<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> TokenSpans<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
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
pub(crate) fn push_token_ids(text: &str, out: &mut Vec<u32>) {
    let bytes = text.as_bytes();
    out.extend(TokenSpans::new(text).map(|r| token_id(&bytes[r])));
}

/// The id of one token: FNV-1a over its bytes.
pub(crate) fn token_id(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811C_9DC5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Byte offset just after the first `n` tokens of `text` (the whole text if it has fewer).
pub(crate) fn prefix_end(text: &str, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    TokenSpans::new(text)
        .nth(n - 1)
        .map_or(text.len(), |r| r.end)
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
    fn prefix_end_cuts_after_n_tokens() {
        let text = "one two, three";
        assert_eq!(&text[..prefix_end(text, 2)], "one two");
        assert_eq!(&text[..prefix_end(text, 3)], "one two,");
        assert_eq!(prefix_end(text, 10), text.len());
        assert_eq!(prefix_end(text, 0), 0);
    }
}
