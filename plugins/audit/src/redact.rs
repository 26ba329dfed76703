//! Redaction: secrets are replaced by `[REDACTED len=N sha256=xxxxxxxx]`, so two records carrying
//! the same secret can be correlated (same length and hash prefix) without the secret being stored
//! in clear. An unkeyed hash of a short secret can be reversed by trying candidates, so with
//! `redact.hashKey` the digest is an HMAC under a per-deployment key instead
//! (`[REDACTED len=N hmac=xxxxxxxx]`).

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// Writes the markers that replace secret values.
#[derive(Clone, Default)]
pub struct Marker {
    key: Option<Vec<u8>>,
}

impl std::fmt::Debug for Marker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Marker")
            .field("keyed", &self.key.is_some())
            .finish()
    }
}

impl Marker {
    pub fn keyed(key: Option<Vec<u8>>) -> Self {
        Self { key }
    }

    /// The marker for one secret value.
    pub fn mark(&self, secret: &[u8]) -> String {
        let (label, digest): (&str, [u8; 32]) = match &self.key {
            Some(key) => match Hmac::<Sha256>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(secret);
                    ("hmac", mac.finalize().into_bytes().into())
                }
                // HMAC takes keys of any length; this arm cannot be reached.
                Err(_) => ("sha256", Sha256::digest(secret).into()),
            },
            None => ("sha256", Sha256::digest(secret).into()),
        };
        let mut out = String::with_capacity(40);
        let _ = write!(out, "[REDACTED len={} {label}=", secret.len());
        for byte in digest.iter().take(4) {
            let _ = write!(out, "{byte:02x}");
        }
        out.push(']');
        out
    }
}

/// The unkeyed marker for one secret value.
pub fn marker(secret: &[u8]) -> String {
    Marker::default().mark(secret)
}

/// A JSON pointer (RFC 6901) whose segments may be `*` (any object key or array index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPointerPattern {
    segments: Vec<String>,
}

impl JsonPointerPattern {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Ok(Self { segments: Vec::new() });
        }
        let rest = raw
            .strip_prefix('/')
            .ok_or_else(|| format!("{raw:?} is not a JSON pointer (must start with '/')"))?;
        let mut segments = Vec::new();
        for segment in rest.split('/') {
            // RFC 6901: "~1" is "/", "~0" is "~"; any other "~" escape is invalid.
            let mut unescaped = String::with_capacity(segment.len());
            let mut chars = segment.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => unescaped.push('~'),
                        Some('1') => unescaped.push('/'),
                        _ => return Err(format!("{raw:?}: '~' must be followed by 0 or 1")),
                    }
                } else {
                    unescaped.push(c);
                }
            }
            segments.push(unescaped);
        }
        Ok(Self { segments })
    }

    /// Replaces every value the pattern reaches; returns how many were replaced.
    pub fn redact(&self, value: &mut Value, marker: &Marker) -> usize {
        redact_at(value, &self.segments, marker)
    }
}

fn redact_at(value: &mut Value, segments: &[String], marker: &Marker) -> usize {
    let Some((head, tail)) = segments.split_first() else {
        let original = match &*value {
            Value::String(s) => s.as_bytes().to_vec(),
            other => other.to_string().into_bytes(),
        };
        *value = Value::String(marker.mark(&original));
        return 1;
    };
    match value {
        Value::Object(map) if head == "*" => map.values_mut().map(|v| redact_at(v, tail, marker)).sum(),
        Value::Object(map) => map
            .get_mut(head.as_str())
            .map_or(0, |v| redact_at(v, tail, marker)),
        Value::Array(items) if head == "*" => items.iter_mut().map(|v| redact_at(v, tail, marker)).sum(),
        Value::Array(items) => head
            .parse::<usize>()
            .ok()
            .and_then(|i| items.get_mut(i))
            .map_or(0, |v| redact_at(v, tail, marker)),
        _ => 0,
    }
}

/// Headers whose values are URLs, with query strings that can carry secrets.
const URL_HEADERS: &[&str] = &[
    "location",
    "content-location",
    "referer",
    "x-envoy-original-path",
    "x-original-url",
    "x-original-uri",
    "x-forwarded-uri",
];

/// Which body a pointer list applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

/// Compiled redaction rules.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    headers: Vec<String>,
    query_params: Vec<String>,
    request_pointers: Vec<JsonPointerPattern>,
    response_pointers: Vec<JsonPointerPattern>,
    marker: Marker,
}

impl Redactor {
    pub fn new(
        mut headers: Vec<String>,
        mut query_params: Vec<String>,
        request_pointers: Vec<JsonPointerPattern>,
        response_pointers: Vec<JsonPointerPattern>,
        marker: Marker,
    ) -> Self {
        headers.sort();
        headers.dedup();
        query_params.sort();
        query_params.dedup();
        Self {
            headers,
            query_params,
            request_pointers,
            response_pointers,
            marker,
        }
    }

    /// Whether a header (any case) is redacted.
    pub fn is_secret_header(&self, name: &str) -> bool {
        self.headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    }

    /// `name: value` with the value redacted when the header is secret.
    pub fn header_line(&self, name: &str, value: &[u8]) -> String {
        if self.is_secret_header(name) {
            format!("{name}: {}", self.marker.mark(value))
        } else if URL_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)) {
            format!("{name}: {}", self.url(&String::from_utf8_lossy(value)))
        } else {
            format!("{name}: {}", String::from_utf8_lossy(value))
        }
    }

    /// A URL with secret parameters redacted in its query and its fragment (where the OAuth
    /// implicit flow puts tokens).
    pub fn url(&self, url: &str) -> String {
        let (before_fragment, fragment) = match url.split_once('#') {
            Some((head, fragment)) => (head, Some(fragment)),
            None => (url, None),
        };
        let mut out = match before_fragment.split_once('?') {
            Some((base, query)) => format!("{base}?{}", self.query(query)),
            None => before_fragment.to_string(),
        };
        if let Some(fragment) = fragment {
            out.push('#');
            out.push_str(&self.query(fragment));
        }
        out
    }

    /// The query string with secret parameters' values redacted. Pairs are separated by `&` or
    /// `;`; names are compared after percent-decoding, case-insensitively and without an array
    /// suffix, so `Access%5Ftoken` and `token[]` do not slip through; a leading `?` (`/x??token=`)
    /// and surrounding whitespace do not hide a name either.
    pub fn query(&self, query: &str) -> String {
        let mut out = String::with_capacity(query.len());
        let mut rest = query;
        loop {
            let (pair, separator, tail) = match rest.find(['&', ';']) {
                Some(at) => (
                    rest.get(..at).unwrap_or_default(),
                    rest.get(at..at + 1),
                    rest.get(at + 1..).unwrap_or_default(),
                ),
                None => (rest, None, ""),
            };
            let (name, value) = match pair.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (pair, None),
            };
            let decoded = percent_decode(name);
            // A query handed on as `?a=1` (`/x??a=1`) is read by `URLSearchParams` as `a=1`; and
            // names are compared without surrounding whitespace: redacting too much is harmless.
            let bare = decoded
                .trim_start_matches('?')
                .trim()
                .split('[')
                .next()
                .unwrap_or_default()
                .trim();
            let secret = self.query_params.iter().any(|p| p.eq_ignore_ascii_case(bare));
            match (secret, value) {
                (true, Some(value)) => {
                    out.push_str(name);
                    out.push('=');
                    out.push_str(&self.marker.mark(value.as_bytes()));
                }
                _ => out.push_str(pair),
            }
            match separator {
                Some(separator) => {
                    out.push_str(separator);
                    rest = tail;
                }
                None => return out,
            }
        }
    }

    pub fn has_body_pointers(&self, direction: Direction) -> bool {
        !self.pointers(direction).is_empty()
    }

    fn pointers(&self, direction: Direction) -> &[JsonPointerPattern] {
        match direction {
            Direction::Request => &self.request_pointers,
            Direction::Response => &self.response_pointers,
        }
    }

    /// The captured body as it may be stored. With pointers configured, a body that is not
    /// complete, valid JSON cannot be checked for secrets, so it is replaced whole by a marker.
    pub fn body(&self, direction: Direction, body: &[u8], truncated: bool) -> String {
        let pointers = self.pointers(direction);
        if pointers.is_empty() {
            return String::from_utf8_lossy(body).into_owned();
        }
        if truncated {
            return self.marker.mark(body);
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(mut value) => {
                for pointer in pointers {
                    pointer.redact(&mut value, &self.marker);
                }
                value.to_string()
            }
            Err(_) => self.marker.mark(body),
        }
    }
}

/// Decodes `%XX` escapes and `+` (form encoding) for name comparison; invalid escapes stay as they are.
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |at: usize| bytes.get(at).and_then(|c| (*c as char).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn redactor(pointers: &[&str]) -> Redactor {
        Redactor::new(
            vec!["authorization".into(), "cookie".into()],
            vec!["access_token".into(), "key".into()],
            pointers
                .iter()
                .map(|p| JsonPointerPattern::parse(p).unwrap())
                .collect(),
            vec![],
            Marker::default(),
        )
    }

    #[test]
    fn marker_correlates_without_revealing() {
        let a = marker(b"hunter2");
        assert_eq!(a, marker(b"hunter2"));
        assert_ne!(a, marker(b"hunter3"));
        assert!(a.starts_with("[REDACTED len=7 sha256="));
        assert_eq!(a.len(), "[REDACTED len=7 sha256=".len() + 9);
        assert!(!a.contains("hunter2"));
    }

    #[test]
    fn a_key_turns_the_digest_into_an_hmac() {
        let keyed = Marker::keyed(Some(b"deployment-key".to_vec()));
        let a = keyed.mark(b"1234");
        assert!(a.starts_with("[REDACTED len=4 hmac="), "{a}");
        assert_eq!(a, keyed.mark(b"1234"), "still correlatable");
        assert_ne!(a, Marker::keyed(Some(b"other-key".to_vec())).mark(b"1234"));
        assert!(!a.contains(&marker(b"1234")[23..31]), "not the plain hash");
    }

    #[test]
    fn headers_are_redacted_case_insensitively() {
        let r = redactor(&[]);
        assert_eq!(r.header_line("accept", b"*/*"), "accept: */*");
        let line = r.header_line("Authorization", b"Bearer abc");
        assert!(line.starts_with("Authorization: [REDACTED len=10"), "{line}");
    }

    #[test]
    fn query_params_are_redacted_by_decoded_name() {
        let r = redactor(&[]);
        let q = r.query("a=1&access_token=s3cret&Access%5Ftoken=s3cret&KEY=k&flag&key");
        assert!(!q.contains("s3cret"), "{q}");
        assert!(q.starts_with("a=1&access_token=[REDACTED len=6"), "{q}");
        assert!(q.contains("&Access%5Ftoken=[REDACTED len=6"), "{q}");
        assert!(q.contains("&KEY=[REDACTED len=1"), "{q}");
        assert!(q.ends_with("&flag&key"), "{q}");
    }

    /// Found by fuzzing (`audit_flow`): in `/x??access_token=s3cret` the query is
    /// `?access_token=s3cret`, and the leading `?` hid the name from the comparison, so the token
    /// reached the record. Applications that hand the query to `URLSearchParams` (which drops a
    /// leading `?`) read it as `access_token`; the redactor now compares names without leading
    /// `?` and surrounding whitespace.
    #[test]
    fn names_behind_a_second_question_mark_or_spaces_are_redacted() {
        let r = redactor(&[]);
        let q = r.query("?access_token=s3cret&??key=s3cret& access_token =s3cret");
        assert!(!q.contains("s3cret"), "{q}");
        assert!(q.starts_with("?access_token=[REDACTED len=6"), "{q}");
        assert_eq!(r.url("/x??access_token=s3cret").matches("[REDACTED").count(), 1);
    }

    #[test]
    fn semicolons_array_names_and_url_headers_are_covered() {
        let r = redactor(&[]);
        let q = r.query("a=1;access_token=s3cret&key[]=s3cret&key[0]=s3cret");
        assert!(!q.contains("s3cret"), "{q}");
        assert!(q.starts_with("a=1;access_token=[REDACTED"), "{q}");
        let line = r.header_line(
            "Location",
            b"https://app/cb?state=x&key=s3cret#access_token=s3cret",
        );
        assert!(!line.contains("s3cret"), "{line}");
        assert!(
            line.starts_with("Location: https://app/cb?state=x&key=[REDACTED"),
            "{line}"
        );
        assert_eq!(r.header_line("referer", b"https://a/b"), "referer: https://a/b");
        assert_eq!(r.url("/p#frag"), "/p#frag");
    }

    #[test]
    fn body_pointers_with_wildcards() {
        let r = redactor(&["/password", "/users/*/token", "/a~1b"]);
        let body = json!({"password": "p", "users": [{"token": "t1", "n": 1}, {"token": "t2"}], "a/b": 5, "keep": "k"});
        let out: Value =
            serde_json::from_str(&r.body(Direction::Request, body.to_string().as_bytes(), false)).unwrap();
        assert_eq!(out["keep"], "k");
        assert_eq!(out["users"][0]["n"], 1);
        for v in [
            &out["password"],
            &out["users"][0]["token"],
            &out["users"][1]["token"],
            &out["a/b"],
        ] {
            assert!(v.as_str().unwrap().starts_with("[REDACTED"), "{v}");
        }
    }

    #[test]
    fn unparseable_or_truncated_bodies_are_redacted_whole() {
        let r = redactor(&["/password"]);
        assert!(r
            .body(Direction::Request, b"{\"password\": \"p", false)
            .starts_with("[REDACTED len=15"));
        assert!(r
            .body(Direction::Request, br#"{"password":"p"}"#, true)
            .starts_with("[REDACTED"));
        // Without pointers the body is kept (lossy UTF-8).
        assert_eq!(
            r.body(Direction::Response, &[b'o', 0xff, b'k'], false),
            "o\u{fffd}k"
        );
    }

    #[test]
    fn pointer_syntax_is_checked() {
        assert!(JsonPointerPattern::parse("password").is_err());
        assert!(JsonPointerPattern::parse("/a~2").is_err());
        assert!(JsonPointerPattern::parse("/a~0b").is_ok());
    }
}
