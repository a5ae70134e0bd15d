//! Google Gemini models: Vertex AI
//! (`/v1/projects/{p}/locations/{r}/publishers/google/models/{m}:generateContent` and
//! `:streamGenerateContent?alt=sse`, `Authorization: Bearer <access token>`), with the OAuth2
//! token endpoint (`POST /token`, JWT bearer grant: the RS256 assertion is verified against the
//! service account's public key, audience and issuer), and the Gemini API
//! (`/v1beta/models/{m}:generateContent`, `x-goog-api-key`).

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{json, Value};

use crate::{json, pieces, reply_text, stream, words, Body, Call, Fake, Flavor, Mode};

#[derive(serde::Deserialize)]
struct Claims {
    iss: String,
    scope: String,
    #[allow(dead_code)]
    aud: String,
    exp: u64,
    iat: u64,
}

/// `POST /token` with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=…`.
pub fn token(fake: &Fake, body: &[u8]) -> Response<Body> {
    let form: Vec<(String, String)> = String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .to_string(),
            )
        })
        .collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let bad = |why: &str| {
        fake.rejected.fetch_add(1, Ordering::SeqCst);
        json(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid_grant", "error_description": why}),
        )
    };
    if get("grant_type") != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return bad("unsupported grant_type");
    }
    let Some(assertion) = get("assertion") else {
        return bad("no assertion");
    };
    let Some((email, public_pem)) = &fake.creds.google else {
        return bad("no service account configured");
    };
    let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes()) else {
        return bad("fake misconfigured: public key");
    };
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[format!("{}/token", fake.base_url())]);
    v.set_issuer(&[email.as_str()]);
    v.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    let claims = match jsonwebtoken::decode::<Claims>(assertion, &key, &v) {
        Ok(d) => d.claims,
        Err(e) => return bad(&format!("Invalid JWT Signature or claims: {e}")),
    };
    if !claims
        .scope
        .split(' ')
        .any(|s| s == "https://www.googleapis.com/auth/cloud-platform")
    {
        return bad("missing cloud-platform scope");
    }
    if claims.exp <= claims.iat || claims.exp - claims.iat > 3600 || claims.iss != *email {
        return bad("Invalid JWT: token lifetime");
    }
    let n = fake.tokens_issued.fetch_add(1, Ordering::SeqCst);
    let tok = format!("ya29.fake-token-{n}");
    fake.issued.lock().unwrap().push(tok.clone());
    json(
        StatusCode::OK,
        &json!({"access_token": tok, "expires_in": 3599, "token_type": "Bearer"}),
    )
}

fn text_of(parts: &Value) -> String {
    parts
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            p.get("text")
                .or_else(|| p.pointer("/functionResponse/response/content"))
                .and_then(Value::as_str)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn handle(c: &Call<'_>) -> Response<Body> {
    let fake = c.fake;
    let path = c.uri_path;
    let Some((model_path, action)) = path.rsplit_once(':') else {
        return fake.error(404, "Not found", false);
    };
    let ok_path = match fake.flavor {
        Flavor::Vertex => {
            model_path.starts_with("/v1/projects/")
                && model_path.contains("/locations/")
                && model_path.contains("/publishers/google/models/")
        }
        _ => model_path.starts_with("/v1beta/models/"),
    };
    if !ok_path {
        return fake.error(404, "Not found", false);
    }
    match fake.flavor {
        Flavor::Vertex => {
            let tok = c
                .header("authorization")
                .and_then(|a| a.strip_prefix("Bearer "))
                .unwrap_or("");
            if !fake.issued.lock().unwrap().iter().any(|t| t == tok) {
                return fake.reject(401, "Request had invalid authentication credentials.");
            }
        }
        _ => {
            if let Some(want) = &fake.creds.api_key {
                if c.header("x-goog-api-key") != Some(want.as_str()) {
                    return fake.reject(400, "API key not valid. Please pass a valid API key.");
                }
            }
        }
    }
    let streaming = match action {
        "generateContent" => false,
        "streamGenerateContent" => {
            if !c.path.contains("alt=sse") {
                return fake.error(400, "this fake streams only with alt=sse", false);
            }
            true
        }
        _ => return fake.error(404, "Not found", false),
    };
    let Ok(req) = serde_json::from_slice::<Value>(c.body) else {
        return fake.error(400, "Invalid JSON payload received.", false);
    };
    let Some(contents) = req
        .get("contents")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
    else {
        return fake.error(
            400,
            "* GenerateContentRequest.contents: contents is not specified",
            false,
        );
    };
    let system_words = words(&text_of(
        req.pointer("/systemInstruction/parts")
            .unwrap_or(&Value::Null),
    ));
    let prompt_words: usize = contents
        .iter()
        .map(|m| words(&text_of(&m["parts"])))
        .sum::<usize>()
        + system_words;
    if c.too_long(prompt_words) {
        return fake.error(
            400,
            &format!("The input token count ({prompt_words}) exceeds the maximum number of tokens allowed ({}).", fake.max_prompt_words.load(Ordering::SeqCst)),
            false,
        );
    }
    let last = contents.last().cloned().unwrap_or(Value::Null);
    let last_is_result = last["parts"]
        .as_array()
        .is_some_and(|p| p.iter().any(|x| x.get("functionResponse").is_some()));
    let last_text = text_of(&last["parts"]);
    let tool = req
        .pointer("/tools/0/functionDeclarations/0")
        .filter(|_| !last_is_result);
    let text = reply_text(&last_text);
    let usage = json!({"promptTokenCount": prompt_words, "candidatesTokenCount": words(&text),
                       "totalTokenCount": prompt_words + words(&text), "cachedContentTokenCount": system_words});
    let model = model_path.rsplit('/').next().unwrap_or("");
    if streaming {
        let ev = |v: Value| Bytes::from(format!("data: {v}\r\n\r\n"));
        let mut events = Vec::new();
        if let Some(t) = tool {
            events.push(ev(json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": t["name"], "args": {"q": last_text}}}]},
                "finishReason": "STOP", "index": 0}], "usageMetadata": usage, "modelVersion": model})));
        } else {
            let ps = pieces(&text);
            let n = ps.len();
            for (i, p) in ps.into_iter().enumerate() {
                let mut cand =
                    json!({"content": {"role": "model", "parts": [{"text": p}]}, "index": 0});
                let mut chunk = json!({"modelVersion": model});
                if i + 1 == n {
                    cand["finishReason"] = json!("STOP");
                    chunk["usageMetadata"] = usage.clone();
                }
                chunk["candidates"] = json!([cand]);
                events.push(ev(chunk));
            }
        }
        let cut = match fake.mode() {
            Mode::CutStreamAfter(n) => Some(n),
            _ => None,
        };
        return stream("text/event-stream", events, cut);
    }
    let parts = match tool {
        Some(t) => json!([{"functionCall": {"name": t["name"], "args": {"q": last_text}}}]),
        None => json!([{"text": text}]),
    };
    json(
        StatusCode::OK,
        &json!({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": usage, "modelVersion": model, "responseId": "fake-response"}),
    )
}
