//! A fast local upstream for tests, benchmarks and the example gateway.
//!
//! - `/status/<code>[/...]` answers with that status;
//! - `/echo[/...]` answers with the request's method, path, headers and body size as JSON;
//! - anything else answers 200 with a fixed ~1 KB JSON body.
//!
//! Every request is counted, so tests can prove what did (not) reach the upstream.

use anyhow::Result;
use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The fixed body: a realistic ~1 KB JSON document.
pub fn payload() -> &'static str {
    r#"{"id":"c0ffee00-1234-4abc-9def-0123456789ab","name":"Sample resource","kind":"pet","status":"available","tags":[{"id":1,"name":"friendly"},{"id":2,"name":"vaccinated"},{"id":3,"name":"house-trained"}],"owner":{"id":42,"name":"Alice Example","email":"alice@example.com","address":{"street":"1 Main Street","city":"Springfield","zip":"12345","country":"US"}},"photos":["https://img.example.com/p/1.jpg","https://img.example.com/p/2.jpg","https://img.example.com/p/3.jpg"],"attributes":{"weight":4.2,"height":31.5,"color":"tabby","born":"2021-04-01","microchip":"985112004512345"},"history":[{"at":"2024-01-02T10:00:00Z","event":"registered"},{"at":"2024-02-03T11:30:00Z","event":"vaccinated"},{"at":"2024-03-04T09:15:00Z","event":"checkup"}],"links":{"self":"/pets/c0ffee00","owner":"/owners/42","photos":"/pets/c0ffee00/photos"},"notes":"A calm and friendly cat that enjoys sunny windows, gentle brushing and quiet evenings. Good with children."}"#
}

async fn handle(hits: Arc<AtomicU64>, request: Request<Body>) -> Response {
    hits.fetch_add(1, Ordering::Relaxed);
    let path = request.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/status/") {
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
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        payload(),
    )
        .into_response()
}

/// Serves until the process ends (used by the `kea-upstream` binary).
pub async fn serve(listener: tokio::net::TcpListener, hits: Arc<AtomicU64>) -> std::io::Result<()> {
    let app = Router::new().fallback(move |request: Request<Body>| handle(Arc::clone(&hits), request));
    axum::serve(listener, app).await
}

/// An upstream running on its own thread inside the test process.
#[derive(Debug)]
pub struct Upstream {
    pub port: u16,
    hits: Arc<AtomicU64>,
    _runtime: tokio::runtime::Runtime,
}

impl Upstream {
    pub fn start() -> Result<Self> {
        Self::start_with_threads(2)
    }

    /// With a given number of worker threads (the benchmark uses 1, to leave the cores to Envoy).
    pub fn start_with_threads(threads: usize) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let port = listener.local_addr()?.port();
        let hits = Arc::new(AtomicU64::new(0));
        runtime.spawn(serve(listener, Arc::clone(&hits)));
        Ok(Self {
            port,
            hits,
            _runtime: runtime,
        })
    }

    /// Requests received so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}
