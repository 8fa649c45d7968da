"""A real Kubernetes node for the loopback test cluster: pods run, NetworkPolicies hold.

scripts/run-node.sh starts containerd (runc), CNI (bridge, host-local, portmap), a
kubelet, kube-scheduler, kube-proxy and kube-router's NetworkPolicy firewall next to the API server
and registry of cluster.py; scripts/build-node.sh builds the Go parts. Pod images come
from the loopback registry: push_image() puts a local podman image there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.cluster import SCRIPTS, Cluster, kube_bin, start_cluster

NODE_TOOLS = ("kubelet", "kube-scheduler", "kube-proxy", "kube-router", "coredns",
              "pause.oci.tar")
HOST_TOOLS = ("containerd", "containerd-shim-runc-v2", "ctr", "runc", "ipset", "iptables-legacy")


def node_tools_present() -> bool:
    """Whether the node can start here: its binaries are built, the packages installed."""
    return os.geteuid() == 0 \
        and all((kube_bin() / tool).is_file() for tool in NODE_TOOLS) \
        and all(shutil.which(tool) for tool in HOST_TOOLS) \
        and all(Path("/usr/lib/cni", p).is_file() for p in ("bridge", "host-local", "portmap"))


def node_address() -> str:
    """The address run-node.sh gives the node: this machine's source address on its
    default route (a route lookup only; nothing is sent)."""
    route = subprocess.run(["ip", "-4", "-o", "route", "get", "192.0.2.255"],
                           capture_output=True, text=True, check=True).stdout.split()
    return route[route.index("src") + 1]


@dataclass
class Node(Cluster):
    """The test cluster with its node; STATE is run-node.sh's state directory."""

    state: Path = Path()

    def add_host(self, name: str, address: str) -> None:
        """Make the cluster's DNS answer NAME with ADDRESS: a stand-in for an outside host
        (CoreDNS re-reads the file every second)."""
        with (self.state / "coredns" / "hosts").open("a", encoding="utf-8") as hosts:
            hosts.write(f"{address} {name}\n")


def start_node(state: Path) -> Iterator[Node]:
    """The API server and registry of start_cluster, with a node; all stopped afterwards."""
    node_state = state / "node"
    # Pods reach the API server as on a real cluster: the "kubernetes" Service leads to
    # the node's address (the server still answers on loopback for the tests).
    address = node_address()
    servers = start_cluster(state, ["--bind-address=0.0.0.0", f"--advertise-address={address}",
                                    "--endpoint-reconciler-type=lease"])
    cluster = next(servers)
    argv = ["bash", str(SCRIPTS / "run-node.sh"), "--dir", str(node_state), "--bin",
            str(kube_bin()), "--kubeconfig", str(cluster.kubeconfig),
            "--registry", cluster.registry]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            pytest.fail(f"run-node.sh failed:\n{result.stdout}\n{result.stderr}")
        yield Node(cluster.kubeconfig, cluster.registry, node_state)
    finally:
        # The node first: its teardown deletes the pods through the API server.
        stop = subprocess.run(["bash", str(SCRIPTS / "run-node.sh"), "--stop", "--dir",
                               str(node_state)], capture_output=True, text=True,
                              timeout=300, check=False)
        if stop.returncode != 0:
            print(f"run-node.sh --stop failed:\n{stop.stderr}")
        servers.close()


def push_image(cluster: Cluster, local: str, repository: str) -> str:
    """Push a local podman image to the test registry; the reference pods pull."""
    ref = f"{cluster.registry}/{repository}"
    for argv in (["podman", "tag", local, ref],
                 ["podman", "push", "--quiet", "--tls-verify=false", ref],
                 ["podman", "rmi", ref]):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{' '.join(argv)}: {result.stderr}"
    return ref


def apply(cluster: Cluster, *objects: dict[str, object]) -> None:
    """Create or update objects from their JSON form."""
    result = cluster.kubectl("apply", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": list(objects)}))
    assert result.returncode == 0, result.stderr


def wait_running(cluster: Cluster, namespace: str, pod: str, timeout: float = 120) -> str:
    """Wait until a pod runs and is ready; its IP."""
    deadline = time.monotonic() + timeout
    status: dict[str, object] = {}
    while time.monotonic() < deadline:
        status = cluster.get("-n", namespace, "pod", pod).get("status") or {}  # type: ignore[assignment]
        ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]  # type: ignore[attr-defined]
        if status.get("phase") == "Running" and ready and ready[0].get("status") == "True":
            return str(status["podIP"])
        time.sleep(0.5)
    events = cluster.kubectl("-n", namespace, "get", "events", "-o", "wide").stdout
    pytest.fail(f"pod {namespace}/{pod} not running after {timeout}s: {status}\n{events}")


def add_volume(cluster: Cluster, folder: Path, name: str, *, uid: int,
               size: str = "2Gi") -> None:
    """A PersistentVolume on the node's disk for one claim (the node has no provisioner),
    owned by UID: a hostPath volume is mounted as it is, without fsGroup's chown."""
    path = folder / name
    path.mkdir(mode=0o700, parents=True)
    os.chown(path, uid, uid)
    apply(cluster, {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
                    "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                             "persistentVolumeReclaimPolicy": "Retain",
                             "hostPath": {"path": str(path), "type": "Directory"}}})
