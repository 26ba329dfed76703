#!/usr/bin/env bash
# KEA in a local Kubernetes cluster, from zero: starts the machine's local cluster
# (scripts/cluster.sh: kubelet, containerd, kube-proxy, a registry), builds and pushes KEA's images
# and plugin artifacts, installs KEA, and applies the sample API (a Pod), a standalone gateway
# and two ApiDefinitions. Prints what to try. `scripts/cluster.sh down` undoes everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

scripts/install-deps.sh cluster
./wasm-build.sh
scripts/cluster.sh up
scripts/images.sh
scripts/publish-plugins.sh
scripts/install-kea.sh

set -a
source "${KEA_CLUSTER_HOME:-$KEA_CACHE/cluster}/env"
source "$KEA_CACHE/images/images.env"
set +a
kubectl="$KEA_KUBE_BIN/kubectl"
log "applying envoy-examples/cluster (sample API, gateway, APIs) in namespace default"
sed "s|KEA_IMAGE_UPSTREAM|$KEA_IMAGE_UPSTREAM|" envoy-examples/cluster/sample-api.yaml | "$kubectl" apply -f - >/dev/null
"$kubectl" apply -f envoy-examples/cluster/gateway.yaml -f envoy-examples/cluster/apis.yaml >/dev/null
"$kubectl" rollout status deployment/sample-api --timeout=120s >/dev/null
for _ in $(seq 120); do
  "$kubectl" get deployment kea-gateway-demo >/dev/null 2>&1 && break
  sleep 1
done
"$kubectl" rollout status deployment/kea-gateway-demo --timeout=180s >/dev/null \
  || { "$kubectl" get gatewaybinding demo -o yaml >&2; die "the gateway did not become ready"; }
address=$("$kubectl" get service kea-gateway-demo -o jsonpath='{.spec.clusterIP}:{.spec.ports[0].port}')

cat >&2 <<MSG

  KEA gateway (audit + auth + validate + cache) running in the local cluster at http://$address
  export KUBECONFIG=$KUBECONFIG; alias kubectl=$kubectl
  Try:
    kubectl get kgw,kapi                                   # Ready, hosts, base paths
    curl -s http://$address/pets/1                         # the sample API, through the gateway Pod
    curl -si http://$address/pets/1 | grep x-kea-cache     # MISS, then HIT
    curl -s http://$address/pets/zero                      # 400 problem+json, never reaches the API
    curl -s http://$address/pets/ -H 'content-type: application/json' -d '{"name": ""}'   # 400: every problem listed
    curl -si http://$address/admin/users | head -n 1       # 401: the admin API needs a key
    curl -si http://$address/admin/users -H 'x-api-key: demo-api-key' | head -n 1        # 200
    kubectl logs -l kea.dev/gateway=demo --tail=3          # the audit records
    kubectl edit kapi pets                                 # a change is served within seconds, no restart
  When done: scripts/cluster.sh down   (stops everything and restores the machine)

MSG
