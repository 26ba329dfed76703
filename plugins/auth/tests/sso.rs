//! Browser single sign-on flows through the auth logic, driven natively by `MockHost`: login
//! redirect with PKCE, callback and code exchange, session cookies, refresh, logout, and the
//! attacks (replayed state, wrong nonce, tampered or foreign cookies, open redirects). The
//! end-to-end suite runs the same flow against real Envoy and a real OpenID Provider.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use jwt_simple::prelude::*;
use jwt_simple::reexports::ct_codecs::{Base64, Base64UrlSafeNoPadding, Decoder, Encoder};
use kea_auth::plugin::configure;
use kea_auth::stream::{AuthStream, RequestAction, Runtime};
use kea_plugin_sdk::mock::{LocalReply, MockHost, SharedState};
use kea_plugin_sdk::{HeaderMap, Host};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::rc::Rc;
use std::time::{Duration as StdDuration, SystemTime};

const ISSUER: &str = "https://idp.example.com";
const CLIENT: &str = "kea-web";
const SECRET: &str = "kea-web-client-secret";

fn b64(bytes: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap()
}

fn set_env() {
    std::env::set_var(
        "KEA_TEST_SESSION_KEY",
        "an-example-session-key-of-more-than-32-bytes",
    );
    std::env::set_var(
        "KEA_TEST_OLD_SESSION_KEY",
        "the-previous-session-key-also-32-bytes-long",
    );
    std::env::set_var(
        "KEA_TEST_OTHER_SESSION_KEY",
        "a-key-another-gateway-uses-for-its-sessions",
    );
    std::env::set_var("KEA_TEST_CLIENT_SECRET", SECRET);
}

fn config(keys: &RS256KeyPair, session_keys: Value) -> Value {
    let c = keys.public_key().to_components();
    json!({
        "providers": [{
            "name": "idp", "issuer": ISSUER, "audiences": ["orders"],
            "jwks": {"inline": {"keys": [{"kty": "RSA", "kid": "k1", "n": b64(&c.n), "e": b64(&c.e)}]}},
            "claimHeaders": [{"claim": "email", "header": "x-user-email"}]
        }],
        "sso": {
            "name": "browser", "provider": "idp", "clientId": CLIENT,
            "clientSecretEnv": "KEA_TEST_CLIENT_SECRET", "cluster": "idp",
            "endpoints": {
                "authorization": "https://idp.example.com/authorize",
                "token": "https://idp.example.com/token",
                "endSession": "https://idp.example.com/logout"
            },
            "scopes": ["openid", "email", "offline_access"],
            "postLogoutRedirectUri": "https://gw.example.com/bye",
            "loginPaths": ["/app"],
            "sessionKeys": session_keys,
            "refreshBefore": "30s"
        },
        "rules": [
            {"match": {"pathPrefix": "/public"}, "allowAnonymous": true},
            {"match": {"pathPrefix": "/staff"}, "anyOf": ["browser"], "claims": [{"claim": "groups", "contains": "staff"}]}
        ]
    })
}

fn default_keys() -> Value {
    json!([{"id": "k2", "secretEnv": "KEA_TEST_SESSION_KEY"}, {"id": "k1", "secretEnv": "KEA_TEST_OLD_SESSION_KEY"}])
}

struct Gateway {
    shared: Rc<SharedState>,
    rt: Rc<Runtime>,
    keys: RS256KeyPair,
    now: SystemTime,
}

#[derive(Debug)]
enum Outcome {
    Upstream(MockHost, Box<AuthStream>),
    Local(LocalReply),
    Waiting(MockHost, Box<AuthStream>, u32),
}

impl Gateway {
    fn new() -> Self {
        let keys = RS256KeyPair::generate(2048).unwrap().with_key_id("k1");
        Self::with_config(keys, default_keys())
    }

    fn with_config(keys: RS256KeyPair, session_keys: Value) -> Self {
        let config = config(&keys, session_keys);
        Self::from_value(keys, &config)
    }

    fn from_value(keys: RS256KeyPair, config: &Value) -> Self {
        set_env();
        let host = MockHost::new();
        let shared = host.shared();
        let rt = configure(&host, config.to_string().as_bytes()).unwrap();
        Self {
            shared,
            rt,
            keys,
            now: SystemTime::now(),
        }
    }

    fn host(&self) -> MockHost {
        let host = MockHost::sharing_with(Rc::clone(&self.shared));
        host.set_now(self.now);
        host
    }

    fn advance(&mut self, by: StdDuration) {
        self.now += by;
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Outcome {
        let host = self.host().with_request(method, path, headers);
        // Browsers reach this gateway over HTTPS.
        host.set_raw_header(HeaderMap::RequestHeaders, ":scheme", b"https");
        let mut stream = AuthStream::new();
        match stream.on_request_headers(&host, &self.rt) {
            RequestAction::Continue => Outcome::Upstream(host, Box::new(stream)),
            RequestAction::Answered => Outcome::Local(host.replies().pop().unwrap()),
            RequestAction::Wait => {
                let token = host.calls().last().unwrap().token;
                Outcome::Waiting(host, Box::new(stream), token)
            }
        }
    }

    fn browse(&self, path: &str, cookies: &str) -> Outcome {
        let mut headers = vec![("accept", "text/html,application/xhtml+xml")];
        if !cookies.is_empty() {
            headers.push(("cookie", cookies));
        }
        self.request("GET", path, &headers)
    }

    /// Answers the callout a waiting request made.
    fn answer(&self, outcome: Outcome, status: u16, body: &Value) -> Outcome {
        let Outcome::Waiting(host, mut stream, token) = outcome else {
            panic!("expected a waiting request, got {outcome:?}");
        };
        let body = body.to_string();
        host.answer_call(status, &[("content-type", "application/json")], body.as_bytes());
        let replies = host.replies().len();
        match stream.on_call_answer(&host, &self.rt, token, body.len()) {
            RequestAction::Continue => Outcome::Upstream(host, stream),
            RequestAction::Answered => {
                assert_eq!(host.replies().len(), replies + 1);
                Outcome::Local(host.replies().pop().unwrap())
            }
            RequestAction::Wait => {
                let token = host.calls().last().unwrap().token;
                Outcome::Waiting(host, stream, token)
            }
        }
    }

    fn id_token(&self, nonce: &str, extra: Value) -> String {
        let mut custom = json!({"nonce": nonce, "email": "alice@example.com", "groups": ["staff"]});
        if let (Some(target), Some(extra)) = (custom.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                target.insert(k.clone(), v.clone());
            }
        }
        let claims = Claims::with_custom_claims(custom, Duration::from_mins(5))
            .with_issuer(ISSUER)
            .with_audience(CLIENT)
            .with_subject("alice");
        self.keys.sign(claims).unwrap()
    }

    fn tokens(&self, nonce: &str) -> Value {
        json!({
            "access_token": "at-1", "token_type": "Bearer", "expires_in": 300,
            "refresh_token": "rt-1", "scope": "openid email offline_access",
            "id_token": self.id_token(nonce, json!({}))
        })
    }

    /// Runs a whole login; returns the session cookie header to send.
    fn login(&self) -> String {
        let started = self.start_login("/app/orders?page=2");
        let waiting = self.browse(&started.callback_path("code-1"), &started.cookie);
        let done = local(self.answer(waiting, 200, &self.tokens(&started.nonce)));
        assert_eq!(done.status, 302, "{:?}", String::from_utf8_lossy(&done.body));
        assert_eq!(done.header("location"), Some("/app/orders?page=2"));
        cookie_jar(&done)
    }

    /// Starts a login at `/app`, comes back to the callback, and lets the token endpoint answer
    /// `status` with the body `answer` builds for that login; returns the gateway's reply.
    fn finish_login(&self, status: u16, answer: impl FnOnce(&Started) -> Value) -> LocalReply {
        let started = self.start_login("/app");
        let waiting = self.browse(&started.callback_path("c"), &started.cookie);
        local(self.answer(waiting, status, &answer(&started)))
    }

    fn start_login(&self, path: &str) -> Started {
        let reply = local(self.browse(path, ""));
        assert_eq!(reply.status, 302);
        Started::from(&reply)
    }
}

/// What a login redirect told the browser.
#[derive(Debug)]
struct Started {
    location: String,
    state: String,
    nonce: String,
    challenge: String,
    /// `name=value` of the login cookie.
    cookie: String,
    set_cookie: String,
}

impl Started {
    fn from(reply: &LocalReply) -> Self {
        let location = reply.header("location").unwrap().to_owned();
        let param =
            |name: &str| query_param(&location, name).unwrap_or_else(|| panic!("no {name} in {location}"));
        let set_cookie = reply.header("set-cookie").unwrap().to_owned();
        Self {
            state: param("state"),
            nonce: param("nonce"),
            challenge: param("code_challenge"),
            cookie: set_cookie.split(';').next().unwrap().to_owned(),
            set_cookie,
            location,
        }
    }

    fn callback_path(&self, code: &str) -> String {
        format!("/oauth2/callback?code={code}&state={}", self.state)
    }
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn local(outcome: Outcome) -> LocalReply {
    match outcome {
        Outcome::Local(reply) => reply,
        other => panic!("expected a local reply, got {other:?}"),
    }
}

fn upstream(outcome: Outcome) -> (MockHost, Box<AuthStream>) {
    match outcome {
        Outcome::Upstream(host, stream) => (host, stream),
        Outcome::Local(reply) => panic!(
            "expected the request to pass, got {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        ),
        other => panic!("expected the request to pass, got {other:?}"),
    }
}

/// A token answer carrying `id_token`.
fn with_id_token(id_token: String) -> Value {
    json!({"access_token": "a", "token_type": "Bearer", "id_token": id_token})
}

/// ID-token claims for the login `started`, with `audiences` (one: a string `aud`) and `subject`.
fn id_claims(started: &Started, audiences: &[&str], subject: &str) -> JWTClaims<Value> {
    let claims = Claims::with_custom_claims(json!({"nonce": started.nonce}), Duration::from_mins(5))
        .with_issuer(ISSUER)
        .with_subject(subject);
    match audiences {
        [one] => claims.with_audience(*one),
        many => claims.with_audiences(HashSet::from_strings(many)),
    }
}

fn set_cookies(headers: &[(String, String)]) -> Vec<String> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.clone())
        .collect()
}

/// The `Cookie` header a browser sends after these `Set-Cookie`s (cleared ones dropped).
fn jar_of(set: &[String]) -> String {
    set.iter()
        .filter(|c| !c.contains("Max-Age=0"))
        .filter(|c| !c.contains("_login_"))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ")
}

fn cookie_jar(reply: &LocalReply) -> String {
    jar_of(&set_cookies(&reply.headers))
}

fn header(host: &MockHost, name: &str) -> Option<String> {
    host.header_text(HeaderMap::RequestHeaders, name)
}

#[test]
fn a_browser_navigation_starts_a_login_with_pkce_and_an_api_call_gets_401() {
    let gw = Gateway::new();
    let started = gw.start_login("/app/orders?page=2");
    assert!(started.location.starts_with("https://idp.example.com/authorize?"));
    for (name, value) in [
        ("response_type", "code"),
        ("client_id", CLIENT),
        ("redirect_uri", "https://api.example.com/oauth2/callback"),
        ("scope", "openid email offline_access"),
        ("code_challenge_method", "S256"),
    ] {
        assert_eq!(
            query_param(&started.location, name).as_deref(),
            Some(value),
            "{name}"
        );
    }
    assert!(started.state.len() >= 22 && started.nonce.len() >= 22);
    assert_ne!(started.state, started.nonce);
    for attribute in [
        "Path=/oauth2/callback",
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Max-Age=300",
    ] {
        assert!(
            started.set_cookie.contains(attribute),
            "{attribute} in {}",
            started.set_cookie
        );
    }
    assert!(started.cookie.starts_with("kea_session_login_"));

    // Each login gets its own state, nonce and verifier.
    let again = gw.start_login("/app/orders?page=2");
    assert_ne!(again.state, started.state);
    assert_ne!(again.challenge, started.challenge);

    // Not a navigation: 401 with a challenge, no redirect.
    let reply = local(gw.request("GET", "/orders", &[("accept", "application/json")]));
    assert_eq!(reply.status, 401);
    assert!(reply
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer realm="));
    // A script's fetch asking for HTML is not a navigation either.
    let reply = local(gw.request(
        "GET",
        "/orders",
        &[("accept", "text/html"), ("sec-fetch-mode", "cors")],
    ));
    assert_eq!(reply.status, 401);
    // A POST is never turned into a login.
    let reply = local(gw.request("POST", "/app/orders", &[("accept", "text/html")]));
    assert_eq!(reply.status, 401);
    // Anonymous paths stay anonymous.
    upstream(gw.browse("/public/x", ""));
}

#[test]
fn the_callback_exchanges_the_code_and_the_session_authenticates_later_requests() {
    let gw = Gateway::new();
    let started = gw.start_login("/app/orders?page=2");
    let waiting = gw.browse(&started.callback_path("code-1"), &started.cookie);
    let Outcome::Waiting(host, _, _) = &waiting else {
        panic!("the callback waits for the token endpoint: {waiting:?}");
    };
    let call = host.calls().pop().unwrap();
    assert_eq!(call.cluster, "idp");
    assert_eq!(call.header(":method"), Some("POST"));
    assert_eq!(call.header(":path"), Some("/token"));
    assert_eq!(call.timeout, StdDuration::from_secs(5));
    let basic = Base64::encode_to_string(format!("{CLIENT}:{SECRET}")).unwrap();
    assert_eq!(
        call.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    let body = String::from_utf8(call.body.clone().unwrap()).unwrap();
    let field = |name: &str| query_param(&format!("?{body}"), name);
    assert_eq!(field("grant_type").as_deref(), Some("authorization_code"));
    assert_eq!(field("code").as_deref(), Some("code-1"));
    assert_eq!(
        field("redirect_uri").as_deref(),
        Some("https://api.example.com/oauth2/callback")
    );
    let verifier = field("code_verifier").unwrap();
    assert_eq!(
        b64(&Sha256::digest(verifier.as_bytes())),
        started.challenge,
        "PKCE S256"
    );

    let done = local(gw.answer(waiting, 200, &gw.tokens(&started.nonce)));
    assert_eq!(done.status, 302);
    assert_eq!(done.header("location"), Some("/app/orders?page=2"));
    assert_eq!(done.header("cache-control"), Some("no-store"));
    let set = set_cookies(&done.headers);
    let session = set.iter().find(|c| c.starts_with("kea_session=")).unwrap();
    for attribute in ["Path=/", "HttpOnly", "Secure", "SameSite=Lax", "Max-Age=86400"] {
        assert!(session.contains(attribute), "{attribute} in {session}");
    }
    assert!(session.len() < 4096);
    assert!(
        !session.contains("alice") && !session.contains("rt-1"),
        "the cookie is encrypted"
    );
    assert!(
        set.iter()
            .any(|c| c.starts_with("kea_session_login_") && c.contains("Max-Age=0")),
        "the login cookie is cleared: {set:?}"
    );

    let jar = jar_of(&set);
    let (host, _) = upstream(gw.request("GET", "/orders", &[("cookie", &format!("{jar}; theme=dark"))]));
    assert_eq!(header(&host, "x-kea-sub").as_deref(), Some("alice"));
    assert_eq!(header(&host, "x-kea-iss").as_deref(), Some(ISSUER));
    assert_eq!(
        header(&host, "x-kea-scopes").as_deref(),
        Some("email offline_access openid")
    );
    assert_eq!(
        header(&host, "x-user-email").as_deref(),
        Some("alice@example.com")
    );
    let session_id = header(&host, "x-kea-session").unwrap();
    assert_eq!(session_id.len(), 32);
    assert_eq!(
        header(&host, "cookie").as_deref(),
        Some("theme=dark"),
        "the session cookie stays here"
    );
    assert_eq!(
        header(&host, "authorization"),
        None,
        "the access token is not forwarded by default"
    );
    // Claims from the ID token drive rules.
    upstream(gw.request("GET", "/staff/list", &[("cookie", &jar)]));
    // The same session on another request: same id.
    let (host, _) = upstream(gw.request("GET", "/invoices", &[("cookie", &jar)]));
    assert_eq!(
        header(&host, "x-kea-session").as_deref(),
        Some(session_id.as_str())
    );
    assert_eq!(gw.host().metric("kea_auth_sso_logins_completed_total"), Some(1));
}

#[test]
fn callbacks_that_do_not_match_a_login_are_refused() {
    let gw = Gateway::new();
    let started = gw.start_login("/app");

    // Replayed state: the login cookie was cleared by the first callback.
    let reply = local(gw.browse(&started.callback_path("code-1"), ""));
    assert_eq!(reply.status, 400);
    assert!(reply.json()["detail"]
        .as_str()
        .unwrap()
        .contains("no login is in progress"));
    // A state that is not the cookie's (CSRF: an attacker's own code and state).
    let other = gw.start_login("/app");
    let forged_cookie = started.cookie.replace(&started.state[..8], &other.state[..8]);
    let reply = local(gw.browse(&other.callback_path("evil-code"), &forged_cookie));
    assert_eq!(reply.status, 400);
    // Without code.
    let reply = local(gw.browse(
        &format!("/oauth2/callback?state={}", started.state),
        &started.cookie,
    ));
    assert_eq!(reply.status, 400);
    assert!(reply.json()["detail"]
        .as_str()
        .unwrap()
        .contains("no authorization code"));
    // Without state.
    assert_eq!(local(gw.browse("/oauth2/callback?code=x", "")).status, 400);
    // The provider refused.
    let reply = local(gw.browse(
        &format!("/oauth2/callback?error=access_denied&state={}", started.state),
        &started.cookie,
    ));
    assert_eq!(reply.status, 403);
    assert!(reply.json()["detail"].as_str().unwrap().contains("access_denied"));
    // An expired login.
    let mut gw = gw;
    let late = gw.start_login("/app");
    gw.advance(StdDuration::from_secs(301));
    assert_eq!(
        local(gw.browse(&late.callback_path("c"), &late.cookie)).status,
        400
    );
}

#[test]
fn the_id_token_must_carry_the_nonce_and_name_the_client() {
    let gw = Gateway::new();
    type IdToken<'a> = &'a dyn Fn(&Started) -> String;
    let cases: [(&str, IdToken); 2] = [
        ("wrong nonce", &|_| gw.id_token("another-nonce", json!({}))),
        ("wrong azp", &|started| {
            gw.id_token(&started.nonce, json!({"azp": "another-client"}))
        }),
    ];
    for (what, id_token) in cases {
        let reply = gw.finish_login(200, |started| with_id_token(id_token(started)));
        assert_eq!(reply.status, 401, "{what}");
        assert!(
            !set_cookies(&reply.headers)
                .iter()
                .any(|c| c.starts_with("kea_session=")),
            "{what}"
        );
    }
    // Another audience (an ID token issued to another client).
    let reply = gw.finish_login(200, |started| {
        with_id_token(
            gw.keys
                .sign(id_claims(started, &["another-client"], "alice"))
                .unwrap(),
        )
    });
    assert_eq!(reply.status, 401);
    // Signed by someone else.
    let forger = RS256KeyPair::generate(2048).unwrap().with_key_id("k1");
    let reply = gw.finish_login(200, |started| {
        with_id_token(forger.sign(id_claims(started, &[CLIENT], "mallory")).unwrap())
    });
    assert_eq!(reply.status, 401);
    // No ID token at all; a refused code; an unreachable provider.
    let reply = gw.finish_login(200, |_| json!({"access_token": "a", "token_type": "Bearer"}));
    assert_eq!(reply.status, 502);
    let reply = gw.finish_login(400, |_| json!({"error": "invalid_grant"}));
    assert_eq!(reply.status, 400);
    let reply = gw.finish_login(503, |_| json!({}));
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after"), Some("5"));
}

#[test]
fn tampered_foreign_and_expired_cookies_are_rejected_and_cleared() {
    let mut gw = Gateway::new();
    let jar = gw.login();
    let value = jar.strip_prefix("kea_session=").unwrap().to_owned();

    // Flip one character of the ciphertext.
    let mut tampered = value.clone().into_bytes();
    let at = tampered.len() - 10;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = format!("kea_session={}", String::from_utf8(tampered).unwrap());
    let reply = local(gw.request("GET", "/orders", &[("cookie", &tampered)]));
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["detail"], "the session is invalid");
    assert!(set_cookies(&reply.headers)
        .iter()
        .any(|c| c.starts_with("kea_session=;") && c.contains("Max-Age=0")));
    // A browser with a bad cookie is sent to log in again, and the cookie is cleared.
    let reply = local(gw.browse("/app", &tampered));
    assert_eq!(reply.status, 302);
    assert!(set_cookies(&reply.headers)
        .iter()
        .any(|c| c.starts_with("kea_session=;")));

    // Sealed by another gateway's key (same id, different secret).
    let other = Gateway::with_config(
        RS256KeyPair::generate(2048).unwrap().with_key_id("k1"),
        json!([{"id": "k2", "secretEnv": "KEA_TEST_OTHER_SESSION_KEY"}]),
    );
    let foreign = other.login();
    assert_eq!(
        local(gw.request("GET", "/orders", &[("cookie", &foreign)])).status,
        401
    );
    // Garbage and a half session.
    for cookie in [
        "kea_session=garbage",
        "kea_session=2.k2.AAAA",
        "kea_session=1.k9.AAAA",
    ] {
        assert_eq!(
            local(gw.request("GET", "/orders", &[("cookie", cookie)])).status,
            401,
            "{cookie}"
        );
    }

    // The session ends after its lifetime (24h), refreshes or not.
    upstream(gw.request("GET", "/orders", &[("cookie", &jar)]));
    gw.advance(StdDuration::from_secs(24 * 3600 + 1));
    let reply = local(gw.request("GET", "/orders", &[("cookie", &jar)]));
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["detail"], "the session expired");
}

#[test]
fn sessions_sealed_with_an_older_key_still_open_after_rotation() {
    set_env();
    let keys = RS256KeyPair::generate(2048).unwrap().with_key_id("k1");
    let before = Gateway::with_config(
        keys.clone(),
        json!([{"id": "k1", "secretEnv": "KEA_TEST_OLD_SESSION_KEY"}]),
    );
    let jar = before.login();
    assert!(jar.contains("=1.k1."), "{jar}");
    // The new configuration seals with k2 and still opens k1.
    let after = Gateway::with_config(keys, default_keys());
    let (host, _) = upstream(after.request("GET", "/orders", &[("cookie", &jar)]));
    assert_eq!(header(&host, "x-kea-sub").as_deref(), Some("alice"));
    assert!(after.login().contains("=1.k2."));
}

#[test]
fn sessions_refresh_before_they_expire_and_the_browser_gets_the_new_cookie() {
    let mut gw = Gateway::new();
    let jar = gw.login();
    // Tokens expire after 300 s; refreshes start 30 s before.
    gw.advance(StdDuration::from_secs(280));
    let waiting = gw.request("GET", "/orders", &[("cookie", &jar)]);
    let Outcome::Waiting(host, _, _) = &waiting else {
        panic!("a refresh is due: {waiting:?}");
    };
    let body = String::from_utf8(host.calls().pop().unwrap().body.unwrap()).unwrap();
    assert!(
        body.contains("grant_type=refresh_token") && body.contains("refresh_token=rt-1"),
        "{body}"
    );
    // A concurrent request of the same session does not refresh again (rotation-safe).
    let (_, _) = upstream(gw.request("GET", "/orders", &[("cookie", &jar)]));

    let answer =
        json!({"access_token": "at-2", "token_type": "Bearer", "expires_in": 300, "refresh_token": "rt-2"});
    let (host, mut stream) = upstream(gw.answer(waiting, 200, &answer));
    assert_eq!(header(&host, "x-kea-sub").as_deref(), Some("alice"));
    let host = host.with_response(200, &[]);
    stream.on_response_headers(&host);
    let response: Vec<(String, String)> = host
        .headers(HeaderMap::ResponseHeaders)
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
        .collect();
    let set = set_cookies(&response);
    assert!(set.iter().any(|c| c.starts_with("kea_session=")), "{set:?}");
    let refreshed = jar_of(&set);
    assert_ne!(refreshed, jar);

    // Past the first tokens' expiry, the refreshed session works without another refresh.
    gw.advance(StdDuration::from_secs(60));
    upstream(gw.request("GET", "/orders", &[("cookie", &refreshed)]));
    // The old cookie has expired tokens; its refresh token is spent at the provider.
    let waiting = gw.request("GET", "/orders", &[("cookie", &jar)]);
    let reply = local(gw.answer(waiting, 400, &json!({"error": "invalid_grant"})));
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["detail"], "the session expired");
}

#[test]
fn an_expired_session_fails_closed_when_the_provider_is_down() {
    let mut gw = Gateway::new();
    let jar = gw.login();
    gw.advance(StdDuration::from_secs(400));
    let waiting = gw.request("GET", "/orders", &[("cookie", &jar)]);
    let reply = local(gw.answer(waiting, 502, &json!({})));
    assert_eq!(reply.status, 503);
    // Refreshing while still valid and the provider is down: the request passes on the session.
    let mut gw = Gateway::new();
    let jar = gw.login();
    gw.advance(StdDuration::from_secs(280));
    let waiting = gw.request("GET", "/orders", &[("cookie", &jar)]);
    upstream(gw.answer(waiting, 502, &json!({})));
}

#[test]
fn logout_clears_the_session_and_ends_the_provider_session() {
    let gw = Gateway::new();
    let jar = gw.login();
    let reply = local(gw.request("GET", "/oauth2/logout", &[("cookie", &jar)]));
    assert_eq!(reply.status, 302);
    let location = reply.header("location").unwrap();
    assert!(
        location.starts_with("https://idp.example.com/logout?"),
        "{location}"
    );
    assert_eq!(query_param(location, "client_id").as_deref(), Some(CLIENT));
    assert_eq!(
        query_param(location, "post_logout_redirect_uri").as_deref(),
        Some("https://gw.example.com/bye")
    );
    let set = set_cookies(&reply.headers);
    assert!(
        set.iter()
            .any(|c| c.starts_with("kea_session=;") && c.contains("Max-Age=0")),
        "{set:?}"
    );
    assert_eq!(jar_of(&set), "");
}

#[test]
fn the_return_url_never_leaves_the_gateway() {
    let gw = Gateway::new();
    // Encoded separators are refused outright when rules look at paths.
    assert_eq!(local(gw.browse("/app/%5Cevil.example", "")).status, 400);
    for (path, expected) in [
        ("/app/x?next=//evil.example", "/app/x?next=//evil.example"),
        ("/app", "/app"),
    ] {
        let started = gw.start_login(path);
        let waiting = gw.browse(&started.callback_path("c"), &started.cookie);
        let done = local(gw.answer(waiting, 200, &gw.tokens(&started.nonce)));
        assert_eq!(done.header("location"), Some(expected));
    }
    // Paths a browser would read as another host never become a return URL (with path rules
    // they are refused; without, `login::safe_local_path` turns them into `/`).
    for path in ["/\\evil.example/", "//evil.example/"] {
        assert_eq!(local(gw.browse(path, "")).status, 400, "{path}");
    }
}

#[test]
fn large_sessions_span_several_cookies() {
    let gw = Gateway::new();
    let started = gw.start_login("/app");
    let waiting = gw.browse(&started.callback_path("c"), &started.cookie);
    let big = "x".repeat(5000);
    let answer = json!({"access_token": "a", "token_type": "Bearer", "expires_in": 300,
        "id_token": gw.id_token(&started.nonce, json!({"profile_blob": big}))});
    let done = local(gw.answer(waiting, 200, &answer));
    let set = set_cookies(&done.headers);
    assert!(set.iter().any(|c| c.starts_with("kea_session.1=")), "{set:?}");
    assert!(set.iter().all(|c| c.len() < 4096));
    let jar = jar_of(&set);
    let (host, _) = upstream(gw.request("GET", "/orders", &[("cookie", &jar)]));
    assert_eq!(header(&host, "x-kea-sub").as_deref(), Some("alice"));
    assert_eq!(
        header(&host, "cookie"),
        None,
        "every chunk is removed before the upstream"
    );
    // A missing chunk is an invalid session.
    let first_only = jar.split("; ").next().unwrap();
    assert_eq!(
        local(gw.request("GET", "/orders", &[("cookie", first_only)])).status,
        401
    );
}

#[test]
fn invalid_sso_configuration_names_the_field() {
    set_env();
    let keys = RS256KeyPair::generate(2048).unwrap();
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "sso.provider",
            Box::new(|c| c["sso"]["provider"] = json!("nobody")),
        ),
        (
            "sso.sessionKeys",
            Box::new(|c| c["sso"]["sessionKeys"] = json!([])),
        ),
        (
            "sso.sessionKeys[0].secretEnv",
            Box::new(|c| c["sso"]["sessionKeys"][0]["secretEnv"] = json!("KEA_TEST_UNSET_VARIABLE")),
        ),
        ("sso.scopes", Box::new(|c| c["sso"]["scopes"] = json!(["email"]))),
        (
            "sso.callbackPath",
            Box::new(|c| c["sso"]["callbackPath"] = json!("callback")),
        ),
        (
            "sso.endpoints.token",
            Box::new(|c| c["sso"]["endpoints"]["token"] = json!("/token")),
        ),
        (
            "sso.cookie.name",
            Box::new(|c| c["sso"]["cookie"] = json!({"name": "bad name"})),
        ),
        ("sso.name", Box::new(|c| c["sso"]["name"] = json!("idp"))),
    ];
    for (field, change) in cases {
        let mut config = config(&keys, default_keys());
        change(&mut config);
        let error = configure(&MockHost::new(), config.to_string().as_bytes()).unwrap_err();
        assert!(error.to_string().contains(field), "{field}: {error}");
    }
    std::env::set_var("KEA_TEST_SHORT_KEY", "short");
    let mut short = config(&keys, json!([{"id": "k", "secretEnv": "KEA_TEST_SHORT_KEY"}]));
    short["sso"]["sessionKeys"][0]["id"] = json!("k");
    let error = configure(&MockHost::new(), short.to_string().as_bytes()).unwrap_err();
    assert!(error.to_string().contains("at least 32 bytes"), "{error}");
}

#[test]
fn decoded_session_cookies_hold_no_readable_token() {
    let gw = Gateway::new();
    let jar = gw.login();
    let sealed = jar.strip_prefix("kea_session=1.k2.").unwrap();
    let raw = Base64UrlSafeNoPadding::decode_to_vec(sealed, None).unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains("rt-1") && !text.contains("alice"));
}

#[test]
fn sessions_can_span_subdomains_and_end_with_their_tokens_without_a_refresh_token() {
    let keys = RS256KeyPair::generate(2048).unwrap().with_key_id("k1");
    let mut config = config(&keys, default_keys());
    config["sso"]["cookie"] = json!({"domain": "example.com"});
    config["sso"]["redirectUri"] = json!("https://login.example.com/oauth2/callback");
    let gw = Gateway::from_value(keys, &config);
    let started = gw.start_login("/app/x");
    assert_eq!(
        query_param(&started.location, "redirect_uri").as_deref(),
        Some("https://login.example.com/oauth2/callback")
    );
    assert!(
        started.set_cookie.contains("Domain=example.com"),
        "{}",
        started.set_cookie
    );
    let waiting = gw.browse(&started.callback_path("c"), &started.cookie);
    let answer = json!({"access_token": "a", "token_type": "Bearer", "expires_in": 120,
        "id_token": gw.id_token(&started.nonce, json!({}))});
    let done = local(gw.answer(waiting, 200, &answer));
    // Back to the host the login started on, which the cookie domain covers.
    assert_eq!(done.header("location"), Some("https://api.example.com/app/x"));
    let set = set_cookies(&done.headers);
    let session = set.iter().find(|c| c.starts_with("kea_session=")).unwrap();
    assert!(session.contains("Domain=example.com"), "{session}");
    assert!(
        session.contains("Max-Age=120"),
        "no refresh token: the cookie ends with the tokens: {session}"
    );
}

#[test]
fn an_id_token_signed_with_a_new_key_waits_for_one_key_refetch() {
    let keys = RS256KeyPair::generate(2048).unwrap().with_key_id("k1");
    let rotated = RS256KeyPair::generate(2048).unwrap().with_key_id("k2");
    let jwk = |pair: &RS256KeyPair| {
        let c = pair.public_key().to_components();
        json!({"kty": "RSA", "kid": pair.key_id().clone().unwrap(), "n": b64(&c.n), "e": b64(&c.e)})
    };
    let mut config = config(&keys, default_keys());
    config["providers"][0]["jwks"] =
        json!({"remote": {"cluster": "idp", "uri": "https://idp.example.com/jwks"}});
    let mut gw = Gateway::from_value(rotated.clone(), &config);
    // The first keys arrive through the tick.
    let host = gw.host();
    let calls = gw.rt.keystore.on_tick(&host, &gw.rt.config, &gw.rt.metrics);
    let body = json!({"keys": [jwk(&keys)]}).to_string();
    host.answer_call(200, &[], body.as_bytes());
    gw.rt
        .keystore
        .on_answer(&host, &gw.rt.config, &gw.rt.metrics, calls[0].1, body.len());

    // The provider rotated: the ID token names k2, which the gateway has not seen yet.
    gw.keys = rotated.clone();
    let started = gw.start_login("/app");
    let waiting = gw.browse(&started.callback_path("c"), &started.cookie);
    let refetching = gw.answer(waiting, 200, &gw.tokens(&started.nonce));
    let Outcome::Waiting(host, _, _) = &refetching else {
        panic!("the login waits for the key set: {refetching:?}");
    };
    assert_eq!(host.calls().last().unwrap().header(":path"), Some("/jwks"));
    let done = local(gw.answer(refetching, 200, &json!({"keys": [jwk(&keys), jwk(&rotated)]})));
    assert_eq!(done.status, 302, "{}", String::from_utf8_lossy(&done.body));
    assert!(set_cookies(&done.headers)
        .iter()
        .any(|c| c.starts_with("kea_session=")));
    assert_eq!(gw.host().metric("kea_auth_jwks_kid_refetches_total"), Some(1));
}

#[test]
fn requests_racing_a_refresh_reuse_its_result_or_wait_for_it() {
    let mut gw = Gateway::new();
    let jar = gw.login();
    gw.advance(StdDuration::from_secs(301));
    // The tokens expired: the first request refreshes...
    let waiting = gw.request("GET", "/orders", &[("cookie", &jar)]);
    assert!(matches!(waiting, Outcome::Waiting(..)));
    // ...a second one of the same (expired) session meanwhile is told to retry, its cookie kept.
    let busy = local(gw.request("GET", "/orders", &[("cookie", &jar)]));
    assert_eq!(busy.status, 503);
    assert!(
        set_cookies(&busy.headers).is_empty(),
        "the session is not cleared: {busy:?}"
    );
    let answer =
        json!({"access_token": "at-2", "token_type": "Bearer", "expires_in": 300, "refresh_token": "rt-2"});
    upstream(gw.answer(waiting, 200, &answer));
    // A request sent with the old cookie after the refresh gets the new session, no second
    // refresh (which would reuse the rotated refresh token).
    let (host, mut stream) = upstream(gw.request("GET", "/orders", &[("cookie", &jar)]));
    assert!(host.calls().is_empty(), "no second refresh");
    let host = host.with_response(200, &[]);
    stream.on_response_headers(&host);
    assert!(host
        .headers(HeaderMap::ResponseHeaders)
        .iter()
        .any(|(k, v)| k == "set-cookie" && v.starts_with(b"kea_session=")));
}

#[test]
fn a_valid_session_lacking_another_credential_gets_401_not_a_login_loop() {
    let keys = RS256KeyPair::generate(2048).unwrap().with_key_id("k1");
    let mut config = config(&keys, default_keys());
    config["apiKeys"] = json!([{"name": "partners", "keys": [{"client": "acme", "sha256": "a".repeat(64)}]}]);
    config["rules"] = json!([{"match": {"pathPrefix": "/both"}, "allOf": ["browser", "partners"]}]);
    let gw = Gateway::from_value(keys, &config);
    let jar = gw.login();
    let reply = local(gw.browse("/both/x", &jar));
    assert_eq!(reply.status, 401, "{reply:?}");
}

#[test]
fn session_and_login_cookies_never_reach_the_upstream() {
    let gw = Gateway::new();
    let jar = gw.login();
    let cookies = format!("{jar}; kea_session_login_abcdefgh=x; kea_session.1=y; theme=dark");
    // An anonymous route and a route a bearer token satisfies: the session is not what let the
    // request in, and still its cookies stay at the gateway.
    let (host, _) = upstream(gw.request("GET", "/public/x", &[("cookie", &cookies)]));
    assert_eq!(header(&host, "cookie").as_deref(), Some("theme=dark"));
    let (host, _) = upstream(gw.request("GET", "/orders", &[("cookie", &cookies)]));
    assert_eq!(header(&host, "cookie").as_deref(), Some("theme=dark"));
}

#[test]
fn a_state_the_gateway_did_not_issue_never_names_a_cookie() {
    let gw = Gateway::new();
    for state in ["x%3BPath%3D%2F", "abc%0D%0ASet-Cookie:%20a=b", "short"] {
        let reply = local(gw.browse(&format!("/oauth2/callback?code=c&state={state}"), ""));
        assert_eq!(reply.status, 400, "{state}");
        assert!(set_cookies(&reply.headers).is_empty(), "{state}: {reply:?}");
    }
}

#[test]
fn cross_site_logout_is_refused() {
    let gw = Gateway::new();
    let jar = gw.login();
    let reply = local(gw.request(
        "GET",
        "/oauth2/logout",
        &[("cookie", &jar), ("sec-fetch-site", "cross-site")],
    ));
    assert_eq!(reply.status, 403);
    assert!(set_cookies(&reply.headers).is_empty());
    let reply = local(gw.request(
        "GET",
        "/oauth2/logout",
        &[("cookie", &jar), ("sec-fetch-site", "same-origin")],
    ));
    assert_eq!(reply.status, 302);
}

#[test]
fn id_tokens_with_other_audiences_or_another_type_are_refused() {
    let gw = Gateway::new();
    let reply = gw.finish_login(200, |started| {
        with_id_token(
            gw.keys
                .sign(id_claims(started, &[CLIENT, "another-api"], "alice"))
                .unwrap(),
        )
    });
    assert_eq!(reply.status, 401);

    let reply = gw.finish_login(200, |started| {
        let typed = HeaderOptions {
            signature_type: Some("at+jwt".into()),
            ..Default::default()
        };
        with_id_token(
            gw.keys
                .sign_with_options(id_claims(started, &[CLIENT], "alice"), &typed)
                .unwrap(),
        )
    });
    assert_eq!(reply.status, 401);
}

#[test]
fn a_cookie_of_another_client_sharing_the_key_does_not_open() {
    let keys = RS256KeyPair::generate(2048).unwrap().with_key_id("k1");
    let mut config = config(&keys, default_keys());
    let gw = Gateway::from_value(keys.clone(), &config);
    config["sso"]["clientId"] = json!("another-app");
    let other = Gateway::from_value(keys, &config);
    let jar = gw.login();
    assert_eq!(
        local(other.request("GET", "/orders", &[("cookie", &jar)])).status,
        401
    );
}

#[test]
fn a_stale_cookie_of_the_same_name_does_not_shadow_the_session() {
    let gw = Gateway::new();
    let jar = gw.login();
    let (host, _) = upstream(gw.request(
        "GET",
        "/orders",
        &[("cookie", &format!("kea_session=1.k2.AAAA; {jar}"))],
    ));
    assert_eq!(header(&host, "x-kea-sub").as_deref(), Some("alice"));
}

#[test]
fn a_refresh_result_that_expired_itself_is_not_reused() {
    let mut gw = Gateway::new();
    let jar = gw.login();
    gw.advance(StdDuration::from_secs(301));
    let waiting = gw.request("GET", "/orders", &[("cookie", &jar)]);
    // Short-lived new tokens: expired again before the shared result is forgotten (30 s).
    let answer =
        json!({"access_token": "at-2", "token_type": "Bearer", "expires_in": 10, "refresh_token": "rt-2"});
    let (host, mut stream) = upstream(gw.answer(waiting, 200, &answer));
    let host = host.with_response(200, &[]);
    stream.on_response_headers(&host);
    let response: Vec<(String, String)> = host
        .headers(HeaderMap::ResponseHeaders)
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
        .collect();
    let refreshed = jar_of(&set_cookies(&response));
    gw.advance(StdDuration::from_secs(15));
    let again = gw.request("GET", "/orders", &[("cookie", &refreshed)]);
    let Outcome::Waiting(host, _, _) = &again else {
        panic!("a new refresh, not the stale result: {again:?}");
    };
    let body = String::from_utf8(host.calls().pop().unwrap().body.unwrap()).unwrap();
    assert!(body.contains("refresh_token=rt-2"), "{body}");
}

#[test]
fn hundreds_of_same_name_cookies_cost_at_most_three_decryptions() {
    let gw = Gateway::new();
    let jar = gw.login();
    let junk: Vec<String> = (0..300).map(|i| format!("kea_session=1.k2.AAAA{i}")).collect();
    // The valid session after the junk is not among the first three: refused, cheaply.
    let reply = local(gw.request(
        "GET",
        "/orders",
        &[("cookie", &format!("{}; {jar}", junk.join("; ")))],
    ));
    assert_eq!(reply.status, 401);
}
