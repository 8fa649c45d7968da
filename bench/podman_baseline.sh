#!/usr/bin/env bash
# Hand-written podman baseline for bench/run.py: the objects `paude apply` creates for a
# new session (images already built), made with plain podman commands.
#
#   podman_baseline.sh up     create networks, volume, proxy and agent; wait until running
#   podman_baseline.sh down   remove everything labelled paude.bench=1 with this prefix
#
# Inputs (environment):
#   BASELINE_PREFIX          object name prefix (default bench-baseline)
#   BASELINE_PROXY_IMAGE     proxy image tag, the one paude used (up only)
#   BASELINE_AGENT_IMAGE     agent image tag, the one paude used (up only)
#   BASELINE_SQUID_CONF_B64  the proxy's PAUDE_SQUID_CONF_B64, taken from paude's proxy (up only)
#   BASELINE_SETTLE          seconds each container must stay running (default 1, as paude)
set -euo pipefail

prefix=${BASELINE_PREFIX:-bench-baseline}
settle=${BASELINE_SETTLE:-1}
internal=$prefix-internal
egress=$prefix-egress
volume=$prefix-workspace
proxy=$prefix-proxy
agent=$prefix-agent
label=(--label paude.bench=1)
hardening=(--cap-drop ALL --security-opt no-new-privileges)
proxy_port=3128
timeout_s=30

die() {
    echo "podman_baseline: $*" >&2
    exit 1
}

now_us() {
    # Microseconds since the epoch, from bash itself (no subprocess per poll).
    local t=$EPOCHREALTIME
    echo $(( ${t%.*} * 1000000 + 10#${t#*.} ))
}

last_host() {
    # The last host address of an IPv4 subnet (a.b.c.d/n): where paude puts the proxy.
    local subnet=$1 addr bits a b c d n last
    addr=${subnet%/*}
    bits=${subnet#*/}
    IFS=. read -r a b c d <<<"$addr"
    n=$(( (a << 24) | (b << 16) | (c << 8) | d ))
    last=$(( (n | ((1 << (32 - bits)) - 1)) - 1 ))
    echo "$(( last >> 24 & 255 )).$(( last >> 16 & 255 )).$(( last >> 8 & 255 )).$(( last & 255 ))"
}

wait_running() {
    # Poll every 0.1 s until the container is running and has stayed up for $settle
    # seconds without a restart; fail at once if it exits (as paude's wait_running does).
    local name=$1 deadline up_since="" state running restarts status settle_us
    settle_us=$(awk -v s="$settle" 'BEGIN { printf "%d", s * 1000000 }')
    deadline=$(( $(now_us) + timeout_s * 1000000 ))
    while true; do
        state=$(podman container inspect --format '{{.State.Running}} {{.RestartCount}} {{.State.Status}}' "$name")
        read -r running restarts status <<<"$state"
        if [[ $running == true && $restarts == 0 ]]; then
            up_since=${up_since:-$(now_us)}
            if (( $(now_us) - up_since >= settle_us )); then
                return 0
            fi
        elif [[ $restarts != 0 || $status == exited || $status == stopped ]]; then
            podman logs --tail 15 "$name" >&2 || true
            die "container $name did not stay running (status $status)"
        fi
        if (( $(now_us) > deadline )); then
            die "container $name did not start within ${timeout_s}s"
        fi
        sleep 0.1
    done
}

up() {
    : "${BASELINE_PROXY_IMAGE:?set BASELINE_PROXY_IMAGE to the proxy image tag}"
    : "${BASELINE_AGENT_IMAGE:?set BASELINE_AGENT_IMAGE to the agent image tag}"
    : "${BASELINE_SQUID_CONF_B64:?set BASELINE_SQUID_CONF_B64 to the proxy configuration}"

    # No DNS on the agent's network: podman's resolver would forward outside names.
    podman network create --internal --disable-dns "${label[@]}" "$internal" >/dev/null
    podman network create "${label[@]}" "$egress" >/dev/null
    podman volume create "${label[@]}" "$volume" >/dev/null

    local subnet proxy_ip
    subnet=$(podman network inspect --format '{{range .Subnets}}{{.Subnet}} {{end}}' "$internal")
    subnet=${subnet%% *}
    [[ $subnet == */* ]] || die "network $internal has no IPv4 subnet"
    proxy_ip=$(last_host "$subnet")

    podman run --detach --name "$proxy" --hostname "$proxy" \
        --network "$internal:ip=$proxy_ip" --network "$egress" \
        "${hardening[@]}" \
        --env "PAUDE_SQUID_CONF_B64=$BASELINE_SQUID_CONF_B64" \
        "${label[@]}" --restart unless-stopped \
        "$BASELINE_PROXY_IMAGE" >/dev/null
    wait_running "$proxy"

    local proxy_url=http://$proxy:$proxy_port no_proxy=localhost,127.0.0.1,::1,$proxy
    podman run --detach --name "$agent" --hostname "$agent" \
        --network "$internal" --add-host "$proxy:$proxy_ip" --dns none \
        --user paude "${hardening[@]}" \
        --volume "$volume:/workspace" \
        --env "HTTPS_PROXY=$proxy_url" --env "HTTP_PROXY=$proxy_url" \
        --env "NO_PROXY=$no_proxy" --env "PAUDE_SESSION=$prefix" \
        --env "http_proxy=$proxy_url" --env "https_proxy=$proxy_url" \
        --env "no_proxy=$no_proxy" \
        "${label[@]}" \
        "$BASELINE_AGENT_IMAGE" >/dev/null
    wait_running "$agent"
}

down() {
    # Only objects carrying both the bench label and this prefix are touched.
    local -a containers networks volumes
    mapfile -t containers < <(podman ps --all --format '{{.Names}}' \
        --filter label=paude.bench=1 --filter "name=^$prefix-")
    mapfile -t networks < <(podman network ls --format '{{.Name}}' \
        --filter label=paude.bench=1 --filter "name=^$prefix-")
    mapfile -t volumes < <(podman volume ls --format '{{.Name}}' \
        --filter label=paude.bench=1 --filter "name=^$prefix-")
    (( ${#containers[@]} == 0 )) || podman rm --force --time 1 "${containers[@]}" >/dev/null
    (( ${#networks[@]} == 0 )) || podman network rm "${networks[@]}" >/dev/null
    (( ${#volumes[@]} == 0 )) || podman volume rm --force "${volumes[@]}" >/dev/null
}

case ${1:-} in
    up) up ;;
    down) down ;;
    *) die "usage: $0 up|down" ;;
esac
