//! JWT verification (RFC 7519, RFC 8725 best practices) for one provider.
//!
//! The compact form is checked before any crypto: three base64url parts, a JSON header naming a
//! known `alg` that the provider allows, no `crit` extensions. The key is chosen by the header's
//! `kid` among keys whose type fits the algorithm, so an HS256 token can never be checked against
//! an RSA key's bytes. The signature is checked by the proxy's native crypto where it can
//! ([`crate::native`]: RS256/384/512, ES256/384), else by jwt-simple in the VM; the registered
//! claims (`exp`, `nbf`, `iat`, `iss`, `aud`) are checked here in both cases.

use crate::config::{Algorithm, Provider};
use crate::jwks::KeySet;
use crate::native::{self, NativeVerifier};
use jwt_simple::prelude::*;
use jwt_simple::reexports::ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use jwt_simple::JWTError;
use serde_json::{Map, Value};
use std::time::Duration as StdDuration;

/// Why a token was not accepted. The display text is what the client may see in
/// `error_description` (RFC 6750 3): the class of failure, never which key or claim value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the access token is malformed")]
    Malformed,
    #[error("the access token is too large")]
    TooLarge,
    #[error("the access token is invalid")]
    BadSignature,
    /// A `kid` no current key has; a refetch of the key set may help.
    #[error("the access token is invalid")]
    UnknownKey,
    /// `alg` not allowed for this provider (incl. `none`).
    #[error("the access token is invalid")]
    AlgorithmNotAllowed,
    #[error("the access token is invalid")]
    WrongIssuer,
    #[error("the access token is invalid")]
    WrongAudience,
    #[error("the access token expired")]
    Expired,
    #[error("the access token is not valid yet")]
    NotYetValid,
    #[error("the access token has no expiration time")]
    NoExpiration,
    #[error("the API key is invalid")]
    UnknownApiKey,
    /// A session cookie that does not open (tampered, foreign key, malformed).
    #[error("the session is invalid")]
    BadSession,
    #[error("the session expired")]
    SessionEnded,
}

impl Rejection {
    /// Whether this is about a browser session (which a new login can fix).
    pub fn is_session(self) -> bool {
        matches!(self, Self::BadSession | Self::SessionEnded)
    }

    /// Short reason for logs and metrics.
    pub fn code(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::BadSignature => "bad_signature",
            Self::UnknownKey => "unknown_kid",
            Self::AlgorithmNotAllowed => "algorithm",
            Self::WrongIssuer => "issuer",
            Self::WrongAudience => "audience",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::NoExpiration => "no_expiration",
            Self::UnknownApiKey => "unknown_api_key",
            Self::BadSession => "bad_session",
            Self::SessionEnded => "session_ended",
        }
    }
}

/// The parts of a JOSE header the plugin looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub alg: Algorithm,
    pub kid: Option<String>,
    /// Explicit type (`JWT`, `at+jwt`, ...), when the token has one.
    pub typ: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
    #[serde(default)]
    b64: Option<Value>,
    #[serde(default)]
    typ: Option<String>,
}

fn segments(token: &str) -> Result<[&str; 3], Rejection> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::Malformed);
    };
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(Rejection::Malformed);
    }
    Ok([header, payload, signature])
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, Rejection> {
    let bytes = Base64UrlSafeNoPadding::decode_to_vec(part, None).map_err(|_| Rejection::Malformed)?;
    // RFC 7515 4 and RFC 7519 7.2: the header and the claims set are JSON objects; serde alone
    // would also read a struct from an array (`["RS256"]`).
    kea_plugin_sdk::json::from_slice(&bytes).map_err(|_| Rejection::Malformed)
}

/// Parses the header. Unknown `alg` values (`none`, `HS1`, ...) are a rejection, not an error.
pub fn header(token: &str) -> Result<Header, Rejection> {
    let [header, _, _] = segments(token)?;
    // jwt-simple bounds the header too; this keeps hostile headers from being decoded at all.
    if header.len() > 4096 {
        return Err(Rejection::Malformed);
    }
    let raw: RawHeader = decode_json(header)?;
    // RFC 7515 4.1.11: critical extensions we do not understand make the token invalid; RFC 7797
    // unencoded payloads (`b64`) are not JWTs.
    if raw.crit.is_some() || raw.b64.is_some() {
        return Err(Rejection::Malformed);
    }
    // Explicit typing (RFC 8725 3.11): a `typ` other than JWT or `*+jwt` is another kind of token.
    if let Some(typ) = &raw.typ {
        let typ = typ.to_ascii_uppercase();
        if typ != "JWT" && !typ.ends_with("+JWT") {
            return Err(Rejection::Malformed);
        }
    }
    let alg = Algorithm::parse(&raw.alg).ok_or(Rejection::AlgorithmNotAllowed)?;
    Ok(Header {
        alg,
        kid: raw.kid,
        typ: raw.typ,
    })
}

/// The unverified `iss`, to pick among providers sharing a token source. Never trusted: the
/// chosen provider verifies the token, issuer included.
pub fn unverified_issuer(token: &str) -> Option<String> {
    let [_, payload, _] = segments(token).ok()?;
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    decode_json::<Iss>(payload).ok()?.iss
}

/// A verified token's claims.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub claims: Map<String, Value>,
    /// The payload segment, as received (base64url), for `payloadHeader`.
    pub payload: String,
    pub expires_at: Option<u64>,
    pub not_before: Option<u64>,
}

fn options(provider: &Provider, now_secs: u64) -> VerificationOptions {
    VerificationOptions {
        allowed_issuers: Some(HashSet::from([provider.issuer.clone()])),
        allowed_audiences: (!provider.audiences.is_empty())
            .then(|| provider.audiences.iter().cloned().collect::<HashSet<_>>()),
        time_tolerance: Some(Duration::from_secs(provider.clock_skew.as_secs())),
        artificial_time: Some(UnixTimeStamp::from_secs(now_secs)),
        accept_future: false,
        ..VerificationOptions::default()
    }
}

fn classify(error: &jwt_simple::Error) -> Rejection {
    match error.downcast_ref::<JWTError>() {
        Some(JWTError::TokenHasExpired) => Rejection::Expired,
        Some(JWTError::TokenNotValidYet | JWTError::ClockDrift) => Rejection::NotYetValid,
        Some(JWTError::RequiredIssuerMismatch | JWTError::RequiredIssuerMissing) => Rejection::WrongIssuer,
        Some(JWTError::RequiredAudienceMismatch | JWTError::RequiredAudienceMissing) => {
            Rejection::WrongAudience
        }
        Some(JWTError::TokenTooLong) => Rejection::TooLarge,
        Some(JWTError::InvalidSignature | JWTError::InvalidAuthenticationTag) => Rejection::BadSignature,
        _ => Rejection::Malformed,
    }
}

/// Checks the signature natively when the proxy can; `None` when it cannot (verify in the VM).
fn native_signature(
    native: &dyn NativeVerifier,
    alg: Algorithm,
    spki: &[u8],
    token: &str,
) -> Result<Option<bool>, Rejection> {
    let Some(hash) = native::hash_of(alg) else {
        return Ok(None);
    };
    let [header, payload, signature] = segments(token)?;
    let raw = Base64UrlSafeNoPadding::decode_to_vec(signature, None).map_err(|_| Rejection::Malformed)?;
    let signature = match alg {
        Algorithm::Es256 => native::ecdsa_der(&raw, 32),
        Algorithm::Es384 => native::ecdsa_der(&raw, 48),
        _ => Some(raw),
    };
    let Some(signature) = signature else {
        return Ok(Some(false));
    };
    let signing_input = token
        .get(..header.len() + 1 + payload.len())
        .ok_or(Rejection::Malformed)?;
    Ok(native.verify(hash, spki, &signature, signing_input.as_bytes()))
}

fn signature_checked(
    provider: &Provider,
    keys: &KeySet,
    token: &str,
    header: &Header,
    now_secs: u64,
    native: &dyn NativeVerifier,
) -> Result<(), Rejection> {
    if header.alg.is_hmac() {
        let secret = provider
            .hmac_secret
            .as_deref()
            .ok_or(Rejection::AlgorithmNotAllowed)?;
        let options = Some(options(provider, now_secs));
        let result = match header.alg {
            Algorithm::Hs256 => HS256Key::from_bytes(secret)
                .verify_token::<NoCustomClaims>(token, options)
                .map(drop),
            Algorithm::Hs384 => HS384Key::from_bytes(secret)
                .verify_token::<NoCustomClaims>(token, options)
                .map(drop),
            _ => HS512Key::from_bytes(secret)
                .verify_token::<NoCustomClaims>(token, options)
                .map(drop),
        };
        return result.map_err(|e| classify(&e));
    }
    let mut candidates = keys.candidates(header.alg, header.kid.as_deref()).peekable();
    if candidates.peek().is_none() {
        return Err(match &header.kid {
            Some(kid) if !keys.has_kid(kid) => Rejection::UnknownKey,
            _ => Rejection::BadSignature,
        });
    }
    let mut last = Rejection::BadSignature;
    // Without a `kid` every fitting key is a candidate; a few are enough for an issuer that
    // omits `kid`, and the bound keeps one forged token from costing dozens of RSA checks.
    let limit = if header.kid.is_some() { usize::MAX } else { 3 };
    for key in candidates.take(limit) {
        if let Some(spki) = key.material.spki_der() {
            match native_signature(native, header.alg, spki, token)? {
                Some(true) => return Ok(()),
                Some(false) => {
                    last = Rejection::BadSignature;
                    continue;
                }
                None => {}
            }
        }
        match key
            .material
            .verify(header.alg, token, options(provider, now_secs))
        {
            Ok(()) => return Ok(()),
            Err(error) => {
                last = classify(&error);
                // Claims failures do not depend on the key: no point trying the others.
                if last != Rejection::BadSignature && last != Rejection::Malformed {
                    return Err(last);
                }
            }
        }
    }
    Err(last)
}

/// Latest NumericDate accepted: 2106-02-07, the last second a 32-bit unsigned count can hold.
/// Larger values are someone's milliseconds or garbage, never a real expiry.
const MAX_NUMERIC_DATE: u64 = u32::MAX as u64;

fn seconds(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, Rejection> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    // NumericDate (RFC 7519 2): seconds, possibly with a fraction; never negative here.
    let secs = value
        .as_u64()
        .or_else(|| {
            value
                .as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        })
        .filter(|secs| *secs <= MAX_NUMERIC_DATE)
        .ok_or(Rejection::Malformed)?;
    Ok(Some(secs))
}

/// The registered claims (RFC 7519 4.1): types, time window with the provider's skew, issuer,
/// audience.
fn check_claims(
    provider: &Provider,
    claims: &Map<String, Value>,
    now_secs: u64,
) -> Result<Verified, Rejection> {
    let skew = provider.clock_skew.as_secs();
    let expires_at = seconds(claims, "exp")?;
    let not_before = seconds(claims, "nbf")?;
    if seconds(claims, "iat")?.is_some_and(|iat| iat > now_secs.saturating_add(skew)) {
        return Err(Rejection::NotYetValid);
    }
    if not_before.is_some_and(|nbf| now_secs.saturating_add(skew) < nbf) {
        return Err(Rejection::NotYetValid);
    }
    match expires_at {
        Some(exp) if now_secs > exp.saturating_add(skew) => return Err(Rejection::Expired),
        None if provider.require_expiration => return Err(Rejection::NoExpiration),
        _ => {}
    }
    // `sub` is a StringOrURI (RFC 7519 4.1.2); other types are malformed, not a subject.
    if claims.get("sub").is_some_and(|sub| !sub.is_string()) {
        return Err(Rejection::Malformed);
    }
    if claims.get("iss").and_then(Value::as_str) != Some(provider.issuer.as_str()) {
        return Err(Rejection::WrongIssuer);
    }
    if !provider.audiences.is_empty() {
        let accepted = |aud: &Value| {
            aud.as_str()
                .is_some_and(|aud| provider.audiences.iter().any(|a| a == aud))
        };
        let ok = match claims.get("aud") {
            Some(Value::Array(list)) => list.iter().any(accepted),
            Some(single) => accepted(single),
            None => false,
        };
        if !ok {
            return Err(Rejection::WrongAudience);
        }
    }
    Ok(Verified {
        claims: Map::new(),
        payload: String::new(),
        expires_at,
        not_before,
    })
}

/// Verifies `token` for `provider` at `now_secs`.
pub fn verify(
    provider: &Provider,
    keys: &KeySet,
    token: &str,
    header: &Header,
    now_secs: u64,
    native: &dyn NativeVerifier,
) -> Result<Verified, Rejection> {
    if !provider.algorithms.contains(&header.alg) {
        return Err(Rejection::AlgorithmNotAllowed);
    }
    signature_checked(provider, keys, token, header, now_secs, native)?;
    let [_, payload, _] = segments(token)?;
    let claims: Map<String, Value> = decode_json(payload)?;
    let window = check_claims(provider, &claims, now_secs)?;
    Ok(Verified {
        claims,
        payload: payload.to_owned(),
        ..window
    })
}

/// Whether a previously verified token is still inside its validity window.
pub fn still_valid(verified: &Verified, skew: StdDuration, now_secs: u64) -> Result<(), Rejection> {
    let skew = skew.as_secs();
    if verified
        .expires_at
        .is_some_and(|exp| now_secs > exp.saturating_add(skew))
    {
        return Err(Rejection::Expired);
    }
    if verified
        .not_before
        .is_some_and(|nbf| now_secs.saturating_add(skew) < nbf)
    {
        return Err(Rejection::NotYetValid);
    }
    Ok(())
}
