//! identify: who is calling. Runs on the request headers alone, before the body is read, so an
//! unauthenticated caller cannot make the gateway read a large body.
//!
//! Credentials: `Authorization: Bearer <key or JWT>`, `x-api-key: <key>` (Anthropic style) or
//! `api-key: <key>` (Azure style). A bearer value that looks like a JWT is verified as one when
//! JWT is configured; anything else is an API key, hashed and looked up (keys declared in
//! configuration first, then the key store). The credential itself is never logged or kept.

use http::HeaderMap;
use infergate_control::policy::FailMode;
use infergate_policy::access::{check_key, AuthError, Caller};
use infergate_policy::jwt::{looks_like_jwt, JwtError};
use infergate_policy::key::{claimed_id, KeyHash};

use crate::error::GatewayError;
use crate::metrics::ReasonLabels;
use crate::snapshot::Snapshot;
use crate::state::now_ms;
use crate::Gateway;

/// The credential a request carries, if any.
pub fn credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            let t = v[7..].trim();
            if !t.is_empty() {
                return Some(t);
            }
        }
    }
    for name in ["x-api-key", "api-key"] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            let v = v.trim();
            if !v.is_empty() {
                return Some(v);
            }
        }
    }
    None
}

/// Establish the caller; `Ok(None)` when no identity is configured (open gateway).
pub async fn identify(
    gw: &Gateway,
    snap: &Snapshot,
    headers: &HeaderMap,
) -> Result<Option<Caller>, GatewayError> {
    let table = &snap.policy;
    if !table.enabled {
        return Ok(None);
    }
    let result = match credential(headers) {
        None => table.anonymous_caller().ok_or(AuthError::Missing),
        Some(cred) => caller_for(gw, snap, cred).await,
    };
    match result {
        Ok(c) => Ok(Some(c)),
        Err(e) => {
            gw.metrics
                .auth_failures
                .get_or_create(&ReasonLabels { reason: e.reason() })
                .inc();
            Err(GatewayError::Unauthenticated(e))
        }
    }
}

async fn caller_for(gw: &Gateway, snap: &Snapshot, cred: &str) -> Result<Caller, AuthError> {
    let table = &snap.policy;
    let now = now_ms();
    if snap.config.settings.policy.auth.jwt.is_some() && looks_like_jwt(cred) {
        let Some(verifier) = gw.policy.jwt.load_full() else {
            return Err(AuthError::InvalidToken(
                "the gateway has not loaded its JWKS yet".into(),
            ));
        };
        return match verifier.verify(cred) {
            Ok(claims) => {
                table.caller_for_token(&claims.tenant, claims.subject.as_deref(), claims.roles)
            }
            Err(e) => {
                if matches!(e, JwtError::UnknownKey(_)) {
                    gw.policy.jwks_wanted.notify_one();
                }
                Err(AuthError::InvalidToken(e.to_string()))
            }
        };
    }
    let hash = KeyHash::of(cred);
    if let Some(rec) = table.declared_keys.get(hash.as_str()) {
        check_key(rec, hash.as_str(), now)?;
        return table.caller_for_key(rec.clone());
    }
    let unknown = || AuthError::UnknownKey {
        claimed_id: claimed_id(cred).map(|id| id.to_string()),
    };
    let Some(store) = &gw.policy.keys else {
        return Err(unknown());
    };
    let stale_ok = gw.policy.fail_mode == FailMode::FailOpen;
    match store.lookup(hash.as_str(), stale_ok).await {
        Ok(Some(rec)) => {
            check_key(&rec, hash.as_str(), now)?;
            table.caller_for_key(rec)
        }
        Ok(None) => Err(unknown()),
        Err(e) => {
            tracing::warn!("key store unavailable: {e}");
            Err(AuthError::StoreUnavailable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_from_each_header() {
        let mut h = HeaderMap::new();
        assert_eq!(credential(&h), None);
        h.insert("api-key", "k3".parse().unwrap());
        assert_eq!(credential(&h), Some("k3"));
        h.insert("x-api-key", "k2".parse().unwrap());
        assert_eq!(credential(&h), Some("k2"));
        h.insert("authorization", "bearer  k1 ".parse().unwrap());
        assert_eq!(credential(&h), Some("k1"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(credential(&h), Some("k2"));
    }
}
