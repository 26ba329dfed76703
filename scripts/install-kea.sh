#!/usr/bin/env bash
# Installs KEA into the cluster of $KUBECONFIG (default: the local cluster of scripts/cluster.sh):
# the CRDs, RBAC, and the operator Deployment running the image scripts/images.sh built, pinned by
# digest, with its settings in the kea-system/kea-operator ConfigMap — the image of standalone
# gateways, when scripts/publish-plugins.sh pushed them where the plugin modules are, and for
# models the runtime, builder and operator images and the registry built images go to.
# Idempotent; waits until the operator is rolled out.
#   scripts/install-kea.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$KEA_ROOT"

cluster_env="${KEA_CLUSTER_HOME:-$KEA_CACHE/cluster}/env"
if [ -z "${KUBECONFIG:-}" ] && [ -f "$cluster_env" ]; then
  set -a; source "$cluster_env"; set +a
fi
[ -n "${KUBECONFIG:-}" ] || die "no KUBECONFIG and no local cluster ($cluster_env) — run scripts/cluster.sh up"
images_env="$KEA_CACHE/images/images.env"
[ -f "$images_env" ] || die "$images_env missing — run scripts/images.sh"
set -a; source "$images_env"; set +a
[ -n "${KEA_IMAGE_OPERATOR:-}" ] && [ -n "${KEA_IMAGE_GATEWAY:-}" ] || die "$images_env lacks KEA_IMAGE_OPERATOR or KEA_IMAGE_GATEWAY"
kubectl="$KEA_KUBE_BIN/kubectl"
[ -x "$kubectl" ] || kubectl=kubectl

log "installing KEA (operator $KEA_IMAGE_OPERATOR)"
"$kubectl" apply -f manifests/crds.yaml >/dev/null
"$kubectl" create namespace kea-system --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
# Plugins published by scripts/publish-plugins.sh: gateways load them from the registry (pinned by
# the sha256s in the operator image's /etc/kea/SHA256SUMS); the local registry speaks plain HTTP.
# Derived from the combined module's artifact (the default deployment), published with the rest.
if [ -z "${KEA_PLUGIN_URL:-}" ] && [ -n "${KEA_PLUGIN_KEA:-}" ]; then
  KEA_PLUGIN_URL="${KEA_PLUGIN_KEA/\/kea:/\/\{plugin\}:}"
  case "$KEA_PLUGIN_URL" in
    "oci://$KEA_REGISTRY_ADDR/"*) KEA_INSECURE_REGISTRIES="${KEA_INSECURE_REGISTRIES:-$KEA_REGISTRY_ADDR}" ;;
  esac
fi
settings=(--from-literal=KEA_GATEWAY_IMAGE="$KEA_IMAGE_GATEWAY")
if [ -n "${KEA_PLUGIN_URL:-}" ]; then
  settings+=(--from-literal=KEA_PLUGIN_URL="$KEA_PLUGIN_URL")
fi
# Models: images are built on the runtime images by build Jobs (kea/builder) and pushed to the
# local registry.
runtimes=()
for framework in sklearn xgboost onnx pytorch tensorflow custom; do
  var="KEA_IMAGE_RUNTIME_$(echo "$framework" | tr 'a-z' 'A-Z')"
  [ -z "${!var:-}" ] || runtimes+=("$framework=${!var}")
done
# The operator's own image reads custom models' serving classes in their build Jobs.
if [ ${#runtimes[@]} -gt 0 ] && [ -n "${KEA_IMAGE_BUILDER:-}" ]; then
  settings+=(--from-literal=KEA_RUNTIME_IMAGES="$(IFS=,; echo "${runtimes[*]}")"
    --from-literal=KEA_BUILDER_IMAGE="$KEA_IMAGE_BUILDER"
    --from-literal=KEA_OPERATOR_IMAGE="$KEA_IMAGE_OPERATOR"
    --from-literal=KEA_MODEL_REGISTRY="${KEA_MODEL_REGISTRY:-$KEA_REGISTRY_ADDR/kea/models}")
  case "${KEA_MODEL_REGISTRY:-$KEA_REGISTRY_ADDR}" in
    "$KEA_REGISTRY_ADDR"*) case ",${KEA_INSECURE_REGISTRIES:-}," in
        *",$KEA_REGISTRY_ADDR,"*) ;;
        *) KEA_INSECURE_REGISTRIES="${KEA_INSECURE_REGISTRIES:+$KEA_INSECURE_REGISTRIES,}$KEA_REGISTRY_ADDR" ;;
      esac ;;
  esac
fi
if [ -n "${KEA_INSECURE_REGISTRIES:-}" ]; then
  settings+=(--from-literal=KEA_INSECURE_REGISTRIES="$KEA_INSECURE_REGISTRIES")
fi
"$kubectl" -n kea-system create configmap kea-operator "${settings[@]}" --dry-run=client -o yaml \
  | "$kubectl" apply -f - >/dev/null
# The Deployment reads its settings at start: a change of settings rolls the operator's Pods.
settings_sha=$("$kubectl" -n kea-system get configmap kea-operator -o jsonpath='{.data}' | sha256sum | cut -c1-16)
sed -e "s|image: kea/operator:0.1.0|image: $KEA_IMAGE_OPERATOR|" \
    -e "s|kea.dev/settings-sha256: \"\"|kea.dev/settings-sha256: \"$settings_sha\"|" \
    manifests/install.yaml | "$kubectl" apply -f - >/dev/null
"$kubectl" -n kea-system rollout status deployment/kea-operator --timeout=180s >/dev/null \
  || { "$kubectl" -n kea-system get pods -o wide >&2; die "the operator did not become ready"; }
log "KEA operator ready ($("$kubectl" -n kea-system get deployment kea-operator -o jsonpath='{.status.readyReplicas}') replicas)"
