#!/usr/bin/env bash
# Renders gateway.yaml + apis.yaml + models.yaml into an Envoy configuration with `kea render`, then
# starts the sample API (kea-upstream, :8081), a demo OpenID Provider (npm oidc-provider, :8082), the
# sample model (scikit-learn iris served by MLServer with KEA's generated serving class, :8090) and
# Envoy with the audit, auth, validate and cache plugins in one module, dist/kea.wasm (:8080, admin :9901).
# Audit records appear on this terminal as JSON lines. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh
# The gateway loads the combined module (the default of `kea render`): the four plugins in one filter.
[ -f dist/kea.wasm ] || die "dist/kea.wasm missing — run ./wasm-build.sh suite (or scripts/demo.sh)"
[ -x "$KEA_ENVOY" ] || die "Envoy missing — run scripts/install-deps.sh (or scripts/demo.sh)"
[ -d "$KEA_OIDC_DIR/node_modules/oidc-provider" ] || die "oidc-provider missing — run scripts/install-deps.sh demo"

cargo build --release --locked -q -p kea-e2e --bin kea-upstream -p kea-operator --bin kea
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

# Secrets the auth plugin's configuration names (sso.clientSecretEnv, sso.sessionKeys[].secretEnv):
# the rendered configuration passes these variables from Envoy's environment to the plugin, and
# `kea render` compiles the configuration with them. Demo values; generate real ones.
export KEA_OIDC_CLIENT_SECRET=kea-web-secret-kea-web-secret-kea-web
export KEA_SESSION_KEY=demo-session-key-replace-with-openssl-rand-base64-32

tmp=$(mktemp -d)
# The sample model: trained here (scikit-learn on iris), packaged by `kea model package` exactly as
# the operator's build Job packages it, and served by MLServer with KEA's generated serving class on
# 127.0.0.1:8090 — where a cluster has the Service iris-v1.
venv=$(scripts/runtime-test.sh --venv | tail -n 1)
"$venv/bin/python" tests/models/train.py "$tmp/models"
"$target_dir/release/kea" model package envoy-examples/gateway/models.yaml -o "$tmp/iris" \
  --files-dir "$tmp/models/iris-v1" >/dev/null
# The same resources the operator reads in a cluster; here the Service sample-api and the identity
# provider's cluster are local processes.
"$target_dir/release/kea" render envoy-examples/gateway/gateway.yaml envoy-examples/gateway/apis.yaml \
  envoy-examples/gateway/models.yaml \
  --service sample-api=127.0.0.1:8081 --service iris-v1=127.0.0.1:8090 --cluster demo-idp=127.0.0.1:8082 \
  --listen 127.0.0.1:8080 -o "$tmp/envoy.yaml" --portal "$tmp/portal" --web-dir "$KEA_DIST/web"

"$target_dir/release/kea-upstream" 8081 &
upstream=$!
# The provider's script runs next to its node_modules; it accepts logins from both gateway origins.
idp_dir=$(mktemp -d "$KEA_OIDC_DIR/demo-XXXXXX")
cp tests/oidc/provider.mjs "$idp_dir/"
node "$idp_dir/provider.mjs" 8082 http://localhost:8080,http://127.0.0.1:8080 >/dev/null &
idp=$!
(cd "$tmp/iris/v1" && MLSERVER_HOST=127.0.0.1 MLSERVER_HTTP_PORT=8090 MLSERVER_GRPC_PORT=8091 \
  MLSERVER_METRICS_PORT=8092 exec "$venv/bin/mlserver" start .) >"$tmp/mlserver.log" 2>&1 &
model=$!
trap 'kill $upstream $idp $model 2>/dev/null || true; rm -rf "$idp_dir" "$tmp"' EXIT

cat >&2 <<MSG

  KEA gateway (audit + auth + validate + cache) on http://localhost:8080  (Envoy admin: http://127.0.0.1:9901)
  Envoy runs $tmp/envoy.yaml, rendered from envoy-examples/gateway/{gateway,apis,models}.yaml.
  The docs portal — every API and the model, try-it checked in your browser by the gateway's own
  validator: open http://localhost:8080/docs/ in a browser.
  Try, in another terminal:
    curl -s localhost:8080/pets/1 | head -c 80; echo
    curl -si localhost:8080/pets/1 -H 'authorization: Bearer my-secret-token' | head -n 1   # 401: a token sent must be valid
    curl -s localhost:8080/echo/login -H 'content-type: application/json' -d '{"user":"ann","password":"hunter2"}'
    curl -s 'localhost:8080/status/404?access_token=abc123'
    curl -s localhost:8080/healthz > /dev/null          # skipped by a rule: no record
    curl -si localhost:8080/cacheable/1 | grep x-kea-cache   # MISS, then HIT: served by the cache
    curl -s -X PURGE localhost:8080/cacheable/1 -H 'kea-purge-token: demo-purge-token'
    curl -si localhost:8080/admin/users | head -n 1       # 401: /admin needs an API key
    curl -si localhost:8080/admin/users -H 'x-api-key: demo-api-key' | head -n 1  # 200; the record says user.id demo-operator
    curl -s 'localhost:8080/pets/0?limit=500&fields=name,age'   # 400 problem+json: every problem listed
    curl -s localhost:8080/pets/ -H 'content-type: application/json' -d '{"name": "Rex"}'   # 400: body checked first
    curl -s localhost:9901/stats | grep kea_             # the plugins' metrics
  The iris model (envoy-examples/gateway/models.yaml; MLServer's log: $tmp/mlserver.log):
    curl -s localhost:8080/v2/models/iris                # its metadata: the declared tensors
    curl -s localhost:8080/v2/models/iris/infer -H 'content-type: application/json' \\
      -d '{"inputs":[{"name":"measurements","datatype":"FP32","shape":[2,4],"data":[[5.1,3.5,1.4,0.2],[6.7,3.0,5.2,2.3]]}]}'
    curl -s localhost:8080/v2/models/iris/infer -H 'content-type: application/json' \\
      -d '{"inputs":[{"name":"measurements","datatype":"FP64","shape":[1,3],"data":[1,2,3]}]}'   # 400 at the gateway
    $target_dir/release/kea model openapi envoy-examples/gateway/models.yaml   # the document the gateway enforces
  Single sign-on: open http://localhost:8080/echo/me in a browser, log in at the demo provider
  with any name; the echoed request shows x-kea-sub. Log out at http://localhost:8080/oauth2/logout
  Each request prints one audit record below (secrets redacted).

MSG
"$KEA_ENVOY" -c "$tmp/envoy.yaml" --concurrency 1 -l warning --component-log-level wasm:info --use-dynamic-base-id
