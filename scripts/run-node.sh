#!/usr/bin/env bash
# Start (or stop) a throw-away Kubernetes node for the loopback API server of
# scripts/run-kube-apiserver.sh, so that integration tests run real pods: containerd
# with runc (Debian packages), CNI bridge + host-local + portmap (Debian
# containernetworking-plugins), a kubelet, kube-scheduler, kube-proxy (nftables mode)
# with the EndpointSlice controller, kube-router's NetworkPolicy firewall and CoreDNS
# (built by scripts/build-node.sh). Needs root.
#
# Everything the node keeps lives in STATEDIR (containerd root, state and socket,
# kubelet root, CNI config and IP allocations, logs); what it cannot keep there is
# named so that --stop finds it again and nothing else:
#   bridge   paude-node0 with pods in 10.244.0.0/24 (podman uses 10.88/10.89)
#   cgroups  /paude-node in every cgroup v1 hierarchy (kubelet's cgroupRoot; cgroupfs
#            driver, runc, SystemdCgroup=false: these machines run cgroups v1 "hybrid")
#   netns    /run/netns/cni-* that containerd made after the start (listed at start)
#   iptables kube-router's chains live in the *legacy* iptables filter table, apart
#            from the nftables-backed iptables that podman (netavark) uses, because
#            kube-router rewrites its whole filter table with iptables-restore: a rule
#            podman added in between would otherwise be lost. In the nftables ruleset
#            only chains the kubelet adds (KUBE-*) that were absent at start are removed.
#   ipsets   kube-router's (KUBE-SRC-*, KUBE-DST-*, kube-router-*)
#   nftables kube-proxy's own tables, "ip kube-proxy" and "ip6 kube-proxy"
# The pod sandbox image is bin/pause.oci.tar, imported into containerd at start (no
# image can be pulled here). Pod images come from REGISTRY (plain HTTP on loopback).
# The kubelet sets the sysctls it requires (vm.overcommit_memory=1, kernel.panic=10,
# kernel.panic_on_oops=1) on the host; --stop does not undo them.
#
# DNS: CoreDNS runs on the host at the node's address, port 53, and is every pod's
# clusterDNS. It answers Services under cluster.local and the names in
# STATEDIR/coredns/hosts (re-read every second): the tests' stand-ins for outside hosts,
# like network aliases on podman. It forwards nothing: the test cluster has no outside.
#
# Start prints the node name once the node is Ready and kube-router's chains exist.
# --stop deletes the node's pods through the API server (so CNI tears their network
# down), stops the processes, and then removes whatever is left of the list above.
#
# Usage: scripts/run-node.sh --dir STATEDIR --kubeconfig FILE --registry HOST:PORT [--bin DIR] [--timeout SECONDS]
#        scripts/run-node.sh --dir STATEDIR --stop
set -euo pipefail

bin="${XDG_CACHE_HOME:-$HOME/.cache}/paude/kube-bin"
dir=""
kubeconfig=""
registry=""
stop=0
timeout=180

while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --kubeconfig) kubeconfig="$2"; shift 2 ;;
    --registry) registry="$2"; shift 2 ;;
    --stop) stop=1; shift ;;
    --timeout) timeout="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
    *) echo "run-node: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

log() { printf 'run-node: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

node_name=paude-test-node
bridge=paude-node0
pod_cidr=10.244.0.0/24
service_cidr=10.96.0.0/16
cgroup_root=paude-node
router_sets='^(KUBE-SRC-|KUBE-DST-|kube-router-)'
router_chains='^(KUBE-ROUTER-|KUBE-POD-FW-|KUBE-NWPLCY-)'

[[ -n "$dir" ]] || die "--dir STATEDIR is required"
[[ $(id -u) -eq 0 ]] || die "must run as root (containerd, kubelet and CNI need it)"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
pids_file="$dir/pids"
sock="$dir/containerd/containerd.sock"

# shellcheck source=scripts/lib-node-stop.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-node-stop.sh"

if [[ "$stop" == 1 ]]; then
  stop_all
  exit 0
fi

[[ -n "$kubeconfig" && -s "$kubeconfig" ]] || die "--kubeconfig FILE is required"
[[ -n "$registry" ]] || die "--registry HOST:PORT is required"
for f in kubelet kube-scheduler kube-proxy kube-controller-manager kube-router coredns kubectl \
    pause.oci.tar; do
  [[ -e "$bin/$f" ]] || die "$bin/$f not found; build it with scripts/build-node.sh --dest $bin"
done
for cmd in containerd containerd-shim-runc-v2 ctr runc ipset iptables-legacy iptables-nft nft findmnt; do
  command -v "$cmd" >/dev/null || die "$cmd is required (scripts/setup-podman.sh installs it)"
done
for plugin in bridge host-local portmap loopback; do
  [[ -x "/usr/lib/cni/$plugin" ]] || die "/usr/lib/cni/$plugin not found (Debian containernetworking-plugins)"
done
if [[ -f "$pids_file" ]]; then
  while read -r name pid; do
    ours "$pid" && die "$name (pid $pid) is already running for $dir; stop it with --stop first"
  done <"$pids_file"
fi
ip link show "$bridge" >/dev/null 2>&1 && die "bridge $bridge exists: another test node is running"
nft list table ip kube-proxy >/dev/null 2>&1 && die "nftables table ip kube-proxy exists: another node is running"
pki="$(cd "$(dirname "$kubeconfig")" && pwd)/pki"
[[ -s "$pki/ca.crt" ]] || die "$pki/ca.crt not found (the API server's CA)"
# A copy inside STATEDIR: every process of the node names STATEDIR on its command line,
# which is how --stop knows it (and never signals anything else).
install -m 600 "$kubeconfig" "$dir/kubeconfig"
kubeconfig="$dir/kubeconfig"
printf '%s\n' "$kubeconfig" >"$dir/kubeconfig-path"

# What exists now is never removed by --stop.
ls /run/netns 2>/dev/null >"$dir/netns.before" || true
list_chains iptables-nft >"$dir/chains4.before"
list_chains ip6tables-nft >"$dir/chains6.before"
: >"$pids_file"

fail() {
  log "$1"
  [[ -f "${2:-}" ]] && { log "last lines of $2:"; tail -n 30 "$2" >&2; }
  stop_all
  exit 1
}
deadline=$(( $(date +%s) + timeout ))
wait_for() {  # wait_for WHAT LOG PID COMMAND...
  local what="$1" logfile="$2" pid="$3"
  shift 3
  until "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || fail "$what: the process exited" "$logfile"
    (( $(date +%s) < deadline )) || fail "$what: not after ${timeout}s" "$logfile"
    sleep 0.5
  done
}
start() {  # start NAME LOG ARGV...: in its own session, outliving this script
  local name="$1" logfile="$2"
  shift 2
  setsid "$@" </dev/null >>"$logfile" 2>&1 &
  local pid="$!"
  disown "$pid"
  printf '%s %s\n' "$name" "$pid" >>"$pids_file"
  printf '%s' "$pid"
}

node_ip="$(ip -4 -o route get 192.0.2.255 2>/dev/null | sed -nE 's/.* src ([0-9.]+).*/\1/p')"
if [[ -z "$node_ip" ]]; then
  dev="$(ip -4 -o route show default | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1) }' | head -n1)"
  node_ip="$(ip -4 -o addr show dev "$dev" | awk '{ split($4, a, "/"); print a[1]; exit }')"
fi
[[ -n "$node_ip" ]] || die "could not find this machine's address (default route)"

# --- cgroups: the kubelet's cgroupRoot must exist in every hierarchy ---
while read -r cg; do
  mkdir -p "$cg"
  if [[ "$cg" == /sys/fs/cgroup/cpuset/* ]]; then
    # A new cpuset starts empty; a task can only join one with cpus and mems.
    cat /sys/fs/cgroup/cpuset/cpuset.cpus >"$cg/cpuset.cpus"
    cat /sys/fs/cgroup/cpuset/cpuset.mems >"$cg/cpuset.mems"
  fi
done < <(cgroup_dirs)

# --- containerd ---
mkdir -p "$dir/containerd/certs.d/$registry" "$dir/cni/net.d" "$dir/cni/ipam" "$dir/kubelet" \
  "$dir/pod-logs"
cat >"$dir/containerd/certs.d/$registry/hosts.toml" <<TOML
server = "http://$registry"

[host."http://$registry"]
  capabilities = ["pull", "resolve"]
TOML
cat >"$dir/containerd/config.toml" <<TOML
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "paude.local/pause:1"
  enable_selinux = false
  # The kubelet asks for negative OOM score adjustments (-998 for the sandbox), which
  # need CAP_SYS_RESOURCE; these machines' root lacks it and runc's init then dies
  # ("can't get final child's PID from pipe: EOF"). Never below containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/containerd/certs.d"
TOML
cat >"$dir/cni/net.d/10-paude-node.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "paude-node",
  "plugins": [
    {"type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false,
     "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$pod_cidr"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$dir/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
t0="$(date +%s)"
log "starting containerd (socket $sock)"
containerd_pid="$(start containerd "$dir/containerd.log" containerd --config "$dir/containerd/config.toml")"
wait_for "containerd" "$dir/containerd.log" "$containerd_pid" ctr --address "$sock" version
ctr_ images import --snapshotter overlayfs "$bin/pause.oci.tar" >/dev/null \
  || fail "could not import $bin/pause.oci.tar" "$dir/containerd.log"
# Listed first, matched after: grep -q would stop reading early, and pipefail turn
# ctr's SIGPIPE into a failure.
images="$(ctr_ images ls -q)"
grep -qx 'paude.local/pause:1' <<<"$images" || fail "the pause image was imported under another name: $images"

free_port() {  # free_port ADDRESS: a TCP port nothing listens on there now
  python3 -c 'import socket, sys; s = socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"
}

# --- CoreDNS: the cluster's names, and the tests' stand-in hosts ---
mkdir -p "$dir/coredns"
: >"$dir/coredns/hosts"
dns_ready_port="$(free_port 127.0.0.1)"
cat >"$dir/coredns/Corefile" <<COREFILE
cluster.local:53 {
  bind $node_ip
  kubernetes cluster.local {
    kubeconfig $kubeconfig paude-test
    pods disabled
  }
  ready 127.0.0.1:$dns_ready_port
  errors
}
.:53 {
  bind $node_ip
  hosts $dir/coredns/hosts {
    reload 1s
  }
  errors
}
COREFILE
log "starting coredns at $node_ip:53"
coredns_pid="$(start coredns "$dir/coredns.log" "$bin/coredns" -conf "$dir/coredns/Corefile")"
wait_for "coredns ready" "$dir/coredns.log" "$coredns_pid" python3 -c \
  'import sys, urllib.request as u; u.build_opener(u.ProxyHandler({})).open(sys.argv[1], timeout=1)' \
  "http://127.0.0.1:$dns_ready_port/ready"

# --- kubelet ---
kubelet_port="$(free_port "$node_ip")"
cat >"$dir/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupRoot: /$cgroup_root
containerRuntimeEndpoint: unix://$sock
address: $node_ip
port: $kubelet_port
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
podCIDR: $pod_cidr
clusterDNS: [$node_ip]
clusterDomain: cluster.local
podLogsDir: $dir/pod-logs
failSwapOn: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 50Mi, nodefs.available: 1%, imagefs.available: 1%}
shutdownGracePeriod: 0s
YAML
log "starting kubelet (node $node_name at $node_ip:$kubelet_port)"
kubelet_pid="$(start kubelet "$dir/kubelet.log" "$bin/kubelet" --config="$dir/kubelet/config.yaml" \
  --kubeconfig="$kubeconfig" --root-dir="$dir/kubelet" --cert-dir="$dir/kubelet/pki" \
  --hostname-override="$node_name" --node-ip="$node_ip" --v=1)"
wait_for "node $node_name registered" "$dir/kubelet.log" "$kubelet_pid" kubectl_ get node "$node_name"

# --- kube-router (NetworkPolicy firewall only), on legacy iptables ---
mkdir -p "$dir/xtables"
for tool in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -sf "$(command -v "${tool/tables/tables-legacy}")" "$dir/xtables/$tool"
done
log "starting kube-router (firewall only, legacy iptables)"
router_pid="$(start kube-router "$dir/kube-router.log" env PATH="$dir/xtables:$PATH" \
  "$bin/kube-router" --kubeconfig="$kubeconfig" --hostname-override="$node_name" \
  --run-firewall=true --run-router=false --run-service-proxy=false --run-loadbalancer=false \
  --enable-cni=false --enable-ipv6=false --service-cluster-ip-range="$service_cidr" \
  --health-port=0 --metrics-port=0 --v=1)"
wait_for "kube-router's chains" "$dir/kube-router.log" "$router_pid" \
  iptables-legacy -t filter -S KUBE-ROUTER-FORWARD

# --- kube-scheduler: pods get this node ---
log "starting kube-scheduler"
scheduler_pid="$(start kube-scheduler "$dir/kube-scheduler.log" "$bin/kube-scheduler" \
  --kubeconfig="$kubeconfig" --leader-elect=false --bind-address=127.0.0.1 --secure-port=0)"

# --- Services: kube-proxy in nftables mode (its own tables, nothing shared with
# podman) and the EndpointSlice controller it reads; the node lifecycle controller
# lifts the not-ready taint the kubelet registers with. The workload controllers turn
# a session's Deployments and StatefulSet into pods, and the volume binder its claim
# into a bound PersistentVolume. All in a controller-manager of its own: the API
# server's runs only what tests without a node rely on.
cat >"$dir/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {kubeconfig: $kubeconfig}
hostnameOverride: $node_name
clusterCIDR: $pod_cidr
healthzBindAddress: ""
metricsBindAddress: ""
# 0: leave the host's conntrack table size and timeouts as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
log "starting kube-proxy (nftables) and the node's controllers"
proxy_pid="$(start kube-proxy "$dir/kube-proxy.log" "$bin/kube-proxy" --config="$dir/kube-proxy.yaml")"
kcm_pid="$(start kube-controller-manager "$dir/kube-controller-manager.log" \
  "$bin/kube-controller-manager" --kubeconfig="$kubeconfig" --controllers=endpointslice,nodelifecycle,deployment,replicaset,statefulset,persistentvolume-binder \
  --leader-elect=false --bind-address=127.0.0.1 --secure-port=0 \
  --use-service-account-credentials=false)"
wait_for "kube-proxy's nftables table" "$dir/kube-proxy.log" "$proxy_pid" nft list table ip kube-proxy

node_ready() {
  [[ "$(kubectl_ get node "$node_name" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}/{.spec.taints}')" == True/ ]]
}
wait_for "node $node_name Ready" "$dir/kubelet.log" "$kubelet_pid" node_ready
kill -0 "$scheduler_pid" 2>/dev/null || fail "kube-scheduler exited" "$dir/kube-scheduler.log"
kill -0 "$kcm_pid" 2>/dev/null || fail "kube-controller-manager exited" "$dir/kube-controller-manager.log"
log "node $node_name ready in $(( $(date +%s) - t0 )) s"
printf '%s\n' "$node_name"
