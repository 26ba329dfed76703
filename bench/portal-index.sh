#!/usr/bin/env bash
# Docs portal benchmark: how long the index of N APIs (default 500) takes to become interactive
# in headless Chromium — from navigation to the table built and the filter wired (the page sets
# body[data-ready]) — served by real Envoy from `kea render --portal`, and the catalog's size.
#
#   bench/portal-index.sh [--apis N] [--rounds R]
#
# Needs the release `kea` (built here), Envoy and Chromium/playwright-core (scripts/install-deps.sh).
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$KEA_ROOT"

apis=500 rounds=5
while [ $# -gt 0 ]; do
  case "$1" in
    --apis) apis=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) die "unknown argument $1" ;;
  esac
done

cargo build --release --locked -q -p kea-operator --bin kea
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
work=$(mktemp -d)
envoy=""
cleanup() { [ -z "$envoy" ] || kill "$envoy" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# N APIs of five operations each, on one gateway.
python3 - "$apis" >"$work/resources.yaml" <<'PY'
import json, sys
count = int(sys.argv[1])
print("apiVersion: kea.dev/v1alpha1\nkind: GatewayBinding\nmetadata: {name: edge}\nspec:\n  selector: {istio: ingressgateway}\n  docsHost: localhost")
for i in range(count):
    operations = [
        {"path": f"/items/{{id}}", "method": "GET", "parameters": [{"name": "id", "in": "path", "schema": {"type": "integer"}}]},
        {"path": "/items", "method": "GET"},
        {"path": "/items", "method": "POST", "requestBody": {"required": True, "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}},
        {"path": f"/items/{{id}}", "method": "DELETE", "parameters": [{"name": "id", "in": "path", "schema": {"type": "integer"}}]},
        {"path": "/search", "method": "GET", "parameters": [{"name": "q", "in": "query", "schema": {"type": "string"}}]},
    ]
    api = {"apiVersion": "kea.dev/v1alpha1", "kind": "ApiDefinition", "metadata": {"name": f"api-{i:04d}"},
           "spec": {"gateway": "edge", "hosts": ["*"], "basePath": f"/api-{i:04d}", "auth": {"anonymous": True},
                    "backends": [{"service": "svc", "port": 8080, "version": "v1", "weight": 90},
                                 {"service": "svc-next", "port": 8080, "version": "v2", "weight": 10}],
                    "schema": {"operations": operations}}}
    print("---\n" + json.dumps(api))
PY
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
admin=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
t0=$(date +%s.%N)
"$target_dir/release/kea" render "$work/resources.yaml" --service svc=127.0.0.1:9 --service svc-next=127.0.0.1:9 \
  --listen "127.0.0.1:$port" --admin "127.0.0.1:$admin" -o "$work/envoy.yaml" --portal "$work/portal" \
  --web-dir "$KEA_DIST/web" 2>"$work/render.log" || { cat "$work/render.log" >&2; die "kea render failed"; }
render_s=$(python3 -c "print(f'{$(date +%s.%N) - $t0:.1f}')")
"$KEA_ENVOY" -c "$work/envoy.yaml" --use-dynamic-base-id -l error >"$work/envoy.log" 2>&1 &
envoy=$!
for _ in $(seq 1 120); do curl -sf -o /dev/null "http://127.0.0.1:$admin/ready" && break; sleep 0.5; done
curl -sf -o /dev/null "http://localhost:$port/docs/" || die "Envoy does not serve the portal: $(tail -5 "$work/envoy.log")"

run_dir=$(mktemp -d "$KEA_OIDC_DIR/bench-XXXXXX")
cp tests/oidc/portal.mjs "$run_dir/"
times=()
for _ in $(seq 1 "$rounds"); do
  out=$(cd "$run_dir" && node portal.mjs "{\"origin\":\"http://localhost:$port\"}")
  times+=("$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d["index"])=='"$apis"', len(d["index"]); print(d["indexMs"])')")
done
rm -rf "$run_dir"
catalog=$(stat -c %s "$work/portal/catalog.json")
catalog_gz=$(gzip -c "$work/portal/catalog.json" | wc -c)
python3 - "$apis" "$render_s" "$catalog" "$catalog_gz" "${times[@]}" <<'PY'
import statistics, sys
apis, render_s, size, gz, *times = sys.argv[1:]
times = sorted(int(t) for t in times)
print(f"| APIs | catalog.json (gzip) | index interactive, median of {len(times)} (min–max) | kea render --portal |")
print("|---:|---:|---:|---:|")
print(f"| {apis} | {int(size)/1024:.0f} KiB ({int(gz)/1024:.0f} KiB) | {statistics.median(times):.0f} ms ({times[0]}–{times[-1]} ms) | {render_s} s |")
PY
