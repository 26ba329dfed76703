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

/// Whether a header name is in KEA's namespace: `x-kea-` in any case, also spelled with
/// underscores (`x_kea_sub`), since CGI-style upstreams map both spellings to one variable and a
/// client could reach an identity variable through either.
pub fn is_kea_header(name: &str) -> bool {
    name.get(..PREFIX.len())
        .is_some_and(|start| same_header_name(start, PREFIX))
}

/// Header names equal up to case and `_`/`-` (compared in place: this runs for every header of
/// every request).
pub fn same_header_name(a: &str, b: &str) -> bool {
    let fold = |c: u8| if c == b'_' { b'-' } else { c.to_ascii_lowercase() };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namespace_in_every_spelling() {
        for name in ["x-kea-sub", "X-KEA-SUB", "x_kea_sub", "X_Kea-scopes", "x-kea-"] {
            assert!(is_kea_header(name), "{name}");
        }
        for name in [
            "x-ke",
            "x-keb-sub",
            "xx-kea-sub",
            "x-kea",
            "",
            "x-ké-",
            "authorization",
        ] {
            assert!(!is_kea_header(name), "{name}");
        }
        assert!(same_header_name("X_Forwarded_User", "x-forwarded-user"));
        assert!(!same_header_name("x-forwarded-use", "x-forwarded-user"));
    }
}
