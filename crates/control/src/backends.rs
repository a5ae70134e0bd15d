//! External provider backends and the credentials they use: the normalised `Backend`, the
//! `Secret` values it may reference, and [`load_material`], which turns a credential source into
//! the key (or key pair, or service-account key) a provider needs.
//!
//! Credentials are checked when the configuration loads: a backend whose provider needs a
//! credential and has none, or whose Secret / file / environment variable is missing, empty or
//! malformed, is a configuration error — never a silent unauthenticated call later. The values
//! themselves are never part of an error message.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use infergate_providers::auth::{AwsCredentials, ServiceAccountKey};
use infergate_providers::ProviderKind;

/// Where a credential comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// From a `Secret` resource: its decoded values (rotated by editing the Secret, which
    /// reloads the configuration).
    Secret {
        name: String,
        key: Option<String>,
        values: BTreeMap<String, String>,
    },
    /// A file, re-read when it changes.
    File(PathBuf),
    /// An environment variable (AWS: a prefix).
    Env(String),
}

impl std::fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialSource::Secret { name, key, .. } => write!(f, "Secret({name}, {key:?})"),
            CredentialSource::File(p) => write!(f, "File({})", p.display()),
            CredentialSource::Env(v) => write!(f, "Env({v})"),
        }
    }
}

impl CredentialSource {
    /// The file to watch for rotation, if any.
    pub fn file(&self) -> Option<&PathBuf> {
        match self {
            CredentialSource::File(p) => Some(p),
            _ => None,
        }
    }
}

/// A credential, ready to use.
#[derive(Clone, PartialEq, Eq)]
pub enum CredentialMaterial {
    ApiKey(String),
    Aws(AwsCredentials),
    GoogleServiceAccount(Box<ServiceAccountKey>),
}

impl std::fmt::Debug for CredentialMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialMaterial::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            CredentialMaterial::Aws(a) => write!(f, "{a:?}"),
            CredentialMaterial::GoogleServiceAccount(k) => write!(f, "{k:?}"),
        }
    }
}

/// Prices in USD per million tokens, for the spend ledger.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pricing {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    /// Cached prompt tokens; the input price when unset.
    pub cached_input_per_mtok: Option<f64>,
}

impl Eq for Pricing {}

impl Pricing {
    /// USD for one request's usage (`input` includes `cached`).
    pub fn cost(&self, input: u64, cached: u64, output: u64) -> f64 {
        let fresh = input.saturating_sub(cached) as f64;
        let cached_price = self.cached_input_per_mtok.unwrap_or(self.input_per_mtok);
        (fresh * self.input_per_mtok
            + cached as f64 * cached_price
            + output as f64 * self.output_per_mtok)
            / 1e6
    }
}

/// Circuit breaking for one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitSettings {
    /// Failures in a row that open the circuit; 0 = never.
    pub consecutive_failures: u32,
    pub cooldown: Duration,
}

impl Default for CircuitSettings {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            cooldown: Duration::from_secs(10),
        }
    }
}

/// A validated `Backend`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub name: String,
    pub provider: ProviderKind,
    /// `gen_ai.provider.name`.
    pub provider_name: String,
    /// Scheme + authority + path prefix, without a trailing `/`.
    pub base_url: String,
    pub region: Option<String>,
    pub project: Option<String>,
    pub api_version: Option<String>,
    pub credentials: Option<CredentialSource>,
    pub passthrough_credentials: bool,
    pub pricing: Option<Pricing>,
    pub connect_timeout: Option<Duration>,
    pub first_token_timeout: Option<Duration>,
    pub stream_idle_timeout: Option<Duration>,
    pub circuit: Option<CircuitSettings>,
    /// `Some("none")` turns the gateway-wide proxy off for this backend.
    pub proxy: Option<String>,
}

/// The provider's public endpoint.
pub fn default_base_url(kind: ProviderKind, region: Option<&str>) -> Option<String> {
    Some(match kind {
        ProviderKind::OpenAi => "https://api.openai.com/v1".into(),
        ProviderKind::Anthropic => "https://api.anthropic.com".into(),
        ProviderKind::Bedrock => format!("https://bedrock-runtime.{}.amazonaws.com", region?),
        ProviderKind::VertexAi => match region? {
            "global" => "https://aiplatform.googleapis.com".into(),
            r => format!("https://{r}-aiplatform.googleapis.com"),
        },
        ProviderKind::Gemini => "https://generativelanguage.googleapis.com".into(),
        ProviderKind::AzureOpenAi | ProviderKind::OpenAiCompatible => return None,
    })
}

/// Whether the provider can be called without a credential.
pub fn credential_optional(kind: ProviderKind) -> bool {
    kind == ProviderKind::OpenAiCompatible
}

/// The Secret key read when the reference names none.
pub fn default_secret_key(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::VertexAi => "credentials.json",
        _ => "apiKey",
    }
}

/// A Secret's values: `data` base64-decoded, `stringData` on top (as the API server merges them).
pub fn secret_values(
    data: &BTreeMap<String, String>,
    string_data: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (k, v) in data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .map_err(|_| format!("data.{k} is not valid base64"))?;
        let text = String::from_utf8(bytes).map_err(|_| format!("data.{k} is not UTF-8 text"))?;
        out.insert(k.clone(), text);
    }
    for (k, v) in string_data {
        out.insert(k.clone(), v.clone());
    }
    Ok(out)
}

fn aws_from_map(
    get: impl Fn(&str) -> Option<String>,
    what: &str,
) -> Result<CredentialMaterial, String> {
    let need = |k: &str| {
        get(k)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| format!("{what} has no `{k}`"))
    };
    Ok(CredentialMaterial::Aws(AwsCredentials {
        access_key_id: need("accessKeyId")?.trim().to_string(),
        secret_access_key: need("secretAccessKey")?.trim().to_string(),
        session_token: get("sessionToken")
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty()),
    }))
}

/// AWS keys from a file: JSON `{"accessKeyId", "secretAccessKey", "sessionToken"}` or the shared
/// credentials format (`aws_access_key_id = …` lines).
fn aws_from_text(text: &str, what: &str) -> Result<CredentialMaterial, String> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        return aws_from_map(
            |k| v.get(k).and_then(|x| x.as_str()).map(str::to_string),
            what,
        );
    }
    let mut map = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            let key = match k.trim() {
                "aws_access_key_id" => "accessKeyId",
                "aws_secret_access_key" => "secretAccessKey",
                "aws_session_token" => "sessionToken",
                _ => continue,
            };
            map.entry(key.to_string())
                .or_insert_with(|| v.trim().to_string());
        }
    }
    aws_from_map(|k| map.get(k).cloned(), what)
}

fn from_text(kind: ProviderKind, text: &str, what: &str) -> Result<CredentialMaterial, String> {
    match kind {
        ProviderKind::Bedrock => aws_from_text(text, what),
        ProviderKind::VertexAi => ServiceAccountKey::parse(text.as_bytes())
            .map(|k| CredentialMaterial::GoogleServiceAccount(Box::new(k)))
            .map_err(|e| format!("{what}: {e}")),
        _ => {
            let key = text.trim();
            if key.is_empty() {
                Err(format!("{what} is empty"))
            } else if key.chars().any(|c| c.is_control()) {
                Err(format!(
                    "{what} holds more than one line; put only the key in it"
                ))
            } else {
                Ok(CredentialMaterial::ApiKey(key.to_string()))
            }
        }
    }
}

/// Read a credential from its source. Errors name the source, never the value.
pub fn load_material(
    kind: ProviderKind,
    source: &CredentialSource,
) -> Result<CredentialMaterial, String> {
    match source {
        CredentialSource::Secret { name, key, values } => {
            if kind == ProviderKind::Bedrock && key.is_none() {
                return aws_from_map(|k| values.get(k).cloned(), &format!("Secret `{name}`"));
            }
            let key = key.as_deref().unwrap_or(default_secret_key(kind));
            let value = values.get(key).ok_or_else(|| {
                let keys: Vec<&str> = values.keys().map(String::as_str).collect();
                format!(
                    "Secret `{name}` has no key `{key}` (it has: {})",
                    keys.join(", ")
                )
            })?;
            from_text(kind, value, &format!("Secret `{name}` key `{key}`"))
        }
        CredentialSource::File(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read credentials file {}: {e}", path.display()))?;
            from_text(kind, &text, &format!("credentials file {}", path.display()))
        }
        CredentialSource::Env(var) => {
            if kind == ProviderKind::Bedrock {
                let get = |k: &str| {
                    let suffix = match k {
                        "accessKeyId" => "ACCESS_KEY_ID",
                        "secretAccessKey" => "SECRET_ACCESS_KEY",
                        _ => "SESSION_TOKEN",
                    };
                    std::env::var(format!("{var}_{suffix}")).ok()
                };
                return aws_from_map(get, &format!("environment prefix `{var}_`"));
            }
            let value = std::env::var(var)
                .map_err(|_| format!("environment variable `{var}` is not set"))?;
            from_text(kind, &value, &format!("environment variable `{var}`"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_data_is_base64() {
        let mut data = BTreeMap::new();
        data.insert("apiKey".to_string(), "c2stdGVzdA==".to_string());
        let v = secret_values(&data, &BTreeMap::new()).unwrap();
        assert_eq!(v["apiKey"], "sk-test");
        data.insert("bad".to_string(), "%%%".to_string());
        assert!(secret_values(&data, &BTreeMap::new()).is_err());
    }

    #[test]
    fn aws_shared_credentials_format() {
        let m = aws_from_text(
            "[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = secret\n",
            "f",
        )
        .unwrap();
        match m {
            CredentialMaterial::Aws(a) => {
                assert_eq!(a.access_key_id, "AKIDEXAMPLE");
                assert!(a.session_token.is_none());
            }
            other => panic!("{other:?}"),
        }
        assert!(aws_from_text("aws_access_key_id = x\n", "f")
            .unwrap_err()
            .contains("secretAccessKey"));
    }

    #[test]
    fn pricing() {
        let p = Pricing {
            input_per_mtok: 2.0,
            output_per_mtok: 10.0,
            cached_input_per_mtok: Some(1.0),
        };
        let c = p.cost(1_000_000, 500_000, 100_000);
        assert!((c - (1.0 + 0.5 + 1.0)).abs() < 1e-9, "{c}");
    }
}
