# Sourced by build-kube.sh and build-node.sh: check a Kubernetes release given as v1.N.M (or
# 1.N.M) and derive what both builds pin from it.
#   kube_version TOOL VERSION  sets k8s_version (v1.N.M), k8s_minor (N) and staging_version
#                              (v0.N.M: each k8s.io/kubernetes release publishes its
#                              staging modules under that version)
kube_version() {
  local tool="$1"
  k8s_version="$2"
  [[ "$k8s_version" == v* ]] || k8s_version="v$k8s_version"
  [[ "$k8s_version" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || {
    echo "$tool: --kubernetes-version must look like v1.N.M (got $k8s_version)" >&2; exit 2; }
  staging_version="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
  k8s_minor="${BASH_REMATCH[1]}"
}
