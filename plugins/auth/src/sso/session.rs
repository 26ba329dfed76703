//! The session a browser carries: sealed into one or more cookies, so any gateway replica can read
//! it and none has to store it.
//!
//! A sealed session longer than one cookie holds is split: `<name>` carries `<count>.<part 0>`,
//! `<name>.1` ... `<name>.<count-1>` the rest. Each cookie stays under the 4096 bytes browsers
//! guarantee (RFC 6265 6.1).

use crate::sources::RequestHeaders;
use crate::sso::config::{CookieConfig, Sso};
use crate::sso::seal::{self, OpenError, Purpose};
use kea_plugin_sdk::Host;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Most same-name session cookies tried per request.
const MAX_CANDIDATES: usize = 3;

/// Bytes of sealed text per cookie (name, attributes and the count prefix fit in the rest).
const CHUNK_BYTES: usize = 3800;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Random session id; upstreams and audit records see only its hash.
    pub sid: String,
    pub sub: String,
    /// ID-token claims kept for rules and claim headers.
    #[serde(default)]
    pub claims: Map<String, Value>,
    /// Granted scopes, space-separated.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// Access token, kept only when it is forwarded upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// Refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rt: Option<String>,
    /// When the tokens behind the session expire (seconds since the epoch): refresh before.
    pub exp: u64,
    /// When the session ends whatever the refreshes.
    pub end: u64,
}

impl Session {
    /// The id upstreams see (`x-kea-session`): a hash, so the header cannot be replayed as a
    /// cookie and logs hold no secret.
    pub fn public_id(&self) -> String {
        let digest = Sha256::digest(self.sid.as_bytes());
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }
}

/// Why a session cookie was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("the session ended")]
    Ended,
}

/// The session cookies a request carries.
#[derive(Debug, Default)]
pub struct Presented {
    /// Sealed sessions, reassembled from their chunks. Usually one; a browser may hold two
    /// cookies of the same name (another `Domain` or `Path`), and each is tried in turn.
    pub candidates: Vec<String>,
    /// Names of every session cookie present (to clear or remove them).
    pub names: Vec<String>,
    /// Names of login cookies present (never forwarded upstream either).
    pub login_names: Vec<String>,
}

impl Presented {
    /// Every cookie of the plugin's the request carries.
    pub fn all_names(&self) -> impl Iterator<Item = &String> {
        self.names.iter().chain(&self.login_names)
    }
}

fn chunk_name(base: &str, index: usize) -> String {
    if index == 0 {
        base.to_owned()
    } else {
        format!("{base}.{index}")
    }
}

/// Reads the session (and login) cookies of a request: the one parse of `Cookie` per request.
pub fn presented(headers: &RequestHeaders, cookie: &CookieConfig) -> Presented {
    let mut found = Presented::default();
    let mut heads: Vec<String> = Vec::new();
    let mut parts: Vec<(usize, String)> = Vec::new();
    let prefix = format!("{}.", cookie.name);
    let login = format!("{}_login_", cookie.name);
    for (name, value) in headers.cookies() {
        if name.starts_with(&login) {
            if !found.login_names.contains(&name) {
                found.login_names.push(name);
            }
            continue;
        }
        let index = if name == cookie.name {
            Some(0)
        } else if let Some(chunk) = name.strip_prefix(&prefix) {
            chunk.parse::<usize>().ok()
        } else {
            continue;
        };
        if !found.names.contains(&name) {
            found.names.push(name);
        }
        let Some(index) = index.filter(|i| *i < cookie.max_chunks as usize) else {
            continue;
        };
        if index == 0 {
            // A few same-name cookies are legitimate (another Domain or Path); hundreds are an
            // attempt to make the gateway decrypt each.
            if heads.len() < MAX_CANDIDATES {
                heads.push(value);
            }
        } else if !parts.iter().any(|(i, _)| *i == index) {
            parts.push((index, value));
        }
    }
    for head in heads {
        let Some((count, first)) = head.split_once('.') else {
            continue;
        };
        let count = match count.parse::<usize>() {
            Ok(n) if (1..=cookie.max_chunks as usize).contains(&n) => n,
            _ => continue,
        };
        let mut sealed = first.to_owned();
        let complete = (1..count).all(|index| match parts.iter().find(|(i, _)| *i == index) {
            Some((_, part)) => {
                sealed.push_str(part);
                true
            }
            None => false,
        });
        if complete {
            found.candidates.push(sealed);
        }
    }
    found
}

/// Opens a sealed session and checks that it has not ended.
pub fn open(sso: &Sso, sealed: &str, now: u64) -> Result<Session, SessionError> {
    let plain = seal::open(sso, Purpose::Session, &sso.cookie.name, sealed)?;
    let session: Session =
        kea_plugin_sdk::json::from_slice(&plain).map_err(|_| SessionError::Open(OpenError::Malformed))?;
    if now >= session.end {
        return Err(SessionError::Ended);
    }
    Ok(session)
}

/// `Set-Cookie` attributes shared by every cookie the plugin sets.
fn attributes(cookie: &CookieConfig, path: &str, max_age: u64) -> String {
    let mut text = format!("; Path={path}; Max-Age={max_age}; HttpOnly");
    if cookie.secure {
        text.push_str("; Secure");
    }
    // Lax, not Strict: the provider sends the browser back with a cross-site redirect, on which
    // Strict cookies are not sent (the login would never complete).
    text.push_str("; SameSite=Lax");
    if let Some(domain) = &cookie.domain {
        text.push_str("; Domain=");
        text.push_str(domain);
    }
    text
}

pub fn set_cookie(cookie: &CookieConfig, name: &str, value: &str, path: &str, max_age: u64) -> String {
    format!("{name}={value}{}", attributes(cookie, path, max_age))
}

/// Clears a cookie the browser holds.
pub fn clear_cookie(cookie: &CookieConfig, name: &str, path: &str) -> String {
    set_cookie(cookie, name, "", path, 0)
}

/// Seals a session (`None` when there is no key or no randomness).
pub fn seal_session(host: &impl Host, sso: &Sso, session: &Session) -> Option<String> {
    let plain = serde_json::to_vec(session).ok()?;
    seal::seal(host, sso, Purpose::Session, &sso.cookie.name, &plain)
}

/// How long the browser keeps the cookie of `session`: its remaining lifetime, or without a
/// refresh token its tokens' (the session cannot outlive them).
pub fn max_age(session: &Session, now: u64) -> u64 {
    let until = if session.rt.is_some() {
        session.end
    } else {
        session.end.min(session.exp)
    };
    until.saturating_sub(now)
}

/// Seals `session` into `Set-Cookie` values, clearing chunks of an older, longer session.
/// `None` when the session is too large for `maxChunks` cookies or cannot be sealed.
pub fn cookies_for(
    host: &impl Host,
    sso: &Sso,
    session: &Session,
    now: u64,
    previous: &[String],
) -> Option<Vec<String>> {
    let sealed = seal_session(host, sso, session)?;
    set_cookies(sso, &sealed, max_age(session, now), previous)
}

/// `Set-Cookie` values carrying an already sealed session.
pub fn set_cookies(sso: &Sso, sealed: &str, max_age: u64, previous: &[String]) -> Option<Vec<String>> {
    let parts: Vec<&str> = sealed
        .as_bytes()
        .chunks(CHUNK_BYTES)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    if parts.len() > sso.cookie.max_chunks as usize {
        log::warn!(
            "kea-auth: a session of {} bytes needs more than {} cookies; keep fewer claims (sso.sessionClaims)",
            sealed.len(),
            sso.cookie.max_chunks
        );
        return None;
    }
    let cookie = &sso.cookie;
    let mut headers = Vec::with_capacity(parts.len());
    for (index, part) in parts.iter().enumerate() {
        let value = if index == 0 {
            format!("{}.{part}", parts.len())
        } else {
            (*part).to_owned()
        };
        headers.push(set_cookie(
            cookie,
            &chunk_name(&cookie.name, index),
            &value,
            &cookie.path,
            max_age,
        ));
    }
    for name in previous {
        let still_used = (0..parts.len()).any(|i| chunk_name(&cookie.name, i) == *name);
        if !still_used {
            headers.extend(clearing_variants(cookie, name));
        }
    }
    Some(headers)
}

/// Clears a cookie as set by the plugin, and with a `Domain`, also a host-only copy left from
/// before the domain was configured (which would otherwise shadow the new one).
fn clearing_variants(cookie: &CookieConfig, name: &str) -> Vec<String> {
    let mut headers = vec![clear_cookie(cookie, name, &cookie.path)];
    if cookie.domain.is_some() {
        let host_only = CookieConfig {
            domain: None,
            ..cookie.clone()
        };
        headers.push(clear_cookie(&host_only, name, &cookie.path));
    }
    headers
}

/// `Set-Cookie` values removing every session cookie the request carried (and the first, always).
pub fn clearing(sso: &Sso, present: &[String]) -> Vec<String> {
    let cookie = &sso.cookie;
    let mut names: Vec<&str> = present.iter().map(String::as_str).collect();
    if !names.contains(&cookie.name.as_str()) {
        names.push(&cookie.name);
    }
    names
        .into_iter()
        .map(|n| clear_cookie(cookie, n, &cookie.path))
        .collect()
}
