//! What a soak run sends: per target, the plugins with their configurations and a weighted mix
//! of valid, invalid and hostile requests, each with the statuses a correct gateway answers.

use crate::jose::KeySet;
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

pub const ISSUER: &str = "https://idp.soak.example";
const API_KEY: &str = "soak-partner-secret-key-0123456789";
/// Distinct valid tokens: enough to churn the auth plugin's verified-token cache.
const DISTINCT_TOKENS: usize = 2_000;

/// A plugin configuration, or the whole suite, under soak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Audit,
    Auth,
    Validate,
    Cache,
    /// audit, auth, validate and cache in one chain, in the operator's order.
    Suite,
}

impl Target {
    pub const ALL: [Target; 5] = [
        Target::Audit,
        Target::Auth,
        Target::Validate,
        Target::Cache,
        Target::Suite,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Audit => "audit",
            Target::Auth => "auth",
            Target::Validate => "validate",
            Target::Cache => "cache",
            Target::Suite => "suite",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The filter chain: (plugin, configuration), in order.
    pub fn plugins(self, fixture: &Fixture) -> Vec<(&'static str, Value)> {
        match self {
            Target::Audit => vec![("audit", audit_config())],
            Target::Auth => vec![("auth", fixture.auth_config())],
            Target::Validate => vec![("validate", fixture.validate.clone())],
            Target::Cache => vec![("cache", cache_config(false))],
            Target::Suite => vec![
                ("audit", audit_config()),
                ("auth", fixture.auth_config()),
                ("validate", fixture.validate.clone()),
                ("cache", cache_config(true)),
            ],
        }
    }

    pub fn probes(self) -> Vec<Probe> {
        match self {
            Target::Audit => audit_probes(),
            Target::Auth => auth_probes(),
            Target::Validate => validate_probes(),
            Target::Cache => cache_probes(),
            Target::Suite => suite_probes(),
        }
    }
}

/// One request to send.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl Request {
    fn get(path: impl Into<String>) -> Self {
        Self {
            method: "GET",
            path: path.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    fn post(path: impl Into<String>, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            method: "POST",
            path: path.into(),
            headers: vec![("content-type".into(), content_type.into())],
            body: Some(body.into()),
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }
}

/// A kind of request in the mix: how often, how it is built (from the fixture and a running
/// number), and which statuses a correct gateway answers.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub name: &'static str,
    pub weight: u32,
    pub expect: &'static [u16],
    pub build: fn(&Fixture, u64) -> Request,
}

/// Keys, tokens and the compiled API every target's requests and configurations use.
#[derive(Debug)]
pub struct Fixture {
    _keys: KeySet,
    jwks: Value,
    tokens: Vec<String>,
    expired: String,
    wrong_audience: String,
    validate: Value,
}

impl Fixture {
    /// Mints the tokens (PyJWT, RS256) valid for `hours`, and compiles bench/pets-api.yaml.
    pub fn new(hours: u64) -> Result<Self> {
        let keys = KeySet::generate()?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let claims = |sub: String, aud: &str, exp: u64| json!({"alg": "RS256", "claims": {"iss": ISSUER, "aud": aud, "sub": sub, "iat": now - 60, "exp": exp}});
        let mut requests: Vec<Value> = (0..DISTINCT_TOKENS)
            .map(|i| claims(format!("user-{i}"), "orders", now + (hours + 2) * 3600))
            .collect();
        requests.push(claims("late".into(), "orders", now - 3600));
        requests.push(claims("other".into(), "billing", now + (hours + 2) * 3600));
        let mut tokens = keys.mint(&requests)?;
        let wrong_audience = tokens.pop().context("minted")?;
        let expired = tokens.pop().context("minted")?;
        let document = std::fs::read(crate::repo_root().join("bench/pets-api.yaml"))?;
        let bundle = kea_schema::compile_document("pets", &document).map_err(|e| anyhow::anyhow!("{e}"))?;
        let bundle: Value = serde_json::from_slice(&bundle.to_json())?;
        Ok(Self {
            jwks: keys.jwks()?,
            _keys: keys,
            tokens,
            expired,
            wrong_audience,
            validate: json!({"apis": [{"name": "pets", "bundle": bundle}],
                             "defaults": {"maxBodyBytes": "64KiB"}}),
        })
    }

    fn token(&self, n: u64) -> &str {
        self.tokens
            .get(n as usize % self.tokens.len().max(1))
            .map_or("", String::as_str)
    }

    fn auth_config(&self) -> Value {
        json!({
            "providers": [{"name": "corp", "issuer": ISSUER, "audiences": ["orders"],
                           "jwks": {"inline": self.jwks}}],
            "apiKeys": [{"name": "partners",
                         "keys": [{"client": "acme", "sha256": sha256_hex(API_KEY)}]}],
            "rules": [{"match": {"pathPrefix": "/"}, "anyOf": ["corp", "partners"]}],
            // Fewer entries than distinct tokens: the verified-token cache evicts all the time.
            "tokenCache": {"maxEntries": 500}
        })
    }
}

fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every header and JSON body recorded, with the default redaction, sent in batches to the
/// upstream's `/ingest` (the HTTP sink: callouts, a shared queue, retries).
fn audit_config() -> Value {
    json!({
        "headers": {"request": true, "response": true},
        "body": {"request": true, "response": true},
        "sinks": {"log": {"enabled": false},
                  "http": {"cluster": "collector", "format": "jsonLines", "path": "/ingest"}}
    })
}

/// A small store (256 entries) so that the churning keys evict all the time.
fn cache_config(per_user: bool) -> Value {
    json!({"defaults": {"defaultTtl": "30s", "perUser": per_user},
           "store": {"maxEntries": 256, "maxEntryBytes": "64KiB"}})
}

const PET: &str = r#"{"id":"c0ffee00-1234-4abc-9def-0123456789ab","name":"Rex","kind":"dog","status":"available","owner":{"id":42,"name":"Alice","email":"alice@example.com","address":{"zip":"12345","country":"US"}},"tags":[{"id":1,"name":"friendly"}]}"#;

fn nested_json(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// A token whose JOSE header is a JSON array (`["RS256"]`), signature garbage.
fn array_header_token() -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        b64.encode(r#"["RS256"]"#),
        b64.encode(format!(
            r#"{{"iss":"{ISSUER}","aud":"orders","sub":"x","exp":9999999999}}"#
        )),
        b64.encode([7u8; 256])
    )
}

fn audit_probes() -> Vec<Probe> {
    vec![
        Probe {
            name: "GET with credentials to redact",
            weight: 4,
            expect: &[200],
            build: |_, n| {
                Request::get(format!("/echo/{n}?token=secret-{n}"))
                    .header("authorization", "Bearer not-a-real-token")
                    .header("cookie", format!("session=s{n}; theme=dark"))
            },
        },
        Probe {
            name: "POST JSON with secrets",
            weight: 3,
            expect: &[200],
            build: |_, n| {
                Request::post(
                    "/echo/orders",
                    "application/json",
                    format!(
                        r#"{{"user":"u{n}","password":"hunter{n}","card":{{"number":"4111111111111111"}},"items":[1,2,3]}}"#
                    ),
                )
            },
        },
        Probe {
            name: "POST 48 KB binary",
            weight: 1,
            expect: &[200],
            build: |_, n| {
                Request::post(
                    "/echo/blob",
                    "application/octet-stream",
                    vec![(n % 251) as u8; 48 * 1024],
                )
            },
        },
        Probe {
            name: "POST malformed JSON",
            weight: 1,
            expect: &[200],
            build: |_, _| Request::post("/echo/bad", "application/json", r#"{"a": [1, 2, {"b": "#),
        },
        Probe {
            name: "POST JSON nested 10,000 deep",
            weight: 1,
            expect: &[200],
            build: |_, _| Request::post("/echo/deep", "application/json", nested_json(10_000)),
        },
        Probe {
            name: "GET with 60 headers",
            weight: 1,
            expect: &[200],
            build: |_, n| {
                (0..60).fold(Request::get("/echo/many"), |r, i| {
                    r.header(&format!("x-extra-{i}"), format!("value-{n}-{i}"))
                })
            },
        },
    ]
}

fn auth_probes() -> Vec<Probe> {
    vec![
        Probe {
            name: "valid JWT (2,000 distinct)",
            weight: 8,
            expect: &[200],
            build: |f, n| Request::get(format!("/pets/{}", n % 500 + 1)).bearer(f.token(n)),
        },
        Probe {
            name: "valid API key",
            weight: 2,
            expect: &[200],
            build: |_, n| Request::get(format!("/pets/{}", n % 500 + 1)).header("x-api-key", API_KEY),
        },
        Probe {
            name: "wrong API key",
            weight: 1,
            expect: &[401],
            build: |_, n| Request::get("/pets/1").header("x-api-key", format!("guess-{n}")),
        },
        Probe {
            name: "no credentials",
            weight: 1,
            expect: &[401],
            build: |_, _| Request::get("/pets/1"),
        },
        Probe {
            name: "expired JWT",
            weight: 1,
            expect: &[401],
            build: |f, _| Request::get("/pets/1").bearer(&f.expired),
        },
        Probe {
            name: "JWT for another audience",
            weight: 1,
            expect: &[401],
            build: |f, _| Request::get("/pets/1").bearer(&f.wrong_audience),
        },
        Probe {
            name: "tampered signature",
            weight: 1,
            expect: &[401],
            build: |f, n| {
                let token = f.token(n);
                let cut = token.len().saturating_sub(6);
                Request::get("/pets/1").bearer(&format!("{}AAAAAA", &token[..cut]))
            },
        },
        Probe {
            name: "alg none, array header, garbage",
            weight: 1,
            expect: &[401],
            build: |_, n| {
                let token = match n % 3 {
                    0 => "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.".to_string(),
                    1 => array_header_token(),
                    _ => format!("{}.{}.{}", "A".repeat(40), "%%%", n),
                };
                Request::get("/pets/1").bearer(&token)
            },
        },
        Probe {
            name: "12 KB token",
            weight: 1,
            expect: &[401],
            build: |_, _| Request::get("/pets/1").bearer(&format!("eyJ{}.e30.x", "A".repeat(12 * 1024))),
        },
    ]
}

fn validate_probes() -> Vec<Probe> {
    vec![
        Probe {
            name: "GET valid",
            weight: 6,
            expect: &[200],
            build: |_, n| {
                Request::get(format!(
                    "/pets/{}?limit={}&fields=name,kind",
                    n % 1000 + 1,
                    n % 100 + 1
                ))
            },
        },
        Probe {
            name: "POST valid pet",
            weight: 3,
            expect: &[200],
            build: |_, _| Request::post("/pets", "application/json", PET),
        },
        Probe {
            name: "GET invalid parameters",
            weight: 2,
            expect: &[400],
            build: |_, n| match n % 3 {
                0 => Request::get(format!("/pets/abc{n}")),
                1 => Request::get("/pets/1?limit=1000"),
                _ => Request::get("/pets/1?since=yesterday&fields=name,nope"),
            },
        },
        Probe {
            name: "POST invalid pet",
            weight: 2,
            expect: &[400],
            build: |_, n| {
                Request::post(
                    "/pets",
                    "application/json",
                    format!(r#"{{"id":"x{n}","name":"","kind":"fish","status":"gone","owner":{{"id":0}}}}"#),
                )
            },
        },
        Probe {
            name: "POST malformed, duplicate keys, 10,000 deep",
            weight: 2,
            expect: &[400],
            build: |_, n| {
                let body = match n % 3 {
                    0 => r#"{"id": "#.to_string(),
                    1 => PET.replacen(r#""name":"Rex""#, r#""name":"Rex","name":"Max""#, 1),
                    _ => nested_json(10_000),
                };
                Request::post("/pets", "application/json", body)
            },
        },
        Probe {
            name: "POST 80 KB (over maxBodyBytes)",
            weight: 1,
            expect: &[413],
            build: |_, _| {
                Request::post(
                    "/pets",
                    "application/json",
                    format!(r#"{{"notes":"{}"}}"#, "x".repeat(80 * 1024)),
                )
            },
        },
        Probe {
            name: "unknown path, method, media type",
            weight: 1,
            expect: &[404, 405, 415],
            build: |_, n| match n % 3 {
                0 => Request::get(format!("/nowhere/{n}")),
                1 => Request {
                    method: "DELETE",
                    ..Request::get("/pets/1")
                },
                _ => Request::post("/pets", "application/xml", "<pet/>"),
            },
        },
    ]
}

fn cache_probes() -> Vec<Probe> {
    vec![
        Probe {
            name: "GET popular (100 keys)",
            weight: 6,
            expect: &[200],
            build: |_, n| Request::get(format!("/cacheable/popular-{}", n % 100)),
        },
        Probe {
            name: "GET churning keys (evictions)",
            weight: 3,
            expect: &[200],
            build: |_, n| Request::get(format!("/cacheable/churn-{n}?size={}", 512 + n % 8192)),
        },
        Probe {
            name: "conditional GET",
            weight: 2,
            expect: &[304],
            build: |_, n| {
                Request::get(format!("/cacheable/popular-{}", n % 100)).header("if-none-match", "\"v1\"")
            },
        },
        Probe {
            name: "Range: valid, invalid, unsatisfiable",
            weight: 2,
            expect: &[200, 206, 416],
            build: |_, n| {
                let range = match n % 4 {
                    0 => "bytes=0-99".to_string(),
                    1 => "bytes=-10, 5-9, 0-0".to_string(),
                    2 => format!("bytes={n}-"),
                    _ => "bytes=abc-%%%".to_string(),
                };
                Request::get(format!("/cacheable/popular-{}", n % 100)).header("range", range)
            },
        },
        Probe {
            name: "no-store and hostile Cache-Control",
            weight: 1,
            expect: &[200],
            build: |_, n| match n % 2 {
                0 => Request::get("/cacheable/x?cc=no-store"),
                _ => Request::get(format!("/cacheable/popular-{}", n % 100)).header(
                    "cache-control",
                    "max-age=\"9999999999999999999999\", no-cache=\", min-fresh=-1",
                ),
            },
        },
        Probe {
            name: "POST (not cached)",
            weight: 1,
            expect: &[200],
            build: |_, n| {
                Request::post(
                    "/cacheable/popular-1",
                    "application/json",
                    format!("{{\"n\":{n}}}"),
                )
            },
        },
    ]
}

/// Through all four plugins: the suite's requests carry tokens and follow the pets API.
fn suite_probes() -> Vec<Probe> {
    vec![
        Probe {
            name: "GET valid, JWT (cached per user)",
            weight: 8,
            expect: &[200],
            build: |f, n| Request::get(format!("/pets/{}?limit=10", n % 200 + 1)).bearer(f.token(n % 50)),
        },
        Probe {
            name: "GET valid, API key, Range",
            weight: 2,
            expect: &[200, 206],
            build: |_, n| {
                Request::get(format!("/pets/{}", n % 200 + 1))
                    .header("x-api-key", API_KEY)
                    .header("range", "bytes=0-63")
            },
        },
        Probe {
            name: "POST valid pet, JWT",
            weight: 3,
            expect: &[200],
            build: |f, n| Request::post("/pets", "application/json", PET).bearer(f.token(n)),
        },
        Probe {
            name: "POST invalid or malformed, JWT",
            weight: 2,
            expect: &[400],
            build: |f, n| {
                let body = if n % 2 == 0 {
                    nested_json(10_000)
                } else {
                    r#"{"id":"x","kind":"fish"}"#.to_string()
                };
                Request::post("/pets", "application/json", body).bearer(f.token(n))
            },
        },
        Probe {
            name: "GET invalid parameter, JWT",
            weight: 1,
            expect: &[400],
            build: |f, n| Request::get(format!("/pets/abc{n}")).bearer(f.token(n)),
        },
        Probe {
            name: "bad credentials",
            weight: 2,
            expect: &[401],
            build: |f, n| match n % 3 {
                0 => Request::get("/pets/1").bearer(&f.expired),
                1 => Request::get("/pets/1").bearer(&array_header_token()),
                _ => Request::get("/pets/1"),
            },
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_has_a_mix_with_expectations() {
        for target in Target::ALL {
            let probes = target.probes();
            assert!(probes.len() >= 5, "{}", target.name());
            assert!(probes.iter().all(|p| p.weight > 0 && !p.expect.is_empty()));
            // Audit and cache refuse nothing: their hostile requests (malformed, deep, binary
            // bodies; broken Range and Cache-Control headers) pass, recorded or cached.
            let refuses = probes.iter().any(|p| p.expect.iter().all(|s| *s >= 400));
            let refuser = matches!(target, Target::Auth | Target::Validate | Target::Suite);
            assert_eq!(refuses, refuser, "{}", target.name());
            assert_eq!(Target::parse(target.name()), Some(target));
        }
    }
}
