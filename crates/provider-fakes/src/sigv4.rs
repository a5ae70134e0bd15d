//! An independent AWS Signature Version 4 check (written from the published algorithm with
//! `hmac`/`sha2`, not with the signer the gateway uses), so a signing mistake in the gateway
//! fails the Bedrock fake's requests instead of passing silently.

use hmac::{KeyInit, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};

type HmacSha256 = hmac::Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// RFC 3986 unreserved characters stay, everything else is `%XX` (uppercase), as SigV4 wants.
fn uri_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Check the `Authorization` header of a request. `raw_path` is the path as received (still
/// percent-encoded); non-S3 services encode each segment once more for the canonical URI.
pub fn verify(
    method: &str,
    raw_path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    access_key: &str,
    secret: &str,
) -> Result<(), String> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("missing Authorization header")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("not AWS4-HMAC-SHA256")?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or("malformed Authorization")?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed_headers = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let credential = credential.ok_or("no Credential")?;
    let signed_headers = signed_headers.ok_or("no SignedHeaders")?;
    let signature = signature.ok_or("no Signature")?;
    let mut cred = credential.splitn(5, '/');
    let (ak, date, region, service, term) = (
        cred.next().unwrap_or(""),
        cred.next().unwrap_or(""),
        cred.next().unwrap_or(""),
        cred.next().unwrap_or(""),
        cred.next().unwrap_or(""),
    );
    if ak != access_key {
        return Err(format!("unknown access key {ak}"));
    }
    if term != "aws4_request" {
        return Err("credential scope must end in aws4_request".into());
    }
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or("missing X-Amz-Date")?;
    if !amz_date.starts_with(date) {
        return Err("X-Amz-Date does not match the credential scope date".into());
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    if !names.contains(&"host") || !names.contains(&"x-amz-date") {
        return Err("host and x-amz-date must be signed".into());
    }
    let mut canonical_headers = String::new();
    for n in &names {
        let values: Vec<String> = headers
            .get_all(*n)
            .iter()
            .map(|v| {
                v.to_str()
                    .unwrap_or("")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        if values.is_empty() {
            return Err(format!("signed header {n} is not in the request"));
        }
        canonical_headers.push_str(&format!("{n}:{}\n", values.join(",")));
    }
    let canonical_uri = if raw_path.is_empty() {
        "/".to_string()
    } else {
        raw_path
            .split('/')
            .map(uri_encode)
            .collect::<Vec<_>>()
            .join("/")
    };
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    params.sort();
    let canonical_query = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let canonical_request = format!(
        "{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{}",
        sha256_hex(body)
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let expected = hex::encode(hmac(&k_signing, string_to_sign.as_bytes()));
    if expected == signature {
        Ok(())
    } else {
        Err("The request signature we calculated does not match the signature you provided.".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published SigV4 test suite, case `get-vanilla`.
    #[test]
    fn aws_test_suite_get_vanilla() {
        let mut h = HeaderMap::new();
        h.insert("host", "example.amazonaws.com".parse().unwrap());
        h.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        h.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
                .parse()
                .unwrap(),
        );
        verify(
            "GET",
            "/",
            "",
            &h,
            b"",
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        )
        .unwrap();
        assert!(verify(
            "GET",
            "/",
            "",
            &h,
            b"x",
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
        )
        .is_err());
        assert!(verify("GET", "/", "", &h, b"", "AKIDEXAMPLE", "wrong").is_err());
    }
}
