#!/bin/sh
# paude agent entrypoint: keeps the sandbox alive for `paude connect` and git exec.
# Runs as the unprivileged 'paude' user.
set -eu

mkdir -p "$HOME" 2>/dev/null || true

# Exit promptly on `podman stop` instead of waiting for the kill timeout.
trap 'exit 0' TERM INT
sleep infinity &
wait $!
