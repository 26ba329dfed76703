//! The HTTP side of key fetching: callouts for OIDC discovery and JWKS documents, and the checks
//! their answers must pass before they are used.

use crate::jwks::KeySet;
use kea_plugin_sdk::host::status_of;
use kea_plugin_sdk::{Buffer, HeaderMap, Host, HostError, HttpCall};
use serde_json::Value;
use std::time::Duration;

/// Splits an absolute `http(s)` URL into authority and path-with-query. Written by hand because
/// only these two parts are needed and a URL crate would add size to every plugin instance.
pub fn split_url(url: &str) -> Option<(&str, &str)> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let rest = rest.split('#').next()?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    let valid_authority = !authority.is_empty()
        && !authority.contains('@')
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
    if !valid_authority || path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return None;
    }
    Some((authority, if path.starts_with('?') { "/" } else { path }))
}

/// The discovery document URL of an issuer (OpenID Connect Discovery 1.0 section 4).
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Starts a `GET` of `url` through `cluster`.
pub fn get(host: &impl Host, cluster: &str, url: &str, timeout: Duration) -> Result<u32, HostError> {
    let (authority, path) = split_url(url).ok_or(HostError::BadArgument)?;
    host.dispatch_http_call(&HttpCall {
        cluster,
        headers: vec![
            (":method", "GET"),
            (":path", path),
            (":authority", authority),
            ("accept", "application/json"),
            ("user-agent", "kea-auth"),
        ],
        body: None,
        timeout,
    })
}

/// Why a fetched document was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("no answer (connection failure or timeout)")]
    NoAnswer,
    #[error("status {0}")]
    Status(u16),
    #[error("document of {0} bytes exceeds the limit of {1}")]
    TooLarge(usize, usize),
    #[error("invalid document: {0}")]
    Invalid(String),
}

/// A callout answer read from the host.
#[derive(Debug)]
pub struct Answer {
    pub body: Vec<u8>,
    /// `max-age` of the answer's `Cache-Control`, if any.
    pub max_age: Option<Duration>,
}

/// Reads the current callout response; checks status and size before copying the body, so a
/// hostile 50 MB answer is never brought into the VM.
pub fn read_answer(host: &impl Host, body_size: usize, max_bytes: usize) -> Result<Answer, FetchError> {
    let headers = host.headers(HeaderMap::CallResponseHeaders);
    let status = status_of(&headers).ok_or(FetchError::NoAnswer)?;
    if status != 200 {
        return Err(FetchError::Status(status));
    }
    if body_size > max_bytes {
        return Err(FetchError::TooLarge(body_size, max_bytes));
    }
    let body = host
        .buffer(Buffer::CallResponseBody, 0, body_size)
        .unwrap_or_default();
    let max_age = headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("cache-control"))
        .find_map(|(_, value)| max_age(&String::from_utf8_lossy(value)));
    Ok(Answer { body, max_age })
}

fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|directive| {
        let (name, value) = directive.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        value
            .trim()
            .trim_matches('"')
            .parse()
            .ok()
            .map(Duration::from_secs)
    })
}

/// Checks a discovery document and returns its `jwks_uri`. Its `issuer` must be exactly the
/// configured one (OpenID Connect Discovery 1.0 section 4.3), which defeats a mix-up of providers.
pub fn jwks_uri_from_discovery(body: &[u8], issuer: &str) -> Result<String, FetchError> {
    let document: Value =
        serde_json::from_slice(body).map_err(|e| FetchError::Invalid(format!("not JSON: {e}")))?;
    if document.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return Err(FetchError::Invalid(
            "issuer does not match the configured issuer".into(),
        ));
    }
    let uri = document
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| FetchError::Invalid("no jwks_uri".into()))?;
    split_url(uri).ok_or_else(|| FetchError::Invalid("jwks_uri is not an absolute http(s) URL".into()))?;
    Ok(uri.to_owned())
}

/// Checks a JWKS answer: JSON, a key set, at least one usable key.
pub fn check_jwks(body: &[u8], max_keys: usize) -> Result<KeySet, FetchError> {
    let keys = KeySet::parse_bytes(body, max_keys).map_err(|e| FetchError::Invalid(e.to_string()))?;
    if keys.is_empty() {
        return Err(FetchError::Invalid("no usable signing key".into()));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        assert_eq!(
            split_url("https://idp.example.com/jwks?x=1"),
            Some(("idp.example.com", "/jwks?x=1"))
        );
        assert_eq!(split_url("http://127.0.0.1:8080"), Some(("127.0.0.1:8080", "/")));
        assert_eq!(split_url("http://h?x"), Some(("h", "/")));
        assert_eq!(split_url("ftp://h/x"), None);
        assert_eq!(split_url("https://user@h/x"), None);
        assert_eq!(split_url("https:///x"), None);
        assert_eq!(split_url("https://h/a b"), None);
    }

    #[test]
    fn discovery_issuer_must_match() {
        let doc = br#"{"issuer": "https://idp", "jwks_uri": "https://idp/keys"}"#;
        assert_eq!(
            jwks_uri_from_discovery(doc, "https://idp").unwrap(),
            "https://idp/keys"
        );
        assert!(jwks_uri_from_discovery(doc, "https://other").is_err());
        assert!(jwks_uri_from_discovery(br#"{"issuer": "https://idp"}"#, "https://idp").is_err());
        assert!(jwks_uri_from_discovery(b"<html>", "https://idp").is_err());
    }

    #[test]
    fn reads_max_age() {
        assert_eq!(max_age("public, max-age=300"), Some(Duration::from_secs(300)));
        assert_eq!(max_age("no-cache"), None);
    }
}
