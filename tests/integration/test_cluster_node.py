"""Pods run on the test cluster's node, and a NetworkPolicy there is enforced.

The node (scripts/run-node.sh) is real: containerd and runc run the pods, CNI wires
them to a bridge, kube-router turns NetworkPolicies into iptables rules. Each blocked
connection has its control: the same request from the same pod succeeds before the
policy exists, and from a namespace without it."""

from __future__ import annotations

import secrets
import time
import urllib.request

import pytest

from tests.integration.cluster import Cluster
from tests.integration.helpers import BASE_IMAGE
from tests.integration.node import apply, push_image, wait_running

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_cluster,
              pytest.mark.requires_node, pytest.mark.slow]

PORT = 8080
PROBE = ("import socket, sys\n"
         "try:\n"
         "    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n"
         "    s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n"
         "    print(s.recv(64).split(b'\\r\\n')[0].decode())\n"
         "except OSError as exc:\n"
         "    print(type(exc).__name__, exc)\n"
         "    sys.exit(1)\n")


@pytest.fixture(scope="module")
def image(node: Cluster) -> str:
    return push_image(node, BASE_IMAGE, "test/base:1")


def namespace(name: str) -> dict[str, object]:
    """A namespace whose pods must meet the restricted Pod Security Standard."""
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {
                "pod-security.kubernetes.io/enforce": "restricted"}}}


def pod(ns: str, name: str, image: str, command: list[str]) -> dict[str, object]:
    """A pod that the restricted Pod Security Standard admits."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65534,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "main", "image": image, "command": command,
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }


def server(ns: str, image: str) -> dict[str, object]:
    spec = pod(ns, "server", image,
               ["python3", "-m", "http.server", str(PORT), "--directory", "/tmp"])
    spec["spec"]["containers"][0]["readinessProbe"] = {  # type: ignore[index]
        "tcpSocket": {"port": PORT}, "periodSeconds": 1}
    return spec


def client(ns: str, image: str) -> dict[str, object]:
    return pod(ns, "client", image, ["sleep", "infinity"])


def connects(cluster: Cluster, ns: str, ip: str, port: str = str(PORT)) -> tuple[bool, str]:
    """Whether the client pod of NS gets an HTTP answer from IP."""
    result = cluster.kubectl("-n", ns, "exec", "client", "--", "python3", "-c", PROBE, ip, port)
    assert "HTTP" in result.stdout or result.returncode == 1, result.stderr
    return result.returncode == 0, (result.stdout + result.stderr).strip()


def test_a_pod_from_the_registry_runs_and_answers(node: Cluster, image: str) -> None:
    ns = f"node-{secrets.token_hex(3)}"
    apply(node, namespace(ns), server(ns, image))
    ip = wait_running(node, ns, "server")
    assert ip.startswith("10.244.0.")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{ip}:{PORT}/", timeout=10) as response:
        assert response.status == 200
    assert node.get("-n", ns, "pod", "server")["spec"]["nodeName"] == "paude-test-node"  # type: ignore[index]


def test_a_service_reaches_its_pod(node: Cluster, image: str) -> None:
    ns = f"svc-{secrets.token_hex(3)}"
    apply(node, namespace(ns), server(ns, image), client(ns, image),
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
           "spec": {"selector": {"app": "server"}, "ports": [{"port": 80, "targetPort": PORT}]}})
    wait_running(node, ns, "server")
    wait_running(node, ns, "client")
    cluster_ip = str(node.get("-n", ns, "service", "web")["spec"]["clusterIP"])  # type: ignore[index]
    deadline = time.monotonic() + 30
    while True:  # until kube-proxy has the endpoint
        result = node.kubectl("-n", ns, "exec", "client", "--", "python3", "-c", PROBE,
                              cluster_ip, "80")
        if result.returncode == 0:
            break
        assert time.monotonic() < deadline, result.stdout + result.stderr
        time.sleep(1)
    assert result.stdout.startswith("HTTP/1.0 200"), result.stdout


def test_default_deny_blocks_pod_to_pod_traffic(node: Cluster, image: str) -> None:
    suffix = secrets.token_hex(3)
    open_ns, locked_ns = f"open-{suffix}", f"locked-{suffix}"
    apply(node, namespace(open_ns), namespace(locked_ns),
          server(open_ns, image), client(open_ns, image),
          server(locked_ns, image), client(locked_ns, image))
    open_ip = wait_running(node, open_ns, "server")
    locked_ip = wait_running(node, locked_ns, "server")
    wait_running(node, open_ns, "client")
    wait_running(node, locked_ns, "client")

    # Without a policy every pod reaches every pod.
    for ns, ip in ((locked_ns, open_ip), (open_ns, locked_ip), (open_ns, open_ip)):
        ok, said = connects(node, ns, ip)
        assert ok, f"{ns} -> {ip} before any policy: {said}"

    apply(node, {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                 "metadata": {"name": "default-deny", "namespace": locked_ns},
                 "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}})
    deadline = time.monotonic() + 30
    while connects(node, locked_ns, open_ip)[0]:
        assert time.monotonic() < deadline, "the default-deny policy never took effect"
        time.sleep(1)

    # Out of the locked namespace (egress) and into it (ingress): refused, repeatedly.
    for _ in range(3):
        ok, said = connects(node, locked_ns, open_ip)
        assert not ok, f"egress from {locked_ns} got through: {said}"
        ok, said = connects(node, open_ns, locked_ip)
        assert not ok, f"ingress into {locked_ns} got through: {said}"
    # The control pod, in a namespace without the policy, still reaches the open server.
    ok, said = connects(node, open_ns, open_ip)
    assert ok, f"control {open_ns} -> {open_ip}: {said}"

    # The node's own address (the kubelet's port) is no way out either.
    status = node.get("node", "paude-test-node")["status"]
    node_ip = next(a["address"] for a in status["addresses"]  # type: ignore[index]
                   if a["type"] == "InternalIP")
    kubelet_port = str(status["daemonEndpoints"]["kubeletEndpoint"]["Port"])  # type: ignore[index]
    ok, said = connects(node, open_ns, node_ip, kubelet_port)
    assert ok, f"control {open_ns} -> kubelet {node_ip}:{kubelet_port}: {said}"
    ok, said = connects(node, locked_ns, node_ip, kubelet_port)
    assert not ok, f"egress from {locked_ns} reached the kubelet: {said}"
