# Sourced by scripts/run-node.sh: how the test node finds its own processes, cgroups,
# chains and sets again, and stop_all, which removes them (--stop, or a start that
# failed half-way). Reads the caller's variables: dir, bin, pids_file, sock, node_name,
# bridge, cgroup_root, router_sets, router_chains, and log().
# shellcheck shell=bash

ours() {
  local pid="$1" cmdline
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *"$dir/"* ]]
}

end_process() {
  local name="$1" pid="$2" i
  ours "$pid" || return 0
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do ours "$pid" || return 0; sleep 0.1; done
  log "$name did not exit after 10 s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

kubectl_() { "$bin/kubectl" --kubeconfig "$(cat "$dir/kubeconfig-path")" "$@"; }
ctr_() { ctr --address "$sock" --namespace k8s.io "$@"; }

# The cgroupRoot in every hierarchy: the v1 ones ("N:controllers:/" lines of
# /proc/self/cgroup) and, in hybrid mode, the v2 one runc also places containers in.
cgroup_dirs() {
  local line ctrls mnt
  while IFS= read -r line; do
    ctrls="$(cut -d: -f2 <<<"$line")"
    if [[ -z "$ctrls" ]]; then
      mnt=/sys/fs/cgroup/unified
    else
      mnt="/sys/fs/cgroup/${ctrls#name=}"
    fi
    if [[ -d "$mnt" ]]; then printf '%s\n' "$mnt/$cgroup_root"; fi
  done </proc/self/cgroup
}

# Delete chains matching REGEX that are not in the list BEFORE (one "table chain" a
# line), in the iptables of COMMAND (iptables-legacy, ip6tables-nft, ...), with the rules
# in other chains that jump to them.
drop_chains() {
  local cmd="$1" regex="$2" before="$3" table chain rule
  command -v "$cmd" >/dev/null || return 0
  for table in filter nat mangle; do
    "$cmd" -t "$table" -S >/dev/null 2>&1 || continue
    while read -r chain; do
      [[ "$chain" =~ $regex ]] || continue
      grep -qxF "$table $chain" "$before" 2>/dev/null && continue
      while IFS= read -r rule; do
        # shellcheck disable=SC2086  # the rule's own words, as iptables -S prints them
        eval "\"$cmd\" -t \"$table\" -D ${rule#-A }" 2>/dev/null || true
      done < <("$cmd" -t "$table" -S 2>/dev/null | grep -E -- "^-A .* -j $chain( |$)" || true)
      "$cmd" -t "$table" -F "$chain" 2>/dev/null || true
    done < <("$cmd" -t "$table" -S 2>/dev/null | awk '$1 == "-N" { print $2 }')
    while read -r chain; do
      [[ "$chain" =~ $regex ]] || continue
      grep -qxF "$table $chain" "$before" 2>/dev/null && continue
      log "removing $cmd -t $table chain $chain"
      "$cmd" -t "$table" -X "$chain" 2>/dev/null || log "could not remove $cmd -t $table $chain"
    done < <("$cmd" -t "$table" -S 2>/dev/null | awk '$1 == "-N" { print $2 }')
  done
}

list_chains() {
  local cmd="$1" table
  for table in filter nat mangle; do
    "$cmd" -t "$table" -S 2>/dev/null | awk -v t="$table" '$1 == "-N" { print t, $2 }' || true
  done
}

stop_all() {
  local name pid i mnt ns cg
  if [[ -f "$pids_file" ]] && ours "$(awk '$1 == "kubelet" { print $2 }' "$pids_file")" \
      && [[ -s "$dir/kubeconfig-path" ]]; then
    # Removed from the API, the pods are killed by the kubelet, which has CNI release
    # their addresses and veths and containerd remove their network namespaces.
    log "deleting the pods on $node_name"
    kubectl_ delete pods --all-namespaces --field-selector "spec.nodeName=$node_name" \
      --grace-period=0 --force --wait=false --request-timeout=20s >/dev/null 2>&1 || true
    for ((i = 0; i < 60; i++)); do
      [[ -z "$(ctr_ tasks ls -q 2>/dev/null)" ]] && break
      sleep 0.5
    done
    # StopPodSandbox tears the network down after the tasks end.
    sleep 2
  fi
  if [[ -f "$pids_file" ]]; then
    for name in kube-scheduler kube-controller-manager kube-proxy kube-router kubelet coredns; do
      end_process "$name" "$(awk -v n="$name" '$1 == n { print $2 }' "$pids_file")"
    done
    if [[ -S "$sock" ]]; then
      for pid in $(ctr_ tasks ls -q 2>/dev/null); do
        ctr_ tasks kill --signal SIGKILL "$pid" >/dev/null 2>&1 || true
      done
    fi
    end_process containerd "$(awk '$1 == "containerd" { print $2 }' "$pids_file")"
  fi
  # Shims outlive containerd, and the pods' processes their shims.
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*$sock" || true); do
    end_process containerd-shim "$pid"
  done
  while read -r cg; do
    [[ -d "$cg" ]] || continue
    find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | while read -r pid; do
      kill -KILL "$pid" 2>/dev/null || true
    done
  done < <(cgroup_dirs)
  sleep 0.5
  while read -r cg; do
    if [[ -d "$cg" ]]; then find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
    if [[ -d "$cg" ]]; then log "cgroup $cg is still there"; fi
  done < <(cgroup_dirs)
  # Mounts: containerd's snapshots and the kubelet's volumes, deepest first.
  while read -r mnt; do
    umount -l "$mnt" 2>/dev/null || log "could not unmount $mnt"
  done < <(findmnt -rn -o TARGET | grep -F -- "$dir/" | sort -r)
  if [[ -f "$dir/netns.before" ]]; then
    for ns in /run/netns/cni-*; do
      [[ -e "$ns" ]] || continue
      grep -qxF "${ns##*/}" "$dir/netns.before" && continue
      log "removing network namespace $ns"
      umount "$ns" 2>/dev/null || true
      rm -f "$ns"
    done
  fi
  if ip link show "$bridge" >/dev/null 2>&1; then
    log "removing bridge $bridge"
    ip link delete "$bridge"
  fi
  for family in ip ip6; do
    if nft list table "$family" kube-proxy >/dev/null 2>&1; then
      log "removing nftables table $family kube-proxy"
      nft delete table "$family" kube-proxy || log "could not remove table $family kube-proxy"
    fi
  done
  drop_chains iptables-legacy "$router_chains" /dev/null
  drop_chains ip6tables-legacy "$router_chains" /dev/null
  drop_chains iptables-nft '^(KUBE-|CNI-)' "$dir/chains4.before"
  drop_chains ip6tables-nft '^(KUBE-|CNI-)' "$dir/chains6.before"
  if command -v ipset >/dev/null; then
    { ipset list -n 2>/dev/null | grep -E "$router_sets" || true; } | while read -r name; do
      ipset destroy "$name" 2>/dev/null || log "could not destroy ipset $name"
    done
  fi
  rm -f "$pids_file"
}
