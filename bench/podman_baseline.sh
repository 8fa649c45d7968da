#!/usr/bin/env bash
# Hand-written podman baseline for bench/run.py: the objects `paude apply` creates for a
# new session (images already built), made with plain podman commands.
#
#   podman_baseline.sh up     create networks, volume, proxy, gateway and agent; wait until running
#   podman_baseline.sh down   remove everything labelled paude.bench=1 with this prefix
#
# Inputs (environment):
#   BASELINE_PREFIX          object name prefix (default bench-baseline)
#   BASELINE_PROXY_IMAGE     proxy image tag, the one paude used (up only)
#   BASELINE_AGENT_IMAGE     agent image tag, the one paude used (up only)
#   BASELINE_ENV_DIR         proxy.sh, gateway.sh and agent.sh: each container's variables
#                            and limits, copied by bench/run.py from paude's containers (up only)
#   BASELINE_SETTLE          seconds each container must stay running (default 1; 0 = the
#                            plain commands, returning once each container runs)
set -euo pipefail

prefix=${BASELINE_PREFIX:-bench-baseline}
settle=${BASELINE_SETTLE:-1}
internal=$prefix-internal
egress=$prefix-egress
volume=$prefix-workspace
proxy=$prefix-proxy
gateway=$prefix-gateway
agent=$prefix-agent
proxy_ip=
gateway_ip=
label=(--label paude.bench=1)
hardening=(--cap-drop ALL --security-opt no-new-privileges)
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
    # The Nth host address from the top of an IPv4 subnet (a.b.c.d/n): paude puts the
    # proxy on the last (1) and the gateway just below it (2).
    local subnet=$1 from_top=$2 addr bits a b c d n last
    addr=${subnet%/*}
    bits=${subnet#*/}
    IFS=. read -r a b c d <<<"$addr"
    n=$(( (a << 24) | (b << 16) | (c << 8) | d ))
    last=$(( (n | ((1 << (32 - bits)) - 1)) - from_top ))
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

run_container() {
    # podman run of one container, with the variables and limits paude gave its own
    # (BASELINE_ENV_DIR/ROLE.sh). Values name the session's objects and addresses through
    # @PREFIX@, @PROXY_IP@ and @GATEWAY_IP@. Variables pass as bare `--env NAME`, as paude
    # passes its secrets: no value shows in argv.
    local role=$1
    shift
    (
        # shellcheck source=/dev/null
        . "$BASELINE_ENV_DIR/$role.sh"
        local name value
        local -a env_args=()
        for name in "${env_names[@]}"; do
            value=${!name}
            value=${value//@PREFIX@/$prefix}
            value=${value//@PROXY_IP@/$proxy_ip}
            value=${value//@GATEWAY_IP@/$gateway_ip}
            export "$name=$value"
            env_args+=(--env "$name")
        done
        podman run --detach "${run_args[@]}" "${env_args[@]}" "$@" >/dev/null
    )
}

up() {
    : "${BASELINE_PROXY_IMAGE:?set BASELINE_PROXY_IMAGE to the proxy image tag}"
    : "${BASELINE_AGENT_IMAGE:?set BASELINE_AGENT_IMAGE to the agent image tag}"
    : "${BASELINE_ENV_DIR:?set BASELINE_ENV_DIR to the folder of proxy.sh, gateway.sh, agent.sh}"

    # No DNS on the agent's network: podman's resolver would forward outside names.
    podman network create --internal --disable-dns "${label[@]}" "$internal" >/dev/null
    podman network create "${label[@]}" "$egress" >/dev/null
    podman volume create "${label[@]}" "$volume" >/dev/null

    local subnet
    subnet=$(podman network inspect --format '{{range .Subnets}}{{.Subnet}} {{end}}' "$internal")
    subnet=${subnet%% *}
    [[ $subnet == */* ]] || die "network $internal has no IPv4 subnet"
    proxy_ip=$(last_host "$subnet" 1)
    gateway_ip=$(last_host "$subnet" 2)

    # paude starts the three together (the agent's entrypoint waits for the proxy's port).
    run_container proxy --name "$proxy" --hostname "$proxy" \
        --network "$internal:ip=$proxy_ip" --network "$egress" \
        "${hardening[@]}" "${label[@]}" --restart unless-stopped \
        "$BASELINE_PROXY_IMAGE"
    run_container gateway --name "$gateway" --hostname "$gateway" \
        --network "$internal:ip=$gateway_ip" --dns none \
        "${hardening[@]}" "${label[@]}" --restart unless-stopped \
        "$BASELINE_PROXY_IMAGE" gateway
    run_container agent --name "$agent" --hostname "$agent" \
        --network "$internal" --add-host "$proxy:$proxy_ip" --add-host "$gateway:$gateway_ip" \
        --dns none --user paude "${hardening[@]}" \
        --sysctl net.ipv6.conf.all.disable_ipv6=1 --sysctl net.ipv6.conf.default.disable_ipv6=1 \
        --volume "$volume:/paude" "${label[@]}" \
        "$BASELINE_AGENT_IMAGE"
    wait_running "$proxy"
    wait_running "$gateway"
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
