//! The split stage through whole requests, driven natively by `MockHost`: exact weighted
//! round-robin shared by two "workers" (two runtimes on one shared state), compare-and-swap
//! conflicts, weight changes, sticky principals and headers, exact mirroring, client-sent marks,
//! and configuration errors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use kea_auth::plugin::configure;
use kea_auth::stream::{AuthStream, RequestAction, Runtime};
use kea_plugin_sdk::mock::{MockHost, SharedState};
use kea_plugin_sdk::{Buffer, Bytes, HeaderMap, Host, HostError, HttpCall, MetricKind};
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

const USERS: usize = 200;

fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// API keys `key-<i>` for clients `user-<i>`, anonymous requests allowed except under `/admin`,
/// and the given splits.
fn config(splits: Value) -> Value {
    let keys: Vec<Value> = (0..USERS)
        .map(|i| json!({"client": format!("user-{i}"), "sha256": sha256_hex(&format!("key-{i}"))}))
        .collect();
    json!({
        "apiKeys": [{"name": "users", "keys": keys}],
        "rules": [{"match": {"pathPrefix": "/admin"}, "anyOf": ["users"]}],
        "defaults": {"allowAnonymous": true},
        "splits": splits,
    })
}

fn split(backends: &[(&str, u32)]) -> Value {
    let backends: Vec<Value> = backends
        .iter()
        .map(|(key, weight)| json!({"key": key, "weight": weight}))
        .collect();
    json!({"match": {"pathPrefix": "/shop"}, "name": "shop/pets", "backends": backends})
}

/// What the upstream request carried.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Marks {
    backend: Option<String>,
    mirror: bool,
}

struct Proxy {
    shared: Rc<SharedState>,
    workers: Vec<Rc<Runtime>>,
}

impl Proxy {
    fn new(config: &Value) -> Self {
        let shared = MockHost::new().shared();
        let mut proxy = Self {
            shared,
            workers: Vec::new(),
        };
        proxy.reconfigure(config);
        proxy
    }

    /// Every worker takes a new configuration; the shared data stays (same proxy).
    fn reconfigure(&mut self, config: &Value) {
        self.workers = (0..2)
            .map(|_| configure(&self.host(), config.to_string().as_bytes()).unwrap())
            .collect();
    }

    fn host(&self) -> MockHost {
        let host = MockHost::sharing_with(Rc::clone(&self.shared));
        host.set_now(SystemTime::now());
        host
    }

    fn request_with(&self, host: &impl Host, worker: usize) -> Option<Marks> {
        let mut stream = AuthStream::new();
        match stream.on_request_headers(host, &self.workers[worker]) {
            RequestAction::Continue => Some(Marks {
                backend: host
                    .header(HeaderMap::RequestHeaders, "x-kea-backend")
                    .map(|v| String::from_utf8(v).unwrap()),
                mirror: host
                    .header(HeaderMap::RequestHeaders, "x-kea-mirror")
                    .is_some_and(|v| v == b"1"),
            }),
            RequestAction::Answered | RequestAction::Wait => None,
        }
    }

    fn request(&self, worker: usize, path: &str, headers: &[(&str, &str)]) -> Option<Marks> {
        let host = self.host().with_request("GET", path, headers);
        self.request_with(&host, worker)
    }

    /// The backend an (anonymous) request to the split route was sent to.
    fn backend(&self, worker: usize) -> String {
        self.request(worker, "/shop/items", &[])
            .and_then(|m| m.backend)
            .expect("a marked request")
    }

    fn metric(&self, name: &str) -> i64 {
        self.host().metric(name).unwrap_or(0)
    }
}

/// Asserts every window of `total` consecutive picks holds each backend exactly its weight.
fn assert_exact_windows(picks: &[String], weights: &[(&str, u32)]) {
    let total: u32 = weights.iter().map(|(_, w)| w).sum();
    assert!(picks.len() >= total as usize);
    for (start, window) in picks.windows(total as usize).enumerate() {
        for (key, weight) in weights {
            let count = window.iter().filter(|p| p == key).count();
            assert_eq!(count, *weight as usize, "{key} in the window at {start}");
        }
    }
}

fn count(picks: &[String], key: &str) -> usize {
    picks.iter().filter(|p| *p == key).count()
}

#[test]
fn exact_ninety_ten_in_every_window_of_a_hundred() {
    let weights = [("v1", 90), ("v2", 10)];
    let proxy = Proxy::new(&config(json!([split(&weights)])));
    let picks: Vec<String> = (0..1000).map(|_| proxy.backend(0)).collect();
    assert_eq!((count(&picks, "v1"), count(&picks, "v2")), (900, 100));
    assert_exact_windows(&picks, &weights);
    assert_eq!(proxy.metric("kea_auth_split_marked_total"), 1000);
    assert_eq!(proxy.metric("kea_auth_split_unmarked_total"), 0);

    let thirds = [("a", 33), ("b", 33), ("c", 34)];
    let proxy = Proxy::new(&config(json!([split(&thirds)])));
    let picks: Vec<String> = (0..1000).map(|_| proxy.backend(0)).collect();
    assert_eq!(
        (count(&picks, "a"), count(&picks, "b"), count(&picks, "c")),
        (330, 330, 340)
    );
    assert_exact_windows(&picks, &thirds);
}

#[test]
fn two_workers_interleaved_keep_the_global_property() {
    let weights = [("v1", 90), ("v2", 10)];
    let proxy = Proxy::new(&config(json!([split(&weights)])));
    // An irregular interleaving: runs of 1 to 4 requests on each worker.
    let mut picks = Vec::new();
    let mut seed: u32 = 7;
    while picks.len() < 1000 {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let worker = (seed >> 16) as usize % 2;
        for _ in 0..=(seed >> 20) % 4 {
            picks.push(proxy.backend(worker));
        }
    }
    picks.truncate(1000);
    assert_eq!((count(&picks, "v1"), count(&picks, "v2")), (900, 100));
    assert_exact_windows(&picks, &weights);
}

/// A host that lets "another worker" act between this request's shared-data read and its write,
/// or makes every write fail.
struct Interfering<'a> {
    inner: &'a MockHost,
    mode: Mode<'a>,
    writes: Cell<u32>,
}

enum Mode<'a> {
    /// Runs once, before the first write.
    OtherWriterFirst(RefCell<Option<Box<dyn FnOnce() + 'a>>>),
    AlwaysConflict,
    Failing,
}

impl Host for Interfering<'_> {
    fn header(&self, map: HeaderMap, name: &str) -> Option<Bytes> {
        self.inner.header(map, name)
    }
    fn headers(&self, map: HeaderMap) -> Vec<(String, Bytes)> {
        self.inner.headers(map)
    }
    fn set_header(&self, map: HeaderMap, name: &str, value: Option<&[u8]>) {
        self.inner.set_header(map, name, value);
    }
    fn add_header(&self, map: HeaderMap, name: &str, value: &[u8]) {
        self.inner.add_header(map, name, value);
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
        self.writes.set(self.writes.get() + 1);
        match &self.mode {
            Mode::OtherWriterFirst(other) => {
                let other = other.borrow_mut().take();
                if let Some(other) = other {
                    other();
                }
                self.inner.set_shared_data(key, value, cas)
            }
            Mode::AlwaysConflict => Err(HostError::CasMismatch),
            Mode::Failing => Err(HostError::Status(9)),
        }
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
        self.inner.increment_metric(id, delta)
    }
    fn record_metric(&self, id: u32, value: u64) -> Result<(), HostError> {
        self.inner.record_metric(id, value)
    }
    fn now(&self) -> SystemTime {
        self.inner.now()
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

#[test]
fn a_cas_conflict_is_retried_and_the_split_stays_exact() {
    let weights = [("v1", 90), ("v2", 10)];
    let proxy = Proxy::new(&config(json!([split(&weights)])));
    let mut picks = Vec::new();
    for _ in 0..200 {
        // Worker 1 reads the state, then worker 0 picks and writes before worker 1 writes.
        let theirs = RefCell::new(None);
        let host = proxy.host().with_request("GET", "/shop/items", &[]);
        let ours = Interfering {
            inner: &host,
            mode: Mode::OtherWriterFirst(RefCell::new(Some(Box::new(|| {
                *theirs.borrow_mut() = Some(proxy.backend(0));
            })))),
            writes: Cell::new(0),
        };
        let marks = proxy.request_with(&ours, 1).unwrap();
        assert_eq!(ours.writes.get(), 2, "one conflict, one retry");
        // The other worker's write landed first, so its pick comes first in the sequence.
        picks.push(theirs.take().unwrap());
        picks.push(marks.backend.unwrap());
    }
    assert_eq!((count(&picks, "v1"), count(&picks, "v2")), (360, 40));
    assert_exact_windows(&picks, &weights);
    assert_eq!(proxy.metric("kea_auth_split_unmarked_total"), 0);
}

#[test]
fn exhausted_conflicts_and_failing_shared_data_leave_the_request_to_the_fallback() {
    let mut mirrored = split(&[("v1", 90), ("v2", 10)]);
    mirrored["mirrorPercent"] = json!(100);
    let proxy = Proxy::new(&config(json!([mirrored])));
    for (conflict, writes) in [(true, 2 * 16), (false, 2)] {
        let host = proxy
            .host()
            .with_request("GET", "/shop/items", &[("x-kea-backend", "v2")]);
        let ours = Interfering {
            inner: &host,
            mode: if conflict {
                Mode::AlwaysConflict
            } else {
                Mode::Failing
            },
            writes: Cell::new(0),
        };
        let marks = proxy.request_with(&ours, 0).unwrap();
        assert_eq!(
            marks,
            Marks {
                backend: None,
                mirror: false
            }
        );
        assert_eq!(ours.writes.get(), writes, "bounded retries");
    }
    assert_eq!(proxy.metric("kea_auth_split_unmarked_total"), 2);
    assert_eq!(proxy.metric("kea_auth_mirror_unmarked_total"), 2);
    assert_eq!(proxy.metric("kea_auth_split_marked_total"), 0);
    // The cycle was not advanced by the failed attempts.
    assert_eq!(proxy.backend(0), "v1");
}

#[test]
fn a_weight_change_starts_the_new_split_from_the_next_request() {
    let before = [("v1", 90), ("v2", 10)];
    let after = [("v1", 80), ("v2", 20)];
    let mut proxy = Proxy::new(&config(json!([split(&before)])));
    let first: Vec<String> = (0..137).map(|i| proxy.backend(i % 2)).collect();
    assert_exact_windows(&first, &before);
    proxy.reconfigure(&config(json!([split(&after)])));
    let second: Vec<String> = (0..500).map(|i| proxy.backend(i % 2)).collect();
    assert_eq!((count(&second, "v1"), count(&second, "v2")), (400, 100));
    assert_exact_windows(&second, &after);
    // Back to the old weights: the old cycle resumes where it stopped (its state is still there),
    // so the old sequence stays exact across the interruption.
    proxy.reconfigure(&config(json!([split(&before)])));
    let third: Vec<String> = (0..163).map(|_| proxy.backend(0)).collect();
    let resumed: Vec<String> = first.into_iter().chain(third).collect();
    assert_exact_windows(&resumed, &before);
}

fn sticky(backends: &[(&str, u32)]) -> Value {
    let mut split = split(backends);
    split["sticky"] = json!({"by": "Principal"});
    split
}

/// Each user's backend over five requests (all must agree), alternating workers.
fn sticky_assignment(proxy: &Proxy) -> Vec<String> {
    (0..USERS)
        .map(|user| {
            let key = format!("key-{user}");
            let picks: Vec<String> = (0..5)
                .map(|i| {
                    proxy
                        .request(i % 2, "/shop/items", &[("x-api-key", &key)])
                        .and_then(|m| m.backend)
                        .unwrap()
                })
                .collect();
            assert!(picks.iter().all(|p| *p == picks[0]), "user-{user}: {picks:?}");
            picks[0].clone()
        })
        .collect()
}

#[test]
fn sticky_principals_keep_their_backend_and_move_little_on_a_weight_change() {
    let mut proxy = Proxy::new(&config(json!([sticky(&[("v1", 90), ("v2", 10)])])));
    let before = sticky_assignment(&proxy);
    let on_first = count(&before, "v1");
    assert!((160..=194).contains(&on_first), "{on_first} of 200 on v1");
    // Sticky picks touch no shared state.
    assert_eq!(proxy.metric("kea_auth_split_marked_total"), (USERS * 5) as i64);

    proxy.reconfigure(&config(json!([sticky(&[("v1", 80), ("v2", 20)])])));
    let after = sticky_assignment(&proxy);
    let moved: Vec<usize> = (0..USERS).filter(|u| before[*u] != after[*u]).collect();
    for user in &moved {
        assert_eq!(
            (before[*user].as_str(), after[*user].as_str()),
            ("v1", "v2"),
            "user-{user}"
        );
    }
    assert!(
        !moved.is_empty() && moved.len() <= USERS * 15 / 100,
        "{} moved",
        moved.len()
    );

    // Anonymous requests have no principal: split exactly.
    let anonymous: Vec<String> = (0..300).map(|i| proxy.backend(i % 2)).collect();
    assert_exact_windows(&anonymous, &[("v1", 80), ("v2", 20)]);
    // A client-sent x-kea-sub is no principal.
    let spoofed: Vec<String> = (0..100)
        .map(|_| {
            proxy
                .request(0, "/shop/items", &[("x-kea-sub", "user-1")])
                .and_then(|m| m.backend)
                .unwrap()
        })
        .collect();
    let continued: Vec<String> = anonymous.into_iter().chain(spoofed).collect();
    assert_exact_windows(&continued, &[("v1", 80), ("v2", 20)]);
}

#[test]
fn sticky_by_header_uses_the_header_and_falls_back_to_exact_without_it() {
    let mut by_header = split(&[("v1", 50), ("v2", 50)]);
    by_header["sticky"] = json!({"by": "Header", "header": "X-Session"});
    let proxy = Proxy::new(&config(json!([by_header])));
    let mut seen = HashMap::new();
    for session in 0..50 {
        let id = format!("s-{session}");
        let first = proxy
            .request(0, "/shop", &[("x-session", &id)])
            .and_then(|m| m.backend)
            .unwrap();
        for worker in [1, 0, 1] {
            let again = proxy
                .request(worker, "/shop", &[("x-session", &id)])
                .and_then(|m| m.backend);
            assert_eq!(again.as_deref(), Some(first.as_str()));
        }
        *seen.entry(first).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "both backends get sessions: {seen:?}");
    let without: Vec<String> = (0..200).map(|_| proxy.backend(1)).collect();
    assert_exact_windows(&without, &[("v1", 50), ("v2", 50)]);
}

#[test]
fn mirroring_is_exact() {
    for (percent, expected) in [(20.0, 200), (0.5, 5), (100.0, 1000), (33.33, 333)] {
        let mut mirrored = split(&[("v1", 90), ("v2", 10)]);
        mirrored["mirrorPercent"] = json!(percent);
        let proxy = Proxy::new(&config(json!([mirrored])));
        let marks: Vec<Marks> = (0..1000)
            .map(|i| proxy.request(i % 2, "/shop/items", &[]).unwrap())
            .collect();
        let count = marks.iter().filter(|m| m.mirror).count();
        assert_eq!(count, expected, "{percent}%");
        assert_eq!(proxy.metric("kea_auth_mirror_marked_total"), expected as i64);
        if percent == 20.0 {
            // Evenly spread: exactly one in each run of five.
            for window in marks.chunks(5) {
                assert_eq!(window.iter().filter(|m| m.mirror).count(), 1);
            }
        }
        assert!(marks.iter().all(|m| m.backend.is_some()));
    }
}

#[test]
fn client_marks_are_removed_and_rejected_requests_are_not_marked() {
    let mut everything = split(&[("v1", 90), ("v2", 10)]);
    everything["match"] = json!({});
    everything["name"] = json!("all");
    let proxy = Proxy::new(&config(json!([split(&[("v1", 90), ("v2", 10)])])));
    let spoof = [
        ("x-kea-backend", "v2"),
        ("X_KEA_BACKEND", "v2"),
        ("x-kea-mirror", "1"),
    ];
    // Matched: the client's values are replaced by the stage's (v1 comes first at 90/10).
    let host = proxy.host().with_request("GET", "/shop/items", &spoof);
    let route_cache_clears = Rc::new(Cell::new(0));
    let clears = Rc::clone(&route_cache_clears);
    host.set_foreign_function(move |name, _| {
        assert_eq!(name, "clear_route_cache");
        clears.set(clears.get() + 1);
        Ok(None)
    });
    let marks = proxy.request_with(&host, 0).unwrap();
    assert_eq!(
        marks,
        Marks {
            backend: Some("v1".into()),
            mirror: false
        }
    );
    assert_eq!(host.header(HeaderMap::RequestHeaders, "x_kea_backend"), None);
    // The header change alone makes Envoy re-match the route: no extra host call.
    assert_eq!(route_cache_clears.get(), 0);
    // Unmatched: removed, nothing set, no route cache clearing.
    let host = proxy.host().with_request("GET", "/elsewhere", &spoof);
    assert_eq!(
        proxy.request_with(&host, 1),
        Some(Marks {
            backend: None,
            mirror: false
        })
    );
    assert!(host
        .headers(HeaderMap::RequestHeaders)
        .iter()
        .all(|(n, _)| !n.contains("kea")));

    // Rejected by the auth stage: 401, no mark, and the cycle does not advance.
    let proxy = Proxy::new(&config(json!([everything])));
    assert_eq!(proxy.request(0, "/admin", &spoof), None);
    assert_eq!(proxy.request(0, "/admin", &[("x-api-key", "wrong")]), None);
    assert_eq!(proxy.metric("kea_auth_split_marked_total"), 0);
    let admin = proxy.request(1, "/admin", &[("x-api-key", "key-3")]).unwrap();
    assert_eq!(admin.backend.as_deref(), Some("v1"));
    let picks: Vec<String> = std::iter::once("v1".to_string())
        .chain((0..199).map(|_| proxy.backend(0)))
        .collect();
    assert_exact_windows(&picks, &[("v1", 90), ("v2", 10)]);
}

#[test]
fn split_configuration_errors_name_the_field() {
    let host = MockHost::new();
    let base = split(&[("v1", 90), ("v2", 10)]);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut split = base.clone();
        change(&mut split);
        config(json!([split.clone(), split]))
    };
    let cases: Vec<(Value, &str)> = vec![
        (with(&|s| s["name"] = json!("")), "splits[0].name"),
        (with(&|s| s["backends"] = json!([])), "splits[0].backends"),
        (
            with(&|s| s["backends"][1]["key"] = json!("v1")),
            "splits[0].backends[1].key",
        ),
        (
            with(&|s| s["backends"][0]["key"] = json!(" v1")),
            "splits[0].backends[0].key",
        ),
        (
            with(&|s| s["backends"][1]["key"] = json!("v\u{e9}")),
            "splits[0].backends[1].key",
        ),
        (
            with(&|s| s["backends"] = json!([{"key": "a", "weight": 0}, {"key": "b", "weight": 0}])),
            "splits[0].backends",
        ),
        (
            with(&|s| s["sticky"] = json!({"by": "Header"})),
            "splits[0].sticky.header",
        ),
        (
            with(&|s| s["sticky"] = json!({"by": "Header", "header": "x y"})),
            "splits[0].sticky.header",
        ),
        (
            with(&|s| s["sticky"] = json!({"by": "Header", "header": "x-kea-sub"})),
            "splits[0].sticky.header",
        ),
        (
            with(&|s| s["sticky"] = json!({"by": "Principal", "header": "x-session"})),
            "splits[0].sticky.header",
        ),
        (
            with(&|s| s["mirrorPercent"] = json!(0)),
            "splits[0].mirrorPercent",
        ),
        (
            with(&|s| s["mirrorPercent"] = json!(100.5)),
            "splits[0].mirrorPercent",
        ),
        (
            with(&|s| s["mirrorPercent"] = json!(12.345)),
            "splits[0].mirrorPercent",
        ),
        (
            with(&|s| s["match"] = json!({"pathPrefix": "shop"})),
            "splits[0].match",
        ),
    ];
    for (config, field) in cases {
        let err = configure(&host, config.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.path, field, "{}: {err}", config["splits"][0]);
    }
    // The second split is checked too.
    let mut bad = base.clone();
    bad["backends"][0]["weight"] = json!(-1);
    assert!(configure(&host, config(json!([base, bad])).to_string().as_bytes()).is_err());
    let mut fine = split(&[("canary v2", 1), ("v1", 0)]);
    fine["mirrorPercent"] = json!(0.07);
    fine["sticky"] = json!({"by": "Header", "header": "X-Session"});
    assert!(configure(&host, config(json!([fine])).to_string().as_bytes()).is_ok());
}
