#!/usr/bin/env bash
# Runs every KEA check and test: formatting, clippy (native and wasm32), a bounded run of every fuzz
# target (scripts/fuzz.sh ci), unit tests (the soak's CI variant among them), the Python
# model runtime's lint and tests (scripts/runtime-test.sh), and the end-to-end suites against real Envoy (loading the built dist/*.wasm), a real ClickHouse, a real
# Kubernetes API server, and a local cluster with a kubelet (scripts/cluster.sh) running KEA's images.
# Installs what it needs first (scripts/install-deps.sh). Fails if anything fails.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$KEA_ROOT"

scripts/install-deps.sh
log "building the plugins (once; every suite uses dist/) and the docs portal's validator (dist/web)"
./wasm-build.sh
scripts/web-build.sh

log "cargo fmt"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
log "cargo clippy (native)"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "cargo clippy (wasm32-wasip1)"
cargo clippy --target wasm32-wasip1 --locked -p kea-plugin-sdk -p kea-schema -p kea-audit -p kea-cache -p kea-auth -p kea-validate -p kea-suite -p kea-trivial --all-targets -- -D warnings
log "cargo clippy (wasm32-unknown-unknown: the docs portal's validator)"
cargo clippy --target wasm32-unknown-unknown --locked -p kea-web-validator --all-targets -- -D warnings
log "cargo clippy (the fuzz targets, fuzz/: their own workspace)"
cargo clippy --manifest-path fuzz/Cargo.toml --locked --all-targets -- -D warnings
log "fuzzing: every target over its corpus plus a bounded run (scripts/fuzz.sh ci; the long run: fuzz/README.md)"
scripts/fuzz.sh ci
log "the docs portal's validator in headless Chromium: every answer must equal the native build's"
node bench/web-validator.mjs --calls 200 --loads 1

log "Python model runtime (runtime/): ruff, pytest against real MLServer processes and real models"
scripts/runtime-test.sh

# The cluster suites (tests/tests/cluster.rs) run in the machine's local cluster, with KEA installed
# from its images. Brought up here (the suites would do it themselves) so its cost shows in the log;
# taken down when the run ends, failed or not, unless it was already up before.
if ! scripts/cluster.sh status >/dev/null 2>&1; then
  trap 'log "taking the local cluster down"; scripts/cluster.sh down' EXIT
fi
log "local cluster (kubelet, containerd, kube-proxy, registry), KEA's images, KEA installed"
scripts/cluster.sh up
scripts/images.sh
scripts/publish-plugins.sh
scripts/install-kea.sh

log "tests: unit, flow and end-to-end (real Envoy, a real Kubernetes API server and cluster, ClickHouse, a JWKS server, an OpenID Provider, schemathesis)"
cargo test --workspace --locked

# The same plugin suites again with the plugins deployed as stages of the combined module
# (dist/kea.wasm, one filter) instead of one filter each: behaviour must not differ.
log "end-to-end plugin suites against the combined module (KEA_DEPLOYMENT=combined)"
KEA_DEPLOYMENT=combined cargo test --locked -p kea-e2e --test audit --test auth --test validate --test cache --test sso
