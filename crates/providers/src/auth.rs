//! Credentials on the wire, without I/O: AWS SigV4 signatures over the final request (after
//! translation, so the signature covers exactly the bytes sent), and the Google OAuth2 JWT
//! bearer assertion a service account exchanges for an access token.
//!
//! Nothing here logs or formats a secret; `Debug` on the credential types hides them.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("could not sign the request: {0}")]
    Sign(String),
    #[error("the service-account key is not usable: {0}")]
    ServiceAccount(String),
    #[error("the token endpoint's answer is not usable: {0}")]
    Token(String),
}

/// AWS access keys (static, or temporary with a session token).
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Sign one request with SigV4 (service `bedrock` for Bedrock). `url` is the full, already
/// percent-encoded URL; `headers` are the ones that will be sent (host is taken from the URL).
/// Returns the headers to add (`authorization`, `x-amz-date`, `x-amz-security-token`).
#[allow(clippy::too_many_arguments)] // the inputs SigV4 is defined over, each distinct
pub fn sign_sigv4(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    creds: &AwsCredentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>, AuthError> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    let identity = aws_credential_types::Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.clone(),
        creds.session_token.clone(),
        None,
        "infergate",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| AuthError::Sign(e.to_string()))?
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| AuthError::Sign(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| AuthError::Sign(e.to_string()))?
        .into_parts();
    let (out, _params) = instructions.into_parts();
    Ok(out
        .into_iter()
        .map(|h| (h.name().to_string(), h.value().to_string()))
        .collect())
}

/// The fields of a Google service-account key file that the JWT bearer flow uses.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct ServiceAccountKey {
    pub client_email: String,
    pub private_key: String,
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
    #[serde(default)]
    pub private_key_id: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
}

fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".into()
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

impl ServiceAccountKey {
    pub fn parse(json: &[u8]) -> Result<Self, AuthError> {
        let key: Self =
            serde_json::from_slice(json).map_err(|e| AuthError::ServiceAccount(e.to_string()))?;
        jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key.as_bytes())
            .map_err(|e| AuthError::ServiceAccount(format!("private_key: {e}")))?;
        Ok(key)
    }
}

/// The scope Vertex AI needs.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// The grant type of the JWT bearer flow (RFC 7523).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Claims of the assertion (RFC 7523 §3, as Google documents them).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AssertionClaims {
    pub iss: String,
    pub scope: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
}

/// A signed (RS256) assertion for `key`, valid for an hour from `now` (Unix seconds).
pub fn google_assertion(
    key: &ServiceAccountKey,
    scope: &str,
    now: u64,
) -> Result<String, AuthError> {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = key.private_key_id.clone();
    let claims = AssertionClaims {
        iss: key.client_email.clone(),
        scope: scope.to_string(),
        aud: key.token_uri.clone(),
        iat: now,
        exp: now + 3600,
    };
    let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key.as_bytes())
        .map_err(|e| AuthError::ServiceAccount(e.to_string()))?;
    jsonwebtoken::encode(&header, &claims, &encoding)
        .map_err(|e| AuthError::ServiceAccount(e.to_string()))
}

/// The form body that exchanges an assertion for an access token.
pub fn token_request_body(assertion: &str) -> String {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!(
        "grant_type={}&assertion={}",
        enc(JWT_BEARER_GRANT),
        enc(assertion)
    )
}

/// An access token and how long it lives.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub token: String,
    pub expires_in: u64,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccessToken(<redacted>, {}s)", self.expires_in)
    }
}

/// Read the token endpoint's JSON answer.
pub fn parse_token_response(body: &[u8]) -> Result<AccessToken, AuthError> {
    #[derive(Deserialize)]
    struct Wire {
        access_token: Option<String>,
        #[serde(default)]
        expires_in: Option<u64>,
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        error_description: Option<String>,
    }
    let w: Wire = serde_json::from_slice(body).map_err(|e| AuthError::Token(e.to_string()))?;
    match w.access_token {
        Some(token) if !token.is_empty() => Ok(AccessToken {
            token,
            expires_in: w.expires_in.unwrap_or(3600),
        }),
        _ => Err(AuthError::Token(format!(
            "{}: {}",
            w.error.unwrap_or_else(|| "no access_token".into()),
            w.error_description.unwrap_or_default()
        ))),
    }
}
