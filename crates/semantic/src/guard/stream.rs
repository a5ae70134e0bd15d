//! Incremental scanning of a streamed answer with a small hold-back window.
//!
//! Text arrives in pieces (SSE deltas). The scanner keeps the not-yet-released tail of the
//! answer and, on each piece, scans only that tail, then releases everything up to a safe
//! boundary:
//! - the last `window` characters are held (a match that may contain spaces — a card number,
//!   a phone number — can still grow across the next piece);
//! - a token without whitespace that reaches into the window (a key, a JWT) is held whole;
//! - an unterminated `-----BEGIN … PRIVATE KEY-----` block is held until its END line;
//! - a redaction that would straddle the boundary moves the boundary to its start.
//!
//! So a secret split across chunk boundaries is still seen whole, the work per piece is bounded
//! by the held tail (not by the answer so far), and the client sees the answer at most
//! `window` characters late. A block ends scanning: nothing held is released.

use super::secrets::open_private_key;
use super::{apply_redactions, Block, Direction, Evaluation, GuardSet, ScanInput};

/// Beyond this many held bytes the tail is released even inside a token (a bound on memory and
/// per-piece work when a model emits a huge unbroken token).
pub const MAX_HOLD: usize = 16 * 1024;

pub struct StreamScanner {
    set: GuardSet,
    pending: String,
    window: usize,
    /// Verdicts of the text released so far.
    pub evaluation: Evaluation,
    blocked: bool,
}

impl StreamScanner {
    /// A scanner for the guardrails of `set` that can judge partial text.
    pub fn new(set: &GuardSet) -> Self {
        let guardrails: Vec<_> = set
            .guardrails
            .iter()
            .filter(|g| g.stream_window().is_some())
            .cloned()
            .collect();
        let window = guardrails
            .iter()
            .filter_map(|g| g.stream_window())
            .max()
            .unwrap_or(0);
        Self {
            set: GuardSet::new(guardrails),
            pending: String::new(),
            window,
            evaluation: Evaluation::default(),
            blocked: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Characters currently held back.
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    /// Feed one piece of the answer; returns the text safe to send now (possibly empty).
    pub fn push(&mut self, piece: &str) -> Result<String, Block> {
        if self.blocked {
            return Ok(String::new());
        }
        self.pending.push_str(piece);
        let boundary = self.safe_boundary();
        self.release(boundary)
    }

    /// The answer ended: judge and release whatever is held.
    pub fn finish(&mut self) -> Result<String, Block> {
        if self.blocked {
            return Ok(String::new());
        }
        self.release(self.pending.len())
    }

    fn safe_boundary(&self) -> usize {
        let p = &self.pending;
        let mut b = floor_char(p, p.len().saturating_sub(self.window));
        // Do not cut inside a whitespace-free token.
        while b > 0 && b < p.len() {
            let before = p[..b].chars().next_back();
            let at = p[b..].chars().next();
            match (before, at) {
                (Some(x), Some(y)) if !x.is_whitespace() && !y.is_whitespace() => {
                    b -= x.len_utf8();
                }
                _ => break,
            }
        }
        if let Some(open) = open_private_key(p) {
            b = b.min(open);
        }
        if p.len() - b > MAX_HOLD {
            b = floor_char(p, p.len() - MAX_HOLD);
        }
        b
    }

    fn release(&mut self, boundary: usize) -> Result<String, Block> {
        let input = ScanInput::new(&self.pending, Direction::Response);
        let mut ev = self.set.evaluate(&input);
        if let Some(block) = ev.block.take() {
            self.blocked = true;
            self.pending.clear();
            self.evaluation.merge_verdicts(Evaluation {
                block: Some(block.clone()),
                redactions: Vec::new(),
                verdicts: ev.verdicts,
            });
            return Err(block);
        }
        let mut b = boundary;
        for (r, _) in &ev.redactions {
            if r.start < b && r.end > b {
                b = r.start;
            }
        }
        let released_redactions: Vec<_> = ev
            .redactions
            .iter()
            .filter(|(r, _)| r.end <= b)
            .cloned()
            .collect();
        // Count what is released now; held findings are counted when they are released.
        let done = if b == self.pending.len() {
            ev.verdicts
        } else if b > 0 && !ev.verdicts.is_empty() {
            let released = &self.pending[..b];
            self.set
                .evaluate(&ScanInput::new(released, Direction::Response))
                .verdicts
        } else {
            Vec::new()
        };
        self.evaluation.merge_verdicts(Evaluation {
            block: None,
            redactions: Vec::new(),
            verdicts: done,
        });
        let out = apply_redactions(&self.pending[..b], &released_redactions);
        self.pending.drain(..b);
        Ok(out)
    }
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::pii::Pii;
    use crate::guard::secrets::Secrets;
    use crate::guard::{Action, Guardrail};
    use std::sync::Arc;

    fn set(action: Action) -> GuardSet {
        let pii: Arc<dyn Guardrail> = Arc::new(Pii::new("pii", action, &[]).unwrap());
        let sec: Arc<dyn Guardrail> = Arc::new(Secrets::new("secrets", action, &[]).unwrap());
        GuardSet::new(vec![pii, sec])
    }

    fn run(pieces: &[&str], action: Action) -> (String, Option<Block>) {
        let mut s = StreamScanner::new(&set(action));
        let mut out = String::new();
        for p in pieces {
            match s.push(p) {
                Ok(t) => out.push_str(&t),
                Err(b) => return (out, Some(b)),
            }
        }
        match s.finish() {
            Ok(t) => out.push_str(&t),
            Err(b) => return (out, Some(b)),
        }
        (out, None)
    }

    #[test]
    fn entity_split_across_pieces_is_redacted() {
        let (out, _) = run(
            &[
                "Write to jane.",
                "doe@exam",
                "ple.com or call +1 415 ",
                "555 0100 today.",
            ],
            Action::Redact,
        );
        assert_eq!(
            out,
            "Write to [REDACTED:EMAIL] or call [REDACTED:PHONE] today."
        );
    }

    #[test]
    fn key_split_across_pieces_blocks_and_nothing_of_it_is_sent() {
        let key = "sk-proj-abcdefghijklmnopqrstuvwx1234";
        let (out, block) = run(
            &[
                "Your key is sk-pr",
                "oj-abcdefghij",
                "klmnopqrstuvwx1234 ok",
            ],
            Action::Block,
        );
        assert!(block.is_some());
        assert!(!out.contains("sk-"), "{out}");
        assert!(!out.contains(&key[10..]), "{out}");
    }

    #[test]
    fn pem_block_is_held_until_its_end_line() {
        let pieces = [
            "Here it is:\n-----BEGIN RSA PRIV",
            "ATE KEY-----\nMIIEowIBAAKCAQEA",
            "\nabcdefghijklmnop\n-----END RSA PRIVATE KEY-----\nDone.",
        ];
        let (out, _) = run(&pieces, Action::Redact);
        assert_eq!(out, "Here it is:\n[REDACTED:PRIVATE_KEY]\nDone.");
    }

    #[test]
    fn every_split_point_gives_the_same_answer() {
        let text = "Card 4111 1111 1111 1111, mail a.b@c.io, token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig123 end";
        let (whole, _) = run(&[text], Action::Redact);
        assert!(!whole.contains("4111"));
        for i in 1..text.len() {
            if !text.is_char_boundary(i) {
                continue;
            }
            let (out, _) = run(&[&text[..i], &text[i..]], Action::Redact);
            assert_eq!(out, whole, "split at {i}");
        }
    }

    #[test]
    fn ordinary_text_flows_with_a_bounded_delay() {
        let mut s = StreamScanner::new(&set(Action::Redact));
        let mut sent = 0;
        for _ in 0..200 {
            sent += s.push("lorem ipsum dolor sit amet ").unwrap().len();
            assert!(s.held() < 200, "held {}", s.held());
        }
        sent += s.finish().unwrap().len();
        assert_eq!(sent, 200 * 27);
        assert_eq!(s.evaluation.verdicts.len(), 0);
    }
}
