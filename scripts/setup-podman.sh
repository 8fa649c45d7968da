#!/usr/bin/env bash
# Prepare a Debian/Ubuntu CI or development machine to run paude's integration tests:
# install podman and the tools the tests drive, and add the podman settings that
# restricted sandboxes need. Safe to run repeatedly; it only changes what is missing.
#
#   - packages (apt-get, only when missing): podman, runc, netavark, aardvark-dns,
#     iptables, debootstrap, tmux, git, uidmap, make, openssl; hyperfine when available;
#     for the cluster tests' node (scripts/run-node.sh): containerd,
#     containernetworking-plugins, ipset
#   - /etc/containers/containers.conf, only when this machine needs it:
#       default_ulimits  when the process lacks CAP_SYS_RESOURCE (podman's default
#                        container rlimits are then refused by setrlimit)
#       runtime = "runc" when cgroups are "hybrid" (v1 with a v2 hierarchy), which
#                        crun refuses
#     Keys that are already set are left alone; added lines are marked.
#   - checks `podman info`, and `podman run` when an image is present
#
# Usage: scripts/setup-podman.sh        (needs root; uses sudo when available)
set -euo pipefail

log() { printf 'setup-podman: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    log "not root: re-running with sudo"
    exec sudo --preserve-env=PAUDE_TEST_BASE_IMAGE,CI bash "$0" "$@"
  fi
  die "must run as root (sudo is not available)"
fi

CONF="${PAUDE_CONTAINERS_CONF:-/etc/containers/containers.conf}"
MARK="# added by paude scripts/setup-podman.sh"

# --- packages --------------------------------------------------------------------
is_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

required=(podman runc netavark aardvark-dns iptables debootstrap tmux git uidmap make openssl curl
  containerd containernetworking-plugins ipset)
optional=(hyperfine)

missing=()
for p in "${required[@]}"; do is_installed "$p" || missing+=("$p"); done
missing_optional=()
for p in "${optional[@]}"; do is_installed "$p" || missing_optional+=("$p"); done

if (( ${#missing[@]} + ${#missing_optional[@]} > 0 )); then
  command -v apt-get >/dev/null || die "apt-get not found; install manually: ${missing[*]} ${missing_optional[*]}"
  export DEBIAN_FRONTEND=noninteractive
  log "apt-get update"
  apt-get update -qq
  if (( ${#missing[@]} > 0 )); then
    log "installing: ${missing[*]}"
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  for p in "${missing_optional[@]}"; do
    if apt-get install -y -qq "$p" >/dev/null 2>&1; then
      log "installed optional package: $p"
    else
      log "optional package $p is not available; skipping"
    fi
  done
else
  log "packages already installed: ${required[*]} ${optional[*]}"
fi

# --- containers.conf -------------------------------------------------------------

# Does TABLE in CONF set KEY (uncommented)?
conf_has_key() {
  local table="$1" key="$2"
  [[ -f "$CONF" ]] || return 1
  awk -v table="$table" -v key="$key" '
    /^[[:space:]]*\[/ {
      t = $0
      sub(/^[[:space:]]*\[+[[:space:]]*/, "", t); sub(/[[:space:]]*\].*$/, "", t)
      cur = t; next
    }
    cur == table && $0 ~ "^[[:space:]]*\"?" key "\"?[[:space:]]*=" { found = 1 }
    END { exit(found ? 0 : 1) }
  ' "$CONF"
}

# Add LINE to TABLE in CONF: right below the table header when the table exists,
# otherwise as a new table at the end.
conf_add() {
  local table="$1" line="$2" tmp
  mkdir -p "$(dirname "$CONF")"
  if (( ! backed_up )) && [[ -s "$CONF" && ! -e "$CONF.paude-orig" ]]; then
    cp -p "$CONF" "$CONF.paude-orig"
    log "saved the original as $CONF.paude-orig"
  fi
  backed_up=1
  touch "$CONF"
  tmp="$(mktemp "$CONF.XXXXXX")"
  if awk -v table="$table" '
       /^[[:space:]]*\[[^\[]/ {
         t = $0
         sub(/^[[:space:]]*\[[[:space:]]*/, "", t); sub(/[[:space:]]*\].*$/, "", t)
         if (t == table) { found = 1; exit }
       }
       END { exit(found ? 0 : 1) }
     ' "$CONF"; then
    awk -v table="$table" -v line="$line" -v mark="$MARK" '
      { print }
      !done && /^[[:space:]]*\[[^\[]/ {
        t = $0
        sub(/^[[:space:]]*\[[[:space:]]*/, "", t); sub(/[[:space:]]*\].*$/, "", t)
        if (t == table) { print mark; print line; done = 1 }
      }
    ' "$CONF" >"$tmp"
  else
    {
      cat "$CONF"
      [[ -s "$CONF" ]] && printf '\n'
      printf '[%s]\n%s\n%s\n' "$table" "$MARK" "$line"
    } >"$tmp"
  fi
  chmod 644 "$tmp"
  mv "$tmp" "$CONF"
}

has_cap() {  # has_cap BIT: is capability number BIT in this process's effective set?
  local hex
  hex="$(awk '/^CapEff:/ { print $2 }' /proc/self/status)"
  [[ -n "$hex" ]] || return 0
  (( (16#$hex >> $1) & 1 ))
}

cgroup_mode() {
  local fs
  fs="$(stat -fc %T /sys/fs/cgroup 2>/dev/null || true)"
  if [[ "$fs" == cgroup2fs ]]; then
    echo unified
  elif [[ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null || true)" == cgroup2fs ]]; then
    echo hybrid
  else
    echo legacy
  fi
}

changed=0
backed_up=0
CAP_SYS_RESOURCE=24
if has_cap "$CAP_SYS_RESOURCE"; then
  log "CAP_SYS_RESOURCE present: podman's default container rlimits work"
elif conf_has_key containers default_ulimits; then
  log "no CAP_SYS_RESOURCE; default_ulimits already set in $CONF"
else
  log "no CAP_SYS_RESOURCE: setting default_ulimits (nofile, nproc) in $CONF"
  conf_add containers 'default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]'
  changed=1
fi

mode="$(cgroup_mode)"
if [[ "$mode" != hybrid ]]; then
  log "cgroups: $mode; keeping podman's default OCI runtime"
elif conf_has_key engine runtime; then
  log "cgroups: hybrid; runtime already set in $CONF ($(grep -E '^[[:space:]]*runtime[[:space:]]*=' "$CONF" | head -1 | tr -s ' '))"
else
  log "cgroups: hybrid (crun refuses it): setting runtime = \"runc\" in $CONF"
  conf_add engine 'runtime = "runc"'
  changed=1
fi
if (( changed )); then log "updated $CONF"; fi

# --- verify ----------------------------------------------------------------------
info="$(podman info --format 'podman {{.Version.Version}}, runtime {{.Host.OCIRuntime.Name}}, cgroups {{.Host.CgroupsVersion}} ({{.Host.CgroupManager}}), network {{.Host.NetworkBackend}}, storage {{.Store.GraphDriverName}}' 2>&1)" \
  || die "podman info failed: $info"
log "$info"

image=""
for candidate in "${PAUDE_TEST_BASE_IMAGE:-}" localhost/paude-base:bookworm; do
  if [[ -n "$candidate" ]] && podman image exists "$candidate"; then image="$candidate"; break; fi
done
[[ -n "$image" ]] || image="$(podman images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null | grep -v '<none>' | head -n1 || true)"
if [[ -n "$image" ]]; then
  # Any image will do; its own entrypoint (a paude agent's waits for its proxy) is not run.
  if out="$(podman run --rm --label paude.test=ci-setup --entrypoint true "$image" 2>&1)"; then
    log "podman run --rm $image true: ok"
  else
    die "podman run --rm $image true failed: $out"
  fi
else
  log "no local image yet; skipping the podman run check (scripts/build-base-image.sh makes one)"
fi
log "done"
