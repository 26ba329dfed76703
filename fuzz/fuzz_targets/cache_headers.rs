//! The cache plugin's header grammars: `Cache-Control` and `Surrogate-Control`
//! (`CacheControl::parse`, `surrogate`), `Age` (`parse_age`), HTTP-dates (`http_date`: `Date`,
//! `Expires`, `Last-Modified`), the freshness model built from them
//! (`ResponseFacts::from_headers`, `storable`), `Vary` value normalisation and cache keys
//! (`normalise_vary_value`, `CacheKey::build`/`variant`), and `Range` / `If-Range`
//! (`range::parse`, `plan`, `if_range_holds`, `multipart_body`).
//!
//! Property: no panic, and
//! - a `Range` plan never slices outside the body: every planned part satisfies
//!   `first <= last < length`, `slice` returns exactly `last - first + 1` bytes, a multipart body
//!   is produced for it, and a plan has at most `MAX_RANGES` parts;
//! - `parse_age` and `http_date` accept only what they can represent, and an IMF-fixdate written
//!   back by `httpdate` for a parsed date parses to the same second;
//! - Vary normalisation is idempotent, and equal normalised values give equal cache-key variants;
//! - freshness arithmetic never overflows (lifetime and age computations saturate).
#![no_main]

use arbitrary::Arbitrary;
use kea_cache::cache_control::CacheControl;
use kea_cache::freshness::{self, http_date, parse_age, RequestFacts, ResponseFacts};
use kea_cache::key::{normalise_vary_value, CacheKey, KeyInput, QueryFilter};
use kea_cache::range::{self, Plan, Validators, MAX_RANGES};
use kea_cache::surrogate;
use libfuzzer_sys::fuzz_target;

const NAMES: &[&str] = &[
    "cache-control",
    "age",
    "date",
    "expires",
    "last-modified",
    "vary",
    "etag",
    "surrogate-control",
    "pragma",
    "content-type",
    "set-cookie",
];
const VARY: &[&str] = &[
    "accept",
    "accept-encoding",
    "accept-language",
    "origin",
    "x-custom",
];

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    status: u16,
    headers: Vec<(u8, &'a str)>,
    request_cache_control: &'a str,
    range: Vec<&'a str>,
    if_range: Vec<&'a str>,
    body_len: u16,
    vary_name: u8,
    vary_value: &'a str,
    path: &'a str,
    times: (u32, u32, u32),
}

fuzz_target!(|input: Input<'_>| {
    let headers: Vec<(&str, &str)> = input
        .headers
        .iter()
        .take(16)
        .map(|(name, value)| (NAMES[usize::from(*name) % NAMES.len()], *value))
        .collect();
    // Single-field parsers.
    for (name, value) in &headers {
        match *name {
            "age" => {
                if let Some(age) = parse_age(value) {
                    assert!(age <= freshness::AGE_CAP);
                }
            }
            "date" | "expires" | "last-modified" => {
                if let Some(secs) = http_date(value) {
                    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
                    let written = httpdate::fmt_http_date(time);
                    assert_eq!(http_date(&written), Some(secs), "{value:?} -> {written}");
                }
            }
            "surrogate-control" => {
                if let Some(s) = surrogate::SurrogateControl::parse([*value], "kea") {
                    let _ = s.governs(&CacheControl::parse([*value]));
                }
            }
            _ => {}
        }
    }
    // Freshness.
    let status = 100 + input.status % 500;
    let facts = ResponseFacts::from_headers(status, headers.iter().copied());
    let (request_time, response_time, now) = (
        u64::from(input.times.0),
        u64::from(input.times.0).saturating_add(u64::from(input.times.1 % 600)),
        u64::from(input.times.2),
    );
    let lifetime = facts.freshness_lifetime(response_time, Some(60));
    let age = facts.initial_age(request_time, response_time);
    let _ = (lifetime, age, now, facts.has_explicit_freshness());
    let request_cc = CacheControl::parse([input.request_cache_control]);
    let _ = request_cc.revalidate_when_stale();
    let request = RequestFacts {
        method: "GET",
        cache_control: Some(&request_cc),
        has_authorization: false,
    };
    let _ = freshness::storable(
        &request,
        &facts,
        &["GET".to_string(), "HEAD".to_string()],
        false,
        Some(60),
    );
    // Vary and keys.
    let vary_name = VARY[usize::from(input.vary_name) % VARY.len()];
    let normalised = normalise_vary_value(vary_name, input.vary_value);
    assert_eq!(
        normalise_vary_value(vary_name, &normalised),
        normalised,
        "{:?}",
        input.vary_value
    );
    let key = CacheKey::build(
        &KeyInput {
            method: "GET",
            scheme: "https",
            authority: "api.example.com",
            path: input.path,
            headers: &[("accept", Some(input.vary_value))],
            principal: None,
            generation: Some(1),
        },
        &QueryFilter::Exclude(vec!["utm_source".into()]),
    );
    let a = key.variant(&[(vary_name.to_string(), Some(normalised.clone()))]);
    let b = key.variant(&[(
        vary_name.to_string(),
        Some(normalise_vary_value(vary_name, &normalised)),
    )]);
    assert_eq!(a, b);
    let _ = key.hash64();
    // Ranges.
    let body: Vec<u8> = (0..input.body_len % 4096).map(|i| i as u8).collect();
    let length = body.len() as u64;
    let etag = headers.iter().find(|(n, _)| *n == "etag").map(|(_, v)| *v);
    let stored = Validators {
        etag,
        last_modified: headers
            .iter()
            .find(|(n, _)| *n == "last-modified")
            .map(|(_, v)| *v),
        date: headers.iter().find(|(n, _)| *n == "date").map(|(_, v)| *v),
    };
    for value in input.if_range.iter().take(4) {
        let _ = range::if_range_holds(value, &stored);
    }
    for value in input.range.iter().take(4) {
        let _ = range::parse(value);
    }
    let ranges: Vec<&str> = input.range.iter().take(4).copied().collect();
    let if_ranges: Vec<&str> = input.if_range.iter().take(4).copied().collect();
    match range::plan(&ranges, &if_ranges, &stored, length) {
        Plan::Partial(parts) => {
            assert!(
                !parts.is_empty() && parts.len() <= MAX_RANGES,
                "{} parts",
                parts.len()
            );
            for part in &parts {
                assert!(
                    part.first <= part.last && part.last < length,
                    "{part:?} of {length}"
                );
                let slice = part.slice(&body).expect("a planned part slices the body");
                assert_eq!(slice.len() as u64, part.last - part.first + 1);
                let _ = part.content_range(length);
            }
            assert!(range::multipart_body(&body, &parts, Some("text/plain"), "b0undary").is_some());
        }
        Plan::NotSatisfiable => {
            let _ = range::unsatisfied_content_range(length);
        }
        Plan::Full => {}
    }
});
