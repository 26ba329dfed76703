//! A [`Host`] for native unit tests: it holds the request/response state a test sets up, records
//! every effect a plugin has (headers written, callouts made, local replies, metrics, queue items),
//! and can answer callouts. Shared data and queues follow Envoy's semantics (CAS tokens, FIFO), so
//! several `MockHost`s built with [`MockHost::sharing_with`] behave like the workers of one proxy.

use crate::host::{Buffer, Bytes, HeaderMap, Host, HostError, HttpCall, MetricKind};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

/// A callout the plugin made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    pub token: u32,
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Bytes>,
    pub timeout: Duration,
}

impl RecordedCall {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A local reply the plugin sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl LocalReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// State every "worker" of one mock proxy sees: shared data, queues and metrics.
#[derive(Debug, Default)]
pub struct SharedState {
    data: RefCell<HashMap<String, (Bytes, u32)>>,
    next_cas: Cell<u32>,
    queues: RefCell<BTreeMap<u32, (String, VecDeque<Bytes>)>>,
    metrics: RefCell<Vec<(String, MetricKind, i64)>>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct MockHost {
    shared: Rc<SharedState>,
    headers: RefCell<HashMap<HeaderMap, Vec<(String, Bytes)>>>,
    buffers: RefCell<HashMap<Buffer, Bytes>>,
    properties: RefCell<HashMap<Vec<String>, Bytes>>,
    calls: RefCell<Vec<RecordedCall>>,
    failing_clusters: RefCell<Vec<String>>,
    next_token: Cell<u32>,
    replies: RefCell<Vec<LocalReply>>,
    now: Cell<SystemTime>,
    tick_period: Cell<Option<Duration>>,
    resumed_requests: Cell<u32>,
    resumed_responses: Cell<u32>,
    logs: RefCell<Vec<(log::Level, String)>>,
    foreign: RefCell<Option<ForeignFunction>>,
    /// Host calls made, by `Host` method: what a plugin costs in proxy-wasm crossings.
    host_calls: RefCell<BTreeMap<&'static str, u32>>,
}

/// What a foreign function answers.
pub type ForeignResult = Result<Option<Bytes>, HostError>;

/// A handler for foreign-function calls: (function name, arguments) to the answer.
pub type ForeignHandler = dyn Fn(&str, &[u8]) -> ForeignResult;

/// A test's stand-in for the proxy's foreign functions.
pub struct ForeignFunction(pub Box<ForeignHandler>);

impl std::fmt::Debug for ForeignFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ForeignFunction")
    }
}

impl Default for MockHost {
    fn default() -> Self {
        Self::sharing_with(Rc::new(SharedState::default()))
    }
}

impl MockHost {
    pub fn new() -> Self {
        Self::default()
    }

    /// A host that shares data, queues and metrics with others built from the same state, like
    /// two worker threads of one Envoy.
    pub fn sharing_with(shared: Rc<SharedState>) -> Self {
        Self {
            shared,
            headers: RefCell::default(),
            buffers: RefCell::default(),
            properties: RefCell::default(),
            calls: RefCell::default(),
            failing_clusters: RefCell::default(),
            next_token: Cell::new(1),
            replies: RefCell::default(),
            now: Cell::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)),
            tick_period: Cell::new(None),
            resumed_requests: Cell::new(0),
            resumed_responses: Cell::new(0),
            logs: RefCell::default(),
            foreign: RefCell::default(),
            host_calls: RefCell::default(),
        }
    }

    fn count(&self, method: &'static str) {
        *self.host_calls.borrow_mut().entry(method).or_default() += 1;
    }

    /// The host calls made since the last call of this, by `Host` method. On the proxy each is
    /// one crossing of the wasm boundary (`ProxyHost` maps every method to one host call).
    pub fn take_host_calls(&self) -> BTreeMap<&'static str, u32> {
        std::mem::take(&mut *self.host_calls.borrow_mut())
    }

    pub fn shared(&self) -> Rc<SharedState> {
        Rc::clone(&self.shared)
    }

    // ---- setup ----

    /// Sets a request: `:method`, `:path`, `:authority`, `:scheme` and the given headers.
    pub fn with_request(self, method: &str, path: &str, headers: &[(&str, &str)]) -> Self {
        let mut all = vec![
            (":method".to_string(), method.as_bytes().to_vec()),
            (":path".to_string(), path.as_bytes().to_vec()),
            (":authority".to_string(), b"api.example.com".to_vec()),
            (":scheme".to_string(), b"http".to_vec()),
        ];
        all.extend(
            headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec())),
        );
        self.headers.borrow_mut().insert(HeaderMap::RequestHeaders, all);
        self
    }

    /// Sets response headers with `:status`.
    pub fn with_response(self, status: u16, headers: &[(&str, &str)]) -> Self {
        self.set_response(status, headers);
        self
    }

    pub fn set_response(&self, status: u16, headers: &[(&str, &str)]) {
        let mut all = vec![(":status".to_string(), status.to_string().into_bytes())];
        all.extend(
            headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec())),
        );
        self.headers.borrow_mut().insert(HeaderMap::ResponseHeaders, all);
    }

    /// Sets a raw header value (for bytes that are not UTF-8).
    pub fn set_raw_header(&self, map: HeaderMap, name: &str, value: &[u8]) {
        self.set_header(map, name, Some(value));
    }

    pub fn set_body(&self, buffer: Buffer, body: &[u8]) {
        self.buffers.borrow_mut().insert(buffer, body.to_vec());
    }

    pub fn set_property(&self, path: &[&str], value: &[u8]) {
        let key = path.iter().map(|s| s.to_string()).collect();
        self.properties.borrow_mut().insert(key, value.to_vec());
    }

    pub fn set_property_i64(&self, path: &[&str], value: i64) {
        self.set_property(path, &value.to_le_bytes());
    }

    pub fn set_now(&self, now: SystemTime) {
        self.now.set(now);
    }

    pub fn advance(&self, by: Duration) {
        self.now.set(self.now.get() + by);
    }

    /// Makes `dispatch_http_call` to this cluster fail as if the cluster did not exist.
    pub fn fail_cluster(&self, cluster: &str) {
        self.failing_clusters.borrow_mut().push(cluster.to_string());
    }

    /// Answers foreign-function calls (by default the mock proxy has none: `NotFound`).
    pub fn set_foreign_function(
        &self,
        handler: impl Fn(&str, &[u8]) -> Result<Option<Bytes>, HostError> + 'static,
    ) {
        *self.foreign.borrow_mut() = Some(ForeignFunction(Box::new(handler)));
    }

    /// Loads a callout response so a plugin's call-response callback can read it.
    pub fn answer_call(&self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        let mut all = vec![(":status".to_string(), status.to_string().into_bytes())];
        all.extend(
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())),
        );
        self.headers
            .borrow_mut()
            .insert(HeaderMap::CallResponseHeaders, all);
        self.buffers
            .borrow_mut()
            .insert(Buffer::CallResponseBody, body.to_vec());
    }

    // ---- inspection ----

    pub fn calls(&self) -> Vec<RecordedCall> {
        self.calls.borrow().clone()
    }

    pub fn take_calls(&self) -> Vec<RecordedCall> {
        std::mem::take(&mut *self.calls.borrow_mut())
    }

    pub fn replies(&self) -> Vec<LocalReply> {
        self.replies.borrow().clone()
    }

    pub fn header_text(&self, map: HeaderMap, name: &str) -> Option<String> {
        self.header(map, name).map(crate::host::lossy)
    }

    /// A metric's current value by name.
    pub fn metric(&self, name: &str) -> Option<i64> {
        self.shared
            .metrics
            .borrow()
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, v)| *v)
    }

    /// Every metric defined, by name, with its current value.
    pub fn metrics(&self) -> BTreeMap<String, i64> {
        self.shared
            .metrics
            .borrow()
            .iter()
            .map(|(name, _, value)| (name.clone(), *value))
            .collect()
    }

    /// Items waiting in a queue, oldest first.
    pub fn queue_items(&self, name: &str) -> Vec<Bytes> {
        self.shared
            .queues
            .borrow()
            .values()
            .find(|(n, _)| n == name)
            .map(|(_, q)| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Number of shared-data keys and the bytes their values hold (to prove memory bounds).
    pub fn shared_data_usage(&self) -> (usize, usize) {
        let data = self.shared.data.borrow();
        (data.len(), data.values().map(|(value, _)| value.len()).sum())
    }

    /// Lines written with [`Host::log`].
    pub fn logs(&self) -> Vec<(log::Level, String)> {
        self.logs.borrow().clone()
    }

    pub fn tick_period(&self) -> Option<Duration> {
        self.tick_period.get()
    }

    pub fn resumed_requests(&self) -> u32 {
        self.resumed_requests.get()
    }

    pub fn resumed_responses(&self) -> u32 {
        self.resumed_responses.get()
    }
}

impl Host for MockHost {
    fn header(&self, map: HeaderMap, name: &str) -> Option<Bytes> {
        self.count("header");
        let headers = self.headers.borrow();
        headers
            .get(&map)?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    fn headers(&self, map: HeaderMap) -> Vec<(String, Bytes)> {
        self.count("headers");
        self.headers.borrow().get(&map).cloned().unwrap_or_default()
    }

    fn set_header(&self, map: HeaderMap, name: &str, value: Option<&[u8]>) {
        self.count("set_header");
        let mut headers = self.headers.borrow_mut();
        let list = headers.entry(map).or_default();
        list.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        if let Some(value) = value {
            list.push((name.to_ascii_lowercase(), value.to_vec()));
        }
    }

    fn add_header(&self, map: HeaderMap, name: &str, value: &[u8]) {
        self.count("add_header");
        let mut headers = self.headers.borrow_mut();
        headers
            .entry(map)
            .or_default()
            .push((name.to_ascii_lowercase(), value.to_vec()));
    }

    fn buffer(&self, buffer: Buffer, start: usize, max_size: usize) -> Option<Bytes> {
        self.count("buffer");
        let buffers = self.buffers.borrow();
        let data = buffers.get(&buffer)?;
        let end = start.saturating_add(max_size).min(data.len());
        let slice = data.get(start..end)?;
        (!slice.is_empty()).then(|| slice.to_vec())
    }

    fn set_buffer(&self, buffer: Buffer, start: usize, size: usize, value: &[u8]) -> Result<(), HostError> {
        self.count("set_buffer");
        let mut buffers = self.buffers.borrow_mut();
        let data = buffers.entry(buffer).or_default();
        let start = start.min(data.len());
        let end = start.saturating_add(size).min(data.len());
        data.splice(start..end, value.iter().copied());
        Ok(())
    }

    fn property(&self, path: &[&str]) -> Option<Bytes> {
        self.count("property");
        let key: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        self.properties.borrow().get(&key).cloned()
    }

    fn shared_data(&self, key: &str) -> (Option<Bytes>, Option<u32>) {
        self.count("shared_data");
        match self.shared.data.borrow().get(key) {
            Some((value, cas)) => (Some(value.clone()), Some(*cas)),
            None => (None, None),
        }
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
        self.count("set_shared_data");
        let mut data = self.shared.data.borrow_mut();
        if let (Some(expected), Some((_, current))) = (cas, data.get(key)) {
            if expected != 0 && expected != *current {
                return Err(HostError::CasMismatch);
            }
        }
        let next = self.shared.next_cas.get().wrapping_add(1).max(1);
        self.shared.next_cas.set(next);
        data.insert(key.to_string(), (value.to_vec(), next));
        Ok(())
    }

    fn register_queue(&self, name: &str) -> Result<u32, HostError> {
        self.count("register_queue");
        let mut queues = self.shared.queues.borrow_mut();
        if let Some((id, _)) = queues.iter().find(|(_, (n, _))| n == name) {
            return Ok(*id);
        }
        let id = queues.len() as u32 + 1;
        queues.insert(id, (name.to_string(), VecDeque::new()));
        Ok(id)
    }

    fn resolve_queue(&self, _vm_id: &str, name: &str) -> Result<Option<u32>, HostError> {
        self.count("resolve_queue");
        let queues = self.shared.queues.borrow();
        Ok(queues.iter().find(|(_, (n, _))| n == name).map(|(id, _)| *id))
    }

    fn enqueue(&self, queue: u32, value: &[u8]) -> Result<(), HostError> {
        self.count("enqueue");
        let mut queues = self.shared.queues.borrow_mut();
        let (_, items) = queues.get_mut(&queue).ok_or(HostError::NotFound)?;
        items.push_back(value.to_vec());
        Ok(())
    }

    fn dequeue(&self, queue: u32) -> Result<Option<Bytes>, HostError> {
        self.count("dequeue");
        let mut queues = self.shared.queues.borrow_mut();
        let (_, items) = queues.get_mut(&queue).ok_or(HostError::NotFound)?;
        Ok(items.pop_front())
    }

    fn dispatch_http_call(&self, call: &HttpCall<'_>) -> Result<u32, HostError> {
        self.count("dispatch_http_call");
        if self.failing_clusters.borrow().iter().any(|c| c == call.cluster) {
            return Err(HostError::BadArgument);
        }
        let token = self.next_token.get();
        self.next_token.set(token + 1);
        self.calls.borrow_mut().push(RecordedCall {
            token,
            cluster: call.cluster.to_string(),
            headers: call
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: call.body.map(<[u8]>::to_vec),
            timeout: call.timeout,
        });
        Ok(token)
    }

    fn send_local_reply(&self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<(), HostError> {
        self.count("send_local_reply");
        self.replies.borrow_mut().push(LocalReply {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
        });
        Ok(())
    }

    fn resume_request(&self) {
        self.count("resume_request");
        self.resumed_requests.set(self.resumed_requests.get() + 1);
    }

    fn resume_response(&self) {
        self.count("resume_response");
        self.resumed_responses.set(self.resumed_responses.get() + 1);
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, HostError> {
        self.count("define_metric");
        let mut metrics = self.shared.metrics.borrow_mut();
        if let Some(index) = metrics.iter().position(|(n, _, _)| n == name) {
            return Ok(index as u32);
        }
        metrics.push((name.to_string(), kind, 0));
        Ok(metrics.len() as u32 - 1)
    }

    fn increment_metric(&self, id: u32, delta: i64) -> Result<(), HostError> {
        self.count("increment_metric");
        let mut metrics = self.shared.metrics.borrow_mut();
        let (_, _, value) = metrics.get_mut(id as usize).ok_or(HostError::NotFound)?;
        *value += delta;
        Ok(())
    }

    fn record_metric(&self, id: u32, value: u64) -> Result<(), HostError> {
        self.count("record_metric");
        let mut metrics = self.shared.metrics.borrow_mut();
        let (_, _, current) = metrics.get_mut(id as usize).ok_or(HostError::NotFound)?;
        *current = value as i64;
        Ok(())
    }

    fn now(&self) -> SystemTime {
        self.count("now");
        self.now.get()
    }

    /// "Randomness" from a process-wide counter run through SHA-256: never the same bytes twice,
    /// also across hosts (a proxy's CSPRNG does not restart per request), and no OS entropy.
    fn random_bytes(&self, out: &mut [u8]) -> Result<(), HostError> {
        self.count("random_bytes");
        use sha2::{Digest, Sha256};
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        for chunk in out.chunks_mut(32) {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let digest = Sha256::digest(n.to_le_bytes());
            for (out, byte) in chunk.iter_mut().zip(digest.iter()) {
                *out = *byte;
            }
        }
        Ok(())
    }

    fn set_tick_period(&self, period: Duration) {
        self.count("set_tick_period");
        self.tick_period.set(Some(period));
    }

    fn call_foreign_function(&self, name: &str, arguments: &[u8]) -> ForeignResult {
        self.count("call_foreign_function");
        match self.foreign.borrow().as_ref() {
            Some(handler) => (handler.0)(name, arguments),
            None => Err(HostError::NotFound),
        }
    }

    fn log(&self, level: log::Level, message: &str) {
        self.count("log");
        self.logs.borrow_mut().push((level, message.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_data_follows_cas_semantics() {
        let host = MockHost::new();
        host.set_shared_data("k", b"1", None).unwrap();
        let (value, cas) = host.shared_data("k");
        assert_eq!(value.as_deref(), Some(&b"1"[..]));
        host.set_shared_data("k", b"2", cas).unwrap();
        assert_eq!(host.set_shared_data("k", b"3", cas), Err(HostError::CasMismatch));
        assert_eq!(host.shared_data("k").0.as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn workers_share_data_queues_and_metrics() {
        let a = MockHost::new();
        let b = MockHost::sharing_with(a.shared());
        let q = a.register_queue("q").unwrap();
        b.enqueue(b.resolve_queue("vm", "q").unwrap().unwrap(), b"x")
            .unwrap();
        assert_eq!(a.dequeue(q).unwrap().as_deref(), Some(&b"x"[..]));
        assert_eq!(a.dequeue(q).unwrap(), None);
        let m = a.define_metric(MetricKind::Counter, "hits").unwrap();
        let m2 = b.define_metric(MetricKind::Counter, "hits").unwrap();
        a.increment_metric(m, 2).unwrap();
        b.increment_metric(m2, 3).unwrap();
        assert_eq!(a.metric("hits"), Some(5));
    }

    #[test]
    fn headers_are_case_insensitive_and_settable() {
        let host = MockHost::new().with_request("GET", "/a", &[("X-Thing", "1")]);
        assert_eq!(
            host.header_text(HeaderMap::RequestHeaders, "x-thing").as_deref(),
            Some("1")
        );
        host.set_header(HeaderMap::RequestHeaders, "x-thing", None);
        assert_eq!(host.header(HeaderMap::RequestHeaders, "x-thing"), None);
    }

    #[test]
    fn failing_cluster_rejects_callouts() {
        let host = MockHost::new();
        host.fail_cluster("down");
        let call = HttpCall {
            cluster: "down",
            headers: vec![],
            body: None,
            timeout: Duration::from_secs(5),
        };
        assert!(host.dispatch_http_call(&call).is_err());
        assert!(host.calls().is_empty());
    }
}
