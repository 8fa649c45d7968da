#!/usr/bin/env bash
# Write this machine's paude settings ($PAUDE_HOME/config.yaml) unless the file exists:
# the base image every session's agent and proxy images start from when paude.yaml names
# none. The proxy's base is only ever read from here, never from a repository.
#
# Usage: scripts/machine-config.sh BASE_IMAGE
set -euo pipefail

base="${1:?usage: machine-config.sh BASE_IMAGE}"
home="${PAUDE_HOME:-$HOME/.paude}"
file="$home/config.yaml"
if [[ -e "$file" ]]; then
  echo "machine-config: $file exists; leaving it as it is"
  exit 0
fi
mkdir -p "$home"
cat >"$file" <<YAML
# This machine's paude settings (outside every repository). See docs/security.md.
version: 1
image:
  base: $base        # the agent's base when paude.yaml names none
proxy:
  base: $base        # the egress proxy's base; no repository can choose it
YAML
echo "machine-config: wrote $file"
