//! Cache keys: method, scheme, authority, normalised path, the chosen query parameters in a
//! canonical order, configured request headers and, for per-user caching, the principal. The full
//! key is stored with the entry (slots are addressed by its hash) and compared on every hit.

use sha2::{Digest, Sha256};

/// Which query parameters take part in the key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum QueryFilter {
    /// Every parameter (the default).
    #[default]
    All,
    /// Only these names.
    Include(Vec<String>),
    /// Every parameter except these names (e.g. tracking parameters).
    Exclude(Vec<String>),
}

impl QueryFilter {
    fn keeps(&self, name: &str) -> bool {
        match self {
            Self::All => true,
            Self::Include(names) => names.iter().any(|n| n == name),
            Self::Exclude(names) => !names.iter().any(|n| n == name),
        }
    }
}

/// The request facts a key is made of.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyInput<'a> {
    pub method: &'a str,
    pub scheme: &'a str,
    pub authority: &'a str,
    /// `:path` including the query.
    pub path: &'a str,
    /// Values of the rule's key headers, in the rule's order (`None` when absent).
    pub headers: &'a [(&'a str, Option<&'a str>)],
    /// The principal (`x-kea-sub`) when the rule caches per user.
    pub principal: Option<&'a str>,
    /// Purge generation of the path's purgeable prefix: bumping it retires every key below.
    pub generation: Option<u64>,
}

/// A primary cache key and its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    /// Canonical text; stored with the entry to rule out hash collisions.
    pub text: String,
    pub digest: [u8; 32],
}

impl CacheKey {
    pub fn build(input: &KeyInput<'_>, query: &QueryFilter) -> Self {
        let (path, raw_query) = match input.path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (input.path, None),
        };
        let scheme = input.scheme.to_ascii_lowercase();
        let mut text = String::with_capacity(input.path.len() + 64);
        text.push_str(&input.method.to_ascii_uppercase());
        text.push('\n');
        text.push_str(&scheme);
        text.push('\n');
        text.push_str(&normalise_authority(input.authority, &scheme));
        text.push('\n');
        text.push_str(&normalise_percent_encoding(path));
        text.push('\n');
        text.push_str(&canonical_query(raw_query.unwrap_or_default(), query));
        for (name, value) in input.headers {
            text.push_str("\nh:");
            text.push_str(name);
            if let Some(value) = value {
                text.push('=');
                text.push_str(value.trim());
            }
        }
        if let Some(principal) = input.principal {
            text.push_str("\nu:");
            text.push_str(principal);
        }
        if let Some(generation) = input.generation {
            text.push_str(&format!("\ng:{generation}"));
        }
        let digest = Sha256::digest(text.as_bytes()).into();
        Self { text, digest }
    }

    /// The secondary key of one `Vary` variant: the primary key plus the selecting values.
    pub fn variant(&self, values: &[(String, Option<String>)]) -> Self {
        let mut text = self.text.clone();
        text.push_str("\nvary:");
        for (name, value) in values {
            text.push('\n');
            text.push_str(name);
            if let Some(value) = value {
                text.push('=');
                text.push_str(value);
            }
        }
        let digest = Sha256::digest(text.as_bytes()).into();
        Self { text, digest }
    }

    /// A stable 64-bit number from the digest, for slot addressing.
    pub fn hash64(&self) -> u64 {
        u64::from_le_bytes(self.digest.first_chunk::<8>().copied().unwrap_or_default())
    }
}

/// Lowercase host, default port removed (`:80` for http, `:443` for https).
fn normalise_authority(authority: &str, scheme: &str) -> String {
    let lower = authority.trim().to_ascii_lowercase();
    let default_port = match scheme {
        "https" => ":443",
        _ => ":80",
    };
    match lower.strip_suffix(default_port) {
        Some(host) if !host.is_empty() => host.to_string(),
        _ => lower,
    }
}

/// RFC 3986 6.2.2: decode percent-encoded unreserved characters, uppercase the hex of the rest,
/// so `/%7euser` and `/~user` share one entry.
fn normalise_percent_encoding(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |at: usize| bytes.get(at).and_then(|c| (*c as char).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                let decoded = (hi * 16 + lo) as u8;
                if decoded.is_ascii_alphanumeric() || b"-._~".contains(&decoded) {
                    out.push(decoded as char);
                } else {
                    out.push('%');
                    out.push_str(&format!("{decoded:02X}"));
                }
                i += 3;
            }
            _ => {
                // Multi-byte UTF-8 is copied whole; `text` is a `str`, so this stays valid.
                let len = text
                    .get(i..)
                    .and_then(|rest| rest.chars().next())
                    .map_or(1, char::len_utf8);
                out.push_str(text.get(i..i + len).unwrap_or_default());
                i += len;
            }
        }
    }
    out
}

/// Kept parameters, percent-encoding normalised, sorted by name then value, joined with `&`.
fn canonical_query(query: &str, filter: &QueryFilter) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split(['&', ';'])
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => (
                normalise_percent_encoding(name),
                normalise_percent_encoding(value),
            ),
            None => (normalise_percent_encoding(pair), String::new()),
        })
        .filter(|(name, _)| filter.keeps(name))
        .collect();
    pairs.sort();
    let mut out = String::with_capacity(query.len());
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// A request field's value as `Vary` compares it (RFC 9111 4.1 allows normalising values "in a
/// way that is known to have identical semantics"): list members trimmed, whitespace around `;`
/// and `=` dropped, the case-insensitive tokens of the `Accept-*` content-negotiation fields
/// lowercased, and `Accept-Encoding`'s members sorted (its order means nothing: q-values rank).
/// Values with quoted strings are only trimmed, as commas inside quotes are not separators.
pub fn normalise_vary_value(name: &str, value: &str) -> String {
    let value = value.trim_matches([' ', '\t']);
    if value.contains('"') {
        return value.to_string();
    }
    let lowercase = matches!(name, "accept-encoding" | "accept-language" | "accept-charset");
    let mut members: Vec<String> = value
        .split(',')
        .map(|member| {
            let parts: Vec<&str> = member
                .split(';')
                .map(|part| part.trim_matches([' ', '\t']))
                .collect();
            let member = parts
                .iter()
                .map(|part| match part.split_once('=') {
                    Some((key, value)) => format!("{}={}", key.trim_end(), value.trim_start()),
                    None => (*part).to_string(),
                })
                .collect::<Vec<_>>()
                .join(";");
            if lowercase {
                member.to_ascii_lowercase()
            } else {
                member
            }
        })
        .filter(|member| !member.is_empty())
        .collect();
    if name == "accept-encoding" {
        members.sort();
    }
    members.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_values_compare_by_meaning() {
        let same =
            |name: &str, a: &str, b: &str| normalise_vary_value(name, a) == normalise_vary_value(name, b);
        assert!(same("accept-encoding", "gzip, br", "BR,gzip"));
        assert!(same(
            "accept-encoding",
            "gzip;q=1.0, br ; q=0.5",
            "br;q=0.5,gzip; q=1.0"
        ));
        assert!(same("accept-language", "en-US, fr;q=0.5", "en-us,fr; q=0.5"));
        assert!(
            !same("accept-language", "en, fr", "fr, en"),
            "order ranks equal q-values"
        );
        assert!(same(
            "accept",
            " text/html ,application/json",
            "text/html, application/json"
        ));
        assert!(
            !same("x-tenant", "Acme", "acme"),
            "unknown fields keep their case"
        );
        assert!(!same("accept-encoding", "gzip", "br"));
        assert_eq!(normalise_vary_value("accept", "a;p=\"x, y\" "), "a;p=\"x, y\"");
    }

    fn key(path: &str) -> String {
        let input = KeyInput {
            method: "GET",
            scheme: "http",
            authority: "Api.Example.com:80",
            path,
            ..Default::default()
        };
        CacheKey::build(&input, &QueryFilter::All).text
    }

    #[test]
    fn equivalent_requests_share_a_key() {
        assert_eq!(key("/pets?b=2&a=1"), key("/pets?a=1&b=2"));
        assert_eq!(key("/%7euser"), key("/~user"));
        assert_eq!(key("/a%2fb"), key("/a%2Fb"));
        assert_ne!(key("/a%2Fb"), key("/a/b"), "an encoded slash is not a separator");
        assert_eq!(key("/pets?a=1;b=2"), key("/pets?b=2&a=1"));
        assert_eq!(key("/pets?"), key("/pets"));
        assert_eq!(key("/é"), "GET\nhttp\napi.example.com\n/é\n");
    }

    #[test]
    fn everything_that_changes_the_response_changes_the_key() {
        assert_ne!(key("/pets?a=1"), key("/pets?a=2"));
        let base = KeyInput {
            method: "GET",
            scheme: "https",
            authority: "h:443",
            path: "/x",
            ..Default::default()
        };
        let plain = CacheKey::build(&base, &QueryFilter::All);
        assert_eq!(plain.text, "GET\nhttps\nh\n/x\n");
        let head = CacheKey::build(
            &KeyInput {
                method: "head",
                ..base
            },
            &QueryFilter::All,
        );
        assert_ne!(head.digest, plain.digest);
        let user = CacheKey::build(
            &KeyInput {
                principal: Some("alice"),
                ..base
            },
            &QueryFilter::All,
        );
        assert!(user.text.ends_with("\nu:alice"));
        let headers = [("accept-language", Some(" en ")), ("x-tenant", None)];
        let with_headers = CacheKey::build(
            &KeyInput {
                headers: &headers,
                ..base
            },
            &QueryFilter::All,
        );
        assert!(
            with_headers.text.ends_with("\nh:accept-language=en\nh:x-tenant"),
            "{}",
            with_headers.text
        );
    }

    #[test]
    fn query_filters() {
        let input = KeyInput {
            method: "GET",
            scheme: "http",
            authority: "h",
            path: "/p?utm_source=x&id=1&b=2",
            ..Default::default()
        };
        let exclude = CacheKey::build(&input, &QueryFilter::Exclude(vec!["utm_source".into()]));
        assert!(exclude.text.ends_with("\nb=2&id=1"), "{}", exclude.text);
        let include = CacheKey::build(&input, &QueryFilter::Include(vec!["id".into()]));
        assert!(include.text.ends_with("\nid=1"), "{}", include.text);
    }

    #[test]
    fn invalid_escapes_are_kept_verbatim() {
        assert_eq!(normalise_percent_encoding("/a%zz%4"), "/a%zz%4");
        assert_eq!(normalise_percent_encoding("%41%20"), "A%20");
    }
}
