//! The HTTP side of key fetching: callouts for OIDC discovery and JWKS documents, and the checks
//! their answers must pass before they are used.

use crate::jwks::KeySet;
use crate::sso::config::Endpoints;
use kea_plugin_sdk::callout::{AnswerError, CallAnswer};
pub use kea_plugin_sdk::host::split_url;
use kea_plugin_sdk::{Host, HostError, HttpCall};
use serde_json::Value;
use std::time::Duration;

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

/// Why a fetched document was not used: its answer (no answer, a status, too large), or what
/// it said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Answer(#[from] AnswerError),
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

/// Reads the current callout response: a 200 whose body is within `max_bytes` (checked before the
/// body is copied, so a hostile 50 MB answer never enters the VM), with its `max-age`.
pub fn read_answer(host: &impl Host, body_size: usize, max_bytes: usize) -> Result<Answer, FetchError> {
    let answer = CallAnswer::read(host, body_size)?.ok()?;
    Ok(Answer {
        body: answer.body(host, max_bytes)?,
        max_age: answer.max_age(),
    })
}

/// What a discovery document says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    pub jwks_uri: String,
    /// Authorization, token and end-session endpoints, when the document names the first two.
    pub endpoints: Option<Endpoints>,
}

/// Checks a discovery document. Its `issuer` must be exactly the configured one (OpenID Connect
/// Discovery 1.0 section 4.3), which defeats a mix-up of providers; every URL used must be an
/// absolute http(s) URL.
pub fn discovery(body: &[u8], issuer: &str) -> Result<Discovered, FetchError> {
    let document: Value =
        serde_json::from_slice(body).map_err(|e| FetchError::Invalid(format!("not JSON: {e}")))?;
    if document.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return Err(FetchError::Invalid(
            "issuer does not match the configured issuer".into(),
        ));
    }
    let url = |name: &str| -> Result<Option<String>, FetchError> {
        match document.get(name).and_then(Value::as_str) {
            None => Ok(None),
            Some(url) if split_url(url).is_some() => Ok(Some(url.to_owned())),
            Some(_) => Err(FetchError::Invalid(format!(
                "{name} is not an absolute http(s) URL"
            ))),
        }
    };
    let jwks_uri = url("jwks_uri")?.ok_or_else(|| FetchError::Invalid("no jwks_uri".into()))?;
    let endpoints = match (url("authorization_endpoint")?, url("token_endpoint")?) {
        (Some(authorization), Some(token)) => Some(Endpoints {
            authorization,
            token,
            end_session: url("end_session_endpoint")?,
        }),
        _ => None,
    };
    Ok(Discovered { jwks_uri, endpoints })
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
    fn discovery_issuer_must_match() {
        let doc = br#"{"issuer": "https://idp", "jwks_uri": "https://idp/keys"}"#;
        assert_eq!(
            discovery(doc, "https://idp").unwrap().jwks_uri,
            "https://idp/keys"
        );
        assert_eq!(discovery(doc, "https://idp").unwrap().endpoints, None);
        assert!(discovery(doc, "https://other").is_err());
        assert!(discovery(br#"{"issuer": "https://idp"}"#, "https://idp").is_err());
        assert!(discovery(b"<html>", "https://idp").is_err());
        let full = br#"{"issuer": "https://idp", "jwks_uri": "https://idp/keys",
            "authorization_endpoint": "https://idp/auth", "token_endpoint": "https://idp/token",
            "end_session_endpoint": "https://idp/logout"}"#;
        let endpoints = discovery(full, "https://idp").unwrap().endpoints.unwrap();
        assert_eq!(endpoints.token, "https://idp/token");
        assert_eq!(endpoints.end_session.as_deref(), Some("https://idp/logout"));
        let bad = br#"{"issuer": "https://idp", "jwks_uri": "https://idp/keys",
            "authorization_endpoint": "javascript:alert(1)", "token_endpoint": "https://idp/token"}"#;
        assert!(discovery(bad, "https://idp").is_err());
    }

    #[test]
    fn reads_an_answer_with_its_lifetime_within_the_limit() {
        let host = kea_plugin_sdk::mock::MockHost::new();
        host.answer_call(200, &[("cache-control", "public, max-age=300")], b"{}");
        let answer = read_answer(&host, 2, 2).unwrap();
        assert_eq!(
            (answer.body, answer.max_age),
            (b"{}".to_vec(), Some(Duration::from_secs(300)))
        );
        assert_eq!(
            read_answer(&host, 2, 1).unwrap_err(),
            FetchError::Answer(AnswerError::TooLarge(2, 1))
        );
        host.answer_call(404, &[], b"");
        assert_eq!(
            read_answer(&host, 0, 1).unwrap_err(),
            FetchError::Answer(AnswerError::Status(404))
        );
    }
}
