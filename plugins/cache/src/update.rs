//! Which response header fields go into the store (RFC 9111 3.1), and how a stored response is
//! freshened by a 304 (4.3.4) — which stored response it applies to, and which of its fields may
//! change (3.2).

use crate::cache_control::CacheControl;
use crate::entry::{is_stored_header, StoredResponse};
use kea_plugin_sdk::Bytes;

/// Fields a 304 never changes in a stored response: the framing (`Content-Length`, 3.2), what the
/// stored body's bytes depend on (`Content-Encoding`, `Content-Range`, `Content-Type`), and the
/// validators that identify the stored representation.
const NOT_UPDATED: &[&str] = &[
    "content-length",
    "content-encoding",
    "content-range",
    "content-type",
    "etag",
    "last-modified",
];

/// The names a `Connection` field lists (hop-by-hop for this message, RFC 9110 7.6.1), lowercase.
pub fn connection_options(headers: &[(String, Bytes)]) -> Vec<String> {
    headers
        .iter()
        .filter(|(name, _)| name == "connection")
        .flat_map(|(_, value)| {
            String::from_utf8_lossy(value)
                .split(',')
                .map(|option| option.trim().to_ascii_lowercase())
                .filter(|option| !option.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The header fields of a response that may be stored (3.1): not hop-by-hop (also the ones its
/// `Connection` names), not recomputed on every hit, not named by a qualified `private` or
/// `no-cache` (5.2.2.4, 5.2.2.7: the rest of the response may be reused, those fields not), and
/// not in `dropped` (e.g. `set-cookie` when the policy stores responses without it).
pub fn headers_to_store(
    headers: &[(String, Bytes)],
    cache_control: &CacheControl,
    dropped: &[&str],
) -> Vec<(String, Bytes)> {
    let hop_by_hop = connection_options(headers);
    headers
        .iter()
        .filter(|(name, _)| {
            is_stored_header(name)
                && !hop_by_hop.contains(name)
                && !cache_control.private_fields.contains(name)
                && !cache_control.no_cache_fields.contains(name)
                && !dropped.contains(&name.as_str())
        })
        .cloned()
        .collect()
}

/// Why a 304 does not freshen the stored response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSelected {
    /// The 304 names a representation (by its strong or weak validator) other than the stored one.
    OtherRepresentation,
}

/// Entity tag without its weakness prefix, and whether it is strong.
fn opaque_tag(tag: &str) -> (&str, bool) {
    let tag = tag.trim();
    match tag.strip_prefix("W/") {
        Some(weak) => (weak, false),
        None => (tag, true),
    }
}

fn header_text<'a>(headers: &'a [(String, Bytes)], name: &str) -> Option<std::borrow::Cow<'a, str>> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, value)| String::from_utf8_lossy(value))
}

/// Freshens `entry` with a 304's header fields (4.3.4), if the 304 is about it: a strong `ETag`
/// must equal the stored one strongly, a weak one weakly; without an `ETag`, a `Last-Modified`
/// must equal the stored one. A 304 with no validator is about the stored response, as the
/// conditional request that got it named only that response's validator. The stored fields are
/// then replaced by the 304's, except those listed in `NOT_UPDATED` and those never stored.
/// `dropped` names fields the rule never stores (e.g. `set-cookie`).
pub fn freshen(
    entry: &mut StoredResponse,
    headers: &[(String, Bytes)],
    dropped: &[&str],
) -> Result<(), NotSelected> {
    let stored_etag = entry
        .header("etag")
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let stored_modified = entry
        .header("last-modified")
        .map(|v| String::from_utf8_lossy(v).into_owned());
    match (
        header_text(headers, "etag"),
        header_text(headers, "last-modified"),
    ) {
        (Some(etag), _) => {
            let (new_tag, new_strong) = opaque_tag(&etag);
            let selected = stored_etag.as_deref().is_some_and(|stored| {
                let (stored_tag, stored_strong) = opaque_tag(stored);
                stored_tag == new_tag && (!new_strong || stored_strong)
            });
            if !selected {
                return Err(NotSelected::OtherRepresentation);
            }
        }
        (None, Some(modified)) => {
            let same = stored_modified.as_deref().is_some_and(|stored| {
                crate::freshness::http_date(stored).is_some()
                    && crate::freshness::http_date(stored) == crate::freshness::http_date(&modified)
            });
            if !same {
                return Err(NotSelected::OtherRepresentation);
            }
        }
        (None, None) => {}
    }
    let cache_control = CacheControl::parse(
        headers
            .iter()
            .filter(|(n, _)| n == "cache-control")
            .map(|(_, v)| std::str::from_utf8(v).unwrap_or_default()),
    );
    let excluded = [NOT_UPDATED, dropped].concat();
    let updates: Vec<(String, Bytes)> = headers_to_store(headers, &cache_control, &excluded);
    // Each updated field replaces every stored line of that name; a field repeated in the 304
    // keeps all its lines.
    let mut replaced: Vec<&str> = Vec::new();
    for (name, _) in &updates {
        if !replaced.contains(&name.as_str()) {
            entry.headers.retain(|(n, _)| n != name);
            replaced.push(name);
        }
    }
    entry.headers.extend(updates.iter().cloned());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Bytes)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn stored(etag: &str) -> StoredResponse {
        StoredResponse {
            status: 200,
            headers: headers(&[
                ("etag", etag),
                ("content-type", "text/plain"),
                ("content-encoding", "gzip"),
                ("cache-control", "max-age=10"),
                ("x-version", "1"),
                ("set-cookie", "a=1"),
                ("set-cookie", "b=2"),
            ]),
            body: b"body".to_vec(),
            ..StoredResponse::default()
        }
    }

    fn value(entry: &StoredResponse, name: &str) -> Vec<String> {
        entry
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    #[test]
    fn a_matching_304_updates_all_but_the_fields_the_body_depends_on() {
        let mut entry = stored("\"v1\"");
        let not_modified = headers(&[
            ("etag", "\"v1\""),
            ("cache-control", "max-age=600"),
            ("x-version", "2"),
            ("content-encoding", "br"),
            ("content-type", "application/json"),
            ("content-length", "0"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("set-cookie", "c=3"),
            ("age", "5"),
        ]);
        assert_eq!(freshen(&mut entry, &not_modified, &[]), Ok(()));
        assert_eq!(value(&entry, "cache-control"), ["max-age=600"]);
        assert_eq!(value(&entry, "x-version"), ["2"]);
        assert_eq!(value(&entry, "content-encoding"), ["gzip"]);
        assert_eq!(value(&entry, "content-type"), ["text/plain"]);
        assert_eq!(value(&entry, "set-cookie"), ["c=3"], "every stored line replaced");
        assert!(value(&entry, "x-hop").is_empty(), "named by Connection");
        assert!(value(&entry, "content-length").is_empty() && value(&entry, "age").is_empty());
        assert_eq!(entry.body, b"body");
    }

    #[test]
    fn a_304_about_another_representation_changes_nothing() {
        for (stored_tag, new_tag) in [
            ("\"v1\"", "\"v2\""),
            ("W/\"v1\"", "\"v1\""),
            ("\"v1\"", "W/\"v2\""),
        ] {
            let mut entry = stored(stored_tag);
            let before = entry.clone();
            let result = freshen(
                &mut entry,
                &headers(&[("etag", new_tag), ("x-version", "2")]),
                &[],
            );
            assert_eq!(
                result,
                Err(NotSelected::OtherRepresentation),
                "{stored_tag} vs {new_tag}"
            );
            assert_eq!(entry, before);
        }
        // Weak comparison for a weak validator in the 304.
        let mut entry = stored("\"v1\"");
        assert_eq!(
            freshen(&mut entry, &headers(&[("etag", "W/\"v1\"")]), &["set-cookie"]),
            Ok(())
        );
        // Last-Modified when there is no ETag.
        let mut entry = StoredResponse {
            headers: headers(&[("last-modified", "Thu, 26 Nov 2026 06:00:00 GMT")]),
            ..StoredResponse::default()
        };
        let other = headers(&[("last-modified", "Thu, 26 Nov 2026 07:00:00 GMT")]);
        assert_eq!(
            freshen(&mut entry, &other, &[]),
            Err(NotSelected::OtherRepresentation)
        );
        let same = headers(&[("last-modified", "Thu, 26 Nov 2026 06:00:00 GMT"), ("x-a", "1")]);
        assert_eq!(freshen(&mut entry, &same, &[]), Ok(()));
        assert_eq!(value(&entry, "x-a"), ["1"]);
    }

    #[test]
    fn qualified_private_and_no_cache_fields_are_not_stored() {
        let response = headers(&[
            (
                "cache-control",
                "max-age=60, no-cache=\"set-cookie\", private=\"x-user\"",
            ),
            ("set-cookie", "s=1"),
            ("x-user", "alice"),
            ("x-kept", "1"),
            ("transfer-encoding", "chunked"),
        ]);
        let cc = CacheControl::parse(["max-age=60, no-cache=\"set-cookie\", private=\"x-user\""]);
        let names: Vec<String> = headers_to_store(&response, &cc, &[])
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["cache-control", "x-kept"]);
    }
}
