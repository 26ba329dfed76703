//! Byte-range requests answered from a complete stored response (RFC 9110 §14): parsing `Range`,
//! evaluating `If-Range` (§13.1.5), choosing the parts to send, and the `Content-Range` values and
//! `multipart/byteranges` body (§14.6) of the answer. Host-free; `stream` decides when it applies
//! (a fresh hit on a stored 200, GET only) and sends the reply.
//!
//! Defences against range amplification (§14.2 and §17.15 allow ignoring or coalescing):
//! - more than [`MAX_RANGES`] range-specs: the `Range` field is ignored (the whole 200);
//! - overlapping or adjacent ranges are coalesced (sorted, merged), so the parts never repeat a
//!   byte: a 206 is at most the representation plus [`MAX_RANGES`] part headers.

use crate::freshness::http_date;
use std::cmp::Ordering;

/// The most range-specs one `Range` field may hold before it is ignored.
pub const MAX_RANGES: usize = 16;

/// One range-spec as the client wrote it (positions saturate at `u64::MAX`, which is past the end
/// of any representation this cache holds, so a huge number means what it says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `first-last`, or `first-` (to the end) when `last` is `None`.
    From { first: u64, last: Option<u64> },
    /// `-length`: the final `length` bytes.
    Suffix(u64),
}

/// Why a `Range` field is ignored (the whole representation is sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// Not a valid `ranges-specifier` (RFC 9110 §14.1.1), or several `Range` lines.
    Invalid,
    /// A range unit other than `bytes`.
    OtherUnit,
    /// More than [`MAX_RANGES`] range-specs.
    TooMany,
}

/// An inclusive byte range inside a representation: `first <= last < length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub first: u64,
    pub last: u64,
}

impl ByteRange {
    /// The `Content-Range` value of this range of a `length`-byte representation (§14.4).
    pub fn content_range(self, length: u64) -> String {
        format!("bytes {}-{}/{length}", self.first, self.last)
    }

    /// These bytes of `body`, if the range lies inside it.
    pub fn slice(self, body: &[u8]) -> Option<&[u8]> {
        let first = usize::try_from(self.first).ok()?;
        let last = usize::try_from(self.last).ok()?;
        body.get(first..=last)
    }
}

/// The `Content-Range` value of a 416 (RFC 9110 §14.4 `unsatisfied-range`).
pub fn unsatisfied_content_range(length: u64) -> String {
    format!("bytes */{length}")
}

/// What to answer a range request with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Ignore `Range`: the whole representation (200).
    Full,
    /// 206 with these parts, in this order: one is a single-part answer, more a multipart one.
    Partial(Vec<ByteRange>),
    /// 416: no range-spec overlaps the representation.
    NotSatisfiable,
}

/// The stored response's validators, as header values.
#[derive(Debug, Clone, Copy, Default)]
pub struct Validators<'a> {
    pub etag: Option<&'a str>,
    pub last_modified: Option<&'a str>,
    pub date: Option<&'a str>,
}

const OWS: &[char] = &[' ', '\t'];

/// `tchar` (RFC 9110 §5.6.2).
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// `1*DIGIT`, saturating at `u64::MAX`.
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u64, |value, digit| {
        value
            .saturating_mul(10)
            .saturating_add(u64::from(digit.saturating_sub(b'0')))
    }))
}

/// Compares two `1*DIGIT` strings as numbers of any size.
fn compare_decimal(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn parse_spec(spec: &str) -> Option<RangeSpec> {
    if let Some(length) = spec.strip_prefix('-') {
        return digits(length).map(RangeSpec::Suffix);
    }
    let (first_text, last_text) = spec.split_once('-')?;
    let first = digits(first_text)?;
    if last_text.is_empty() {
        return Some(RangeSpec::From { first, last: None });
    }
    let last = digits(last_text)?;
    // §14.1.1: an int-range whose last-pos is below its first-pos is invalid (compared exactly,
    // not after saturation).
    if compare_decimal(last_text, first_text) == Ordering::Less {
        return None;
    }
    Some(RangeSpec::From {
        first,
        last: Some(last),
    })
}

/// Parses a `Range` field value: `bytes=` followed by a comma-separated list of range-specs
/// (RFC 9110 §14.1.1; the unit is case-insensitive, empty list elements are skipped, whitespace is
/// allowed around elements only).
pub fn parse(value: &str) -> Result<Vec<RangeSpec>, Ignored> {
    let value = value.trim_matches(OWS);
    let (unit, set) = value.split_once('=').ok_or(Ignored::Invalid)?;
    if unit.is_empty() || !unit.bytes().all(is_tchar) {
        return Err(Ignored::Invalid);
    }
    if !unit.eq_ignore_ascii_case("bytes") {
        return Err(Ignored::OtherUnit);
    }
    let mut specs = Vec::new();
    for element in set
        .split(',')
        .map(|e| e.trim_matches(OWS))
        .filter(|e| !e.is_empty())
    {
        if specs.len() == MAX_RANGES {
            return Err(Ignored::TooMany);
        }
        specs.push(parse_spec(element).ok_or(Ignored::Invalid)?);
    }
    if specs.is_empty() {
        return Err(Ignored::Invalid);
    }
    Ok(specs)
}

/// What the parsed range-specs select from a `length`-byte representation (RFC 9110 §14.1.2).
pub fn select(specs: &[RangeSpec], length: u64) -> Plan {
    let mut ranges = Vec::with_capacity(specs.len());
    let mut satisfiable = false;
    for spec in specs {
        match *spec {
            RangeSpec::From { first, last } if first < length => {
                let end = length.saturating_sub(1);
                let last = last.map_or(end, |last| last.min(end));
                ranges.push(ByteRange { first, last });
                satisfiable = true;
            }
            RangeSpec::From { .. } | RangeSpec::Suffix(0) => {}
            RangeSpec::Suffix(suffix) => {
                // A non-zero suffix is satisfiable even for an empty representation (§14.1.2),
                // but no Content-Range can describe zero bytes: that case is answered whole.
                satisfiable = true;
                if length > 0 {
                    ranges.push(ByteRange {
                        first: length.saturating_sub(suffix),
                        last: length.saturating_sub(1),
                    });
                }
            }
        }
    }
    if !satisfiable {
        return Plan::NotSatisfiable;
    }
    if ranges.is_empty() {
        return Plan::Full;
    }
    Plan::Partial(coalesce(ranges))
}

/// Merges ranges that overlap or touch (§14.6 allows it, whatever the requested order); ranges
/// that are all apart keep the requested order.
fn coalesce(ranges: Vec<ByteRange>) -> Vec<ByteRange> {
    let mut sorted = ranges.clone();
    sorted.sort_by_key(|r| (r.first, r.last));
    let touches = |a: &ByteRange, b: &ByteRange| b.first <= a.last.saturating_add(1);
    if !sorted
        .windows(2)
        .any(|pair| matches!(pair, [a, b] if touches(a, b)))
    {
        return ranges;
    }
    let mut merged: Vec<ByteRange> = Vec::with_capacity(sorted.len());
    for range in sorted {
        match merged.last_mut() {
            Some(previous) if touches(previous, &range) => previous.last = previous.last.max(range.last),
            _ => merged.push(range),
        }
    }
    merged
}

/// A syntactically valid `entity-tag` (RFC 9110 §8.8.3): `[W/] DQUOTE *etagc DQUOTE`.
fn is_entity_tag(tag: &str) -> bool {
    let opaque = tag.strip_prefix("W/").unwrap_or(tag);
    opaque.len() >= 2
        && opaque.starts_with('"')
        && opaque.ends_with('"')
        && opaque
            .bytes()
            .skip(1)
            .take(opaque.len().saturating_sub(2))
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
}

/// Strong comparison (RFC 9110 §8.8.3.2): both strong, same opaque tag.
fn strong_match(a: &str, b: &str) -> bool {
    is_entity_tag(a) && is_entity_tag(b) && !a.starts_with("W/") && !b.starts_with("W/") && a == b
}

/// Evaluates an `If-Range` value against the stored validators (RFC 9110 §13.1.5): an entity-tag
/// must match the stored `ETag` strongly; an HTTP-date must equal the stored `Last-Modified`, and
/// only counts when that date is strong (the stored `Date` at least a second later, §8.8.2.2).
pub fn if_range_holds(if_range: &str, stored: &Validators<'_>) -> bool {
    let if_range = if_range.trim_matches(OWS);
    // §13.1.5: an entity-tag is told from an HTTP-date by a DQUOTE in its first three characters.
    if if_range.bytes().take(3).any(|b| b == b'"') {
        return stored
            .etag
            .is_some_and(|etag| strong_match(if_range, etag.trim_matches(OWS)));
    }
    let (Some(since), Some(modified), Some(date)) = (
        http_date(if_range),
        stored.last_modified.and_then(http_date),
        stored.date.and_then(http_date),
    ) else {
        return false;
    };
    since == modified && date.saturating_sub(modified) >= 1
}

/// Decides how to answer a GET for a stored complete 200 of `length` bytes, given the request's
/// `Range` and `If-Range` field lines (RFC 9110 §13.2.2 step 5 and §14.2).
pub fn plan(range_lines: &[&str], if_range_lines: &[&str], stored: &Validators<'_>, length: u64) -> Plan {
    // Two Range lines are not one ranges-specifier.
    let [range] = range_lines else {
        return Plan::Full;
    };
    let Ok(specs) = parse(range) else {
        return Plan::Full;
    };
    if !if_range_lines.is_empty() && !if_range_holds(&if_range_lines.join(", "), stored) {
        return Plan::Full;
    }
    select(&specs, length)
}

/// A `multipart/byteranges` boundary from 16 random bytes (RFC 2046 `bchars`, well under 70).
pub fn boundary(random: &[u8; 16]) -> String {
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("kea-byteranges-{hex}")
}

/// The `Content-Type` of a multipart answer.
pub fn multipart_content_type(boundary: &str) -> String {
    format!("multipart/byteranges; boundary={boundary}")
}

/// The `multipart/byteranges` body (RFC 9110 §14.6): one part per range, each with the stored
/// `Content-Type` (when there is one) and its `Content-Range`. `None` if a range lies outside
/// `body`.
pub fn multipart_body(
    body: &[u8],
    parts: &[ByteRange],
    content_type: Option<&str>,
    boundary: &str,
) -> Option<Vec<u8>> {
    let length = u64::try_from(body.len()).ok()?;
    let mut out = Vec::with_capacity(
        parts
            .iter()
            .map(|p| p.slice(body).map_or(0, <[u8]>::len) + 128)
            .sum(),
    );
    for part in parts {
        let bytes = part.slice(body)?;
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        if let Some(content_type) = content_type {
            out.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        out.extend_from_slice(format!("Content-Range: {}\r\n\r\n", part.content_range(length)).as_bytes());
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(first: u64, last: u64) -> ByteRange {
        ByteRange { first, last }
    }

    fn from(first: u64, last: Option<u64>) -> RangeSpec {
        RangeSpec::From { first, last }
    }

    fn selected(value: &str, length: u64) -> Plan {
        select(&parse(value).unwrap(), length)
    }

    /// RFC 9110 §14.1.2's examples, against a 10000-byte representation.
    #[test]
    fn rfc_examples_select_the_documented_bytes() {
        assert_eq!(selected("bytes=0-499", 10000), Plan::Partial(vec![r(0, 499)]));
        assert_eq!(selected("bytes=500-999", 10000), Plan::Partial(vec![r(500, 999)]));
        assert_eq!(selected("bytes=-500", 10000), Plan::Partial(vec![r(9500, 9999)]));
        assert_eq!(selected("bytes=9500-", 10000), Plan::Partial(vec![r(9500, 9999)]));
        assert_eq!(
            selected("bytes=0-0,-1", 10000),
            Plan::Partial(vec![r(0, 0), r(9999, 9999)])
        );
        // "Other valid (but not canonical) specifications of the second 500 bytes": coalesced.
        assert_eq!(
            selected("bytes=500-600,601-999", 10000),
            Plan::Partial(vec![r(500, 999)])
        );
        assert_eq!(
            selected("bytes=500-700,601-999", 10000),
            Plan::Partial(vec![r(500, 999)])
        );
    }

    #[test]
    fn parses_each_form_of_range_spec() {
        assert_eq!(parse("bytes=0-499"), Ok(vec![from(0, Some(499))]));
        assert_eq!(parse("bytes=9500-"), Ok(vec![from(9500, None)]));
        assert_eq!(parse("bytes=-500"), Ok(vec![RangeSpec::Suffix(500)]));
        assert_eq!(parse("bytes=-0"), Ok(vec![RangeSpec::Suffix(0)]));
        assert_eq!(parse("bytes=5-5"), Ok(vec![from(5, Some(5))]));
        assert_eq!(parse("bytes=007-010"), Ok(vec![from(7, Some(10))]));
        // The unit is case-insensitive.
        assert_eq!(parse("Bytes=1-2"), Ok(vec![from(1, Some(2))]));
        assert_eq!(parse("BYTES=1-2"), Ok(vec![from(1, Some(2))]));
    }

    #[test]
    fn whitespace_is_allowed_around_list_elements_only() {
        assert_eq!(
            parse("  bytes=0-1 ,\t2-3 , , -4 "),
            Ok(vec![from(0, Some(1)), from(2, Some(3)), RangeSpec::Suffix(4)])
        );
        assert_eq!(parse("bytes=,0-1,"), Ok(vec![from(0, Some(1))]));
        assert_eq!(parse("bytes=0 -1"), Err(Ignored::Invalid));
        assert_eq!(parse("bytes=0- 1"), Err(Ignored::Invalid));
        assert_eq!(parse("bytes=- 1"), Err(Ignored::Invalid));
        assert_eq!(parse("bytes =0-1"), Err(Ignored::Invalid));
    }

    #[test]
    fn invalid_specifiers_are_ignored() {
        for value in [
            "",
            "bytes",
            "bytes=",
            "bytes= , ,",
            "=0-1",
            "bytes=1",
            "bytes=-",
            "bytes=--1",
            "bytes=1--2",
            "bytes=a-b",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=0x10-20",
            "bytes=1.5-2",
            "bytes=0-1;2-3",
            "bytes=0-1,junk",
            // last-pos below first-pos.
            "bytes=500-499",
            "bytes=0-1,9-8",
            "bytes=99999999999999999999999-99999999999999999999998",
        ] {
            assert_eq!(parse(value), Err(Ignored::Invalid), "{value:?}");
        }
    }

    #[test]
    fn non_ascii_junk_is_invalid_and_never_panics() {
        for value in [
            "bytes=٣-٤",
            "bytes=0-１",
            "bÿtes=0-1",
            "bytes=0-1,é",
            "bytes=\u{0}0-1",
            "bytes=𝟘-𝟙",
            "bytes=0-1\u{85}",
        ] {
            assert_eq!(parse(value), Err(Ignored::Invalid), "{value:?}");
        }
    }

    #[test]
    fn other_units_are_ignored() {
        assert_eq!(parse("items=0-1"), Err(Ignored::OtherUnit));
        assert_eq!(parse("byte=0-1"), Err(Ignored::OtherUnit));
        assert_eq!(parse("none=0-1"), Err(Ignored::OtherUnit));
    }

    #[test]
    fn too_many_ranges_are_ignored() {
        let at_limit = format!("bytes={}", ["0-0"; MAX_RANGES].join(","));
        assert!(parse(&at_limit).is_ok());
        let over = format!("bytes={}", ["0-0"; MAX_RANGES + 1].join(","));
        assert_eq!(parse(&over), Err(Ignored::TooMany));
        // Empty elements do not count.
        let padded = format!("bytes={},,,,", ["0-0"; MAX_RANGES].join(","));
        assert!(parse(&padded).is_ok());
    }

    #[test]
    fn huge_numbers_saturate_and_keep_their_meaning() {
        let huge = "99999999999999999999999";
        assert_eq!(parse(&format!("bytes={huge}-")), Ok(vec![from(u64::MAX, None)]));
        assert_eq!(
            parse("bytes=18446744073709551616-"),
            Ok(vec![from(u64::MAX, None)])
        );
        // A first-pos past any end: unsatisfiable.
        assert_eq!(selected(&format!("bytes={huge}-"), 100), Plan::NotSatisfiable);
        assert_eq!(
            selected(&format!("bytes={huge}-{huge}"), 100),
            Plan::NotSatisfiable
        );
        // A last-pos past the end is clamped; a suffix longer than the body is all of it.
        assert_eq!(
            selected(&format!("bytes=10-{huge}"), 100),
            Plan::Partial(vec![r(10, 99)])
        );
        assert_eq!(
            selected(&format!("bytes=-{huge}"), 100),
            Plan::Partial(vec![r(0, 99)])
        );
        assert_eq!(
            selected("bytes=0-18446744073709551615", 100),
            Plan::Partial(vec![r(0, 99)])
        );
    }

    #[test]
    fn positions_past_the_end_are_clamped_or_unsatisfiable() {
        assert_eq!(selected("bytes=0-999", 100), Plan::Partial(vec![r(0, 99)]));
        assert_eq!(selected("bytes=-999", 100), Plan::Partial(vec![r(0, 99)]));
        assert_eq!(selected("bytes=99-", 100), Plan::Partial(vec![r(99, 99)]));
        assert_eq!(selected("bytes=100-", 100), Plan::NotSatisfiable);
        assert_eq!(selected("bytes=100-200,300-", 100), Plan::NotSatisfiable);
        assert_eq!(selected("bytes=-0", 100), Plan::NotSatisfiable);
        // One satisfiable range is enough; the others are dropped.
        assert_eq!(
            selected("bytes=500-,-0,10-19", 100),
            Plan::Partial(vec![r(10, 19)])
        );
    }

    #[test]
    fn zero_length_representations() {
        assert_eq!(selected("bytes=0-", 0), Plan::NotSatisfiable);
        assert_eq!(selected("bytes=0-0", 0), Plan::NotSatisfiable);
        assert_eq!(selected("bytes=-0", 0), Plan::NotSatisfiable);
        // A non-zero suffix is satisfiable (§14.1.2) but selects nothing: the whole (empty) 200.
        assert_eq!(selected("bytes=-1", 0), Plan::Full);
        assert_eq!(selected("bytes=5-,-1", 0), Plan::Full);
    }

    #[test]
    fn overlapping_and_adjacent_ranges_are_coalesced_in_ascending_order() {
        assert_eq!(selected("bytes=0-0,-1", 1), Plan::Partial(vec![r(0, 0)]));
        assert_eq!(
            selected("bytes=50-59,0-9,5-14", 100),
            Plan::Partial(vec![r(0, 14), r(50, 59)])
        );
        // The amplification attack: the same bytes asked for again and again.
        let repeated = format!("bytes={}", ["0-"; MAX_RANGES].join(","));
        assert_eq!(selected(&repeated, 1000), Plan::Partial(vec![r(0, 999)]));
        assert_eq!(
            selected("bytes=0-9,10-19,20-29", 100),
            Plan::Partial(vec![r(0, 29)])
        );
        // Ranges apart keep the order they were asked in.
        assert_eq!(
            selected("bytes=90-99,0-9,40-49", 100),
            Plan::Partial(vec![r(90, 99), r(0, 9), r(40, 49)])
        );
    }

    const STRONG: Validators<'static> = Validators {
        etag: Some("\"v1\""),
        last_modified: Some("Wed, 25 Nov 2026 06:00:00 GMT"),
        date: Some("Thu, 26 Nov 2026 06:00:00 GMT"),
    };

    #[test]
    fn if_range_entity_tags_compare_strongly() {
        assert!(if_range_holds("\"v1\"", &STRONG));
        assert!(if_range_holds(" \"v1\" ", &STRONG));
        assert!(!if_range_holds("\"v2\"", &STRONG));
        assert!(!if_range_holds("W/\"v1\"", &STRONG));
        assert!(!if_range_holds("\"v1\", \"v2\"", &STRONG));
        assert!(!if_range_holds("*", &STRONG));
        assert!(!if_range_holds("\"v1", &STRONG));
        let weak = Validators {
            etag: Some("W/\"v1\""),
            ..STRONG
        };
        assert!(!if_range_holds("W/\"v1\"", &weak));
        assert!(!if_range_holds("\"v1\"", &weak));
        let none = Validators { etag: None, ..STRONG };
        assert!(!if_range_holds("\"v1\"", &none));
    }

    #[test]
    fn if_range_dates_must_equal_a_strong_last_modified() {
        assert!(if_range_holds("Wed, 25 Nov 2026 06:00:00 GMT", &STRONG));
        // The same instant in the obsolete formats.
        assert!(if_range_holds("Wednesday, 25-Nov-26 06:00:00 GMT", &STRONG));
        assert!(if_range_holds("Wed Nov 25 06:00:00 2026", &STRONG));
        // Later or earlier dates do not match (no "earlier than or equal" here).
        assert!(!if_range_holds("Wed, 25 Nov 2026 06:00:01 GMT", &STRONG));
        assert!(!if_range_holds("Wed, 25 Nov 2026 05:59:59 GMT", &STRONG));
        assert!(!if_range_holds("yesterday", &STRONG));
        assert!(!if_range_holds("", &STRONG));
        // Date less than a second after Last-Modified: the date is weak, never a match.
        let weak = Validators {
            date: Some("Wed, 25 Nov 2026 06:00:00 GMT"),
            ..STRONG
        };
        assert!(!if_range_holds("Wed, 25 Nov 2026 06:00:00 GMT", &weak));
        let one_second = Validators {
            date: Some("Wed, 25 Nov 2026 06:00:01 GMT"),
            ..STRONG
        };
        assert!(if_range_holds("Wed, 25 Nov 2026 06:00:00 GMT", &one_second));
        let no_date = Validators { date: None, ..STRONG };
        assert!(!if_range_holds("Wed, 25 Nov 2026 06:00:00 GMT", &no_date));
        let no_last_modified = Validators {
            last_modified: None,
            ..STRONG
        };
        assert!(!if_range_holds(
            "Wed, 25 Nov 2026 06:00:00 GMT",
            &no_last_modified
        ));
    }

    #[test]
    fn plan_applies_if_range_and_ignores_what_it_must() {
        let v = STRONG;
        assert_eq!(plan(&[], &[], &v, 10), Plan::Full);
        assert_eq!(plan(&[], &["\"v1\""], &v, 10), Plan::Full);
        assert_eq!(plan(&["bytes=0-1"], &[], &v, 10), Plan::Partial(vec![r(0, 1)]));
        assert_eq!(
            plan(&["bytes=0-1"], &["\"v1\""], &v, 10),
            Plan::Partial(vec![r(0, 1)])
        );
        assert_eq!(plan(&["bytes=0-1"], &["\"v2\""], &v, 10), Plan::Full);
        // A failed If-Range makes even an unsatisfiable range a 200.
        assert_eq!(plan(&["bytes=50-"], &["\"v2\""], &v, 10), Plan::Full);
        assert_eq!(plan(&["bytes=50-"], &["\"v1\""], &v, 10), Plan::NotSatisfiable);
        // Two If-Range lines are no single validator.
        assert_eq!(plan(&["bytes=0-1"], &["\"v1\"", "\"v1\""], &v, 10), Plan::Full);
        // Two Range lines, invalid syntax, other units: ignored.
        assert_eq!(plan(&["bytes=0-1", "bytes=2-3"], &[], &v, 10), Plan::Full);
        assert_eq!(plan(&["bytes=1-0"], &[], &v, 10), Plan::Full);
        assert_eq!(plan(&["pages=1-2"], &[], &v, 10), Plan::Full);
    }

    #[test]
    fn content_range_values() {
        assert_eq!(r(0, 499).content_range(10000), "bytes 0-499/10000");
        assert_eq!(unsatisfied_content_range(0), "bytes */0");
        assert_eq!(r(2, 4).slice(b"abcdef"), Some(&b"cde"[..]));
        assert_eq!(r(2, 6).slice(b"abcdef"), None);
    }

    #[test]
    fn multipart_body_has_one_part_per_range() {
        let body = b"0123456789";
        let parts = [r(0, 1), r(8, 9)];
        let built = multipart_body(body, &parts, Some("text/plain"), "B").unwrap();
        assert_eq!(
            String::from_utf8(built).unwrap(),
            "--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01\r\n\
             --B\r\nContent-Type: text/plain\r\nContent-Range: bytes 8-9/10\r\n\r\n89\r\n--B--\r\n"
        );
        let untyped = multipart_body(body, &parts[..1], None, "B").unwrap();
        assert_eq!(
            String::from_utf8(untyped).unwrap(),
            "--B\r\nContent-Range: bytes 0-1/10\r\n\r\n01\r\n--B--\r\n"
        );
        assert_eq!(multipart_body(body, &[r(5, 10)], None, "B"), None);
    }

    #[test]
    fn boundaries_are_valid_and_distinct() {
        let a = boundary(&[0; 16]);
        let b = boundary(&[1; 16]);
        assert_ne!(a, b);
        assert!(a.len() <= 70);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'));
        assert_eq!(
            multipart_content_type(&a),
            format!("multipart/byteranges; boundary={a}")
        );
    }
}
