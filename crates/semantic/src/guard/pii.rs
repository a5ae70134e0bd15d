//! Personal data: e-mail addresses, phone numbers, payment cards (Luhn), IBANs (mod 97),
//! national ids (US SSN, UK National Insurance number, Spanish DNI/NIE, Canadian SIN — each
//! with its structural or checksum rule), and IPv4/IPv6 addresses.
//!
//! Each entity is a regex for candidates plus a validator, so "a long number" is only a card
//! when its check digit is right. Works on any text; the same guardrail runs on prompts and
//! answers.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A check a candidate match must pass (checksum, range), besides the pattern.
type Validator = fn(&str) -> bool;

use regex::Regex;

use super::validate;
use super::{Action, Finding, Guardrail, ScanInput};

/// The entity types this guardrail knows.
pub const ENTITIES: &[&str] = &[
    "email",
    "phone",
    "payment_card",
    "iban",
    "us_ssn",
    "uk_nino",
    "es_dni",
    "ca_sin",
    "ipv4",
    "ipv6",
];

struct Detector {
    kind: &'static str,
    re: Regex,
    valid: fn(&str) -> bool,
}

fn always(_: &str) -> bool {
    true
}

fn ipv4(s: &str) -> bool {
    s.parse::<Ipv4Addr>().is_ok()
}

/// An IPv6 address that looks like one in prose: it parses, and has three or more groups or a
/// group of three or more hex digits (so `a::b` in code is not an address, `fe80::1` is).
fn ipv6(s: &str) -> bool {
    let groups: Vec<&str> = s.split(':').filter(|g| !g.is_empty()).collect();
    s.matches(':').count() >= 2
        && (groups.len() >= 3 || groups.iter().any(|g| g.len() >= 3))
        && s.parse::<Ipv6Addr>().is_ok()
}

/// Shorter candidates of `s`, cut before each separator from the right (a greedy pattern may
/// have swallowed a following word: "GB82 … 32 ok").
fn prefixes(s: &str) -> impl Iterator<Item = &str> {
    std::iter::once(s).chain(
        s.char_indices()
            .rev()
            .filter(|(_, c)| *c == ' ' || *c == '-')
            .take(6)
            .map(move |(i, _)| s[..i].trim_end_matches([' ', '-', '.'])),
    )
}

pub struct Pii {
    name: String,
    action: Action,
    detectors: Vec<Detector>,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown PII entity `{0}`; known: email, phone, payment_card, iban, us_ssn, uk_nino, es_dni, ca_sin, ipv4, ipv6")]
pub struct UnknownEntity(pub String);

impl Pii {
    /// `entities`: which types to detect (empty = all).
    pub fn new(name: &str, action: Action, entities: &[String]) -> Result<Self, UnknownEntity> {
        for e in entities {
            if !ENTITIES.contains(&e.as_str()) {
                return Err(UnknownEntity(e.clone()));
            }
        }
        let want = |k: &str| entities.is_empty() || entities.iter().any(|e| e == k);
        let all: Vec<(&'static str, &str, Validator)> = vec![
            (
                "email",
                r"(?i)\b[a-z0-9][a-z0-9._%+-]{0,63}@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}\b",
                always,
            ),
            // Cards before phones: a card number is also a long digit run.
            (
                "payment_card",
                r"\b(?:\d[ -]?){12,18}\d\b",
                validate::payment_card,
            ),
            (
                "iban",
                r"(?i)\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b",
                validate::iban,
            ),
            ("us_ssn", r"\b\d{3}-\d{2}-\d{4}\b", validate::us_ssn),
            (
                "uk_nino",
                r"(?i)\b[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b",
                validate::uk_nino,
            ),
            ("es_dni", r"(?i)\b[XYZ0-9]\d{7}-?[A-Z]\b", validate::es_dni),
            ("ca_sin", r"\b\d{3}[ -]\d{3}[ -]\d{3}\b", validate::ca_sin),
            (
                "phone",
                // international (+CC ...), North American (415) 555-0100 / 415-555-0100, or a
                // national number with a trunk 0 (020 7946 0958). Dates and versions do not fit.
                r"(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,5}\b|\(\d{3}\)[ .-]?\d{3}[ .-]?\d{4}\b|\b\d{3}[ .-]\d{3}[ .-]\d{4}\b|\b0\d{2,4} \d{3,4} ?\d{3,4}\b)",
                validate::phone,
            ),
            (
                "ipv4",
                r"\b(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}\b",
                ipv4,
            ),
            ("ipv6", r"(?i)[0-9a-f]*(?::[0-9a-f]*){2,8}", ipv6),
        ];
        let mut detectors = Vec::new();
        for (kind, pattern, valid) in all {
            if want(kind) {
                detectors.push(Detector {
                    kind,
                    // The patterns are constants; a failure here is a programming error caught
                    // by the unit tests, so fall back to a never-matching pattern.
                    re: Regex::new(pattern).unwrap_or_else(|_| never()),
                    valid,
                });
            }
        }
        Ok(Self {
            name: name.to_string(),
            action,
            detectors,
        })
    }
}

pub(crate) fn never() -> Regex {
    // `[^\s\S]` matches nothing; its compilation cannot fail.
    Regex::new(r"[^\s\S]").unwrap_or_else(|_| unreachable!("constant regex"))
}

impl Guardrail for Pii {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "pii"
    }

    fn action(&self) -> Action {
        self.action
    }

    fn scan(&self, input: &ScanInput<'_>) -> Vec<Finding> {
        let text = input.text;
        let mut out: Vec<Finding> = Vec::new();
        for d in &self.detectors {
            for m in d.re.find_iter(text) {
                let s = m.as_str().trim_end_matches([' ', '-', '.']);
                let Some(valid) = prefixes(s).find(|c| !c.is_empty() && (d.valid)(c)) else {
                    continue;
                };
                let span = m.start()..m.start() + valid.len();
                // Not inside a word or a longer token (`x::a::b`, `id123-45-6789`).
                let before = text[..span.start].chars().next_back();
                let after = text[span.end..].chars().next();
                if before.is_some_and(|c| c.is_alphanumeric() || c == ':' || c == '_')
                    || after.is_some_and(|c| c.is_alphanumeric() || c == ':' || c == '_')
                {
                    continue;
                }
                // A number already claimed by a stronger entity (card, IBAN, id) is not a phone.
                if out.iter().any(|f| {
                    f.span
                        .as_ref()
                        .is_some_and(|r| r.start < span.end && span.start < r.end)
                }) {
                    continue;
                }
                out.push(Finding::span(d.kind, span));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::Direction;

    fn kinds(text: &str) -> Vec<&'static str> {
        let g = Pii::new("pii", Action::Redact, &[]).unwrap();
        g.scan(&ScanInput::new(text, Direction::Request))
            .into_iter()
            .map(|f| f.kind)
            .collect()
    }

    #[test]
    fn finds_each_entity() {
        assert_eq!(kinds("mail jane.doe+x@example.co.uk now"), vec!["email"]);
        assert_eq!(kinds("card 4111 1111 1111 1111."), vec!["payment_card"]);
        assert_eq!(kinds("IBAN GB82 WEST 1234 5698 7654 32 ok"), vec!["iban"]);
        assert_eq!(kinds("ssn 123-45-6789"), vec!["us_ssn"]);
        assert_eq!(kinds("NI number AB 12 34 56 C"), vec!["uk_nino"]);
        assert_eq!(kinds("DNI 12345678Z"), vec!["es_dni"]);
        assert_eq!(kinds("SIN 046 454 286"), vec!["ca_sin"]);
        assert_eq!(kinds("call +1 415 555 0100 today"), vec!["phone"]);
        assert_eq!(kinds("call (415) 555-0100"), vec!["phone"]);
        assert_eq!(kinds("host 192.168.10.4 down"), vec!["ipv4"]);
        assert_eq!(kinds("v6 2001:db8::8a2e:370:7334 up"), vec!["ipv6"]);
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        assert!(kinds("The meeting is at 12:30:45 on 2024-05-01, version 1.2.3.").is_empty());
        assert!(kinds("Order 4111 1111 1111 1112 is not a card (bad check digit)").is_empty());
        assert!(kinds("I have 3 cats and 2 dogs").is_empty());
        assert!(kinds("fn main() { let x = a::b::c; }").is_empty());
    }

    #[test]
    fn unknown_entity_is_an_error() {
        assert!(Pii::new("p", Action::Block, &["passport".into()]).is_err());
    }
}
