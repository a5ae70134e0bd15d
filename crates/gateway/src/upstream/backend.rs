//! External provider backends at run time: the HTTP client (TLS with the Mozilla roots, through
//! an HTTP CONNECT proxy when configured), and the request one attempt sends — translated by the
//! backend's [`Provider`], with the backend's own credential put on it (or the client's, when the
//! backend passes credentials through). Credentials are applied per attempt, so a fallback to
//! another provider carries that provider's credential, never the previous one's.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use infergate_control::{Backend, CircuitSettings, CredentialMaterial, Pricing, Settings};
use infergate_providers::auth::{self, AwsCredentials, ServiceAccountKey};
use infergate_providers::{AuthScheme, Provider, Target, UpstreamRequest};

use super::circuit::Circuit;
use super::credentials::CredentialEntry;
use crate::metrics::Label;

type Direct = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;
type Proxied = Client<HttpsConnector<Tunnel<HttpConnector>>, Full<Bytes>>;

/// A pooled client to one backend.
pub enum BackendClient {
    Direct(Direct),
    Proxied(Proxied),
}

impl BackendClient {
    pub fn new(connect_timeout: Duration, proxy: Option<&str>) -> Result<Self, String> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        http.enforce_http(false);
        let tls = || {
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_webpki_roots(Arc::new(rustls::crypto::ring::default_provider()))
                .map(|b| b.https_or_http().enable_http1())
                .map_err(|e| format!("TLS setup failed: {e}"))
        };
        let builder = || {
            let mut b = Client::builder(TokioExecutor::new());
            b.pool_idle_timeout(Duration::from_secs(90))
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new());
            b
        };
        Ok(match proxy {
            None => BackendClient::Direct(builder().build(tls()?.wrap_connector(http))),
            Some(p) => {
                let uri: http::Uri = p.parse().map_err(|e| format!("proxy `{p}`: {e}"))?;
                BackendClient::Proxied(
                    builder().build(tls()?.wrap_connector(Tunnel::new(uri, http))),
                )
            }
        })
    }

    pub async fn request(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        match self {
            BackendClient::Direct(c) => c.request(req).await,
            BackendClient::Proxied(c) => c.request(req).await,
        }
    }
}

/// One `Backend` in a configuration snapshot.
pub struct BackendRuntime {
    pub spec: Backend,
    pub provider: &'static dyn Provider,
    pub client: Arc<BackendClient>,
    pub credentials: Option<Arc<CredentialEntry>>,
    pub circuit: Arc<Circuit>,
    pub circuit_settings: CircuitSettings,
    pub label: Label,
    /// `gen_ai.provider.name`.
    pub provider_label: Label,
    pub first_token_timeout: Duration,
    pub stream_idle_timeout: Duration,
    /// Key of the client cache: (base URL, connect timeout, proxy).
    pub client_key: (String, Duration, Option<String>),
}

impl BackendRuntime {
    pub fn pricing(&self) -> Option<Pricing> {
        self.spec.pricing
    }

    /// The proxy this backend's traffic goes through.
    pub fn effective_proxy(spec: &Backend, settings: &Settings) -> Option<String> {
        match spec.proxy.as_deref() {
            Some("none") => None,
            Some(p) => Some(p.to_string()),
            None => settings.egress_proxy.clone(),
        }
    }

    pub fn target<'a>(
        &'a self,
        model: &'a str,
        op: infergate_providers::Operation,
        stream: bool,
        request_id: &'a str,
    ) -> Target<'a> {
        Target {
            model,
            operation: op,
            stream,
            region: self.spec.region.as_deref(),
            project: self.spec.project.as_deref(),
            api_version: self.spec.api_version.as_deref(),
            created: unix_now(),
            request_id,
        }
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why an attempt's request could not be built.
#[derive(Debug)]
pub enum BuildError {
    /// The client's request cannot be translated for this provider (bad body, unsupported
    /// operation, bad model name). Another target may take it.
    Translate(infergate_providers::TranslateError),
    /// The gateway has no usable credential (token endpoint down, key missing).
    Credentials(String),
    /// The backend passes client credentials through and the client sent none.
    NoClientCredential,
}

/// The client's own key, from `Authorization: Bearer`, `x-api-key` or `api-key`.
fn client_key(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        let key = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .unwrap_or(v);
        if !key.is_empty() {
            return Some(key.trim().to_string());
        }
    }
    ["x-api-key", "api-key", "x-goog-api-key"]
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn set(headers: &mut HeaderMap, name: &str, value: &str) -> Result<(), BuildError> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|e| BuildError::Credentials(e.to_string()))?;
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        BuildError::Credentials("the credential is not a valid header value".into())
    })?;
    v.set_sensitive(true);
    headers.insert(name, v);
    Ok(())
}

/// Mint a Vertex AI access token: sign the assertion, exchange it at the key's `token_uri`.
async fn mint_google_token(
    client: &BackendClient,
    key: &ServiceAccountKey,
) -> Result<(String, Duration), String> {
    let assertion = auth::google_assertion(key, auth::CLOUD_PLATFORM_SCOPE, unix_now())
        .map_err(|e| e.to_string())?;
    let req = Request::post(&key.token_uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(auth::token_request_body(&assertion))))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| format!("token endpoint {} did not answer within 10s", key.token_uri))?
        .map_err(|e| format!("token endpoint {}: {e}", key.token_uri))?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), 1 << 20)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if !status.is_success() {
        let why = auth::parse_token_response(&body)
            .err()
            .map_or_else(String::new, |e| e.to_string());
        return Err(format!(
            "token endpoint {} answered {status}: {why}",
            key.token_uri
        ));
    }
    let tok = auth::parse_token_response(&body).map_err(|e| e.to_string())?;
    Ok((tok.token, Duration::from_secs(tok.expires_in.max(60))))
}

/// The HTTP request of one attempt to a backend: translated body, the provider's headers, the
/// request id, and the credential (signed over the final body for SigV4).
pub async fn build_backend_request(
    rt: &BackendRuntime,
    translated: UpstreamRequest,
    client_headers: &HeaderMap,
    request_id: &str,
) -> Result<Request<Full<Bytes>>, BuildError> {
    let url = format!("{}{}", rt.spec.base_url, translated.path_and_query);
    let uri: http::Uri = url.parse().map_err(|e: http::uri::InvalidUri| {
        BuildError::Translate(infergate_providers::TranslateError::InvalidRequest(
            e.to_string(),
        ))
    })?;
    let mut headers = HeaderMap::new();
    for (k, v) in translated.headers {
        headers.insert(k, v);
    }
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert(HeaderName::from_static("x-request-id"), v);
    }
    let scheme = rt.spec.provider.auth_scheme();
    if rt.spec.passthrough_credentials {
        let key = client_key(client_headers).ok_or(BuildError::NoClientCredential)?;
        match scheme {
            AuthScheme::Header(h) => set(&mut headers, h, &key)?,
            _ => set(&mut headers, "authorization", &format!("Bearer {key}"))?,
        }
    } else if let Some(entry) = &rt.credentials {
        match scheme {
            AuthScheme::Bearer | AuthScheme::Header(_) => {
                let Some(m) = entry.material() else {
                    return Err(BuildError::Credentials(format!(
                        "backend `{}` has no usable key",
                        rt.spec.name
                    )));
                };
                let CredentialMaterial::ApiKey(key) = &*m else {
                    return Err(BuildError::Credentials(
                        "the credential is not an API key".into(),
                    ));
                };
                match scheme {
                    AuthScheme::Header(h) => set(&mut headers, h, key)?,
                    _ => set(&mut headers, "authorization", &format!("Bearer {key}"))?,
                }
            }
            AuthScheme::AwsSigV4 => {
                let Some(m) = entry.material() else {
                    return Err(BuildError::Credentials(format!(
                        "backend `{}` has no usable AWS keys",
                        rt.spec.name
                    )));
                };
                let CredentialMaterial::Aws(creds) = &*m else {
                    return Err(BuildError::Credentials(
                        "the credential is not an AWS key pair".into(),
                    ));
                };
                sign_aws(
                    &mut headers,
                    &uri,
                    &translated.body,
                    creds,
                    rt.spec.region.as_deref().unwrap_or("us-east-1"),
                )?;
            }
            AuthScheme::GoogleServiceAccount => {
                let client = rt.client.clone();
                let token = entry
                    .access_token(|m| async move {
                        match &*m {
                            CredentialMaterial::GoogleServiceAccount(key) => {
                                mint_google_token(&client, key).await
                            }
                            _ => Err("the credential is not a service-account key".into()),
                        }
                    })
                    .await
                    .map_err(BuildError::Credentials)?;
                set(&mut headers, "authorization", &format!("Bearer {token}"))?;
            }
        }
    }
    let mut req = Request::post(uri)
        .body(Full::new(translated.body))
        .map_err(|e| BuildError::Credentials(e.to_string()))?;
    *req.headers_mut() = headers;
    Ok(req)
}

fn sign_aws(
    headers: &mut HeaderMap,
    uri: &http::Uri,
    body: &Bytes,
    creds: &AwsCredentials,
    region: &str,
) -> Result<(), BuildError> {
    let host = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .ok_or_else(|| BuildError::Credentials("the backend URL has no host".into()))?;
    headers.insert(
        header::HOST,
        HeaderValue::from_str(&host).map_err(|e| BuildError::Credentials(e.to_string()))?,
    );
    let signed: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| matches!(k.as_str(), "host" | "content-type" | "accept"))
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let add = auth::sign_sigv4(
        "POST",
        &uri.to_string(),
        &signed,
        body,
        creds,
        region,
        "bedrock",
        SystemTime::now(),
    )
    .map_err(|e| BuildError::Credentials(e.to_string()))?;
    for (k, v) in add {
        set(headers, &k, &v)?;
    }
    Ok(())
}
