#!/usr/bin/env bash
# Build the proxy's base image: the base image with Debian's squid-openssl installed, its
# squid binary rebuilt from Debian's own source of the same version with one constant
# changed. Name it as proxy.base in $PAUDE_HOME/config.yaml (machine-config.sh does).
#
# Usage: scripts/build-proxy-base.sh [--refresh] BASE [TAG]
#        (default TAG: localhost/paude-proxy-base:bookworm)
#
# Why: squid hands a response it decrypted (a host with method/path rules) to the client
# HTTP_REQBUF_SZ bytes at a time, 4 KB in Debian's build and not configurable, so a bulk
# download through an inspected host costs one event-loop turn, TLS record and write()
# per 4 KB (bench/egress.md). This build makes it 64 KB. Nothing else changes: Debian's
# source with Debian's patches, configured with the options Debian's binary reports,
# fetched through apt (verified against the archive's signed index).
#
# Security updates still win: the proxy image runs `apt-get install squid-openssl` on top
# of this base, and a newer package from the archive replaces the rebuilt binary with
# Debian's. `squid -v` says which one runs ("paude rebuild" in its build info). --refresh
# (`make proxy-base`) asks the archive and rebuilds when it has a newer squid-openssl.
#
#   1. TAG in podman storage, built from BASE as it is now -> nothing to do
#   2. such an image in the archive $PAUDE_IMAGE_CACHE/<tag>.tar -> podman load
#   3. otherwise build (about 10 minutes on two cores), then podman save into the cache
set -euo pipefail

refresh=0
if [[ "${1:-}" == --refresh ]]; then refresh=1; shift; fi
base="${1:?usage: build-proxy-base.sh [--refresh] BASE [TAG]}"
tag="${2:-localhost/paude-proxy-base:bookworm}"
cache_dir="${PAUDE_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/paude/images}"
archive="$cache_dir/$(printf '%s' "$tag" | tr -c 'A-Za-z0-9._-' '_').tar"
start=$SECONDS
# The size squid copies responses to clients in; Debian's is 4096.
reqbuf=65536

log() { printf 'build-proxy-base: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

case "$base" in -h|--help) sed -n '2,23p' "$0"; exit 0 ;; esac
command -v podman >/dev/null || die "podman is not installed (run scripts/setup-podman.sh)"
if ! podman image exists "$base"; then
  [[ "$base" == localhost/* ]] && die "the base image $base is missing (scripts/build-base-image.sh builds it)"
  podman pull -q "$base" >/dev/null || die "cannot pull the base image $base"
fi
# The image records the base it was built on: a rebuilt base (security updates) rebuilds it.
from="$(podman image inspect --format '{{.Id}}' "$base")"
built_from_base() {
  [[ "$(podman image inspect --format '{{ index .Labels "paude.proxy-base-from" }}' "$tag" \
        2>/dev/null)" == "$from" ]]
}
# With --refresh: the archive's squid-openssl is still the one rebuilt (a security release
# would otherwise replace the rebuild in every proxy image). An archive that does not
# answer keeps the image, with a warning.
checked_id="" checked_verdict=0
squid_current() {
  (( refresh )) || return 0
  local id versions
  # Asked once per image: the lock and the archive come back here.
  id="$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null)" || return 1
  [[ "$id" == "$checked_id" ]] && return "$checked_verdict"
  checked_id="$id" checked_verdict=0
  if ! versions="$(podman run --rm "$tag" sh -c 'apt-get update -qq >/dev/null 2>&1 &&
        dpkg-query -W -f="\${Version} " squid-openssl &&
        apt-cache policy squid-openssl | sed -n "s/^ *Candidate: //p"')"; then
    log "warning: cannot ask Debian's archive for a newer squid; keeping $tag"
    return 0
  fi
  read -r installed candidate <<<"$versions"
  if [[ -n "$candidate" && "$installed" != "$candidate" ]]; then
    log "the archive has squid-openssl $candidate (the rebuild is $installed): rebuilding"
    checked_verdict=1
    return 1
  fi
}
current() { built_from_base && squid_current; }

# shellcheck source=scripts/lib-image-cache.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-image-cache.sh"
present_or_lock .proxy-base.lock

if [[ -f "$archive" ]]; then
  if podman load -q -i "$archive" >/dev/null 2>&1 && current; then
    log "$tag loaded from the cache in $((SECONDS - start)) s"
    exit 0
  fi
  log "discarding the unusable archive $archive"
  rm -f "$archive"
fi

work="$(mktemp -d "${PAUDE_BUILD_TMP:-/var/tmp}/paude-proxy-base.XXXXXX")"
trap 'rm -rf "$work" "$archive.tmp"' EXIT
trap 'exit 130' INT TERM

# configure's options, read from Debian's own binary and given back as separate arguments
# (no shell evaluation of them); only the build info changes, so `squid -v` tells.
cat >"$work/configure.py" <<'EOF'
import re, shlex, subprocess, sys
out = subprocess.run(["/usr/sbin/squid", "-v"], capture_output=True, text=True, check=True).stdout
found = re.search(r"configure options:\s*(.*)", out)
if not found:
    sys.exit("squid -v printed no configure options")
args = [a.replace("${prefix}", "/usr") for a in shlex.split(found[1])]
args = [a for a in args if not a.startswith("--enable-build-info=")]
args.append("--enable-build-info=Debian linux, paude rebuild: HTTP_REQBUF_SZ " + sys.argv[1])
sys.exit(subprocess.run(["./configure", *args], stdout=subprocess.DEVNULL).returncode)
EOF

cat >"$work/Containerfile" <<EOF
FROM $base AS build
USER root
ENV DEBIAN_FRONTEND=noninteractive
RUN sed -n 's/^deb /deb-src /p' /etc/apt/sources.list > /etc/apt/sources.list.d/paude-src.list \\
 && for f in /etc/apt/sources.list.d/*.sources; do [ -f "\$f" ] && sed 's/^Types: deb\$/Types: deb-src/' "\$f" > "\$f.src.sources" || true; done \\
 && apt-get update -qq \\
 && apt-get build-dep -y -qq squid >/dev/null \\
 && apt-get install -y -qq --no-install-recommends squid-openssl >/dev/null \\
 && dpkg-query -W -f='\${Version}' squid-openssl > /squid-version \\
 && mkdir /src && cd /src && apt-get source -qq "squid=\$(cat /squid-version)" >/dev/null
COPY configure.py /configure.py
RUN cd /src/squid-*/ \\
 && grep -q '^#define HTTP_REQBUF_SZ  4096\$' src/defines.h \\
 && sed -i 's/^#define HTTP_REQBUF_SZ  4096\$/#define HTTP_REQBUF_SZ  $reqbuf/' src/defines.h \\
 && autoreconf -fi >/dev/null 2>&1 \\
 && python3 /configure.py $reqbuf \\
 && make -j"\$(nproc)" >/dev/null \\
 && install -s -m 0755 src/squid /squid

FROM $base
USER root
ENV DEBIAN_FRONTEND=noninteractive
COPY --from=build /squid-version /squid /tmp/
RUN apt-get update -qq \\
 && apt-get install -y -qq --no-install-recommends "squid-openssl=\$(cat /tmp/squid-version)" >/dev/null \\
 && rm -rf /var/lib/apt/lists/* \\
 && install -m 0755 /tmp/squid /usr/sbin/squid \\
 && rm /tmp/squid /tmp/squid-version \\
 && /usr/sbin/squid -v | grep -q 'paude rebuild: HTTP_REQBUF_SZ $reqbuf'
EOF

log "building $tag from $base: Debian's squid source, HTTP_REQBUF_SZ $reqbuf (about 10 minutes)"
podman build --quiet --layers=false --tag "$tag" --label "paude.squid-reqbuf=$reqbuf" \
  --label "paude.proxy-base-from=$from" --file "$work/Containerfile" "$work" >/dev/null \
  || die "the build failed; rerun to retry (Debian's archive must answer)"
log "built $tag in $((SECONDS - start)) s; saving it to $archive"
podman save -q -o "$archive.tmp" "$tag" && mv "$archive.tmp" "$archive"
