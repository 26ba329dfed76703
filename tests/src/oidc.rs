//! A real OpenID Provider: npm `oidc-provider` running `tests/oidc/provider.mjs`, with discovery,
//! a JWKS and JWT access tokens from the client-credentials grant.
//!
//! The package is installed by `scripts/install-deps.sh` into `$KEA_OIDC_DIR`; the script is
//! copied next to that `node_modules` (into a fresh directory per provider) so Node resolves it.

use crate::browser::{Browser, Visit};
use crate::{free_port, http, repo_root, wait_for};
use anyhow::{bail, ensure, Context, Result};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The client `provider.mjs` registers.
pub const CLIENT_ID: &str = "kea-orders";
const CLIENT_SECRET: &str = "kea-orders-secret-kea-orders-secret";
/// The gateway's single sign-on client.
pub const WEB_CLIENT_ID: &str = "kea-web";
pub const WEB_CLIENT_SECRET: &str = "kea-web-secret-kea-web-secret-kea-web";

fn install_dir() -> Result<PathBuf> {
    let dir = crate::installed("KEA_OIDC_DIR", "oidc-provider", "oidc-provider")?;
    if !dir.join("node_modules/oidc-provider").exists() {
        bail!(
            "oidc-provider is not installed in {} — run scripts/install-deps.sh",
            dir.display()
        );
    }
    Ok(dir)
}

/// Copies `tests/oidc/<name>` into a fresh directory next to the installed `node_modules`, so
/// Node resolves its imports there; the directory goes away with the returned guard.
pub fn node_script(name: &str) -> Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(install_dir()?)?;
    let script = dir.path().join(name);
    std::fs::copy(repo_root().join("tests/oidc").join(name), &script)?;
    Ok((dir, script))
}

/// A running provider on 127.0.0.1; stopped when dropped.
#[derive(Debug)]
pub struct OidcProvider {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl OidcProvider {
    pub fn start() -> Result<Self> {
        Self::start_with(None, &[])
    }

    /// A provider whose web client (`kea-web`) redirects to `gateway_origin` (e.g.
    /// `http://localhost:PORT`), with extra environment such as `KEA_OIDC_ACCESS_TTL`.
    pub fn start_with(gateway_origin: Option<&str>, env: &[(&str, &str)]) -> Result<Self> {
        let (dir, script) = node_script("provider.mjs")?;
        let port = free_port()?;
        let mut command = Command::new("node");
        command.arg(&script).arg(port.to_string());
        if let Some(origin) = gateway_origin {
            command.arg(origin);
        }
        let child = command
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start node — run scripts/install-deps.sh")?;
        let provider = Self {
            child,
            port,
            _dir: dir,
        };
        let discovery = format!("{}/.well-known/openid-configuration", provider.issuer());
        wait_for(
            Duration::from_secs(20),
            "oidc-provider to serve discovery",
            || http::get(&discovery).ok().filter(|r| r.status == 200),
        )?;
        Ok(provider)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A JWT access token for [`CLIENT_ID`] with these scopes (client-credentials grant).
    pub fn access_token(&self, scope: &str) -> Result<String> {
        let response = http::agent()
            .post(&format!("{}/token", self.issuer()))
            .send_form(&[
                ("grant_type", "client_credentials"),
                ("scope", scope),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ])
            .context("token request")?;
        let body: serde_json::Value = response.into_json()?;
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no access_token in {body}"))
    }
}

/// Environment the auth plugin's VM needs for [`OidcProvider::sso_config`].
pub const SSO_ENV: [(&str, &str); 2] = [
    ("KEA_OIDC_CLIENT_SECRET", WEB_CLIENT_SECRET),
    ("KEA_SESSION_KEY", "an-e2e-session-key-of-at-least-32-bytes"),
];

impl OidcProvider {
    /// An auth plugin configuration with this provider (found by discovery through Envoy cluster
    /// `op`) and browser single sign-on for a gateway at `origin` over plain HTTP.
    pub fn sso_config(&self, origin: &str) -> serde_json::Value {
        serde_json::json!({
            "providers": [{
                "name": "op", "issuer": self.issuer(), "audiences": ["orders"],
                "jwks": {"discovery": {"cluster": "op"}},
                "claimHeaders": [{"claim": "email", "header": "x-user-email"}]
            }],
            "sso": {
                "name": "browser", "provider": "op", "clientId": WEB_CLIENT_ID,
                "clientSecretEnv": "KEA_OIDC_CLIENT_SECRET",
                "scopes": ["openid", "email"],
                "postLogoutRedirectUri": format!("{origin}/signed-out"),
                "sessionKeys": [{"id": "k1", "secretEnv": "KEA_SESSION_KEY"}],
                "refreshBefore": "2s",
                // Tests talk plain HTTP; production keeps the default `Secure`.
                "cookie": {"secure": false}
            },
            "rules": [{"match": {"pathPrefix": "/signed-out"}, "allowAnonymous": true}]
        })
    }
}

/// Fills in the provider's login page (any user name is accepted) and its consent page when it
/// asks; returns the visit that ends back at the client.
pub fn log_in(browser: &Browser, page: Visit, user: &str) -> Result<Visit> {
    ensure!(
        page.last().body.contains("name=\"login\""),
        "expected the provider's login form, got {} at {}",
        page.last().status,
        page.last_url()
    );
    let mut visit = browser.submit(&page, None, &[("login", user), ("password", "any")])?;
    for _ in 0..3 {
        if !visit.last().body.contains("value=\"consent\"") {
            break;
        }
        visit = browser.submit(&visit, None, &[])?;
    }
    Ok(visit)
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
