#!/usr/bin/env bash
# Starts the sample API (kea-upstream, :8081, also serving the compiled OpenAPI bundle), a demo
# OpenID Provider (npm oidc-provider, :8082) and Envoy with the audit, auth, validate and cache
# plugins (:8080, admin :9901).
# Audit records appear on this terminal as JSON lines. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh
for plugin in audit auth validate cache; do
  [ -f "dist/$plugin.wasm" ] || die "dist/$plugin.wasm missing — run ./wasm-build.sh (or scripts/demo.sh)"
done
[ -x "$KEA_ENVOY" ] || die "Envoy missing — run scripts/install-deps.sh (or scripts/demo.sh)"
[ -d "$KEA_OIDC_DIR/node_modules/oidc-provider" ] || die "oidc-provider missing — run scripts/install-deps.sh demo"

cargo build --release --locked -q -p kea-e2e --bin kea-upstream -p kea-operator --bin kea
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bundle_dir=$(mktemp -d)
"$target_dir/release/kea" openapi bundle bench/pets-api.yaml -o "$bundle_dir/pets.json"
"$target_dir/release/kea-upstream" 8081 --publish "/bundles/pets.json=$bundle_dir/pets.json" &
upstream=$!
# The provider's script runs next to its node_modules; it accepts logins from both gateway origins.
idp_dir=$(mktemp -d "$KEA_OIDC_DIR/demo-XXXXXX")
cp tests/oidc/provider.mjs "$idp_dir/"
node "$idp_dir/provider.mjs" 8082 http://localhost:8080,http://127.0.0.1:8080 >/dev/null &
idp=$!
trap 'kill $upstream $idp 2>/dev/null || true; rm -rf "$idp_dir" "$bundle_dir"' EXIT

cat >&2 <<'MSG'

  KEA gateway (audit + auth + validate + cache) on http://localhost:8080  (Envoy admin: http://127.0.0.1:9901)
  Try, in another terminal:
    curl -s localhost:8080/pets/1 -H 'authorization: Bearer my-secret-token' | head -c 80; echo
    curl -s localhost:8080/echo/login -H 'content-type: application/json' -d '{"user":"ann","password":"hunter2"}'
    curl -s 'localhost:8080/status/404?access_token=abc123'
    curl -s localhost:8080/healthz > /dev/null          # skipped by a rule: no record
    curl -si localhost:8080/cacheable/1 | grep x-kea-cache   # MISS, then HIT: served by the cache
    curl -s -X PURGE localhost:8080/cacheable/1 -H 'kea-purge-token: demo-purge-token'
    curl -si localhost:8080/admin/users | head -n 1       # 401: /admin needs an API key
    curl -si localhost:8080/admin/users -H 'x-api-key: demo-api-key' | head -n 1  # 200; the record says user.id demo-operator
    curl -s 'localhost:8080/pets/0?limit=500&fields=name,age'   # 400 problem+json: every problem listed
    curl -s localhost:8080/pets -H 'content-type: application/json' -d '{"name": "Rex"}'   # 400: body checked first
    curl -s localhost:9901/stats | grep kea_             # the plugins' metrics
  Single sign-on: open http://localhost:8080/echo/me in a browser, log in at the demo provider
  with any name; the echoed request shows x-kea-sub. Log out at http://localhost:8080/oauth2/logout
  Each request prints one audit record below (secrets redacted).

MSG
"$KEA_ENVOY" -c envoy-examples/audit/envoy.yaml --concurrency 1 -l warning --component-log-level wasm:info --use-dynamic-base-id
