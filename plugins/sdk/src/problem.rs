//! RFC 9457 `application/problem+json` local replies.

use crate::host::{Host, HostError};
use serde::Serialize;
use serde_json::{Map, Value};

/// Media type of every error body KEA sends.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem details object (RFC 9457 section 3).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// URI naming the problem type; `about:blank` means "see the status code".
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Extension members, e.g. `errors` for validation failures.
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
}

impl Problem {
    /// A problem of type `about:blank`, titled with the status code's reason phrase.
    pub fn new(status: u16) -> Self {
        Self {
            type_uri: "about:blank".into(),
            title: reason_phrase(status).into(),
            status,
            detail: None,
            instance: None,
            extensions: Map::new(),
        }
    }

    pub fn with_type(mut self, type_uri: &str, title: &str) -> Self {
        self.type_uri = type_uri.into();
        self.title = title.into();
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    pub fn with_extension(mut self, key: &str, value: Value) -> Self {
        self.extensions.insert(key.into(), value);
        self
    }

    pub fn to_body(&self) -> Vec<u8> {
        // Serialising strings and maps of JSON values cannot fail; an empty object is a safe fallback.
        serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
    }

    /// Sends the problem as the local reply, with extra headers (e.g. `WWW-Authenticate`).
    pub fn send(&self, host: &impl Host, extra_headers: &[(&str, &str)]) -> Result<(), HostError> {
        let mut headers = Vec::with_capacity(extra_headers.len() + 2);
        headers.push(("content-type", PROBLEM_JSON));
        headers.push(("cache-control", "no-store"));
        headers.extend_from_slice(extra_headers);
        host.send_local_reply(self.status, &headers, &self.to_body())
    }
}

/// Reason phrases for the statuses KEA's plugins send.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockHost;
    use serde_json::json;

    #[test]
    fn sends_problem_json_with_extensions() {
        let host = MockHost::new();
        Problem::new(400)
            .with_detail("2 errors")
            .with_extension("errors", json!([{"in": "query", "name": "limit"}]))
            .send(&host, &[("x-extra", "1")])
            .unwrap();
        let reply = &host.replies()[0];
        assert_eq!(reply.status, 400);
        assert_eq!(reply.header("content-type"), Some(PROBLEM_JSON));
        assert_eq!(reply.header("x-extra"), Some("1"));
        assert_eq!(
            reply.json(),
            json!({"type": "about:blank", "title": "Bad Request", "status": 400, "detail": "2 errors",
                   "errors": [{"in": "query", "name": "limit"}]})
        );
    }
}
