#!/usr/bin/env bash
# Build the Pulumi engine paude needs from Go modules, for sites that cannot reach
# Pulumi's download servers (air-gapped networks, locked-down CI).
#
# Produces, in DEST (default: $PAUDE_HOME/bin, i.e. ~/.paude/bin):
#   pulumi                          the CLI, stamped with its version
#   pulumi-language-python          the Python language host (when its module is served)
#   pulumi-language-python-exec     helper script the language host requires
#   pulumi-resource-pulumi-python   launcher for Python dynamic providers
#   pulumi-resource-kubernetes      the pulumi-kubernetes provider plugin (--kubernetes only)
#
# Built binaries are cached by version in $PAUDE_ENGINE_CACHE
# (default ~/.cache/paude/engine), so a second run only copies files.
#
# Usage: scripts/build-engine.sh [--version vX.Y.Z] [--dest DIR] [--language-host PSEUDO_VERSION]
#          [--kubernetes [--kubernetes-module PSEUDO_VERSION --kubernetes-version X.Y.Z]]
set -euo pipefail

version="${PAUDE_PULUMI_VERSION:-v3.274.1}"
dest="${PAUDE_HOME:-$HOME/.paude}/bin"
# The language host module is untagged; its pseudo-version names the commit of the
# CLI release tag. Leave empty to skip it (inline programs do not need it).
lang_version="${PAUDE_LANGUAGE_PYTHON_VERSION:-}"
cache_root="${PAUDE_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/paude/engine}"
# pulumi-kubernetes' provider module (github.com/pulumi/pulumi-kubernetes/provider/v4)
# has no tags of its own, only pseudo-versions. The pinned one is the commit released
# to PyPI as pulumi-kubernetes 4.25.0a1768448096 (declared plugin version
# 4.25.0-alpha.1768448096): upstream stamps `<next release>-alpha.<commit unix time>`.
kubernetes=0
k8s_module_default="v4.0.0-20260115033456-f47bc2d6f199"
k8s_module="${PAUDE_KUBERNETES_MODULE:-$k8s_module_default}"
k8s_version="${PAUDE_KUBERNETES_VERSION:-}"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --version) version="$2"; shift 2 ;;
    --dest) dest="$2"; shift 2 ;;
    --language-host) lang_version="$2"; shift 2 ;;
    --kubernetes) kubernetes=1; shift ;;
    --kubernetes-module) k8s_module="$2"; shift 2 ;;
    --kubernetes-version) k8s_version="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
    *) echo "build-engine: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

[[ "$version" == v* ]] || version="v$version"
command -v go >/dev/null || { echo "build-engine: Go is required (https://go.dev/dl/)" >&2; exit 1; }

if [[ -z "$k8s_version" ]]; then
  if [[ "$k8s_module" == "$k8s_module_default" ]]; then
    k8s_version="4.25.0-alpha.1768448096"
  elif [[ "$kubernetes" == 1 ]]; then
    echo "build-engine: --kubernetes-module $k8s_module needs --kubernetes-version (the release it belongs to)" >&2
    exit 2
  fi
fi
k8s_version="${k8s_version#v}"

cache="$cache_root/$version"
# The provider is cached apart from the CLI (keyed by its module version), so that
# runs without --kubernetes neither install nor rebuild it.
k8s_cache="$cache_root/pulumi-kubernetes/$k8s_module"
log() { printf 'build-engine: %s\n' "$*" >&2; }

build_cli() {
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  log "building pulumi $version from Go modules (a first build took about 4 minutes on a 2-core machine)"
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

build_kubernetes() {
  local work src
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  log "building pulumi-resource-kubernetes $k8s_version (module $k8s_module; first build takes 5-15 minutes)"
  cat >"$work/go.mod" <<MOD
module paude.local/pulumi-resource-kubernetes

go 1.24

require github.com/pulumi/pulumi-kubernetes/provider/v4 $k8s_module
MOD
  # The module's own main package embeds schema-embed.json and
  # terraform-mapping-embed.json, which upstream generates before building and which
  # the module zip therefore lacks. Build an equivalent main package here instead,
  # next to those two files generated from the module's schema.json and
  # terraform-mapping.json.
  cat >"$work/main.go" <<'GO'
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
GO
  cat >"$work/embedgen.go" <<'GO'
//go:build ignore

// embedgen SRC OUT VERSION: the schema with its version set, and the compacted
// terraform mapping, as the provider's main package embeds them.
package main

import (
	"bytes"
	"encoding/json"
	"log"
	"os"
	"path/filepath"

	"github.com/pulumi/pulumi/pkg/v3/codegen/schema"
)

func main() {
	src, out, version := os.Args[1], os.Args[2], os.Args[3]
	raw, err := os.ReadFile(filepath.Join(src, "schema.json"))
	if err != nil {
		log.Fatal(err)
	}
	var spec schema.PackageSpec
	if err := json.Unmarshal(raw, &spec); err != nil {
		log.Fatalf("schema.json: %v", err)
	}
	spec.Version = version
	data, err := json.Marshal(spec)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "schema-embed.json"), data, 0o644); err != nil {
		log.Fatal(err)
	}
	raw, err = os.ReadFile(filepath.Join(src, "terraform-mapping.json"))
	if err != nil {
		log.Fatal(err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		log.Fatalf("terraform-mapping.json: %v", err)
	}
	if err := os.WriteFile(filepath.Join(out, "terraform-mapping-embed.json"), buf.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}
GO
  # The module's only replace line points at a local path (../sdk) and cannot be
  # carried over; the sdk/v4 version it requires is used instead.
  (cd "$work" && GOFLAGS=-mod=mod go mod tidy)
  src="$(cd "$work" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi-kubernetes/provider/v4)/cmd/pulumi-resource-kubernetes"
  (cd "$work" && go run embedgen.go "$src" . "$k8s_version")
  mkdir -p "$k8s_cache"
  (cd "$work" && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$k8s_version" \
    -o "$k8s_cache/pulumi-resource-kubernetes.tmp" .)
  printf '%s\n' "$k8s_version" >"$k8s_cache/version"
  mv "$k8s_cache/pulumi-resource-kubernetes.tmp" "$k8s_cache/pulumi-resource-kubernetes"
}

if [[ -x "$cache/pulumi" ]]; then
  log "using cached pulumi $version from $cache"
else
  build_cli
fi
[[ -x "$cache/pulumi-resource-pulumi-python" ]] || install_scripts
if [[ -n "$lang_version" && ! -x "$cache/pulumi-language-python" ]]; then
  build_language_host || log "warning: could not build the Python language host $lang_version (paude's own policy pack does not need it)"
fi

mkdir -p "$dest"
for f in "$cache"/*; do
  [[ "$f" == *.tmp ]] && continue
  install -m 755 "$f" "$dest/$(basename "$f")"
done
"$dest/pulumi" version >&2

if [[ "$kubernetes" == 1 ]]; then
  if [[ -x "$k8s_cache/pulumi-resource-kubernetes" && "$(cat "$k8s_cache/version" 2>/dev/null)" == "$k8s_version" ]]; then
    log "using cached pulumi-resource-kubernetes $k8s_version from $k8s_cache"
  else
    build_kubernetes
  fi
  install -m 755 "$k8s_cache/pulumi-resource-kubernetes" "$dest/pulumi-resource-kubernetes"
  log "pulumi-resource-kubernetes $k8s_version installed in $dest"
fi
log "engine installed in $dest"
