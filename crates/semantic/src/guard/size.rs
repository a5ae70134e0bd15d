//! Prompt size caps: the whole prompt's length in characters and its number of messages.
//! Cheap limits that stop oversized prompts before anything else (embedding, upstream) is spent
//! on them.

use super::{Action, Finding, Guardrail, ScanInput};

pub struct SizeCap {
    name: String,
    action: Action,
    max_chars: Option<usize>,
    max_messages: Option<usize>,
}

impl SizeCap {
    pub fn new(
        name: &str,
        action: Action,
        max_chars: Option<usize>,
        max_messages: Option<usize>,
    ) -> Self {
        Self {
            name: name.to_string(),
            action,
            max_chars,
            max_messages,
        }
    }
}

impl Guardrail for SizeCap {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "size"
    }

    fn action(&self) -> Action {
        self.action
    }

    /// Judges the whole prompt: reports only on the first text of a request.
    fn scan(&self, input: &ScanInput<'_>) -> Vec<Finding> {
        let Some(whole) = input.whole else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if self.max_chars.is_some_and(|m| whole.chars > m) {
            out.push(Finding {
                kind: "prompt_too_long",
                span: None,
                score: None,
                rule: self.max_chars.map(|m| format!("maxChars {m}").into()),
            });
        }
        if self.max_messages.is_some_and(|m| whole.messages > m) {
            out.push(Finding {
                kind: "too_many_messages",
                span: None,
                score: None,
                rule: self.max_messages.map(|m| format!("maxMessages {m}").into()),
            });
        }
        out
    }

    fn stream_window(&self) -> Option<usize> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::{Direction, WholePrompt};

    #[test]
    fn caps_apply_to_the_whole_prompt_once() {
        let g = SizeCap::new("size", Action::Block, Some(10), Some(2));
        let whole = WholePrompt {
            chars: 11,
            messages: 3,
        };
        let f = g.scan(&ScanInput {
            text: "x",
            embedding: None,
            windows: &[],
            token_max: None,
            window_token_max: &[],
            direction: Direction::Request,
            whole: Some(&whole),
        });
        assert_eq!(f.len(), 2);
        let f = g.scan(&ScanInput {
            text: "x",
            embedding: None,
            windows: &[],
            token_max: None,
            window_token_max: &[],
            direction: Direction::Request,
            whole: None,
        });
        assert!(f.is_empty());
    }
}
