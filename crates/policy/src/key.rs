//! API keys: how they look, how they are made, and how they are stored (only as hashes).
//!
//! A key is `igk_<id>_<secret>`: `igk_` says what it is (secret scanners can match it), `<id>`
//! (8 lowercase hex characters) names the key in listings, logs, metrics-free audit records and
//! the admin API without revealing it, and `<secret>` is 32 base62 characters (~190 bits). The
//! gateway stores and compares only `SHA-256(key)` — a fast hash is the right one here because
//! the key is high-entropy (a slow password hash protects low-entropy secrets, at a cost every
//! request would pay). A key id stays the same when the key is rotated: per-key limits, budgets
//! and spend follow the id, and the old secret keeps working until its grace period ends.
//!
//! This module never logs, formats or stores a plaintext key.

use std::fmt;

use rand::Rng;
use sha2::{Digest, Sha256};

/// The prefix every infergate API key starts with.
pub const KEY_PREFIX: &str = "igk_";
const ID_LEN: usize = 8;
const SECRET_LEN: usize = 32;
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The public name of a key: `igk_` + 8 hex characters. Safe to log and show.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// Parse an id as written by [`KeyId::fmt`] (`igk_1a2b3c4d`).
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s.strip_prefix(KEY_PREFIX)?;
        (hex.len() == ID_LEN
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| KeyId(s.to_string()))
    }

    /// A fresh random id.
    pub fn random(rng: &mut impl Rng) -> Self {
        let n: u32 = rng.random();
        KeyId(format!("{KEY_PREFIX}{n:08x}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `SHA-256(key)` in lowercase hex: what is stored and compared.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyHash(String);

impl KeyHash {
    /// Hash a presented credential.
    pub fn of(key: &str) -> Self {
        KeyHash(sha256_hex(key.as_bytes()))
    }

    /// Accept a hash written in configuration (64 hex characters, any case).
    pub fn parse_hex(s: &str) -> Option<Self> {
        let s = s.trim();
        (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| KeyHash(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    // `hex`'s table lookup: `write!("{b:02x}")` per byte cost ~8,000 instructions per request.
    hex::encode(Sha256::digest(bytes))
}

/// A newly made key. The plaintext exists only here, to be shown once to whoever asked for it.
pub struct NewKey {
    pub id: KeyId,
    pub hash: KeyHash,
    /// Shown once; never stored.
    pub plaintext: String,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("id", &self.id)
            .field("hash", &self.hash)
            .field("plaintext", &"<redacted>")
            .finish()
    }
}

/// Make a new secret for key `id` (a new key, or a rotation of an existing one).
pub fn generate(id: KeyId, rng: &mut impl Rng) -> NewKey {
    let mut plaintext = String::with_capacity(KEY_PREFIX.len() + ID_LEN + 1 + SECRET_LEN);
    plaintext.push_str(id.as_str());
    plaintext.push('_');
    for _ in 0..SECRET_LEN {
        plaintext.push(BASE62[rng.random_range(0..BASE62.len())] as char);
    }
    NewKey {
        hash: KeyHash::of(&plaintext),
        id,
        plaintext,
    }
}

/// The key id a presented key claims (`igk_xxxxxxxx_…` → `igk_xxxxxxxx`), for error messages
/// and audit only: the hash, not this, decides whether the key is valid.
pub fn claimed_id(key: &str) -> Option<KeyId> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let hex = rest.get(..ID_LEN)?;
    if rest.as_bytes().get(ID_LEN) != Some(&b'_') {
        return None;
    }
    KeyId::parse(&format!("{KEY_PREFIX}{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape_and_hash() {
        let mut rng = rand::rng();
        let id = KeyId::random(&mut rng);
        let k = generate(id.clone(), &mut rng);
        assert!(k.plaintext.starts_with(id.as_str()));
        assert_eq!(k.plaintext.len(), 4 + 8 + 1 + 32);
        assert_eq!(k.hash, KeyHash::of(&k.plaintext));
        assert_eq!(claimed_id(&k.plaintext), Some(id));
        assert!(!format!("{k:?}").contains(&k.plaintext));
        // Two secrets for the same id differ.
        let k2 = generate(k.id.clone(), &mut rng);
        assert_ne!(k.hash, k2.hash);
    }

    #[test]
    fn hashes_are_sha256_hex() {
        assert_eq!(
            KeyHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(KeyHash::parse_hex(
            "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
        )
        .is_some());
        assert!(KeyHash::parse_hex("xyz").is_none());
    }

    #[test]
    fn ids_parse_strictly() {
        assert!(KeyId::parse("igk_0123abcd").is_some());
        assert!(KeyId::parse("igk_0123ABCD").is_none());
        assert!(KeyId::parse("igk_0123abc").is_none());
        assert!(claimed_id("sk-whatever").is_none());
        assert!(claimed_id("igk_0123abcdX").is_none());
    }
}
