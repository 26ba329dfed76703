//! What every callout shares: its answer read with the checks that come before a body enters the
//! VM, and the schedule of retries after failures. Auth (key sets, discovery), validate (bundles)
//! and audit (sink batches) use these, so a limit or a retry means the same in each.

use crate::cache_control::CacheControl;
use crate::host::{lossy, status_of, Buffer, Bytes, HeaderMap, Host};
use std::time::Duration;

/// The wait after the `failures`-th consecutive failure: `initial`, doubled per further failure,
/// at most `max` (0 failures waits as 1).
pub fn backoff(initial: Duration, max: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    initial.saturating_mul(1u32 << doublings).min(max)
}

/// Why a callout's answer is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("no answer (connection failure or timeout)")]
    NoAnswer,
    #[error("status {0}")]
    Status(u16),
    #[error("answer of {0} bytes exceeds the limit of {1}")]
    TooLarge(usize, usize),
}

/// The answer the proxy is delivering to `on_http_call_response`: status and headers read, the
/// body left in the proxy until [`CallAnswer::body`] asks for it within a limit.
#[derive(Debug)]
pub struct CallAnswer {
    pub status: u16,
    headers: Vec<(String, Bytes)>,
    body_size: usize,
}

impl CallAnswer {
    /// Reads the answer; `Err(NoAnswer)` when the call ended without one (reset, timeout).
    pub fn read(host: &impl Host, body_size: usize) -> Result<Self, AnswerError> {
        let headers = host.headers(HeaderMap::CallResponseHeaders);
        let status = status_of(&headers).ok_or(AnswerError::NoAnswer)?;
        Ok(Self {
            status,
            headers,
            body_size,
        })
    }

    /// The answer, when its status is 200.
    pub fn ok(self) -> Result<Self, AnswerError> {
        match self.status {
            200 => Ok(self),
            other => Err(AnswerError::Status(other)),
        }
    }

    /// A header's first value (lossy text).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| lossy(value.clone()))
    }

    /// How long the answer may be used, by its `Cache-Control: max-age` (ignored when its
    /// duplicates disagree).
    pub fn max_age(&self) -> Option<Duration> {
        let values: Vec<String> = self
            .headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("cache-control"))
            .map(|(_, value)| lossy(value.clone()))
            .collect();
        let directives = CacheControl::parse(values.iter().map(String::as_str));
        (!directives.conflicting)
            .then_some(directives.max_age)
            .flatten()
            .map(Duration::from_secs)
    }

    /// The body, refused before it is copied into the VM when it is over `max_bytes`.
    pub fn body(&self, host: &impl Host, max_bytes: usize) -> Result<Bytes, AnswerError> {
        if self.body_size > max_bytes {
            return Err(AnswerError::TooLarge(self.body_size, max_bytes));
        }
        Ok(host
            .buffer(Buffer::CallResponseBody, 0, self.body_size)
            .unwrap_or_default())
    }

    /// At most the first `max_bytes` of the body (for a diagnostic).
    pub fn body_start(&self, host: &impl Host, max_bytes: usize) -> Option<Bytes> {
        (self.body_size > 0)
            .then(|| host.buffer(Buffer::CallResponseBody, 0, self.body_size.min(max_bytes)))
            .flatten()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::mock::MockHost;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(s(1), s(30), 0), s(1));
        assert_eq!(backoff(s(1), s(30), 1), s(1));
        assert_eq!(backoff(s(1), s(30), 2), s(2));
        assert_eq!(backoff(s(1), s(30), 4), s(8));
        assert_eq!(backoff(s(1), s(30), 9), s(30));
        assert_eq!(backoff(s(1), s(30), u32::MAX), s(30));
        assert_eq!(backoff(Duration::MAX, s(30), 40), s(30));
    }

    fn answered(status: u16, headers: &[(&str, &str)], body: &[u8]) -> MockHost {
        let host = MockHost::new();
        host.answer_call(status, headers, body);
        host
    }

    #[test]
    fn reads_status_headers_lifetime_and_a_bounded_body() {
        let host = answered(
            200,
            &[("ETag", "\"v1\""), ("cache-control", "public, max-age=300")],
            b"{\"keys\": []}",
        );
        let answer = CallAnswer::read(&host, 12).unwrap().ok().unwrap();
        assert_eq!(answer.header("etag").as_deref(), Some("\"v1\""));
        assert_eq!(answer.max_age(), Some(s(300)));
        assert_eq!(answer.body(&host, 12).unwrap(), b"{\"keys\": []}");
        assert_eq!(answer.body(&host, 11), Err(AnswerError::TooLarge(12, 11)));
        assert_eq!(answer.body_start(&host, 3).unwrap(), b"{\"k");
    }

    #[test]
    fn refusals() {
        let host = answered(503, &[], b"down");
        let answer = CallAnswer::read(&host, 4).unwrap();
        assert_eq!(answer.ok().unwrap_err(), AnswerError::Status(503));
        assert_eq!(
            CallAnswer::read(&MockHost::new(), 0).unwrap_err(),
            AnswerError::NoAnswer
        );
        // Disagreeing lifetimes are no lifetime.
        let host = answered(
            200,
            &[("cache-control", "max-age=60"), ("cache-control", "max-age=5")],
            b"",
        );
        assert_eq!(CallAnswer::read(&host, 0).unwrap().max_age(), None);
    }
}
