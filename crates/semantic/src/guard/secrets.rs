//! Secrets: API keys in common formats, PEM private keys and JWTs.
//!
//! Key formats (prefix + alphabet + length, as each vendor documents them): OpenAI / Anthropic
//! (`sk-…`, `sk-proj-…`, `sk-ant-…`), AWS access key ids (`AKIA…`/`ASIA…`), GitHub tokens
//! (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`), GitLab (`glpat-`), Slack (`xox?-`),
//! Google API keys (`AIza…`), Stripe (`sk_live_`, `rk_test_`, …), Hugging Face (`hf_`).
//! A private key is the whole `-----BEGIN … PRIVATE KEY-----` block (or, when the END line is
//! missing, everything from the BEGIN line on). A JWT is three base64url segments whose first
//! two start with `eyJ` (a JSON object).

use regex::Regex;

use super::pii::never;
use super::{Action, Finding, Guardrail, ScanInput};

pub const ENTITIES: &[&str] = &["api_key", "private_key", "jwt"];

pub struct Secrets {
    name: String,
    action: Action,
    api_key: Option<Regex>,
    private_key: Option<Regex>,
    private_key_open: Option<Regex>,
    jwt: Option<Regex>,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown secret type `{0}`; known: api_key, private_key, jwt")]
pub struct UnknownSecret(pub String);

const API_KEY: &str = concat!(
    r"\b(?:",
    r"sk-(?:proj-|svcacct-|admin-|ant-(?:api|admin)\d{2}-)?[A-Za-z0-9_-]{20,}",
    r"|(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}",
    r"|gh[pousr]_[A-Za-z0-9]{36,}",
    r"|github_pat_[A-Za-z0-9_]{22,}",
    r"|glpat-[A-Za-z0-9_-]{20,}",
    r"|xox[abposr]-[A-Za-z0-9-]{10,}",
    r"|AIza[0-9A-Za-z_-]{35}",
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}",
    r"|hf_[A-Za-z0-9]{30,}",
    r")"
);
const PRIVATE_KEY: &str =
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----";
const PRIVATE_KEY_OPEN: &str = r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*";
const JWT: &str = r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*";

impl Secrets {
    pub fn new(name: &str, action: Action, entities: &[String]) -> Result<Self, UnknownSecret> {
        for e in entities {
            if !ENTITIES.contains(&e.as_str()) {
                return Err(UnknownSecret(e.clone()));
            }
        }
        let want = |k: &str| entities.is_empty() || entities.iter().any(|e| e == k);
        let re = |p: &str| Regex::new(p).unwrap_or_else(|_| never());
        Ok(Self {
            name: name.to_string(),
            action,
            api_key: want("api_key").then(|| re(API_KEY)),
            private_key: want("private_key").then(|| re(PRIVATE_KEY)),
            private_key_open: want("private_key").then(|| re(PRIVATE_KEY_OPEN)),
            jwt: want("jwt").then(|| re(JWT)),
        })
    }
}

impl Guardrail for Secrets {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "secrets"
    }

    fn action(&self) -> Action {
        self.action
    }

    fn scan(&self, input: &ScanInput<'_>) -> Vec<Finding> {
        let text = input.text;
        let mut out = Vec::new();
        if let (Some(closed), Some(open)) = (&self.private_key, &self.private_key_open) {
            let mut end = 0;
            for m in closed.find_iter(text) {
                out.push(Finding::span("private_key", m.range()));
                end = m.end();
            }
            if let Some(m) = open.find(&text[end..]) {
                out.push(Finding::span("private_key", end + m.start()..text.len()));
            }
        }
        let inside = |out: &[Finding], s: usize| {
            out.iter()
                .any(|f| f.span.as_ref().is_some_and(|r| r.contains(&s)))
        };
        if let Some(re) = &self.jwt {
            for m in re.find_iter(text) {
                if !inside(&out, m.start()) {
                    out.push(Finding::span("jwt", m.range()));
                }
            }
        }
        if let Some(re) = &self.api_key {
            for m in re.find_iter(text) {
                if !inside(&out, m.start()) {
                    out.push(Finding::span("api_key", m.range()));
                }
            }
        }
        out
    }

    /// A PEM block is held whole by the stream scanner (it tracks an open BEGIN line); the
    /// other secrets have no whitespace.
    fn stream_window(&self) -> Option<usize> {
        Some(40)
    }
}

/// Where an unterminated private-key block starts in `text`, if one does (the stream scanner
/// holds text from there until the END line arrives).
pub fn open_private_key(text: &str) -> Option<usize> {
    let begin = text.rfind("-----BEGIN ")?;
    let rest = &text[begin..];
    let header_end = rest[11..].find("-----").map(|i| i + 11 + 5);
    match header_end {
        // the header itself is still arriving, or it is complete and not yet closed by an END
        None => Some(begin),
        Some(h) => {
            let header = &rest[..h];
            if header.contains("PRIVATE KEY") && !rest[h..].contains("-----END ") {
                Some(begin)
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::Direction;

    fn kinds(text: &str) -> Vec<&'static str> {
        Secrets::new("s", Action::Redact, &[])
            .unwrap()
            .scan(&ScanInput::new(text, Direction::Response))
            .into_iter()
            .map(|f| f.kind)
            .collect()
    }

    #[test]
    fn finds_keys_tokens_and_pem_blocks() {
        assert_eq!(
            kinds("key sk-proj-abcdefghijklmnopqrstuvwx1234 end"),
            vec!["api_key"]
        );
        assert_eq!(kinds("aws AKIAIOSFODNN7EXAMPLE"), vec!["api_key"]);
        assert_eq!(
            kinds("gh ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"),
            vec!["api_key"]
        );
        assert_eq!(
            kinds("AIzaSyA1234567890abcdefghijklmnopqrstuv"),
            vec!["api_key"]
        );
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert_eq!(kinds(&format!("token {jwt} ok")), vec!["jwt"]);
        let pem =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----";
        assert_eq!(kinds(&format!("here:\n{pem}\nbye")), vec!["private_key"]);
        assert_eq!(
            kinds("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg (cut)"),
            vec!["private_key"]
        );
        assert!(kinds("the sky is blue; ask-me-anything; risk_level").is_empty());
        assert!(kinds("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----").is_empty());
    }

    #[test]
    fn open_block_detection() {
        assert_eq!(
            open_private_key("x -----BEGIN PRIVATE KEY-----\nabc"),
            Some(2)
        );
        assert_eq!(open_private_key("x -----BEGIN PRIV"), Some(2));
        assert_eq!(
            open_private_key("-----BEGIN PRIVATE KEY-----\na\n-----END PRIVATE KEY-----"),
            None
        );
        assert_eq!(open_private_key("-----BEGIN CERTIFICATE-----\nabc"), None);
    }
}
