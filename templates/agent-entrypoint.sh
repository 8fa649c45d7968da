#!/bin/sh
# paude agent entrypoint. Runs as the unprivileged 'paude' user: links the agent's
# persistent state, starts the agent in a detached tmux session (`paude connect`
# attaches; Ctrl+b d detaches and the agent keeps running), then stays alive for
# connect and git.
set -eu

# Exit promptly on `podman stop` instead of waiting for the kill timeout.
trap 'tmux kill-server 2>/dev/null || true; exit 0' TERM INT

# The proxy inspects some hosts with the session's CA: trust it beside the system's roots
# (SSL_CERT_FILE and friends point at this bundle).
if [ -n "${PAUDE_SESSION_CA:-}" ]; then
    mkdir -p /tmp/paude-ca
    { cat /etc/ssl/certs/ca-certificates.crt 2>/dev/null || true; printf '%s\n' "$PAUDE_SESSION_CA"; } \
        > /tmp/paude-ca/bundle.pem.new
    mv /tmp/paude-ca/bundle.pem.new /tmp/paude-ca/bundle.pem
fi

# A new podman volume starts as a copy of the image's /paude; a cluster's claim starts
# empty, and the pod starts in /paude (the image's /workspace links into it).
mkdir -p /paude/workspace /paude/home
cd /workspace

state=/paude/home
seed="$HOME/.paude-seed"
# ~/.claude and ~/.claude.json live on the session's volume. paude copies the user's
# into the seed folder; they seed the state once, so the agent's history is kept.
for name in .claude .claude.json; do
    if [ -e "$seed/$name" ] && [ ! -e "$state/.seeded$name" ]; then
        rm -rf "${state:?}/$name"
        cp -a "$seed/$name" "$state/$name"
        touch "$state/.seeded$name"
    fi
    if [ ! -L "$HOME/$name" ]; then
        rm -rf "${HOME:?}/$name"
        ln -s "$state/$name" "$HOME/$name"
    fi
done
mkdir -p "$state/.claude"

# PAUDE_AGENT_CMD is shell-quoted by paude, so a quoted phrase stays one argument.
# A headless prompt (PAUDE_AGENT_ONCE_CMD) runs on the first start only.
cmd="${PAUDE_AGENT_CMD:-}"
if [ -n "${PAUDE_AGENT_ONCE_CMD:-}" ]; then
    digest=$(printf '%s' "$PAUDE_AGENT_ONCE_CMD" | sha256sum | cut -c1-16)
    if [ "$(cat "$state/.paude-once" 2>/dev/null || true)" != "$digest" ]; then
        printf '%s\n' "$digest" > "$state/.paude-once"
        # The prompt is about the user's code: wait until it has been pushed in, and the
        # session's setup (paude-setup) has prepared it.
        cmd="until git -C /workspace rev-parse -q --verify HEAD >/dev/null 2>&1; do sleep 1; done; until paude-setup finished; do sleep 1; done; $PAUDE_AGENT_ONCE_CMD"
    fi
fi
# The proxy and the model gateway start alongside the agent: wait (up to 30 s) until they
# accept connections, so the agent's first request does not fail. Asked every 50 ms: a new
# session is ready only once this has passed, and the proxy opens its port within a second.
hostport="${HTTPS_PROXY#http://}"
hostport="${hostport%/}"
for target in ${HTTPS_PROXY:+"$hostport"} ${PAUDE_GATEWAY:+"$PAUDE_GATEWAY"}; do
    [ -n "$cmd" ] || break
    bash -c 'for _ in $(seq 600); do (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && exit 0
             sleep 0.05; done; exit 1' _ "${target%%:*}" "${target##*:}" \
        || echo "paude-agent: $target is not reachable yet" >&2
done
# The container's own virtual environment (venv: auto or a list) comes first on the agent's
# PATH, before it exists: paude-setup creates it after the first push. Login shells get
# it from /etc/profile.d.
case "${PAUDE_VENV:-none}" in
    none|"") ;;
    auto) export PATH="/workspace/.venv/bin:$PATH" ;;
    *) export PATH="/workspace/${PAUDE_VENV%%:*}/bin:$PATH" ;;
esac
if [ -n "$cmd" ]; then
    tmux new-session -d -s paude -x 200 -y 50 -c /workspace "$cmd" \
        || echo "paude-agent: could not start the agent's tmux session" >&2
fi

sleep infinity &
keep=$!
# The session's setup runs once, after the first push (see paude-setup); started after
# `sleep`, which tells paude the container is ready.
paude-setup wait &
wait $keep
