#!/usr/bin/env bash
# The main job on embedded defaults: builds the plugins, fetches Envoy, and starts a local
# gateway (rendered by `kea render` from envoy-examples/gateway/*.yaml) with the audit, auth,
# validate and cache plugins in front of a sample API on http://127.0.0.1:8080.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$KEA_ROOT"
scripts/install-deps.sh demo
./wasm-build.sh
exec envoy-examples/gateway/run.sh
