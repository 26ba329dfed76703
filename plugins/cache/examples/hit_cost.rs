//! What one cache hit asks of the proxy: the host calls of `CacheStream::on_request_headers` on a
//! fresh entry (by kind, with the bytes crossing the VM boundary each way), and the logic's
//! native time per hit (MockHost; no proxy, no VM).
//! cargo run --release -p kea-cache --example hit_cost
use kea_cache::plugin::configure;
use kea_cache::stream::{CacheStream, RequestAction};
use kea_plugin_sdk::host::{Buffer, Bytes, HeaderMap, Host, HostError, HttpCall, MetricKind};
use kea_plugin_sdk::mock::MockHost;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

/// Host calls by name: (count, bytes into the VM, bytes out of the VM).
#[derive(Default)]
struct Counting {
    inner: MockHost,
    calls: RefCell<BTreeMap<&'static str, (u64, usize, usize)>>,
}

impl Counting {
    fn count(&self, name: &'static str, into_vm: usize, out_of_vm: usize) {
        let mut calls = self.calls.borrow_mut();
        let entry = calls.entry(name).or_default();
        entry.0 += 1;
        entry.1 += into_vm;
        entry.2 += out_of_vm;
    }
}

fn pairs_len(pairs: &[(String, Bytes)]) -> usize {
    pairs.iter().map(|(n, v)| n.len() + v.len()).sum()
}

impl Host for Counting {
    fn header(&self, map: HeaderMap, name: &str) -> Option<Bytes> {
        let value = self.inner.header(map, name);
        self.count(
            "get_header_map_value",
            value.as_ref().map_or(0, Vec::len),
            name.len(),
        );
        value
    }
    fn headers(&self, map: HeaderMap) -> Vec<(String, Bytes)> {
        let headers = self.inner.headers(map);
        self.count("get_header_map_pairs", pairs_len(&headers), 0);
        headers
    }
    fn set_header(&self, map: HeaderMap, name: &str, value: Option<&[u8]>) {
        self.count(
            "replace_header_map_value",
            0,
            name.len() + value.map_or(0, <[u8]>::len),
        );
        self.inner.set_header(map, name, value)
    }
    fn add_header(&self, map: HeaderMap, name: &str, value: &[u8]) {
        self.count("add_header_map_value", 0, name.len() + value.len());
        self.inner.add_header(map, name, value)
    }
    fn buffer(&self, buffer: Buffer, start: usize, max_size: usize) -> Option<Bytes> {
        let value = self.inner.buffer(buffer, start, max_size);
        self.count("get_buffer_bytes", value.as_ref().map_or(0, Vec::len), 0);
        value
    }
    fn set_buffer(&self, buffer: Buffer, start: usize, size: usize, value: &[u8]) -> Result<(), HostError> {
        self.count("set_buffer_bytes", 0, value.len());
        self.inner.set_buffer(buffer, start, size, value)
    }
    fn property(&self, path: &[&str]) -> Option<Bytes> {
        let value = self.inner.property(path);
        self.count("get_property", value.as_ref().map_or(0, Vec::len), 0);
        value
    }
    fn shared_data(&self, key: &str) -> (Option<Bytes>, Option<u32>) {
        let value = self.inner.shared_data(key);
        self.count("get_shared_data", value.0.as_ref().map_or(0, Vec::len), key.len());
        value
    }
    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
        self.count("set_shared_data", 0, key.len() + value.len());
        self.inner.set_shared_data(key, value, cas)
    }
    fn register_queue(&self, name: &str) -> Result<u32, HostError> {
        self.count("register_shared_queue", 0, 0);
        self.inner.register_queue(name)
    }
    fn resolve_queue(&self, vm_id: &str, name: &str) -> Result<Option<u32>, HostError> {
        self.count("resolve_shared_queue", 0, 0);
        self.inner.resolve_queue(vm_id, name)
    }
    fn enqueue(&self, queue: u32, value: &[u8]) -> Result<(), HostError> {
        self.count("enqueue_shared_queue", 0, value.len());
        self.inner.enqueue(queue, value)
    }
    fn dequeue(&self, queue: u32) -> Result<Option<Bytes>, HostError> {
        self.count("dequeue_shared_queue", 0, 0);
        self.inner.dequeue(queue)
    }
    fn dispatch_http_call(&self, call: &HttpCall<'_>) -> Result<u32, HostError> {
        self.count("dispatch_http_call", 0, 0);
        self.inner.dispatch_http_call(call)
    }
    fn send_local_reply(&self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<(), HostError> {
        let size: usize = headers.iter().map(|(n, v)| n.len() + v.len()).sum();
        self.count("send_local_response", 0, size + body.len());
        self.inner.send_local_reply(status, headers, body)
    }
    fn resume_request(&self) {
        self.count("continue_stream", 0, 0);
        self.inner.resume_request()
    }
    fn resume_response(&self) {
        self.count("continue_stream", 0, 0);
        self.inner.resume_response()
    }
    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, HostError> {
        self.count("define_metric", 0, name.len());
        self.inner.define_metric(kind, name)
    }
    fn increment_metric(&self, id: u32, delta: i64) -> Result<(), HostError> {
        self.count("increment_metric", 0, 0);
        self.inner.increment_metric(id, delta)
    }
    fn record_metric(&self, id: u32, value: u64) -> Result<(), HostError> {
        self.count("record_metric", 0, 0);
        self.inner.record_metric(id, value)
    }
    fn now(&self) -> SystemTime {
        self.count("get_current_time_nanoseconds", 8, 0);
        self.inner.now()
    }
    fn random_bytes(&self, out: &mut [u8]) -> Result<(), HostError> {
        self.count("random_get", out.len(), 0);
        self.inner.random_bytes(out)
    }
    fn set_tick_period(&self, period: Duration) {
        self.count("set_tick_period_milliseconds", 0, 0);
        self.inner.set_tick_period(period)
    }
    fn call_foreign_function(&self, name: &str, arguments: &[u8]) -> Result<Option<Bytes>, HostError> {
        self.count("call_foreign_function", 0, arguments.len());
        self.inner.call_foreign_function(name, arguments)
    }
    fn log(&self, level: log::Level, message: &str) {
        self.count("log", 0, message.len());
        self.inner.log(level, message)
    }
}

/// The request wrk sends through Envoy (`:authority`, `:scheme` and the headers Envoy adds).
fn request(host: MockHost) -> MockHost {
    host.with_request(
        "GET",
        "/delay/5/cacheable/bench",
        &[
            ("x-forwarded-proto", "http"),
            ("x-request-id", "0b4c5c5e-1d5e-4a1b-9c55-44b8f0d6c0a1"),
        ],
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let host = Counting {
        inner: request(MockHost::new()),
        ..Counting::default()
    };
    let runtime = configure(&host, b"{}")?;
    // Fill the entry with the upstream's /cacheable response (1 KB body, four caching headers).
    let body = kea_e2e_payload();
    let mut miss = CacheStream::new();
    miss.on_request_headers(&host, &runtime);
    host.inner.set_response(
        200,
        &[
            ("content-type", "application/json"),
            ("cache-control", "public, max-age=60"),
            ("etag", "\"v1\""),
            ("last-modified", "Wed, 25 Nov 2026 06:00:00 GMT"),
            ("content-length", &body.len().to_string()),
            ("date", "Thu, 26 Nov 2026 06:00:00 GMT"),
            ("x-envoy-upstream-service-time", "5"),
        ],
    );
    host.inner.set_body(Buffer::ResponseBody, body.as_bytes());
    miss.on_response_headers(&host, &runtime, false);
    miss.on_response_body(&host, &runtime, body.len(), true);
    host.calls.borrow_mut().clear();

    let mut hit = CacheStream::new();
    if hit.on_request_headers(&host, &runtime) != RequestAction::Answered {
        return Err("the second request was not a hit".into());
    }
    println!("host calls of one hit (on_request_headers):");
    println!("| host call | calls | bytes into the VM | bytes out of the VM |\n|---|---:|---:|---:|");
    for (name, (count, into_vm, out_of_vm)) in host.calls.borrow().iter() {
        println!("| {name} | {count} | {into_vm} | {out_of_vm} |");
    }

    // The mock keeps every local reply, so not too many.
    let n = 20_000u32;
    let started = Instant::now();
    for _ in 0..n {
        let mut stream = CacheStream::new();
        stream.on_request_headers(&host, &runtime);
    }
    println!(
        "{:?} per hit natively (MockHost, its reply log and the counting included)",
        started.elapsed() / n
    );
    Ok(())
}

/// The bench upstream's fixed ~1 KB body (kea-e2e's `upstream::payload`, not a dependency here).
fn kea_e2e_payload() -> String {
    r#"{"id":"c0ffee00-1234-4abc-9def-0123456789ab","name":"Sample resource","kind":"pet","status":"available","tags":[{"id":1,"name":"friendly"},{"id":2,"name":"vaccinated"},{"id":3,"name":"house-trained"}],"owner":{"id":42,"name":"Alice Example","email":"alice@example.com","address":{"street":"1 Main Street","city":"Springfield","zip":"12345","country":"US"}},"photos":["https://img.example.com/p/1.jpg","https://img.example.com/p/2.jpg","https://img.example.com/p/3.jpg"],"attributes":{"weight":4.2,"height":31.5,"color":"tabby","born":"2021-04-01","microchip":"985112004512345"},"history":[{"at":"2024-01-02T10:00:00Z","event":"registered"},{"at":"2024-02-03T11:30:00Z","event":"vaccinated"},{"at":"2024-03-04T09:15:00Z","event":"checkup"}],"links":{"self":"/pets/c0ffee00","owner":"/owners/42","photos":"/pets/c0ffee00/photos"},"notes":"A calm and friendly cat that enjoys sunny windows, gentle brushing and quiet evenings. Good with children."}"#.to_string()
}
