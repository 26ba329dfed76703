#!/usr/bin/env bash
# A local single-node Kubernetes v1.20.2 cluster with a real kubelet, for KEA's tests and for newcomers.
#   scripts/cluster.sh up         start it (idempotent: says so when it already runs healthy); prints timings
#   scripts/cluster.sh down       stop it and undo every change it made to the machine; prints what is left
#   scripts/cluster.sh status     which components run (exit 0 only when all of them do)
#   scripts/cluster.sh registry   start only the image registry (scripts/images.sh does this itself)
#   scripts/cluster.sh restart C  kill component C (e.g. kube-apiserver) and start it again (failure drills)
#   scripts/cluster.sh kill-containers   kill every container the kubelet runs (failure drills)
# Needs root. One cluster per machine (fixed link names and ports); `up` and `down` take a lock.
#
# Components (all started here, none as a system service): Debian's containerd (private socket, CRI,
# cgroupfs, bridge CNI) and docker-registry, Debian's etcd, and kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy (iptables mode) from scripts/kube-build.sh. No cluster DNS: address
# Services by ClusterIP or the KUBERNETES_SERVICE_HOST-style environment variables.
#
# Addresses, all inside the machine:
#   node       10.250.0.1 on the veth pair kea-node0/kea-node1 (the kubelet's node IP; the API server)
#   pods       10.244.0.0/24 on the bridge kea-cni0
#   services   10.96.0.0/16; the `kubernetes` Service 10.96.0.1:443 -> 10.250.0.1:16443, so in-cluster
#              clients (service-account token + ca.crt) work from Pods
#   registry   10.250.0.1:15000 (plain HTTP): containerd pulls 10.250.0.1:15000/... from it, and Pods
#              reach it too (the operator checks plugin artifacts there, gateways download modules)
#   loopback   etcd 127.0.0.1:12379-12380, component health ports 127.0.0.1:20248-20259
#   kubelet    10.250.0.1:20250 (client certificates only: the API server's; no anonymous access)
#
# Files (KEA_CLUSTER_HOME, default $KEA_CACHE/cluster):
#   env          KUBECONFIG=..., KEA_REGISTRY=10.250.0.1:15000, ... (KEY=VALUE lines; written by `up`)
#   kubeconfig   https://10.250.0.1:16443, CA = the API server's self-signed certificate (it covers
#                10.250.0.1, 10.96.0.1 and kubernetes.default.svc), an admin token in system:masters
#   logs/        one log per component (the previous run's as *.log.1)
#   containerd/  containerd's content and snapshots, kept between runs so image pulls are warm
#   run/         everything else (etcd data, certificates, kubelet root, CNI IPAM): fresh on every `up`
#   baseline/    the machine's state before the first `up` (sysctls, netns, links, nft tables, a few
#                directories the kubelet and containerd use); `down` puts it back, then deletes it
# The registry keeps its data in $KEA_CACHE/registry, so pushed images survive `down`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

H="${KEA_CLUSTER_HOME:-$KEA_CACHE/cluster}"
RUN="$H/run"
LOGS="$H/logs"
PIDS="$H/pids"
BASE="$H/baseline"
CTD_ROOT="$H/containerd"
SOCK="$RUN/containerd.sock"
KUBECONFIG_FILE="$H/kubeconfig"
ENV_FILE="$H/env"
REGISTRY_DATA="$KEA_CACHE/registry"
NODE_NAME=kea-node
NODE_IP=10.250.0.1
REGISTRY_ADDR="$KEA_REGISTRY_ADDR"
[ "${REGISTRY_ADDR%:*}" = "$NODE_IP" ] || die "KEA_REGISTRY_ADDR ($REGISTRY_ADDR) must be on the node address $NODE_IP"
NODE_LINK=kea-node0
NODE_PEER=kea-node1
BRIDGE=kea-cni0
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
API_PORT=16443
API_URL="https://$NODE_IP:$API_PORT"
ETCD_PORT=12379
KUBELET_PORT=20250
KUBELET_HEALTHZ_PORT=20248
PROXY_HEALTHZ_PORT=20256
PROXY_METRICS_PORT=20249
KCM_PORT=20257
SCHEDULER_PORT=20259
PAUSE_IMAGE=localhost/pause:3.2
IMAGES_ENV="$KEA_CACHE/images/images.env"
KUBECTL="$KEA_KUBE_BIN/kubectl"
# Started in this order, stopped in the reverse one (the registry is separate: it outlives `up`).
COMPONENTS=(containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
# The kubelet rewrites these at start (setupKernelTunables); `up` puts them back right after.
KERNEL_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
# The bridge plugin sets ip_forward, kube-proxy route_localnet; they stay until `down`.
NET_SYSCTLS=(net.ipv4.ip_forward net.ipv4.conf.all.route_localnet net.ipv6.conf.all.forwarding
  net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables)
# Fixed paths the kubelet (device-plugin socket, pod logs), CNI (result cache), containerd (shim
# sockets) and runc may create whatever their configuration says; `down` returns them to the baseline.
FOREIGN_DIRS=(/var/lib/kubelet /var/log/pods /var/log/containers /var/lib/cni /run/containerd /run/netns /run/mount
  /run/runc /run/kubernetes /var/lib/containerd /opt/containerd /etc/cni /etc/kubernetes /usr/libexec/kubernetes)

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
need_root() { [ "$(id -u)" -eq 0 ] || die "scripts/cluster.sh needs root (containerd, kubelet, iptables, mounts)"; }

# The lock: `up` and `down` never overlap. Started daemons must not inherit it (9>&- below).
take_lock() {
  mkdir -p "$H"
  exec 9>"$H/lock"
  if ! flock -n 9; then
    log "waiting for another scripts/cluster.sh to finish"
    flock -w 900 9 || die "another scripts/cluster.sh holds $H/lock"
  fi
}

# ---------------------------------------------------------------------------------------------------
# Processes. A pid file counts only while its process still is ours: its command line names $H.
pid_of() { local f="$PIDS/$1.pid"; [ -s "$f" ] && cat "$f"; }
# Running and not a zombie (nobody may reap our daemons quickly once this script has exited).
running() { local st; st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) && [ -n "$st" ] && [ "$st" != Z ]; }
ours() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -F -- "$H/" >/dev/null; }
alive() { local p; p=$(pid_of "$1") || return 1; running "$p" && ours "$p"; }
start() { # NAME COMMAND...: in the background, log in $LOGS/NAME.log
  local name=$1; shift
  [ ! -f "$LOGS/$name.log" ] || mv -f "$LOGS/$name.log" "$LOGS/$name.log.1"
  nohup "$@" >"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$PIDS/$name.pid"
}
stop() { # NAME...: SIGTERM all, up to 10 s, then SIGKILL
  local name p pids=() i
  for name in "$@"; do
    if alive "$name"; then pids+=("$(pid_of "$name")"); kill "$(pid_of "$name")" 2>/dev/null || true; fi
  done
  for i in $(seq 100); do
    local left=0
    for p in "${pids[@]}"; do running "$p" && left=1; done
    [ $left = 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do running "$p" && kill -9 "$p" 2>/dev/null; done
  for name in "$@"; do rm -f "$PIDS/$name.pid"; done
}
# Pids of processes with an argument containing TEXT.
pids_with() { grep -lzF -- "$1" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3 | grep -vx "$$" || true; }
# Our daemons and containerd's shims still running (by argument: a path under $H).
our_processes() {
  local p comm
  for p in $(pids_with "$H/"); do
    comm=$(cat "/proc/$p/comm" 2>/dev/null) || continue
    case "$comm" in containerd*|etcd|kube-*|kubelet|docker-registry|runc) echo "$p" ;; esac
  done
}
# wait_until SECONDS WHAT LOG COMMAND...: poll COMMAND; on timeout show LOG's tail and fail.
wait_until() {
  local limit=$1 what=$2 logname=$3; shift 3
  local deadline; deadline=$(awk -v a="$(now)" -v l="$limit" 'BEGIN { printf "%.0f", a + l }')
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      [ -z "$logname" ] || { tail -n 25 "$LOGS/$logname.log" >&2 2>/dev/null || true; }
      die "$what not ready after ${limit}s (logs: $LOGS/); scripts/cluster.sh down undoes the partial cluster"
    fi
    sleep 0.25
  done
}

# (kubectl's discovery cache goes under run/, not ~/.kube)
kube() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" --cache-dir "$RUN/kubectl-cache" --request-timeout=5s "$@"; }
admin_token() { cat "$RUN/admin-token" 2>/dev/null; }
api_get() { curl -fsS --max-time 3 --cacert "$RUN/apiserver/apiserver.crt" -H "Authorization: Bearer $(admin_token)" "$API_URL$1"; }
api_ready() { [ "$(api_get /readyz 2>/dev/null)" = ok ]; }
node_ready() {
  [ "$(kube get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}
registry_up() { alive registry && curl -fsS --max-time 2 "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1; }
healthy() {
  local c
  for c in "${COMPONENTS[@]}"; do alive "$c" || return 1; done
  registry_up && api_ready && node_ready
}

# ---------------------------------------------------------------------------------------------------
# The registry: Debian's docker-registry (distribution 2.8), plain HTTP on the node address, data kept in
# $KEA_CACHE/registry.
# The node's address lives on a veth pair made here (this kernel has no dummy driver): traffic to it
# never leaves the machine. The registry listens there too, so it may exist before the cluster.
node_link_up() {
  ip link show "$NODE_LINK" >/dev/null 2>&1 && return 0
  ip link add "$NODE_LINK" type veth peer name "$NODE_PEER"
  ip addr add "$NODE_IP/32" dev "$NODE_LINK"
  ip link set "$NODE_PEER" up
  ip link set "$NODE_LINK" up
}

start_registry() {
  mkdir -p "$LOGS" "$PIDS" "$REGISTRY_DATA"
  node_link_up
  registry_up && return 0
  stop registry
  if curl -fsS --max-time 2 "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1; then
    die "something else answers on $REGISTRY_ADDR; stop it first"
  fi
  command -v docker-registry >/dev/null || die "docker-registry missing: run scripts/install-deps.sh cluster"
  cat >"$H/registry.yml" <<YAML
version: 0.1
log: {level: info, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $REGISTRY_DATA}
  delete: {enabled: true}
  cache: {blobdescriptor: inmemory}
http: {addr: $REGISTRY_ADDR, secret: kea-local-registry}
health: {storagedriver: {enabled: false}}
YAML
  start registry docker-registry serve "$H/registry.yml"
  wait_until 15 "the registry on $REGISTRY_ADDR" registry curl -fsS --max-time 1 "http://$REGISTRY_ADDR/v2/"
}

# ---------------------------------------------------------------------------------------------------
# The machine's state before the first `up`, so `down` can put it back exactly.
dir_key() { echo "$1" | tr '/' '_'; }
sysctl_keys() { printf '%s\n' "${KERNEL_SYSCTLS[@]}" "${NET_SYSCTLS[@]}"; }
record_baseline() {
  [ -f "$BASE/complete" ] && return 0
  rm -rf "$BASE"; mkdir -p "$BASE/dirs"
  local k v d
  for k in $(sysctl_keys); do v=$(sysctl -n "$k" 2>/dev/null) && echo "$k=$v"; done >"$BASE/sysctl"
  ls -A /run/netns 2>/dev/null >"$BASE/netns" || true
  ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | sort >"$BASE/links"
  if command -v nft >/dev/null; then nft list tables 2>/dev/null | sort >"$BASE/nft-tables" || true; fi
  for d in "${FOREIGN_DIRS[@]}"; do
    if [ -e "$d" ]; then ls -A "$d" >"$BASE/dirs/$(dir_key "$d").list"; else touch "$BASE/dirs/$(dir_key "$d").absent"; fi
  done
  if [ -n "$(our_chains)" ]; then
    log "warning: KUBE-/CNI- iptables chains exist before the cluster starts; \`down\` removes all of them"
  fi
  touch "$BASE/complete"
}

# ---------------------------------------------------------------------------------------------------
# Start.
write_containerd_config() {
  mkdir -p "$CTD_ROOT/root" "$RUN/containerd" "$RUN/cni/net.d" "$RUN/cni/ipam"
  cat >"$RUN/containerd.toml" <<TOML
version = 2
root = "$CTD_ROOT/root"
state = "$RUN/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$CTD_ROOT/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        Root = "$RUN/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RUN/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$REGISTRY_ADDR"]
    endpoint = ["http://$REGISTRY_ADDR"]
TOML
  cat >"$RUN/cni/net.d/10-kea.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "kea-pods",
  "plugins": [
    {
      "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$RUN/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
JSON
}

make_credentials() {
  local pki="$RUN/pki"
  mkdir -p "$pki" "$RUN/apiserver"
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  # The API server's client certificate towards the kubelet (which accepts nothing else).
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=kea-kubelet-client-ca" -keyout "$pki/kubelet-client-ca.key" -out "$pki/kubelet-client-ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/O=system:masters/CN=kube-apiserver" \
    -keyout "$pki/apiserver-kubelet-client.key" -out "$pki/apiserver-kubelet-client.csr" 2>/dev/null
  openssl x509 -req -days 3650 -in "$pki/apiserver-kubelet-client.csr" -CA "$pki/kubelet-client-ca.crt" \
    -CAkey "$pki/kubelet-client-ca.key" -CAcreateserial -out "$pki/apiserver-kubelet-client.crt" 2>/dev/null
  od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$RUN/admin-token"
  echo "$(admin_token),admin,admin,\"system:masters\"" >"$RUN/tokens.csv"
  chmod 600 "$pki"/*.key "$RUN/admin-token" "$RUN/tokens.csv"
}

write_kubeconfig() {
  local ca; ca=$(base64 -w0 <"$RUN/apiserver/apiserver.crt")
  umask 077
  cat >"$KUBECONFIG_FILE.tmp" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: kea
  cluster:
    server: $API_URL
    certificate-authority-data: $ca
users:
- name: kea-admin
  user:
    token: $(admin_token)
contexts:
- name: kea
  context: {cluster: kea, user: kea-admin, namespace: default}
current-context: kea
YAML
  mv "$KUBECONFIG_FILE.tmp" "$KUBECONFIG_FILE"
  umask 022
}

write_kubelet_config() {
  mkdir -p "$RUN/kubelet/root" "$RUN/kubelet/pki" "$RUN/kubelet/volume-plugins"
  cat >"$RUN/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $RUN/pki/kubelet-client-ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failSwapOn: false
protectKernelDefaults: false
makeIPTablesUtilChains: true
# A small disk must not evict the tests' pods or garbage-collect the pause image.
evictionHard: {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
resolvConf: /etc/resolv.conf
# Node status (Ready) within 2 s of a change, not 10: \`up\` waits for it, tests see it sooner.
nodeStatusUpdateFrequency: 2s
YAML
}

write_env() {
  cat >"$ENV_FILE.tmp" <<ENV
KUBECONFIG=$KUBECONFIG_FILE
KEA_REGISTRY=$REGISTRY_ADDR
KEA_KUBECTL=$KUBECTL
KEA_CLUSTER_API=$API_URL
KEA_CLUSTER_NODE=$NODE_NAME
KEA_CLUSTER_NODE_IP=$NODE_IP
KEA_CLUSTER_POD_CIDR=$POD_CIDR
KEA_CLUSTER_SERVICE_CIDR=$SERVICE_CIDR
KEA_CLUSTER_LOGS=$LOGS
ENV
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

kubernetes_endpoint() {
  [ "$(kube get endpoints kubernetes -o 'jsonpath={.subsets[0].addresses[0].ip}:{.subsets[0].ports[0].port}')" = "$NODE_IP:$API_PORT" ]
}
default_sa_token() { [ -n "$(kube get serviceaccount default -o 'jsonpath={.secrets[0].name}')" ]; }
# (grep reads all its input: `grep -q` leaving early would fail the pipeline under pipefail)
service_rule() { iptables -t nat -S KUBE-SERVICES 2>/dev/null | grep -F -- "-d $API_SERVICE_IP/32" >/dev/null; }
service_path() { curl -fsS --max-time 2 --cacert "$RUN/apiserver/apiserver.crt" -H "Authorization: Bearer $(admin_token)" "https://$API_SERVICE_IP/version"; }

cmd_up() {
  need_root
  [ ${#SOCK} -le 95 ] || die "KEA_CLUSTER_HOME is too long for containerd's unix sockets ($SOCK)"
  take_lock
  local t0 t; t0=$(now)
  mkdir -p "$LOGS" "$PIDS"
  if healthy; then
    write_env
    log "the cluster is already up and healthy ($API_URL, node $NODE_NAME); env: $ENV_FILE"
    return 0
  fi
  # (the node link alone may be the registry's, started by scripts/images.sh before the cluster)
  if [ -d "$RUN" ] || [ -n "$(ls -A "$PIDS" 2>/dev/null | grep -v '^registry.pid$')" ] \
      || { ip link show "$NODE_LINK" >/dev/null 2>&1 && ! registry_up; }; then
    log "a previous cluster is not healthy: undoing it first"
    teardown
  fi

  t=$(now)
  # (9>&-: a long child, e.g. the Kubernetes build, must not keep the lock if this script is killed)
  "$KEA_ROOT/scripts/install-deps.sh" cluster 9>&-
  # The sandbox (pause) image: built offline by scripts/images.sh, imported into containerd below.
  "$KEA_ROOT/scripts/images.sh" pause 9>&-
  local pause_archive
  pause_archive=$(sed -n 's/^KEA_IMAGE_PAUSE_ARCHIVE=//p' "$IMAGES_ENV" 2>/dev/null || true)
  [ -f "$pause_archive" ] || die "no pause image archive (scripts/images.sh pause should have written it)"
  start_registry
  log "prerequisites: $(since "$t") s"

  t=$(now)
  record_baseline
  rm -rf "$RUN"
  mkdir -p "$RUN"
  node_link_up

  write_containerd_config
  start containerd containerd --config "$RUN/containerd.toml"
  make_credentials
  start etcd etcd --name=kea --data-dir="$RUN/etcd" --logger=zap \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-advertise-peer-urls="http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster="kea=http://127.0.0.1:$((ETCD_PORT + 1))"
  wait_until 20 containerd containerd test -S "$SOCK"
  wait_until 20 containerd containerd ctr --address "$SOCK" version
  ctr --address "$SOCK" -n k8s.io images import --all-platforms "$pause_archive" >/dev/null
  wait_until 30 etcd etcd curl -fsS --max-time 1 "http://127.0.0.1:$ETCD_PORT/health"

  start kube-apiserver "$KEA_KUBE_BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port="$API_PORT" --insecure-port=0 \
    --cert-dir="$RUN/apiserver" --token-auth-file="$RUN/tokens.csv" --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$RUN/pki/sa.pub" \
    --service-account-signing-key-file="$RUN/pki/sa.key" --service-cluster-ip-range="$SERVICE_CIDR" \
    --kubelet-client-certificate="$RUN/pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$RUN/pki/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP --profiling=false
  # The serving certificate is written at start, well before the server is ready: the other components
  # start now and wait for it themselves.
  wait_until 60 "kube-apiserver's certificate" kube-apiserver test -s "$RUN/apiserver/apiserver.crt"
  openssl x509 -in "$RUN/apiserver/apiserver.crt" -noout -ext subjectAltName 2>/dev/null \
    | grep "IP Address:$API_SERVICE_IP" >/dev/null || die "the API server's certificate does not cover $API_SERVICE_IP"
  write_kubeconfig

  start kube-controller-manager "$KEA_KUBE_BIN/kube-controller-manager" --kubeconfig="$KUBECONFIG_FILE" \
    --leader-elect=false --service-account-private-key-file="$RUN/pki/sa.key" \
    --root-ca-file="$RUN/apiserver/apiserver.crt" --controllers='*,-csrsigning' \
    --use-service-account-credentials=false --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --port=0 \
    --cert-dir="$RUN/kube-controller-manager" --flex-volume-plugin-dir="$RUN/kube-controller-manager/flexvolume" \
    --profiling=false
  start kube-scheduler "$KEA_KUBE_BIN/kube-scheduler" --kubeconfig="$KUBECONFIG_FILE" --leader-elect=false \
    --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --port=0 --cert-dir="$RUN/kube-scheduler" \
    --profiling=false
  write_kubelet_config
  start kubelet "$KEA_KUBE_BIN/kubelet" --config="$RUN/kubelet/config.yaml" --kubeconfig="$KUBECONFIG_FILE" \
    --root-dir="$RUN/kubelet/root" --cert-dir="$RUN/kubelet/pki" --volume-plugin-dir="$RUN/kubelet/volume-plugins" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" \
    --container-runtime=remote --container-runtime-endpoint="unix://$SOCK" --runtime-request-timeout=5m \
    --pod-infra-container-image="$PAUSE_IMAGE" --v=2
  start kube-proxy "$KEA_KUBE_BIN/kube-proxy" --kubeconfig="$KUBECONFIG_FILE" --hostname-override="$NODE_NAME" \
    --proxy-mode=iptables --cluster-cidr="$POD_CIDR" --bind-address="$NODE_IP" \
    --nodeport-addresses="$NODE_IP/32" --healthz-bind-address="127.0.0.1:$PROXY_HEALTHZ_PORT" \
    --metrics-bind-address="127.0.0.1:$PROXY_METRICS_PORT" --iptables-min-sync-period=250ms --conntrack-max-per-core=0 \
    --conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0
  wait_until 90 kube-apiserver kube-apiserver api_ready
  log "control plane: $(since "$t") s"

  t=$(now)
  wait_until 120 "node $NODE_NAME" kubelet node_ready
  # The kubelet set kernel.panic & co. when its container manager started (before the node was Ready).
  grep -E '^(vm|kernel)\.' "$BASE/sysctl" | sysctl -q -p - >/dev/null
  log "node $NODE_NAME Ready: $(since "$t") s"
  wait_until 60 "the default service account's token" kube-controller-manager default_sa_token
  wait_until 30 "the kubernetes Service endpoint $NODE_IP:$API_PORT" kube-apiserver kubernetes_endpoint
  wait_until 30 "kube-proxy's rules for $API_SERVICE_IP" kube-proxy service_rule
  wait_until 15 "https://$API_SERVICE_IP/version" kube-proxy service_path
  local c
  for c in "${COMPONENTS[@]}"; do alive "$c" || die "$c exited (log: $LOGS/$c.log)"; done
  write_env
  log "cluster up in $(since "$t0") s: $API_URL, node $NODE_NAME, registry $REGISTRY_ADDR"
  log "env: $ENV_FILE (KUBECONFIG=$KUBECONFIG_FILE)"
}

# ---------------------------------------------------------------------------------------------------
# Stop and undo. Works on a healthy, a half-started or an already stopped cluster.
our_chains() { # "iptables TABLE CHAIN" lines for every KUBE-*/CNI-* chain
  local ipt t
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for t in filter nat mangle raw; do
      "$ipt" -t "$t" -S 2>/dev/null | awk -v i="$ipt" -v t="$t" '/^-N (KUBE|CNI)-/ { print i, t, $2 }'
    done
  done
}
clean_iptables() { # drop our chains and every rule that jumps to them, table by table (save, filter, restore)
  local ipt t saved filtered
  for ipt in iptables ip6tables; do
    command -v "$ipt-save" >/dev/null || continue
    for t in filter nat mangle raw; do
      saved=$("$ipt-save" -t "$t" 2>/dev/null) || continue
      [ -n "$saved" ] || continue
      filtered=$(printf '%s\n' "$saved" | grep -vE '^:(KUBE|CNI)-|^-A (KUBE|CNI)-|-[jg] (KUBE|CNI)-' || true)
      [ "$filtered" = "$saved" ] || printf '%s\n' "$filtered" | "$ipt-restore" -T "$t" \
        || log "warning: could not clean $ipt table $t"
    done
  done
}
new_nft_tables() { # tables that were not there before the cluster, and hold no rule
  command -v nft >/dev/null && [ -f "$BASE/nft-tables" ] || return 0
  nft list tables 2>/dev/null | sort | comm -13 "$BASE/nft-tables" - | while read -r _ family name; do
    if ! nft list table "$family" "$name" 2>/dev/null | grep -vqE '^\s*(table |chain |type |#|\}|$)'; then
      echo "$family $name"
    fi
  done
}
kubepods_cgroups() { ls -d /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods 2>/dev/null || true; }
mounts_under() { awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r -u; }
unmount_under() {
  local i m
  for i in 1 2 3 4 5; do
    [ -n "$(mounts_under "$1")" ] || return 0
    for m in $(mounts_under "$1"); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  done
}
new_netns() { # network namespaces containerd made (cni-*) that were not there before
  local n
  for n in $(ls -A /run/netns 2>/dev/null); do
    case "$n" in cni-*) ;; *) continue ;; esac
    [ -f "$BASE/netns" ] && grep -qxF "$n" "$BASE/netns" && continue
    echo "$n"
  done
}
pod_netns_gone() { [ -z "$(new_netns)" ]; }
no_pods() { [ -z "$(kube get pods --all-namespaces -o name 2>/dev/null)" ]; }
ctr_k8s() { ctr --address "$SOCK" -n k8s.io "$@"; }
clean_containers() { # kill and remove every container the graceful path missed
  local id
  for id in $(ctr_k8s tasks ls -q 2>/dev/null); do ctr_k8s tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
  for id in $(ctr_k8s tasks ls -q 2>/dev/null); do ctr_k8s tasks delete -f "$id" >/dev/null 2>&1 || true; done
  for id in $(ctr_k8s containers ls -q 2>/dev/null); do ctr_k8s containers delete "$id" >/dev/null 2>&1 || true; done
}

teardown() {
  local t; t=$(now)
  # 1. Pods, gracefully: the kubelet kills their containers and stops their sandboxes (CNI DEL frees
  #    the veth, the IP and the masquerade rule; then the netns goes). The controllers stop first so
  #    nothing replaces them. Done when no container runs and no pod netns is left, twice in a row (the
  #    Pod objects themselves go ~10 s later; etcd's data is thrown away anyway).
  if alive kubelet && alive kube-apiserver && api_ready; then
    stop kube-controller-manager kube-scheduler
    kube delete pods --all --all-namespaces --grace-period=1 --wait=false >/dev/null 2>&1 || true
    local i quiet=0
    for i in $(seq 80); do
      if no_pods; then break; fi
      if [ -z "$(ctr_k8s tasks ls 2>/dev/null | awk 'NR > 1 && $3 == "RUNNING"')" ] && pod_netns_gone; then
        quiet=$((quiet + 1)); [ $quiet -lt 2 ] || break
      else
        quiet=0
      fi
      sleep 0.25
    done
  fi
  # 2. kube-proxy and its rules, then the rest of the control plane and the node.
  stop kube-proxy
  [ ! -x "$KEA_KUBE_BIN/kube-proxy" ] || "$KEA_KUBE_BIN/kube-proxy" --cleanup >>"$LOGS/kube-proxy-cleanup.log" 2>&1 || true
  stop kubelet kube-scheduler kube-controller-manager kube-apiserver
  stop etcd
  # 3. Containers left over (a failed graceful path, or a crash): containerd removes them itself; when
  #    it is not running but has state, it is started briefly for that.
  local ctd=containerd
  if ! alive containerd && [ -f "$RUN/containerd.toml" ] && [ -d "$CTD_ROOT/root/io.containerd.metadata.v1.bolt" ]; then
    ctd=containerd-cleanup
    start "$ctd" containerd --config "$RUN/containerd.toml"
    local i; for i in $(seq 40); do ctr --address "$SOCK" version >/dev/null 2>&1 && break; sleep 0.25; done
  fi
  if alive "$ctd"; then clean_containers; fi
  stop containerd containerd-cleanup
  # Our processes still running (shims of containers containerd could not stop), and anything still
  # in the kubelet's cgroups.
  local p f
  for p in $(our_processes); do [ "$p" = "$(pid_of registry 2>/dev/null)" ] || kill -9 "$p" 2>/dev/null || true; done
  for f in $(find /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods -name cgroup.procs 2>/dev/null); do
    for p in $(cat "$f" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
  done
  # 4. Mounts, network namespaces, links, iptables/nft, cgroups, sysctls, directories.
  unmount_under "$H"
  local n
  for n in $(new_netns); do umount "/run/netns/$n" 2>/dev/null || umount -l "/run/netns/$n" 2>/dev/null || true; rm -f "/run/netns/$n"; done
  ip link del "$BRIDGE" 2>/dev/null || true
  ip link del "$NODE_LINK" 2>/dev/null || true
  clean_iptables
  # Connection tracking entries of the cluster's addresses and loopback ports (they would expire anyway).
  if command -v conntrack >/dev/null; then
    conntrack -D -s "$NODE_IP" >/dev/null 2>&1 || true
    conntrack -D -d "$NODE_IP" >/dev/null 2>&1 || true
    conntrack -D -s "$POD_CIDR" >/dev/null 2>&1 || true
    conntrack -D -d "$POD_CIDR" >/dev/null 2>&1 || true
    conntrack -D -d "$SERVICE_CIDR" >/dev/null 2>&1 || true
    local port
    for port in "$ETCD_PORT" $((ETCD_PORT + 1)) "$KUBELET_HEALTHZ_PORT" "$PROXY_METRICS_PORT" "$PROXY_HEALTHZ_PORT" "$KCM_PORT" "$SCHEDULER_PORT"; do
      conntrack -D -p tcp -d 127.0.0.1 --dport "$port" >/dev/null 2>&1 || true
      conntrack -D -p tcp -s 127.0.0.1 --sport "$port" >/dev/null 2>&1 || true
    done
  fi
  local family name
  new_nft_tables | while read -r family name; do nft delete table "$family" "$name" 2>/dev/null || true; done
  local d
  for i in 1 2 3 4 5; do
    [ -n "$(kubepods_cgroups)" ] || break
    for d in $(kubepods_cgroups); do find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true; done
    [ -n "$(kubepods_cgroups)" ] && sleep 0.2
  done
  [ ! -f "$BASE/sysctl" ] || sysctl -q -p "$BASE/sysctl" >/dev/null 2>&1 || true
  if [ -f "$BASE/complete" ]; then
    local key entry
    for d in "${FOREIGN_DIRS[@]}"; do
      key=$(dir_key "$d")
      if [ -f "$BASE/dirs/$key.absent" ]; then
        [ ! -e "$d" ] || { unmount_under "$d"; rm -rf "$d"; }
      elif [ -f "$BASE/dirs/$key.list" ] && [ -d "$d" ]; then
        ls -A "$d" | while read -r entry; do
          grep -qxF -- "$entry" "$BASE/dirs/$key.list" || rm -rf "${d:?}/$entry"
        done
      fi
    done
  fi
  rm -rf "$RUN"
  rm -f "$ENV_FILE" "$KUBECONFIG_FILE"
  log "cluster stopped in $(since "$t") s"
}

# What the cluster left on the machine (nothing, after a clean `down`). Prints one line per item.
leftovers() {
  local c p k v now_v d key entry
  for p in $(our_processes); do echo "process $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-150)"; done
  mounts_under "$H" | sed 's/^/mount /'
  new_netns | sed 's/^/netns /'
  for k in "$BRIDGE" "$NODE_LINK" "$NODE_PEER"; do ip link show "$k" >/dev/null 2>&1 && echo "link $k"; done
  if [ -f "$BASE/links" ]; then
    ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | sort | comm -13 "$BASE/links" - | sed 's/^/link /'
  fi
  our_chains | sed 's/^/chain /'
  new_nft_tables | sed 's/^/nft table /'
  kubepods_cgroups | sed 's/^/cgroup /'
  if [ -f "$BASE/sysctl" ]; then
    while IFS='=' read -r k v; do
      now_v=$(sysctl -n "$k" 2>/dev/null) || continue
      [ "$now_v" = "$v" ] || echo "sysctl $k=$now_v (was $v)"
    done <"$BASE/sysctl"
  fi
  if [ -f "$BASE/complete" ]; then
    for d in "${FOREIGN_DIRS[@]}"; do
      key=$(dir_key "$d")
      if [ -f "$BASE/dirs/$key.absent" ]; then
        [ ! -e "$d" ] || echo "path $d (was absent)"
      elif [ -f "$BASE/dirs/$key.list" ] && [ -d "$d" ]; then
        ls -A "$d" | while read -r entry; do grep -qxF -- "$entry" "$BASE/dirs/$key.list" || echo "path $d/$entry"; done
      fi
    done
  fi
  return 0
}

cmd_down() {
  need_root
  take_lock
  local t0; t0=$(now)
  mkdir -p "$LOGS" "$PIDS"
  teardown
  stop registry
  if command -v conntrack >/dev/null; then
    conntrack -D -p tcp -d "${REGISTRY_ADDR%:*}" --dport "${REGISTRY_ADDR##*:}" >/dev/null 2>&1 || true
    conntrack -D -p tcp -s "${REGISTRY_ADDR%:*}" --sport "${REGISTRY_ADDR##*:}" >/dev/null 2>&1 || true
  fi
  local left; left=$(leftovers)
  if [ -n "$left" ]; then
    printf '%s\n' "$left" | sed 's/^/  left: /' >&2
    die "scripts/cluster.sh down left the above behind (baseline kept in $BASE)"
  fi
  rm -rf "$BASE"
  log "down in $(since "$t0") s; nothing is left"
}

cmd_status() {
  local c ok=0
  for c in registry "${COMPONENTS[@]}"; do
    if alive "$c"; then printf '  %-24s running (pid %s)\n' "$c" "$(pid_of "$c")"; else printf '  %-24s stopped\n' "$c"; ok=1; fi
  done
  if [ -f "$RUN/admin-token" ] && api_ready; then echo "  API server $API_URL ready"; else echo "  API server not ready"; ok=1; fi
  if [ -f "$KUBECONFIG_FILE" ] && node_ready; then echo "  node $NODE_NAME Ready"; else echo "  node $NODE_NAME not Ready"; ok=1; fi
  if registry_up; then echo "  registry http://$REGISTRY_ADDR/v2/ answers"; else echo "  registry not answering"; ok=1; fi
  [ ! -f "$ENV_FILE" ] || echo "  env: $ENV_FILE"
  return $ok
}

# Failure drills (tests/tests/cluster_drills.rs): a component killed and started again with the
# same arguments, or every container of the kubelet killed as a runtime crash would.
cmd_restart() {
  need_root
  local name=${1:-} pid args=()
  case "$name" in kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|kube-proxy|etcd) ;;
    *) die "usage: scripts/cluster.sh restart kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|kube-proxy|etcd" ;;
  esac
  alive "$name" || die "$name is not running"
  pid=$(pid_of "$name")
  mapfile -d '' args <"/proc/$pid/cmdline"
  kill -9 "$pid"
  for _ in $(seq 50); do running "$pid" || break; sleep 0.1; done
  start "$name" "${args[@]}"
  if [ "$name" = kube-apiserver ]; then wait_until 60 "the API server" kube-apiserver api_ready; fi
  log "$name restarted (pid $(pid_of "$name"))"
}

cmd_kill_containers() {
  need_root
  local task n=0
  for task in $(ctr --address "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
    ctr --address "$SOCK" -n k8s.io tasks kill -s KILL "$task" >/dev/null 2>&1 && n=$((n + 1))
  done
  log "killed $n containers; the kubelet restarts them"
}

case "${1:-}" in
  up) cmd_up ;;
  restart) cmd_restart "${2:-}" ;;
  kill-containers) cmd_kill_containers ;;
  down) cmd_down ;;
  status) cmd_status ;;
  registry) need_root; take_lock; start_registry; log "registry on http://$REGISTRY_ADDR (data: $REGISTRY_DATA)" ;;
  *) die "usage: scripts/cluster.sh up|down|status|registry|restart COMPONENT|kill-containers" ;;
esac
