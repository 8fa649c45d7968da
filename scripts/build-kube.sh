#!/usr/bin/env bash
# Build a real Kubernetes API server and its etcd from Go modules, for integration
# tests on machines that cannot download release binaries (only the Go module proxy
# is reachable). No kubelet, scheduler or controllers: objects are stored and served,
# nothing runs.
#
# Produces, in DEST (default: ~/.cache/paude/kube-bin):
#   kube-apiserver   from k8s.io/kubernetes/cmd/kube-apiserver, version-stamped
#   kubectl          from k8s.io/kubernetes/cmd/kubectl (paude drives clusters through it)
#   kube-controller-manager  from k8s.io/kubernetes/cmd/kube-controller-manager
#   etcd             from go.etcd.io/etcd/server/v3/etcdmain
#
# Built binaries are cached by version in $PAUDE_KUBE_CACHE
# (default ~/.cache/paude/kube/kubernetes-<version>/ and .../etcd-<version>/), so a
# second run only copies files. The first build takes several minutes (the
# kube-apiserver dependency graph is large) and about 1 GB of module cache.
#
# Needs the Go that the modules' go.mod lines ask for (k8s.io/kubernetes v1.37.2 and
# etcd v3.7.3 say go 1.26.0). For a version that needs a newer Go, export
# GOTOOLCHAIN=go1.27.3 (the go command fetches it from the module proxy).
#
# Usage: scripts/build-kube.sh [--kubernetes-version vX.Y.Z] [--etcd-version vX.Y.Z] [--dest DIR]
set -euo pipefail
# shellcheck source=scripts/lib-kube-version.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-kube-version.sh"

k8s_version="${PAUDE_KUBERNETES_VERSION:-v1.37.2}"
etcd_version="${PAUDE_ETCD_VERSION:-v3.7.3}"
dest="${XDG_CACHE_HOME:-$HOME/.cache}/paude/kube-bin"
cache_root="${PAUDE_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/paude/kube}"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --kubernetes-version) k8s_version="$2"; shift 2 ;;
    --etcd-version) etcd_version="$2"; shift 2 ;;
    --dest) dest="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
    *) echo "build-kube: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

[[ "$etcd_version" == v* ]] || etcd_version="v$etcd_version"
kube_version build-kube "$k8s_version"

log() { printf 'build-kube: %s\n' "$*" >&2; }

k8s_cache="$cache_root/kubernetes-$k8s_version"
etcd_cache="$cache_root/etcd-$etcd_version"

go_checked=0
need_go() {
  [[ "$go_checked" == 1 ]] && return 0
  go_checked=1
  command -v go >/dev/null || { echo "build-kube: Go is required" >&2; exit 1; }
  log "using $(go version)${GOTOOLCHAIN:+ (GOTOOLCHAIN=$GOTOOLCHAIN)}"
}

# build_apiserver: pin k8s.io/kubernetes' staging modules in a go.mod (kept in the cache
# for the other tools), then build kube-apiserver with it.
build_apiserver() {
  local work modfile
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  log "building kube-apiserver $k8s_version from Go modules (first build takes 5-15 minutes)"
  cat >"$work/go.mod" <<MOD
module paude.local/kube-apiserver

go 1.26

require k8s.io/kubernetes $k8s_version
MOD
  (cd "$work" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$k8s_version" >/dev/null)
  modfile="$(cd "$work" && go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$k8s_version.mod"
  # k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/apiserver, ...)
  # at v0.0.0 and replaces them with ./staging/src/... paths, which only work inside
  # its own repository. The same code is published as separate modules tagged
  # v0.N.M for release v1.N.M: point every such replace there instead.
  {
    printf '\nreplace (\n'
    sed -nE 's#^[[:space:]]*(k8s\.io/[^ ]+) => \./staging/src/k8s\.io/[^ ]+[[:space:]]*$#\t\1 => \1 '"$staging_version"'#p' "$modfile"
    printf ')\n'
  } >>"$work/go.mod"
  log "replacing $(grep -c ' => ' "$work/go.mod") staging modules with their $staging_version releases"
  mkdir -p "$k8s_cache"
  cp "$work/go.mod" "$k8s_cache/go.mod"
  build_tool kube-apiserver
}

# build_tool NAME: k8s.io/kubernetes/cmd/NAME, built with the pins of the kube-apiserver build.
build_tool() {
  local tool="$1" work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  log "building $tool $k8s_version from the same modules"
  # The go.mod kept from the kube-apiserver build already pins every staging module.
  cp "$k8s_cache/go.mod" "$work/go.mod"
  cat >"$work/tools.go" <<GO
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/$tool"
GO
  (cd "$work" && GOFLAGS=-mod=mod go mod tidy)
  # The same variables hack/lib/version.sh stamps, so that /version and client
  # discovery report the real release instead of v0.0.0-master.
  local ldflags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$work" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" \
    -o "$k8s_cache/$tool.tmp" "k8s.io/kubernetes/cmd/$tool")
  mv "$k8s_cache/$tool.tmp" "$k8s_cache/$tool"
  # Kept tidy: the other tools build from it.
  [[ "$tool" == kube-apiserver ]] && cp "$work/go.mod" "$k8s_cache/go.mod"
  return 0
}

build_etcd() {
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  log "building etcd $etcd_version from Go modules (first build takes 2-5 minutes)"
  # etcd's own main module (go.etcd.io/etcd/v3) replaces its sibling modules with
  # local paths, so `go install` refuses it; the server module's etcdmain package is
  # the whole of the etcd command, called here from a two-line main package. The
  # sibling modules are pinned to the same release.
  cat >"$work/go.mod" <<MOD
module paude.local/etcd

go 1.26

require (
	go.etcd.io/etcd/server/v3 $etcd_version
	go.etcd.io/etcd/api/v3 $etcd_version
	go.etcd.io/etcd/client/pkg/v3 $etcd_version
	go.etcd.io/etcd/client/v3 $etcd_version
	go.etcd.io/etcd/pkg/v3 $etcd_version
)
MOD
  cat >"$work/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$work" && GOFLAGS=-mod=mod go mod tidy)
  mkdir -p "$etcd_cache"
  (cd "$work" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$etcd_cache/etcd.tmp" .)
  cp "$work/go.mod" "$etcd_cache/go.mod"
  mv "$etcd_cache/etcd.tmp" "$etcd_cache/etcd"
}

if [[ -x "$k8s_cache/kube-apiserver" ]]; then
  log "using cached kube-apiserver $k8s_version from $k8s_cache"
else
  need_go
  build_apiserver
fi
# kubectl: paude drives clusters through it. kube-controller-manager: its garbage
# collector and namespace controllers finish deletions (pulumi-kubernetes deletes in the
# foreground, which waits for them).
for tool in kubectl kube-controller-manager; do
  if [[ -x "$k8s_cache/$tool" ]]; then
    log "using cached $tool $k8s_version from $k8s_cache"
  else
    need_go
    build_tool "$tool"
  fi
done
if [[ -x "$etcd_cache/etcd" ]]; then
  log "using cached etcd $etcd_version from $etcd_cache"
else
  need_go
  build_etcd
fi

mkdir -p "$dest"
install -m 755 "$k8s_cache/kube-apiserver" "$dest/kube-apiserver"
install -m 755 "$k8s_cache/kubectl" "$dest/kubectl"
install -m 755 "$k8s_cache/kube-controller-manager" "$dest/kube-controller-manager"
install -m 755 "$etcd_cache/etcd" "$dest/etcd"
log "$("$dest/kube-apiserver" --version 2>&1 | head -n1); $("$dest/etcd" --version 2>&1 | head -n1)"
log "installed kube-apiserver, kube-controller-manager, kubectl and etcd in $dest"
