#!/usr/bin/env bash
# Builds the browser validator — the validate plugin's own engine (web/validator) for
# wasm32-unknown-unknown with wasm-bindgen — into dist/web/kea_validator.js and
# dist/web/kea_validator_bg.wasm, and prints their raw and gzipped sizes.
#   scripts/web-build.sh
# Installs what it needs when missing: the wasm32-unknown-unknown Rust target, wasm-bindgen-cli at
# exactly the wasm-bindgen version in Cargo.lock (into ~/.cache/kea/wasm-bindgen-<version>, once per
# version), Debian's binaryen (wasm-opt). Cargo profile `web`: optimised for size, fat LTO.
# Fast when nothing changed: cargo finds nothing to do, and wasm-bindgen + wasm-opt only run when
# the built module differs from the one dist/web was made from.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

target=wasm32-unknown-unknown
out=dist/web

rustup target list --installed | grep -qx "$target" || rustup target add "$target" \
  || die "cannot install the $target target with rustup"

# The CLI must be the library's version: wasm-bindgen refuses a module built by another one.
versions=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print }' Cargo.lock)
[ "$(printf '%s\n' "$versions" | grep -c .)" -eq 1 ] \
  || die "expected exactly one wasm-bindgen version in Cargo.lock, found: ${versions:-none}"
version=$versions
bindgen_root="$KEA_CACHE/wasm-bindgen-$version"
bindgen="$bindgen_root/bin/wasm-bindgen"
if ! { [ -x "$bindgen" ] && [ "$("$bindgen" --version 2>/dev/null)" = "wasm-bindgen $version" ]; }; then
  log "installing wasm-bindgen-cli $version into $bindgen_root"
  # Its own target directory (removed afterwards): a several-minute build must not hold the
  # workspace's build lock.
  build="$KEA_CACHE/wasm-bindgen-$version.build"
  if ! CARGO_TARGET_DIR="$build" cargo install --quiet --locked --root "$bindgen_root" \
      wasm-bindgen-cli --version "$version"; then
    # The crate's lock file can name versions this registry no longer serves (a yanked
    # webpki-roots, for 0.2.130): resolve again, still wasm-bindgen-cli $version.
    log "wasm-bindgen-cli $version's Cargo.lock does not resolve here; installing it with fresh dependency versions"
    CARGO_TARGET_DIR="$build" cargo install --quiet --root "$bindgen_root" \
      wasm-bindgen-cli --version "$version" || die "cannot install wasm-bindgen-cli $version"
  fi
  rm -rf "$build"
  [ "$("$bindgen" --version)" = "wasm-bindgen $version" ] || die "$bindgen is not wasm-bindgen $version"
fi

if ! command -v wasm-opt >/dev/null; then
  log "installing Debian packages: binaryen"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends binaryen >/dev/null
fi

log "building kea-web-validator for $target (profile web)"
cargo build --profile web --target "$target" --locked -p kea-web-validator

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
built="$target_dir/$target/web/kea_web_validator.wasm"
[ -f "$built" ] || die "expected $built"
mkdir -p "$out"
# What dist/web was made from: the module's and this script's digests, the tools' versions.
source_id="$(sha256sum "$built" scripts/web-build.sh | cut -d' ' -f1 | tr '\n' ' ')wasm-bindgen $version $(wasm-opt --version)"
if [ -f "$out/kea_validator.js" ] && [ -f "$out/kea_validator_bg.wasm" ] \
    && [ "$(cat "$out/.source" 2>/dev/null)" = "$source_id" ]; then
  log "$out is up to date"
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # wasm-opt runs on rustc's module, before wasm-bindgen: Debian 12's binaryen (108) mixes up the
  # two tables of a wasm-bindgen module (it exports the function table as the externref table,
  # and the page fails at start). wasm-bindgen only adds glue and drops its descriptors after.
  # The features are those rustc enables by default for wasm32-unknown-unknown.
  wasm-opt -Oz --strip-debug --strip-producers \
    --enable-bulk-memory --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int \
    --enable-multivalue --enable-reference-types \
    "$built" -o "$tmp/kea_web_validator.wasm"
  "$bindgen" --target web --no-typescript --remove-name-section --remove-producers-section \
    --out-dir "$tmp/out" --out-name kea_validator "$tmp/kea_web_validator.wasm"
  mv "$tmp/out/kea_validator_bg.wasm" "$out/kea_validator_bg.wasm"
  mv "$tmp/out/kea_validator.js" "$out/kea_validator.js"
  (cd "$out" && sha256sum kea_validator.js kea_validator_bg.wasm > SHA256SUMS)
  printf '%s\n' "$source_id" > "$out/.source"
fi

total=0
for f in kea_validator_bg.wasm kea_validator.js; do
  raw=$(stat -c %s "$out/$f")
  gz=$(gzip -9c "$out/$f" | wc -c)
  total=$((total + gz))
  printf '  %-31s %9d bytes   gzip -9: %8d bytes\n' "$out/$f" "$raw" "$gz"
done
printf '  %-31s %9s         gzip -9: %8d bytes (%d KiB)\n' "total" "" "$total" "$((total / 1024))"
