#!/usr/bin/env bash
# Lints and tests KEA's Python model serving runtime (runtime/, package kea-runtime).
#
# Installs everything itself: a venv under $KEA_CACHE/venvs/runtime-<hash of the lock files> from
# runtime/locks/dev.txt (server + scikit-learn + xgboost + onnx + test tools), hash-checked, then
# the package itself; reused while the locks are unchanged. Then `ruff check`, `ruff format
# --check` and pytest (which starts real `mlserver start` processes on free ports).
#
# KEA_HEAVY=1 uses runtime/locks/dev-heavy.txt instead (adds PyTorch and TensorFlow; PyPI's torch
# brings several GB of CUDA wheels) in its own venv and runs the PyTorch/Keras tests, which are
# skipped otherwise. Extra arguments go to pytest (e.g. `-k fetch`). `--venv` only prepares the venv
# and prints its path (bench/model-server.sh uses it).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

runtime="$KEA_ROOT/runtime"
python=${KEA_PYTHON:-python3}
locks=("$runtime/locks/dev.txt")
kind=runtime
if [[ ${KEA_HEAVY:-0} == 1 ]]; then
  locks=("$runtime/locks/dev-heavy.txt")
  kind=runtime-heavy
fi

hash=$(cat "${locks[@]}" | sha256sum | cut -c1-12)
venv="$KEA_CACHE/venvs/$kind-$hash"
if [[ ! -f $venv/.complete ]]; then
  log "runtime: creating $venv from ${locks[*]#"$KEA_ROOT/"}"
  rm -rf "$venv"
  mkdir -p "$KEA_CACHE/venvs"
  "$python" -m venv "$venv"
  requirements=()
  for lock in "${locks[@]}"; do requirements+=(-r "$lock"); done
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --require-hashes --only-binary :all: "${requirements[@]}" ||
    die "runtime: installing ${locks[*]} failed"
  touch "$venv/.complete"
fi
# The package itself (no dependencies: the lock has them; setuptools comes from the lock too).
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  --no-deps --no-build-isolation -e "$runtime" || die "runtime: installing kea-runtime failed"

if [[ ${1:-} == --venv ]]; then
  echo "$venv"
  exit 0
fi
export PATH="$venv/bin:$PATH"
cd "$runtime"
log "runtime: ruff check"
ruff check .
log "runtime: ruff format --check"
ruff format --check .
log "runtime: pytest"
exec pytest -p no:cacheprovider tests "$@"
