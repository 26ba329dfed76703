//! The session a browser carries: sealed into one or more cookies, so any gateway replica can read
//! it and none has to store it.
//!
//! A sealed session longer than one cookie holds is split: `<name>` carries `<count>.<part 0>`,
//! `<name>.1` ... `<name>.<count-1>` the rest. Each cookie stays under the 4096 bytes browsers
//! guarantee (RFC 6265 6.1).

use crate::sources::RequestHeaders;
use crate::sso::config::{CookieConfig, SameSite, Sso};
use crate::sso::seal::{self, OpenError, Purpose};
use kea_plugin_sdk::Host;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

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
    #[error("the session cookie is incomplete")]
    Incomplete,
    #[error("the session ended")]
    Ended,
}

/// The session cookies a request carries.
#[derive(Debug, Default)]
pub struct Presented {
    /// The sealed session, reassembled from its chunks.
    pub sealed: Option<String>,
    /// Names of every session cookie present (to clear or remove them).
    pub names: Vec<String>,
    /// Some chunks were missing or malformed.
    pub incomplete: bool,
}

fn chunk_name(base: &str, index: usize) -> String {
    if index == 0 {
        base.to_owned()
    } else {
        format!("{base}.{index}")
    }
}

/// Reads the session cookies of a request.
pub fn presented(headers: &RequestHeaders, cookie: &CookieConfig) -> Presented {
    let mut found = Presented::default();
    let mut parts: Vec<(usize, String)> = Vec::new();
    let prefix = format!("{}.", cookie.name);
    for (name, value) in headers.cookies() {
        let index = if name == cookie.name {
            Some(0)
        } else {
            name.strip_prefix(&prefix).and_then(|n| n.parse::<usize>().ok())
        };
        let Some(index) = index.filter(|i| *i < cookie.max_chunks as usize) else {
            continue;
        };
        found.names.push(name);
        if !parts.iter().any(|(i, _)| *i == index) {
            parts.push((index, value));
        }
    }
    let Some((_, first)) = parts.iter().find(|(i, _)| *i == 0) else {
        found.incomplete = !parts.is_empty();
        return found;
    };
    let Some((count, head)) = first.split_once('.') else {
        found.incomplete = true;
        return found;
    };
    let count = match count.parse::<usize>() {
        Ok(n) if (1..=cookie.max_chunks as usize).contains(&n) => n,
        _ => {
            found.incomplete = true;
            return found;
        }
    };
    let mut sealed = head.to_owned();
    for index in 1..count {
        match parts.iter().find(|(i, _)| *i == index) {
            Some((_, part)) => sealed.push_str(part),
            None => {
                found.incomplete = true;
                return found;
            }
        }
    }
    found.sealed = Some(sealed);
    found
}

/// Opens a sealed session and checks that it has not ended.
pub fn open(sso: &Sso, sealed: &str, now: u64) -> Result<Session, SessionError> {
    let plain = seal::open(sso, Purpose::Session, &sso.cookie.name, sealed)?;
    let session: Session =
        serde_json::from_slice(&plain).map_err(|_| SessionError::Open(OpenError::Malformed))?;
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
    text.push_str(match cookie.same_site {
        SameSite::Lax => "; SameSite=Lax",
        SameSite::Strict => "; SameSite=Strict",
    });
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

/// Seals `session` into `Set-Cookie` values, clearing chunks of an older, longer session.
/// `None` when the session is too large for `maxChunks` cookies or cannot be sealed.
pub fn cookies_for(
    host: &impl Host,
    sso: &Sso,
    session: &Session,
    now: u64,
    previous: &[String],
) -> Option<Vec<String>> {
    let plain = serde_json::to_vec(session).ok()?;
    let sealed = seal::seal(host, sso, Purpose::Session, &sso.cookie.name, &plain)?;
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
    // Without a refresh token the session cannot outlive its tokens; the cookie goes with them.
    let until = if session.rt.is_some() {
        session.end
    } else {
        session.end.min(session.exp)
    };
    let max_age = until.saturating_sub(now);
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
            headers.push(clear_cookie(cookie, name, &cookie.path));
        }
    }
    Some(headers)
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
