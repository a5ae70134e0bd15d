//! Semantic routing: a public model (say `auto`) whose requests go to one of several models by
//! what the prompt is.
//!
//! Each route has example prompts; a prompt's score for a route is the mean of its three best
//! similarities to that route's examples. Complexity signals — a long prompt, code, reasoning
//! cues ("step by step", "prove", "trade-offs", ...) — add a configured weight each to the
//! routes marked `complex`. The best route wins if its score reaches the threshold; otherwise
//! the default model serves. The decision carries a reason for the `x-infergate-route-reason`
//! header and the access log.

use std::sync::Arc;

use regex::Regex;

use crate::guard::pii::never;
use crate::vector::{dot, Vector};

pub struct Route {
    pub name: Arc<str>,
    /// The public model requests on this route go to.
    pub model: Arc<str>,
    pub examples: Vec<Vector>,
    /// Complexity signals push prompts toward this route.
    pub complex: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Signals {
    /// A prompt longer than this (characters) counts as one signal.
    pub long_prompt_chars: usize,
    pub code: bool,
    pub reasoning: bool,
    /// Added to complex routes' scores per signal fired.
    pub weight: f32,
}

impl Default for Signals {
    fn default() -> Self {
        Self {
            long_prompt_chars: 1500,
            code: true,
            reasoning: true,
            weight: 0.08,
        }
    }
}

pub struct SemanticRouter {
    pub routes: Vec<Route>,
    pub default_model: Arc<str>,
    pub threshold: f32,
    pub signals: Signals,
    code_re: Regex,
    reasoning_re: Regex,
}

/// What the router decided and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteChoice {
    pub model: Arc<str>,
    pub route: Option<Arc<str>>,
    pub score: f32,
    pub signals: Vec<&'static str>,
}

impl RouteChoice {
    /// `route=complex; score=0.61; signals=code,reasoning` or `default; score=0.12`.
    pub fn reason(&self) -> String {
        let mut s = match &self.route {
            Some(r) => format!("route={r}; score={:.2}", self.score),
            None => format!("default; best-score={:.2}", self.score),
        };
        if !self.signals.is_empty() {
            s.push_str("; signals=");
            s.push_str(&self.signals.join(","));
        }
        s
    }
}

const CODE: &str = r"(?m)(?:```|^\s{4}\S|\b(?:def|fn|func|class|impl|struct|return|import|#include|SELECT|public static)\b[^\n]*[({:;=]|=>|::|\w+\([^)]*\)\s*\{|</?\w+>)";
const REASONING: &str = r"(?i)\b(?:step[- ]by[- ]step|prove|proof|derive|derivation|trade-?offs?|compare and contrast|analy[sz]e|evaluate|justify|reason(?:ing)? through|why does|why is|what would happen if|design an?|architect|optimi[sz]e|complexity|theorem|rigorous|in depth|pros and cons|critique)\b";

impl SemanticRouter {
    pub fn new(
        routes: Vec<Route>,
        default_model: Arc<str>,
        threshold: f32,
        signals: Signals,
    ) -> Self {
        Self {
            routes,
            default_model,
            threshold,
            signals,
            code_re: Regex::new(CODE).unwrap_or_else(|_| never()),
            reasoning_re: Regex::new(REASONING).unwrap_or_else(|_| never()),
        }
    }

    /// The complexity signals `text` fires.
    pub fn signals(&self, text: &str) -> Vec<&'static str> {
        let mut out = Vec::new();
        if text.chars().count() > self.signals.long_prompt_chars {
            out.push("long");
        }
        if self.signals.code && self.code_re.is_match(text) {
            out.push("code");
        }
        if self.signals.reasoning && self.reasoning_re.is_match(text) {
            out.push("reasoning");
        }
        out
    }

    /// Choose a model for a prompt (`text`) with its embedding.
    pub fn choose(&self, text: &str, embedding: &[f32]) -> RouteChoice {
        let signals = self.signals(text);
        let boost = self.signals.weight * signals.len() as f32;
        let mut best: Option<(&Route, f32)> = None;
        for r in &self.routes {
            let mut sims: Vec<f32> = r.examples.iter().map(|e| dot(e, embedding)).collect();
            sims.sort_by(|a, b| b.total_cmp(a));
            let k = sims.len().min(3);
            let mut score = if k == 0 {
                0.0
            } else {
                sims[..k].iter().sum::<f32>() / k as f32
            };
            if r.complex {
                score += boost;
            }
            if best.is_none_or(|(_, b)| score > b) {
                best = Some((r, score));
            }
        }
        match best {
            Some((r, score)) if score >= self.threshold => RouteChoice {
                model: r.model.clone(),
                route: Some(r.name.clone()),
                score,
                signals,
            },
            other => RouteChoice {
                model: self.default_model.clone(),
                route: None,
                score: other.map_or(0.0, |(_, s)| s),
                signals,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_fire_on_code_and_reasoning() {
        let r = SemanticRouter::new(vec![], "big".into(), 0.5, Signals::default());
        assert_eq!(
            r.signals("What is the capital of France?"),
            Vec::<&str>::new()
        );
        assert_eq!(r.signals("Fix this: ```fn main() {}```"), vec!["code"]);
        assert_eq!(
            r.signals("Prove step by step that sqrt(2) is irrational"),
            vec!["reasoning"]
        );
    }

    #[test]
    fn falls_back_to_default_below_threshold() {
        let e = Vector::from(vec![1.0, 0.0]);
        let r = SemanticRouter::new(
            vec![Route {
                name: "small".into(),
                model: "small-model".into(),
                examples: vec![e],
                complex: false,
            }],
            "big".into(),
            0.5,
            Signals::default(),
        );
        assert_eq!(&*r.choose("hi", &[1.0, 0.0]).model, "small-model");
        let c = r.choose("hi", &[0.0, 1.0]);
        assert_eq!(&*c.model, "big");
        assert!(c.reason().starts_with("default"));
    }
}
