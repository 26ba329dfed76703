#!/usr/bin/env bash
# Gateway Pod throughput in the local cluster: a standalone KEA gateway with the four plugins next
# to the same gateway image without plugins, both in front of the same sample API Pod, measured in
# the same run with wrk from the host (through each gateway's Service), interleaved over rounds.
#   bench/cluster-gateway.sh [DURATION_S] [ROUNDS]        (defaults 10 and 3)
# Brings the cluster up and installs KEA when needed; deletes its namespace at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
duration="${1:-10}"
rounds="${2:-3}"
scripts/cluster.sh up >/dev/null
scripts/images.sh >/dev/null
scripts/install-kea.sh >/dev/null
set -a
source "${KEA_CLUSTER_HOME:-$KEA_CACHE/cluster}/env"
source "$KEA_CACHE/images/images.env"
set +a
kubectl="$KEA_KUBE_BIN/kubectl"
ns=kea-bench
"$kubectl" create namespace "$ns" >/dev/null 2>&1 || true
trap '"$kubectl" delete namespace "$ns" --wait=false >/dev/null 2>&1 || true' EXIT

# One sample API; two gateways: `plugins` (audit, auth with an API key, validate, cache) and
# `bare` (no API needs a plugin: audit off, anonymous, validation off, no cache).
"$kubectl" -n "$ns" apply -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 1
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
        - {name: api, image: $KEA_IMAGE_UPSTREAM, args: ["8080", "--bind", "0.0.0.0"],
           readinessProbe: {httpGet: {path: /_kea/stats, port: 8080}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec: {selector: {app: api}, ports: [{port: 80, targetPort: 8080, protocol: TCP}]}
---
apiVersion: kea.dev/v1alpha1
kind: GatewayBinding
metadata: {name: plugins}
spec:
  standalone: {replicas: 1, concurrency: 1}
  audit: {enabled: true}
  plugins:
    auth:
      config:
        apiKeys:
          - name: clients
            keys: [{client: bench, sha256: ca6f2e39b2ff141859b18bb5283aadd5093c8ede2869f3656231a054e54bfc22}]
---
apiVersion: kea.dev/v1alpha1
kind: ApiDefinition
metadata: {name: with-plugins}
spec:
  gateway: plugins
  hosts: ["*"]
  basePath: /items
  backends: [{service: api, port: 80}]
  schema:
    operations:
      - path: /{id}
        method: GET
        parameters: [{name: id, in: path, required: true, schema: {type: integer, minimum: 1}}]
  auth: {providers: [clients]}
  validation: {mode: enforce}
  cache: {enabled: true, defaultTtl: 30s}
---
apiVersion: kea.dev/v1alpha1
kind: GatewayBinding
metadata: {name: bare}
spec:
  standalone: {replicas: 1, concurrency: 1}
  audit: {enabled: false}
---
apiVersion: kea.dev/v1alpha1
kind: ApiDefinition
metadata: {name: without-plugins}
spec:
  gateway: bare
  hosts: ["*"]
  basePath: /items
  backends: [{service: api, port: 80}]
  schema: {operations: [{path: "/{id}", method: GET, parameters: [{name: id, in: path, required: true, schema: {type: string}}]}]}
  auth: {anonymous: true}
  validation: {mode: "off"}
YAML
for _ in $(seq 120); do
  "$kubectl" -n "$ns" get deployment kea-gateway-plugins kea-gateway-bare >/dev/null 2>&1 && break
  sleep 1
done
for d in api kea-gateway-plugins kea-gateway-bare; do
  "$kubectl" -n "$ns" rollout status "deployment/$d" --timeout=180s >/dev/null
done
address() { "$kubectl" -n "$ns" get service "$1" -o jsonpath='{.spec.clusterIP}:{.spec.ports[0].port}'; }
bare=$(address kea-gateway-bare)
plugins=$(address kea-gateway-plugins)
for _ in $(seq 60); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$bare/items/1")" = 200 ] \
    && [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'x-api-key: demo-api-key' "http://$plugins/items/1")" = 200 ] && break
  sleep 1
done

# `cache-control: no-cache` makes every request a revalidation at the origin: the cache plugin
# works on each request, but no answer comes from the cache (that would measure the cache, not the
# gateway). A second row shows cache hits.
run() { # NAME URL HEADERS... -> req/s and p99 (ms)
  local name=$1 url=$2; shift 2
  wrk -t1 -c20 -d2s "$@" "$url" >/dev/null 2>&1 || true
  wrk -t1 -c20 -d"${duration}s" --latency "$@" "$url" 2>/dev/null | awk -v n="$name" '
    /Requests\/sec/ {rps=$2}
    /^ +99%/ {p=$2; if (p ~ /us$/) {sub(/us/,"",p); p=p/1000} else if (p ~ /ms$/) {sub(/ms/,"",p)} else if (p ~ /s$/) {sub(/s/,"",p); p=p*1000}; p99=p}
    /Non-2xx/ {bad=$NF}
    END {printf "%s %s %s %s\n", n, rps, p99, (bad==""?0:bad)}'
}
results=$(mktemp)
for round in $(seq "$rounds"); do
  log "round $round/$rounds"
  run bare "http://$bare/items/1" >>"$results"
  run plugins "http://$plugins/items/1" -H 'x-api-key: demo-api-key' -H 'cache-control: no-cache' >>"$results"
  run hits "http://$plugins/items/1" -H 'x-api-key: demo-api-key' >>"$results"
done
python3 - "$results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, rps, p99, bad = line.split()
    if int(bad):
        sys.exit(f"{name}: {bad} non-2xx answers; not reporting this run")
    rows.setdefault(name, []).append((float(rps), float(p99)))
labels = {"bare": "gateway Pod, no plugins", "plugins": "gateway Pod, audit + auth (API key) + validate + cache (revalidated: no-cache)", "hits": "gateway Pod, four plugins, cache hits"}
base = statistics.median(r for r, _ in rows["bare"])
print("| configuration (same run) | req/s | ratio to no plugins | p99 ms | per-round ratios |")
print("|---|---:|---:|---:|---|")
for name in ("bare", "plugins", "hits"):
    rps = statistics.median(r for r, _ in rows[name])
    p99 = statistics.median(p for _, p in rows[name])
    per = ", ".join(f"{r / b:.2f}" for (r, _), (b, _) in zip(rows[name], rows["bare"]))
    print(f"| {labels[name]} | {rps:.0f} | {rps / base:.2f}× | {p99:.2f} | {per} |")
PY
