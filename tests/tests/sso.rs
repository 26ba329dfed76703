//! End-to-end single sign-on: real Envoy with `dist/auth.wasm`, a real OpenID Provider (npm
//! `oidc-provider`: discovery, login and consent pages, code + PKCE, refresh tokens, RP-initiated
//! logout) and a browser that follows redirects and fills in the provider's forms.

use anyhow::Result;
use kea_e2e::browser::{Browser, Visit};
use kea_e2e::envoy::{Envoy, EnvoyBuilder};
use kea_e2e::http::{self, Response};
use kea_e2e::oidc::{log_in, node_script, OidcProvider, SSO_ENV};
use kea_e2e::upstream::Upstream;
use kea_e2e::{free_port, wait_for};
use std::time::Duration;

/// Access tokens (and so sessions before a refresh) of the provider last this long.
const ACCESS_TTL_SECS: u64 = 6;

struct Setup {
    provider: OidcProvider,
    upstream: Upstream,
    envoy: Envoy,
    origin: String,
}

/// A provider whose web client redirects to the gateway, and the gateway in front of `upstream`.
/// The gateway is reached as `localhost` and the provider as `127.0.0.1`, so the browser keeps
/// their cookies apart as it would for two sites.
fn setup() -> Result<Setup> {
    setup_with(|_| {})
}

/// [`setup`] with a change to the plugin configuration.
fn setup_with(change: impl FnOnce(&mut serde_json::Value)) -> Result<Setup> {
    let port = free_port()?;
    let origin = format!("http://localhost:{port}");
    let ttl = ACCESS_TTL_SECS.to_string();
    let provider = OidcProvider::start_with(Some(&origin), &[("KEA_OIDC_ACCESS_TTL", &ttl)])?;
    let upstream = Upstream::start()?;
    let mut config = provider.sso_config(&origin);
    change(&mut config);
    // The audit plugin first, as in a real chain: its records name the session the auth plugin
    // verified.
    let mut builder = EnvoyBuilder::new(upstream.port)
        .listen_port(port)
        .concurrency(2)
        .cluster("op", provider.port())
        .plugin("audit", serde_json::json!({}))?
        .plugin("auth", config)?;
    for (key, value) in SSO_ENV {
        builder = builder.plugin_env(key, value);
    }
    let envoy = builder.start()?;
    // Until discovery answered, logins fail closed with 503.
    wait_for(
        Duration::from_secs(15),
        "the gateway to know the provider's endpoints",
        || {
            http::send("GET", &format!("{origin}/echo"), &[("accept", "text/html")], None)
                .ok()
                .filter(|r| r.status == 302)
        },
    )?;
    Ok(Setup {
        provider,
        upstream,
        envoy,
        origin,
    })
}

fn echoed(response: &Response, name: &str) -> Option<String> {
    response.json()["headers"][name].as_str().map(str::to_owned)
}

/// The session cookie(s) the gateway set during a visit, as a `Cookie` header.
fn session_cookie(visit: &Visit) -> String {
    visit.cookie_header("kea_session")
}
#[test]
fn a_browser_logs_in_once_uses_two_apis_refreshes_and_logs_out() -> Result<()> {
    let setup = setup()?;
    let origin = &setup.origin;
    let browser = Browser::new();

    // An unauthenticated navigation goes to the provider with PKCE.
    let start = browser.navigate(&format!("{origin}/echo/orders/42?view=full"))?;
    let authorize = &start.urls[1];
    assert!(
        authorize.starts_with(&format!("{}/auth?", setup.provider.issuer())),
        "{authorize}"
    );
    assert!(
        authorize.contains("code_challenge_method=S256") && authorize.contains("nonce="),
        "{authorize}"
    );
    assert_eq!(
        setup.upstream.hits(),
        0,
        "nothing reached the upstream before the login"
    );

    let back = log_in(&browser, start, "alice")?;
    let last = back.last();
    assert_eq!(last.status, 200, "{}", last.body);
    assert_eq!(
        back.last_url(),
        format!("{origin}/echo/orders/42?view=full"),
        "back where the user started"
    );
    assert_eq!(echoed(last, "x-kea-sub").as_deref(), Some("alice"));
    assert_eq!(echoed(last, "x-kea-iss"), Some(setup.provider.issuer()));
    assert_eq!(echoed(last, "x-user-email").as_deref(), Some("alice@example.com"));
    let session_id = echoed(last, "x-kea-session").expect("a session id for the audit plugin");
    assert!(
        echoed(last, "cookie").is_none_or(|c| !c.contains("kea_session")),
        "the upstream never sees the session"
    );
    let cookie = session_cookie(&back);
    assert!(cookie.starts_with("kea_session=1.k1."), "{cookie}");

    // The same session on another API of the gateway, without another login.
    let other = browser.navigate(&format!("{origin}/echo/invoices"))?;
    assert_eq!(other.urls.len(), 1, "no redirect: {:?}", other.urls);
    assert_eq!(echoed(other.last(), "x-kea-session"), Some(session_id.clone()));
    let record = setup.envoy.wait_for_record("url.path", "/echo/invoices")?;
    assert_eq!(record["kea.session.id"], session_id.as_str(), "{record}");
    assert_eq!(record["user.id"], "alice", "{record}");
    assert!(
        !record.to_string().contains("kea_session="),
        "no cookie in the audit record: {record}"
    );
    // API clients with bearer tokens keep working beside sessions.
    let token = setup.provider.access_token("orders:read")?;
    let api = http::send(
        "GET",
        &format!("{origin}/echo/api"),
        &[("authorization", &format!("Bearer {token}"))],
        None,
    )?;
    assert_eq!(api.status, 200);
    assert_eq!(
        echoed(&api, "x-kea-sub").as_deref(),
        Some(kea_e2e::oidc::CLIENT_ID)
    );

    // After the tokens expire the gateway refreshes them with the refresh token and sets a new
    // cookie on the response; the session continues.
    std::thread::sleep(Duration::from_secs(ACCESS_TTL_SECS + 1));
    let later = browser.navigate(&format!("{origin}/echo/orders"))?;
    assert_eq!(later.last().status, 200, "{}", later.last().body);
    assert_eq!(
        later.urls.len(),
        1,
        "refreshed in place, no login: {:?}",
        later.urls
    );
    assert_eq!(echoed(later.last(), "x-kea-session"), Some(session_id.clone()));
    let refreshed = session_cookie(&later);
    assert!(
        !refreshed.is_empty() && refreshed != cookie,
        "a new session cookie after the refresh"
    );
    assert!(
        setup
            .envoy
            .stat("wasmcustom.kea_auth_sso_refreshes_total")
            .unwrap_or(0)
            >= 1
    );

    // Logout: the cookie is cleared, the provider's session ends (its confirmation form), and the
    // browser lands on the post-logout page.
    let logout = browser.navigate(&format!("{origin}/oauth2/logout"))?;
    assert!(
        logout.urls[1].starts_with(&format!("{}/session/end?", setup.provider.issuer())),
        "{:?}",
        logout.urls
    );
    assert!(logout
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("kea_session=;") && c.contains("Max-Age=0")));
    let signed_out = browser.submit(&logout, Some("op.logoutForm"), &[("logout", "yes")])?;
    assert_eq!(signed_out.last_url(), format!("{origin}/signed-out"));
    assert_eq!(signed_out.last().status, 200);

    // The browser is logged out at the gateway and at the provider: the next visit asks for a
    // login again.
    let again = browser.navigate(&format!("{origin}/echo/orders"))?;
    assert!(
        again.last().body.contains("name=\"login\""),
        "login form again: {:?}",
        again.urls
    );
    let api_call = http::send(
        "GET",
        &format!("{origin}/echo/orders"),
        &[("accept", "application/json")],
        None,
    )?;
    assert_eq!(api_call.status, 401);
    // A copy of the cookie taken before the logout stops working when its tokens expire: the
    // provider revoked the grant, so the refresh is refused.
    std::thread::sleep(Duration::from_secs(ACCESS_TTL_SECS + 1));
    let stolen = http::send(
        "GET",
        &format!("{origin}/echo/orders"),
        &[("cookie", &refreshed)],
        None,
    )?;
    assert_eq!(stolen.status, 401, "{}", stolen.body);
    Ok(())
}

#[test]
fn forged_replayed_and_foreign_inputs_are_refused() -> Result<()> {
    let setup = setup()?;
    let origin = &setup.origin;
    let browser = Browser::new();
    let start = browser.navigate(&format!("{origin}/echo/x"))?;
    let back = log_in(&browser, start, "bob")?;
    assert_eq!(back.last().status, 200);
    let callback = back
        .urls
        .iter()
        .find(|u| u.contains("/oauth2/callback?"))
        .expect("the provider sent the browser to the callback")
        .clone();
    let cookie = session_cookie(&back);
    let hits = setup.upstream.hits();

    // The same callback again (the login cookie is gone, the code is spent).
    let replay = browser.navigate(&callback)?;
    assert_eq!(replay.last().status, 400, "{}", replay.last().body);
    assert_eq!(
        replay.last().header("content-type"),
        Some("application/problem+json")
    );
    // A callback without a code, and one with an unknown state.
    let no_code = http::get(&format!("{origin}/oauth2/callback?state=abc"))?;
    assert_eq!(no_code.status, 400);
    // A tampered session cookie.
    let mut tampered = cookie.clone().into_bytes();
    let at = tampered.len() - 5;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered)?;
    let response = http::send("GET", &format!("{origin}/echo/x"), &[("cookie", &tampered)], None)?;
    assert_eq!(response.status, 401, "{cookie}\n{tampered}\n{}", response.body);
    assert!(
        response
            .header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0")),
        "the bad cookie is cleared"
    );
    // A cookie sealed with another key id.
    let foreign = cookie.replacen("1.k1.", "1.k0.", 1);
    assert_eq!(
        http::send("GET", &format!("{origin}/echo/x"), &[("cookie", &foreign)], None)?.status,
        401
    );
    // A client-sent identity header never reaches the upstream as if the gateway set it.
    let spoofed = http::send(
        "GET",
        &format!("{origin}/echo/x"),
        &[
            ("cookie", &cookie),
            ("x-kea-session", "forged"),
            ("x-kea-sub", "root"),
        ],
        None,
    )?;
    assert_eq!(echoed(&spoofed, "x-kea-sub").as_deref(), Some("bob"));
    assert_ne!(echoed(&spoofed, "x-kea-session").as_deref(), Some("forged"));
    assert_eq!(
        setup.upstream.hits(),
        hits + 1,
        "only the genuine session reached the upstream"
    );
    // The logout page has no open redirect: its target is the configured one.
    let logout = http::get(&format!(
        "{origin}/oauth2/logout?post_logout_redirect_uri=https://evil.example/"
    ))?;
    assert_eq!(logout.status, 302);
    let location = logout.header("location").unwrap_or_default();
    assert!(!location.contains("evil.example"), "{location}");
    Ok(())
}

#[test]
fn headless_chromium_logs_in_uses_apis_and_logs_out() -> Result<()> {
    // Chromium treats http://localhost as a secure context, so the default `Secure` cookie works.
    let setup = setup_with(|config| config["sso"]["cookie"]["secure"] = true.into())?;
    let chromium = std::env::var("KEA_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    anyhow::ensure!(
        std::path::Path::new(&chromium).exists(),
        "Chromium not found at {chromium} — run scripts/install-deps.sh"
    );
    let (_dir, script) = node_script("browser.mjs")?;
    let output = std::process::Command::new("node")
        .arg(&script)
        .arg(&setup.origin)
        .env("KEA_CHROMIUM", &chromium)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let seen: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .map_err(|e| anyhow::anyhow!("{e}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr)))?;
    assert!(output.status.success() && seen.get("error").is_none(), "{seen:#}");
    let issuer = setup.provider.issuer();
    assert!(
        seen["loginPage"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&issuer),
        "{seen:#}"
    );
    assert_eq!(
        seen["landed"],
        format!("{}/echo/orders/7?view=full", setup.origin)
    );
    for page in ["first", "second", "fetched"] {
        assert_eq!(seen[page]["headers"]["x-kea-sub"], "carol", "{page}: {seen:#}");
    }
    assert_eq!(
        seen["first"]["headers"]["x-kea-session"],
        seen["fetched"]["headers"]["x-kea-session"]
    );
    assert_eq!(
        seen["cookie"],
        serde_json::json!({"httpOnly": true, "secure": true, "sameSite": "Lax", "path": "/"})
    );
    assert!(seen["logoutPage"]
        .as_str()
        .unwrap_or_default()
        .starts_with(&format!("{issuer}/session/end")));
    assert_eq!(seen["afterLogout"], format!("{}/signed-out", setup.origin));
    assert!(!seen["cookiesAfterLogout"]
        .as_array()
        .is_some_and(|c| c.iter().any(|n| n == "kea_session")));
    assert_eq!(seen["loginAgain"], true);
    Ok(())
}

#[test]
fn sessions_fail_closed_when_the_provider_goes_away() -> Result<()> {
    let setup = setup()?;
    let origin = setup.origin.clone();
    let browser = Browser::new();
    let start = browser.navigate(&format!("{origin}/echo/a"))?;
    let back = log_in(&browser, start, "erin")?;
    assert_eq!(back.last().status, 200);
    let cookie = session_cookie(&back);
    let Setup {
        provider,
        upstream,
        envoy,
        ..
    } = setup;
    drop(provider);
    // Still valid: the session works without the provider.
    let response = http::send("GET", &format!("{origin}/echo/b"), &[("cookie", &cookie)], None)?;
    assert_eq!(response.status, 200);
    let hits = upstream.hits();
    // Expired, and the refresh cannot reach the provider: 503, never a pass.
    std::thread::sleep(Duration::from_secs(ACCESS_TTL_SECS + 1));
    let response = http::send("GET", &format!("{origin}/echo/c"), &[("cookie", &cookie)], None)?;
    assert_eq!(response.status, 503, "{}", response.body);
    assert!(response.header("retry-after").is_some());
    assert_eq!(upstream.hits(), hits, "nothing reached the upstream");
    assert!(
        envoy
            .stat("wasmcustom.kea_auth_sso_refresh_failures_total")
            .unwrap_or(0)
            >= 1
    );
    Ok(())
}
