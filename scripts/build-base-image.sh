#!/usr/bin/env bash
# Build paude's test base image locally, for machines that cannot pull from a
# container registry: a minimal Debian root filesystem made with debootstrap and
# imported into podman.
#
# Usage: scripts/build-base-image.sh [TAG]      (default TAG: localhost/paude-base:bookworm)
#
#   1. TAG already in podman storage, of this format -> nothing to do
#   2. cached archive $PAUDE_IMAGE_CACHE/<tag>.v2.tar (default ~/.cache/paude/images)
#                                              -> podman load
#   3. otherwise debootstrap + podman import, then podman save into the cache, so a
#      reset of podman's storage does not force a rebuild
#
# The image's apt sources carry the suite, its -updates and its -security archive, and
# the image is upgraded from them when it is built: what debootstrap installs is the last
# point release, and every image built on this one (the proxy's squid and OpenSSL above
# all) must get Debian's security fixes, as with Debian's own published images.
#
# Environment:
#   PAUDE_IMAGE_CACHE     where archives are cached (default ~/.cache/paude/images)
#   PAUDE_BASE_SUITE      Debian suite to bootstrap (default: bookworm)
#   PAUDE_DEBIAN_MIRROR   archive to use (default: the Debian archive in this
#                         machine's apt sources, else http://deb.debian.org/debian)
#   PAUDE_DEBIAN_SECURITY_MIRROR
#                         security archive (default: the one in this machine's apt
#                         sources, else http://deb.debian.org/debian-security)
#   PAUDE_BUILD_TMP       scratch directory for the root filesystem (default /var/tmp)
#
# Needs root (debootstrap), podman and debootstrap (scripts/setup-podman.sh installs them).
set -euo pipefail

tag="${1:-localhost/paude-base:bookworm}"
suite="${PAUDE_BASE_SUITE:-bookworm}"
include="ca-certificates,git,curl,python3"
cache_dir="${PAUDE_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/paude/images}"
# Bumped when the image's content changes meaning: an older image or archive is rebuilt.
format=2
archive="$cache_dir/$(printf '%s' "$tag" | tr -c 'A-Za-z0-9._-' '_').v$format.tar"
start=$SECONDS

log() { printf 'build-base-image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

case "${1:-}" in -h|--help) sed -n '2,29p' "$0"; exit 0 ;; esac
command -v podman >/dev/null || die "podman is not installed (run scripts/setup-podman.sh)"

current() {
  [[ "$(podman image inspect --format '{{ index .Labels "paude.base-format" }}' "$tag" \
        2>/dev/null)" == "$format" ]]
}

# shellcheck source=scripts/lib-image-cache.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-image-cache.sh"
present_or_lock .lock

load_archive() {
  local out loaded
  log "loading $tag from $archive"
  if ! out="$(podman load -i "$archive" 2>&1)"; then
    log "could not load $archive: $out"
    return 1
  fi
  if ! podman image exists "$tag"; then
    # An archive saved under another name: tag what it contained.
    loaded="$(printf '%s\n' "$out" | sed -n 's/^Loaded image(s)\{0,1\}: *//p' | tr ',' '\n' | head -n1)"
    [[ -n "$loaded" ]] && podman tag "$loaded" "$tag"
  fi
  current
}

if [[ -f "$archive" ]]; then
  if load_archive; then
    log "$tag loaded from the cache in $((SECONDS - start)) s"
    exit 0
  fi
  log "discarding the unusable archive $archive"
  rm -f "$archive"
fi

# --- build with debootstrap ------------------------------------------------------
[[ $(id -u) -eq 0 ]] || die "building the image needs root (debootstrap); run with sudo"
command -v debootstrap >/dev/null || die "debootstrap is not installed (run scripts/setup-podman.sh)"

# The Debian archive from this machine's apt sources: the first entry that carries
# the suite itself (not -security/-updates), from one-line .list files or deb822
# .sources files.
apt_mirror() {
  local f suite="$1"
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    awk -v suite="$suite" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit }
      }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    awk -v suite="$suite" '
      function flush() {
        if (!done && deb && enabled && has_suite && uri != "") { print uri; done = 1; exit }
        deb = 0; enabled = 1; has_suite = 0; uri = ""
      }
      BEGIN { enabled = 1 }
      /^[[:space:]]*$/ { flush(); next }
      /^#/ { next }
      tolower($1) == "types:"   { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
      tolower($1) == "enabled:" { enabled = (tolower($2) != "no") }
      tolower($1) == "suites:"  { for (i = 2; i <= NF; i++) if ($i == suite) has_suite = 1 }
      tolower($1) == "uris:"    { uri = $2 }
      END { flush() }' "$f"
  done
}

mirror="${PAUDE_DEBIAN_MIRROR:-}"
if [[ -z "$mirror" ]]; then
  mirror="$(apt_mirror "$suite" 2>/dev/null | grep -E '^https?://' | head -n1 || true)"
fi
mirror="${mirror:-http://deb.debian.org/debian}"
mirror="${mirror%/}"
security="${PAUDE_DEBIAN_SECURITY_MIRROR:-}"
if [[ -z "$security" ]]; then
  security="$(apt_mirror "$suite-security" 2>/dev/null | grep -E '^https?://' | head -n1 || true)"
fi
security="${security:-http://deb.debian.org/debian-security}"
security="${security%/}"

work="$(mktemp -d "${PAUDE_BUILD_TMP:-/var/tmp}/paude-base.XXXXXX")"
cleanup() {
  # debootstrap mounts proc/sys inside the root filesystem; never delete through a mount.
  local m
  if [[ -d "$work" ]]; then
    awk -v root="$work/" 'index($2, root) == 1 { print $2 }' /proc/self/mounts | sort -r |
      while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf --one-file-system "$work"
  fi
  rm -f "$archive.tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rootfs="$work/rootfs"

log "debootstrap $suite ($include) from $mirror into $rootfs (about a minute)"
t0=$SECONDS
keyring=()
[[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] \
  && keyring=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
if ! debootstrap --variant=minbase --include="$include" "${keyring[@]}" \
    "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 30 "$work/debootstrap.log" >&2
  [[ -f "$rootfs/debootstrap/debootstrap.log" ]] && tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2
  die "debootstrap failed"
fi
log "debootstrap done in $((SECONDS - t0)) s"

printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' \
  "$mirror" "$suite" "$mirror" "$suite" "$security" "$suite" >"$rootfs/etc/apt/sources.list"
log "upgrading from $suite-updates and $suite-security ($security)"
t0=$SECONDS
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
mount -t proc proc "$rootfs/proc"
if ! chroot "$rootfs" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
    'apt-get update -qq && apt-get upgrade -y -qq' >"$work/upgrade.log" 2>&1; then
  tail -n 30 "$work/upgrade.log" >&2
  die "upgrading the root filesystem failed (the Debian archive must answer)"
fi
umount "$rootfs/proc"
log "upgraded in $((SECONDS - t0)) s"

# Keep the image small: downloaded packages and package lists go (a build runs
# `apt-get update` first anyway); the host's identity does not belong in an image.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
  "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/apt/* "$rootfs"/var/log/dpkg.log \
  "$rootfs"/var/log/bootstrap.log
mkdir -p "$rootfs/var/lib/apt/lists/partial"
# Documentation, manual pages and translations are dead weight in a sandbox image;
# leave them out now and in later `apt-get install`s (as Debian's slim images do).
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/paude-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
CFG
find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/groff/* \
  "$rootfs"/usr/share/lintian/* "$rootfs"/usr/share/linda/*
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
: >"$rootfs/etc/hostname"
: >"$rootfs/etc/resolv.conf"
log "root filesystem: $(du -sh --one-file-system "$rootfs" | cut -f1)"

log "importing as $tag"
t0=$SECONDS
tar --numeric-owner -C "$rootfs" -c . | podman import --quiet \
  --change 'CMD ["/bin/bash"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change "LABEL paude.base-format=$format" \
  --change "LABEL org.opencontainers.image.description=\"Debian $suite minbase ($include) from $mirror\"" \
  - "$tag" >/dev/null
log "imported in $((SECONDS - t0)) s"

log "saving to $archive"
t0=$SECONDS
podman save --quiet --format docker-archive -o "$archive.tmp" "$tag" >/dev/null
mv "$archive.tmp" "$archive"
# An archive of an older format (no -security sources) is never loaded again.
rm -f "${archive%.v$format.tar}.tar"
log "saved ($(du -h "$archive" | cut -f1)) in $((SECONDS - t0)) s"

if out="$(podman run --rm "$tag" python3 -c 'print("ok")' 2>&1)"; then
  log "smoke test: podman run $tag python3: $out"
else
  log "warning: podman run $tag failed (scripts/setup-podman.sh configures podman): $out"
fi
log "built $tag in $((SECONDS - start)) s"
