#!/usr/bin/env bash
# What the suite's stages cost per request by their own work, without a proxy
# (plugins/suite/examples/stage_work.rs): natively, and built for wasm32-wasip1 like the modules
# (profile `wasm`, names kept) and run in Node's V8, the engine Envoy runs the modules in.
#
#   bench/stage-work.sh [requests per row]
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$KEA_CACHE/target}"
command -v node >/dev/null || die "node is needed to run the wasm build in V8"
requests="${1:-20000}"
cd "$KEA_ROOT"
cargo build -q --release -p kea-suite --example stage_work
cargo build -q --profile wasm --config 'profile.wasm.strip=false' --target wasm32-wasip1 \
  -p kea-suite --example stage_work
log "native ($(uname -m), release)"
"$CARGO_TARGET_DIR/release/examples/stage_work" "$requests"
log "wasm32-wasip1 in V8 (node $(node --version))"
node --no-warnings bench/stage-work.mjs \
  "$CARGO_TARGET_DIR/wasm32-wasip1/wasm/examples/stage_work.wasm" "$requests"
