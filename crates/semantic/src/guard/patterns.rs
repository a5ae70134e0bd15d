//! Deny and allow patterns: regular expressions and keywords, as operators write them.
//!
//! A text matching any deny pattern or keyword is a finding (`denied_pattern`, the rule named by
//! the pattern's name). When allow patterns are configured, a text matching none of them is a
//! finding too (`not_allowed`) — an allowlist for narrow-purpose deployments. Keywords match
//! whole words, case-insensitively.

use std::sync::Arc;

use regex::{Regex, RegexBuilder};

use super::{Action, Finding, Guardrail, ScanInput};

pub struct Patterns {
    name: String,
    action: Action,
    deny: Vec<(Arc<str>, Regex)>,
    allow: Vec<Regex>,
}

/// One configured pattern.
#[derive(Debug, Clone)]
pub enum PatternSpec {
    Regex { name: String, pattern: String },
    Keywords { name: String, words: Vec<String> },
}

#[derive(Debug, thiserror::Error)]
#[error("pattern `{name}` is not a valid regular expression: {detail}")]
pub struct BadPattern {
    pub name: String,
    pub detail: String,
}

/// Compile one pattern spec (size-limited so a hostile config cannot make a huge automaton).
pub fn compile(spec: &PatternSpec) -> Result<(Arc<str>, Regex), BadPattern> {
    let (name, pattern) = match spec {
        PatternSpec::Regex { name, pattern } => (name.clone(), pattern.clone()),
        PatternSpec::Keywords { name, words } => {
            let alts: Vec<String> = words.iter().map(|w| regex::escape(w.trim())).collect();
            (name.clone(), format!(r"(?i)\b(?:{})\b", alts.join("|")))
        }
    };
    let re = RegexBuilder::new(&pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| BadPattern {
            name: name.clone(),
            detail: e.to_string(),
        })?;
    Ok((Arc::from(name.as_str()), re))
}

impl Patterns {
    pub fn new(
        name: &str,
        action: Action,
        deny: &[PatternSpec],
        allow: &[PatternSpec],
    ) -> Result<Self, BadPattern> {
        Ok(Self {
            name: name.to_string(),
            action,
            deny: deny.iter().map(compile).collect::<Result<_, _>>()?,
            allow: allow
                .iter()
                .map(|s| compile(s).map(|(_, r)| r))
                .collect::<Result<_, _>>()?,
        })
    }
}

impl Guardrail for Patterns {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "patterns"
    }

    fn action(&self) -> Action {
        self.action
    }

    fn scan(&self, input: &ScanInput<'_>) -> Vec<Finding> {
        let mut out = Vec::new();
        for (rule, re) in &self.deny {
            for m in re.find_iter(input.text) {
                out.push(Finding {
                    kind: "denied_pattern",
                    span: Some(m.range()),
                    score: None,
                    rule: Some(rule.clone()),
                });
            }
        }
        if !self.allow.is_empty()
            && !input.text.trim().is_empty()
            && !self.allow.iter().any(|r| r.is_match(input.text))
        {
            out.push(Finding {
                kind: "not_allowed",
                span: None,
                score: None,
                rule: None,
            });
        }
        out
    }

    fn stream_window(&self) -> Option<usize> {
        // An allowlist judges the whole answer, which a stream does not have yet.
        if self.allow.is_empty() {
            Some(128)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::Direction;

    fn scan(g: &Patterns, text: &str) -> Vec<Finding> {
        g.scan(&ScanInput::new(text, Direction::Request))
    }

    #[test]
    fn deny_keywords_and_regex() {
        let g = Patterns::new(
            "deny",
            Action::Block,
            &[
                PatternSpec::Keywords {
                    name: "competitors".into(),
                    words: vec!["AcmeCorp".into(), "Globex".into()],
                },
                PatternSpec::Regex {
                    name: "ticket".into(),
                    pattern: r"INC-\d{6}".into(),
                },
            ],
            &[],
        )
        .unwrap();
        let f = scan(&g, "compare us with acmecorp and see INC-123456");
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].rule.as_deref(), Some("competitors"));
        assert!(scan(&g, "AcmeCorporation is a different word").is_empty());
    }

    #[test]
    fn allowlist() {
        let g = Patterns::new(
            "allow",
            Action::Block,
            &[],
            &[PatternSpec::Keywords {
                name: "billing".into(),
                words: vec!["invoice".into(), "refund".into()],
            }],
        )
        .unwrap();
        assert!(scan(&g, "Where is my invoice?").is_empty());
        assert_eq!(scan(&g, "Tell me a joke")[0].kind, "not_allowed");
    }

    #[test]
    fn bad_regex_names_the_pattern() {
        let e = Patterns::new(
            "x",
            Action::Block,
            &[PatternSpec::Regex {
                name: "broken".into(),
                pattern: "(".into(),
            }],
            &[],
        )
        .err()
        .unwrap();
        assert_eq!(e.name, "broken");
    }
}
