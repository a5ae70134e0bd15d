//! Denied topics by meaning: each topic is a handful of example prompts; a text whose embedding
//! is within the threshold (cosine) of a topic's examples is a finding naming the topic.
//! Catches paraphrases a keyword list misses ("how do I get my money back from a casino
//! app" for a `gambling` topic) at the cost of one embedding per request, shared with the
//! other semantic features.

use std::sync::Arc;

use super::{Action, Finding, Guardrail, ScanInput};
use crate::vector::{dot, Vector};

pub struct Topic {
    pub name: Arc<str>,
    pub examples: Vec<Vector>,
}

pub struct Topics {
    name: String,
    action: Action,
    topics: Vec<Topic>,
    threshold: f32,
}

impl Topics {
    pub fn new(name: &str, action: Action, topics: Vec<Topic>, threshold: f32) -> Self {
        Self {
            name: name.to_string(),
            action,
            topics,
            threshold,
        }
    }

    /// The best-matching topic and its similarity.
    pub fn nearest(&self, v: &[f32]) -> Option<(&Topic, f32)> {
        self.topics
            .iter()
            .map(|t| {
                let best = t
                    .examples
                    .iter()
                    .map(|e| dot(e, v))
                    .fold(f32::MIN, f32::max);
                (t, best)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }
}

impl Guardrail for Topics {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "topics"
    }

    fn action(&self) -> Action {
        self.action
    }

    fn uses_embedding(&self) -> bool {
        true
    }

    fn scan(&self, input: &ScanInput<'_>) -> Vec<Finding> {
        let Some(v) = input.embedding else {
            return Vec::new();
        };
        match self.nearest(v) {
            Some((t, s)) if s >= self.threshold => vec![Finding {
                kind: "denied_topic",
                span: None,
                score: Some(s),
                rule: Some(t.name.clone()),
            }],
            _ => Vec::new(),
        }
    }

    fn stream_window(&self) -> Option<usize> {
        None
    }
}
