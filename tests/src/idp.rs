//! A local identity provider for the auth tests: OpenID discovery and a JWKS endpoint whose
//! behaviour a test can change at any moment (serve, fail, garbage, huge, slow), counting fetches.
//!
//! - `GET /.well-known/openid-configuration`: the discovery document;
//! - `GET /jwks`: the JWKS set with [`Idp::set_jwks`] (initially `{"keys": []}`), as [`JwksMode`]
//!   says, with `Cache-Control: max-age=N` on every answer once [`Idp::set_max_age`] set one.
//!
//! Runs on its own tokio runtime in the test process; dropping the [`Idp`] stops it.

use anyhow::Result;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How `/jwks` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksMode {
    /// 200, the current JWKS as `application/json`.
    Serve,
    /// That status, with a small JSON body.
    Status(u16),
    /// 200 `application/json`, truncated JSON: `{"keys": [ not json`.
    Garbage,
    /// 200 `application/json`, a body of exactly that many bytes (a valid JSON object padded
    /// with a string when at least 20 bytes).
    Huge(usize),
    /// Waits that long, then serves like `Serve`.
    Delay(Duration),
}

#[derive(Debug)]
struct Shared {
    issuer: String,
    jwks: Mutex<Value>,
    mode: Mutex<JwksMode>,
    max_age: Mutex<Option<u64>>,
    /// The last `Huge` body, built once per size (cheap to clone).
    huge: Mutex<Option<Bytes>>,
    jwks_fetches: AtomicU64,
    discovery_fetches: AtomicU64,
}

fn huge_body(size: usize) -> Bytes {
    const HEAD: &str = r#"{"keys":[],"pad":""#;
    const TAIL: &str = r#""}"#;
    let mut body = Vec::with_capacity(size);
    if size >= HEAD.len() + TAIL.len() {
        body.extend_from_slice(HEAD.as_bytes());
        body.resize(size - TAIL.len(), b'x');
        body.extend_from_slice(TAIL.as_bytes());
    } else {
        body.resize(size, b'x');
    }
    Bytes::from(body)
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Response {
    shared.discovery_fetches.fetch_add(1, Ordering::Relaxed);
    let issuer = &shared.issuer;
    let document = json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks"),
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
    });
    ([(header::CONTENT_TYPE, "application/json")], document.to_string()).into_response()
}

fn lock<T: Clone>(mutex: &Mutex<T>) -> T {
    match mutex.lock() {
        Ok(guard) => guard.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    shared.jwks_fetches.fetch_add(1, Ordering::Relaxed);
    let mode = lock(&shared.mode);
    let json = [(header::CONTENT_TYPE, "application/json")];
    let mut response = match mode {
        JwksMode::Serve => (json, lock(&shared.jwks).to_string()).into_response(),
        JwksMode::Delay(delay) => {
            tokio::time::sleep(delay).await;
            (json, lock(&shared.jwks).to_string()).into_response()
        }
        JwksMode::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = if matches!(code, 204 | 304) {
                String::new()
            } else {
                format!("{{\"status\":{code}}}")
            };
            (status, json, body).into_response()
        }
        JwksMode::Garbage => (json, r#"{"keys": [ not json"#).into_response(),
        JwksMode::Huge(size) => {
            let body = {
                let mut cached = match shared.huge.lock() {
                    Ok(guard) => guard,
                    Err(poisoned) => poisoned.into_inner(),
                };
                match cached.as_ref() {
                    Some(body) if body.len() == size => body.clone(),
                    _ => {
                        let body = huge_body(size);
                        *cached = Some(body.clone());
                        body
                    }
                }
            };
            (json, body).into_response()
        }
    };
    if let Some(seconds) = lock(&shared.max_age) {
        if let Ok(value) = HeaderValue::from_str(&format!("max-age={seconds}")) {
            response.headers_mut().insert(header::CACHE_CONTROL, value);
        }
    }
    response
}

/// The identity provider, serving on `127.0.0.1:<port>` until dropped.
#[derive(Debug)]
pub struct Idp {
    port: u16,
    shared: Arc<Shared>,
    _runtime: tokio::runtime::Runtime,
}

impl Idp {
    pub fn start() -> Result<Idp> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            issuer: format!("http://127.0.0.1:{port}"),
            jwks: Mutex::new(json!({"keys": []})),
            mode: Mutex::new(JwksMode::Serve),
            max_age: Mutex::new(None),
            huge: Mutex::new(None),
            jwks_fetches: AtomicU64::new(0),
            discovery_fetches: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state(Arc::clone(&shared));
        runtime.spawn(async move { axum::serve(listener, app).await });
        Ok(Idp {
            port,
            shared,
            _runtime: runtime,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`, also the `issuer` of the discovery document.
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// `<issuer>/jwks`.
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.shared.issuer)
    }

    pub fn set_jwks(&self, jwks: Value) {
        set(&self.shared.jwks, jwks);
    }

    /// How `/jwks` answers from now on.
    pub fn set_mode(&self, mode: JwksMode) {
        set(&self.shared.mode, mode);
    }

    /// `Cache-Control: max-age=<seconds>` on every `/jwks` answer; `None`: no such header.
    pub fn set_max_age(&self, seconds: Option<u64>) {
        set(&self.shared.max_age, seconds);
    }

    /// `GET /jwks` requests received (counted on arrival, whatever the answer).
    pub fn jwks_fetches(&self) -> u64 {
        self.shared.jwks_fetches.load(Ordering::Relaxed)
    }

    /// `GET /.well-known/openid-configuration` requests received.
    pub fn discovery_fetches(&self) -> u64 {
        self.shared.discovery_fetches.load(Ordering::Relaxed)
    }
}

fn set<T>(mutex: &Mutex<T>, value: T) {
    match mutex.lock() {
        Ok(mut guard) => *guard = value,
        Err(poisoned) => *poisoned.into_inner() = value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn get(url: &str) -> (u16, Option<String>, Vec<u8>) {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
        let response = match agent.get(url).call() {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(e) => panic!("{url}: {e}"),
        };
        let status = response.status();
        let cache_control = response.header("cache-control").map(str::to_string);
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut body).unwrap();
        (status, cache_control, body)
    }

    #[test]
    fn serves_discovery_and_jwks_in_every_mode() {
        let idp = Idp::start().unwrap();
        let issuer = idp.issuer();
        assert_eq!(issuer, format!("http://127.0.0.1:{}", idp.port()));

        let (status, _, body) = get(&format!("{issuer}/.well-known/openid-configuration"));
        assert_eq!(status, 200);
        let document: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(document["issuer"], issuer);
        assert_eq!(document["jwks_uri"], format!("{issuer}/jwks"));
        assert_eq!(idp.discovery_fetches(), 1);
        assert_eq!(idp.jwks_fetches(), 0);

        let url = idp.jwks_uri();
        let (status, cache_control, body) = get(&url);
        assert_eq!((status, cache_control), (200, None));
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap(),
            json!({"keys": []})
        );

        let keys = json!({"keys": [{"kty": "oct", "kid": "k", "k": "AA"}]});
        idp.set_jwks(keys.clone());
        idp.set_max_age(Some(300));
        let (status, cache_control, body) = get(&url);
        assert_eq!((status, cache_control.as_deref()), (200, Some("max-age=300")));
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), keys);
        idp.set_max_age(None);

        idp.set_mode(JwksMode::Status(503));
        assert_eq!(get(&url).0, 503);

        idp.set_mode(JwksMode::Garbage);
        let (status, _, body) = get(&url);
        assert_eq!(status, 200);
        assert!(serde_json::from_slice::<Value>(&body).is_err());

        idp.set_mode(JwksMode::Huge(50 * 1024 * 1024));
        let (status, _, body) = get(&url);
        assert_eq!((status, body.len()), (200, 50 * 1024 * 1024));
        assert!(serde_json::from_slice::<Value>(&body).is_ok());
        idp.set_mode(JwksMode::Huge(5));
        assert_eq!(get(&url).2, b"xxxxx");

        idp.set_mode(JwksMode::Delay(Duration::from_millis(300)));
        let start = Instant::now();
        let (status, _, body) = get(&url);
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert_eq!(status, 200);
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), keys);

        assert_eq!(idp.jwks_fetches(), 7);
        assert_eq!(idp.discovery_fetches(), 1);

        let port = idp.port();
        drop(idp);
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    }
}
