#!/usr/bin/env bash
# Builds KEA's container images offline and reproducibly, and pushes them to the local registry.
#   scripts/images.sh                 every image: pause operator upstream gateway runtime-base
#                                     runtime-sklearn runtime-xgboost runtime-onnx runtime-custom builder
#                                     (+ runtime-pytorch runtime-tensorflow with KEA_HEAVY=1)
#   scripts/images.sh NAME...         only these (scripts/cluster.sh up runs `scripts/images.sh pause`)
# Images (see images/README.md; images/<name>/Dockerfile builds the same with Docker):
#   localhost/pause:3.2   the Pod sandbox image, from the Kubernetes tree's pause.c (static); not pushed:
#                         an OCI archive that scripts/cluster.sh imports into containerd
#   kea/operator          `kea` (-p kea-operator; built in one release build with kea-upstream, as the
#                         demo does), ENTRYPOINT kea, CMD operator,
#                         /etc/kea/SHA256SUMS = dist/SHA256SUMS, the docs portal's validator
#                         (dist/web, scripts/web-build.sh) in /usr/share/kea/portal
#   kea/upstream          `kea-upstream` (-p kea-e2e), the sample API, CMD 8081 --bind 0.0.0.0
#   kea/gateway           Envoy 1.40 ($KEA_ENVOY) + dist/*.wasm and dist/SHA256SUMS in /kea/plugins
#   kea/runtime-base      Python 3.11 (python3, venv, pip) and git: the base of model runtimes (git: the
#                         storage initializer clones model repositories with it)
#   kea/runtime-FRAMEWORK runtime-base + one layer: a venv /opt/kea/venv holding exactly the packages of
#                         runtime/locks/FRAMEWORK.txt (hash-pinned, MLServer included) and kea-runtime
#                         (runtime/), CMD mlserver start /opt/kea/model; FRAMEWORK: sklearn xgboost onnx
#                         custom (lock custom.txt or server.txt), and the heavy pytorch tensorflow
#   kea/builder           buildah (vfs, chroot isolation) and kea-build (images/builder/kea-build.sh): builds
#                         per-model images in a Kubernetes Job, FROM a runtime image + COPY, and pushes them
# The first three share one base layer: Debian bookworm `essential` + ca-certificates + the packages
# holding the libraries `ldd` finds in their binaries. Every image runs as uid/gid 65532 (`nonroot`).
#
# Offline and reproducible: root filesystems come from the Debian mirror apt already uses (mmdebstrap,
# SOURCE_DATE_EPOCH fixed), cached as tarballs in $KEA_CACHE/images/rootfs and rebuilt only when their
# package list (or mirror) changes; images are built with buildah (vfs storage in
# $KEA_CACHE/images/buildah, chroot isolation, no daemon) and committed with `--timestamp 0`, so the
# same inputs give the same image. An image is rebuilt only when its inputs change (binary, wasm
# modules, SHA256SUMS, base tarball; a stamp in $KEA_CACHE/images/stamps), so its digest stays put; its
# revision label names the commit it was first built from (`-dirty` when the tree had changes).
# Runtime images: the lock's wheels are downloaded once on the host (pip download --require-hashes,
# CPython 3.11 manylinux x86_64 wheels only) into $KEA_CACHE/images/wheels, kea-runtime is built into a
# wheel there once per source tree, and both are installed in the image from a read-only bind mount
# (--no-index: the build itself never reaches the network); bytecode checked by hash, no pip cache.
#
# Pushing: tag = the workspace version, to the local registry ($KEA_REGISTRY_ADDR, 10.250.0.1:15000) (started here with
# `scripts/cluster.sh registry` when it is not running; `scripts/cluster.sh down` stops it; its data
# stays in $KEA_CACHE/registry). An unchanged image is pushed again only when the registry lost it.
# Writes $KEA_CACHE/images/images.env (other lines there, e.g. from scripts/publish-plugins.sh, stay):
#   KEA_IMAGE_OPERATOR=10.250.0.1:15000/kea/operator@sha256:...      (and _UPSTREAM, _GATEWAY, _RUNTIME_BASE,
#                                     _RUNTIME_SKLEARN, _RUNTIME_XGBOOST, ..., _BUILDER)
#   KEA_IMAGE_PAUSE_ARCHIVE=$KEA_CACHE/images/pause-3.2.oci.tar    KEA_IMAGE_VERSION=0.1.0
# Needs root (mmdebstrap, buildah).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

IMG="$KEA_CACHE/images"
REGISTRY="$KEA_REGISTRY_ADDR"
IMAGES_ENV="$IMG/images.env"
PAUSE_ARCHIVE="$IMG/pause-3.2.oci.tar"
PAUSE_REF="localhost/pause:3.2"
ALL=(pause operator upstream gateway runtime-base runtime-sklearn runtime-xgboost runtime-onnx runtime-custom builder)
# Gigabytes of wheels each: built only when named, or with KEA_HEAVY=1.
HEAVY=(runtime-pytorch runtime-tensorflow)
# Root filesystems: dates clamped to this (2024-01-01) so a tarball is a function of its packages.
ROOTFS_EPOCH=1704067200
NONROOT=65532
# Bump when the way images are assembled changes (it is part of every image's inputs).
RECIPE=2
BUILDAH=(buildah --storage-driver vfs --root "$IMG/buildah/root" --runroot "$IMG/buildah/run")
export BUILDAH_ISOLATION=chroot

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
b() { "${BUILDAH[@]}" "$@"; }

set_env() { # KEY VALUE in images.env, other lines kept
  mkdir -p "$IMG"
  touch "$IMAGES_ENV"
  { grep -v "^$1=" "$IMAGES_ENV" || true; echo "$1=$2"; } >"$IMAGES_ENV.tmp"
  mv "$IMAGES_ENV.tmp" "$IMAGES_ENV"
}
stamp_get() { sed -n "s/^$2=//p" "$IMG/stamps/$1" 2>/dev/null; }
stamp_set() { # NAME inputs=... image=... pushed=...
  local name=$1; shift
  mkdir -p "$IMG/stamps"
  printf '%s\n' "$@" >"$IMG/stamps/$name"
}
image_id() { b inspect --type image --format '{{.FromImageID}}' "$1" 2>/dev/null; }
registry_digest() { # REPOSITORY REFERENCE -> the manifest digest the registry serves, or nothing
  curl -fsS -I --max-time 5 \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REGISTRY/v2/$1/manifests/$2" 2>/dev/null | tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" { print $2 }' || true
}
pulled_size() { # REPOSITORY DIGEST -> bytes a pull downloads (config + layers)
  curl -fsS --max-time 5 -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://$REGISTRY/v2/$1/manifests/$2" \
    | python3 -c 'import json, sys; m = json.load(sys.stdin); print(m["config"]["size"] + sum(l["size"] for l in m["layers"]))'
}

[ "$(id -u)" -eq 0 ] || die "scripts/images.sh needs root (mmdebstrap and buildah)"
wanted=("$@")
if [ ${#wanted[@]} -eq 0 ]; then
  wanted=("${ALL[@]}")
  [ "${KEA_HEAVY:-0}" != 1 ] || wanted+=("${HEAVY[@]}")
fi
for name in "${wanted[@]}"; do
  case " ${ALL[*]} ${HEAVY[*]} " in *" $name "*) ;; *) die "unknown image $name (one of: ${ALL[*]} ${HEAVY[*]})" ;; esac
done
want() { case " ${wanted[*]} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
pushes=0
for name in "${wanted[@]}"; do [ "$name" = pause ] || pushes=1; done

"$KEA_ROOT/scripts/install-deps.sh" cluster
mkdir -p "$IMG/rootfs" "$IMG/stamps" "$IMG/work"
VERSION=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["workspace"]["package"]["version"])' "$KEA_ROOT/Cargo.toml")
SOURCE=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["workspace"]["package"]["repository"])' "$KEA_ROOT/Cargo.toml")
REVISION=$(git -C "$KEA_ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
[ -z "$(git -C "$KEA_ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] || REVISION="$REVISION-dirty"
LABELS=()
labels() { # TITLE DESCRIPTION [VERSION] -> LABELS, buildah config's --label arguments
  LABELS=(--label "org.opencontainers.image.title=$1" --label "org.opencontainers.image.description=$2"
    --label "org.opencontainers.image.source=$SOURCE" --label "org.opencontainers.image.version=${3:-$VERSION}"
    --label "org.opencontainers.image.revision=$REVISION" --label "org.opencontainers.image.licenses=Apache-2.0")
}
summary=()
t_all=$(now)

# ---------------------------------------------------------------------------------------------------
# pause: the Kubernetes tree's pause.c, static, as an OCI archive for containerd.
if want pause; then
  t=$(now)
  pause_c="$KEA_KUBE_BIN/pause.c"
  [ -f "$pause_c" ] || die "no $pause_c (scripts/kube-build.sh puts it there)"
  labels pause "Kubernetes Pod sandbox (pause 3.2, built from the Kubernetes v1.20.2 tree)" 3.2
  config=(--entrypoint '["/pause"]' --user "$NONROOT:$NONROOT" --os linux --arch amd64 "${LABELS[@]}")
  inputs=$( { echo "recipe $RECIPE"; sha "$pause_c"; gcc --version | head -n 1; printf '%s\n' "${config[@]}" | grep -v 'image.revision='; } | sha256sum | cut -d' ' -f1)
  if [ "$(stamp_get pause inputs)" = "$inputs" ] && [ -f "$PAUSE_ARCHIVE" ] && [ "$(stamp_get pause archive)" = "$(sha "$PAUSE_ARCHIVE")" ]; then
    state="unchanged"
  else
    work="$IMG/work/pause"; rm -rf "$work"; mkdir -p "$work"
    gcc -Os -static -Wall -DVERSION=3.2 -o "$work/pause" "$pause_c"
    strip "$work/pause"
    c=$(b from --pull=never scratch)
    b copy --chmod 0755 "$c" "$work/pause" /pause >/dev/null
    b config "${config[@]}" "$c"
    b commit -q --timestamp 0 --identity-label=false --format oci --rm "$c" "$PAUSE_REF" >/dev/null
    rm -f "$PAUSE_ARCHIVE.tmp"
    b push -q "$PAUSE_REF" "oci-archive:$PAUSE_ARCHIVE.tmp:$PAUSE_REF"
    mv "$PAUSE_ARCHIVE.tmp" "$PAUSE_ARCHIVE"
    stamp_set pause "inputs=$inputs" "archive=$(sha "$PAUSE_ARCHIVE")"
    state="built"
  fi
  set_env KEA_IMAGE_PAUSE_ARCHIVE "$PAUSE_ARCHIVE"
  summary+=("$(printf '%-22s %-9s %10s  %6ss  %s' pause "$state" "$(mb "$(stat -c %s "$PAUSE_ARCHIVE")")" "$(since "$t")" "$PAUSE_ARCHIVE")")
fi
[ $pushes = 1 ] || { printf '  %s\n' "${summary[@]}" >&2; exit 0; }

# ---------------------------------------------------------------------------------------------------
# Inputs: binaries, plugins, Envoy.
t=$(now)
"$KEA_ROOT/scripts/cluster.sh" registry
# The operator, upstream and gateway images share a base made for all three binaries, so all three
# are needed whichever of those images this run builds (cargo does nothing when they are fresh).
if want operator || want upstream || want gateway; then
  target_dir="${CARGO_TARGET_DIR:-$(cd "$KEA_ROOT" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')}"
  # One invocation, the demo's (envoy-examples/gateway/run.sh): building the two packages one after the
  # other resolves their shared dependencies' features differently, and each build would then recompile
  # the plugin crates (cdylib + rlib) and everything above them for the other.
  (cd "$KEA_ROOT" && cargo build --release --locked -q -p kea-e2e --bin kea-upstream -p kea-operator --bin kea)
  KEA_BIN="$target_dir/release/kea"
  UPSTREAM_BIN="$target_dir/release/kea-upstream"
  [ -x "$KEA_ENVOY" ] || "$KEA_ROOT/scripts/install-deps.sh" demo
  ENVOY_BIN=$(readlink -f "$KEA_ENVOY")
  # (not `| grep -q`: grep leaving early would fail the pipeline under pipefail)
  [[ "$("$ENVOY_BIN" --version)" == *"/$ENVOY_VERSION/"* ]] || die "$KEA_ENVOY is not Envoy $ENVOY_VERSION"
  [ -f "$KEA_DIST/SHA256SUMS" ] || (cd "$KEA_ROOT" && ./wasm-build.sh)
  (cd "$KEA_DIST" && sha256sum --quiet -c SHA256SUMS) || die "$KEA_DIST does not match its SHA256SUMS (run ./wasm-build.sh)"
fi
log "inputs ready: $(since "$t") s"

# ---------------------------------------------------------------------------------------------------
# Root filesystems (mmdebstrap, cached by package list).
debian_sources() { # the deb sources apt uses, one-line format, for mmdebstrap
  {
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      awk 'BEGIN { RS = ""; FS = "\n" }
        { t = u = s = c = ""
          for (i = 1; i <= NF; i++) {
            if ($i ~ /^Types:/) t = substr($i, 8); else if ($i ~ /^URIs:/) u = substr($i, 6)
            else if ($i ~ /^Suites:/) s = substr($i, 8); else if ($i ~ /^Components:/) c = substr($i, 12) }
          if (t ~ /(^| )deb( |$)/) { n = split(s, ss, " "); split(u, uu, " ")
            for (j = 1; j <= n; j++) print "deb " uu[1] " " ss[j] " " c } }' "$f"
    done
    [ ! -f /etc/apt/sources.list ] || awk '$1 == "deb" && $2 !~ /^\[/ { print }' /etc/apt/sources.list
  } | sed 's/  */ /g; s/ $//' | awk '$3 ~ /^bookworm/' | sort -u
}
ldd_packages() { # BINARY... -> the Debian packages holding the shared libraries they load ("!LIB": none)
  local bin lib pkg
  for bin in "$@"; do
    ldd "$bin" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' || true
  done | sort -u | while read -r lib; do
    pkg=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "/usr$lib" 2>/dev/null || true)
    if [ -n "$pkg" ]; then echo "${pkg%%:*}" | cut -d, -f1; else echo "!$lib"; fi
  done | sort -u
}
ROOTFS_TAR=""
rootfs() { # NAME PACKAGE... -> ROOTFS_TAR (built once per package list and mirror)
  local name=$1; shift
  local packages; packages=$(printf '%s\n' "$@" | sort -u | paste -sd, -)
  mapfile -t sources < <(debian_sources)
  [ ${#sources[@]} -gt 0 ] || die "no bookworm deb sources in /etc/apt"
  local opts=(--variant=essential --include="$packages" --format=tar
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias'
    --aptopt='Acquire::Check-Valid-Until "false"' --aptopt='Acquire::Languages "none"'
    # The runtime mounts its own /etc/resolv.conf and /etc/hostname; the host's must not leak in.
    --customize-hook='rm -f "$1/etc/resolv.conf" "$1/etc/hostname"'
    --customize-hook="echo 'nonroot:x:$NONROOT:$NONROOT:nonroot:/home/nonroot:/usr/sbin/nologin' >>\"\$1/etc/passwd\""
    --customize-hook="echo 'nonroot:x:$NONROOT:' >>\"\$1/etc/group\""
    --customize-hook="mkdir -p \"\$1/home/nonroot\" && chown $NONROOT:$NONROOT \"\$1/home/nonroot\" && chmod 0750 \"\$1/home/nonroot\""
    # Bytecode checked by hash, not by the source's mtime: the image's files all get one timestamp.
    --customize-hook='if [ -x "$1/usr/bin/python3" ]; then chroot "$1" python3 -m compileall -q -f --invalidation-mode checked-hash /usr/lib/python3.11 /usr/lib/python3/dist-packages >/dev/null; fi'
    bookworm)
  local key; key=$(printf '%s\n' "$ROOTFS_EPOCH" "${opts[@]}" "${sources[@]}" | sha256sum | cut -c1-16)
  ROOTFS_TAR="$IMG/rootfs/$name-$key.tar"
  if [ -f "$ROOTFS_TAR" ] && [ -f "$ROOTFS_TAR.sha256" ]; then return 0; fi
  local t; t=$(now)
  log "building the $name root filesystem ($packages) with mmdebstrap"
  rm -f "$ROOTFS_TAR.tmp"
  SOURCE_DATE_EPOCH=$ROOTFS_EPOCH mmdebstrap --quiet "${opts[@]}" "$ROOTFS_TAR.tmp" "${sources[@]}" >"$IMG/rootfs/$name.log" 2>&1 \
    || { tail -n 30 "$IMG/rootfs/$name.log" >&2; die "mmdebstrap failed for $name (log: $IMG/rootfs/$name.log)"; }
  mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  sha "$ROOTFS_TAR" >"$ROOTFS_TAR.sha256"
  find "$IMG/rootfs" -maxdepth 1 -name "$name-*.tar*" ! -name "$name-$key.tar*" -delete
  log "  $name root filesystem: $(mb "$(stat -c %s "$ROOTFS_TAR")") in $(since "$t") s"
}
BASE_REF=""
base_image() { # TARBALL -> BASE_REF, a local image holding just the tarball (one layer, shared)
  local tar=$1 rootfs_name; rootfs_name=$(basename "$tar" .tar); rootfs_name=${rootfs_name%-*}
  BASE_REF="localhost/kea-rootfs/$rootfs_name:$(cut -c1-16 <"$tar.sha256")"
  [ -z "$(image_id "$BASE_REF")" ] || return 0
  local c; c=$(rootfs_container "$tar")
  b commit -q --timestamp 0 --identity-label=false --format oci --rm "$c" "$BASE_REF" >/dev/null
}
rootfs_container() { # TARBALL -> a working container holding it
  local c; c=$(b from --pull=never scratch)
  b add "$c" "$1" / >/dev/null
  b config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
    --os linux --arch amd64 --created-by "mmdebstrap bookworm: $(basename "$1")" "$c"
  echo "$c"
}

# ---------------------------------------------------------------------------------------------------
# One image: build when its inputs changed, push when the registry does not have it.
# BUILD_HOOK (a function, called with the working container after the files are copied) and
# BUILD_INPUTS (text standing for what the hook puts in: lock and source hashes) extend the recipe of
# the next build_image call; both are reset by it.
BUILD_HOOK=""
BUILD_INPUTS=""
build_image() { # NAME BASE_TAR FILES_SPEC CONFIG_ARGS... (FILES_SPEC: "src:dest:mode" lines)
  local name=$1 tar=$2 files=$3; shift 3
  local hook=$BUILD_HOOK extra=$BUILD_INPUTS; BUILD_HOOK="" BUILD_INPUTS=""
  local t; t=$(now)
  local ref="localhost/kea/$name:$VERSION" repo="kea/$name"
  local inputs; inputs=$( { echo "recipe $RECIPE"; cat "$tar.sha256"; while IFS=: read -r src dest mode; do
      [ -n "$src" ] && echo "$(sha "$src") $dest $mode"; done <<<"$files"; [ -z "$hook" ] || echo "hook $hook $extra"
      printf '%s\n' "$@" | grep -v 'org.opencontainers.image.revision='; } \
      | sha256sum | cut -d' ' -f1)
  local state=unchanged
  if [ "$(stamp_get "$name" inputs)" != "$inputs" ] || [ -z "$(image_id "$ref")" ] || [ "$(stamp_get "$name" image)" != "$(image_id "$ref")" ]; then
    local c src dest mode
    if [ -n "$files" ] || [ -n "$hook" ]; then
      base_image "$tar" # the rootfs layer, shared with the other images made from the same tarball
      c=$(b from --pull=never "$BASE_REF")
    else
      c=$(rootfs_container "$tar") # nothing to add: one layer
    fi
    while IFS=: read -r src dest mode; do
      [ -n "$src" ] || continue
      b copy --chown 0:0 --chmod "$mode" "$c" "$src" "$dest" >/dev/null
    done <<<"$files"
    [ -z "$hook" ] || "$hook" "$c" || { b rm "$c" >/dev/null 2>&1 || true; die "building kea/$name failed"; }
    b config "$@" "$c"
    b commit -q --timestamp 0 --identity-label=false --format oci --rm "$c" "$ref" >/dev/null
    stamp_set "$name" "inputs=$inputs" "image=$(image_id "$ref")"
    state=built
  fi
  local digest; digest=$(registry_digest "$repo" "$VERSION")
  if [ -z "$digest" ] || [ "$digest" != "$(stamp_get "$name" pushed)" ]; then
    b push -q --tls-verify=false --digestfile "$IMG/work/$name.digest" "$ref" "docker://$REGISTRY/$repo:$VERSION"
    digest=$(cat "$IMG/work/$name.digest")
    [ "$(registry_digest "$repo" "$VERSION")" = "$digest" ] || die "the registry does not serve $repo:$VERSION as $digest"
    stamp_set "$name" "inputs=$inputs" "image=$(image_id "$ref")" "pushed=$digest"
    state="$state+pushed"
  fi
  [ "$(registry_digest "$repo" "$digest")" = "$digest" ] || die "the registry does not serve $repo@$digest"
  local var; var="KEA_IMAGE_$(echo "$name" | tr 'a-z-' 'A-Z_')"
  set_env "$var" "$REGISTRY/$repo@$digest"
  summary+=("$(printf '%-22s %-16s %10s  %6ss  %s' "kea/$name" "$state" "$(mb "$(pulled_size "$repo" "$digest")")" "$(since "$t")" "$REGISTRY/$repo@$digest")")
}

common=(--user "$NONROOT:$NONROOT" --workingdir /home/nonroot --os linux --arch amd64)
if want operator || want upstream || want gateway; then
  mapfile -t libs < <(ldd_packages "$KEA_BIN" "$UPSTREAM_BIN" "$ENVOY_BIN")
  for lib in "${libs[@]}"; do
    case "$lib" in '!'*) die "${lib#!} (a library of kea, kea-upstream or envoy) is not from a Debian package" ;; esac
  done
  rootfs kea-base ca-certificates "${libs[@]}"
  BASE_TAR="$ROOTFS_TAR"
fi
if want operator; then
  labels kea-operator "KEA operator: GatewayBindings and ApiDefinitions to WasmPlugins, routes and bundles"
  [ -f "$KEA_DIST/web/kea_validator_bg.wasm" ] || die "$KEA_DIST/web has no validator: run scripts/web-build.sh"
  build_image operator "$BASE_TAR" "$KEA_BIN:/usr/local/bin/kea:0755
$KEA_DIST/SHA256SUMS:/etc/kea/SHA256SUMS:0644
$KEA_DIST/web/kea_validator.js:/usr/share/kea/portal/kea_validator.js:0644
$KEA_DIST/web/kea_validator_bg.wasm:/usr/share/kea/portal/kea_validator_bg.wasm:0644" \
    "${common[@]}" --entrypoint '["/usr/local/bin/kea"]' --cmd '["operator"]' --port 8080 \
    --env KEA_PORTAL_ASSETS=/usr/share/kea/portal "${LABELS[@]}"
fi
if want upstream; then
  labels kea-upstream "KEA's sample API for tests and the demo (kea-upstream PORT)"
  build_image upstream "$BASE_TAR" "$UPSTREAM_BIN:/usr/local/bin/kea-upstream:0755" \
    "${common[@]}" --entrypoint '["/usr/local/bin/kea-upstream"]' --cmd '["8081", "--bind", "0.0.0.0"]' --port 8081 "${LABELS[@]}"
fi
if want gateway; then
  files="$ENVOY_BIN:/usr/local/bin/envoy:0755
$KEA_DIST/SHA256SUMS:/kea/plugins/SHA256SUMS:0644"
  while read -r _ module; do files+=$'\n'"$KEA_DIST/$module:/kea/plugins/$module:0644"; done <"$KEA_DIST/SHA256SUMS"
  labels kea-gateway "Envoy $ENVOY_VERSION with KEA's proxy-wasm plugins in /kea/plugins"
  build_image gateway "$BASE_TAR" "$files" \
    "${common[@]}" --entrypoint '["/usr/local/bin/envoy"]' --port 8080 --port 15021 "${LABELS[@]}"
fi
runtimes=()
for name in "${wanted[@]}"; do case "$name" in runtime-base) ;; runtime-*) runtimes+=("${name#runtime-}") ;; esac; done
if want runtime-base || [ ${#runtimes[@]} -gt 0 ]; then
  # git: the model Pods' init container (the storage initializer, kea-runtime) clones model repositories.
  # libstdc++6: manylinux wheels (numpy, scikit-learn, onnxruntime, ...) take it from the system.
  rootfs kea-python python3 python3-venv python3-pip ca-certificates git libstdc++6
  PYTHON_TAR="$ROOTFS_TAR"
fi
if want runtime-base; then
  labels kea-runtime-base "Python 3.11 (Debian bookworm) and git, the base of KEA's model runtimes"
  build_image runtime-base "$PYTHON_TAR" "" \
    "${common[@]}" --cmd '["python3"]' --env PYTHONUNBUFFERED=1 "${LABELS[@]}"
fi

# ---------------------------------------------------------------------------------------------------
# Model runtimes: runtime-base + a venv with exactly one lock's packages and kea-runtime.
RUNTIME_DIR="$KEA_ROOT/runtime"
WHEELS="$IMG/wheels"           # every wheel of every lock, by file name (pip checks the hashes)
# The host's Debian pip (the one the image has too), for downloading and for building kea-runtime.
HOST_PIP=(env PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_NO_INPUT=1 /usr/bin/python3 -m pip)
# Wheels for the images' interpreter, whatever Python runs this script: CPython 3.11 on glibc 2.36
# (bookworm) x86_64, i.e. manylinux tags up to 2_36 (pip does not expand perennial tags by itself).
WHEEL_TARGET=(--only-binary=:all: --python-version 3.11 --implementation cp --abi cp311
  --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)
for glibc in $(seq 17 36); do WHEEL_TARGET+=(--platform "manylinux_2_${glibc}_x86_64"); done
runtime_lock() { # FRAMEWORK -> the lock file (custom may be called server)
  local f="$RUNTIME_DIR/locks/$1.txt"
  [ "$1" != custom ] || [ -f "$f" ] || f="$RUNTIME_DIR/locks/server.txt"
  [ -f "$f" ] || die "no lock for the $1 runtime ($RUNTIME_DIR/locks/$1.txt)"
  echo "$f"
}
runtime_sources() { # the files of runtime/ that make up the kea-runtime wheel (no locks, tests, build output)
  (cd "$RUNTIME_DIR" && find . -type f \( -path ./locks -o -path ./tests -o -path ./build -o -path ./dist \
      -o -path ./.venv -o -path '*/__pycache__' -o -path '*.egg-info' -o -path ./.pytest_cache -o -path ./.git \) -prune \
      -o -type f ! -name '*.pyc' -print | LC_ALL=C sort)
}
RUNTIME_SRC_HASH=""
RUNTIME_WHEEL_DIR=""
runtime_wheel() { # -> RUNTIME_WHEEL_DIR holding the kea-runtime wheel, built once per source tree
  [ -z "$RUNTIME_WHEEL_DIR" ] || return 0
  [ -f "$RUNTIME_DIR/pyproject.toml" ] || die "no $RUNTIME_DIR/pyproject.toml (the kea-runtime package)"
  RUNTIME_SRC_HASH=$(cd "$RUNTIME_DIR" && runtime_sources | while read -r f; do echo "$(sha "$f") $f"; done | sha256sum | cut -c1-16)
  RUNTIME_WHEEL_DIR="$WHEELS/kea-runtime/$RUNTIME_SRC_HASH"
  compgen -G "$RUNTIME_WHEEL_DIR/*.whl" >/dev/null && return 0
  local t; t=$(now)
  # Built from a copy: an in-tree build would leave build/ and *.egg-info in runtime/. The build
  # backend comes from PyPI (build isolation); this is the one step besides the lock downloads that
  # needs the network, and only when runtime/ changes. SOURCE_DATE_EPOCH: the same sources, the same wheel.
  local src="$IMG/work/kea-runtime-src"
  rm -rf "$src" "$RUNTIME_WHEEL_DIR.tmp"; mkdir -p "$src" "$RUNTIME_WHEEL_DIR.tmp"
  (cd "$RUNTIME_DIR" && runtime_sources | tar -cf - -T -) | tar -C "$src" -xf -
  SOURCE_DATE_EPOCH=$ROOTFS_EPOCH "${HOST_PIP[@]}" wheel -q --no-deps -w "$RUNTIME_WHEEL_DIR.tmp" "$src" >"$IMG/work/kea-runtime-wheel.log" 2>&1 \
    || { tail -n 30 "$IMG/work/kea-runtime-wheel.log" >&2; die "cannot build the kea-runtime wheel from $RUNTIME_DIR"; }
  rm -rf "$RUNTIME_WHEEL_DIR" "$src"
  mv "$RUNTIME_WHEEL_DIR.tmp" "$RUNTIME_WHEEL_DIR"
  find "$WHEELS/kea-runtime" -mindepth 1 -maxdepth 1 ! -name "$RUNTIME_SRC_HASH" -exec rm -rf {} + # older sources
  log "  kea-runtime wheel $(basename "$RUNTIME_WHEEL_DIR"/*.whl) in $(since "$t") s"
}
runtime_download() { # LOCK: its wheels into $WHEELS, once per lock content
  local lock=$1 marker; marker="$WHEELS/.locks/$(sha "$lock")"
  [ -f "$marker" ] && return 0
  local t; t=$(now)
  mkdir -p "$WHEELS/.locks"
  log "downloading the wheels of $(basename "$lock") into $WHEELS"
  # --no-deps: the lock is the whole closure; --require-hashes: every file checked against the lock.
  "${HOST_PIP[@]}" download -q --require-hashes --no-deps "${WHEEL_TARGET[@]}" -d "$WHEELS" -r "$lock" \
    >"$IMG/work/download-$(basename "$lock" .txt).log" 2>&1 \
    || { tail -n 30 "$IMG/work/download-$(basename "$lock" .txt).log" >&2; die "downloading the wheels of $lock failed (only binary wheels for CPython 3.11 manylinux x86_64 are accepted)"; }
  touch "$marker"
  log "  $(basename "$lock"): $(du -sh "$WHEELS" | cut -f1) of wheels in the cache, $(since "$t") s"
}
# What each runtime must import (as the image's user) before it is committed.
declare -A RUNTIME_IMPORTS=([sklearn]=sklearn,joblib [xgboost]=xgboost,sklearn [onnx]=onnxruntime [custom]=kea_runtime
  [pytorch]=torch [tensorflow]=tensorflow)
RUNTIME_LOCK=""
RUNTIME_FW=""
# Bump when runtime_install changes (the hook's code is not among the inputs build_image hashes).
RUNTIME_RECIPE=2
runtime_install() { # CONTAINER: the venv, offline, from the bind-mounted wheels (BUILD_HOOK of runtime images)
  local c=$1
  # --network none + --no-index: nothing but the mounted wheels can get in. No bytecode from pip (its
  # .pyc files would be checked by timestamp, and --timestamp 0 rewrites every mtime): compileall
  # writes them checked by hash, like the rootfs's. Nothing in /root or /tmp survives.
  b run --network none --user 0:0 \
    -v "$WHEELS:/kea/wheels:ro" -v "$RUNTIME_WHEEL_DIR:/kea/pkg:ro" -v "$RUNTIME_LOCK:/kea/lock.txt:ro" \
    "$c" -- /bin/sh -euc '
      export PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
      python3 -m venv --without-pip /opt/kea/venv
      pip="python3 -m pip --python /opt/kea/venv/bin/python install -q --no-index --no-deps --no-compile"
      $pip --find-links /kea/wheels --require-hashes -r /kea/lock.txt
      $pip --find-links /kea/pkg kea-runtime
      /opt/kea/venv/bin/python -m compileall -q -j 0 --invalidation-mode checked-hash /opt/kea/venv/lib >/tmp/compileall.log 2>&1 \
        || { echo "compileall: $(grep -c "^\*\*\*" /tmp/compileall.log) files not compiled (not Python 3.11 syntax)" >&2; }
      mkdir -p /opt/kea/model && chown 65532:65532 /opt/kea/model
      rm -rf /tmp/* /root/.cache
    ' >&2 || return 1
  # Smoke test as the image's user: the server, kea-runtime and the framework import (a wheel needing a
  # system library the rootfs lacks fails here, not in a model Pod).
  b run --network none --user "$NONROOT:$NONROOT" --env PYTHONDONTWRITEBYTECODE=1 --env TF_CPP_MIN_LOG_LEVEL=3 "$c" -- /opt/kea/venv/bin/python -c \
    "import mlserver, kea_runtime, ${RUNTIME_IMPORTS[$RUNTIME_FW]:-kea_runtime}" >&2 \
    || { echo "kea/runtime-$RUNTIME_FW: import mlserver, kea_runtime, ${RUNTIME_IMPORTS[$RUNTIME_FW]:-kea_runtime} failed" >&2; return 1; }
  # `buildah run` leaves its mount points in the layer: /kea/... and an empty /etc/hostname (the rootfs
  # has none on purpose: the runtime mounts its own).
  local mnt; mnt=$(b mount "$c") || return 1
  rm -rf "${mnt:?}/kea" "$mnt/etc/hostname"
  b umount "$c" >/dev/null
}
for fw in "${runtimes[@]}"; do
  RUNTIME_FW=$fw
  RUNTIME_LOCK=$(runtime_lock "$fw")
  runtime_wheel
  runtime_download "$RUNTIME_LOCK"
  labels "kea-runtime-$fw" "KEA model runtime: MLServer and kea-runtime with the $fw packages of runtime/locks (Python 3.11)"
  BUILD_HOOK=runtime_install
  BUILD_INPUTS="runtime-recipe $RUNTIME_RECIPE lock $(sha "$RUNTIME_LOCK") kea-runtime $RUNTIME_SRC_HASH"
  build_image "runtime-$fw" "$PYTHON_TAR" "" \
    --user "$NONROOT:$NONROOT" --workingdir /opt/kea/model --os linux --arch amd64 \
    --env PATH=/opt/kea/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env VIRTUAL_ENV=/opt/kea/venv \
    --env MLSERVER_HTTP_PORT=8080 --env MLSERVER_GRPC_PORT=8081 --env MLSERVER_METRICS_PORT=8082 --env PYTHONUNBUFFERED=1 \
    --cmd '["mlserver", "start", "/opt/kea/model"]' --port 8080 --port 8081 --port 8082 "${LABELS[@]}"
done

# ---------------------------------------------------------------------------------------------------
# builder: buildah (vfs storage, chroot isolation; fuse-overlayfs and runc are only Recommends, not
# installed) and kea-build, for per-model image builds in Kubernetes Jobs. Runs as root: the layers it
# unpacks and the files it adds belong to other users (see images/README.md for the Pod's settings).
if want builder; then
  rootfs kea-builder buildah ca-certificates
  labels kea-builder "KEA in-cluster image builder: buildah (vfs, chroot) and kea-build"
  build_image builder "$ROOTFS_TAR" "$KEA_ROOT/images/builder/kea-build.sh:/usr/local/bin/kea-build:0755" \
    --user 0:0 --workingdir / --os linux --arch amd64 --env BUILDAH_ISOLATION=chroot \
    --entrypoint '["/usr/local/bin/kea-build"]' "${LABELS[@]}"
fi
set_env KEA_IMAGE_VERSION "$VERSION"
# Storage hygiene (vfs keeps full copies): replaced images, and bases of tarballs that are gone.
b rmi --prune >/dev/null 2>&1 || true
for ref in $(b images --format '{{.Name}}:{{.Tag}}' 2>/dev/null | grep '^localhost/kea-rootfs/' || true); do
  cat "$IMG"/rootfs/*.sha256 2>/dev/null | grep "^${ref##*:}" >/dev/null || b rmi "$ref" >/dev/null 2>&1 || true
done
printf '  %s\n' "${summary[@]}" >&2
log "images done in $(since "$t_all") s; $IMAGES_ENV:"
sed 's/^/  /' "$IMAGES_ENV" >&2
