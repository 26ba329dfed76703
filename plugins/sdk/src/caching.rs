//! A [`Host`] that crosses the proxy-wasm boundary as little as a request allows.
//!
//! Every host call is a crossing (and one more into the module's allocator when it returns data),
//! and the crossings, not the stages' logic, are most of what a plugin costs per request. So:
//!
//! - **Header maps are read at most once per callback.** In one module several stages read the
//!   same headers in the same callback: audit, auth and the cache each read the whole request
//!   header map. This host keeps a copy of each header map for the rest of the callback:
//!   whole-map reads and single lookups are answered from it, and writes go to the proxy and to
//!   the copy (a set replaces every value of the name, an add appends).
//! - **The clock is read once per callback**: a callback takes microseconds, far below any
//!   period or lifetime a stage measures.
//! - **Counters are accumulated in the VM** and sent to the proxy by [`CachingHost::flush_metrics`],
//!   which the module calls on its root tick (at least every [`METRICS_FLUSH_PERIOD`]) and when the
//!   VM stops. Each worker has its own VM and its own totals; the proxy sums what they send, so a
//!   scrape lags by at most one flush period and loses nothing.
//!
//! [`CachingHost::begin`] forgets the header copies and the clock; the module calls it whenever the
//! proxy enters the VM, since the maps may have changed in between (other filters, the upstream).

use crate::host::{Buffer, Bytes, HeaderMap, Host, HostError, HttpCall, MetricKind};
use std::cell::{Cell, RefCell};
use std::time::{Duration, SystemTime};

type Headers = Vec<(String, Bytes)>;

/// The longest a counter increment waits in a VM before the proxy sees it.
pub const METRICS_FLUSH_PERIOD: Duration = Duration::from_millis(50);

/// See the module documentation.
#[derive(Debug, Default)]
pub struct CachingHost<H> {
    inner: H,
    /// Copies of the request and response header maps, taken in this callback.
    request: RefCell<Option<Headers>>,
    response: RefCell<Option<Headers>>,
    /// The clock as first read in this callback.
    now: Cell<Option<SystemTime>>,
    /// Counter increments not yet sent, by metric id (a handful of ids: a list beats a map).
    pending: RefCell<Vec<(u32, i64)>>,
}

impl<H: Host> CachingHost<H> {
    pub fn new(inner: H) -> Self {
        Self {
            inner,
            request: RefCell::new(None),
            response: RefCell::new(None),
            now: Cell::new(None),
            pending: RefCell::new(Vec::new()),
        }
    }

    /// The host behind the copies.
    pub fn inner(&self) -> &H {
        &self.inner
    }

    /// Forgets every copy and the clock: the proxy entered the VM with maps that may have changed.
    pub fn begin(&self) {
        self.request.borrow_mut().take();
        self.response.borrow_mut().take();
        self.now.set(None);
    }

    /// Sends the counter increments accumulated since the last flush, one host call per counter
    /// that moved.
    pub fn flush_metrics(&self) {
        for (id, delta) in self.pending.borrow_mut().iter_mut() {
            if *delta != 0 {
                if let Err(err) = self.inner.increment_metric(*id, *delta) {
                    log::debug!("metric {id}: increment not sent: {err}");
                }
                *delta = 0;
            }
        }
    }

    fn copy_of(&self, map: HeaderMap) -> Option<&RefCell<Option<Headers>>> {
        match map {
            HeaderMap::RequestHeaders => Some(&self.request),
            HeaderMap::ResponseHeaders => Some(&self.response),
            _ => None,
        }
    }
}

impl<H: Host> Host for CachingHost<H> {
    fn header(&self, map: HeaderMap, name: &str) -> Option<Bytes> {
        if let Some(copy) = self.copy_of(map) {
            if let Some(headers) = copy.borrow().as_ref() {
                return headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone());
            }
        }
        self.inner.header(map, name)
    }

    fn headers(&self, map: HeaderMap) -> Vec<(String, Bytes)> {
        let Some(copy) = self.copy_of(map) else {
            return self.inner.headers(map);
        };
        if let Some(headers) = copy.borrow().as_ref() {
            return headers.clone();
        }
        let headers = self.inner.headers(map);
        *copy.borrow_mut() = Some(headers.clone());
        headers
    }

    fn set_header(&self, map: HeaderMap, name: &str, value: Option<&[u8]>) {
        self.inner.set_header(map, name, value);
        let Some(copy) = self.copy_of(map) else {
            return;
        };
        if let Some(headers) = copy.borrow_mut().as_mut() {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            if let Some(value) = value {
                headers.push((name.to_ascii_lowercase(), value.to_vec()));
            }
        }
    }

    fn add_header(&self, map: HeaderMap, name: &str, value: &[u8]) {
        self.inner.add_header(map, name, value);
        if let Some(copy) = self.copy_of(map) {
            if let Some(headers) = copy.borrow_mut().as_mut() {
                headers.push((name.to_ascii_lowercase(), value.to_vec()));
            }
        }
    }

    fn buffer(&self, buffer: Buffer, start: usize, max_size: usize) -> Option<Bytes> {
        self.inner.buffer(buffer, start, max_size)
    }

    fn set_buffer(&self, buffer: Buffer, start: usize, size: usize, value: &[u8]) -> Result<(), HostError> {
        self.inner.set_buffer(buffer, start, size, value)
    }

    fn property(&self, path: &[&str]) -> Option<Bytes> {
        self.inner.property(path)
    }

    fn shared_data(&self, key: &str) -> (Option<Bytes>, Option<u32>) {
        self.inner.shared_data(key)
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
        self.inner.set_shared_data(key, value, cas)
    }

    fn register_queue(&self, name: &str) -> Result<u32, HostError> {
        self.inner.register_queue(name)
    }

    fn resolve_queue(&self, vm_id: &str, name: &str) -> Result<Option<u32>, HostError> {
        self.inner.resolve_queue(vm_id, name)
    }

    fn enqueue(&self, queue: u32, value: &[u8]) -> Result<(), HostError> {
        self.inner.enqueue(queue, value)
    }

    fn dequeue(&self, queue: u32) -> Result<Option<Bytes>, HostError> {
        self.inner.dequeue(queue)
    }

    fn dispatch_http_call(&self, call: &HttpCall<'_>) -> Result<u32, HostError> {
        self.inner.dispatch_http_call(call)
    }

    fn send_local_reply(&self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<(), HostError> {
        self.inner.send_local_reply(status, headers, body)
    }

    fn resume_request(&self) {
        self.inner.resume_request();
    }

    fn resume_response(&self) {
        self.inner.resume_response();
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, HostError> {
        self.inner.define_metric(kind, name)
    }

    fn increment_metric(&self, id: u32, delta: i64) -> Result<(), HostError> {
        let mut pending = self.pending.borrow_mut();
        match pending.iter_mut().find(|(pending_id, _)| *pending_id == id) {
            Some((_, total)) => *total = total.saturating_add(delta),
            None => pending.push((id, delta)),
        }
        Ok(())
    }

    fn record_metric(&self, id: u32, value: u64) -> Result<(), HostError> {
        self.inner.record_metric(id, value)
    }

    fn now(&self) -> SystemTime {
        if let Some(now) = self.now.get() {
            return now;
        }
        let now = self.inner.now();
        self.now.set(Some(now));
        now
    }

    fn random_bytes(&self, out: &mut [u8]) -> Result<(), HostError> {
        self.inner.random_bytes(out)
    }

    fn set_tick_period(&self, period: Duration) {
        self.inner.set_tick_period(period);
    }

    fn call_foreign_function(&self, name: &str, arguments: &[u8]) -> Result<Option<Bytes>, HostError> {
        self.inner.call_foreign_function(name, arguments)
    }

    fn log(&self, level: log::Level, message: &str) {
        self.inner.log(level, message);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::mock::MockHost;

    fn host() -> CachingHost<MockHost> {
        CachingHost::new(MockHost::new().with_request(
            "GET",
            "/a",
            &[("x-a", "1"), ("x-b", "2"), ("x-a", "3")],
        ))
    }

    #[test]
    fn a_map_is_read_once_per_callback() {
        let host = host();
        host.inner().take_host_calls();
        let first = host.headers(HeaderMap::RequestHeaders);
        assert_eq!(host.headers(HeaderMap::RequestHeaders), first);
        assert_eq!(host.header(HeaderMap::RequestHeaders, "X-B").unwrap(), b"2");
        assert_eq!(host.inner().take_host_calls().get("headers"), Some(&1));
        assert!(host.inner().take_host_calls().is_empty());
        host.begin();
        host.headers(HeaderMap::RequestHeaders);
        assert_eq!(host.inner().take_host_calls().get("headers"), Some(&1));
    }

    #[test]
    fn writes_reach_the_proxy_and_the_copy_alike() {
        let host = host();
        host.headers(HeaderMap::RequestHeaders);
        host.set_header(HeaderMap::RequestHeaders, "x-a", Some(b"9"));
        host.add_header(HeaderMap::RequestHeaders, "x-c", b"4");
        host.set_header(HeaderMap::RequestHeaders, "x-b", None);
        host.set_header(HeaderMap::RequestHeaders, "x-d", Some(b"5"));
        let copy = host.headers(HeaderMap::RequestHeaders);
        host.begin();
        assert_eq!(copy, host.headers(HeaderMap::RequestHeaders));
        let names: Vec<_> = copy.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.ends_with(&["x-a", "x-c", "x-d"]), "{names:?}");
    }

    #[test]
    fn counters_reach_the_proxy_summed_on_flush() {
        let host = host();
        let hits = host.define_metric(MetricKind::Counter, "hits").unwrap();
        let misses = host.define_metric(MetricKind::Counter, "misses").unwrap();
        host.inner().take_host_calls();
        for _ in 0..3 {
            host.increment_metric(hits, 1).unwrap();
        }
        host.increment_metric(misses, 2).unwrap();
        assert!(
            host.inner().take_host_calls().is_empty(),
            "no crossing before the flush"
        );
        assert_eq!(host.inner().metric("hits"), Some(0));
        host.flush_metrics();
        assert_eq!(host.inner().metric("hits"), Some(3));
        assert_eq!(host.inner().metric("misses"), Some(2));
        assert_eq!(host.inner().take_host_calls().get("increment_metric"), Some(&2));
        // Nothing moved since: nothing sent.
        host.flush_metrics();
        assert!(host.inner().take_host_calls().is_empty());
        host.increment_metric(misses, 1).unwrap();
        host.flush_metrics();
        assert_eq!(host.inner().metric("misses"), Some(3));
        assert_eq!(host.inner().metric("hits"), Some(3));
    }

    #[test]
    fn the_clock_is_read_once_per_callback() {
        let host = host();
        host.inner().take_host_calls();
        let first = host.now();
        host.inner().advance(Duration::from_secs(5));
        assert_eq!(host.now(), first);
        assert_eq!(host.inner().take_host_calls().get("now"), Some(&1));
        host.begin();
        assert_eq!(host.now(), first + Duration::from_secs(5));
    }
}
