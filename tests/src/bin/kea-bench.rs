//! KEA's benchmark: wrk against real Envoy (1 worker) proxying to a local upstream that returns a
//! fixed ~1 KB JSON body. Bare Envoy and Envoy + each plugin configuration run in the same
//! invocation, interleaved over several rounds; the median of the rounds is reported with the
//! ratio to bare Envoy.
//!
//! JWT scenarios put the auth plugin next to Envoy's native `jwt_authn` (with its JWT cache), both
//! verifying tokens minted by PyJWT against the same inline JWKS: the same token on every request
//! (cache hits), or 10,000 distinct tokens in turn (every request a signature check).
//!
//! Session scenarios send a real session cookie: the bench logs in once at a real OpenID Provider
//! (npm `oidc-provider`) through a gateway, then every measured gateway (same session key, as any
//! replica) checks that cookie on every request.
//!
//! Usage: kea-bench [--duration SECS] [--rounds N] [--connections N] [--only TEXT]
//!                  [--write bench/README.md [--section NAME]]
//!        kea-bench --write-interlinked FILE   writes the 500 × 500 interlinked OpenAPI document
//!                                             of the large-document rows (for `kea openapi`)

use anyhow::{bail, Context, Result};
use kea_e2e::browser::Browser;
use kea_e2e::envoy::{Deployment, EnvoyBuilder};
use kea_e2e::jose::KeySet;
use kea_e2e::oidc::{log_in, OidcProvider, SSO_ENV};
use kea_e2e::soak::sample::resident_bytes;
use kea_e2e::upstream::Upstream;
use kea_e2e::{free_port, wait_for};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The trivial filter making `calls` (`"<kind> <count>[, ...]"`, see `bench/trivial-filter`)
/// host calls per request.
fn probe(name: &'static str, calls: &'static str) -> Scenario {
    probe_on(name, "/pets/1", calls)
}

/// [`probe`] requesting `path`.
fn probe_on(name: &'static str, path: &'static str, calls: &'static str) -> Scenario {
    Scenario {
        name,
        path,
        plugins: vec![("trivial", json!(calls))],
        ..Scenario::default()
    }
}

/// Who verifies the tokens of a JWT scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verifier {
    /// Envoy's `jwt_authn` filter with its JWT cache.
    Native,
    /// KEA's auth plugin.
    Kea,
}

/// Tokens a scenario sends.
#[derive(Debug, Clone, Copy)]
struct JwtLoad {
    verifier: Verifier,
    alg: &'static str,
    /// 10,000 distinct tokens in turn instead of one.
    distinct: bool,
}

/// One configuration under test.
#[derive(Default)]
struct Scenario {
    name: &'static str,
    /// Request path (default `/pets/1`).
    path: &'static str,
    /// (plugin, config); the upstream's port is available as a cluster named `collector`.
    plugins: Vec<(&'static str, Value)>,
    jwt: Option<JwtLoad>,
    /// Requests carry browser session cookies checked by the auth plugin.
    session: Option<SessionLoad>,
    /// `POST` of the upstream's ~1 KB JSON document instead of `GET`; compared with bare Envoy
    /// answering the same POST.
    post: bool,
    /// The gateway's routes instead of one route to the upstream (clusters `v1` and `v2` also
    /// reach the upstream).
    routes: Option<Value>,
    /// The plugins as separate filters, or as stages of the combined module (`dist/kea.wasm`).
    deployment: Deployment,
}

/// Session cookies a scenario sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionLoad {
    /// The cookie of one real login, on every request (the per-worker session cache hits).
    One,
    /// 10,000 distinct sessions in turn: every request decrypts its cookie.
    Distinct,
}

const ISSUER: &str = "https://idp.bench.example";
const DISTINCT_TOKENS: usize = 10_000;

fn jwt_scenario(name: &'static str, verifier: Verifier, alg: &'static str, distinct: bool) -> Scenario {
    Scenario {
        name,
        path: "/pets/1",
        plugins: vec![],
        jwt: Some(JwtLoad {
            verifier,
            alg,
            distinct,
        }),
        session: None,
        post: false,
        routes: None,
        deployment: Deployment::Separate,
    }
}

/// Keys, the public JWKS and the minted tokens per algorithm.
struct JwtFixture {
    _keys: KeySet,
    jwks: Value,
    tokens: HashMap<&'static str, Vec<String>>,
    dir: tempfile::TempDir,
}

impl JwtFixture {
    fn mint(algs: &[&'static str]) -> Result<Self> {
        let keys = KeySet::generate()?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let mut tokens = HashMap::new();
        for alg in algs {
            let requests: Vec<Value> = (0..DISTINCT_TOKENS)
                .map(|i| {
                    json!({"alg": alg, "claims": {"iss": ISSUER, "aud": "orders", "sub": format!("user-{i}"),
                        "scope": "orders:read", "iat": now, "exp": now + 6 * 3600}})
                })
                .collect();
            eprintln!("minting {DISTINCT_TOKENS} {alg} tokens with PyJWT");
            tokens.insert(*alg, keys.mint(&requests)?);
        }
        Ok(Self {
            jwks: keys.jwks()?,
            _keys: keys,
            tokens,
            dir: tempfile::tempdir()?,
        })
    }

    fn native_filter(&self) -> Value {
        json!({
            "name": "envoy.filters.http.jwt_authn",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": {"corp": {
                    "issuer": ISSUER, "audiences": ["orders"],
                    "local_jwks": {"inline_string": self.jwks.to_string()},
                    "claim_to_headers": [{"header_name": "x-jwt-sub", "claim_name": "sub"}],
                    "jwt_cache_config": {"jwt_cache_size": 4096}
                }},
                "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "corp"}}]
            }
        })
    }

    fn plugin_config(&self) -> Value {
        json!({"providers": [{"name": "corp", "issuer": ISSUER, "audiences": ["orders"],
                              "jwks": {"inline": self.jwks}}]})
    }

    /// wrk arguments that send this load's tokens.
    fn wrk_args(&self, load: JwtLoad) -> Result<Vec<String>> {
        let tokens = self
            .tokens
            .get(load.alg)
            .context("no tokens for this algorithm")?;
        if !load.distinct {
            return Ok(vec!["-H".into(), format!("Authorization: Bearer {}", tokens[0])]);
        }
        rotating_header(self.dir.path(), load.alg, "Authorization", "Bearer ", tokens)
    }
}

/// A real session: a provider, the plugin configuration, the cookie one login produced, and
/// 10,000 more sealed by the plugin's own code with the same key.
struct SessionFixture {
    provider: OidcProvider,
    config: Value,
    cookie: String,
    distinct: Vec<String>,
    dir: tempfile::TempDir,
}

impl SessionFixture {
    fn log_in() -> Result<Self> {
        let port = free_port()?;
        let origin = format!("http://localhost:{port}");
        let provider = OidcProvider::start_with(Some(&origin), &[])?;
        let config = provider.sso_config(&origin);
        let upstream = Upstream::start()?;
        let envoy = Self::gateway(
            EnvoyBuilder::new(upstream.port).listen_port(port),
            &provider,
            &config,
        )?
        .start()?;
        let browser = Browser::new();
        let page = wait_for(Duration::from_secs(15), "the login page", || {
            browser
                .navigate(&format!("{origin}/echo"))
                .ok()
                .filter(|v| v.last().status == 200)
        })?;
        let back = log_in(&browser, page, "bench-user")?;
        if back.last().status != 200 {
            bail!(
                "the login did not finish: {} at {}",
                back.last().status,
                back.last_url()
            );
        }
        let cookie = back.cookie_header("kea_session");
        drop(envoy);
        eprintln!(
            "logged in at {}; session cookie of {} bytes",
            provider.issuer(),
            cookie.len()
        );
        let distinct = Self::seal_sessions(&config, &provider.issuer())?;
        Ok(Self {
            provider,
            config,
            cookie,
            distinct,
            dir: tempfile::tempdir()?,
        })
    }

    /// Sessions like the login's (subject, email, scopes, a refresh token), sealed by the plugin's
    /// code under the same configuration and key.
    fn seal_sessions(config: &Value, issuer: &str) -> Result<Vec<String>> {
        use kea_auth::sso::session::{cookies_for, Session};
        for (key, value) in SSO_ENV {
            std::env::set_var(key, value);
        }
        let host = kea_plugin_sdk::mock::MockHost::new();
        let runtime =
            kea_auth::configure(&host, config.to_string().as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let sso = runtime.config.sso.as_ref().context("the configuration has sso")?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        (0..DISTINCT_TOKENS)
            .map(|i| {
                let claims = json!({"sub": format!("user-{i}"), "iss": issuer,
                    "email": format!("user-{i}@example.com"), "email_verified": true});
                let session = Session {
                    sid: format!("bench-session-{i:06}-0123456789"),
                    sub: format!("user-{i}"),
                    claims: claims.as_object().cloned().unwrap_or_default(),
                    scope: "openid email".into(),
                    at: None,
                    rt: Some(format!("refresh-token-{i:06}-abcdefghijklmnopqrstuvwxyz")),
                    exp: now + 6 * 3600,
                    end: now + 12 * 3600,
                };
                let set = cookies_for(&host, sso, &session, now, &[]).context("sealing a session")?;
                let first = set.first().context("a Set-Cookie")?;
                Ok(first.split(';').next().unwrap_or_default().to_owned())
            })
            .collect()
    }

    fn wrk_args(&self, load: SessionLoad) -> Result<Vec<String>> {
        match load {
            SessionLoad::One => Ok(vec!["-H".into(), format!("Cookie: {}", self.cookie)]),
            SessionLoad::Distinct => {
                rotating_header(self.dir.path(), "sessions", "Cookie", "", &self.distinct)
            }
        }
    }

    fn gateway(mut builder: EnvoyBuilder, provider: &OidcProvider, config: &Value) -> Result<EnvoyBuilder> {
        builder = builder
            .cluster("op", provider.port())
            .plugin("auth", config.clone())?;
        for (key, value) in SSO_ENV {
            builder = builder.plugin_env(key, value);
        }
        Ok(builder)
    }
}

/// wrk arguments for a Lua script that sends `header: <prefix><value>` with each value in turn.
fn rotating_header(
    dir: &std::path::Path,
    name: &str,
    header: &str,
    prefix: &str,
    values: &[String],
) -> Result<Vec<String>> {
    let list = dir.join(format!("{name}.values"));
    std::fs::write(&list, values.join("\n"))?;
    let script = dir.join(format!("{name}.lua"));
    std::fs::write(
        &script,
        format!(
            "local values = {{}}\nfor line in io.lines(\"{}\") do values[#values + 1] = line end\n\
             local i = 0\nrequest = function()\n  i = i % #values + 1\n  \
             return wrk.format(nil, nil, {{[\"{header}\"] = \"{prefix}\" .. values[i]}})\nend\n",
            list.display()
        ),
    )?;
    Ok(vec!["-s".into(), script.display().to_string()])
}

/// The validate plugin enforcing bench/pets-api.yaml (the upstream's document as request schema).
fn validate_config() -> Value {
    validate_config_with(json!({}))
}

fn validate_config_with(defaults: Value) -> Value {
    let file = kea_e2e::repo_root().join("bench/pets-api.yaml");
    let mut config = api_config("pets", std::fs::read(&file).map_err(|e| e.to_string()));
    config["defaults"] = defaults;
    config
}

/// The validate plugin enforcing one API compiled from `document` (JSON or YAML bytes). A
/// document that cannot be had or compiled gives a bundle the plugin refuses, so the scenario
/// fails loudly.
fn api_config(name: &str, document: Result<Vec<u8>, String>) -> Value {
    let bundle = document
        .and_then(|bytes| kea_schema::compile_document(name, &bytes).map_err(|e| e.to_string()))
        .and_then(|b| serde_json::from_slice::<Value>(&b.to_json()).map_err(|e| e.to_string()));
    match bundle {
        Ok(bundle) => json!({"apis": [{"name": name, "bundle": bundle}]}),
        Err(error) => json!({"apis": [{"name": name, "bundle": {"error": error}}]}),
    }
}

/// The OIP scenarios' validate configuration, with these `defaults`, built only when one of them
/// runs (it builds the operator).
fn oip_placeholder(defaults: Value) -> Value {
    json!({"$oip": {"defaults": defaults}})
}

/// A scenario's plugin configuration as the gateway gets it: placeholders filled in.
fn resolve(config: &Value, fixture: Option<&JwtFixture>) -> Value {
    if let Some(oip) = config.get("$oip") {
        let mut config = oip_validate_config();
        if !oip["defaults"].is_null() {
            config["defaults"] = oip["defaults"].clone();
        }
        return config;
    }
    match (config.is_null(), fixture) {
        (true, Some(fixture)) => fixture.plugin_config(),
        _ => config.clone(),
    }
}

/// Where the OIP scenarios post: the inference endpoint of bench/mnist-model.yaml.
const OIP_PATH: &str = "/v2/models/mnist/infer";

/// The validate plugin enforcing the OpenAPI document KEA generates for bench/mnist-model.yaml
/// (`kea model openapi`, built here with cargo).
fn oip_validate_config() -> Value {
    let model = kea_e2e::repo_root().join("bench/mnist-model.yaml");
    let document = Command::new("cargo")
        .args([
            "run",
            "--release",
            "--locked",
            "-q",
            "-p",
            "kea-operator",
            "--bin",
            "kea",
            "--",
            "model",
            "openapi",
        ])
        .arg(&model)
        .current_dir(kea_e2e::repo_root())
        .output()
        .map_err(|e| e.to_string())
        .and_then(|output| {
            if output.status.success() {
                Ok(output.stdout)
            } else {
                Err(String::from_utf8_lossy(&output.stderr).into_owned())
            }
        });
    api_config("mnist", document)
}

/// Where the large-document scenarios post: an operation of `interlinked_document` (issue 18),
/// present in every size of it, whose body schema reaches every schema of the document.
const INTERLINKED_PATH: &str = "/r0/obj_1?limit=10";

/// The validate plugin enforcing `interlinked_document(operations, schemas)`.
fn interlinked_config(operations: usize, schemas: usize) -> Value {
    let document = kea_e2e::openapi::interlinked_document(operations, schemas);
    api_config(
        "interlinked",
        serde_json::to_vec(&document).map_err(|e| e.to_string()),
    )
}

/// A ~1 KB body for [`INTERLINKED_PATH`]: objects nested through six references, arrays of
/// referenced objects, metadata.
fn interlinked_body() -> String {
    let mut object = json!({"id": "leaf", "amount": 1, "metadata": {"source": "bench"}});
    for depth in 0..6 {
        object = json!({
            "id": format!("object_{depth}"),
            "amount": depth * 100,
            "next": object,
            "other": {"id": format!("other_{depth}")},
            "items": [{"id": format!("item_{depth}_a")}, {"id": format!("item_{depth}_b"), "amount": 2}],
            "metadata": {"order_id": "6735", "customer": "cus_9s6XKzkNRiz8i3"}
        });
    }
    object.to_string()
}

/// One 1×784 FP32 tensor, as an MNIST client sends it (pixel values in [0, 1], 3 decimals).
fn oip_body() -> String {
    let pixels: Vec<String> = (0..784)
        .map(|i| format!("{:.3}", f64::from((i * 37) % 256) / 255.0))
        .collect();
    format!(
        r#"{{"inputs":[{{"name":"pixels","datatype":"FP32","shape":[1,784],"data":[{}]}}]}}"#,
        pixels.join(",")
    )
}

/// wrk arguments that POST the upstream's JSON document (or, to the OIP path, an OIP tensor).
fn post_args(dir: &std::path::Path, path: &str) -> Result<Vec<String>> {
    let script = dir.join("post.lua");
    let body = if path == OIP_PATH {
        oip_body()
    } else if path == INTERLINKED_PATH {
        interlinked_body()
    } else {
        kea_e2e::upstream::payload().to_string()
    };
    std::fs::write(
        &script,
        format!("wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [==[{body}]==]\n"),
    )?;
    Ok(vec!["-s".into(), script.display().to_string()])
}

/// Routes as KEA renders them for an API split 90/10 across `v1` and `v2`: one route per
/// backend matching the auth plugin's `x-kea-backend` mark, then the weighted fallback.
fn split_routes() -> Value {
    let marked = |key: &str| {
        json!({"name": format!("pets-{key}"),
               "match": {"prefix": "/pets", "headers": [{"name": "x-kea-backend", "string_match": {"exact": key}}]},
               "route": {"cluster": key, "timeout": "5s"}})
    };
    json!([marked("v1"), marked("v2"), {
        "name": "pets", "match": {"prefix": "/"},
        "route": {"weighted_clusters": {"clusters": [{"name": "v1", "weight": 90}, {"name": "v2", "weight": 10}]}, "timeout": "5s"},
    }])
}

/// The auth plugin for public `/pets` routes, with or without the exact 90/10 split.
fn split_auth(split: bool) -> Value {
    // As the operator writes it for a gateway without credentials: anonymous requests pass.
    let mut config = json!({"rules": [{"match": {"pathPrefix": "/pets"}, "allowAnonymous": true}],
                            "defaults": {"allowAnonymous": true}});
    if split {
        config["splits"] = json!([{"match": {"pathPrefix": "/pets"}, "name": "bench/pets",
                                   "backends": [{"key": "v1", "weight": 90}, {"key": "v2", "weight": 10}]}]);
    }
    config
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "bare Envoy",
            path: "/pets/1",
            plugins: vec![],
            jwt: None,
            session: None,
            post: false,
            routes: None,
            deployment: Deployment::Separate,
        },
        // The floor: the audit VM loaded and a rule skipping every request, so its callbacks run
        // but record nothing. What a wasm filter costs here before it does any work.
        Scenario {
            name: "floor: audit loaded, every request skipped",
            path: "/pets/1",
            plugins: vec![("audit", json!({"rules": [{"skip": true}]}))],
            jwt: None,
            session: None,
            post: false,
            routes: None,
            deployment: Deployment::Separate,
        },
        // The real floor: the smallest Rust proxy-wasm filter (sets one response header).
        Scenario {
            name: "floor: trivial Rust filter (sets one response header)",
            path: "/pets/1",
            plugins: vec![("trivial", json!({}))],
            ..Scenario::default()
        },
        // What each kind of host call costs: the trivial filter making 8 of them per request
        // (compare with the floor above; a difference over 8 is the price of one).
        probe(
            "probe: trivial + 8 whole request-header-map reads",
            "request-headers 8",
        ),
        probe("probe: trivial + 8 single request-header lookups", "header 8"),
        probe("probe: trivial + 8 clock reads", "clock 8"),
        probe("probe: trivial + 8 property reads (xds.route_name)", "property 8"),
        probe("probe: trivial + 8 request-header writes", "set-header 8"),
        probe(
            "probe: trivial + 8 whole response-header-map reads",
            "response-headers 8",
        ),
        probe(
            "probe: trivial + 8 shared-data reads (key absent)",
            "shared-data 8",
        ),
        probe("probe: trivial + 8 info log lines (600 bytes)", "log 8"),
        // Each plugin loaded, doing as little as its configuration allows.
        Scenario {
            name: "floor: auth loaded, anonymous allowed, no credentials",
            path: "/pets/1",
            plugins: vec![("auth", json!({"defaults": {"allowAnonymous": true}}))],
            ..Scenario::default()
        },
        Scenario {
            name: "floor: cache loaded, every request bypassed",
            path: "/pets/1",
            plugins: vec![("cache", json!({"rules": [{"settings": {"enabled": false}}]}))],
            ..Scenario::default()
        },
        Scenario {
            name: "floor: kea.wasm, audit stage, every request skipped",
            path: "/pets/1",
            plugins: vec![("audit", json!({"rules": [{"skip": true}]}))],
            deployment: Deployment::Combined,
            ..Scenario::default()
        },
        Scenario {
            name: "audit, proxy-log sink (defaults)",
            path: "/pets/1",
            plugins: vec![("audit", json!({}))],
            jwt: None,
            session: None,
            post: false,
            routes: None,
            deployment: Deployment::Separate,
        },
        Scenario {
            name: "audit, proxy-log sink, all headers + JSON bodies",
            path: "/pets/1",
            plugins: vec![(
                "audit",
                json!({"headers": {"request": true, "response": true}, "body": {"request": true, "response": true}}),
            )],
            jwt: None,
            session: None,
            post: false,
            routes: None,
            deployment: Deployment::Separate,
        },
        Scenario {
            name: "audit, HTTP sink (JSON lines, batched)",
            path: "/pets/1",
            plugins: vec![(
                "audit",
                json!({"sinks": {"log": {"enabled": false}, "http": {"cluster": "collector", "format": "jsonLines", "path": "/ingest"}}}),
            )],
            jwt: None,
            session: None,
            post: false,
            routes: None,
            deployment: Deployment::Separate,
        },
        // The upstream answers /cacheable with the same 1 KB body plus caching headers.
        Scenario {
            name: "cache hit (public, max-age=60)",
            path: "/cacheable/bench",
            plugins: vec![("cache", json!({}))],
            jwt: None,
            session: None,
            post: false,
            routes: None,
            deployment: Deployment::Separate,
        },
        Scenario {
            name: "cache miss (origin says no-store)",
            path: "/cacheable/bench?cc=no-store",
            plugins: vec![("cache", json!({}))],
            jwt: None,
            session: None,
            post: false,
            routes: None,
            deployment: Deployment::Separate,
        },
        // The same upstream answering after 5 ms (`/delay/5/...`), where what a hit saves is
        // the origin's latency, not a few microseconds of a local process.
        Scenario {
            name: "bare Envoy, upstream 5 ms",
            path: "/delay/5/pets/1",
            plugins: vec![],
            jwt: None,
            session: None,
            post: false,
            routes: None,
            deployment: Deployment::Separate,
        },
        Scenario {
            name: "cache hit (public, max-age=60), upstream 5 ms",
            path: "/delay/5/cacheable/bench",
            plugins: vec![("cache", json!({}))],
            jwt: None,
            session: None,
            post: false,
            routes: None,
            deployment: Deployment::Separate,
        },
        Scenario {
            name: "cache miss (origin says no-store), upstream 5 ms",
            path: "/delay/5/cacheable/bench?cc=no-store",
            plugins: vec![("cache", json!({}))],
            jwt: None,
            session: None,
            post: false,
            routes: None,
            deployment: Deployment::Separate,
        },
        jwt_scenario(
            "jwt RS256 same token: native jwt_authn",
            Verifier::Native,
            "RS256",
            false,
        ),
        jwt_scenario("jwt RS256 same token: kea auth", Verifier::Kea, "RS256", false),
        jwt_scenario(
            "jwt ES256 same token: native jwt_authn",
            Verifier::Native,
            "ES256",
            false,
        ),
        jwt_scenario("jwt ES256 same token: kea auth", Verifier::Kea, "ES256", false),
        jwt_scenario(
            "jwt RS256 10,000 tokens: native jwt_authn",
            Verifier::Native,
            "RS256",
            true,
        ),
        jwt_scenario("jwt RS256 10,000 tokens: kea auth", Verifier::Kea, "RS256", true),
        jwt_scenario(
            "jwt ES256 10,000 tokens: native jwt_authn",
            Verifier::Native,
            "ES256",
            true,
        ),
        jwt_scenario("jwt ES256 10,000 tokens: kea auth", Verifier::Kea, "ES256", true),
        // The validate plugin's own floor: loaded, every request skipped (mode off).
        Scenario {
            name: "validate loaded, mode off (GET skipped)",
            path: "/pets/1?fields=name,tags,owner&limit=20&since=2024-01-01",
            plugins: vec![("validate", validate_config_with(json!({"mode": "off"})))],
            jwt: None,
            session: None,
            post: false,
            routes: None,
            deployment: Deployment::Separate,
        },
        Scenario {
            name: "validate GET, path + query checked",
            path: "/pets/1?fields=name,tags,owner&limit=20&since=2024-01-01",
            plugins: vec![("validate", validate_config())],
            jwt: None,
            session: None,
            post: false,
            routes: None,
            deployment: Deployment::Separate,
        },
        Scenario {
            name: "bare Envoy, POST 1 KB JSON (validate baseline)",
            path: "/pets",
            plugins: vec![],
            jwt: None,
            session: None,
            post: true,
            routes: None,
            deployment: Deployment::Separate,
        },
        // Isolates holding headers and buffering the body from checking it: JSON is not read.
        Scenario {
            name: "validate POST 1 KB JSON held, not parsed (bodies: [])",
            path: "/pets",
            plugins: vec![("validate", validate_config_with(json!({"bodies": []})))],
            jwt: None,
            session: None,
            post: true,
            routes: None,
            deployment: Deployment::Separate,
        },
        Scenario {
            name: "validate POST 1 KB JSON body checked",
            path: "/pets",
            plugins: vec![("validate", validate_config())],
            jwt: None,
            session: None,
            post: true,
            routes: None,
            deployment: Deployment::Separate,
        },
        Scenario {
            name: "bare Envoy, POST ~1 KB JSON to the interlinked document's path (interlinked baseline)",
            path: INTERLINKED_PATH,
            plugins: vec![],
            jwt: None,
            session: None,
            post: true,
            routes: None,
            deployment: Deployment::Separate,
        },
        // The same body checked against the same schema structure in a document 100 times
        // smaller: what the document's size costs per request.
        Scenario {
            name: "interlinked: validate POST ~1 KB JSON checked, 5 operations × 5 schemas",
            path: INTERLINKED_PATH,
            plugins: vec![("validate", interlinked_config(5, 5))],
            jwt: None,
            session: None,
            post: true,
            routes: None,
            deployment: Deployment::Separate,
        },
        Scenario {
            name: "interlinked: validate POST ~1 KB JSON checked, 500 operations × 500 schemas",
            path: INTERLINKED_PATH,
            plugins: vec![("validate", interlinked_config(500, 500))],
            jwt: None,
            session: None,
            post: true,
            routes: None,
            deployment: Deployment::Separate,
        },
        Scenario {
            name: "bare Envoy, POST OIP 1×784 FP32 (oip baseline)",
            path: OIP_PATH,
            plugins: vec![],
            jwt: None,
            session: None,
            post: true,
            routes: None,
            deployment: Deployment::Separate,
        },
        Scenario {
            name: "oip: validate POST 1×784 FP32 held, not parsed (bodies: [])",
            path: OIP_PATH,
            plugins: vec![("validate", oip_placeholder(json!({"bodies": []})))],
            jwt: None,
            session: None,
            post: true,
            routes: None,
            deployment: Deployment::Separate,
        },
        Scenario {
            name: "oip: validate POST 1×784 FP32 tensor checked",
            path: OIP_PATH,
            plugins: vec![("validate", oip_placeholder(Value::Null))],
            jwt: None,
            session: None,
            post: true,
            routes: None,
            deployment: Deployment::Separate,
        },
        // Exact splitting (issue 19): the same gateway — auth loaded, a public route split 90/10 —
        // without and with the auth plugin's split stage marking each request.
        Scenario {
            name: "split baseline: auth (public route), weighted routes 90/10, no marks",
            path: "/pets/1",
            plugins: vec![("auth", split_auth(false))],
            jwt: None,
            session: None,
            post: false,
            routes: Some(split_routes()),
            deployment: Deployment::Separate,
        },
        Scenario {
            name: "split: auth marks x-kea-backend, exact 90/10 (shared-data CAS)",
            path: "/pets/1",
            plugins: vec![("auth", split_auth(true))],
            jwt: None,
            session: None,
            post: false,
            routes: Some(split_routes()),
            deployment: Deployment::Separate,
        },
        Scenario {
            name: "sso one session: kea auth",
            path: "/pets/1",
            plugins: vec![],
            jwt: None,
            session: Some(SessionLoad::One),
            post: false,
            routes: None,
            deployment: Deployment::Separate,
        },
        Scenario {
            name: "sso 10,000 sessions: kea auth",
            path: "/pets/1",
            plugins: vec![],
            jwt: None,
            session: Some(SessionLoad::Distinct),
            post: false,
            routes: None,
            deployment: Deployment::Separate,
        },
        // The host calls `kea.wasm` makes on a suite miss (asserted by
        // plugins/suite/tests/host_calls.rs), made by the trivial filter without any of the
        // suite's work: what those calls cost alone, on the same path and upstream.
        probe_on(
            "probe: trivial + a suite miss's 18 host calls",
            "/cacheable/bench?cc=no-store",
            kea_trivial::SUITE_MISS_HOST_CALLS,
        ),
        // The whole suite: audit (defaults) → auth (one cached JWT) → validate (checked) → cache
        // (per user), as four filters and as one module, on a path the cache serves (hit) and
        // one whose origin says no-store (miss: every request goes through all four).
        suite(
            "suite, 4 filters: cache hit",
            "/cacheable/bench",
            false,
            Deployment::Separate,
        ),
        suite(
            "suite, kea.wasm: cache hit",
            "/cacheable/bench",
            false,
            Deployment::Combined,
        ),
        suite(
            "suite, 4 filters: cache miss",
            "/cacheable/bench?cc=no-store",
            false,
            Deployment::Separate,
        ),
        suite(
            "suite, kea.wasm: cache miss",
            "/cacheable/bench?cc=no-store",
            false,
            Deployment::Combined,
        ),
        suite(
            "suite, 4 filters: validate POST 1 KB JSON",
            "/pets",
            true,
            Deployment::Separate,
        ),
        suite(
            "suite, kea.wasm: validate POST 1 KB JSON",
            "/pets",
            true,
            Deployment::Combined,
        ),
        // The miss with one stage of the suite at a time: which stage's presence costs what.
        suite_stage("suite miss, kea.wasm with audit only", "audit"),
        suite_stage("suite miss, kea.wasm with auth only", "auth"),
        suite_stage("suite miss, kea.wasm with validate only", "validate"),
        suite_stage("suite miss, kea.wasm with cache only", "cache"),
    ]
}

/// The suite's scenario: the auth section is the JWT fixture's (a placeholder here).
fn suite(name: &'static str, path: &'static str, post: bool, deployment: Deployment) -> Scenario {
    Scenario {
        name,
        path,
        plugins: vec![
            ("audit", json!({})),
            ("auth", Value::Null),
            ("validate", suite_validate_config()),
            (
                "cache",
                json!({"rules": [{"settings": {"perUser": true, "defaultTtl": "60s"}}]}),
            ),
        ],
        jwt: Some(JwtLoad {
            verifier: Verifier::Kea,
            alg: "ES256",
            distinct: false,
        }),
        post,
        deployment,
        ..Scenario::default()
    }
}

/// The suite's cache miss through `kea.wasm` with only `stage` configured (as in the suite); the
/// bearer token is sent only where auth is there to take it.
fn suite_stage(name: &'static str, stage: &str) -> Scenario {
    let mut scenario = suite(name, "/cacheable/bench?cc=no-store", false, Deployment::Combined);
    scenario.plugins.retain(|(plugin, _)| *plugin == stage);
    if stage != "auth" {
        scenario.jwt = None;
    }
    scenario
}

/// The validate plugin enforcing bench/pets-api.yaml plus the cacheable path the upstream serves
/// (`/cacheable/{name}?cc=`), so every suite request is checked.
fn suite_validate_config() -> Value {
    let file = kea_e2e::repo_root().join("bench/pets-api.yaml");
    let document = std::fs::read_to_string(&file)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_yaml_ng::from_str::<Value>(&text).map_err(|e| e.to_string()))
        .map(|mut document| {
            document["paths"]["/cacheable/{name}"] = json!({"get": {
                "parameters": [
                    {"name": "name", "in": "path", "required": true, "schema": {"type": "string", "maxLength": 64}},
                    {"name": "cc", "in": "query", "schema": {"type": "string", "enum": ["no-store"]}}
                ],
                "responses": {"200": {"description": "a cacheable document"}}
            }});
            document.to_string().into_bytes()
        });
    api_config("pets", document)
}

/// The upstream latency a path asks for: its `/delay/<ms>` prefix, `""` for the fast upstream.
fn upstream_delay(path: &str) -> &str {
    path.strip_prefix("/delay/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("")
}

/// The scenario `scenarios[i]` is compared with: bare Envoy (no filter) sending the same kind of
/// request to the same upstream — the same POST for POST scenarios, the same upstream latency
/// for the others.
fn baseline(scenarios: &[Scenario], i: usize) -> Option<usize> {
    let scenario = scenarios.get(i)?;
    scenarios.iter().position(|b| {
        b.plugins.is_empty()
            && b.jwt.is_none()
            && b.session.is_none()
            && b.post == scenario.post
            && if scenario.post {
                b.path == scenario.path
            } else {
                upstream_delay(b.path) == upstream_delay(scenario.path)
            }
    })
}

/// `--only TEXT[,TEXT...]`: bare Envoy, the scenarios whose name contains one of the texts, and
/// the baselines those compare with.
fn select(all: Vec<Scenario>, only: Option<&str>) -> Vec<Scenario> {
    let mut keep: Vec<bool> = all
        .iter()
        .enumerate()
        .map(|(i, s)| i == 0 || only.is_none_or(|text| text.split(',').any(|t| s.name.contains(t))))
        .collect();
    for i in 0..all.len() {
        if keep.get(i).copied().unwrap_or(false) {
            if let Some(b) = baseline(&all, i) {
                keep[b] = true;
            }
        }
    }
    all.into_iter()
        .zip(keep)
        .filter_map(|(s, kept)| kept.then_some(s))
        .collect()
}

#[derive(Debug, Clone, Copy, Default)]
struct Measurement {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Envoy's resident memory after the run (one worker: the main thread's VMs and the
    /// worker's), MiB.
    rss_mib: f64,
}

fn parse_latency(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(v) = text.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = text.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = text.strip_suffix('s') {
        (v, 1000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

/// Reads `Requests/sec` and the 50%/99% lines of `wrk --latency`.
fn parse_wrk(output: &str) -> Result<Measurement> {
    let mut m = Measurement::default();
    for line in output.lines().map(str::trim) {
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next()) {
            (Some("Requests/sec:"), Some(v)) => m.requests_per_sec = v.parse()?,
            (Some("50%"), Some(v)) => m.p50_ms = parse_latency(v).context("50% latency")?,
            (Some("99%"), Some(v)) => m.p99_ms = parse_latency(v).context("99% latency")?,
            _ => {}
        }
    }
    if m.requests_per_sec == 0.0 {
        bail!("could not read wrk output:\n{output}");
    }
    Ok(m)
}

fn wrk(url: &str, seconds: u64, connections: u32, extra: &[String]) -> Result<Measurement> {
    let output = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
        ])
        .args(extra)
        .arg(url)
        .output()
        .context("cannot run wrk — run scripts/install-deps.sh")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if text.contains("Non-2xx") {
        bail!("wrk saw non-2xx responses:\n{text}");
    }
    parse_wrk(&text)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let envoy = kea_e2e::envoy_binary()
        .ok()
        .and_then(|e| Command::new(e).arg("--version").output().ok())
        .map(|o| {
            // "<path>  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.split("version: ")
                .nth(1)
                .and_then(|v| v.split('/').nth(1))
                .unwrap_or("?")
                .to_string()
        })
        .unwrap_or_default();
    format!("{cpu}, {cores} cores; Envoy {envoy} (V8), 1 worker; wrk -t1")
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| kea_e2e::flag(&args, name);
    if let Some(file) = flag("--write-interlinked") {
        let document = kea_e2e::openapi::interlinked_document(500, 500);
        std::fs::write(&file, serde_json::to_vec(&document)?).with_context(|| format!("writing {file}"))?;
        return Ok(());
    }
    let seconds: u64 = flag("--duration").map(|v| v.parse()).transpose()?.unwrap_or(10);
    let rounds: usize = flag("--rounds").map(|v| v.parse()).transpose()?.unwrap_or(3);
    let connections: u32 = flag("--connections")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(20);

    let upstream = Upstream::start_with_threads(1)?;
    let scenarios = select(scenarios(), flag("--only").as_deref());
    let mut algs: Vec<&'static str> = scenarios.iter().filter_map(|s| s.jwt.map(|j| j.alg)).collect();
    algs.sort_unstable();
    algs.dedup();
    let fixture = if algs.is_empty() {
        None
    } else {
        Some(JwtFixture::mint(&algs)?)
    };
    let session = if scenarios.iter().any(|s| s.session.is_some()) {
        Some(SessionFixture::log_in()?)
    } else {
        None
    };
    let scripts = tempfile::tempdir()?;
    let mut results: Vec<Vec<Measurement>> = vec![Vec::new(); scenarios.len()];
    for round in 1..=rounds {
        for (i, scenario) in scenarios.iter().enumerate() {
            let mut builder = EnvoyBuilder::new(upstream.port).cluster("collector", upstream.port);
            if let Some(routes) = &scenario.routes {
                builder = builder
                    .routes(routes.clone())
                    .cluster("v1", upstream.port)
                    .cluster("v2", upstream.port);
            }
            builder = builder.deployment(scenario.deployment);
            // An auth section left `null` is the JWT fixture's configuration, in its place.
            let placed_auth = scenario.plugins.iter().any(|(p, c)| *p == "auth" && c.is_null());
            for (plugin, config) in &scenario.plugins {
                builder = builder.plugin(plugin, resolve(config, fixture.as_ref()))?;
            }
            let mut extra = Vec::new();
            if let (Some(load), Some(fixture)) = (scenario.jwt, fixture.as_ref()) {
                builder = match load.verifier {
                    Verifier::Native => builder.native_filter(fixture.native_filter()),
                    Verifier::Kea if placed_auth => builder,
                    Verifier::Kea => builder.plugin("auth", fixture.plugin_config())?,
                };
                extra = fixture.wrk_args(load)?;
            }
            if let (Some(load), Some(session)) = (scenario.session, session.as_ref()) {
                builder = SessionFixture::gateway(builder, &session.provider, &session.config)?;
                extra = session.wrk_args(load)?;
            }
            if scenario.post {
                // Beside any header the scenario sends (the suite's bearer token).
                extra.extend(post_args(scripts.path(), scenario.path)?);
            }
            let envoy = builder.start()?;
            let url = envoy.url(scenario.path);
            wrk(&url, 2, connections, &extra)?; // warm-up: JIT, connection pools
            let mut m = wrk(&url, seconds, connections, &extra)?;
            m.rss_mib = envoy.pid().and_then(resident_bytes).unwrap_or(0.0) / (1024.0 * 1024.0);
            eprintln!(
                "round {round}/{rounds} {:<42} {:>9.0} req/s  p50 {:.3} ms  p99 {:.3} ms",
                scenario.name, m.requests_per_sec, m.p50_ms, m.p99_ms
            );
            results[i].push(m);
            drop(envoy);
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    let summary: Vec<Measurement> = results
        .iter()
        .map(|runs| Measurement {
            requests_per_sec: median(&mut runs.iter().map(|m| m.requests_per_sec).collect::<Vec<_>>()),
            p50_ms: median(&mut runs.iter().map(|m| m.p50_ms).collect::<Vec<_>>()),
            p99_ms: median(&mut runs.iter().map(|m| m.p99_ms).collect::<Vec<_>>()),
            rss_mib: median(&mut runs.iter().map(|m| m.rss_mib).collect::<Vec<_>>()),
        })
        .collect();
    let bare = summary[0];
    let mut delays: Vec<&str> = scenarios
        .iter()
        .map(|s| upstream_delay(s.path))
        .filter(|d| !d.is_empty())
        .collect();
    delays.dedup();
    let slow = delays
        .iter()
        .map(|ms| format!(" Rows marked \"upstream {ms} ms\": the same upstream answering each request after {ms} ms (independent timers)."))
        .collect::<String>();
    let mut table = format!(
        "Machine: {}. Upstream: local, fixed 1 KB JSON.{slow} {rounds} interleaved rounds of {seconds} s, {connections} connections; medians.\n\n\
         | configuration | req/s | ratio to bare | p50 ms | p99 ms | p99 vs bare | Envoy RSS MiB |\n|---|---:|---:|---:|---:|---:|---:|\n",
        machine()
    );
    // Each scenario compares with bare Envoy sending the same request to the same upstream.
    for (i, (scenario, m)) in scenarios.iter().zip(&summary).enumerate() {
        let base = baseline(&scenarios, i)
            .and_then(|b| summary.get(b).copied())
            .unwrap_or(bare);
        table.push_str(&format!(
            "| {} | {:.0} | {:.2}× | {:.3} | {:.3} | {:+.3} ms | {:.0} |\n",
            scenario.name,
            m.requests_per_sec,
            m.requests_per_sec / base.requests_per_sec,
            m.p50_ms,
            m.p99_ms,
            m.p99_ms - base.p99_ms,
            m.rss_mib
        ));
    }
    println!("{table}");

    if let Some(path) = flag("--write") {
        let section = flag("--section").unwrap_or_else(|| "results".into());
        kea_e2e::write_section(&path, &section, &table)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_output() {
        let output = "Running 10s test @ http://127.0.0.1:1/\n  Latency Distribution\n     50%  823.00us\n     75%    1.10ms\n     90%    1.50ms\n     99%    2.31ms\n  80000 requests in 10.00s, 90.00MB read\nRequests/sec:   7999.12\nTransfer/sec:      9.00MB\n";
        let m = parse_wrk(output).unwrap();
        assert_eq!(m.requests_per_sec, 7999.12);
        assert!((m.p50_ms - 0.823).abs() < 1e-9);
        assert!((m.p99_ms - 2.31).abs() < 1e-9);
        assert!(parse_wrk("garbage").is_err());
    }

    /// A cut of `scenarios()` (which builds `kea` for the OIP configuration: too slow here).
    fn sample() -> Vec<Scenario> {
        let get = |name, path, plugins: Vec<(&'static str, Value)>| Scenario {
            name,
            path,
            plugins,
            jwt: None,
            session: None,
            post: false,
            routes: None,
            deployment: Deployment::Separate,
        };
        let cache = || vec![("cache", json!({}))];
        vec![
            get("bare Envoy", "/pets/1", vec![]),
            get(
                "floor: audit loaded, every request skipped",
                "/pets/1",
                vec![("audit", json!({}))],
            ),
            get("cache hit (public, max-age=60)", "/cacheable/bench", cache()),
            get("bare Envoy, upstream 5 ms", "/delay/5/pets/1", vec![]),
            get(
                "cache hit (public, max-age=60), upstream 5 ms",
                "/delay/5/cacheable/bench",
                cache(),
            ),
            jwt_scenario(
                "jwt RS256 same token: native jwt_authn",
                Verifier::Native,
                "RS256",
                false,
            ),
            Scenario {
                post: true,
                routes: None,
                ..get("bare Envoy, POST 1 KB JSON (validate baseline)", "/pets", vec![])
            },
            Scenario {
                post: true,
                routes: None,
                ..get(
                    "validate POST 1 KB JSON body checked",
                    "/pets",
                    vec![("validate", json!({}))],
                )
            },
        ]
    }

    #[test]
    fn rows_compare_with_bare_envoy_sending_the_same_request_to_the_same_upstream() {
        let all = sample();
        let baselines: Vec<Option<usize>> = (0..all.len()).map(|i| baseline(&all, i)).collect();
        assert_eq!(
            baselines,
            [
                Some(0),
                Some(0),
                Some(0),
                Some(3),
                Some(3),
                Some(0),
                Some(6),
                Some(6)
            ]
        );
    }

    #[test]
    fn only_keeps_the_baselines_of_what_it_selects() {
        let names: Vec<&str> = select(sample(), Some("cache,jwt"))
            .iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(
            names,
            [
                "bare Envoy",
                "cache hit (public, max-age=60)",
                "bare Envoy, upstream 5 ms",
                "cache hit (public, max-age=60), upstream 5 ms",
                "jwt RS256 same token: native jwt_authn",
            ]
        );
        assert_eq!(select(sample(), None).len(), sample().len());
    }

    #[test]
    fn upstream_delay_is_the_delay_prefix() {
        assert_eq!(upstream_delay("/delay/5/cacheable/bench?cc=no-store"), "5");
        assert_eq!(upstream_delay("/delay/300"), "300");
        assert_eq!(upstream_delay("/cacheable/bench"), "");
    }
}
