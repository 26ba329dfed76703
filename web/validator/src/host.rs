//! [`PageHost`]: the [`Host`] one request from a page runs against.
//!
//! The validate plugin reads request headers and the request body, writes `x-kea-validation`,
//! sends local replies, logs report-mode lines and counts metrics. Those are served here; what a
//! page has no use for (shared data, queues, callouts, foreign functions, randomness) answers
//! harmlessly — absent or an error the plugin already handles.

use kea_plugin_sdk::{Buffer, Bytes, HeaderMap, Host, HostError, HttpCall, MetricKind};
use std::cell::RefCell;
use std::time::{Duration, SystemTime};

/// The local reply the plugin sent, as the gateway would send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// One page request: its headers (pseudo-headers included, names lower case) and body; records
/// what the plugin does with it.
#[derive(Debug, Default)]
pub struct PageHost {
    request: RefCell<Vec<(String, Bytes)>>,
    body: Bytes,
    reply: RefCell<Option<Reply>>,
    logs: RefCell<Vec<String>>,
}

impl PageHost {
    /// A host for one request. Header names are lower-cased (as Envoy hands them to plugins).
    pub fn new(headers: Vec<(String, Bytes)>, body: Bytes) -> Self {
        let request = headers
            .into_iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value))
            .collect();
        Self {
            request: RefCell::new(request),
            body,
            ..Self::default()
        }
    }

    /// The local reply, if the plugin answered the request itself.
    pub fn reply(&self) -> Option<Reply> {
        self.reply.borrow().clone()
    }

    /// A request header as the plugin left it (e.g. `x-kea-validation`).
    pub fn request_header(&self, name: &str) -> Option<String> {
        self.header(HeaderMap::RequestHeaders, name)
            .map(kea_plugin_sdk::host::lossy)
    }

    /// The request headers as the plugin left them.
    pub fn request_headers(&self) -> Vec<(String, Bytes)> {
        self.request.borrow().clone()
    }

    /// Lines the plugin wrote to the proxy log for this request (report mode explains itself there).
    pub fn logs(&self) -> Vec<String> {
        self.logs.borrow().clone()
    }
}

impl Host for PageHost {
    fn header(&self, map: HeaderMap, name: &str) -> Option<Bytes> {
        if map != HeaderMap::RequestHeaders {
            return None;
        }
        self.request
            .borrow()
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    fn headers(&self, map: HeaderMap) -> Vec<(String, Bytes)> {
        if map == HeaderMap::RequestHeaders {
            self.request.borrow().clone()
        } else {
            Vec::new()
        }
    }

    fn set_header(&self, map: HeaderMap, name: &str, value: Option<&[u8]>) {
        if map != HeaderMap::RequestHeaders {
            return;
        }
        let mut request = self.request.borrow_mut();
        request.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if let Some(value) = value {
            request.push((name.to_ascii_lowercase(), value.to_vec()));
        }
    }

    fn add_header(&self, map: HeaderMap, name: &str, value: &[u8]) {
        if map == HeaderMap::RequestHeaders {
            self.request
                .borrow_mut()
                .push((name.to_ascii_lowercase(), value.to_vec()));
        }
    }

    fn buffer(&self, buffer: Buffer, start: usize, max_size: usize) -> Option<Bytes> {
        if buffer != Buffer::RequestBody {
            return None;
        }
        let end = start.saturating_add(max_size).min(self.body.len());
        let slice = self.body.get(start..end)?;
        (!slice.is_empty()).then(|| slice.to_vec())
    }

    fn set_buffer(&self, _: Buffer, _: usize, _: usize, _: &[u8]) -> Result<(), HostError> {
        Err(HostError::BadArgument)
    }

    /// No Envoy route here: rules matching `routeNames` do not match on a page.
    fn property(&self, _: &[&str]) -> Option<Bytes> {
        None
    }

    fn shared_data(&self, _: &str) -> (Option<Bytes>, Option<u32>) {
        (None, None)
    }

    fn set_shared_data(&self, _: &str, _: &[u8], _: Option<u32>) -> Result<(), HostError> {
        Err(HostError::NotFound)
    }

    fn register_queue(&self, _: &str) -> Result<u32, HostError> {
        Err(HostError::NotFound)
    }

    fn resolve_queue(&self, _: &str, _: &str) -> Result<Option<u32>, HostError> {
        Ok(None)
    }

    fn enqueue(&self, _: u32, _: &[u8]) -> Result<(), HostError> {
        Err(HostError::NotFound)
    }

    fn dequeue(&self, _: u32) -> Result<Option<Bytes>, HostError> {
        Ok(None)
    }

    /// Bundles come inline (see `Engine::new`): nothing is ever fetched from a page.
    fn dispatch_http_call(&self, _: &HttpCall<'_>) -> Result<u32, HostError> {
        Err(HostError::BadArgument)
    }

    fn send_local_reply(&self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<(), HostError> {
        let mut reply = self.reply.borrow_mut();
        // Envoy sends the first local reply of a stream; the plugin never sends two.
        if reply.is_none() {
            *reply = Some(Reply {
                status,
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                body: body.to_vec(),
            });
        }
        Ok(())
    }

    fn resume_request(&self) {}

    fn resume_response(&self) {}

    /// Metrics are proxy statistics: counted nowhere on a page.
    fn define_metric(&self, _: MetricKind, _: &str) -> Result<u32, HostError> {
        Ok(0)
    }

    fn increment_metric(&self, _: u32, _: i64) -> Result<(), HostError> {
        Ok(())
    }

    fn record_metric(&self, _: u32, _: u64) -> Result<(), HostError> {
        Ok(())
    }

    /// Only fetched bundles read the clock, and a page takes bundles inline; still the real time
    /// (`SystemTime::now` traps on `wasm32-unknown-unknown`, so the browser's clock there).
    fn now(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(crate::clock::now_millis())
    }

    fn random_bytes(&self, _: &mut [u8]) -> Result<(), HostError> {
        Err(HostError::NotFound)
    }

    fn set_tick_period(&self, _: Duration) {}

    fn call_foreign_function(&self, _: &str, _: &[u8]) -> Result<Option<Bytes>, HostError> {
        Err(HostError::NotFound)
    }

    fn log(&self, _: log::Level, message: &str) {
        self.logs.borrow_mut().push(message.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_request_and_records_the_plugins_effects() {
        let host = PageHost::new(
            vec![
                (":Method".into(), b"POST".to_vec()),
                ("Cookie".into(), b"a=1".to_vec()),
            ],
            b"{\"a\": 1}".to_vec(),
        );
        assert_eq!(host.request_header(":method").as_deref(), Some("POST"));
        assert_eq!(host.header(HeaderMap::ResponseHeaders, ":method"), None);
        assert_eq!(
            host.buffer(Buffer::RequestBody, 1, 3).as_deref(),
            Some(&b"\"a\""[..])
        );
        assert_eq!(host.buffer(Buffer::RequestBody, 100, 3), None);
        assert_eq!(host.buffer(Buffer::ResponseBody, 0, 3), None);
        host.set_header(HeaderMap::RequestHeaders, "X-Kea-Validation", Some(b"failed"));
        host.set_header(HeaderMap::RequestHeaders, "x-kea-validation", Some(b"passed"));
        assert_eq!(host.request_header("x-kea-validation").as_deref(), Some("passed"));
        assert_eq!(host.headers(HeaderMap::RequestHeaders).len(), 3);
        host.send_local_reply(400, &[("content-type", "application/problem+json")], b"{}")
            .unwrap_or_default();
        host.send_local_reply(500, &[], b"").unwrap_or_default();
        assert_eq!(host.reply().map(|r| r.status), Some(400));
        host.log(log::Level::Warn, "line");
        assert_eq!(host.logs(), ["line"]);
        // What a page has no use for answers harmlessly.
        assert_eq!(host.define_metric(MetricKind::Counter, "m"), Ok(0));
        assert_eq!(host.increment_metric(0, 1), Ok(()));
        assert_eq!(host.shared_data("k"), (None, None));
        assert!(host.random_bytes(&mut [0; 4]).is_err());
        let call = HttpCall {
            cluster: "c",
            headers: vec![],
            body: None,
            timeout: Duration::from_secs(1),
        };
        assert!(host.dispatch_http_call(&call).is_err());
        assert!(host.now() > SystemTime::UNIX_EPOCH);
    }
}
