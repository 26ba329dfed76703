//! Test tokens minted by a real JOSE implementation (PyJWT + cryptography), not by the code under
//! test: `tests/jose/mint.py` run with `$KEA_PYTHON_JOSE`, which `scripts/install-deps.sh` installs.
//!
//! Keys (kid: algorithms): `rsa`: RS256/384/512, PS256/384/512; `p256`: ES256; `p384`: ES384;
//! `ed25519`: EdDSA; `rsa-2`: the RSA key after a rotation. See `mint.py` for the request format:
//! `{"alg", "kid", "claims", "header", "secret", "no_kid", "attack"}`.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tempfile::TempDir;

/// The Python interpreter with PyJWT and cryptography: `$KEA_PYTHON_JOSE`, else the venv
/// `scripts/install-deps.sh` makes.
pub fn python() -> Result<PathBuf> {
    crate::installed("KEA_PYTHON_JOSE", "pyjose/bin/python", "Python with PyJWT")
}

fn script() -> PathBuf {
    crate::repo_root().join("tests/jose/mint.py")
}

/// Runs `mint.py <command> <dir>` with `input` on stdin; returns stdout.
fn run(command: &str, dir: &Path, input: Vec<u8>) -> Result<String> {
    let python = python()?;
    let mut child = Command::new(&python)
        .arg(script())
        .arg(command)
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", python.display()))?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    // A writer thread: a big batch must not block on a full pipe while nobody reads stdout.
    let writer = std::thread::spawn(move || {
        // An early exit of mint.py breaks the pipe; its stderr then says why.
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output()?;
    let _ = writer.join();
    if !output.status.success() {
        bail!(
            "mint.py {command} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout).context("mint.py wrote non-UTF-8")
}

/// Freshly generated signing keys in a temporary directory (removed on drop).
#[derive(Debug)]
pub struct KeySet {
    dir: TempDir,
}

impl KeySet {
    /// Generates the keys (two RSA 2048 keys make this take ~0.3 s).
    pub fn generate() -> Result<KeySet> {
        let dir = tempfile::Builder::new().prefix("kea-jose-").tempdir()?;
        run("keys", dir.path(), Vec::new())?;
        Ok(KeySet { dir })
    }

    /// The directory: `<kid>.pem` private keys, `rsa-public.pem`, `jwks.json`, `jwks-rotated.json`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn read_json(&self, name: &str) -> Result<Value> {
        let path = self.dir.path().join(name);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(serde_json::from_str(&text)?)
    }

    /// The public keys `rsa`, `p256`, `p384`, `ed25519`.
    pub fn jwks(&self) -> Result<Value> {
        self.read_json("jwks.json")
    }

    /// After a rotation: `rsa-2`, `p256`, `p384`, `ed25519` (no `rsa`).
    pub fn rotated_jwks(&self) -> Result<Value> {
        self.read_json("jwks-rotated.json")
    }

    /// The PEM of the `rsa` public key (what the HMAC key-confusion attack signs with).
    pub fn rsa_public_pem(&self) -> Result<String> {
        Ok(std::fs::read_to_string(self.dir.path().join("rsa-public.pem"))?)
    }

    /// One token per request, in order, from one Python process. Batches of 200 or more are
    /// signed on all cores (10,000 RS256 tokens take ~5 s on 2 cores; ES256, ~1 s).
    pub fn mint(&self, requests: &[Value]) -> Result<Vec<String>> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let mut input = Vec::new();
        for request in requests {
            serde_json::to_writer(&mut input, request)?;
            input.push(b'\n');
        }
        let output = run("sign", self.dir.path(), input)?;
        let tokens: Vec<String> = output.lines().map(str::to_string).collect();
        if tokens.len() != requests.len() {
            bail!(
                "mint.py returned {} tokens for {} requests",
                tokens.len(),
                requests.len()
            );
        }
        Ok(tokens)
    }

    pub fn mint_one(&self, request: Value) -> Result<String> {
        self.mint(std::slice::from_ref(&request))?
            .pop()
            .context("mint.py returned no token")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use serde_json::json;

    fn part(token: &str, index: usize) -> Value {
        let bytes = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(index).unwrap())
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn mints_every_algorithm() {
        let keys = KeySet::generate().unwrap();
        let jwks = keys.jwks().unwrap();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, ["rsa", "p256", "p384", "ed25519"]);
        for key in jwks["keys"].as_array().unwrap() {
            assert_eq!(key["use"], "sig");
            assert_eq!(key.get("alg").is_none(), key["kid"] == "rsa", "{key}");
        }
        assert_eq!(jwks["keys"][3]["kty"], "OKP");
        assert_eq!(jwks["keys"][3]["crv"], "Ed25519");
        let rotated = keys.rotated_jwks().unwrap();
        let kids: Vec<&str> = rotated["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, ["rsa-2", "p256", "p384", "ed25519"]);

        let claims = json!({"sub": "alice", "iss": "http://idp", "exp": 4_000_000_000u64});
        let cases = [
            ("RS256", Some("rsa")),
            ("ES256", Some("p256")),
            ("ES384", Some("p384")),
            ("EdDSA", Some("ed25519")),
            ("PS256", Some("rsa")),
            ("HS256", None),
        ];
        let requests: Vec<Value> = cases
            .iter()
            .map(|(alg, kid)| match kid {
                Some(kid) => json!({"alg": alg, "kid": kid, "claims": claims}),
                None => json!({"alg": alg, "secret": "a shared secret", "claims": claims}),
            })
            .collect();
        let tokens = keys.mint(&requests).unwrap();
        for ((alg, kid), token) in cases.iter().zip(&tokens) {
            assert_eq!(token.split('.').count(), 3, "{token}");
            assert!(!token.ends_with('.'), "{alg} token is unsigned");
            let header = part(token, 0);
            assert_eq!(header["alg"], *alg);
            assert_eq!(header.get("kid").and_then(Value::as_str), *kid);
            assert_eq!(part(token, 1), claims);
        }
    }

    #[test]
    fn header_overrides_and_attacks() {
        let keys = KeySet::generate().unwrap();
        let claims = json!({"sub": "mallory"});
        let tokens = keys
            .mint(&[
                json!({"alg": "RS256", "kid": "rsa", "claims": claims,
                       "header": {"kid": "other", "typ": "at+jwt", "crit": ["x"], "x": 1}}),
                json!({"alg": "RS256", "claims": claims, "no_kid": true}),
                json!({"alg": "none", "claims": claims}),
                json!({"alg": "HS256", "kid": "rsa", "attack": "hmac-with-public-key", "claims": claims}),
                json!({"alg": "ES256", "claims": claims, "header": {"alg": "RS256"}}),
                json!({"alg": "RS256", "kid": "rsa-2", "claims": {"exp": "soon"}}),
            ])
            .unwrap();
        let header = part(&tokens[0], 0);
        assert_eq!(header["kid"], "other");
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["crit"], json!(["x"]));
        assert!(part(&tokens[1], 0).get("kid").is_none());
        assert!(tokens[2].ends_with('.'));
        assert_eq!(part(&tokens[2], 0), json!({"alg": "none", "typ": "JWT"}));
        assert_eq!(part(&tokens[3], 0)["alg"], "HS256");
        assert_eq!(part(&tokens[3], 0)["kid"], "rsa");
        assert_eq!(part(&tokens[4], 0)["alg"], "RS256");
        assert_eq!(part(&tokens[4], 0)["kid"], "p256");
        assert_eq!(part(&tokens[5], 1), json!({"exp": "soon"}));
        assert!(keys
            .rsa_public_pem()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----"));

        let error = keys.mint_one(json!({"alg": "XX9"})).unwrap_err().to_string();
        assert!(error.contains("unsupported alg"), "{error}");
    }
}
