#!/bin/bash
# kea-build: builds one model image in a Pod, without a Docker daemon, and pushes it. The entrypoint of
# kea/builder (installed as /usr/local/bin/kea-build); the operator runs it in a Kubernetes Job.
#   kea-build --from IMAGE --context DIR --dest REF [--insecure-registry HOST:PORT]...   (or --opt=VALUE)
#     --from     the runtime image, by digest (10.250.0.1:15000/kea/runtime-sklearn@sha256:...); passed to
#                DIR/Dockerfile as --build-arg RUNTIME_IMAGE
#     --context  the build context: DIR/Dockerfile and the files it copies (a ConfigMap mounted at
#                /workspace: its entries are symlinks into ..data/, so they are copied out, dereferenced,
#                before the build)
#     --dest     where to push: 10.250.0.1:15000/kea/models/<namespace>-<model>:<version>
#     --insecure-registry HOST:PORT   a plain-HTTP registry (pulls and pushes); repeatable
# On success the pushed manifest digest (sha256:...) is the only content of the termination log
# ($KEA_TERMINATION_LOG, default /dev/termination-log), so the operator reads it from the Pod status
# (terminationMessagePolicy: File). On failure it exits non-zero with one line there:
#   "<stage> failed: <reason>", stage one of: usage, context, pull, build, push.
# The Dockerfile is expected to be FROM ${RUNTIME_IMAGE} + COPY only: with no RUN step nothing is
# executed in the image, so buildah needs no mounts, namespaces or privileges beyond file ownership
# (vfs storage, chroot isolation; see images/README.md for the Pod security settings).
set -euo pipefail

TERMINATION_LOG="${KEA_TERMINATION_LOG:-/dev/termination-log}"
STORAGE="${KEA_BUILD_STORAGE:-/var/lib/containers/storage}"
WORK="${KEA_BUILD_WORK:-/tmp/kea-build}"
# The image is a function of the context and the base: fixed dates (like scripts/images.sh), no
# build-host label.
TIMESTAMP="${KEA_BUILD_TIMESTAMP:-0}"

stage=usage
fail() { # REASON: one line for the operator, the details stay in the container log
  local line; line="$stage failed: $(printf '%s' "$*" | tr '\n' ' ' | sed 's/  */ /g; s/ $//' | cut -c1-1000)"
  echo "kea-build: $line" >&2
  printf '%s' "$line" >"$TERMINATION_LOG" 2>/dev/null || true
  exit 1
}
last_error() { # LOGFILE -> its last meaningful line (buildah's "Error: ..." when there is one)
  local e; e=$(grep -E '^(Error|error)[: ]' "$1" | tail -n 1 || true)
  [ -n "$e" ] || e=$(grep -v '^[[:space:]]*$' "$1" | tail -n 1 || true)
  printf '%s' "${e:-no output}"
}
usage() { fail "$* (usage: kea-build --from IMAGE --context DIR --dest REF [--insecure-registry HOST:PORT])"; }

from="" context="" dest="" insecure=()
while [ $# -gt 0 ]; do
  case "$1" in --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}" ;; esac # --opt=VALUE as --opt VALUE
  case "$1" in
    --from|--context|--dest|--insecure-registry) [ $# -ge 2 ] && [ -n "$2" ] || usage "$1 needs a value" ;;&
    --from) from=$2; shift 2 ;;
    --context) context=$2; shift 2 ;;
    --dest) dest=$2; shift 2 ;;
    --insecure-registry) insecure+=("$2"); shift 2 ;;
    *) usage "unknown argument $1" ;;
  esac
done
[ -n "$from" ] && [ -n "$context" ] && [ -n "$dest" ] || usage "--from, --context and --dest are required"

t0=$(date +%s.%N)
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
mkdir -p "$WORK" "$STORAGE" || fail "cannot create $WORK and $STORAGE"
# A registries.conf of our own: the named registries are plain HTTP, everything else keeps the
# image's defaults (no short-name search: every reference here is fully qualified).
conf="$WORK/registries.conf"
{
  echo 'unqualified-search-registries = []'
  for r in "${insecure[@]}"; do printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$r"; done
} >"$conf"
export CONTAINERS_REGISTRIES_CONF="$conf"
export BUILDAH_ISOLATION=chroot
# Without CAP_SYS_ADMIN, buildah (containers/storage's unshare.MaybeReexecUsingUserNamespace) treats
# even root as rootless and re-executes itself in a new user namespace, which the RuntimeDefault
# seccomp profile and the dropped capabilities refuse ("unshare(CLONE_NEWUSER): Operation not
# permitted"). Nothing here needs that namespace (no RUN, vfs, chroot), so tell it that it already is in
# one, as it tells its own re-executed child; it then runs as the root it is, in rootless mode: its
# per-user directories (the blob-info cache, which lets the push reuse the pulled layers' compressed
# digests instead of compressing them again) go under $WORK.
cap_eff=$(awk '$1 == "CapEff:" { print $2 }' /proc/self/status)
if (( ((16#${cap_eff:-0}) >> 21 & 1) == 0 )); then # bit 21: CAP_SYS_ADMIN
  export _CONTAINERS_USERNS_CONFIGURED=done _CONTAINERS_ROOTLESS_UID=65534 _CONTAINERS_ROOTLESS_GID=65534
  export HOME="$WORK/home" XDG_DATA_HOME="$WORK/home/.local/share" XDG_CONFIG_HOME="$WORK/home/.config" XDG_RUNTIME_DIR="$WORK/run"
  mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME" "$XDG_RUNTIME_DIR"
fi
B=(buildah --storage-driver vfs --root "$STORAGE" --runroot "$WORK/run")

# --- context: a private, writable copy with the symlinks resolved --------------------------------
stage=context
[ -d "$context" ] || fail "$context is not a directory"
[ -f "$context/Dockerfile" ] || fail "no Dockerfile in $context"
ctx="$WORK/context"
rm -rf "$ctx" && mkdir -p "$ctx"
for f in "$context"/* "$context"/.[!.]*; do
  [ -e "$f" ] || continue
  cp -RL "$f" "$ctx/" || fail "cannot copy $(basename "$f") from $context"
done
# Every COPY/ADD source must be there: a missing file is the context's fault, not the build's. (Shell
# form, one line, from the context: the JSON form, --from=stage and URLs are left to buildah.)
while read -r src; do
  [ -e "$ctx/$src" ] || fail "$src (named in the Dockerfile) is not in $context"
done < <(awk '(toupper($1) == "COPY" || toupper($1) == "ADD") && $0 !~ /--from=|\[|:\/\// {
    for (i = 2; i < NF; i++) if ($i !~ /^--/ && $i !~ /[*?]/) print $i }' "$ctx/Dockerfile")

# --- pull the base: its own stage, so a missing image or an unreachable registry says so ------------
stage=pull
"${B[@]}" pull -q "$from" >"$WORK/pull.log" 2>&1 || { cat "$WORK/pull.log" >&2; fail "$from: $(last_error "$WORK/pull.log")"; }
echo "kea-build: pulled $from in $(since "$t0") s" >&2

# --- build: FROM + COPY, no RUN, nothing executed in the image ---------------------------------------
stage=build
t=$(date +%s.%N)
"${B[@]}" bud --pull=never --isolation chroot --layers=false --timestamp "$TIMESTAMP" --identity-label=false \
  --format oci --build-arg "RUNTIME_IMAGE=$from" -f "$ctx/Dockerfile" -t "$dest" "$ctx" >"$WORK/build.log" 2>&1 \
  || { cat "$WORK/build.log" >&2; fail "$(last_error "$WORK/build.log")"; }
echo "kea-build: built $dest in $(since "$t") s" >&2

# --- push, and report the manifest digest the registry now serves -----------------------------------
stage=push
t=$(date +%s.%N)
rm -f "$WORK/digest"
"${B[@]}" push -q --digestfile "$WORK/digest" "$dest" "docker://$dest" >"$WORK/push.log" 2>&1 \
  || { cat "$WORK/push.log" >&2; fail "$dest: $(last_error "$WORK/push.log")"; }
digest=$(cat "$WORK/digest" 2>/dev/null || true)
[[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]] || fail "buildah push wrote no digest for $dest"
echo "kea-build: pushed $dest@$digest in $(since "$t") s (total $(since "$t0") s)" >&2
printf '%s' "$digest" >"$TERMINATION_LOG" || { echo "kea-build: cannot write $TERMINATION_LOG" >&2; exit 1; }
echo "$digest"
