#!/usr/bin/env bash
# Coverage-guided fuzzing of KEA's parsers and plugin request flows (cargo-fuzz / libFuzzer; the
# targets, their properties and how a crash becomes a regression test: fuzz/README.md).
#   scripts/fuzz.sh ci                      every target over its corpus plus a bounded number of
#                                           new executions (all targets together: ~5 minutes on
#                                           2 CPUs after the build); fails on any crash
#   scripts/fuzz.sh long [EXECUTIONS] [TARGET...]
#                                           EXECUTIONS new executions per target (default
#                                           10,000,000), one target after another; prints each
#                                           target's executions and executions per second
#   scripts/fuzz.sh build                   only build the targets
# Runs on the stable toolchain: cargo-fuzz needs `-Z` flags, allowed with RUSTC_BOOTSTRAP=1.
# Installs cargo-fuzz into ~/.cache/kea/tools when missing. One fuzzer runs at a time. New inputs
# found go to a scratch directory, never into fuzz/corpus (minimise and commit them by hand:
# fuzz/README.md). Crash reproducers are written to fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

CARGO_FUZZ_VERSION="0.13.2"
tools="$KEA_CACHE/tools"
export PATH="$tools/bin:$PATH"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${KEA_FUZZ_TARGET_DIR:-$KEA_CACHE/fuzz-target}"
# AddressSanitizer works on stable with RUSTC_BOOTSTRAP (the code under test is safe Rust, but
# the sanitizer also catches stack overflows and allocation blow-ups early, with a clear report).
sanitizer="${KEA_FUZZ_SANITIZER:-address}"
# Per-input limits: a single input slower than this, or a process above this many MB, is a bug.
limits=(-timeout=10 -rss_limit_mb=2560 -max_len=65536)

if ! [ -x "$tools/bin/cargo-fuzz" ]; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION into $tools"
  cargo install --quiet --locked --root "$tools" cargo-fuzz --version "$CARGO_FUZZ_VERSION" \
    || die "cannot install cargo-fuzz"
fi

targets() { cargo fuzz list --fuzz-dir fuzz; }

build() {
  log "building the fuzz targets (sanitizer: $sanitizer)"
  nice cargo +stable fuzz build --fuzz-dir fuzz --sanitizer "$sanitizer" -O \
    || die "the fuzz targets do not build"
}

# The dictionary (fuzz/dict/*.dict: tokens of the grammar a target parses) for a target.
dict_for() {
  case "$1" in
    cache_headers | cache_flow | auth_flow | audit_flow | validate_flow | auth_sso | sdk_parsers) echo fuzz/dict/http.dict ;;
    schema_document) echo fuzz/dict/openapi.dict ;;
    schema_params) echo fuzz/dict/params.dict ;;
    *) echo fuzz/dict/json.dict ;;
  esac
}

# run TARGET ARGS...: one fuzzer over the committed corpus; new inputs go to a scratch directory.
# Prints the final stats line "TARGET EXECUTIONS EXEC_PER_SEC SECONDS" on fd 3.
run() {
  local target=$1
  shift
  local scratch log start end status dict
  dict=$(dict_for "$target")
  scratch=$(mktemp -d)
  log="$scratch/log"
  mkdir -p "fuzz/corpus/$target" "$scratch/new"
  start=$(date +%s)
  status=0
  nice cargo +stable fuzz run --fuzz-dir fuzz --sanitizer "$sanitizer" -O "$target" \
    "$scratch/new" "fuzz/corpus/$target" -- "${limits[@]}" -dict="$dict" -print_final_stats=1 "$@" \
    >"$log" 2>&1 || status=$?
  end=$(date +%s)
  local execs rate
  execs=$(awk '/stat::number_of_executed_units/ { print $NF }' "$log" | tail -1)
  rate=$(awk '/stat::average_exec_per_sec/ { print $NF }' "$log" | tail -1)
  printf '%s %s %s %s\n' "$target" "${execs:-?}" "${rate:-?}" "$((end - start))" >&3
  if [ "$status" -ne 0 ]; then
    # The failure itself (a panic message, a sanitizer report, a timeout), then the end of the log.
    grep -m1 -A4 -E 'panicked at|ERROR: (AddressSanitizer|libFuzzer)|SUMMARY: ' "$log" >&2 || true
    printf -- '--- end of the fuzzer log:\n' >&2
    tail -n 30 "$log" >&2
    local artifact
    artifact=$(grep -oE 'fuzz/artifacts/[^ ]+' "$log" | tail -1 || true)
    rm -rf "$scratch"
    die "$target failed (exit $status); reproducer: ${artifact:-see the log above}
  reproduce: RUSTC_BOOTSTRAP=1 cargo +stable fuzz run --fuzz-dir fuzz --sanitizer $sanitizer -O $target ${artifact:-<file>}"
  fi
  rm -rf "$scratch"
}

report() {
  printf '%-18s %14s %10s %8s\n' target executions exec/s seconds
  while read -r target execs rate secs; do
    printf '%-18s %14s %10s %8s\n' "$target" "$execs" "$rate" "$secs"
  done
}

mode="${1:-ci}"
case "$mode" in
  build)
    build
    ;;
  ci)
    # Bounded per target: every corpus input once, then at most this many new executions or
    # seconds, whichever comes first (slow flow targets reach the time bound, parsers the count).
    runs="${KEA_FUZZ_CI_RUNS:-200000}"
    seconds="${KEA_FUZZ_CI_SECONDS:-15}"
    build
    stats=$(mktemp)
    began=$(date +%s)
    for target in $(targets); do
      log "fuzzing $target (corpus, then up to $runs runs / ${seconds}s)"
      run "$target" -runs="$runs" -max_total_time="$seconds" 3>>"$stats"
    done
    report <"$stats"
    log "every target passed in $(($(date +%s) - began))s"
    rm -f "$stats"
    ;;
  long)
    runs="${2:-10000000}"
    shift $(($# >= 2 ? 2 : 1))
    selected=("$@")
    [ "${#selected[@]}" -gt 0 ] || mapfile -t selected < <(targets)
    build
    stats=$(mktemp)
    for target in "${selected[@]}"; do
      log "fuzzing $target for $runs executions"
      run "$target" -runs="$runs" 3>>"$stats"
    done
    report <"$stats"
    rm -f "$stats"
    ;;
  *)
    die "usage: scripts/fuzz.sh ci | long [EXECUTIONS] [TARGET...] | build"
    ;;
esac
