//! End-to-end harness: starts the real components KEA's tests and benchmarks need, on loopback,
//! with generated configuration: Envoy loading the built `dist/*.wasm`, a local upstream that
//! counts requests, ClickHouse as the audit log store, and for the auth tests a local identity
//! provider (`idp`) and tokens minted by PyJWT (`jose`). `kube` runs a real Kubernetes 1.20.2
//! control plane (etcd, kube-apiserver, kube-controller-manager) for the operator's tests.
//!
//! Components are found through environment variables that `scripts/lib.sh` sets (`KEA_ENVOY`,
//! `KEA_DIST`, `KEA_PYTHON_JOSE`); a missing component is an error that says how to install it,
//! never a skip.

pub mod browser;
pub mod clickhouse;
pub mod cluster;
pub mod conformance;
pub mod envoy;
pub mod http;
pub mod idp;
pub mod jose;
pub mod kube;
pub mod oidc;
pub mod openapi;
pub mod soak;
pub mod upstream;

use anyhow::{bail, Context, Result};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// A component `scripts/install-deps.sh` installs: `$<variable>` when set, else `relative` under
/// the cache (`$KEA_CACHE`, default `~/.cache/kea`). Missing is an error that says what to run.
pub fn installed(variable: &str, relative: &str, what: &str) -> Result<PathBuf> {
    let path = match std::env::var_os(variable) {
        Some(path) => PathBuf::from(path),
        None => {
            let cache = match std::env::var_os("KEA_CACHE") {
                Some(cache) => PathBuf::from(cache),
                None => {
                    PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".cache/kea")
                }
            };
            cache.join(relative)
        }
    };
    if !path.exists() {
        bail!(
            "{what} not found at {} ({variable}) — run scripts/install-deps.sh",
            path.display()
        );
    }
    Ok(path)
}

/// The Envoy binary: `$KEA_ENVOY`, else the one `scripts/install-deps.sh` installs.
pub fn envoy_binary() -> Result<PathBuf> {
    installed("KEA_ENVOY", "envoy-1.40.0/envoy", "Envoy")
}

/// A built plugin: `$KEA_DIST/<name>.wasm` (default `dist/`).
pub fn plugin_wasm(name: &str) -> Result<PathBuf> {
    let dist = std::env::var_os("KEA_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("dist"));
    let path = dist.join(format!("{name}.wasm"));
    if !path.exists() {
        bail!("{} not found — run ./wasm-build.sh", path.display());
    }
    Ok(path)
}

/// A port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls `check` until it returns `Some` or the timeout passes.
pub fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Replaces the text between `<!-- <section>:start -->` and `<!-- <section>:end -->` in the
/// Markdown file at `path` (the bench and soak tables in `bench/README.md`).
pub fn write_section(path: &str, section: &str, text: &str) -> Result<()> {
    let readme = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let (start, end) = (
        format!("<!-- {section}:start -->"),
        format!("<!-- {section}:end -->"),
    );
    let (Some(a), Some(b)) = (readme.find(&start), readme.find(&end)) else {
        bail!("{path} lacks the {start} / {end} markers");
    };
    std::fs::write(path, format!("{}{start}\n{text}{}", &readme[..a], &readme[b..]))?;
    eprintln!("results written to {path}");
    Ok(())
}

/// The value after `name` among the command-line arguments (`--duration 10`), for the bench
/// and soak binaries.
pub fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}
