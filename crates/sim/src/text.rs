//! Response text: what the simulated model says, one token at a time.
//!
//! Owns the two generation modes. `random` draws words from a fixed vocabulary with a generator
//! seeded by `--seed` and the request (so the same request always gets the same answer, whichever
//! replica serves it); `echo` replays the input. Both yield exactly one tokenizer token per step
//! (see [`crate::tokenizer`]), so streamed and non-streamed responses carry identical text and the
//! reported `completion_tokens` is what the tokenizer would count. Each step is O(1): streams
//! never materialise the whole answer.

use crate::rng::SimRng;
use crate::tokenizer::{prefix_end, TokenSpans};

/// Every word is at most 8 ASCII letters, i.e. exactly one token.
const WORDS: [&str; 64] = [
    "the", "model", "server", "request", "token", "cache", "prefix", "latency", "gateway",
    "routing", "replica", "queue", "batch", "stream", "answer", "question", "simple", "system",
    "fast", "slow", "data", "value", "result", "engine", "memory", "block", "vector", "input",
    "output", "time", "first", "next", "then", "while", "because", "every", "small", "large",
    "random", "signal", "metric", "score", "policy", "limit", "budget", "tenant", "cluster",
    "node", "service", "network", "packet", "kernel", "thread", "future", "sample", "testing",
    "works", "runs", "sends", "reads", "writes", "keeps", "helps", "and",
];
const MIN_SENTENCE_WORDS: u64 = 4;
const MAX_SENTENCE_WORDS: u64 = 12;

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// The model finished on its own.
    Stop,
    /// `max_tokens` was reached.
    Length,
    /// The stream was cut (client gone or `X-Fail-After-Tokens`).
    Abort,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Abort => "abort",
        }
    }
}

/// The source of a response's tokens.
pub(crate) enum OutputTokens {
    Random {
        rng: SimRng,
        remaining: u32,
        sentence_left: u32,
        at_start: bool,
        new_sentence: bool,
    },
    Echo {
        text: String,
        pos: usize,
        remaining: u32,
    },
}

/// What a request will produce.
pub(crate) struct OutputPlan {
    pub(crate) tokens: OutputTokens,
    pub(crate) count: u32,
    pub(crate) finish_reason: FinishReason,
}

impl OutputPlan {
    /// Random text: exactly `max_tokens` tokens when the request sets it (vLLM with `ignore_eos`,
    /// finish reason `length`), otherwise a random length in `1..=default_max` (`stop`); never more
    /// than `room` (what the context window leaves).
    pub(crate) fn random(
        mut rng: SimRng,
        max_tokens: Option<u32>,
        default_max: u32,
        room: u32,
    ) -> Self {
        let (count, finish_reason) = match max_tokens {
            Some(n) => (n.min(room), FinishReason::Length),
            None => (
                (1 + rng.below(u64::from(default_max.max(1))) as u32).min(room),
                FinishReason::Stop,
            ),
        };
        let sentence_left = sentence_len(&mut rng);
        Self {
            tokens: OutputTokens::Random {
                rng,
                remaining: count,
                sentence_left,
                at_start: true,
                new_sentence: true,
            },
            count,
            finish_reason,
        }
    }

    /// Echo of `text`, cut to `max_tokens` (finish reason `length` when cut).
    pub(crate) fn echo(mut text: String, max_tokens: Option<u32>) -> Self {
        let available = TokenSpans::new(&text).count();
        let limit = max_tokens.map_or(usize::MAX, |m| m as usize);
        let (count, finish_reason) = if available > limit {
            (limit, FinishReason::Length)
        } else {
            (available, FinishReason::Stop)
        };
        text.truncate(prefix_end(&text, count));
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        Self {
            tokens: OutputTokens::Echo {
                text,
                pos: 0,
                remaining: count,
            },
            count,
            finish_reason,
        }
    }
}

fn sentence_len(rng: &mut SimRng) -> u32 {
    (MIN_SENTENCE_WORDS + rng.below(MAX_SENTENCE_WORDS - MIN_SENTENCE_WORDS + 1)) as u32
}

impl OutputTokens {
    /// Appends the next token's text (with its leading space) to `out`; false when done.
    pub(crate) fn next_token(&mut self, out: &mut String) -> bool {
        match self {
            OutputTokens::Random {
                rng,
                remaining,
                sentence_left,
                at_start,
                new_sentence,
            } => {
                if *remaining == 0 {
                    return false;
                }
                *remaining -= 1;
                if *sentence_left == 0 {
                    out.push('.');
                    *sentence_left = sentence_len(rng);
                    *new_sentence = true;
                    return true;
                }
                let word = WORDS[rng.below(WORDS.len() as u64) as usize];
                if !*at_start {
                    out.push(' ');
                }
                *at_start = false;
                if *new_sentence {
                    let mut chars = word.chars();
                    if let Some(first) = chars.next() {
                        out.push(first.to_ascii_uppercase());
                        out.push_str(chars.as_str());
                    }
                    *new_sentence = false;
                } else {
                    out.push_str(word);
                }
                *sentence_left -= 1;
                true
            }
            OutputTokens::Echo {
                text,
                pos,
                remaining,
            } => {
                if *remaining == 0 {
                    return false;
                }
                let Some(span) = TokenSpans::new(&text[*pos..]).next() else {
                    *remaining = 0;
                    return false;
                };
                let end = *pos + span.end;
                out.push_str(&text[*pos..end]);
                *pos = end;
                *remaining -= 1;
                true
            }
        }
    }

    /// The whole remaining text.
    pub(crate) fn collect_text(&mut self) -> String {
        let mut out = String::new();
        while self.next_token(&mut out) {}
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::count_tokens;

    #[test]
    fn vocabulary_words_are_single_tokens() {
        for w in WORDS {
            assert_eq!(count_tokens(w), 1, "{w}");
        }
    }

    #[test]
    fn random_text_has_exactly_the_planned_tokens() {
        for seed in 0..50 {
            let mut plan = OutputPlan::random(SimRng::new(seed), Some(37), 64, u32::MAX);
            assert_eq!(plan.count, 37);
            assert_eq!(plan.finish_reason, FinishReason::Length);
            let text = plan.tokens.collect_text();
            assert_eq!(count_tokens(&text), 37, "{text}");
        }
    }

    #[test]
    fn random_length_without_max_tokens_is_bounded() {
        for seed in 0..200 {
            let plan = OutputPlan::random(SimRng::new(seed), None, 10, u32::MAX);
            assert!((1..=10).contains(&plan.count));
            assert_eq!(plan.finish_reason, FinishReason::Stop);
        }
        let plan = OutputPlan::random(SimRng::new(1), Some(100), 10, 7);
        assert_eq!(plan.count, 7, "the context window caps the output");
    }

    #[test]
    fn same_seed_same_text_and_streaming_matches() {
        let text = |seed| {
            OutputPlan::random(SimRng::new(seed), Some(20), 64, u32::MAX)
                .tokens
                .collect_text()
        };
        assert_eq!(text(5), text(5));
        assert_ne!(text(5), text(6));
        let mut tokens = OutputPlan::random(SimRng::new(5), Some(20), 64, u32::MAX).tokens;
        let mut pieces = Vec::new();
        loop {
            let mut s = String::new();
            if !tokens.next_token(&mut s) {
                break;
            }
            pieces.push(s);
        }
        assert_eq!(pieces.len(), 20);
        assert_eq!(pieces.concat(), text(5));
    }

    #[test]
    fn echo_replays_and_truncates() {
        let mut plan = OutputPlan::echo("Hello, echo world!".to_owned(), None);
        assert_eq!((plan.count, plan.finish_reason), (5, FinishReason::Stop));
        assert_eq!(plan.tokens.collect_text(), "Hello, echo world!");
        let mut cut = OutputPlan::echo("Hello, echo world!".to_owned(), Some(3));
        assert_eq!((cut.count, cut.finish_reason), (3, FinishReason::Length));
        assert_eq!(cut.tokens.collect_text(), "Hello, echo");
        let mut empty = OutputPlan::echo(String::new(), None);
        assert_eq!(empty.count, 0);
        assert_eq!(empty.tokens.collect_text(), "");
    }
}
