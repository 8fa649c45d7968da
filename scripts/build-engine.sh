#!/usr/bin/env bash
# Build the Pulumi engine paude needs from Go modules, for sites that cannot reach
# Pulumi's download servers (air-gapped networks, locked-down CI).
#
# Produces, in DEST (default: $PAUDE_HOME/bin, i.e. ~/.paude/bin):
#   pulumi                          the CLI, stamped with its version
#   pulumi-language-python          the Python language host (when its module is served)
#   pulumi-language-python-exec     helper script the language host requires
#   pulumi-resource-pulumi-python   launcher for Python dynamic providers
#
# Built binaries are cached by version in $PAUDE_ENGINE_CACHE
# (default ~/.cache/paude/engine), so a second run only copies files.
#
# Usage: scripts/build-engine.sh [--version vX.Y.Z] [--dest DIR] [--language-host PSEUDO_VERSION]
set -euo pipefail

version="${PAUDE_PULUMI_VERSION:-v3.274.1}"
dest="${PAUDE_HOME:-$HOME/.paude}/bin"
# The language host module is untagged; its pseudo-version names the commit of the
# CLI release tag. Leave empty to skip it (inline programs do not need it).
lang_version="${PAUDE_LANGUAGE_PYTHON_VERSION:-}"
cache_root="${PAUDE_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/paude/engine}"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --version) version="$2"; shift 2 ;;
    --dest) dest="$2"; shift 2 ;;
    --language-host) lang_version="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "build-engine: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

[[ "$version" == v* ]] || version="v$version"
command -v go >/dev/null || { echo "build-engine: Go is required (https://go.dev/dl/)" >&2; exit 1; }

cache="$cache_root/$version"
log() { printf 'build-engine: %s\n' "$*" >&2; }

build_cli() {
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  log "building pulumi $version from Go modules (first build takes 10-20 minutes)"
  cat >"$work/go.mod" <<MOD
module paude.local/pulumi-engine

go 1.24

require (
	github.com/pulumi/pulumi/pkg/v3 $version
	github.com/pulumi/pulumi/sdk/v3 $version
)
MOD
  # pkg/v3 carries replace directives that `go install pkg@version` refuses; copy the
  # ones that point at other modules (not at local paths) into the wrapper module.
  local modfile
  (cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/pulumi/pulumi/pkg/v3@$version" >/dev/null)
  modfile="$(cd "$work" && go env GOMODCACHE)/cache/download/github.com/pulumi/pulumi/pkg/v3/@v/$version.mod"
  grep -E '^replace [^ ]+ => [^.][^ ]* v' "$modfile" | while read -r line; do
    log "carrying over: $line"
    printf '\n%s\n' "$line" >>"$work/go.mod"
  done
  cat >"$work/tools.go" <<'GO'
//go:build tools

package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
GO
  (cd "$work" && GOFLAGS=-mod=mod go mod tidy)
  mkdir -p "$cache"
  (cd "$work" && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" \
    -o "$cache/pulumi.tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
  mv "$cache/pulumi.tmp" "$cache/pulumi"
}

install_scripts() {
  local sdk
  sdk="$(go env GOMODCACHE)/github.com/pulumi/pulumi/sdk/v3@$version"
  [[ -d "$sdk" ]] || (cd "$(mktemp -d)" && go mod download "github.com/pulumi/pulumi/sdk/v3@$version")
  install -m 755 "$sdk/python/cmd/pulumi-language-python-exec" "$cache/pulumi-language-python-exec"
  install -m 755 "$sdk/python/dist/pulumi-resource-pulumi-python" "$cache/pulumi-resource-pulumi-python"
}

build_language_host() {
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  log "building pulumi-language-python $lang_version"
  cat >"$work/go.mod" <<MOD
module paude.local/pulumi-language-python

go 1.24

require github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3 $lang_version
MOD
  cat >"$work/tools.go" <<'GO'
//go:build tools

package tools

import _ "github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3"
GO
  (cd "$work" && GOFLAGS=-mod=mod go mod tidy)
  (cd "$work" && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" \
    -o "$cache/pulumi-language-python.tmp" github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3)
  mv "$cache/pulumi-language-python.tmp" "$cache/pulumi-language-python"
}

if [[ -x "$cache/pulumi" ]]; then
  log "using cached pulumi $version from $cache"
else
  build_cli
fi
[[ -x "$cache/pulumi-resource-pulumi-python" ]] || install_scripts
if [[ -n "$lang_version" && ! -x "$cache/pulumi-language-python" ]]; then
  build_language_host || log "warning: could not build the Python language host $lang_version (policy packs need it)"
fi

mkdir -p "$dest"
for f in "$cache"/*; do
  [[ "$f" == *.tmp ]] && continue
  install -m 755 "$f" "$dest/$(basename "$f")"
done
"$dest/pulumi" version >&2
log "engine installed in $dest"
