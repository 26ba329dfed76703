//! Whole request flows through the auth logic, driven natively by `MockHost`: key fetching shared
//! by two "workers", verification, rules, forwarding, and the attack cases. Tokens are minted with
//! jwt-simple here; the end-to-end suite mints them with PyJWT against real Envoy.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use jwt_simple::prelude::*;
use jwt_simple::reexports::ct_codecs::{Base64UrlSafeNoPadding, Encoder};
use kea_auth::keystore::Pending;
use kea_auth::plugin::configure;
use kea_auth::stream::{AuthStream, RequestAction, Runtime};
use kea_plugin_sdk::mock::{LocalReply, MockHost, SharedState};
use kea_plugin_sdk::HeaderMap;
use serde_json::{json, Value};
use std::rc::Rc;
use std::time::{Duration as StdDuration, SystemTime};

const ISSUER: &str = "https://idp.example.com";
const HMAC_SECRET: &str = "0123456789abcdef0123456789abcdef-hs";

fn b64(bytes: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap()
}

struct Keys {
    rsa: RS256KeyPair,
    rsa_new: RS256KeyPair,
    ec: ES256KeyPair,
}

impl Keys {
    fn new() -> Self {
        Self {
            rsa: RS256KeyPair::generate(2048).unwrap().with_key_id("rsa-1"),
            rsa_new: RS256KeyPair::generate(2048).unwrap().with_key_id("rsa-2"),
            ec: ES256KeyPair::generate().with_key_id("ec-1"),
        }
    }

    fn rsa_jwk(pair: &RS256KeyPair) -> Value {
        let c = pair.public_key().to_components();
        json!({"kty": "RSA", "kid": pair.key_id().clone().unwrap(), "use": "sig", "n": b64(&c.n), "e": b64(&c.e)})
    }

    fn jwks(&self) -> Value {
        let point = self.ec.public_key().public_key().to_bytes_uncompressed();
        json!({"keys": [
            Self::rsa_jwk(&self.rsa),
            {"kty": "EC", "crv": "P-256", "kid": "ec-1", "alg": "ES256", "x": b64(&point[1..33]), "y": b64(&point[33..65])}
        ]})
    }

    fn rotated_jwks(&self) -> Value {
        let mut jwks = self.jwks();
        jwks["keys"]
            .as_array_mut()
            .unwrap()
            .push(Self::rsa_jwk(&self.rsa_new));
        jwks
    }
}

fn claims(extra: Value) -> JWTClaims<Value> {
    Claims::with_custom_claims(extra, Duration::from_mins(10))
        .with_issuer(ISSUER)
        .with_audience("orders")
        .with_subject("alice")
}

struct Proxy {
    shared: Rc<SharedState>,
    /// One runtime per worker VM.
    workers: Vec<Rc<Runtime>>,
}

/// What one request produced.
#[derive(Debug)]
enum Outcome {
    Upstream(MockHost),
    Local(LocalReply),
    Waiting(MockHost, Box<AuthStream>, u32),
}

impl Proxy {
    fn new(config: Value) -> Self {
        std::env::set_var("KEA_TEST_HMAC", HMAC_SECRET);
        let first = MockHost::new();
        let shared = first.shared();
        let workers = (0..2)
            .map(|_| {
                configure(
                    &MockHost::sharing_with(Rc::clone(&shared)),
                    config.to_string().as_bytes(),
                )
                .unwrap()
            })
            .collect();
        Self { shared, workers }
    }

    fn host(&self) -> MockHost {
        let host = MockHost::sharing_with(Rc::clone(&self.shared));
        host.set_now(SystemTime::now());
        host
    }

    fn request_on(&self, worker: usize, path: &str, headers: &[(&str, &str)]) -> Outcome {
        let host = self.host();
        let host = host.with_request("GET", path, headers);
        let mut stream = AuthStream::new();
        match stream.on_request_headers(&host, &self.workers[worker]) {
            RequestAction::Continue => Outcome::Upstream(host),
            RequestAction::Answered => Outcome::Local(host.replies().pop().unwrap()),
            RequestAction::Wait => {
                let token = host.calls().last().unwrap().token;
                Outcome::Waiting(host, Box::new(stream), token)
            }
        }
    }

    fn request(&self, path: &str, headers: &[(&str, &str)]) -> Outcome {
        self.request_on(0, path, headers)
    }

    fn bearer(&self, token: &str) -> Outcome {
        self.request("/orders", &[("authorization", &format!("Bearer {token}"))])
    }

    /// Runs one tick on a worker; returns the callouts it started.
    fn tick(&self, worker: usize, host: &MockHost) -> Vec<(u32, Pending)> {
        let rt = &self.workers[worker];
        rt.keystore.on_tick(host, &rt.config, &rt.metrics)
    }

    fn answer(
        &self,
        worker: usize,
        host: &MockHost,
        pending: Pending,
        status: u16,
        body: &str,
    ) -> kea_auth::keystore::Progress {
        host.answer_call(status, &[("content-type", "application/json")], body.as_bytes());
        let rt = &self.workers[worker];
        rt.keystore
            .on_answer(host, &rt.config, &rt.metrics, pending, body.len())
    }

    /// Fetches the keys through worker 0's tick.
    fn load_keys(&self, jwks: &Value) {
        let host = self.host();
        let calls = self.tick(0, &host);
        assert_eq!(calls.len(), 1, "one fetch");
        self.answer(0, &host, calls[0].1, 200, &jwks.to_string());
    }

    fn metric(&self, name: &str) -> i64 {
        self.host().metric(name).unwrap_or(0)
    }
}

fn remote_config() -> Value {
    json!({
        "providers": [{
            "name": "corp", "issuer": ISSUER, "audiences": ["orders"],
            "jwks": {"remote": {"cluster": "idp", "uri": "https://idp.example.com/jwks"}},
            "claimHeaders": [{"claim": "email", "header": "x-user-email"}]
        }],
        "apiKeys": [{"name": "partners", "keys": [
            {"client": "acme", "sha256": sha256_hex("acme-secret-key"), "scopes": ["orders:read"]}
        ]}],
        "rules": [
            {"match": {"pathPrefix": "/health"}, "allowAnonymous": true},
            {"match": {"pathPrefix": "/admin"}, "anyOf": ["corp"], "scopes": ["admin"]},
            {"match": {"pathPrefix": "/staff"}, "anyOf": ["corp"], "claims": [{"claim": "realm.roles", "contains": "staff"}]},
            {"match": {"pathPrefix": "/both"}, "allOf": ["corp", "partners"]}
        ]
    })
}

fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn upstream(outcome: Outcome) -> MockHost {
    match outcome {
        Outcome::Upstream(host) => host,
        other => panic!("expected the request to pass, got {other:?}"),
    }
}

fn local(outcome: Outcome) -> LocalReply {
    match outcome {
        Outcome::Local(reply) => reply,
        other => panic!("expected a local reply, got {other:?}"),
    }
}

fn header(host: &MockHost, name: &str) -> Option<String> {
    host.header_text(HeaderMap::RequestHeaders, name)
}

#[test]
fn fails_closed_until_keys_arrive_then_one_worker_fetches_for_all() {
    let keys = Keys::new();
    let proxy = Proxy::new(remote_config());
    let token = keys.rsa.sign(claims(json!({}))).unwrap();

    let reply = local(proxy.bearer(&token));
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after"), Some("5"));

    // Worker 0 takes the lease and fetches; worker 1's tick sees the lease and does not.
    let host0 = proxy.host();
    let calls = proxy.tick(0, &host0);
    assert_eq!(calls.len(), 1);
    let call = &host0.calls()[0];
    assert_eq!(call.cluster, "idp");
    assert_eq!(call.header(":path"), Some("/jwks"));
    assert_eq!(call.header(":authority"), Some("idp.example.com"));
    assert_eq!(call.timeout, StdDuration::from_secs(5));
    assert!(
        proxy.tick(1, &proxy.host()).is_empty(),
        "the other worker waits for the lease holder"
    );
    proxy.answer(0, &host0, calls[0].1, 200, &keys.jwks().to_string());

    // Worker 1 has not ticked: it reads the shared keys on demand.
    let host = upstream(proxy.request_on(1, "/orders", &[("authorization", &format!("Bearer {token}"))]));
    assert_eq!(header(&host, "x-kea-sub").as_deref(), Some("alice"));
    assert_eq!(header(&host, "x-kea-iss").as_deref(), Some(ISSUER));
    assert_eq!(
        header(&host, "authorization"),
        None,
        "the token is not forwarded by default"
    );
    assert_eq!(proxy.metric("kea_auth_jwks_fetches_total"), 1);
    // Nothing is due: no more fetches.
    assert!(proxy.tick(0, &proxy.host()).is_empty());
    assert!(proxy.tick(1, &proxy.host()).is_empty());
}

#[test]
fn repeated_tokens_hit_the_cache_and_es256_works() {
    let keys = Keys::new();
    let proxy = Proxy::new(remote_config());
    proxy.load_keys(&keys.jwks());
    let token = keys
        .ec
        .sign(claims(json!({"scope": "orders:read orders:write"})))
        .unwrap();
    for _ in 0..3 {
        let host = upstream(proxy.bearer(&token));
        assert_eq!(
            header(&host, "x-kea-scopes").as_deref(),
            Some("orders:read orders:write")
        );
    }
    assert_eq!(proxy.metric("kea_auth_token_cache_misses_total"), 1);
    assert_eq!(proxy.metric("kea_auth_token_cache_hits_total"), 2);
    assert_eq!(proxy.metric("kea_auth_allowed_total"), 3);
}

#[test]
fn unknown_kid_refetches_once_and_waits_for_the_new_keys() {
    let keys = Keys::new();
    let proxy = Proxy::new(remote_config());
    proxy.load_keys(&keys.jwks());
    let rotated = keys.rsa_new.sign(claims(json!({}))).unwrap();

    let Outcome::Waiting(host, mut stream, call) = proxy.bearer(&rotated) else {
        panic!("expected the request to wait for a refetch");
    };
    let body = keys.rotated_jwks().to_string();
    host.answer_call(200, &[], body.as_bytes());
    assert_eq!(
        stream.on_call_answer(&host, &proxy.workers[0], call, body.len()),
        RequestAction::Continue
    );
    assert_eq!(header(&host, "x-kea-sub").as_deref(), Some("alice"));
    assert_eq!(proxy.metric("kea_auth_jwks_kid_refetches_total"), 1);

    // The other worker picks the new keys up from shared data.
    upstream(proxy.request_on(1, "/orders", &[("authorization", &format!("Bearer {rotated}"))]));

    // Another unknown kid inside the rate-limit window: rejected at once, no callout.
    let stranger = RS256KeyPair::generate(2048).unwrap().with_key_id("rsa-3");
    let reply = local(proxy.bearer(&stranger.sign(claims(json!({}))).unwrap()));
    assert_eq!(reply.status, 401);
    assert_eq!(proxy.metric("kea_auth_jwks_kid_refetches_total"), 1);
}

#[test]
fn failed_refresh_keeps_the_last_good_keys() {
    let keys = Keys::new();
    let proxy = Proxy::new(json!({
        "providers": [{"name": "corp", "issuer": ISSUER,
            "jwks": {"remote": {"cluster": "idp", "uri": "https://idp.example.com/jwks", "cacheDuration": "1s"}}}]
    }));
    proxy.load_keys(&keys.jwks());
    std::thread::sleep(StdDuration::from_millis(1100));
    let answers = [
        (500, "oops"),
        (200, "{\"keys\": [ not json"),
        (200, "{\"keys\": []}"),
    ];
    for (later, (status, body)) in (1..).zip(answers) {
        let host = proxy.host();
        host.advance(StdDuration::from_secs(120 * later));
        let calls = proxy.tick(0, &host);
        assert_eq!(calls.len(), 1, "refresh due");
        proxy.answer(0, &host, calls[0].1, status, body);
    }
    assert_eq!(proxy.metric("kea_auth_jwks_failures_total"), 3);
    upstream(proxy.bearer(&keys.rsa.sign(claims(json!({}))).unwrap()));
}

#[test]
fn oversized_jwks_is_refused_without_reading_it() {
    let proxy = Proxy::new(remote_config());
    let host = proxy.host();
    let calls = proxy.tick(0, &host);
    host.answer_call(200, &[], b"{}");
    let rt = &proxy.workers[0];
    let progress = rt
        .keystore
        .on_answer(&host, &rt.config, &rt.metrics, calls[0].1, 50 * 1024 * 1024);
    assert_eq!(progress, kea_auth::keystore::Progress::Failed);
    assert_eq!(
        local(proxy.bearer(&Keys::new().rsa.sign(claims(json!({}))).unwrap())).status,
        503
    );
}

#[test]
fn discovery_finds_the_jwks_uri_and_checks_the_issuer() {
    let keys = Keys::new();
    let proxy = Proxy::new(json!({
        "providers": [{"name": "corp", "issuer": ISSUER, "jwks": {"discovery": {"cluster": "idp"}}}]
    }));
    let host = proxy.host();
    let calls = proxy.tick(0, &host);
    assert_eq!(
        host.calls()[0].header(":path"),
        Some("/.well-known/openid-configuration")
    );
    let discovery = json!({"issuer": ISSUER, "jwks_uri": "https://keys.example.com/certs"}).to_string();
    let kea_auth::keystore::Progress::Next(next, pending) =
        proxy.answer(0, &host, calls[0].1, 200, &discovery)
    else {
        panic!("discovery should lead to the JWKS fetch");
    };
    let call = host.calls().into_iter().find(|c| c.token == next).unwrap();
    assert_eq!(call.header(":authority"), Some("keys.example.com"));
    assert_eq!(call.header(":path"), Some("/certs"));
    assert_eq!(pending.step, kea_auth::keystore::Step::Jwks);
    proxy.answer(0, &host, pending, 200, &keys.jwks().to_string());
    upstream(proxy.bearer(&keys.rsa.sign(claims(json!({}))).unwrap()));

    // A discovery document for another issuer is refused.
    let other = Proxy::new(json!({
        "providers": [{"name": "corp", "issuer": ISSUER, "jwks": {"discovery": {"cluster": "idp"}}}]
    }));
    let host = other.host();
    let calls = other.tick(0, &host);
    let mixup =
        json!({"issuer": "https://evil.example.com", "jwks_uri": "https://evil.example.com/k"}).to_string();
    assert_eq!(
        other.answer(0, &host, calls[0].1, 200, &mixup),
        kea_auth::keystore::Progress::Failed
    );
}

fn forge(header: Value, payload: Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes()),
        b64(signature)
    )
}

#[test]
fn attack_tokens_are_rejected_with_invalid_token() {
    let keys = Keys::new();
    let proxy = Proxy::new(remote_config());
    proxy.load_keys(&keys.jwks());
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let good_payload = json!({"iss": ISSUER, "aud": "orders", "sub": "alice", "exp": now + 600, "iat": now});

    // HS256 with the RSA public key (PEM) as the HMAC secret: the algorithm-confusion attack.
    let pem = keys.rsa.public_key().to_pem().unwrap();
    let confused = HS256Key::from_bytes(pem.as_bytes())
        .with_key_id("rsa-1")
        .authenticate(claims(json!({})))
        .unwrap();
    let mut expired = claims(json!({}));
    expired.expires_at = Some(UnixTimeStamp::from_secs(now - 3600));
    expired.issued_at = Some(UnixTimeStamp::from_secs(now - 7200));
    let mut future = claims(json!({}));
    future.invalid_before = Some(UnixTimeStamp::from_secs(now + 3600));
    let mut no_exp = claims(json!({}));
    no_exp.expires_at = None;
    let wrong_issuer = Claims::create(Duration::from_mins(5))
        .with_issuer("https://evil.example.com")
        .with_audience("orders");
    let wrong_audience = Claims::create(Duration::from_mins(5))
        .with_issuer(ISSUER)
        .with_audience("billing");
    let valid = keys.rsa.sign(claims(json!({}))).unwrap();
    let mut tampered = valid.clone();
    tampered.replace_range(valid.len() - 4.., "AAAA");
    let payload_swapped = {
        let parts: Vec<&str> = valid.split('.').collect();
        let evil = json!({"iss": ISSUER, "aud": "orders", "sub": "admin", "exp": now + 600});
        format!("{}.{}.{}", parts[0], b64(evil.to_string().as_bytes()), parts[2])
    };

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            forge(json!({"alg": "none", "typ": "JWT"}), good_payload.clone(), b""),
            "invalid",
        ),
        (
            "alg none with signature",
            forge(json!({"alg": "none"}), good_payload.clone(), b"x"),
            "invalid",
        ),
        (
            "alg None",
            forge(json!({"alg": "None"}), good_payload.clone(), b"x"),
            "invalid",
        ),
        ("hs256 with the public key", confused, "invalid"),
        ("expired", keys.rsa.sign(expired).unwrap(), "expired"),
        ("not yet valid", keys.rsa.sign(future).unwrap(), "not valid yet"),
        ("no exp", keys.rsa.sign(no_exp).unwrap(), "no expiration"),
        ("wrong issuer", keys.rsa.sign(wrong_issuer).unwrap(), "invalid"),
        (
            "wrong audience",
            keys.rsa.sign(wrong_audience).unwrap(),
            "invalid",
        ),
        ("tampered signature", tampered, "invalid"),
        ("payload swapped", payload_swapped, "invalid"),
        (
            "crit header",
            forge(
                json!({"alg": "RS256", "kid": "rsa-1", "crit": ["exp"]}),
                good_payload.clone(),
                b"sig",
            ),
            "malformed",
        ),
        ("garbage", "not-a-token".into(), "malformed"),
        ("two parts", "abc.def".into(), "malformed"),
        ("four parts", format!("{valid}.x"), "malformed"),
        ("bad base64", "a$b.c$d.e$f".into(), "malformed"),
        (
            "header not json",
            format!("{}.e30.c2ln", b64(b"{alg")),
            "malformed",
        ),
        (
            "huge",
            format!("{}.{}.x", b64(br#"{"alg":"RS256"}"#), "A".repeat(16 * 1024)),
            "too large",
        ),
        (
            "es256 key used for rs256",
            forge(
                json!({"alg": "RS256", "kid": "ec-1"}),
                good_payload.clone(),
                &[0; 256],
            ),
            "invalid",
        ),
        ("padding in base64", format!("{}=", valid), "malformed"),
    ];
    for (name, token, description) in cases {
        let reply = local(proxy.bearer(&token));
        assert_eq!(reply.status, 401, "{name}");
        let challenge = reply.header("www-authenticate").unwrap();
        assert!(
            challenge.starts_with("Bearer realm=\"kea\", error=\"invalid_token\""),
            "{name}: {challenge}"
        );
        assert!(challenge.contains(description), "{name}: {challenge}");
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json"),
            "{name}"
        );
        assert!(
            !challenge.contains("rsa-1") && !challenge.contains("orders"),
            "{name}: no detail leaks"
        );
    }
    assert_eq!(proxy.metric("kea_auth_allowed_total"), 0);
}

#[test]
fn rules_scopes_claims_api_keys_and_anonymous() {
    let keys = Keys::new();
    let proxy = Proxy::new(remote_config());
    proxy.load_keys(&keys.jwks());
    let user = keys
        .rsa
        .sign(claims(
            json!({"scope": "orders:read", "realm": {"roles": ["user"]}, "email": "a@x.io"}),
        ))
        .unwrap();
    let staff = keys
        .rsa
        .sign(claims(json!({"scp": ["admin"], "realm": {"roles": ["staff"]}})))
        .unwrap();
    let auth = |t: &str| format!("Bearer {t}");

    // No credentials.
    let reply = local(proxy.request("/orders", &[]));
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"kea\", ApiKey realm=\"kea\"")
    );
    // Anonymous allowed, but a presented token must still be valid.
    upstream(proxy.request("/health", &[]));
    assert_eq!(
        local(proxy.request("/health", &[("authorization", "Bearer x.y.z")])).status,
        401
    );
    // Scopes.
    let reply = local(proxy.request("/admin", &[("authorization", &auth(&user))]));
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"kea\", error=\"insufficient_scope\", scope=\"admin\"")
    );
    upstream(proxy.request("/admin", &[("authorization", &auth(&staff))]));
    // Claims.
    assert_eq!(
        local(proxy.request("/staff", &[("authorization", &auth(&user))])).status,
        403
    );
    upstream(proxy.request("/staff", &[("authorization", &auth(&staff))]));
    // API keys: valid, invalid, and both credentials required.
    let host = upstream(proxy.request("/orders", &[("x-api-key", "acme-secret-key")]));
    assert_eq!(header(&host, "x-kea-client").as_deref(), Some("acme"));
    assert_eq!(header(&host, "x-kea-scopes").as_deref(), Some("orders:read"));
    assert_eq!(header(&host, "x-api-key"), None, "the key is not forwarded");
    assert_eq!(
        local(proxy.request("/orders", &[("x-api-key", "guess")])).status,
        401
    );
    assert_eq!(
        local(proxy.request("/both", &[("x-api-key", "acme-secret-key")])).status,
        401
    );
    let host = upstream(proxy.request(
        "/both",
        &[("x-api-key", "acme-secret-key"), ("authorization", &auth(&user))],
    ));
    assert_eq!(header(&host, "x-kea-sub").as_deref(), Some("alice"));
    assert_eq!(header(&host, "x-kea-client").as_deref(), Some("acme"));
    // Claim headers; spoofed identity and claim headers are stripped first.
    let host = upstream(proxy.request(
        "/orders",
        &[
            ("authorization", &auth(&user)),
            ("x-kea-sub", "mallory"),
            ("x-kea-admin", "1"),
            ("x-user-email", "evil@x.io"),
        ],
    ));
    assert_eq!(header(&host, "x-kea-sub").as_deref(), Some("alice"));
    assert_eq!(header(&host, "x-kea-admin"), None);
    assert_eq!(header(&host, "x-user-email").as_deref(), Some("a@x.io"));
    let host = upstream(proxy.request(
        "/orders",
        &[("x-api-key", "acme-secret-key"), ("x-user-email", "evil@x.io")],
    ));
    assert_eq!(
        header(&host, "x-user-email"),
        None,
        "no claim, no header: the client's copy is gone"
    );
}

#[test]
fn hmac_providers_and_other_token_sources() {
    let proxy = Proxy::new(json!({
        "providers": [{
            "name": "internal", "issuer": "internal", "algorithms": ["HS256"], "hmacSecretEnv": "KEA_TEST_HMAC",
            "sources": [{"query": "access_token"}, {"cookie": "at"}], "forwardToken": false,
            "payloadHeader": "x-jwt-payload"
        }]
    }));
    let key = HS256Key::from_bytes(HMAC_SECRET.as_bytes());
    let token = key
        .authenticate(
            Claims::create(Duration::from_mins(5))
                .with_issuer("internal")
                .with_subject("svc"),
        )
        .unwrap();
    let host = upstream(proxy.request(&format!("/x?a=1&access_token={token}"), &[]));
    assert_eq!(header(&host, ":path").as_deref(), Some("/x?a=1"));
    assert_eq!(
        header(&host, "x-jwt-payload").as_deref(),
        Some(token.split('.').nth(1).unwrap())
    );
    let host = upstream(proxy.request("/x", &[("cookie", &format!("theme=dark; at={token}"))]));
    assert_eq!(header(&host, "cookie").as_deref(), Some("theme=dark"));
    let forged = HS256Key::from_bytes(b"another-secret-another-secret-xx")
        .authenticate(Claims::create(Duration::from_mins(5)).with_issuer("internal"))
        .unwrap();
    assert_eq!(
        local(proxy.request(&format!("/x?access_token={forged}"), &[])).status,
        401
    );
}

/// RFC 7515 4 / RFC 7519 7.2: the JOSE header and the claims set are JSON objects. serde's derived
/// `Deserialize` also reads a struct from an array of its fields in order, so `["HS256"]` used to
/// pass as `{"alg": "HS256"}`. Both tokens here are correctly signed: only their shape is wrong.
#[test]
fn a_header_or_claims_set_that_is_a_json_array_is_malformed() {
    let proxy = Proxy::new(json!({
        "providers": [{"name": "internal", "issuer": "internal", "algorithms": ["HS256"],
                       "hmacSecretEnv": "KEA_TEST_HMAC", "requireExpiration": false}]
    }));
    let key = HS256Key::from_bytes(HMAC_SECRET.as_bytes());
    let signed = |header: &str, payload: &str| {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let tag = key.authentication_tag(input.as_bytes());
        format!("{input}.{}", b64(&tag))
    };
    let object_claims = r#"{"iss": "internal", "sub": "svc"}"#;
    let control = signed(r#"{"alg": "HS256"}"#, object_claims);
    upstream(proxy.bearer(&control));
    for (name, token, description) in [
        ("array header", signed(r#"["HS256"]"#, object_claims), "malformed"),
        (
            "array header with kid",
            signed(r#"["HS256", null]"#, object_claims),
            "malformed",
        ),
        // jwt-simple checks HMAC tokens' claims first and refuses this one on its own terms.
        (
            "array claims",
            signed(
                r#"{"alg": "HS256"}"#,
                r#"[null, null, null, null, "svc", "internal"]"#,
            ),
            "invalid",
        ),
    ] {
        let reply = local(proxy.bearer(&token));
        assert_eq!(reply.status, 401, "{name}");
        let challenge = reply.header("www-authenticate").unwrap();
        assert!(challenge.contains(description), "{name}: {challenge}");
    }
}

/// A protobuf message's length-delimited fields: (field number, bytes).
type Fields = Vec<(u8, Vec<u8>)>;
/// Every `verify_signature` call a mock proxy received.
type Calls = Rc<std::cell::RefCell<Vec<Fields>>>;

/// The length-delimited fields of a protobuf message, by field number.
fn protobuf_fields(mut bytes: &[u8]) -> Fields {
    let mut fields = Vec::new();
    while let [tag, rest @ ..] = bytes {
        let (mut len, mut shift, mut at) = (0usize, 0, 0);
        loop {
            let byte = rest[at];
            len |= usize::from(byte & 0x7f) << shift;
            at += 1;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        fields.push((tag >> 3, rest[at..at + len].to_vec()));
        bytes = &rest[at + len..];
    }
    fields
}

#[test]
fn the_proxy_verifies_rsa_and_ecdsa_signatures_natively_when_it_can() {
    let keys = Keys::new();
    let proxy = Proxy::new(remote_config());
    proxy.load_keys(&keys.jwks());
    let rs = keys.rsa.sign(claims(json!({"sub": "rs"}))).unwrap();
    let es = keys.ec.sign(claims(json!({"sub": "es"}))).unwrap();
    let calls: Calls = Rc::default();

    // A proxy whose crypto says "valid" only for the RS256 token's exact arguments.
    let verdict = |calls: Calls, accept_rs: bool| {
        let rs = rs.clone();
        move |name: &str, args: &[u8]| {
            assert_eq!(name, "verify_signature");
            let fields = protobuf_fields(args);
            calls.borrow_mut().push(fields.clone());
            let signed = rs.rsplit_once('.').unwrap().0.as_bytes().to_vec();
            let ok = accept_rs && fields[3].1 == signed;
            Ok(Some(if ok {
                vec![0x08, 0x01]
            } else {
                vec![0x12, 0x02, b'n', b'o']
            }))
        }
    };
    let host = proxy
        .host()
        .with_request("GET", "/orders", &[("authorization", &format!("Bearer {rs}"))]);
    host.set_foreign_function(verdict(Rc::clone(&calls), true));
    assert_eq!(
        AuthStream::new().on_request_headers(&host, &proxy.workers[0]),
        RequestAction::Continue
    );
    let call = calls.borrow()[0].clone();
    assert_eq!(call[0], (1, b"sha256".to_vec()));
    assert_eq!(call[1].1[0], 0x30, "DER SubjectPublicKeyInfo");
    assert_eq!(call[2].1.len(), 256, "the RSA signature as is");

    // ES256: the JOSE r||s signature goes over as DER; the proxy's "no" is final.
    let host = proxy
        .host()
        .with_request("GET", "/orders", &[("authorization", &format!("Bearer {es}"))]);
    host.set_foreign_function(verdict(Rc::clone(&calls), true));
    assert_eq!(
        AuthStream::new().on_request_headers(&host, &proxy.workers[0]),
        RequestAction::Answered
    );
    assert_eq!(host.replies()[0].status, 401);
    let call = calls.borrow()[1].clone();
    assert_eq!(call[2].1[0], 0x30, "ECDSA-Sig-Value");

    // A cached token needs no signature check at all.
    let host = proxy
        .host()
        .with_request("GET", "/orders", &[("authorization", &format!("Bearer {rs}"))]);
    host.set_foreign_function(verdict(Rc::clone(&calls), false));
    assert_eq!(
        AuthStream::new().on_request_headers(&host, &proxy.workers[0]),
        RequestAction::Continue
    );
    assert_eq!(calls.borrow().len(), 2);
}

#[test]
fn invalid_configurations_name_the_field() {
    let host = MockHost::new();
    let cases = [
        (
            json!({"providers": [{"name": "a", "issuer": "i"}]}),
            "providers[0].jwks",
        ),
        (
            json!({"providers": [{"name": "a", "issuer": "i", "algorithms": ["none"], "jwks": {"inline": {"keys": []}}}]}),
            "providers[0].algorithms[0]",
        ),
        (
            json!({"providers": [{"name": "a", "issuer": "i", "jwks": {"inline": {"keys": []}}}]}),
            "providers[0].jwks.inline",
        ),
        (
            json!({"providers": [{"name": "a", "issuer": "i", "jwks": {"remote": {"cluster": "c", "uri": "idp/jwks"}}}]}),
            "providers[0].jwks.remote.uri",
        ),
        (
            json!({"providers": [{"name": "a", "issuer": "i", "algorithms": ["HS256"]}]}),
            "providers[0].hmacSecretEnv",
        ),
        (
            json!({"apiKeys": [{"name": "k", "keys": [{"client": "c", "sha256": "abc"}]}]}),
            "apiKeys[0].keys[0].sha256",
        ),
        (
            json!({"apiKeys": [{"name": "k", "keys": [{"client": "c", "sha256": sha256_hex("x")}]}], "rules": [{"anyOf": ["nobody"]}]}),
            "rules[0].anyOf[0]",
        ),
        (
            json!({"apiKeys": [{"name": "k", "keys": [{"client": "c", "sha256": sha256_hex("x")}]}], "rules": [{"claims": [{"claim": "a", "regex": "("}]}]}),
            "rules[0].claims[0].regex",
        ),
        (
            json!({"apiKeys": [{"name": "k", "sources": [{"header": "x", "query": "y"}], "keys": [{"client": "c", "sha256": sha256_hex("x")}]}]}),
            "apiKeys[0].sources[0]",
        ),
        (json!({}), "defaults.anyOf"),
        (
            json!({"providers": [{"name": "a", "issuer": "i", "jwks": {"remote": {"cluster": "c", "uri": "https://i/k"}}, "claimHeaders": [{"claim": "e", "header": "x-kea-sub"}]}]}),
            "providers[0].claimHeaders[0].header",
        ),
        (json!({"provider": []}), "provider"),
        (
            json!({"defaults": {"allowAnonymous": true, "scopes": ["a\"b"]}}),
            "defaults.scopes[0]",
        ),
        (
            json!({"defaults": {"allowAnonymous": true}, "jwks": {"unknownKidRefetchInterval": "0s"}}),
            "jwks.unknownKidRefetchInterval",
        ),
    ];
    for (config, field) in cases {
        let err = configure(&host, config.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.path, field, "{config}: {err}");
    }
    // An empty rule set with anonymous defaults is a valid (pass-through) configuration.
    assert!(configure(&host, br#"{"defaults": {"allowAnonymous": true}}"#).is_ok());
}

#[test]
fn review_hardening_paths_headers_providers_and_abandoned_refetches() {
    let keys = Keys::new();
    let proxy = Proxy::new(remote_config());
    proxy.load_keys(&keys.jwks());
    let user = keys.rsa.sign(claims(json!({"scope": "orders:read"}))).unwrap();
    let auth = format!("Bearer {user}");

    // Paths the upstream may resolve to a protected one are refused, whoever asks.
    for path in [
        "/public/../admin/x",
        "//admin",
        "/admin;x=1",
        "/%2e%2e/admin",
        "/a/./admin",
    ] {
        let reply = local(proxy.request(path, &[("authorization", &auth)]));
        assert_eq!(reply.status, 400, "{path}");
    }
    assert_eq!(proxy.metric("kea_auth_rejected_paths_total"), 5);

    // Underscore spellings of identity and claim headers are stripped too.
    let host = upstream(proxy.request(
        "/orders",
        &[
            ("authorization", &auth),
            ("x_kea_sub", "admin"),
            ("x_user_email", "e@x"),
        ],
    ));
    assert_eq!(header(&host, "x_kea_sub"), None);
    assert_eq!(header(&host, "x_user_email"), None);

    // An unknown API key gets an ApiKey challenge, not a Bearer error.
    let reply = local(proxy.request("/orders", &[("x-api-key", "wrong")]));
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"kea\", ApiKey realm=\"kea\"")
    );
    assert_eq!(reply.json()["detail"], "the API key is invalid");

    // Subject and issuer come from the same credential: a token without `sub` gets no subject,
    // not the API key's client.
    let no_sub = keys
        .rsa
        .sign(
            Claims::with_custom_claims(json!({}), Duration::from_mins(5))
                .with_issuer(ISSUER)
                .with_audience("orders"),
        )
        .unwrap();
    let host = upstream(proxy.request(
        "/both",
        &[
            ("authorization", &format!("Bearer {no_sub}")),
            ("x-api-key", "acme-secret-key"),
        ],
    ));
    assert_eq!(header(&host, "x-kea-sub"), None);
    assert_eq!(header(&host, "x-kea-iss").as_deref(), Some(ISSUER));
    assert_eq!(header(&host, "x-kea-client").as_deref(), Some("acme"));

    // Non-string `sub` and NumericDates beyond 2106 (milliseconds) are malformed.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for extra in [json!({"sub": 7}), json!({"exp": now * 1000})] {
        let mut c = claims(json!({}));
        if let Some(sub) = extra.get("sub") {
            c.subject = None;
            c.custom = json!({"sub": sub});
        } else {
            c.expires_at = None;
            c.custom = extra.clone();
        }
        let reply = local(proxy.bearer(&keys.rsa.sign(c).unwrap()));
        assert_eq!(reply.status, 401, "{extra}");
    }

    // A request waiting for an unknown-kid refetch goes away: the fetch moves to the next tick.
    let rotated = keys.rsa_new.sign(claims(json!({}))).unwrap();
    let Outcome::Waiting(host, mut stream, _) = proxy.bearer(&rotated) else {
        panic!("expected a refetch");
    };
    assert!(
        proxy.tick(1, &proxy.host()).is_empty(),
        "the lease is held while the request waits"
    );
    stream.on_done(&host, &proxy.workers[0]);
    assert_eq!(
        proxy.tick(1, &proxy.host()).len(),
        1,
        "the abandoned fetch is taken over"
    );
}

#[test]
fn one_token_two_providers_with_one_issuer() {
    let keys = Keys::new();
    let jwks = keys.jwks();
    let proxy = Proxy::new(json!({
        "providers": [
            {"name": "orders", "issuer": ISSUER, "audiences": ["orders"], "jwks": {"inline": jwks}},
            {"name": "any", "issuer": ISSUER, "jwks": {"inline": jwks}}
        ],
        "rules": [{"match": {"pathPrefix": "/orders"}, "anyOf": ["orders"]}, {"match": {}, "anyOf": ["any"]}]
    }));
    let token = keys.rsa.sign(claims(json!({}))).unwrap();
    // Verified and cached by each provider in turn: one's cache entry never decides for the other.
    upstream(proxy.request("/orders", &[("authorization", &format!("Bearer {token}"))]));
    upstream(proxy.request("/other", &[("authorization", &format!("Bearer {token}"))]));
    upstream(proxy.request("/orders", &[("authorization", &format!("Bearer {token}"))]));
}
