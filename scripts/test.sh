#!/usr/bin/env bash
# Runs every KEA check and test: formatting, clippy (native and wasm32), unit tests, and the
# end-to-end suites against real Envoy (loading the built dist/*.wasm) and a real ClickHouse.
# Installs what it needs first (scripts/install-deps.sh). Fails if anything fails.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$KEA_ROOT"

scripts/install-deps.sh
log "building the plugins (once; every suite uses dist/)"
./wasm-build.sh

log "cargo fmt"
cargo fmt --all -- --check
log "cargo clippy (native)"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "cargo clippy (wasm32-wasip1)"
cargo clippy --target wasm32-wasip1 --locked -p kea-plugin-sdk -p kea-schema -p kea-audit -p kea-cache -p kea-auth -p kea-validate --all-targets -- -D warnings

log "tests: unit, flow and end-to-end (real Envoy, a real Kubernetes API server, ClickHouse, a JWKS server, an OpenID Provider, schemathesis)"
cargo test --workspace --locked
