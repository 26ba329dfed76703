//! Starting a login (authorization request with `state`, `nonce` and PKCE S256, RFC 7636) and
//! checking the callback against the login cookie that started it.
//!
//! The login cookie is sealed like a session, scoped to the callback path, and named after the
//! beginning of its `state`, so logins in several tabs do not overwrite each other. A callback is
//! accepted only with the cookie whose sealed `state` equals the query's (CSRF defence, RFC 6749
//! 10.12); the cookie is cleared by the callback's answer, so the same browser replaying the
//! callback finds none (a copied cookie replayed elsewhere meets the provider's single-use code).

use crate::sources::RequestHeaders;
use crate::sso::config::{Endpoints, Sso};
use crate::sso::seal::{self, Purpose};
use crate::sso::session::{clear_cookie, set_cookie};
use jwt_simple::reexports::ct_codecs::{Base64UrlSafeNoPadding, Encoder};
use kea_plugin_sdk::Host;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a login cookie holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    pub state: String,
    pub nonce: String,
    /// PKCE code verifier.
    pub verifier: String,
    /// The redirect URI sent in the authorization request (the token request repeats it).
    pub redirect_uri: String,
    /// Where the browser goes after the login: a local path, or an absolute URL on a host the
    /// session cookie covers.
    pub return_to: String,
    /// Seconds since the epoch after which the login is void.
    pub exp: u64,
}

/// Why a callback was refused; the display text is what the browser sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("the callback has no state parameter")]
    NoState,
    #[error("no login is in progress for this state (it expired, finished already, or started in another browser)")]
    UnknownState,
    #[error("the callback has no authorization code")]
    NoCode,
    #[error("the identity provider refused the login: {0}")]
    Provider(String),
}

/// Bytes of randomness in a `state` (and `nonce`): 128 bits, 22 base64url characters.
const STATE_BYTES: usize = 16;

fn is_issued_state(state: &str) -> bool {
    state.len() == 22
        && state
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Longest path a login returns to; longer ones return to `/` (the login cookie must stay under
/// the 4 KB browsers keep).
const MAX_RETURN_BYTES: usize = 2048;

/// The login cookie's name for a `state`.
pub fn cookie_name(sso: &Sso, state: &str) -> String {
    let prefix: String = state.chars().take(8).collect();
    format!("{}_login_{prefix}", sso.cookie.name)
}

fn pkce_challenge(verifier: &str) -> String {
    Base64UrlSafeNoPadding::encode_to_string(Sha256::digest(verifier.as_bytes())).unwrap_or_default()
}

/// Percent-encoding for query values and form bodies (`application/x-www-form-urlencoded`).
pub fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The query parameters of a request path.
pub fn query_params(path: &str) -> Vec<(String, String)> {
    let query = path.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `https` or `http`, as the client reached the gateway.
pub fn request_scheme(headers: &RequestHeaders) -> &'static str {
    let forwarded = headers.get("x-forwarded-proto");
    let scheme = forwarded.or_else(|| headers.get(":scheme")).unwrap_or_default();
    if scheme.eq_ignore_ascii_case("http") {
        "http"
    } else {
        "https"
    }
}

/// A path the browser may be sent back to: local, and never read as another host
/// (`//evil.example`, `/\evil.example`); anything else becomes `/`.
pub fn safe_local_path(path: &str) -> &str {
    let bytes = path.as_bytes();
    let local = bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && path.len() <= MAX_RETURN_BYTES
        && !path.chars().any(|c| c.is_control() || c == ' ');
    if local {
        path
    } else {
        "/"
    }
}

/// Whether `host` is the cookie domain or one of its subdomains.
fn covered_by(domain: &str, host: &str) -> bool {
    let host = host.split(':').next().unwrap_or_default().to_ascii_lowercase();
    let domain = domain.trim_start_matches('.').to_ascii_lowercase();
    host == domain || host.ends_with(&format!(".{domain}"))
}

/// A started login: where the browser goes and the cookie that remembers it.
#[derive(Debug)]
pub struct Started {
    pub location: String,
    pub set_cookie: String,
}

/// Starts a login for the current request.
pub fn start(
    host: &impl Host,
    sso: &Sso,
    endpoints: &Endpoints,
    headers: &RequestHeaders,
    now: u64,
) -> Option<Started> {
    let state = seal::random_text(host, STATE_BYTES)?;
    let nonce = seal::random_text(host, STATE_BYTES)?;
    let verifier = seal::random_text(host, 32)?;
    let scheme = request_scheme(headers);
    let authority = headers.get(":authority").unwrap_or_default();
    let redirect_uri = sso
        .redirect_uri
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{authority}{}", sso.callback_path));
    let path = headers.get(":path").unwrap_or_default();
    let local = safe_local_path(&path);
    // With a fixed redirect URI on another host, return to this host explicitly, but only to one
    // the session cookie covers (else the session would not be seen there).
    let same_host =
        crate::fetch::split_url(&redirect_uri).is_some_and(|(a, _)| a.eq_ignore_ascii_case(&authority));
    let valid_authority = crate::fetch::split_url(&format!("{scheme}://{authority}/")).is_some();
    let return_to = match &sso.cookie.domain {
        Some(domain) if !same_host && valid_authority && covered_by(domain, &authority) => {
            format!("{scheme}://{authority}{local}")
        }
        _ => local.to_owned(),
    };
    let login = LoginState {
        state: state.clone(),
        nonce: nonce.clone(),
        verifier: verifier.clone(),
        redirect_uri: redirect_uri.clone(),
        return_to,
        exp: now + sso.login_timeout.as_secs(),
    };
    let name = cookie_name(sso, &state);
    let sealed = seal::seal(
        host,
        sso,
        Purpose::Login,
        &name,
        &serde_json::to_vec(&login).ok()?,
    )?;
    let set_cookie = set_cookie(
        &sso.cookie,
        &name,
        &sealed,
        &sso.callback_path,
        sso.login_timeout.as_secs(),
    );
    let challenge = pkce_challenge(&verifier);
    let query = form(&[
        ("response_type", "code"),
        ("client_id", &sso.client_id),
        ("redirect_uri", &redirect_uri),
        ("scope", &sso.scope),
        ("state", &state),
        ("nonce", &nonce),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let separator = if endpoints.authorization.contains('?') {
        '&'
    } else {
        '?'
    };
    Some(Started {
        location: format!("{}{separator}{query}", endpoints.authorization),
        set_cookie,
    })
}

/// A callback that passed the state check.
#[derive(Debug)]
pub struct Callback {
    pub code: String,
    pub login: LoginState,
    /// Clears the login cookie.
    pub clear_cookie: String,
}

/// Checks a callback request: an error from the provider, the state against its login cookie,
/// the code. On failure the login cookie (if any) is cleared too.
pub fn callback(
    sso: &Sso,
    headers: &RequestHeaders,
    now: u64,
) -> Result<Callback, (CallbackError, Option<String>)> {
    let path = headers.get(":path").unwrap_or_default();
    let params = query_params(&path);
    let state = param(&params, "state").ok_or((CallbackError::NoState, None))?;
    // Only states this plugin could have issued name a cookie (the name goes into `Set-Cookie`).
    if !is_issued_state(state) {
        return Err((CallbackError::UnknownState, None));
    }
    let name = cookie_name(sso, state);
    let clear = clear_cookie(&sso.cookie, &name, &sso.callback_path);
    let login = headers
        .cookies()
        .filter(|(n, _)| *n == name)
        .find_map(|(_, sealed)| {
            let plain = seal::open(sso, Purpose::Login, &name, &sealed).ok()?;
            kea_plugin_sdk::json::from_slice::<LoginState>(&plain).ok()
        })
        .filter(|login| now < login.exp && constant_time_eq(login.state.as_bytes(), state.as_bytes()))
        .ok_or_else(|| (CallbackError::UnknownState, Some(clear.clone())))?;
    if let Some(error) = param(&params, "error") {
        // RFC 6749 4.1.2.1 error codes are ASCII words; anything else is not echoed.
        let code = if error.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            error.to_owned()
        } else {
            "error".to_owned()
        };
        return Err((CallbackError::Provider(code), Some(clear)));
    }
    let code = param(&params, "code").ok_or_else(|| (CallbackError::NoCode, Some(clear.clone())))?;
    Ok(Callback {
        code: code.to_owned(),
        login,
        clear_cookie: clear,
    })
}

/// Equality whose time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_paths_stay_local() {
        assert_eq!(safe_local_path("/orders?x=1"), "/orders?x=1");
        assert_eq!(safe_local_path("//evil.example/x"), "/");
        assert_eq!(safe_local_path("/\\evil.example"), "/");
        assert_eq!(safe_local_path("https://evil.example/"), "/");
        assert_eq!(safe_local_path("/a\r\nLocation: x"), "/");
        assert_eq!(safe_local_path(""), "/");
        assert_eq!(safe_local_path(&format!("/{}", "a".repeat(3000))), "/");
    }

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn only_issued_states_name_a_cookie() {
        assert!(is_issued_state("n-8gC6YCr-12v7ioxOfKmQ"));
        assert!(!is_issued_state("x;Path=/"));
        assert!(!is_issued_state("n-8gC6YCr-12v7ioxOf\r\n"));
        assert!(!is_issued_state("short"));
    }

    #[test]
    fn cookie_domains_cover_subdomains_only() {
        assert!(covered_by("example.com", "api.example.com:8443"));
        assert!(covered_by(".example.com", "example.com"));
        assert!(!covered_by("example.com", "evilexample.com"));
        assert!(!covered_by("example.com", "example.com.evil"));
    }
}
