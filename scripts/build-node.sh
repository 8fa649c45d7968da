#!/usr/bin/env bash
# Build what a Kubernetes node needs on top of the loopback API server of
# scripts/build-kube.sh, for integration tests that run real pods (scripts/run-node.sh).
# Only the Go module proxy is reachable on the machines this runs on, so everything is
# built from Go modules; containerd, runc and the CNI plugins come from Debian
# (scripts/setup-podman.sh installs them).
#
# Produces, in DEST (default: ~/.cache/paude/kube-bin, next to kube-apiserver):
#   kubelet          k8s.io/kubernetes/cmd/kubelet, the same release and module pins as
#                    the API server (build-kube.sh's go.mod is reused when present)
#   kube-scheduler   k8s.io/kubernetes/cmd/kube-scheduler, so that pods get a node
#   kube-proxy       k8s.io/kubernetes/cmd/kube-proxy (nftables mode): Services
#   kube-router      github.com/cloudnativelabs/kube-router/v2, run with only its
#                    NetworkPolicy firewall (iptables + ipset). kube-network-policies
#                    needs the nftables "queue" expression (CONFIG_NFT_QUEUE), which
#                    these machines' kernel lacks.
#   coredns          github.com/coredns/coredns, the cluster's DNS: Services by name for
#                    the pods that have a resolver, and the test's stand-in host names
#   pause.oci.tar    the pod sandbox ("pause") image as an OCI archive: a static Go
#                    program that waits for a signal and reaps children, since no image
#                    can be pulled here
#
# Cached by version under $PAUDE_KUBE_CACHE (default ~/.cache/paude/kube/), so a second
# run only copies files. A cold build takes about 5-10 minutes on 2 cores.
#
# Usage: scripts/build-node.sh [--kubernetes-version vX.Y.Z] [--kube-router-version vX.Y.Z]
#                             [--coredns-version vX.Y.Z] [--dest DIR]
set -euo pipefail
# shellcheck source=scripts/lib-kube-version.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-kube-version.sh"

k8s_version="${PAUDE_KUBERNETES_VERSION:-v1.37.2}"
router_version="${PAUDE_KUBE_ROUTER_VERSION:-v2.1.0}"
coredns_version="${PAUDE_COREDNS_VERSION:-v1.15.0}"
dest="${XDG_CACHE_HOME:-$HOME/.cache}/paude/kube-bin"
cache_root="${PAUDE_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/paude/kube}"
pause_version=1

while [[ $# -gt 0 ]]; do
  case "$1" in
    --kubernetes-version) k8s_version="$2"; shift 2 ;;
    --kube-router-version) router_version="$2"; shift 2 ;;
    --coredns-version) coredns_version="$2"; shift 2 ;;
    --dest) dest="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
    *) echo "build-node: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

[[ "$router_version" == v* ]] || router_version="v$router_version"
[[ "$coredns_version" == v* ]] || coredns_version="v$coredns_version"
kube_version build-node "$k8s_version"

log() { printf 'build-node: %s\n' "$*" >&2; }

k8s_cache="$cache_root/kubernetes-$k8s_version"
router_cache="$cache_root/kube-router-$router_version"
coredns_cache="$cache_root/coredns-$coredns_version"
pause_cache="$cache_root/pause-$pause_version"

need_go() {
  command -v go >/dev/null || { echo "build-node: Go is required" >&2; exit 1; }
}

# pinned_gomod DIR: a go.mod requiring k8s.io/kubernetes with its staging modules
# pointed at their published releases (see build-kube.sh, which keeps the same file).
pinned_gomod() {
  local work="$1" modfile
  if [[ -s "$k8s_cache/go.mod" ]]; then
    cp "$k8s_cache/go.mod" "$work/go.mod"
    return 0
  fi
  printf 'module paude.local/kube-node\n\ngo 1.26\n\nrequire k8s.io/kubernetes %s\n' \
    "$k8s_version" >"$work/go.mod"
  (cd "$work" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$k8s_version" >/dev/null)
  modfile="$(cd "$work" && go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$k8s_version.mod"
  {
    printf '\nreplace (\n'
    sed -nE 's#^[[:space:]]*(k8s\.io/[^ ]+) => \./staging/src/k8s\.io/[^ ]+[[:space:]]*$#\t\1 => \1 '"$staging_version"'#p' "$modfile"
    printf ')\n'
  } >>"$work/go.mod"
}

build_k8s_tool() {
  local tool="$1" work ldflags="-s -w" pkg
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  log "building $tool $k8s_version from Go modules"
  pinned_gomod "$work"
  printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/%s"\n' "$tool" \
    >"$work/tools.go"
  (cd "$work" && GOFLAGS=-mod=mod go mod tidy)
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  mkdir -p "$k8s_cache"
  (cd "$work" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" \
    -o "$k8s_cache/$tool.tmp" "k8s.io/kubernetes/cmd/$tool")
  mv "$k8s_cache/$tool.tmp" "$k8s_cache/$tool"
}

build_router() {
  log "building kube-router $router_version from Go modules"
  mkdir -p "$router_cache"
  # Its go.mod has no replace lines, so go install works directly.
  GOBIN="$router_cache" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
    "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$router_version"
}

build_coredns() {
  log "building coredns $coredns_version from Go modules"
  mkdir -p "$coredns_cache"
  GOBIN="$coredns_cache" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
    "github.com/coredns/coredns@$coredns_version"
}

build_pause() {
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  log "building the pause image (OCI archive)"
  printf 'module paude.local/pause\n\ngo 1.21\n' >"$work/go.mod"
  cat >"$work/main.go" <<'GO'
// pause holds a pod's namespaces open until it is told to stop, and reaps the
// orphans of a pod that shares its process namespace.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			var status syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
GO
  mkdir -p "$work/rootfs" "$pause_cache"
  (cd "$work" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o rootfs/pause .)
  python3 - "$work/rootfs/pause" "$pause_cache/pause.oci.tar.tmp" <<'PY'
"""Write a one-layer OCI image archive (oci-layout, index.json, blobs) holding /pause."""
import hashlib, io, json, sys, tarfile

binary, out = sys.argv[1], sys.argv[2]
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as t:
    info = tarfile.TarInfo("pause")
    data = open(binary, "rb").read()
    info.size, info.mode, info.mtime = len(data), 0o755, 0
    t.addfile(info, io.BytesIO(data))
layer_bytes = layer.getvalue()
diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
config = json.dumps({
    "architecture": "amd64", "os": "linux",
    "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
}, sort_keys=True).encode()
def digest(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()
manifest = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": digest(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": digest(layer_bytes), "size": len(layer_bytes)}],
}, sort_keys=True).encode()
index = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": digest(manifest), "size": len(manifest),
                   "annotations": {"org.opencontainers.image.ref.name": "paude.local/pause:1"}}],
}, sort_keys=True).encode()
with tarfile.open(out, mode="w", format=tarfile.PAX_FORMAT) as t:
    def add(name: str, b: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime = len(b), 0
        t.addfile(info, io.BytesIO(b))
    add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    add("index.json", index)
    for b in (layer_bytes, config, manifest):
        add("blobs/sha256/" + hashlib.sha256(b).hexdigest(), b)
PY
  mv "$pause_cache/pause.oci.tar.tmp" "$pause_cache/pause.oci.tar"
}

for tool in kubelet kube-scheduler kube-proxy; do
  if [[ -x "$k8s_cache/$tool" ]]; then
    log "using cached $tool $k8s_version from $k8s_cache"
  else
    need_go
    build_k8s_tool "$tool"
  fi
done
if [[ -x "$router_cache/kube-router" ]]; then
  log "using cached kube-router $router_version from $router_cache"
else
  need_go
  build_router
fi
if [[ -x "$coredns_cache/coredns" ]]; then
  log "using cached coredns $coredns_version from $coredns_cache"
else
  need_go
  build_coredns
fi
if [[ -s "$pause_cache/pause.oci.tar" ]]; then
  log "using cached pause image from $pause_cache"
else
  need_go
  build_pause
fi

mkdir -p "$dest"
install -m 755 "$k8s_cache/kubelet" "$dest/kubelet"
install -m 755 "$k8s_cache/kube-scheduler" "$dest/kube-scheduler"
install -m 755 "$k8s_cache/kube-proxy" "$dest/kube-proxy"
install -m 755 "$router_cache/kube-router" "$dest/kube-router"
install -m 755 "$coredns_cache/coredns" "$dest/coredns"
install -m 644 "$pause_cache/pause.oci.tar" "$dest/pause.oci.tar"
log "installed kubelet, kube-scheduler, kube-proxy, kube-router, coredns and pause.oci.tar in $dest"
