//! Helpers shared by the fuzz targets: a fuzzed HTTP request and the checks every whole-request
//! flow target makes.

use arbitrary::Arbitrary;
use kea_plugin_sdk::mock::{LocalReply, MockHost, SharedState};
use kea_plugin_sdk::{Buffer, HeaderMap, Host};
use std::rc::Rc;

/// Methods the generator picks from (plus, sometimes, an arbitrary token).
pub const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE",
];

/// Header names the plugins look at, so the fuzzer does not have to guess them.
pub const HEADER_NAMES: &[&str] = &[
    "authorization",
    "cookie",
    "content-type",
    "content-length",
    "accept",
    "accept-encoding",
    "accept-language",
    "cache-control",
    "pragma",
    "if-none-match",
    "if-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    "range",
    "x-api-key",
    "x-forwarded-proto",
    "x-forwarded-for",
    "x-request-id",
    "x-correlation-id",
    "user-agent",
    "origin",
    "host",
    "x-kea-sub",
    "x-kea-session",
    "x-user-email",
];

/// One header: a known name (by index) or an arbitrary one, and arbitrary value bytes.
#[derive(Debug, Clone, Arbitrary)]
pub struct FuzzHeader {
    pub known: Option<u8>,
    pub name: String,
    pub value: Vec<u8>,
}

impl FuzzHeader {
    pub fn name(&self) -> String {
        match self.known {
            Some(i) => HEADER_NAMES[usize::from(i) % HEADER_NAMES.len()].to_string(),
            None => self.name.to_ascii_lowercase(),
        }
    }
}

/// A request: method, path (with query), headers and body.
#[derive(Debug, Clone, Arbitrary)]
pub struct FuzzRequest {
    pub method: u8,
    pub custom_method: Option<String>,
    pub path: String,
    pub headers: Vec<FuzzHeader>,
    pub body: Vec<u8>,
}

impl FuzzRequest {
    pub fn method(&self) -> String {
        match &self.custom_method {
            Some(m) => m.clone(),
            None => METHODS[usize::from(self.method) % METHODS.len()].to_string(),
        }
    }

    /// A host holding this request (headers set raw, so bytes need not be UTF-8).
    pub fn host(&self, shared: Option<Rc<SharedState>>) -> MockHost {
        let host = match shared {
            Some(shared) => MockHost::sharing_with(shared),
            None => MockHost::new(),
        };
        let host = host.with_request(&self.method(), &self.path, &[]);
        for header in self.headers.iter().take(32) {
            let name = header.name();
            if name.is_empty() || name.starts_with(':') {
                continue;
            }
            host.add_header(HeaderMap::RequestHeaders, &name, &header.value);
        }
        if !self.body.is_empty() {
            host.set_body(Buffer::RequestBody, &self.body);
        }
        host
    }
}

/// A response the upstream gives: status, headers and body.
#[derive(Debug, Clone, Arbitrary)]
pub struct FuzzResponse {
    pub status: u16,
    pub headers: Vec<FuzzHeader>,
    pub body: Vec<u8>,
}

impl FuzzResponse {
    /// Status codes Envoy would pass on: 100..=599.
    pub fn status(&self) -> u16 {
        100 + self.status % 500
    }

    pub fn headers(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .take(32)
            .map(|h| (h.name(), String::from_utf8_lossy(&h.value).into_owned()))
            .filter(|(n, _)| !n.is_empty() && !n.starts_with(':'))
            .collect()
    }
}

/// Every local reply a plugin sent must carry a valid HTTP status.
pub fn assert_valid_replies(replies: &[LocalReply]) {
    for reply in replies {
        assert!(
            (200..=599).contains(&reply.status),
            "local reply with status {}: {reply:?}",
            reply.status
        );
        for (name, value) in &reply.headers {
            assert!(
                !name.is_empty() && !name.bytes().any(|b| b.is_ascii_control() || b == b' '),
                "bad header name {name:?}"
            );
            assert!(
                !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0),
                "header {name} carries a line break or NUL: {value:?}"
            );
        }
    }
}

/// RFC 7515/7519 structure: `bytes` is one JSON **object** (not an array or a scalar) and no
/// object anywhere in it repeats a member name. Returns what is wrong.
pub fn strict_json_object(bytes: &[u8]) -> Result<(), String> {
    use serde::de::{Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
    struct Strict {
        top: bool,
    }
    impl<'de> Visitor<'de> for Strict {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(if self.top { "a JSON object" } else { "JSON" })
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key.clone()) {
                    return Err(serde::de::Error::custom(format!("duplicate member {key:?}")));
                }
                map.next_value_seed(StrictSeed)?;
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            if self.top {
                return Err(serde::de::Error::custom("an array, not an object"));
            }
            while seq.next_element_seed(StrictSeed)?.is_some() {}
            Ok(())
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
            self.scalar()
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
            self.scalar()
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
            self.scalar()
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
            self.scalar()
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
            self.scalar()
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
            self.scalar()
        }
    }
    impl Strict {
        fn scalar<E: serde::de::Error>(self) -> Result<(), E> {
            if self.top {
                Err(E::custom("a scalar, not an object"))
            } else {
                Ok(())
            }
        }
    }
    struct StrictSeed;
    impl<'de> serde::de::DeserializeSeed<'de> for StrictSeed {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(Strict { top: false })
        }
    }
    let _ = IgnoredAny;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.deserialize_any(Strict { top: true })
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())
}

/// The auth plugin under a fixed, realistic configuration: an HS256 provider, an ES256 provider
/// with inline keys that also issues the browser (SSO) sessions, an API key set, and rules.
pub mod auth {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    use kea_auth::stream::Runtime;
    use kea_plugin_sdk::mock::{MockHost, SharedState};
    use std::rc::Rc;
    use std::time::{Duration, SystemTime};

    pub const ISSUER: &str = "https://idp.example.com";
    pub const HMAC_SECRET: &str = "0123456789abcdef0123456789abcdef-fuzz";
    /// The mock proxy's clock (2027-01-15) and the tokens' `iat`.
    pub const NOW: u64 = 1_800_000_000;
    pub const API_KEY: &str = "acme-secret-key";

    /// The ES256 public point: P-256's generator (a valid point; no token is minted for it).
    const EC_X: &str = "axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY";
    const EC_Y: &str = "T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU";

    pub fn config() -> serde_json::Value {
        serde_json::json!({
            "providers": [
                {"name": "internal", "issuer": "internal", "algorithms": ["HS256"],
                 "hmacSecretEnv": "KEA_FUZZ_HMAC", "audiences": ["orders"],
                 "sources": [{"header": "authorization", "prefix": "Bearer "}, {"query": "access_token"}, {"cookie": "at"}],
                 "claimHeaders": [{"claim": "email", "header": "x-user-email"}],
                 "payloadHeader": "x-jwt-payload"},
                {"name": "idp", "issuer": ISSUER, "audiences": ["orders"],
                 "jwks": {"inline": {"keys": [{"kty": "EC", "crv": "P-256", "kid": "ec-1", "x": EC_X, "y": EC_Y}]}}}
            ],
            "apiKeys": [{"name": "partners", "keys": [
                {"client": "acme", "sha256": sha256_hex(API_KEY), "scopes": ["orders:read"]}
            ]}],
            "sso": {
                "name": "browser", "provider": "idp", "clientId": "gateway",
                "clientSecretEnv": "KEA_FUZZ_CLIENT_SECRET", "cluster": "idp",
                "endpoints": {
                    "authorization": "https://idp.example.com/authorize",
                    "token": "https://idp.example.com/token",
                    "endSession": "https://idp.example.com/logout"
                },
                "scopes": ["openid", "email", "offline_access"],
                "postLogoutRedirectUri": "https://gw.example.com/bye",
                "loginPaths": ["/app"],
                "sessionKeys": [{"id": "k1", "secretEnv": "KEA_FUZZ_SESSION_KEY"}],
                "refreshBefore": "30s"
            },
            "rules": [
                {"match": {"pathPrefix": "/public"}, "allowAnonymous": true},
                {"match": {"pathPrefix": "/admin"}, "anyOf": ["internal"], "scopes": ["admin"]},
                {"match": {"pathTemplate": "/orders/{id}", "methods": ["GET"]}, "anyOf": ["internal", "partners"]},
                {"match": {"pathPrefix": "/staff"}, "anyOf": ["browser"], "claims": [{"claim": "groups", "contains": "staff"}]},
                {"match": {"pathPrefix": "/both"}, "allOf": ["internal", "partners"]},
                {"match": {"pathPrefix": "/app"}, "anyOf": ["browser"]}
            ]
        })
    }

    pub fn sha256_hex(text: &str) -> String {
        use sha2::{Digest, Sha256};
        Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// An HS256 token for the `internal` provider with these claims.
    pub fn hs256(claims: &serde_json::Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(HMAC_SECRET.as_bytes()).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// One configured worker and credentials that pass it.
    pub struct Fixture {
        pub shared: Rc<SharedState>,
        pub runtime: Rc<Runtime>,
        pub token: String,
        pub admin_token: String,
        /// A `Cookie` header value carrying a valid browser session.
        pub session_cookie: String,
        /// A login in progress: the callback path with its `state`, and the login cookie
        /// (`name=value`), so a fuzzed callback reaches the token exchange.
        pub callback: String,
        pub login_cookie: String,
    }

    impl Fixture {
        pub fn new() -> Self {
            std::env::set_var("KEA_FUZZ_HMAC", HMAC_SECRET);
            std::env::set_var("KEA_FUZZ_CLIENT_SECRET", "client-secret");
            std::env::set_var("KEA_FUZZ_SESSION_KEY", "fuzz-session-key-fuzz-session-key-0123");
            let root = MockHost::new();
            root.set_now(SystemTime::UNIX_EPOCH + Duration::from_secs(NOW));
            let runtime = kea_auth::configure(&root, config().to_string().as_bytes()).unwrap();
            let claims = |extra: serde_json::Value| {
                let mut claims = serde_json::json!({"iss": "internal", "aud": "orders", "sub": "svc",
                    "iat": NOW, "exp": NOW + 3600, "email": "svc@example.com", "scope": "orders:read"});
                claims
                    .as_object_mut()
                    .unwrap()
                    .extend(extra.as_object().unwrap().clone());
                claims
            };
            let token = hs256(&claims(serde_json::json!({})));
            let admin_token = hs256(&claims(serde_json::json!({"scope": "admin orders:read"})));
            let sso = runtime.config.sso.as_ref().unwrap();
            let session = kea_auth::sso::session::Session {
                sid: "sid-1".into(),
                sub: "alice".into(),
                claims: serde_json::json!({"groups": ["staff"], "email": "alice@example.com"})
                    .as_object()
                    .unwrap()
                    .clone(),
                scope: "openid email".into(),
                at: None,
                rt: Some("rt-1".into()),
                exp: NOW + 3600,
                end: NOW + 86_400,
            };
            let set = kea_auth::sso::session::cookies_for(&root, sso, &session, NOW, &[]).unwrap();
            let session_cookie = set
                .iter()
                .filter_map(|line| line.split(';').next())
                .filter(|pair| !pair.ends_with('='))
                .collect::<Vec<_>>()
                .join("; ");
            let browser = MockHost::sharing_with(root.shared()).with_request("GET", "/app", &[]);
            browser.set_now(SystemTime::UNIX_EPOCH + Duration::from_secs(NOW));
            let headers = kea_auth::sources::RequestHeaders::read(&browser);
            let endpoints = sso.endpoints.as_ref().unwrap();
            let started = kea_auth::sso::login::start(&browser, sso, endpoints, &headers, NOW).unwrap();
            let state = kea_auth::sso::login::query_params(&started.location)
                .into_iter()
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v)
                .unwrap();
            let callback = format!("{}?state={state}&code=code-1", sso.callback_path);
            let login_cookie = started.set_cookie.split(';').next().unwrap().to_string();
            Self {
                shared: root.shared(),
                runtime,
                token,
                admin_token,
                session_cookie,
                callback,
                login_cookie,
            }
        }

        pub fn host(&self) -> MockHost {
            let host = MockHost::sharing_with(Rc::clone(&self.shared));
            host.set_now(SystemTime::UNIX_EPOCH + Duration::from_secs(NOW));
            host
        }
    }

    impl Default for Fixture {
        fn default() -> Self {
            Self::new()
        }
    }
}
