#!/usr/bin/env bash
# The main job on embedded defaults: builds the plugins, fetches Envoy, and starts a local
# gateway (rendered by `kea render` from envoy-examples/gateway/*.yaml) with the audit, auth,
# validate and cache plugins in front of a sample API and a sample model (scikit-learn, served by
# MLServer with KEA's generated serving class) on http://127.0.0.1:8080, and the docs portal on
# http://localhost:8080/docs/.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$KEA_ROOT"
scripts/install-deps.sh demo
# The model runtime's Python environment (MLServer, scikit-learn) downloads while the plugins build.
mkdir -p "$KEA_CACHE/logs"
scripts/runtime-test.sh --venv >"$KEA_CACHE/logs/demo-venv.log" 2>&1 &
venv=$!
# The sample gateway runs the plugins as one module, dist/kea.wasm (what `kea render` writes by
# default); the separate modules are not needed here.
./wasm-build.sh suite
scripts/web-build.sh # the docs portal's in-browser validator
wait $venv || { tail -n 20 "$KEA_CACHE/logs/demo-venv.log" >&2; die "the model runtime's environment failed (log: $KEA_CACHE/logs/demo-venv.log)"; }
exec envoy-examples/gateway/run.sh
