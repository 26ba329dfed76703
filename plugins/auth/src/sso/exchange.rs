//! Token-endpoint calls (authorization code and refresh token grants, RFC 6749 4.1.3 and 6) and
//! what their answers must pass: the ID token is verified like any token of the provider, with
//! the client as audience, plus the OpenID Connect checks (`nonce`, `azp`, and on refresh the
//! same `sub`, OpenID Connect Core 3.1.3.7 and 12.2).

use crate::fetch::{self, split_url, FetchError};
use crate::jwks::KeySet;
use crate::native::NativeVerifier;
use crate::sso::config::{ClientAuth, Sso, PROTOCOL_CLAIMS};
use crate::sso::login::{constant_time_eq, form};
use crate::sso::session::Session;
use crate::verify::{self, Rejection};
use jwt_simple::reexports::ct_codecs::{Base64, Encoder};
use kea_plugin_sdk::callout::AnswerError;
use kea_plugin_sdk::{Host, HostError, HttpCall};
use serde::Deserialize;
use serde_json::{Map, Value};

/// A successful token-endpoint answer (RFC 6749 5.1).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenAnswer {
    pub access_token: String,
    pub token_type: String,
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub scope: Option<String>,
}

/// Why a token-endpoint exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// No answer, timeout, or the provider failed (5xx): retry later.
    #[error("the identity provider is unreachable ({0})")]
    Unavailable(String),
    /// The provider refused the grant (code used or expired, refresh token revoked).
    #[error("the identity provider refused the grant (status {0})")]
    Refused(u16),
    #[error("the identity provider's answer is invalid: {0}")]
    Invalid(String),
    #[error("the ID token is invalid ({0})")]
    IdToken(&'static str),
    /// The ID token names a key not (yet) in the key set.
    #[error("the ID token's signing key is unknown")]
    UnknownKey,
}

/// Starts a token-endpoint `POST` with the grant's form fields plus client authentication.
pub fn call(
    host: &impl Host,
    sso: &Sso,
    token_endpoint: &str,
    fields: &[(&str, &str)],
    timeout: std::time::Duration,
) -> Result<u32, HostError> {
    let (authority, path) = split_url(token_endpoint).ok_or(HostError::BadArgument)?;
    let mut pairs: Vec<(&str, &str)> = fields.to_vec();
    let mut authorization = None;
    match (&sso.client_secret, sso.client_auth) {
        (Some(secret), ClientAuth::Basic) => {
            // RFC 6749 2.3.1: id and secret are form-encoded before they are joined.
            let credentials = format!("{}:{}", form_component(&sso.client_id), form_component(secret));
            authorization = Some(format!(
                "Basic {}",
                Base64::encode_to_string(credentials.as_bytes()).map_err(|_| HostError::BadArgument)?
            ));
            pairs.push(("client_id", &sso.client_id));
        }
        (Some(secret), ClientAuth::Post) => {
            pairs.push(("client_id", &sso.client_id));
            pairs.push(("client_secret", secret));
        }
        (None, _) => pairs.push(("client_id", &sso.client_id)),
    }
    let body = form(&pairs);
    let mut headers = vec![
        (":method", "POST"),
        (":path", path),
        (":authority", authority),
        ("content-type", "application/x-www-form-urlencoded"),
        ("accept", "application/json"),
        ("user-agent", "kea-auth"),
    ];
    if let Some(value) = &authorization {
        headers.push(("authorization", value));
    }
    host.dispatch_http_call(&HttpCall {
        cluster: &sso.cluster,
        headers,
        body: Some(body.as_bytes()),
        timeout,
    })
}

fn form_component(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Reads the current callout answer as a token answer.
pub fn read(host: &impl Host, sso: &Sso, body_size: usize) -> Result<TokenAnswer, ExchangeError> {
    let answer = fetch::read_answer(host, body_size, sso.max_response_bytes).map_err(|e| match e {
        FetchError::Answer(AnswerError::Status(status @ 400..=499)) => ExchangeError::Refused(status),
        FetchError::Answer(AnswerError::Status(status)) => {
            ExchangeError::Unavailable(format!("status {status}"))
        }
        FetchError::Answer(AnswerError::NoAnswer) => ExchangeError::Unavailable("no answer".into()),
        other => ExchangeError::Invalid(other.to_string()),
    })?;
    let tokens: TokenAnswer = kea_plugin_sdk::json::from_slice(&answer.body)
        .map_err(|e| ExchangeError::Invalid(format!("not a token answer: {e}")))?;
    if !tokens.token_type.eq_ignore_ascii_case("bearer") {
        return Err(ExchangeError::Invalid(format!(
            "token_type {:?} is not Bearer",
            tokens.token_type
        )));
    }
    Ok(tokens)
}

/// Verifies an ID token; `nonce` is checked when given (the code grant), `subject` when given
/// (a refresh must not change the user).
pub fn verify_id_token(
    sso: &Sso,
    keys: &KeySet,
    id_token: &str,
    now: u64,
    native: &dyn NativeVerifier,
    nonce: Option<&str>,
    subject: Option<&str>,
) -> Result<Map<String, Value>, ExchangeError> {
    let header = verify::header(id_token).map_err(|r| ExchangeError::IdToken(r.code()))?;
    // An ID token is untyped or `JWT`; an `at+jwt` (or any other explicit type) is another kind
    // of token that must not pass for one (RFC 8725 3.11).
    if header
        .typ
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("jwt"))
    {
        return Err(ExchangeError::IdToken("typ"));
    }
    let verified = match verify::verify(&sso.id_tokens, keys, id_token, &header, now, native) {
        Ok(verified) => verified,
        Err(Rejection::UnknownKey) => return Err(ExchangeError::UnknownKey),
        Err(rejection) => return Err(ExchangeError::IdToken(rejection.code())),
    };
    let claims = verified.claims;
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or(ExchangeError::IdToken("no_subject"))?;
    if claims.get("iat").is_none() {
        return Err(ExchangeError::IdToken("no_iat"));
    }
    // OpenID Connect Core 3.1.3.7 (3): audiences other than this client are not trusted here.
    if let Some(Value::Array(audiences)) = claims.get("aud") {
        if audiences
            .iter()
            .any(|a| a.as_str() != Some(sso.client_id.as_str()))
        {
            return Err(ExchangeError::IdToken("audience"));
        }
    }
    if let Some(azp) = claims.get("azp") {
        if azp.as_str() != Some(sso.client_id.as_str()) {
            return Err(ExchangeError::IdToken("azp"));
        }
    }
    if let Some(expected) = nonce {
        let matches = claims
            .get("nonce")
            .and_then(Value::as_str)
            .is_some_and(|n| constant_time_eq(n.as_bytes(), expected.as_bytes()));
        if !matches {
            return Err(ExchangeError::IdToken("nonce"));
        }
    }
    if subject.is_some_and(|s| s != sub) {
        return Err(ExchangeError::IdToken("subject_changed"));
    }
    Ok(claims)
}

/// The claims a session keeps from an ID token.
pub fn session_claims(sso: &Sso, mut claims: Map<String, Value>) -> Map<String, Value> {
    if sso.session_claims.is_empty() {
        for name in PROTOCOL_CLAIMS {
            claims.remove(name);
        }
        claims
    } else {
        claims
            .into_iter()
            .filter(|(name, _)| {
                name == "sub" || name == "iss" || sso.session_claims.iter().any(|k| k == name)
            })
            .collect()
    }
}

/// When the tokens of an answer expire: `expires_in`, else the ID token's `exp`, else in 5
/// minutes (the session then refreshes or re-authenticates soon).
pub fn expiry(answer: &TokenAnswer, id_claims: Option<&Map<String, Value>>, now: u64) -> u64 {
    answer
        .expires_in
        .map(|secs| now.saturating_add(secs))
        .or_else(|| id_claims.and_then(|c| c.get("exp")).and_then(Value::as_u64))
        .unwrap_or(now + 300)
}

/// A new session from a code-grant answer whose ID token verified to `id_claims`.
pub fn new_session(
    sso: &Sso,
    sid: String,
    answer: &TokenAnswer,
    id_claims: Map<String, Value>,
    now: u64,
) -> Session {
    let exp = expiry(answer, Some(&id_claims), now);
    let sub = id_claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Session {
        sid,
        sub,
        scope: answer.scope.clone().unwrap_or_else(|| sso.scope.clone()),
        at: sso.forward_access_token.then(|| answer.access_token.clone()),
        rt: answer.refresh_token.clone(),
        exp,
        end: now.saturating_add(sso.session_lifetime.as_secs()),
        claims: session_claims(sso, id_claims),
    }
}

/// The session after a refresh: new tokens, and new claims when a new ID token came.
pub fn refreshed(
    sso: &Sso,
    old: &Session,
    answer: &TokenAnswer,
    id_claims: Option<Map<String, Value>>,
    now: u64,
) -> Session {
    let exp = expiry(answer, id_claims.as_ref(), now);
    Session {
        sid: old.sid.clone(),
        sub: old.sub.clone(),
        scope: answer.scope.clone().unwrap_or_else(|| old.scope.clone()),
        at: sso.forward_access_token.then(|| answer.access_token.clone()),
        // RFC 6749 6: without a new refresh token the old one stays valid.
        rt: answer.refresh_token.clone().or_else(|| old.rt.clone()),
        exp,
        end: old.end,
        claims: id_claims.map_or_else(|| old.claims.clone(), |c| session_claims(sso, c)),
    }
}
