#!/usr/bin/env bash
# Write this machine's paude settings ($PAUDE_HOME/config.yaml) from what this machine can
# reach, and build the local base image when the settings name it. Settings, not the
# team's paude.yaml, are where these belong: they describe the machine.
#
#   image.base               BASE_IMAGE (built locally with debootstrap) when no container
#                            registry answers; otherwise unset (the built-in base is pulled)
#   proxy.base               PROXY_BASE_IMAGE: that base with Debian's squid rebuilt to pass
#                            inspected responses on in 64 KB pieces, not 4 KB
#                            (scripts/build-proxy-base.sh, about 10 minutes once);
#                            PAUDE_STOCK_SQUID=1 keeps Debian's binary (proxy.base: the base)
#   agent.install: npm       when Anthropic's native installer host does not answer and the
#                            npm registry does
#   image.trust_host_certificates: true
#                            when the host trusts CAs beyond the standard roots (a
#                            TLS-inspecting proxy): images built here trust them too
#   image.ca_certificates    the PEM files named in PAUDE_CA_CERTIFICATES (colon-separated)
#
# An existing file is left as it is (it is the machine owner's); what this machine would
# need is printed instead. Safe to run repeatedly.
#
# Usage: scripts/machine-config.sh BASE_IMAGE [PROXY_BASE_IMAGE]
set -euo pipefail

base="${1:?usage: machine-config.sh BASE_IMAGE [PROXY_BASE_IMAGE]}"
proxy_base="${2:-localhost/paude-proxy-base:bookworm}"
# The base the agent's images start from when no repository names one (paude's built-in).
builtin_base="docker.io/library/debian:bookworm-slim"
home="${PAUDE_HOME:-$HOME/.paude}"
file="$home/config.yaml"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf 'machine-config: %s\n' "$*" >&2; }

# Does URL answer over HTTPS (any HTTP status)? A refused or unresolvable host gives 000.
answers() {
  local code
  code="$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$1" 2>/dev/null || true)"
  [[ -n "$code" && "$code" != 000 ]]
}

settings=()
if answers https://registry-1.docker.io/v2/; then
  log "a container registry answers (docker.io): images start from the built-in base"
  local_base=0
else
  log "no container registry answers: images start from $base, built here"
  settings+=("image.base")
  local_base=1
fi
if [[ "${PAUDE_STOCK_SQUID:-}" == 1 ]]; then
  log "PAUDE_STOCK_SQUID=1: the proxy runs Debian's squid binary"
  if (( local_base )); then proxy_base="$base"; else proxy_base=""; fi
else
  log "the proxy starts from $proxy_base (Debian's squid, rebuilt with a 64 KB client buffer)"
fi
[[ -n "$proxy_base" ]] && settings+=("proxy.base")

install=""
if answers https://claude.ai/install.sh; then
  log "Anthropic's installer answers: Claude Code is installed natively"
elif answers https://registry.npmjs.org/; then
  log "Anthropic's installer does not answer, the npm registry does: Claude Code comes from npm"
  install=npm
else
  log "warning: neither Anthropic's installer nor the npm registry answers; sessions need an" \
      "image with Claude Code (agent.install: none)"
fi

host_cas=0
for dir in /usr/local/share/ca-certificates /etc/pki/ca-trust/source/anchors \
           /etc/ca-certificates/trust-source/anchors; do
  if [[ -d "$dir" ]] && find "$dir" \( -name '*.crt' -o -name '*.pem' \) -type f | grep -q .; then
    host_cas=1
  fi
done
(( host_cas )) && log "this host trusts extra CA certificates: images built here trust them too"

cas=()
if [[ -n "${PAUDE_CA_CERTIFICATES:-}" ]]; then
  IFS=: read -r -a cas <<<"$PAUDE_CA_CERTIFICATES"
  log "CA certificates from PAUDE_CA_CERTIFICATES: ${cas[*]}"
fi

if [[ -e "$file" ]]; then
  log "$file exists; leaving it as it is (paude doctor shows the settings in effect)"
  if [[ -n "$proxy_base" ]] && ! grep -qE "^[[:space:]]*base:[[:space:]]*$proxy_base([[:space:]]|$)" "$file"; then
    log "for faster downloads through inspected hosts, set proxy.base: $proxy_base there" \
        "and run this again (it builds that image)"
  fi
else
  mkdir -p "$home"
  {
    echo "# This machine's paude settings, outside every repository: written by"
    echo "# scripts/machine-config.sh from what this machine reaches. paude.yaml may override"
    echo "# image.base and agent.*; proxy.base is this machine's alone; CA certificates add up."
    echo "version: 1"
    if (( local_base || host_cas || ${#cas[@]} )); then
      echo "image:"
      (( local_base )) && echo "  base: $base"
      (( host_cas )) && echo "  trust_host_certificates: true"
      if (( ${#cas[@]} )); then
        echo "  ca_certificates:"
        for ca in "${cas[@]}"; do echo "    - $ca"; done
      fi
    fi
    [[ -n "$proxy_base" ]] && printf 'proxy:\n  base: %s\n' "$proxy_base"
    [[ -n "$install" ]] && printf 'agent:\n  install: %s\n' "$install"
    true
  } >"$file"
  log "wrote $file"
fi

# The local base image, when the settings name it (this run's or an earlier one's).
names() { grep -qE "^[[:space:]]*base:[[:space:]]*$1([[:space:]]|$)" "$file"; }
if names "$base"; then
  bash "$here/build-base-image.sh" "$base"
fi
# The proxy's base, when the settings name it: built on this machine's agent base.
if [[ "$proxy_base" != "$base" ]] && names "$proxy_base"; then
  if names "$base"; then from="$base"; else from="$builtin_base"; fi
  bash "$here/build-proxy-base.sh" "$from" "$proxy_base"
fi
