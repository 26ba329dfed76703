#!/usr/bin/env bash
# Builds a real Kubernetes v1.20.2 (the oldest version KEA supports) from Debian's source package,
# once per machine, into $KEA_KUBE_BIN: kube-apiserver and kube-controller-manager (the operator's
# API-server tests), kubelet, kube-proxy and kube-scheduler (the local cluster, scripts/cluster.sh)
# and a matching kubectl, all in one `make` so the shared packages compile once.
# Also installs etcd (Debian etcd-server). Idempotent: a cached build is reused.
# Kubernetes 1.20 vendors github.com/modern-go/reflect2 v1.0.1, which crashes under Go >= 1.18
# ("fatal error: fault" in map iteration as soon as a custom resource is written); the vendored copy
# is replaced by Debian's 1.0.2 before building.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

KUBE_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
have_all() { for b in "${KUBE_BINARIES[@]}"; do [ -x "$KEA_KUBE_BIN/$b" ] || return 1; done; [ -f "$KEA_KUBE_BIN/pause.c" ]; }
if have_all && command -v etcd >/dev/null; then
  exit 0
fi

sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
if ! grep -rqs 'deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/ \
    && ! grep -rqs 'Types: deb-src' /etc/apt/sources.list.d/; then
  log "adding a deb-src entry for bookworm main"
  mirror=$(grep -rhs '^URIs:' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1 | awk '{print $2}')
  mirror="${mirror:-http://deb.debian.org/debian}"
  printf 'Types: deb-src\nURIs: %s\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" | $sudo tee /etc/apt/sources.list.d/kea-deb-src.sources >/dev/null
fi
need=()
for pkg in golang-go etcd-server rsync jq golang-github-modern-go-reflect2-dev dpkg-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ] || ! apt-cache showsrc kubernetes >/dev/null 2>&1; then
  log "installing Debian packages: ${need[*]:-(none)}; refreshing package lists with sources"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  [ ${#need[@]} -eq 0 ] || $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The package may start a system-wide etcd on :2379; the tests run their own on free ports.
if command -v service >/dev/null; then $sudo service etcd stop >/dev/null 2>&1 || true; fi

if ! have_all; then
  work="$KEA_CACHE/kubernetes-src"
  rm -rf "$work"
  mkdir -p "$work"
  log "downloading the Debian source of Kubernetes 1.20.2"
  (cd "$work" && apt-get source --download-only kubernetes >/dev/null 2>&1) || die "apt-get source kubernetes failed"
  orig=$(find "$work" -maxdepth 1 -name 'kubernetes_*really1.20.2.orig.tar.*' | head -n 1)
  [ -n "$orig" ] || die "no kubernetes 1.20.2 .orig tarball in $work"
  mkdir -p "$work/src"
  tar -xf "$orig" -C "$work/src" --strip-components=1
  log "replacing vendored reflect2 1.0.1 with Debian's 1.0.2 (Go >= 1.18 fix)"
  rm -rf "$work/src/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$work/src/vendor/github.com/modern-go/reflect2"
  log "building ${KUBE_BINARIES[*]} (8-15 minutes on 2 cores)"
  what=$(printf 'cmd/%s ' "${KUBE_BINARIES[@]}")
  (cd "$work/src" && env GOPATH="$work/gopath" GOCACHE="$work/gocache" HOME="$work" CGO_ENABLED=0 \
      make WHAT="$what" >"$work/build.log" 2>&1) \
    || { tail -n 30 "$work/build.log" >&2; die "building Kubernetes failed (log: $work/build.log)"; }
  mkdir -p "$KEA_KUBE_BIN"
  for b in "${KUBE_BINARIES[@]}"; do cp "$work/src/_output/bin/$b" "$KEA_KUBE_BIN/"; done
  # The local cluster's pause image is built from the same tree's pause.c (scripts/images.sh).
  cp "$work/src/build/pause/linux/pause.c" "$KEA_KUBE_BIN/pause.c"
  rm -rf "$work"
fi
"$KEA_KUBE_BIN/kube-apiserver" --version >/dev/null || die "kube-apiserver at $KEA_KUBE_BIN does not run"
