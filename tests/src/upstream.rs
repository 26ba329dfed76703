//! A fast local upstream for tests, benchmarks and the example gateway.
//!
//! - `/status/<code>[/...]` answers with that status;
//! - `/cacheable?cc=...&size=N` answers with validators and the given `Cache-Control`;
//! - `/counter/<name>?cc=...` answers a representation that changes on every request (a counter
//!   in the body and the ETag) and records each request's `If-None-Match`;
//! - `/delay/<ms>[/<path>]` answers like `/<path>` (default: the fixed body) after that many
//!   milliseconds; requests wait independently (nothing serialised), so this is an origin with a
//!   fixed latency;
//! - a path given a scripted response (`Upstream::script`) answers exactly that, and keeps the
//!   headers of every request it received (`Upstream::requests`);
//! - `/echo[/...]` answers with the request's method, path, headers and body size as JSON;
//! - `POST /ingest` is a small log collector: it accepts newline-delimited JSON and Elasticsearch
//!   `_bulk` bodies (checking each action line), answers like the real thing, and (in tests) keeps
//!   the documents;
//! - anything else answers 200 with a fixed ~1 KB JSON body.
//!
//! Every request is counted, so tests can prove what did (not) reach the upstream.

use anyhow::Result;
use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The fixed body: a realistic ~1 KB JSON document.
pub fn payload() -> &'static str {
    r#"{"id":"c0ffee00-1234-4abc-9def-0123456789ab","name":"Sample resource","kind":"pet","status":"available","tags":[{"id":1,"name":"friendly"},{"id":2,"name":"vaccinated"},{"id":3,"name":"house-trained"}],"owner":{"id":42,"name":"Alice Example","email":"alice@example.com","address":{"street":"1 Main Street","city":"Springfield","zip":"12345","country":"US"}},"photos":["https://img.example.com/p/1.jpg","https://img.example.com/p/2.jpg","https://img.example.com/p/3.jpg"],"attributes":{"weight":4.2,"height":31.5,"color":"tabby","born":"2021-04-01","microchip":"985112004512345"},"history":[{"at":"2024-01-02T10:00:00Z","event":"registered"},{"at":"2024-02-03T11:30:00Z","event":"vaccinated"},{"at":"2024-03-04T09:15:00Z","event":"checkup"}],"links":{"self":"/pets/c0ffee00","owner":"/owners/42","photos":"/pets/c0ffee00/photos"},"notes":"A calm and friendly cat that enjoys sunny windows, gentle brushing and quiet evenings. Good with children."}"#
}

/// What the upstream counts and collects.
#[derive(Debug, Default)]
pub struct State {
    hits: AtomicU64,
    /// Published documents by path (e.g. bundles for the validate plugin): body and ETag. Not
    /// counted in `hits`, so fetching them does not look like traffic reaching the upstream.
    files: Mutex<std::collections::HashMap<String, (Vec<u8>, String)>>,
    file_fetches: AtomicU64,
    /// Documents received on `/ingest`; `None` counts only (the benchmark must not grow memory).
    ingested: Option<Mutex<Vec<Value>>>,
    /// Responses set by a test, by path, and the headers of the requests each path received.
    scripted: Mutex<std::collections::HashMap<String, Scripted>>,
    /// `/counter/...` paths: the `If-None-Match` of each request received, in order.
    counters: Mutex<std::collections::HashMap<String, Vec<Option<String>>>>,
}

/// A response a test set for one path, and what that path received.
#[derive(Debug, Clone, Default)]
struct Scripted {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    received: Vec<Vec<(String, String)>>,
}

/// The scripted response for the request's path, if a test set one; the request is recorded.
fn scripted(state: &State, request: &Request<Body>) -> Option<Response> {
    let mut scripted = state.scripted.lock().ok()?;
    let script = scripted.get_mut(request.uri().path())?;
    let mut received: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    received.push((":method".into(), request.method().to_string()));
    script.received.push(received);
    let mut response = Response::new(Body::from(script.body.clone()));
    *response.status_mut() = StatusCode::from_u16(script.status).unwrap_or(StatusCode::OK);
    for (name, value) in &script.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            axum::http::HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    Some(response)
}

impl State {
    pub fn counting() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Serves `body` at `path` from now on, with a new ETag each time it is published.
    pub fn publish(&self, path: &str, body: &[u8]) {
        if let Ok(mut files) = self.files.lock() {
            let version = files.get(path).map_or(1, |(_, etag)| {
                etag.trim_matches('"').parse::<u64>().unwrap_or(0) + 1
            });
            files.insert(path.to_string(), (body.to_vec(), format!("\"{version}\"")));
        }
    }

    pub fn collecting() -> Arc<Self> {
        Arc::new(Self {
            ingested: Some(Mutex::new(Vec::new())),
            ..Self::default()
        })
    }
}

/// Parses an `/ingest` body: `_bulk` when its first line is an action, JSON lines otherwise.
/// Returns the documents, or why the body is malformed.
fn parse_ingest(body: &[u8]) -> Result<(Vec<Value>, bool), String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("body is not UTF-8: {e}"))?;
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("line is not JSON ({e}): {l}")))
        .collect::<Result<_, _>>()?;
    let bulk = lines
        .first()
        .is_some_and(|first| first.get("create").is_some() || first.get("index").is_some());
    if !bulk {
        return Ok((lines, false));
    }
    let mut documents = Vec::new();
    for pair in lines.chunks(2) {
        let [action, document] = pair else {
            return Err("a bulk action without a document".into());
        };
        let index = action
            .get("create")
            .or_else(|| action.get("index"))
            .and_then(|a| a.get("_index"));
        if !index.is_some_and(Value::is_string) {
            return Err(format!("bad bulk action line: {action}"));
        }
        let mut document = document.clone();
        if let Some(map) = document.as_object_mut() {
            map.insert("_index".into(), index.cloned().unwrap_or_default());
        }
        documents.push(document);
    }
    Ok((documents, true))
}

async fn ingest(state: &State, request: Request<Body>) -> Response {
    let body = to_bytes(request.into_body(), 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let (documents, bulk) = match parse_ingest(&body) {
        Ok(parsed) => parsed,
        Err(reason) => return (StatusCode::BAD_REQUEST, reason).into_response(),
    };
    let count = documents.len();
    if let Some(store) = &state.ingested {
        if let Ok(mut store) = store.lock() {
            store.extend(documents);
        }
    }
    let answer = if bulk {
        let items: Vec<Value> = (0..count).map(|_| json!({"create": {"status": 201}})).collect();
        json!({"took": 1, "errors": false, "items": items})
    } else {
        json!({"accepted": count})
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        answer.to_string(),
    )
        .into_response()
}

/// `/cacheable?cc=<Cache-Control>&size=<bytes>&status=<code>`: a response with validators and
/// the given caching headers (default `public, max-age=60`), for cache tests; 304 to
/// `If-None-Match: "v1"`.
fn cacheable(query: &str, if_none_match: bool) -> Response {
    let mut cache_control = "public, max-age=60".to_string();
    let mut size = None;
    let mut status = None;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("status", value)) => status = value.parse::<u16>().ok(),
            Some(("cc", value)) => {
                cache_control = value.replace("%20", " ").replace("%2C", ",").replace('+', " ")
            }
            Some(("size", value)) => size = value.parse::<usize>().ok(),
            _ => {}
        }
    }
    if if_none_match && status.is_none() {
        return (
            StatusCode::NOT_MODIFIED,
            [
                (header::CACHE_CONTROL, cache_control),
                (header::ETAG, "\"v1\"".to_string()),
            ],
        )
            .into_response();
    }
    if let Some(code) = status.and_then(|c| StatusCode::from_u16(c).ok()) {
        return (code, "origin failure").into_response();
    }
    let body = match size {
        Some(size) => "x".repeat(size.min(64 * 1024 * 1024)),
        None => payload().to_string(),
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::CACHE_CONTROL, cache_control),
            (header::ETAG, "\"v1\"".to_string()),
            (header::LAST_MODIFIED, "Wed, 25 Nov 2026 06:00:00 GMT".to_string()),
        ],
        body,
    )
        .into_response()
}

/// A query parameter's value, with `%20`, `%2C` and `+` decoded (enough for `Cache-Control`).
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.replace("%20", " ").replace("%2C", ",").replace('+', " "))
    })
}

/// `/counter/<name>?cc=<Cache-Control>&revalidationDelay=<ms>`: the N-th request for a path gets
/// `{"n":N}` with `ETag: "N"`, so a revalidation always gets a new 200. Conditional requests
/// (`If-None-Match`) wait `revalidationDelay` first, to show who waits for them.
async fn counter(state: &State, request: Request<Body>) -> Response {
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    let if_none_match = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    // The body (a GET has none) is not needed; the request must not be held across the wait.
    drop(request);
    let query = query.as_str();
    if if_none_match.is_some() {
        let delay = query_param(query, "revalidationDelay").and_then(|ms| ms.parse::<u64>().ok());
        if let Some(ms) = delay {
            tokio::time::sleep(std::time::Duration::from_millis(ms.min(10_000))).await;
        }
    }
    let n = match state.counters.lock() {
        Ok(mut counters) => {
            let seen = counters.entry(path).or_default();
            seen.push(if_none_match);
            seen.len()
        }
        Err(_) => 0,
    };
    let cache_control = query_param(query, "cc").unwrap_or_else(|| "public, max-age=60".into());
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::CACHE_CONTROL, cache_control),
            (header::ETAG, format!("\"{n}\"")),
        ],
        format!("{{\"n\":{n}}}"),
    )
        .into_response()
}

/// A published document, `304` when the client has its ETag.
fn published(state: &State, request: &Request<Body>) -> Option<Response> {
    let files = state.files.lock().ok()?;
    let (body, etag) = files.get(request.uri().path())?;
    state.file_fetches.fetch_add(1, Ordering::Relaxed);
    let known = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let status = if known {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let body = if known { Vec::new() } else { body.clone() };
    Some(
        (
            status,
            [
                (header::ETAG, etag.clone()),
                (header::CONTENT_TYPE, "application/json".into()),
            ],
            body,
        )
            .into_response(),
    )
}

/// Waits `delay` without holding up other requests. Not `tokio::time::sleep`: its timer rounds
/// up to whole milliseconds and wakes through the driver, so a 5 ms sleep took 6.3 ms here; a
/// blocking-pool thread's `std::thread::sleep` wakes within tens of microseconds of the deadline.
async fn wait(delay: std::time::Duration) {
    let _ = tokio::task::spawn_blocking(move || std::thread::sleep(delay)).await;
}

/// `/delay/<ms>[/<path>]`: waits, then hands back the request rewritten to `/<path>` (query
/// kept; `/` when no path follows, which answers the fixed body). Other requests (and a
/// `/delay/` without a number) pass unchanged.
async fn delayed(mut request: Request<Body>) -> Result<(Request<Body>, String), Response> {
    let path = request.uri().path().to_string();
    let Some(rest) = path.strip_prefix("/delay/") else {
        return Ok((request, path));
    };
    let (ms, inner) = rest.split_once('/').map_or((rest, ""), |(ms, inner)| (ms, inner));
    let Ok(ms) = ms.parse::<u64>() else {
        return Ok((request, path));
    };
    wait(std::time::Duration::from_millis(ms.min(10_000))).await;
    let inner = format!("/{inner}");
    let target = match request.uri().query() {
        Some(query) => format!("{inner}?{query}"),
        None => inner.clone(),
    };
    match target.parse() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(_) => return Err((StatusCode::BAD_REQUEST, "bad path after /delay/<ms>").into_response()),
    }
    Ok((request, inner))
}

/// `GET` here answers `{"hits": N}`: the requests this upstream has counted (this one excluded).
pub const STATS_PATH: &str = "/_kea/stats";

async fn handle(state: Arc<State>, request: Request<Body>) -> Response {
    if let Some(response) = published(&state, &request) {
        return response;
    }
    let path = request.uri().path().to_string();
    if path == STATS_PATH {
        // Not counted: a test reads how many requests reached this upstream (in a Pod, too).
        let hits = state.hits.load(Ordering::Relaxed);
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({"hits": hits}).to_string(),
        )
            .into_response();
    }
    state.hits.fetch_add(1, Ordering::Relaxed);
    if let Some(response) = scripted(&state, &request) {
        return response;
    }
    let (request, path) = match delayed(request).await {
        Ok(rewritten) => rewritten,
        Err(response) => return response,
    };
    if path == "/ingest" && request.method() == axum::http::Method::POST {
        return ingest(&state, request).await;
    }
    if path.starts_with("/counter/") {
        return counter(&state, request).await;
    }
    if path.starts_with("/cacheable") {
        let if_none_match = request
            .headers()
            .get(header::IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == b"\"v1\"");
        return cacheable(request.uri().query().unwrap_or_default(), if_none_match);
    }
    if let Some(rest) = path.strip_prefix("/status/") {
        // Read the body even though it is not used: a server that answers before reading the
        // request body closes the connection, racing the proxy's reuse of it (a spurious 503).
        let _ = to_bytes(request.into_body(), 64 * 1024 * 1024).await;
        let code = rest
            .split('/')
            .next()
            .and_then(|c| c.parse::<u16>().ok())
            .unwrap_or(400);
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
        // 204 and 304 responses must not carry a body.
        let body = if matches!(code, 204 | 304) {
            String::new()
        } else {
            format!("{{\"status\":{code}}}")
        };
        return (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    if path.starts_with("/echo") {
        let method = request.method().to_string();
        let uri = request.uri().to_string();
        let headers: serde_json::Map<String, serde_json::Value> = request
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned().into(),
                )
            })
            .collect();
        let body = to_bytes(request.into_body(), 64 * 1024 * 1024)
            .await
            .unwrap_or_default();
        let answer =
            serde_json::json!({"method": method, "uri": uri, "headers": headers, "bodyBytes": body.len()});
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            answer.to_string(),
        )
            .into_response();
    }
    let _ = to_bytes(request.into_body(), 64 * 1024 * 1024).await;
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        payload(),
    )
        .into_response()
}

/// Serves until the process ends (used by the `kea-upstream` binary).
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<State>) -> std::io::Result<()> {
    let app = Router::new().fallback(move |request: Request<Body>| handle(Arc::clone(&state), request));
    axum::serve(listener, app).await
}

/// An upstream running on its own thread inside the test process.
#[derive(Debug)]
pub struct Upstream {
    pub port: u16,
    state: Arc<State>,
    _runtime: tokio::runtime::Runtime,
}

impl Upstream {
    /// An upstream for tests: two threads, and `/ingest` keeps what it receives.
    pub fn start() -> Result<Self> {
        Self::launch(2, State::collecting())
    }

    /// With a given number of worker threads (the benchmark uses 1, to leave the cores to Envoy).
    pub fn start_with_threads(threads: usize) -> Result<Self> {
        Self::launch(threads, State::counting())
    }

    fn launch(threads: usize, state: Arc<State>) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let port = listener.local_addr()?.port();
        runtime.spawn(serve(listener, Arc::clone(&state)));
        Ok(Self {
            port,
            state,
            _runtime: runtime,
        })
    }

    /// Serves `body` at `path` from now on, with a new ETag each time it is published.
    pub fn publish(&self, path: &str, body: &[u8]) {
        self.state.publish(path, body);
    }

    /// Answers every request for `path` (any method, any query) with this response from now on.
    pub fn script(&self, path: &str, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        if let Ok(mut scripted) = self.state.scripted.lock() {
            let script = scripted.entry(path.to_string()).or_default();
            script.status = status;
            script.headers = headers
                .iter()
                .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
                .collect();
            script.body = body.to_vec();
        }
    }

    /// The headers (and `:method`) of each request a scripted path received, in order.
    pub fn requests(&self, path: &str) -> Vec<Vec<(String, String)>> {
        self.state
            .scripted
            .lock()
            .ok()
            .and_then(|scripted| scripted.get(path).map(|s| s.received.clone()))
            .unwrap_or_default()
    }

    /// Requests for published documents so far.
    pub fn file_fetches(&self) -> u64 {
        self.state.file_fetches.load(Ordering::Relaxed)
    }

    /// Requests received so far (published documents not counted).
    pub fn hits(&self) -> u64 {
        self.state.hits.load(Ordering::Relaxed)
    }

    /// The `If-None-Match` of each request for a `/counter/...` path so far (`None`: absent).
    pub fn conditionals(&self, path: &str) -> Vec<Option<String>> {
        self.state
            .counters
            .lock()
            .ok()
            .and_then(|counters| counters.get(path).cloned())
            .unwrap_or_default()
    }

    /// Documents received on `/ingest` so far.
    pub fn ingested(&self) -> Vec<Value> {
        self.state
            .ingested
            .as_ref()
            .and_then(|s| s.lock().ok().map(|s| s.clone()))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http;
    use std::time::{Duration, Instant};

    #[test]
    fn delay_answers_the_inner_path_after_the_delay_with_requests_waiting_concurrently() -> Result<()> {
        let upstream = Upstream::start_with_threads(1)?;
        let url = format!(
            "http://127.0.0.1:{}/delay/100/cacheable/bench?cc=no-store",
            upstream.port
        );
        let started = Instant::now();
        let answers: Vec<(http::Response, Duration)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..10)
                .map(|_| {
                    scope.spawn(|| {
                        let sent = Instant::now();
                        http::get(&url).map(|r| (r, sent.elapsed()))
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .map_err(|_| anyhow::anyhow!("a request thread panicked"))?
                })
                .collect::<Result<_>>()
        })?;
        let total = started.elapsed();
        for (answer, took) in &answers {
            assert_eq!(answer.status, 200);
            assert_eq!(
                answer.header("cache-control"),
                Some("no-store"),
                "answered as /cacheable"
            );
            assert_eq!(answer.body, payload());
            assert!(*took >= Duration::from_millis(100), "answered after {took:?}");
        }
        // Ten requests waiting one after the other would take a second.
        assert!(
            total < Duration::from_millis(600),
            "10 concurrent requests took {total:?}"
        );
        assert_eq!(upstream.hits(), 10);

        let plain = http::get(&format!("http://127.0.0.1:{}/delay/1", upstream.port))?;
        assert_eq!((plain.status, plain.body.as_str()), (200, payload()));
        Ok(())
    }
}
