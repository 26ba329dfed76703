//! Configuration of browser single sign-on (OpenID Connect authorization-code flow with PKCE)
//! and its compiled form.

use crate::config::{KeySource, Provider};
use crate::fetch::split_url;
use kea_plugin_sdk::config::env_secret;
use kea_plugin_sdk::host::is_token;
use kea_plugin_sdk::{ByteSize, ConfigDuration, ConfigError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SsoConfig {
    /// Credential name rules use for a browser session (e.g. `anyOf: ["browser"]`).
    pub name: String,
    /// The provider (by name) that issues the ID tokens; its keys verify them and, with
    /// `discovery`, its discovery document names the endpoints.
    pub provider: String,
    pub client_id: String,
    /// VM environment variable holding the client secret; without it the client is public and
    /// relies on PKCE alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_env: Option<String>,
    /// How the secret is sent to the token endpoint (default `basic`).
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// Envoy cluster reaching the token endpoint (default: the provider's JWKS cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Endpoints, when the provider has no discovery (or to override it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<EndpointsConfig>,
    /// Requested scopes (default `openid profile email`); `openid` is required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Where the provider sends the browser back (default `/oauth2/callback`).
    #[serde(default = "default_callback_path")]
    pub callback_path: String,
    /// Clears the session and logs out at the provider (default `/oauth2/logout`).
    #[serde(default = "default_logout_path")]
    pub logout_path: String,
    /// Absolute redirect URI registered at the provider; default: the request's scheme and host
    /// with `callbackPath` (the provider's exact-match check then guards against spoofed hosts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    /// Where the provider sends the browser after logout (registered at the provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_logout_redirect_uri: Option<String>,
    /// Path prefixes whose unauthenticated `GET`s always start a login, whatever `Accept` says.
    /// Other requests start one when they are browser navigations (`Accept: text/html`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub login_paths: Vec<String>,
    #[serde(default)]
    pub cookie: CookieConfig,
    /// Session encryption keys: the first encrypts, all decrypt (rotation).
    pub session_keys: Vec<SessionKeyConfig>,
    /// Longest a session lives, whatever the refreshes (default 24h).
    #[serde(default = "default_session_lifetime")]
    pub session_lifetime: ConfigDuration,
    /// Refresh this long before the tokens expire (default 60s).
    #[serde(default = "default_refresh_before")]
    pub refresh_before: ConfigDuration,
    /// How long a started login may take (default 5m).
    #[serde(default = "default_login_timeout")]
    pub login_timeout: ConfigDuration,
    /// ID-token claims kept in the session for rules and claim headers (default: all but the
    /// protocol ones such as `nonce`, `at_hash`, `aud`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub session_claims: Vec<String>,
    /// Send the access token upstream as `Authorization: Bearer` (default false).
    #[serde(default)]
    pub forward_access_token: bool,
    /// Largest token-endpoint answer accepted (default 64KiB).
    #[serde(default = "default_max_response")]
    pub max_response_bytes: ByteSize,
}

fn default_callback_path() -> String {
    "/oauth2/callback".into()
}
fn default_logout_path() -> String {
    "/oauth2/logout".into()
}
fn default_session_lifetime() -> ConfigDuration {
    ConfigDuration::from_secs(24 * 3600)
}
fn default_refresh_before() -> ConfigDuration {
    ConfigDuration::from_secs(60)
}
fn default_login_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(300)
}
fn default_max_response() -> ByteSize {
    ByteSize::kib(64)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ClientAuth {
    /// `client_secret_basic` (RFC 6749 2.3.1).
    #[default]
    Basic,
    /// `client_secret_post`.
    Post,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointsConfig {
    pub authorization: String,
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_session: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CookieConfig {
    /// Session cookie name (default `kea_session`); larger sessions continue in `<name>.1`, ...
    pub name: String,
    /// `Domain` attribute: set it (e.g. `example.com`) to share the session with subdomains.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    pub path: String,
    /// `Secure` attribute (default true; only turn it off for plain-HTTP development). Cookies
    /// are always `HttpOnly` and `SameSite=Lax`.
    pub secure: bool,
    /// Most cookies one session may span (default 4, each at most 4000 bytes).
    pub max_chunks: u32,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            name: "kea_session".into(),
            domain: None,
            path: "/".into(),
            secure: true,
            max_chunks: 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionKeyConfig {
    /// Short name written into each cookie, so the right key opens it.
    pub id: String,
    /// VM environment variable holding the secret: at least 32 random bytes, e.g.
    /// `openssl rand -base64 32`.
    pub secret_env: String,
}

// ---------------------------------------------------------------------------------------------
// Compiled form

/// Provider endpoints, configured or discovered.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    pub authorization: String,
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_session: Option<String>,
}

/// A session key: id and the AES-256 key derived from the secret.
#[derive(Clone)]
pub struct SessionKey {
    pub id: String,
    pub key: [u8; 32],
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub struct Sso {
    pub name: String,
    /// Issuer and client, bound into every sealed cookie: a cookie of another deployment that
    /// happens to share a key secret and cookie name does not open here.
    pub binding: String,
    /// Index of the provider issuing the ID tokens.
    pub provider: usize,
    /// The provider's settings with the client as audience: how ID tokens are verified.
    pub id_tokens: Provider,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub client_auth: ClientAuth,
    pub cluster: String,
    pub endpoints: Option<Endpoints>,
    pub scope: String,
    pub callback_path: String,
    pub logout_path: String,
    pub redirect_uri: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub login_paths: Vec<String>,
    pub cookie: CookieConfig,
    pub keys: Vec<SessionKey>,
    pub session_lifetime: Duration,
    pub refresh_before: Duration,
    pub login_timeout: Duration,
    pub session_claims: Vec<String>,
    pub forward_access_token: bool,
    pub max_response_bytes: usize,
}

impl Sso {
    /// The key that seals new cookies.
    pub fn active_key(&self) -> Option<&SessionKey> {
        self.keys.first()
    }

    pub fn key(&self, id: &str) -> Option<&SessionKey> {
        self.keys.iter().find(|k| k.id == id)
    }
}

fn local_path(at: &str, path: &str) -> Result<(), ConfigError> {
    if !path.starts_with('/') || path.contains(['?', '#']) || path.chars().any(|c| c.is_control() || c == ' ')
    {
        return Err(ConfigError::new(
            at,
            format!("{path:?} is not an absolute path without query"),
        ));
    }
    Ok(())
}

fn absolute(at: &str, url: &str) -> Result<(), ConfigError> {
    split_url(url)
        .map(drop)
        .ok_or_else(|| ConfigError::new(at, format!("{url:?} is not an absolute http(s) URL")))
}

/// Claims that describe the ID token itself, not the user: never copied into a session.
pub const PROTOCOL_CLAIMS: [&str; 9] = [
    "aud", "azp", "nonce", "at_hash", "c_hash", "s_hash", "exp", "iat", "nbf",
];

impl SsoConfig {
    pub fn compile(&self, providers: &[Provider]) -> Result<Sso, ConfigError> {
        let (index, provider) = providers
            .iter()
            .enumerate()
            .find(|(_, p)| p.name == self.provider)
            .ok_or_else(|| {
                ConfigError::new(
                    "sso.provider",
                    format!("no provider is named {:?}", self.provider),
                )
            })?;
        if self.name.is_empty() {
            return Err(ConfigError::new("sso.name", "must not be empty"));
        }
        if self.client_id.is_empty() || self.client_id.chars().any(char::is_control) {
            return Err(ConfigError::new(
                "sso.clientId",
                "must be a non-empty client identifier",
            ));
        }
        if matches!(provider.keys, KeySource::None) {
            return Err(ConfigError::new(
                "sso.provider",
                "the provider has no key set (jwks) to verify ID tokens with",
            ));
        }
        let client_secret = self
            .client_secret_env
            .as_deref()
            .map(|name| env_secret("sso.clientSecretEnv", name))
            .transpose()?;
        let cluster = match (&self.cluster, &provider.keys) {
            (Some(cluster), _) => cluster.clone(),
            (None, KeySource::Remote { cluster, .. } | KeySource::Discovery { cluster, .. }) => {
                cluster.clone()
            }
            (None, _) => {
                return Err(ConfigError::new(
                    "sso.cluster",
                    "name the Envoy cluster of the token endpoint (the provider fetches no keys)",
                ))
            }
        };
        if cluster.is_empty() {
            return Err(ConfigError::new("sso.cluster", "must name an Envoy cluster"));
        }
        let endpoints = match &self.endpoints {
            Some(e) => {
                absolute("sso.endpoints.authorization", &e.authorization)?;
                absolute("sso.endpoints.token", &e.token)?;
                if let Some(end) = &e.end_session {
                    absolute("sso.endpoints.endSession", end)?;
                }
                Some(Endpoints {
                    authorization: e.authorization.clone(),
                    token: e.token.clone(),
                    end_session: e.end_session.clone(),
                })
            }
            None if matches!(provider.keys, KeySource::Discovery { .. }) => None,
            None => {
                return Err(ConfigError::new(
                    "sso.endpoints",
                    "the provider has no discovery: give the authorization and token endpoints",
                ))
            }
        };
        let scopes = if self.scopes.is_empty() {
            vec!["openid".into(), "profile".into(), "email".into()]
        } else {
            self.scopes.clone()
        };
        if !scopes.iter().any(|s| s == "openid") {
            return Err(ConfigError::new("sso.scopes", "must include \"openid\""));
        }
        if let Some(i) = scopes
            .iter()
            .position(|s| s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'))
        {
            return Err(ConfigError::new(
                format!("sso.scopes[{i}]"),
                "a scope is one word of printable ASCII",
            ));
        }
        local_path("sso.callbackPath", &self.callback_path)?;
        local_path("sso.logoutPath", &self.logout_path)?;
        if self.callback_path == self.logout_path {
            return Err(ConfigError::new(
                "sso.logoutPath",
                "must differ from callbackPath",
            ));
        }
        for (i, path) in self.login_paths.iter().enumerate() {
            local_path(&format!("sso.loginPaths[{i}]"), path)?;
        }
        if let Some(uri) = &self.redirect_uri {
            absolute("sso.redirectUri", uri)?;
        }
        if let Some(uri) = &self.post_logout_redirect_uri {
            absolute("sso.postLogoutRedirectUri", uri)?;
        }
        let cookie = &self.cookie;
        if !is_token(&cookie.name) || cookie.name.contains('.') {
            return Err(ConfigError::new(
                "sso.cookie.name",
                format!(
                    "{:?} is not a cookie name (token characters, no dot)",
                    cookie.name
                ),
            ));
        }
        if let Some(domain) = &cookie.domain {
            let valid = !domain.is_empty()
                && domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !valid {
                return Err(ConfigError::new(
                    "sso.cookie.domain",
                    format!("{domain:?} is not a domain name"),
                ));
            }
        }
        local_path("sso.cookie.path", &cookie.path)?;
        if cookie.path.contains(';') {
            return Err(ConfigError::new("sso.cookie.path", "must not contain ';'"));
        }
        if !(1..=16).contains(&cookie.max_chunks) {
            return Err(ConfigError::new("sso.cookie.maxChunks", "between 1 and 16"));
        }
        if self.session_keys.is_empty() {
            return Err(ConfigError::new(
                "sso.sessionKeys",
                "give at least one key (the first encrypts)",
            ));
        }
        let mut keys = Vec::with_capacity(self.session_keys.len());
        for (i, key) in self.session_keys.iter().enumerate() {
            let at = format!("sso.sessionKeys[{i}]");
            let valid_id = !key.id.is_empty()
                && key.id.len() <= 16
                && key
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid_id {
                return Err(ConfigError::new(
                    format!("{at}.id"),
                    "1 to 16 letters, digits, '-' or '_'",
                ));
            }
            if keys.iter().any(|k: &SessionKey| k.id == key.id) {
                return Err(ConfigError::new(
                    format!("{at}.id"),
                    format!("{:?} is used twice", key.id),
                ));
            }
            let secret = env_secret(&format!("{at}.secretEnv"), &key.secret_env)?;
            if secret.len() < 32 {
                return Err(ConfigError::new(
                    format!("{at}.secretEnv"),
                    "the secret must be at least 32 bytes",
                ));
            }
            // The secret may be any string of enough entropy (base64 text, hex, ...): hashing it
            // gives the 256-bit AES key.
            let mut digest = Sha256::new();
            digest.update(b"kea-session-key\0");
            digest.update(secret.as_bytes());
            keys.push(SessionKey {
                id: key.id.clone(),
                key: digest.finalize().into(),
            });
        }
        let session_lifetime = self.session_lifetime.get();
        if session_lifetime < Duration::from_secs(60)
            || session_lifetime > Duration::from_secs(30 * 24 * 3600)
        {
            return Err(ConfigError::new("sso.sessionLifetime", "between 1m and 30d"));
        }
        let login_timeout = self.login_timeout.get();
        if login_timeout < Duration::from_secs(10) || login_timeout > Duration::from_secs(3600) {
            return Err(ConfigError::new("sso.loginTimeout", "between 10s and 1h"));
        }
        let refresh_before = self.refresh_before.get();
        if refresh_before > Duration::from_secs(3600) {
            return Err(ConfigError::new("sso.refreshBefore", "at most 1h"));
        }
        let max_response_bytes = self.max_response_bytes.as_usize();
        if max_response_bytes < 1024 {
            return Err(ConfigError::new("sso.maxResponseBytes", "at least 1KiB"));
        }
        let mut id_tokens = provider.clone();
        id_tokens.audiences = vec![self.client_id.clone()];
        id_tokens.require_expiration = true;
        Ok(Sso {
            binding: format!("{}\0{}\0{}", provider.issuer, self.client_id, self.name),
            name: self.name.clone(),
            provider: index,
            id_tokens,
            client_id: self.client_id.clone(),
            client_secret,
            client_auth: self.client_auth,
            cluster,
            endpoints,
            scope: scopes.join(" "),
            callback_path: self.callback_path.clone(),
            logout_path: self.logout_path.clone(),
            redirect_uri: self.redirect_uri.clone(),
            post_logout_redirect_uri: self.post_logout_redirect_uri.clone(),
            login_paths: self.login_paths.clone(),
            cookie: cookie.clone(),
            keys,
            session_lifetime,
            refresh_before,
            login_timeout,
            session_claims: self.session_claims.clone(),
            forward_access_token: self.forward_access_token,
            max_response_bytes,
        })
    }
}
