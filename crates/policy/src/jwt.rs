//! JWT bearer tokens verified against a JWKS, and their claims mapped to a tenant and roles.
//!
//! The gateway fetches the JWKS (file or URL) and swaps in a new [`JwtVerifier`] when it
//! changes; this module only decides. A token must name (by `kid`) a key in the set — or the set
//! must hold exactly one key — and be signed with that key's algorithm (a token cannot choose a
//! weaker algorithm than its key's). `exp` is required; `nbf`, `iss` and `aud` are checked when
//! configured, with the configured leeway.

use std::collections::HashMap;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use infergate_control::policy::JwtSettings;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's signing key `{0}` is not in the JWKS")]
    UnknownKey(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the token has no `{0}` claim and no default tenant is configured")]
    NoTenant(String),
}

/// What a valid token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    pub tenant: String,
    pub subject: Option<String>,
    pub roles: Vec<String>,
    /// `exp`, Unix seconds.
    pub expires: u64,
}

struct VerifyKey {
    key: DecodingKey,
    alg: Algorithm,
}

/// Verifies tokens against one JWKS.
pub struct JwtVerifier {
    keys: HashMap<String, VerifyKey>,
    /// The key used when a token has no `kid` (only when the set has exactly one).
    only: Option<VerifyKey>,
    settings: JwtSettings,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Whether a bearer credential looks like a JWT (rather than an API key).
pub fn looks_like_jwt(s: &str) -> bool {
    s.starts_with("eyJ") && s.bytes().filter(|b| *b == b'.').count() == 2
}

fn algorithm(jwk: &Jwk) -> Option<Algorithm> {
    if let Some(a) = jwk.common.key_algorithm {
        return Some(match a {
            KeyAlgorithm::HS256 => Algorithm::HS256,
            KeyAlgorithm::HS384 => Algorithm::HS384,
            KeyAlgorithm::HS512 => Algorithm::HS512,
            KeyAlgorithm::ES256 => Algorithm::ES256,
            KeyAlgorithm::ES384 => Algorithm::ES384,
            KeyAlgorithm::RS256 => Algorithm::RS256,
            KeyAlgorithm::RS384 => Algorithm::RS384,
            KeyAlgorithm::RS512 => Algorithm::RS512,
            KeyAlgorithm::PS256 => Algorithm::PS256,
            KeyAlgorithm::PS384 => Algorithm::PS384,
            KeyAlgorithm::PS512 => Algorithm::PS512,
            KeyAlgorithm::EdDSA => Algorithm::EdDSA,
            _ => return None,
        });
    }
    Some(match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
        AlgorithmParameters::OctetKey(_) => Algorithm::HS256,
        _ => return None,
    })
}

impl JwtVerifier {
    /// Build from JWKS JSON. Keys that cannot verify signatures (encryption keys, unsupported
    /// curves) are skipped; a set with no usable key is an error.
    pub fn from_jwks(json: &[u8], settings: JwtSettings) -> Result<Self, String> {
        let set: JwkSet = serde_json::from_slice(json)
            .map_err(|e| format!("the JWKS is not valid JSON Web Key Set JSON: {e}"))?;
        let mut keys = HashMap::new();
        let mut unnamed = Vec::new();
        for jwk in &set.keys {
            if jwk
                .common
                .public_key_use
                .as_ref()
                .is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature)
            {
                continue;
            }
            let Some(alg) = algorithm(jwk) else { continue };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            let vk = VerifyKey { key, alg };
            match &jwk.common.key_id {
                Some(kid) => {
                    keys.insert(kid.clone(), vk);
                }
                None => unnamed.push(vk),
            }
        }
        let total = keys.len() + unnamed.len();
        if total == 0 {
            return Err("the JWKS has no key usable for verifying signatures".into());
        }
        let only = if total == 1 {
            unnamed.pop().or_else(|| {
                keys.values().next().map(|k| VerifyKey {
                    key: k.key.clone(),
                    alg: k.alg,
                })
            })
        } else {
            None
        };
        Ok(Self {
            keys,
            only,
            settings,
        })
    }

    /// Number of usable keys.
    pub fn key_count(&self) -> usize {
        self.keys.len().max(usize::from(self.only.is_some()))
    }

    /// Verify a token and map its claims.
    pub fn verify(&self, token: &str) -> Result<TokenClaims, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        let vk = match &header.kid {
            Some(kid) => self
                .keys
                .get(kid)
                .or(self.only.as_ref().filter(|_| self.keys.is_empty()))
                .ok_or_else(|| JwtError::UnknownKey(kid.clone()))?,
            None => self
                .only
                .as_ref()
                .ok_or_else(|| JwtError::UnknownKey("(no kid)".into()))?,
        };
        if header.alg != vk.alg {
            return Err(JwtError::Invalid(format!(
                "the token is signed with {:?} but its key uses {:?}",
                header.alg, vk.alg
            )));
        }
        let s = &self.settings;
        let mut v = Validation::new(vk.alg);
        v.leeway = s.leeway.as_secs();
        v.validate_nbf = true;
        if let Some(iss) = &s.issuer {
            v.set_issuer(&[iss]);
        }
        if s.audiences.is_empty() {
            v.validate_aud = false;
        } else {
            v.set_audience(&s.audiences);
        }
        let data = jsonwebtoken::decode::<Value>(token, &vk.key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            JwtError::Invalid(match e.kind() {
                K::ExpiredSignature => "the token has expired".into(),
                K::ImmatureSignature => "the token is not valid yet (nbf)".into(),
                K::InvalidIssuer => "the token's issuer (iss) is not the configured one".into(),
                K::InvalidAudience => "the token's audience (aud) is not accepted here".into(),
                K::InvalidSignature => "the token's signature does not verify".into(),
                K::MissingRequiredClaim(c) => format!("the token has no `{c}` claim"),
                other => format!("the token is invalid ({other:?})"),
            })
        })?;
        let claims = data.claims;
        let tenant = match claim(&claims, &s.tenant_claim).and_then(Value::as_str) {
            Some(t) => t.to_string(),
            None => s
                .default_tenant
                .clone()
                .ok_or_else(|| JwtError::NoTenant(s.tenant_claim.clone()))?,
        };
        let roles = match claim(&claims, &s.roles_claim) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
            _ => Vec::new(),
        };
        Ok(TokenClaims {
            tenant,
            subject: claims
                .get("sub")
                .and_then(Value::as_str)
                .map(str::to_string),
            roles,
            expires: claims.get("exp").and_then(Value::as_u64).unwrap_or(0),
        })
    }
}

/// A claim by dotted path (`org.tenant`).
fn claim<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    let mut v = claims;
    for part in path.split('.') {
        v = v.get(part)?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use std::time::Duration;

    fn settings() -> JwtSettings {
        JwtSettings {
            issuer: Some("https://idp.test".into()),
            audiences: vec!["infergate".into()],
            jwks_file: None,
            jwks_url: None,
            refresh: Duration::from_secs(300),
            tenant_claim: "org.tenant".into(),
            roles_claim: "roles".into(),
            default_tenant: None,
            leeway: Duration::from_secs(0),
        }
    }

    const SECRET_B64: &str = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0xMjM0NTY3OA";

    fn jwks() -> String {
        format!(r#"{{"keys":[{{"kty":"oct","kid":"k1","alg":"HS256","k":"{SECRET_B64}"}}]}}"#)
    }

    fn token(claims: Value, kid: &str) -> String {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(kid.into());
        let secret = b"secret-key-for-tests-only-12345678";
        encode(&h, &claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn valid_tokens_map_claims() {
        let v = JwtVerifier::from_jwks(jwks().as_bytes(), settings()).unwrap();
        let t = token(
            serde_json::json!({"sub": "alice", "iss": "https://idp.test", "aud": "infergate",
                "exp": now() + 60, "org": {"tenant": "acme"}, "roles": ["dev", "ops"]}),
            "k1",
        );
        assert!(looks_like_jwt(&t));
        let c = v.verify(&t).unwrap();
        assert_eq!(c.tenant, "acme");
        assert_eq!(c.subject.as_deref(), Some("alice"));
        assert_eq!(c.roles, vec!["dev", "ops"]);
    }

    #[test]
    fn bad_tokens_say_why() {
        let v = JwtVerifier::from_jwks(jwks().as_bytes(), settings()).unwrap();
        let base = serde_json::json!({"iss": "https://idp.test", "aud": "infergate", "exp": now() + 60, "org": {"tenant": "acme"}});
        let mut expired = base.clone();
        expired["exp"] = serde_json::json!(now() - 10);
        assert!(
            matches!(v.verify(&token(expired, "k1")), Err(JwtError::Invalid(m)) if m.contains("expired"))
        );
        let mut wrong_aud = base.clone();
        wrong_aud["aud"] = serde_json::json!("other");
        assert!(
            matches!(v.verify(&token(wrong_aud, "k1")), Err(JwtError::Invalid(m)) if m.contains("audience"))
        );
        assert!(matches!(
            v.verify(&token(base.clone(), "k2")),
            Err(JwtError::UnknownKey(_))
        ));
        let mut no_tenant = base.clone();
        no_tenant.as_object_mut().unwrap().remove("org");
        assert!(matches!(
            v.verify(&token(no_tenant, "k1")),
            Err(JwtError::NoTenant(_))
        ));
        let mut tampered = token(base, "k1");
        tampered.push('x');
        assert!(v.verify(&tampered).is_err());
        assert!(v.verify("not.a.jwt").is_err());
    }

    #[test]
    fn empty_sets_are_refused() {
        assert!(JwtVerifier::from_jwks(br#"{"keys":[]}"#, settings()).is_err());
        assert!(JwtVerifier::from_jwks(b"nope", settings()).is_err());
    }
}
