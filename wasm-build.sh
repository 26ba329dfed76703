#!/usr/bin/env bash
# Builds every KEA plugin for wasm32-wasip1 (cargo profile `wasm`: fat LTO, one codegen unit), optimises with wasm-opt when available,
# and writes dist/<plugin>.wasm plus dist/SHA256SUMS. Installs the Rust target if it is missing.
#   ./wasm-build.sh            all plugins
#   ./wasm-build.sh audit      only the named ones
#   ./wasm-build.sh trivial    the benchmark's floor filter (bench/trivial-filter)
set -euo pipefail
cd "$(dirname "$0")"
source scripts/lib.sh

# A plugin is a crate under plugins/ with a proxy-wasm adapter (src/wasm.rs); its package is
# kea-<dir> and its module dist/<dir>.wasm, except the combined module (plugins/suite), which is
# dist/kea.wasm. Crates without an adapter are libraries only and are not built here.
plugins=("$@")
if [ ${#plugins[@]} -eq 0 ]; then
  for dir in plugins/*/; do
    [ -f "$dir/src/wasm.rs" ] && plugins+=("$(basename "$dir")")
  done
fi

rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1 || die "cannot install the wasm32-wasip1 target with rustup"

# One cargo invocation per plugin: features of shared crates are resolved per plugin, so one
# plugin's dependencies (validate's jsonschema turns on serde_json's float_roundtrip) do not grow
# the others. Crates with the same features are built once and reused.
for p in "${plugins[@]}"; do
  log "building $p for wasm32-wasip1 (profile wasm)"
  cargo build --profile wasm --target wasm32-wasip1 --locked -p "kea-$p"
done

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
module_name() { if [ "$1" = suite ]; then echo kea; else echo "$1"; fi; }
mkdir -p dist
for p in "${plugins[@]}"; do
  built="$target_dir/wasm32-wasip1/wasm/kea_${p//-/_}.wasm"
  [ -f "$built" ] || die "expected $built"
  out=$(module_name "$p")
  if command -v wasm-opt >/dev/null; then
    # Rust enables bulk-memory, sign-ext, mutable-globals and nontrapping float-to-int by default
    # for wasm32-wasip1; wasm-opt must accept them.
    wasm-opt -O3 --strip-debug --strip-producers \
      --enable-bulk-memory --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int \
      --enable-multivalue --enable-reference-types \
      "$built" -o "dist/$out.wasm.tmp"
    mv "dist/$out.wasm.tmp" "dist/$out.wasm"
  else
    log "wasm-opt not found: dist/$out.wasm is not optimised (install binaryen)"
    cp "$built" "dist/$out.wasm"
  fi
done
# SHA256SUMS lists what KEA ships (published, put in images); the benchmark's floor filter is not.
(cd dist && find . -maxdepth 1 -name '*.wasm' ! -name trivial.wasm -printf '%P\n' | sort | xargs sha256sum > SHA256SUMS)
for p in "${plugins[@]}"; do
  out=$(module_name "$p")
  printf '  dist/%-14s %8d bytes  (unoptimised %d)\n' "$out.wasm" "$(stat -c %s "dist/$out.wasm")" \
    "$(stat -c %s "$target_dir/wasm32-wasip1/wasm/kea_${p//-/_}.wasm")"
done
