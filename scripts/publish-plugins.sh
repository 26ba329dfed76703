#!/usr/bin/env bash
# Publishes every dist/<plugin>.wasm as an OCI wasm artifact (what an Istio WasmPlugin's oci:// URL and
# the operator's standalone gateways fetch):
#   scripts/publish-plugins.sh [REGISTRY] [TAG]        default the local cluster's registry
#                                                      ($KEA_REGISTRY_ADDR) and the workspace version
#   scripts/publish-plugins.sh --single-layer [REGISTRY] [TAG]
# -> oci://REGISTRY/kea/plugins/<plugin>:TAG, one per plugin listed in dist/SHA256SUMS:
#   manifest  application/vnd.oci.image.manifest.v1+json, schemaVersion 2, no timestamps (the same
#             module and tag give the same manifest digest)
#   config    `{}`, application/vnd.module.wasm.config.v1+json
#   layer     the raw .wasm bytes, application/vnd.module.wasm.content.layer.v1+wasm, so the layer's
#             digest is sha256:<the plugin's line in dist/SHA256SUMS> and Envoy can fetch the module
#             straight from /v2/<repository>/blobs/sha256:<that>
#   the `{}` config blob is also the first layer: the two-layer layout Istio's image fetcher
#             (pkg/wasm/imagefetcher.go, "OCI variant") requires; the module stays the only layer of
#             the wasm media type. --single-layer leaves it out (the module as the only layer).
# Pushed with curl over the Distribution API (blob uploads, manifest PUT); plain HTTP for a loopback
# registry (`scripts/cluster.sh registry` starts the default one when it is not running), HTTPS
# otherwise (no credentials are handled). Each artifact is read back and checked: the manifest's digest,
# its one wasm layer, and the layer blob's sha256 against dist/SHA256SUMS; any difference fails.
# Writes to $KEA_CACHE/images/images.env (other lines stay), per plugin:
#   KEA_PLUGIN_<PLUGIN>=oci://REGISTRY/kea/plugins/<plugin>:TAG
#   KEA_PLUGIN_<PLUGIN>_SHA256=<the module's sha256, hex>
#   KEA_PLUGIN_<PLUGIN>_MANIFEST_DIGEST=sha256:<the manifest's>  (what Istio compares WasmPlugin.sha256
#                                                                 with for an oci:// URL)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

config_layer=1
if [ "${1:-}" = --single-layer ]; then config_layer=0; shift; fi
VERSION=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["workspace"]["package"]["version"])' "$KEA_ROOT/Cargo.toml")
SOURCE=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["workspace"]["package"]["repository"])' "$KEA_ROOT/Cargo.toml")
REGISTRY="${1:-$KEA_REGISTRY_ADDR}"
TAG="${2:-$VERSION}"
IMAGES_ENV="$KEA_CACHE/images/images.env"
CONFIG_TYPE="application/vnd.module.wasm.config.v1+json"
WASM_TYPE="application/vnd.module.wasm.content.layer.v1+wasm"
MANIFEST_TYPE="application/vnd.oci.image.manifest.v1+json"
case "$REGISTRY" in
  127.*|localhost|localhost:*|\[::1\]*|"$KEA_REGISTRY_ADDR") scheme=http ;;
  *) scheme=https ;;
esac
API="$scheme://$REGISTRY/v2"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
set_env() {
  mkdir -p "$(dirname "$IMAGES_ENV")"
  touch "$IMAGES_ENV"
  { grep -v "^$1=" "$IMAGES_ENV" || true; echo "$1=$2"; } >"$IMAGES_ENV.tmp"
  mv "$IMAGES_ENV.tmp" "$IMAGES_ENV"
}
http_status() { curl -sS -o /dev/null -w '%{http_code}' --max-time 30 "$@" || true; }
upload_blob() { # REPOSITORY FILE DIGEST
  local repo=$1 file=$2 digest=$3 location status
  [ "$(http_status -I "$API/$repo/blobs/$digest")" = 200 ] && return 0
  location=$(curl -fsS -D - -o /dev/null --max-time 30 -X POST "$API/$repo/blobs/uploads/" \
    | tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }' || true)
  [ -n "$location" ] || die "$REGISTRY refused to start an upload to $repo"
  case "$location" in /*) location="$scheme://$REGISTRY$location" ;; esac
  case "$location" in *\?*) location="$location&digest=$digest" ;; *) location="$location?digest=$digest" ;; esac
  status=$(http_status -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$file" "$location")
  [ "$status" = 201 ] || die "uploading $digest to $repo: HTTP $status"
}

[ -f "$KEA_DIST/SHA256SUMS" ] || die "no $KEA_DIST/SHA256SUMS: build the plugins with ./wasm-build.sh"
if [ "$REGISTRY" = "$KEA_REGISTRY_ADDR" ] && ! curl -fsS --max-time 2 "$API/" >/dev/null 2>&1; then
  "$KEA_ROOT/scripts/cluster.sh" registry
fi
curl -fsS --max-time 5 "$API/" >/dev/null || die "no registry answers at $API/"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '{}' >"$work/config.json"
config_digest="sha256:$(sha "$work/config.json")"
t_all=$(now)
while read -r expected module; do
  t=$(now)
  plugin="${module%.wasm}"
  file="$KEA_DIST/$module"
  [ -f "$file" ] || die "$file is listed in SHA256SUMS but missing"
  [ "$(sha "$file")" = "$expected" ] || die "$file does not match its line in SHA256SUMS (rebuild with ./wasm-build.sh)"
  repo="kea/plugins/$plugin"
  size=$(stat -c %s "$file")
  upload_blob "$repo" "$work/config.json" "$config_digest"
  upload_blob "$repo" "$file" "sha256:$expected"
  python3 - "$config_layer" "$config_digest" "$expected" "$size" "$module" "$TAG" "$SOURCE" >"$work/manifest.json" <<'PY'
import json, sys
config_layer, config_digest, wasm_sha, size, module, tag, source = sys.argv[1:]
config = {"mediaType": "application/vnd.module.wasm.config.v1+json", "digest": config_digest, "size": 2}
layers = [{"mediaType": "application/vnd.module.wasm.content.layer.v1+wasm", "digest": "sha256:" + wasm_sha,
           "size": int(size), "annotations": {"org.opencontainers.image.title": module}}]
if config_layer == "1":
    layers.insert(0, dict(config, annotations={"org.opencontainers.image.title": "config.json"}))
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": config,
            "layers": layers,
            "annotations": {"org.opencontainers.image.title": module, "org.opencontainers.image.version": tag,
                            "org.opencontainers.image.source": source}}
sys.stdout.write(json.dumps(manifest, sort_keys=True, separators=(",", ":")))
PY
  manifest_digest="sha256:$(sha "$work/manifest.json")"
  status=$(http_status -X PUT -H "Content-Type: $MANIFEST_TYPE" --data-binary "@$work/manifest.json" "$API/$repo/manifests/$TAG")
  [ "$status" = 201 ] || die "pushing the manifest of $repo:$TAG: HTTP $status"

  # Read it all back.
  curl -fsS --max-time 30 -D "$work/headers" -H "Accept: $MANIFEST_TYPE" "$API/$repo/manifests/$TAG" -o "$work/pulled.json" \
    || die "cannot read back $repo:$TAG"
  served=$(tr -d '\r' <"$work/headers" | awk 'tolower($1) == "docker-content-digest:" { print $2 }')
  [ "$served" = "$manifest_digest" ] && [ "sha256:$(sha "$work/pulled.json")" = "$manifest_digest" ] \
    || die "$repo:$TAG is served as $served, pushed as $manifest_digest"
  layer=$(python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))
assert m["schemaVersion"] == 2 and m["mediaType"] == sys.argv[2] and m["config"]["mediaType"] == sys.argv[3], "manifest"
wasm = [l for l in m["layers"] if l["mediaType"] == sys.argv[4]]
assert len(wasm) == 1, "wasm layers: %d" % len(wasm)
print(wasm[0]["digest"])' "$work/pulled.json" "$MANIFEST_TYPE" "$CONFIG_TYPE" "$WASM_TYPE") \
    || die "$repo:$TAG is not a wasm artifact"
  [ "$layer" = "sha256:$expected" ] || die "$repo:$TAG's wasm layer is $layer, SHA256SUMS says sha256:$expected"
  curl -fsS --max-time 60 "$API/$repo/blobs/$layer" -o "$work/pulled.wasm" || die "cannot read back the layer $layer of $repo"
  [ "$(sha "$work/pulled.wasm")" = "$expected" ] || die "the layer blob of $repo:$TAG does not hash to $expected"
  cmp -s "$work/pulled.wasm" "$file" || die "the layer blob of $repo:$TAG differs from $file"

  var="KEA_PLUGIN_$(echo "$plugin" | tr 'a-z-' 'A-Z_')"
  set_env "$var" "oci://$REGISTRY/$repo:$TAG"
  set_env "${var}_SHA256" "$expected"
  set_env "${var}_MANIFEST_DIGEST" "$manifest_digest"
  printf '  %-50s %8d bytes  %5ss  layer sha256:%s… manifest %s…\n' "oci://$REGISTRY/$repo:$TAG" "$size" "$(since "$t")" \
    "${expected:0:12}" "${manifest_digest:0:19}" >&2
done <"$KEA_DIST/SHA256SUMS"
log "plugins published and verified in $(since "$t_all") s; $IMAGES_ENV updated"
