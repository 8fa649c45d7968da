#!/usr/bin/env bash
# Start (or stop) a throw-away container registry on loopback, for integration
# tests that push and pull images (e.g. `podman push --tls-verify=false`).
#
# The registry is the binary made by scripts/build-registry.sh. It listens on
# 127.0.0.1 only, speaks plain HTTP, and stores blobs on the filesystem under
# STATEDIR/data. STATEDIR also receives config.yml, registry.log, pid and addr.
#
# Usage:
#   scripts/run-registry.sh --bin DIR --dir STATEDIR [--port N] [--timeout SECONDS]
#       Starts the registry in the background, waits until GET /v2/ answers 200,
#       writes STATEDIR/pid and prints `127.0.0.1:PORT` on stdout. Without --port
#       the kernel picks a free port (no race between choosing and binding it).
#       If a registry started from STATEDIR is still answering, prints its address.
#   scripts/run-registry.sh --stop --dir STATEDIR
#       Stops the registry started from STATEDIR (no error if none is running).
#
#   --bin defaults to ~/.cache/paude/registry-bin (build-registry.sh's --dest).
set -euo pipefail

bin_dir="${XDG_CACHE_HOME:-$HOME/.cache}/paude/registry-bin"
state=""
port=0
stop=0
timeout=30

while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) bin_dir="$2"; shift 2 ;;
    --dir) state="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    --stop) stop=1; shift ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
    *) echo "run-registry: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

log() { printf 'run-registry: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[[ -n "$state" ]] || die "--dir STATEDIR is required (see --help)"
[[ "$port" =~ ^[0-9]+$ && "$port" -le 65535 ]] || die "--port must be a number from 0 to 65535"
mkdir -p "$state"
state="$(cd "$state" && pwd)"
pid_file="$state/pid"
addr_file="$state/addr"

# A process that has exited but not yet been reaped (state Z) counts as gone: in
# containers and sandboxes PID 1 can take a second or more to reap it.
alive() {
  [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null || return 1
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat%% *}" != Z ]]
}
# Only a process running our registry binary counts, so that a stale pid file whose
# number has been reused by some other process is never signalled.
ours() { alive "$1" && [[ "$(readlink "/proc/$1/exe" 2>/dev/null)" == */registry ]]; }
v2_status() {
  curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$1/v2/" 2>/dev/null || true
}

if [[ "$stop" == 1 ]]; then
  pid="$(cat "$pid_file" 2>/dev/null || true)"
  if ours "$pid"; then
    kill -TERM "$pid"
    for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
      log "registry (pid $pid) did not stop after 10 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped registry (pid $pid)"
  else
    log "no registry running from $state"
  fi
  rm -f "$pid_file" "$addr_file"
  exit 0
fi

registry="$bin_dir/registry"
[[ -x "$registry" ]] || die "no registry binary at $registry (run scripts/build-registry.sh --dest $bin_dir)"
command -v curl >/dev/null || die "curl is required"

old_pid="$(cat "$pid_file" 2>/dev/null || true)"
if ours "$old_pid"; then
  old_addr="$(cat "$addr_file" 2>/dev/null || true)"
  if [[ -n "$old_addr" && "$(v2_status "$old_addr")" == 200 ]]; then
    log "registry already running from $state (pid $old_pid)"
    printf '%s\n' "$old_addr"
    exit 0
  fi
  die "a registry (pid $old_pid) from $state is running but not answering; stop it with --stop --dir $state"
fi
rm -f "$pid_file" "$addr_file"

mkdir -p "$state/data"
secret="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
cat >"$state/config.yml" <<YAML
# Written by paude's scripts/run-registry.sh: a loopback-only, plain-HTTP test
# registry. Do not expose it; it has no authentication.
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $state/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  net: tcp
  addr: 127.0.0.1:$port
  secret: $secret
  headers:
    X-Content-Type-Options: [nosniff]
YAML

# REGISTRY_* variables override config.yml (REGISTRY_HTTP_ADDR could move the
# listener off loopback), so start from an environment without them. OpenTelemetry
# tracing is on by default in v3 and would try to export to localhost:4318.
unset_args=()
while IFS='=' read -r name _; do
  [[ "$name" == REGISTRY_* || "$name" == OTEL_* ]] && unset_args+=(-u "$name")
done < <(env)

: >"$state/registry.log"
env "${unset_args[@]}" OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \
  setsid "$registry" serve "$state/config.yml" >>"$state/registry.log" 2>&1 </dev/null &
pid=$!
printf '%s\n' "$pid" >"$pid_file"

# The address is taken from this process's own log line, never from whatever answers
# on the port: with --port, another server already there must not be mistaken for
# ours (our registry then fails to bind, logs the error and exits).
addr=""
deadline=$((SECONDS + timeout))
while :; do
  if ! alive "$pid"; then
    rm -f "$pid_file"
    tail -n 20 "$state/registry.log" >&2 || true
    die "registry exited during start-up (log: $state/registry.log)"
  fi
  if [[ -z "$addr" ]]; then
    addr="$(grep -oE 'listening on 127\.0\.0\.1:[0-9]+' "$state/registry.log" | head -n1 | sed 's/^listening on //' || true)"
  fi
  if [[ -n "$addr" && "$(v2_status "$addr")" == 200 ]] && alive "$pid"; then
    break
  fi
  if (( SECONDS >= deadline )); then
    kill -TERM "$pid" 2>/dev/null || true
    rm -f "$pid_file"
    tail -n 20 "$state/registry.log" >&2 || true
    die "registry did not answer GET /v2/ within ${timeout}s (log: $state/registry.log)"
  fi
  sleep 0.05
done
[[ "$port" == 0 || "$addr" == "127.0.0.1:$port" ]] || die "registry listens on $addr, not port $port"

printf '%s\n' "$addr" >"$addr_file"
log "registry $("$registry" --version | awk '{print $NF}') listening on http://$addr (pid $pid, state $state)"
printf '%s\n' "$addr"
