#!/usr/bin/env bash
# Build a real OCI/Docker container registry (the CNCF Distribution `registry`
# binary) from Go modules, for integration tests that push images with podman to a
# registry on loopback. Needs only Go and the Go module proxy: no container
# registry or download site is contacted.
#
# Produces, in DEST (default: ~/.cache/paude/registry-bin):
#   registry    github.com/distribution/distribution/v3/cmd/registry, version-stamped
#
# The built binary is cached by version in $PAUDE_REGISTRY_CACHE
# (default ~/.cache/paude/registry/<version>/), so a second run only copies a file.
# Start it with scripts/run-registry.sh.
#
# Usage: scripts/build-registry.sh [--version vX.Y.Z] [--dest DIR]
#   --version  distribution/v3 release (default v3.1.2; `go list -m -versions
#              github.com/distribution/distribution/v3` lists the served ones)
#   --dest     where to copy the binary (default ~/.cache/paude/registry-bin)
set -euo pipefail

version="${PAUDE_REGISTRY_VERSION:-v3.1.2}"
cache_base="${XDG_CACHE_HOME:-$HOME/.cache}/paude"
dest="$cache_base/registry-bin"
cache_root="${PAUDE_REGISTRY_CACHE:-$cache_base/registry}"
module="github.com/distribution/distribution/v3"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --version) version="$2"; shift 2 ;;
    --dest) dest="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
    *) echo "build-registry: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

[[ "$version" == v* ]] || version="v$version"
cache="$cache_root/$version"
log() { printf 'build-registry: %s\n' "$*" >&2; }

build_registry() {
  command -v go >/dev/null || { echo "build-registry: Go is required (https://go.dev/dl/)" >&2; exit 1; }
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  log "building registry $version from Go modules (first build takes about a minute)"
  # distribution/v3's go.mod has no replace lines, so `go install pkg@version`
  # works; GOBIN points at a scratch folder so nothing lands in ~/go/bin. The
  # ldflags stamp the version as upstream's Makefile does (`registry --version`).
  (cd "$work" && GOBIN="$work/bin" GOFLAGS=-mod=mod CGO_ENABLED=0 go install -trimpath \
    -ldflags "-s -w -X $module/version.version=$version -X $module/version.mainpkg=$module" \
    "$module/cmd/registry@$version")
  mkdir -p "$cache"
  install -m 755 "$work/bin/registry" "$cache/registry.tmp"
  mv "$cache/registry.tmp" "$cache/registry"
}

if [[ -x "$cache/registry" ]]; then
  log "using cached registry $version from $cache"
else
  build_registry
fi

mkdir -p "$dest"
install -m 755 "$cache/registry" "$dest/registry"
"$dest/registry" --version >&2
log "registry installed in $dest"
