//! The audit plugin's redaction (`kea_audit::redact`): JSON-pointer patterns
//! (`JsonPointerPattern::parse`), JSON body redaction (`Redactor::body`), query strings and URLs
//! (`query`, `url`), header lines (`header_line`).
//!
//! Property: no panic, and
//! - with pointers configured, a redacted body is either a marker or valid JSON, and in that JSON
//!   every wildcard-free pointer reaches nothing or a `[REDACTED ...]` marker;
//! - query redaction keeps the structure: the same number of `&`/`;` separators, and the value of
//!   every secret parameter is a marker;
//! - a secret header's line never holds its value (unless the value is empty or also its name).
#![no_main]

use arbitrary::Arbitrary;
use kea_audit::redact::{Direction, JsonPointerPattern, Marker, Redactor};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    pointers: Vec<&'a str>,
    body: &'a [u8],
    truncated: bool,
    keyed: bool,
    query: &'a str,
    header_name: &'a str,
    header_value: &'a [u8],
}

/// The RFC 6901 form of a pattern without wildcards, for `serde_json::Value::pointer`.
fn plain(pointer: &str) -> bool {
    !pointer.split('/').any(|s| s == "*")
}

fuzz_target!(|input: Input<'_>| {
    let mut patterns = Vec::new();
    let mut exact = Vec::new();
    for raw in input.pointers.iter().take(8) {
        if let Ok(pattern) = JsonPointerPattern::parse(raw) {
            patterns.push(pattern);
            if plain(raw) {
                exact.push(*raw);
            }
        }
    }
    let marker = Marker::keyed(input.keyed.then(|| b"a-deployment-key-0123".to_vec()));
    let redactor = Redactor::new(
        vec!["authorization".into(), "x-api-key".into()],
        vec!["access_token".into(), "code".into()],
        patterns.clone(),
        Vec::new(),
        marker,
    );
    // Bodies.
    let out = redactor.body(Direction::Request, input.body, input.truncated);
    let _ = redactor.body(Direction::Response, input.body, input.truncated);
    if !patterns.is_empty() {
        if out.starts_with("[REDACTED") && serde_json::from_str::<serde_json::Value>(&out).is_err() {
            // A marker for a body that cannot be checked.
        } else {
            let value: serde_json::Value = serde_json::from_str(&out)
                .unwrap_or_else(|e| panic!("redacted body is not JSON ({e}): {out}"));
            for pointer in &exact {
                if let Some(found) = value.pointer(pointer) {
                    assert!(
                        found.as_str().is_some_and(|s| s.starts_with("[REDACTED")),
                        "{pointer} still holds {found} in {out}"
                    );
                }
            }
        }
    }
    // Query strings and URLs.
    let query = redactor.query(input.query);
    let separators = |s: &str| s.bytes().filter(|b| *b == b'&' || *b == b';').count();
    assert_eq!(
        separators(&query),
        separators(input.query),
        "{:?} -> {query:?}",
        input.query
    );
    for pair in query.split(['&', ';']) {
        if let Some((name, value)) = pair.split_once('=') {
            if name.eq_ignore_ascii_case("access_token") {
                assert!(value.starts_with("[REDACTED"), "{pair}");
            }
        }
    }
    let _ = redactor.url(input.query);
    // Header lines.
    let line = redactor.header_line(input.header_name, input.header_value);
    if redactor.is_secret_header(input.header_name) {
        let value = String::from_utf8_lossy(input.header_value);
        if value.len() >= 4
            && !input.header_name.contains(value.as_ref())
            && !"[REDACTED len= sha256 hmac]".contains(value.as_ref())
        {
            let tail = line.get(input.header_name.len()..).unwrap_or_default();
            assert!(!tail.contains(value.as_ref()), "{line}");
        }
    }
});
