//! The audit record: one flat JSON object per request, with Elastic Common Schema (ECS 8.x) field
//! names where ECS has one and `kea.*` otherwise. Keys are dotted rather than nested so the same
//! line goes unchanged into Elasticsearch (which expands dots), Fluentd-style collectors and
//! ClickHouse `JSONEachRow` (which maps keys to column names).

use serde::Serialize;
use std::time::SystemTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// ECS version the field names follow.
pub const ECS_VERSION: &str = "8.11.0";

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AuditRecord {
    /// Start of the request, RFC 3339 UTC with milliseconds.
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    #[serde(rename = "ecs.version")]
    pub ecs_version: &'static str,
    #[serde(rename = "event.kind")]
    pub event_kind: &'static str,
    #[serde(rename = "event.category")]
    pub event_category: &'static str,
    #[serde(rename = "event.type")]
    pub event_type: &'static str,
    #[serde(rename = "event.dataset")]
    pub event_dataset: &'static str,
    /// `success` below status 400, `failure` from 400, `unknown` without a response.
    #[serde(rename = "event.outcome")]
    pub event_outcome: &'static str,
    /// Request duration in nanoseconds (ECS unit).
    #[serde(rename = "event.duration")]
    pub event_duration: u64,

    #[serde(rename = "http.request.id")]
    pub request_id: String,
    #[serde(rename = "http.request.method")]
    pub method: String,
    #[serde(rename = "http.request.body.bytes")]
    pub request_body_bytes: u64,
    #[serde(rename = "http.request.mime_type", skip_serializing_if = "Option::is_none")]
    pub request_mime_type: Option<String>,
    #[serde(rename = "http.request.body.content", skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    #[serde(rename = "http.response.status_code")]
    pub status: u16,
    #[serde(rename = "http.response.body.bytes")]
    pub response_body_bytes: u64,
    #[serde(rename = "http.response.mime_type", skip_serializing_if = "Option::is_none")]
    pub response_mime_type: Option<String>,
    #[serde(
        rename = "http.response.body.content",
        skip_serializing_if = "Option::is_none"
    )]
    pub response_body: Option<String>,

    #[serde(rename = "url.scheme", skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(rename = "url.domain")]
    pub domain: String,
    #[serde(rename = "url.port", skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(rename = "url.path")]
    pub path: String,
    /// Query string with secret parameters redacted.
    #[serde(rename = "url.query", skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,

    #[serde(rename = "client.address", skip_serializing_if = "Option::is_none")]
    pub client_address: Option<String>,
    #[serde(rename = "client.ip", skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    #[serde(rename = "client.port", skip_serializing_if = "Option::is_none")]
    pub client_port: Option<u16>,
    #[serde(rename = "user_agent.original", skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,

    /// Principal from `x-kea-sub`.
    #[serde(rename = "user.id", skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(rename = "kea.auth.issuer", skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(rename = "kea.auth.client", skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(rename = "kea.session.id", skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Envoy route name.
    #[serde(rename = "kea.route", skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(rename = "kea.cache.status", skip_serializing_if = "Option::is_none")]
    pub cache_status: Option<String>,
    #[serde(rename = "kea.validation.result", skip_serializing_if = "Option::is_none")]
    pub validation: Option<String>,
    /// Request headers as `name: value` lines, secrets redacted.
    #[serde(rename = "kea.request.headers", skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<Vec<String>>,
    #[serde(rename = "kea.response.headers", skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<Vec<String>>,
    #[serde(rename = "kea.request.body.truncated", skip_serializing_if = "is_false")]
    pub request_body_truncated: bool,
    #[serde(rename = "kea.response.body.truncated", skip_serializing_if = "is_false")]
    pub response_body_truncated: bool,
    /// The client sent `x-kea-*` identity headers, which were removed.
    #[serde(rename = "kea.request.spoofed_identity", skip_serializing_if = "is_false")]
    pub spoofed_identity: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

const RFC3339_MILLIS: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// RFC 3339 UTC timestamp with exactly three fractional digits.
pub fn rfc3339_millis(at: SystemTime) -> String {
    OffsetDateTime::from(at)
        .format(RFC3339_MILLIS)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".into())
}

impl AuditRecord {
    pub fn new() -> Self {
        Self {
            ecs_version: ECS_VERSION,
            event_kind: "event",
            event_category: "web",
            event_type: "access",
            event_dataset: "kea.audit",
            event_outcome: "unknown",
            ..Self::default()
        }
    }

    /// The record as one JSON line (no trailing newline).
    pub fn to_json(&self) -> String {
        // Only strings, numbers and booleans: serialisation cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_have_millisecond_precision() {
        let at =
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_767_225_600_123) + Duration::from_nanos(456_789);
        assert_eq!(rfc3339_millis(at), "2026-01-01T00:00:00.123Z");
        assert_eq!(rfc3339_millis(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn serialises_flat_ecs_keys_and_omits_empty_fields() {
        let mut record = AuditRecord::new();
        record.method = "GET".into();
        let json: serde_json::Value = serde_json::from_str(&record.to_json()).unwrap();
        assert_eq!(json["http.request.method"], "GET");
        assert_eq!(json["ecs.version"], ECS_VERSION);
        assert!(json.get("user.id").is_none());
        assert!(json.get("kea.request.body.truncated").is_none());
    }
}
