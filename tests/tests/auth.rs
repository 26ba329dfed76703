//! End-to-end: real Envoy with `dist/auth.wasm`, keys served by a local identity provider (JWKS
//! and OpenID discovery over HTTP), tokens minted by PyJWT (a JOSE library KEA did not write).

use anyhow::Result;
use kea_e2e::envoy::{rejected_at, Envoy, EnvoyBuilder};
use kea_e2e::http::{self, Response};
use kea_e2e::idp::{Idp, JwksMode};
use kea_e2e::jose::KeySet;
use kea_e2e::oidc::OidcProvider;
use kea_e2e::upstream::Upstream;
use kea_e2e::wait_for;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const HMAC_SECRET: &str = "an-hmac-secret-of-at-least-32-bytes!";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Registered claims of a valid token from `issuer` for the `orders` API.
fn claims(issuer: &str, extra: Value) -> Value {
    let mut claims =
        json!({"iss": issuer, "aud": "orders", "sub": "alice", "iat": now(), "exp": now() + 600});
    for (key, value) in extra.as_object().cloned().unwrap_or_default() {
        claims[key] = value;
    }
    claims
}

fn remote_provider(idp: &Idp, cache_duration: &str) -> Value {
    json!({
        "name": "corp", "issuer": idp.issuer(), "audiences": ["orders"],
        "jwks": {"remote": {"cluster": "idp", "uri": idp.jwks_uri(), "cacheDuration": cache_duration}}
    })
}

fn gateway(upstream: &Upstream, idp: &Idp, workers: u32, config: Value) -> Result<Envoy> {
    EnvoyBuilder::new(upstream.port)
        .concurrency(workers)
        .cluster("idp", idp.port())
        .plugin("auth", config)?
        .plugin_env("KEA_HMAC_SECRET", HMAC_SECRET)
        .start()
}

/// Fresh keys, an identity provider serving them, and a counting upstream.
fn fixture() -> Result<(KeySet, Idp, Upstream)> {
    let keys = KeySet::generate()?;
    let idp = Idp::start()?;
    idp.set_jwks(keys.jwks()?);
    Ok((keys, idp, Upstream::start()?))
}

/// A gateway whose one provider fetches its keys from `idp`.
fn remote_gateway(upstream: &Upstream, idp: &Idp, workers: u32, cache_duration: &str) -> Result<Envoy> {
    gateway(
        upstream,
        idp,
        workers,
        json!({"providers": [remote_provider(idp, cache_duration)]}),
    )
}

fn bearer(envoy: &Envoy, path: &str, token: &str) -> Result<Response> {
    http::send(
        "GET",
        &envoy.url(path),
        &[("authorization", &format!("Bearer {token}"))],
        None,
    )
}

/// Waits until the gateway has keys (requests stop failing closed with 503).
fn wait_until_ready(envoy: &Envoy, token: &str) -> Result<()> {
    wait_for(Duration::from_secs(15), "the gateway to have keys", || {
        bearer(envoy, "/echo", token).ok().filter(|r| r.status == 200)
    })?;
    Ok(())
}

fn echoed_header(response: &Response, name: &str) -> Option<String> {
    response.json()["headers"][name].as_str().map(str::to_owned)
}

#[test]
fn every_algorithm_verifies_and_one_fetch_serves_every_worker() -> Result<()> {
    let (keys, idp, upstream) = fixture()?;
    let config = json!({
        "providers": [
            remote_provider(&idp, "10m"),
            {"name": "internal", "issuer": "internal-services", "algorithms": ["HS256", "HS384", "HS512"],
             "hmacSecretEnv": "KEA_HMAC_SECRET"}
        ]
    });
    let envoy = gateway(&upstream, &idp, 2, config)?;
    let issuer = idp.issuer();
    let mut requests: Vec<Value> = [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
    ]
    .iter()
    .map(|alg| json!({"alg": alg, "claims": claims(&issuer, json!({"sub": format!("user-{alg}")}))}))
    .collect();
    for alg in ["HS256", "HS384", "HS512"] {
        requests.push(json!({"alg": alg, "secret": HMAC_SECRET,
            "claims": claims("internal-services", json!({"sub": format!("user-{alg}")}))}));
    }
    let tokens = keys.mint(&requests)?;
    wait_until_ready(&envoy, &tokens[0])?;
    for (request, token) in requests.iter().zip(&tokens) {
        let alg = request["alg"].as_str().unwrap();
        // Several requests each, so both workers see every algorithm.
        for _ in 0..4 {
            let response = bearer(&envoy, "/echo", token)?;
            assert_eq!(response.status, 200, "{alg}: {}", response.body);
            assert_eq!(
                echoed_header(&response, "x-kea-sub"),
                Some(format!("user-{alg}")),
                "{alg}"
            );
            assert_eq!(
                echoed_header(&response, "authorization"),
                None,
                "{alg}: token not forwarded"
            );
        }
    }
    // Both workers served requests, from keys fetched once for the whole proxy.
    let stats = http::get(&envoy.admin_url("/stats?filter=downstream_cx_total"))?.body;
    let busy_workers = stats
        .lines()
        .filter(|l| l.contains("worker_") && l.contains("downstream_cx_total"))
        .filter(|l| {
            l.rsplit(": ")
                .next()
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(0)
                > 0
        })
        .count();
    assert_eq!(busy_workers, 2, "{stats}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(idp.jwks_fetches(), 1, "one JWKS fetch per proxy, not per worker");
    // RS* and ES* signatures were checked by Envoy's own crypto (`verify_signature`).
    assert!(!envoy.logs().contains("no verify_signature"), "{}", envoy.logs());
    assert!(
        envoy
            .stat("wasmcustom.kea_auth_token_cache_hits_total")
            .unwrap_or(0)
            > 0
    );
    Ok(())
}

#[test]
fn attack_tokens_are_rejected_and_never_reach_the_upstream() -> Result<()> {
    let (keys, idp, upstream) = fixture()?;
    let envoy = remote_gateway(&upstream, &idp, 1, "10m")?;
    let issuer = idp.issuer();
    let valid = keys.mint_one(json!({"alg": "RS256", "claims": claims(&issuer, json!({}))}))?;
    wait_until_ready(&envoy, &valid)?;
    let before = upstream.hits();

    let t = now();
    let cases: Vec<(&str, Value)> = vec![
        (
            "alg none",
            json!({"alg": "none", "claims": claims(&issuer, json!({}))}),
        ),
        (
            "alg none with kid",
            json!({"alg": "none", "header": {"kid": "rsa"}, "claims": claims(&issuer, json!({}))}),
        ),
        (
            "hs256 keyed with the rsa public key",
            json!({"alg": "HS256", "kid": "rsa", "attack": "hmac-with-public-key",
            "claims": claims(&issuer, json!({}))}),
        ),
        (
            "es256 signature claiming rs256",
            json!({"alg": "ES256", "header": {"alg": "RS256", "kid": "rsa"},
            "claims": claims(&issuer, json!({}))}),
        ),
        (
            "expired",
            json!({"alg": "RS256", "claims": claims(&issuer, json!({"iat": t - 7200, "exp": t - 3600}))}),
        ),
        (
            "not yet valid",
            json!({"alg": "ES256", "claims": claims(&issuer, json!({"nbf": t + 3600}))}),
        ),
        (
            "issued in the future",
            json!({"alg": "ES256", "claims": claims(&issuer, json!({"iat": t + 3600}))}),
        ),
        (
            "wrong issuer",
            json!({"alg": "RS256", "claims": claims("https://evil.example.com", json!({}))}),
        ),
        (
            "wrong audience",
            json!({"alg": "RS256", "claims": claims(&issuer, json!({"aud": "billing"}))}),
        ),
        (
            "no expiry",
            json!({"alg": "EdDSA", "claims": {"iss": issuer, "aud": "orders", "sub": "x"}}),
        ),
        (
            "exp not a number",
            json!({"alg": "RS256", "claims": claims(&issuer, json!({"exp": "soon"}))}),
        ),
        (
            "unknown critical header",
            json!({"alg": "RS256", "header": {"crit": ["x-custom"], "x-custom": 1},
            "claims": claims(&issuer, json!({}))}),
        ),
        (
            "unknown kid",
            json!({"alg": "RS256", "header": {"kid": "nobody"}, "claims": claims(&issuer, json!({}))}),
        ),
        (
            "hs256 to an rsa-only provider",
            json!({"alg": "HS256", "secret": HMAC_SECRET, "claims": claims(&issuer, json!({}))}),
        ),
    ];
    let requests: Vec<Value> = cases.iter().map(|(_, r)| r.clone()).collect();
    let mut tokens: Vec<(String, String)> = cases
        .iter()
        .map(|(name, _)| name.to_string())
        .zip(keys.mint(&requests)?)
        .collect();
    let (head, rest) = valid.split_once('.').unwrap();
    tokens.push(("truncated".into(), valid[..valid.len() - 10].to_string()));
    tokens.push((
        "signature stripped".into(),
        format!("{head}.{}.", rest.split('.').next().unwrap()),
    ));
    tokens.push(("garbage".into(), "definitely-not-a-jwt".into()));
    tokens.push(("binary garbage".into(), "%%%.@@@.!!!".into()));
    tokens.push((
        "16 KB token".into(),
        format!("{head}.{}.sig", "A".repeat(16 * 1024)),
    ));

    for (name, token) in &tokens {
        let response = bearer(&envoy, "/echo", token)?;
        assert_eq!(response.status, 401, "{name}: {}", response.body);
        let challenge = response.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{name}: {challenge}"
        );
        assert_eq!(
            response.header("content-type"),
            Some("application/problem+json"),
            "{name}"
        );
        assert_eq!(response.json()["status"], 401, "{name}");
    }
    // Missing credentials: a challenge without an error code (RFC 6750 3.1).
    let missing = http::get(&envoy.url("/echo"))?;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.header("www-authenticate"), Some("Bearer realm=\"kea\""));
    assert_eq!(
        upstream.hits(),
        before,
        "no rejected request reached the upstream"
    );
    assert_eq!(
        bearer(&envoy, "/echo", &valid)?.status,
        200,
        "the VM survived every attack"
    );
    Ok(())
}

#[test]
fn key_rotation_is_picked_up_on_an_unknown_kid_and_refetches_are_rate_limited() -> Result<()> {
    let (keys, idp, upstream) = fixture()?;
    let envoy = remote_gateway(&upstream, &idp, 2, "10m")?;
    let issuer = idp.issuer();
    let tokens = keys.mint(&[
        json!({"alg": "RS256", "claims": claims(&issuer, json!({}))}),
        json!({"alg": "RS256", "kid": "rsa-2", "claims": claims(&issuer, json!({"sub": "rotated"}))}),
        json!({"alg": "RS256", "header": {"kid": "rsa-3"}, "claims": claims(&issuer, json!({}))}),
    ])?;
    wait_until_ready(&envoy, &tokens[0])?;
    assert_eq!(idp.jwks_fetches(), 1);

    // The IdP rotates; the first token with the new kid makes the gateway refetch and wait.
    idp.set_jwks(keys.rotated_jwks()?);
    let rotated = bearer(&envoy, "/echo", &tokens[1])?;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_eq!(echoed_header(&rotated, "x-kea-sub").as_deref(), Some("rotated"));
    assert_eq!(idp.jwks_fetches(), 2);
    // Tokens of the retired key are refused once the new set is loaded on every worker: the
    // other worker picks it up from shared data on its next tick (500 ms).
    std::thread::sleep(Duration::from_millis(1200));
    for _ in 0..4 {
        assert_eq!(bearer(&envoy, "/echo", &tokens[0])?.status, 401);
        assert_eq!(bearer(&envoy, "/echo", &tokens[1])?.status, 200);
    }
    // Unknown kids inside the rate-limit window do not hammer the IdP.
    for _ in 0..20 {
        assert_eq!(bearer(&envoy, "/echo", &tokens[2])?.status, 401);
    }
    assert_eq!(idp.jwks_fetches(), 2);
    Ok(())
}

#[test]
fn jwks_down_at_start_fails_closed_then_recovers() -> Result<()> {
    let (keys, idp, upstream) = fixture()?;
    idp.set_mode(JwksMode::Status(503));
    let envoy = remote_gateway(&upstream, &idp, 2, "10m")?;
    let token = keys.mint_one(json!({"alg": "ES256", "claims": claims(&idp.issuer(), json!({}))}))?;
    wait_for(Duration::from_secs(10), "failed fetches", || {
        (idp.jwks_fetches() >= 2).then_some(())
    })?;
    for _ in 0..10 {
        let response = bearer(&envoy, "/echo", &token)?;
        assert_eq!(response.status, 503, "{}", response.body);
        assert!(response.header("retry-after").is_some());
    }
    assert_eq!(upstream.hits(), 0, "fail closed: nothing passes without keys");
    assert!(envoy.stat("wasmcustom.kea_auth_jwks_failures_total").unwrap_or(0) >= 2);
    idp.set_mode(JwksMode::Serve);
    wait_until_ready(&envoy, &token)?;
    Ok(())
}

#[test]
fn jwks_failures_mid_run_keep_the_last_good_keys() -> Result<()> {
    let (keys, idp, upstream) = fixture()?;
    // Refresh every second so every failure mode is met within the test.
    let envoy = remote_gateway(&upstream, &idp, 2, "1s")?;
    let token = keys.mint_one(json!({"alg": "PS256", "claims": claims(&idp.issuer(), json!({}))}))?;
    wait_until_ready(&envoy, &token)?;
    for mode in [
        JwksMode::Status(500),
        JwksMode::Garbage,
        // Over the plugin's 256 KiB limit: refused by its size, before being read into the VM.
        JwksMode::Huge(1024 * 1024),
        // Envoy itself gives up on buffering this one: the callout fails.
        JwksMode::Huge(50 * 1024 * 1024),
        JwksMode::Delay(Duration::from_secs(7)),
    ] {
        let fetches = idp.jwks_fetches();
        idp.set_mode(mode.clone());
        wait_for(Duration::from_secs(20), "a refresh attempt", || {
            (idp.jwks_fetches() > fetches).then_some(())
        })?;
        if let JwksMode::Delay(_) = mode {
            // The callout times out after 5 s.
            std::thread::sleep(Duration::from_secs(6));
        }
        for _ in 0..5 {
            let response = bearer(&envoy, "/echo", &token)?;
            assert_eq!(response.status, 200, "{mode:?}: {}", response.body);
        }
    }
    assert!(envoy.stat("wasmcustom.kea_auth_jwks_failures_total").unwrap_or(0) >= 5);
    let log = envoy.logs();
    assert!(
        log.contains("exceeds the limit"),
        "the 1 MB answer is refused by size:\n{}",
        log.lines()
            .filter(|l| l.contains("kea-auth"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    Ok(())
}

#[test]
fn discovery_rules_scopes_and_api_keys() -> Result<()> {
    let (keys, idp, upstream) = fixture()?;
    let key_hash = {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("printf %s partner-key-1 | sha256sum")
            .output()?;
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let config = json!({
        "providers": [{"name": "corp", "issuer": idp.issuer(), "audiences": ["orders"],
                       "jwks": {"discovery": {"cluster": "idp"}},
                       "claimHeaders": [{"claim": "email", "header": "x-user-email"}]}],
        "apiKeys": [{"name": "partners", "keys": [{"client": "acme", "sha256": key_hash, "scopes": ["orders:read"]}]}],
        "rules": [
            {"match": {"pathPrefix": "/status"}, "allowAnonymous": true},
            {"match": {"pathPrefix": "/echo/admin"}, "anyOf": ["corp"], "scopes": ["admin"]},
            {"match": {"pathPrefix": "/echo/eu"}, "anyOf": ["corp"],
             "claims": [{"claim": "tenant.region", "oneOf": ["eu-west", "eu-central"]}]}
        ]
    });
    let envoy = gateway(&upstream, &idp, 1, config)?;
    let issuer = idp.issuer();
    let tokens = keys.mint(&[
        json!({"alg": "ES384", "claims": claims(&issuer, json!({"scope": "orders:read", "email": "alice@example.com",
            "tenant": {"region": "us-east"}}))}),
        json!({"alg": "ES384", "claims": claims(&issuer, json!({"scp": ["admin"], "tenant": {"region": "eu-west"}}))}),
    ])?;
    let (user, admin) = (&tokens[0], &tokens[1]);
    wait_until_ready(&envoy, user)?;
    assert!(idp.discovery_fetches() >= 1);

    let response = http::send(
        "GET",
        &envoy.url("/echo"),
        &[
            ("authorization", &format!("Bearer {user}")),
            ("x-kea-sub", "mallory"),
            ("x-user-email", "evil@x"),
        ],
        None,
    )?;
    assert_eq!(echoed_header(&response, "x-kea-sub").as_deref(), Some("alice"));
    assert_eq!(
        echoed_header(&response, "x-kea-scopes").as_deref(),
        Some("orders:read")
    );
    assert_eq!(
        echoed_header(&response, "x-user-email").as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(
        http::get(&envoy.url("/status/204"))?.status,
        204,
        "anonymous route"
    );
    // A path the upstream may resolve to /echo/admin is refused before any rule is chosen.
    assert_eq!(bearer(&envoy, "/echo/admin;v=1", "x.y.z")?.status, 400);
    // Underscore spellings of identity headers do not reach the upstream either.
    let sneaky = http::send(
        "GET",
        &envoy.url("/echo"),
        &[
            ("authorization", &format!("Bearer {user}")),
            ("x_kea_scopes", "admin"),
            ("x_other", "1"),
        ],
        None,
    )?;
    assert_eq!(sneaky.status, 200);
    assert_eq!(
        echoed_header(&sneaky, "x_other").as_deref(),
        Some("1"),
        "underscore headers do pass Envoy"
    );
    assert_eq!(echoed_header(&sneaky, "x_kea_scopes"), None, "{}", sneaky.body);

    let denied = bearer(&envoy, "/echo/admin", user)?;
    assert_eq!(denied.status, 403);
    assert_eq!(
        denied.header("www-authenticate"),
        Some("Bearer realm=\"kea\", error=\"insufficient_scope\", scope=\"admin\"")
    );
    assert_eq!(bearer(&envoy, "/echo/admin", admin)?.status, 200);
    assert_eq!(bearer(&envoy, "/echo/eu", user)?.status, 403);
    assert_eq!(bearer(&envoy, "/echo/eu", admin)?.status, 200);

    let partner = http::send(
        "GET",
        &envoy.url("/echo"),
        &[("x-api-key", "partner-key-1")],
        None,
    )?;
    assert_eq!(partner.status, 200);
    assert_eq!(echoed_header(&partner, "x-kea-client").as_deref(), Some("acme"));
    assert_eq!(
        echoed_header(&partner, "x-api-key"),
        None,
        "the key is not forwarded"
    );
    let wrong = http::send(
        "GET",
        &envoy.url("/echo"),
        &[("x-api-key", "partner-key-2")],
        None,
    )?;
    assert_eq!(wrong.status, 401);
    assert_eq!(envoy.stat("wasmcustom.kea_auth_denied_forbidden_total"), Some(2));
    Ok(())
}

#[test]
fn envoy_refuses_an_invalid_configuration_and_names_the_field() -> Result<()> {
    let upstream = Upstream::start()?;
    let log = EnvoyBuilder::new(upstream.port)
        .plugin(
            "auth",
            json!({"providers": [{"name": "corp", "issuer": "https://idp", "algorithms": ["none"],
                                  "jwks": {"remote": {"cluster": "idp", "uri": "https://idp/jwks"}}}]}),
        )?
        .start_expecting_failure()?;
    assert!(
        log.contains(&rejected_at("auth", "providers[0].algorithms[0]")?),
        "{log}"
    );
    Ok(())
}

#[test]
fn audit_records_the_identity_auth_verified_and_its_rejections() -> Result<()> {
    let (keys, idp, upstream) = fixture()?;
    // The documented chain: audit first (it sees every request), then auth.
    let envoy = EnvoyBuilder::new(upstream.port)
        .cluster("idp", idp.port())
        .plugin("audit", json!({}))?
        .plugin("auth", json!({"providers": [remote_provider(&idp, "10m")]}))?
        .start()?;
    let token =
        keys.mint_one(json!({"alg": "RS256", "claims": claims(&idp.issuer(), json!({"sub": "carol"}))}))?;
    wait_until_ready(&envoy, &token)?;
    let allowed = http::send(
        "GET",
        &envoy.url("/echo/audited"),
        &[
            ("authorization", &format!("Bearer {token}")),
            ("x-kea-sub", "mallory"),
        ],
        None,
    )?;
    assert_eq!(allowed.status, 200);
    let record = envoy.wait_for_record("url.path", "/echo/audited")?;
    assert_eq!(record["user.id"], "carol", "{record}");
    assert_eq!(record["kea.auth.issuer"], idp.issuer(), "{record}");
    assert_eq!(record["kea.request.spoofed_identity"], true, "{record}");
    assert!(
        !record.to_string().contains(&token),
        "the token never appears in the record"
    );

    let denied = bearer(&envoy, "/echo/denied", "not-a-token")?;
    assert_eq!(denied.status, 401);
    let record = envoy.wait_for_record("url.path", "/echo/denied")?;
    assert_eq!(record["http.response.status_code"], 401, "{record}");
    assert!(record.get("user.id").is_none(), "{record}");
    Ok(())
}

#[test]
fn tokens_of_a_real_openid_provider_found_by_discovery() -> Result<()> {
    let provider = OidcProvider::start()?;
    let upstream = Upstream::start()?;
    let config = json!({
        "providers": [{"name": "op", "issuer": provider.issuer(), "audiences": ["orders"],
                       "jwks": {"discovery": {"cluster": "op"}}}],
        "rules": [
            {"match": {"pathPrefix": "/echo/write"}, "anyOf": ["op"], "scopes": ["orders:write"]},
            {"match": {"pathPrefix": "/echo"}, "anyOf": ["op"], "scopes": ["orders:read"]}
        ]
    });
    let envoy = EnvoyBuilder::new(upstream.port)
        .concurrency(2)
        .cluster("op", provider.port())
        .plugin("auth", config)?
        .start()?;
    let reader = provider.access_token("orders:read")?;
    wait_until_ready(&envoy, &reader)?;
    let response = bearer(&envoy, "/echo/orders", &reader)?;
    assert_eq!(
        echoed_header(&response, "x-kea-sub").as_deref(),
        Some(kea_e2e::oidc::CLIENT_ID)
    );
    assert_eq!(echoed_header(&response, "x-kea-iss"), Some(provider.issuer()));
    assert_eq!(
        echoed_header(&response, "x-kea-scopes").as_deref(),
        Some("orders:read")
    );
    assert_eq!(bearer(&envoy, "/echo/write", &reader)?.status, 403);
    let writer = provider.access_token("orders:read orders:write")?;
    assert_eq!(bearer(&envoy, "/echo/write", &writer)?.status, 200);
    // A token of another provider instance (another issuer) is refused.
    let stranger = OidcProvider::start()?.access_token("orders:read")?;
    assert_eq!(bearer(&envoy, "/echo/orders", &stranger)?.status, 401);
    Ok(())
}
