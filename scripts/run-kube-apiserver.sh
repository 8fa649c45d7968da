#!/usr/bin/env bash
# Start (or stop) a throw-away Kubernetes API server for integration tests: etcd plus
# kube-apiserver as built by scripts/build-kube.sh, on loopback only, with all state
# in STATEDIR. There is no kubelet or scheduler: objects are stored, validated and
# served, but no pod runs unless scripts/run-node.sh adds a node; no PVC gets bound.
#
# Start: prints the path of STATEDIR/kubeconfig (context "paude-test", cluster admin
# through a bearer token in group system:masters) once /readyz answers ok, and writes
# the two process ids to STATEDIR/pids. Logs: STATEDIR/etcd.log, kube-apiserver.log.
# Stop:  --stop kills the processes listed in STATEDIR/pids (state is kept; delete
# STATEDIR for a clean slate). kube-controller-manager runs too when it was built, with
# only its garbage collector and namespace controller, so deletions complete, and its
# resource quota controller, so a ResourceQuota gets the usage its admission needs.
#
# Everything listens on 127.0.0.1 only: etcd client and peer ports and the API
# server's secure port are free ports picked at start. The serving certificate is
# signed by a CA generated into STATEDIR with openssl; the kubeconfig carries that CA.
# The advertised address is 127.0.0.1, which the endpoint reconciler refuses (loopback),
# so it is off: the "kubernetes" Service exists in "default" but has no endpoints.
# A node (scripts/run-node.sh) is reached at its InternalIP (its name resolves nowhere)
# with a client certificate from the same CA, in system:masters.
# Arguments after `--` are passed on to kube-apiserver.
#
# Usage: scripts/run-kube-apiserver.sh --dir STATEDIR [--bin DIR] [--timeout SECONDS] [-- APISERVER_ARGS...]
#        scripts/run-kube-apiserver.sh --dir STATEDIR --stop
set -euo pipefail

bin="${XDG_CACHE_HOME:-$HOME/.cache}/paude/kube-bin"
dir=""
stop=0
timeout=90
extra=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --stop) stop=1; shift ;;
    --timeout) timeout="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
    *) echo "run-kube-apiserver: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

log() { printf 'run-kube-apiserver: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[[ -n "$dir" ]] || die "--dir STATEDIR is required"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
pids_file="$dir/pids"

# A pid from STATEDIR/pids counts only while it is still the process started for this
# STATEDIR (its command line names STATEDIR), so a recycled pid is never signalled.
ours() {
  local pid="$1"
  [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/"
}

stop_all() {
  [[ -f "$pids_file" ]] || { log "nothing to stop: no $pids_file"; return 0; }
  local name pid i
  # The API server first, so that it does not spend its last seconds retrying etcd.
  for name in kube-controller-manager kube-apiserver etcd; do
    pid="$(awk -v n="$name" '$1 == n { print $2 }' "$pids_file")"
    ours "$pid" || continue
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      ours "$pid" || break
      sleep 0.1
    done
    if ours "$pid"; then
      log "$name did not exit after 10 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  rm -f "$pids_file"
}

if [[ "$stop" == 1 ]]; then
  stop_all
  exit 0
fi

for f in kube-apiserver etcd; do
  [[ -x "$bin/$f" ]] || die "$bin/$f not found; build it with scripts/build-kube.sh --dest $bin"
done
for cmd in openssl curl python3; do
  command -v "$cmd" >/dev/null || die "$cmd is required"
done
if [[ -f "$pids_file" ]]; then
  while read -r name pid; do
    if ours "$pid"; then
      die "$name (pid $pid) is already running for $dir; stop it with --stop first"
    fi
  done <"$pids_file"
  rm -f "$pids_file"
fi

# --- credentials (kept across restarts of the same STATEDIR) ---
pki="$dir/pki"
mkdir -p "$pki"
chmod 700 "$pki"
if [[ ! -s "$pki/serving.crt" ]]; then
  log "generating a CA and a serving certificate for 127.0.0.1 in $pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=paude-test-ca" -keyout "$pki/ca.key" -out "$pki/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=kube-apiserver" -keyout "$pki/serving.key" -out "$pki/serving.csr" 2>/dev/null
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" \
    "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc" \
    >"$pki/serving.ext"
  openssl x509 -req -in "$pki/serving.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -extfile "$pki/serving.ext" -out "$pki/serving.crt" 2>/dev/null
fi
if [[ ! -s "$pki/kubelet-client.crt" ]]; then
  # The API server's identity towards kubelets (logs, exec, port-forward), for
  # scripts/run-node.sh: a client certificate from the same CA, in system:masters.
  log "generating the API server's kubelet client certificate"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
    -keyout "$pki/kubelet-client.key" -out "$pki/kubelet-client.csr" 2>/dev/null
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=clientAuth" >"$pki/kubelet-client.ext"
  openssl x509 -req -in "$pki/kubelet-client.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 3650 -extfile "$pki/kubelet-client.ext" \
    -out "$pki/kubelet-client.crt" 2>/dev/null
fi
if [[ ! -s "$pki/sa.key" ]]; then
  log "generating the service-account signing key pair"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
  openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
fi
if [[ ! -s "$pki/tokens.csv" ]]; then
  # token,user,uid,"groups"
  printf '%s,paude-test-admin,paude-test-admin,"system:masters"\n' "$(openssl rand -hex 32)" \
    >"$pki/tokens.csv"
fi
chmod 600 "$pki"/*.key "$pki/tokens.csv"
token="$(cut -d, -f1 "$pki/tokens.csv" | head -n1)"

# --- ports: three distinct free ports on 127.0.0.1 ---
read -r etcd_port peer_port api_port < <(python3 - <<'PY'
import socket
socks = []
for _ in range(3):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(*(s.getsockname()[1] for s in socks))
PY
)

pids_tmp="$pids_file.tmp"
: >"$pids_tmp"
started=()
cleanup_on_failure() {
  local pid
  for pid in "${started[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -f "$pids_tmp"
}
fail() {
  log "$1"
  [[ -f "$2" ]] && { log "last lines of $2:"; tail -n 25 "$2" >&2; }
  cleanup_on_failure
  exit 1
}

t0="$(date +%s.%N)"
etcd_url="http://127.0.0.1:$etcd_port"
log "starting etcd on $etcd_url (data in $dir/etcd)"
# setsid: the servers outlive this script and a Ctrl-C in its terminal; --stop ends them.
setsid "$bin/etcd" \
  --name paude-test \
  --data-dir "$dir/etcd" \
  --listen-client-urls "$etcd_url" \
  --advertise-client-urls "$etcd_url" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "paude-test=http://127.0.0.1:$peer_port" \
  --unsafe-no-fsync \
  --log-level warn \
  </dev/null >>"$dir/etcd.log" 2>&1 &
etcd_pid="$!"
disown "$etcd_pid"
started+=("$etcd_pid")
printf 'etcd %s\n' "$etcd_pid" >>"$pids_tmp"

deadline=$(( $(date +%s) + timeout ))
until [[ "$(curl -s --max-time 2 "$etcd_url/health" 2>/dev/null)" == *'"health":"true"'* ]]; do
  kill -0 "$etcd_pid" 2>/dev/null || fail "etcd exited" "$dir/etcd.log"
  (( $(date +%s) < deadline )) || fail "etcd not healthy after ${timeout}s" "$dir/etcd.log"
  sleep 0.2
done

api_url="https://127.0.0.1:$api_port"
log "starting kube-apiserver on $api_url"
setsid "$bin/kube-apiserver" \
  --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 \
  --endpoint-reconciler-type=none \
  --secure-port="$api_port" \
  --etcd-servers="$etcd_url" \
  --tls-cert-file="$pki/serving.crt" \
  --tls-private-key-file="$pki/serving.key" \
  --cert-dir="$pki" \
  --token-auth-file="$pki/tokens.csv" \
  --authorization-mode=RBAC \
  --service-account-key-file="$pki/sa.pub" \
  --service-account-signing-key-file="$pki/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc \
  --api-audiences=https://kubernetes.default.svc \
  --service-cluster-ip-range=10.96.0.0/16 \
  --kubelet-client-certificate="$pki/kubelet-client.crt" \
  --kubelet-client-key="$pki/kubelet-client.key" \
  --kubelet-preferred-address-types=InternalIP,Hostname,InternalDNS,ExternalDNS,ExternalIP \
  --allow-privileged=true \
  --disable-admission-plugins=ServiceAccount,StorageObjectInUseProtection \
  --profiling=false \
  "${extra[@]}" \
  </dev/null >>"$dir/kube-apiserver.log" 2>&1 &
api_pid="$!"
disown "$api_pid"
started+=("$api_pid")
printf 'kube-apiserver %s\n' "$api_pid" >>"$pids_tmp"
mv "$pids_tmp" "$pids_file"

until [[ "$(curl -s --max-time 2 --cacert "$pki/ca.crt" -H "Authorization: Bearer $token" \
            "$api_url/readyz" 2>/dev/null)" == ok ]]; do
  kill -0 "$api_pid" 2>/dev/null || { rm -f "$pids_file"; fail "kube-apiserver exited" "$dir/kube-apiserver.log"; }
  kill -0 "$etcd_pid" 2>/dev/null || { rm -f "$pids_file"; fail "etcd exited" "$dir/etcd.log"; }
  (( $(date +%s) < deadline )) || { rm -f "$pids_file"; fail "kube-apiserver not ready after ${timeout}s" "$dir/kube-apiserver.log"; }
  sleep 0.25
done

kubeconfig="$dir/kubeconfig"
umask 077
cat >"$kubeconfig.tmp" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: paude-test
  cluster:
    server: $api_url
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: paude-test-admin
  user:
    token: $token
contexts:
- name: paude-test
  context:
    cluster: paude-test
    user: paude-test-admin
    namespace: default
current-context: paude-test
YAML
mv "$kubeconfig.tmp" "$kubeconfig"

# Only the garbage collector, the namespace and the resource quota controllers: deletions
# complete (foreground deletes wait for the collector), a ResourceQuota is counted (its
# admission refuses everything it tracks until it is), while nothing creates pods.
if [[ -x "$bin/kube-controller-manager" ]]; then
  log "starting kube-controller-manager (garbagecollector, namespace, resourcequota)"
  setsid "$bin/kube-controller-manager" \
    --kubeconfig="$kubeconfig" \
    --controllers=garbagecollector,namespace,resourcequota \
    --leader-elect=false \
    --bind-address=127.0.0.1 \
    --secure-port=0 \
    --use-service-account-credentials=false \
    </dev/null >>"$dir/kube-controller-manager.log" 2>&1 &
  kcm_pid="$!"
  disown "$kcm_pid"
  printf 'kube-controller-manager %s\n' "$kcm_pid" >>"$pids_file"
  sleep 0.5
  kill -0 "$kcm_pid" 2>/dev/null || fail "kube-controller-manager exited" "$dir/kube-controller-manager.log"
fi
log "ready in $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)") s (etcd pid $etcd_pid, kube-apiserver pid $api_pid)"
printf '%s\n' "$kubeconfig"
