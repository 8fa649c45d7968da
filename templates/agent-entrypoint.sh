#!/bin/sh
# paude agent entrypoint. Runs as the unprivileged 'paude' user: starts the agent in a
# detached tmux session (`paude connect` attaches to it; Ctrl+b d detaches and the
# agent keeps running), then keeps the container alive for connect and git.
set -eu

# Exit promptly on `podman stop` instead of waiting for the kill timeout.
trap 'tmux kill-server 2>/dev/null || true; exit 0' TERM INT

if [ -n "${PAUDE_AGENT_CMD:-}" ]; then
    # PAUDE_AGENT_CMD is shell-quoted by paude, so a quoted phrase stays one argument.
    tmux new-session -d -s paude -x 200 -y 50 -c /workspace "$PAUDE_AGENT_CMD" \
        || echo "paude-agent: could not start the agent's tmux session" >&2
fi

sleep infinity &
wait $!
