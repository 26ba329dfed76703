//! The identity and outcome header contract between KEA's plugins and the upstream.
//!
//! The auth plugin removes any of these that a client sent and sets them from verified
//! credentials; the audit plugin (first in the chain) also strips client-supplied ones, so a value
//! seen at log time was set by a plugin behind it, never by the client.

/// Prefix of every header KEA sets; client-supplied headers with it are removed.
pub const PREFIX: &str = "x-kea-";
/// Verified subject (`sub` claim, or the API key's client name).
pub const SUBJECT: &str = "x-kea-sub";
/// Issuer of the verified token.
pub const ISSUER: &str = "x-kea-iss";
/// Space-separated granted scopes.
pub const SCOPES: &str = "x-kea-scopes";
/// Name of the API-key client, when an API key authenticated the request.
pub const CLIENT: &str = "x-kea-client";
/// Opaque session identifier (a hash, never the session cookie itself).
pub const SESSION: &str = "x-kea-session";
/// Validation outcome set by the validate plugin: `passed`, `failed`, `reported` or `skipped`.
pub const VALIDATION: &str = "x-kea-validation";
/// Cache outcome (response header) set by the cache plugin: `HIT`, `MISS`, `STALE`, `BYPASS`, `EXPIRED`.
pub const CACHE: &str = "x-kea-cache";

/// Whether a header name (lowercase, as proxies hand them over) is in KEA's namespace.
pub fn is_kea_header(name: &str) -> bool {
    name.len() >= PREFIX.len()
        && name
            .get(..PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
}
