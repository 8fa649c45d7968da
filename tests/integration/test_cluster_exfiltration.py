"""The security matrix on the cluster backend: a session applied to the test cluster's
node, where NetworkPolicies (kube-router) are the agent's whole isolation.

Every vector pairs the agent's attempt with a control: the same request from a pod the
test starts outside the session's policies succeeds. Everything sent goes to what this
module starts: canary containers beside the node (the "outside" hosts, whose names the
cluster's DNS answers as stand-ins), a canary pod and Service in the cluster, the node
and its API server. The metadata stand-in is a canary on a podman network of
169.254.169.0/24, as in the podman matrix."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from paude.naming import ClusterNames
from stacks.openshift.objects import AGENT_UID, PROXY_PORT
from tests.integration.canary import (
    CANARY_SCRIPT,
    Canary,
    Pod,
    assert_direct_blocked,
    connect,
    curl,
    dns_query,
    http_get,
    marker,
    resolve,
    start_canary,
    tcp_send,
    wait_until,
)
from tests.integration.cluster import kube_bin
from tests.integration.helpers import (
    BASE_IMAGE,
    Paude,
    make_home,
    make_repo,
    podman,
    remove_session_objects,
)
from tests.integration.node import Node, add_volume, apply, node_address, push_image, wait_running
from tests.integration.stand_in_agent import SOURCE

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi,
              pytest.mark.requires_k8s_provider, pytest.mark.requires_cluster,
              pytest.mark.requires_node, pytest.mark.slow]

ALLOWED = "allowed.canary.test"
OFF_LIST = "canary-offlist.test"
METADATA_SUBNET = "169.254.169.0/24"
METADATA_IP = "169.254.169.254"
API_SERVICE_IP = "10.96.0.1"  # the "kubernetes" Service: the first address of its range
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/enforce-version": "latest"}


@dataclass(frozen=True)
class World:
    """One session on the node, and everything around it that the probes aim at."""

    node: Node
    session: str
    namespace: str  # the session's (restricted)
    outside: str  # the control's and the pod canary's (no policy)
    canary: Canary  # beside the node: ALLOWED and OFF_LIST resolve to it
    metadata: Canary
    pod_canary: Canary
    service_ip: str  # the pod canary's Service
    proxy_ip: str  # the proxy pod's own address (what canaries see it connect from)
    proxy_service_ip: str

    @property
    def agent(self) -> Pod:
        return Pod(self.node.kubectl_argv, self.namespace, ClusterNames(self.session).agent_pod,
                   "agent")

    @property
    def control(self) -> Pod:
        return Pod(self.node.kubectl_argv, self.outside, "control", "main")

    @property
    def proxy_address(self) -> str:
        return f"{self.proxy_service_ip}:{PROXY_PORT}"

    @property
    def proxy_url(self) -> str:
        return f"http://{self.proxy_address}"


def pod(namespace: str, name: str, image: str, command: list[str], *, uid: int = 65534,
        labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A plain pod with the cluster's DNS; uid 0 only where nothing enforces a standard."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": {"automountServiceAccountToken": False, "terminationGracePeriodSeconds": 1,
                     "securityContext": {"runAsUser": uid},
                     "containers": [{"name": "main", "image": image, "command": command}]}}


@pytest.fixture(scope="module")
def world(node: Node, paude_exe: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("cluster-exfiltration")
    session = f"it-{secrets.token_hex(3)}"
    namespace, outside = f"sess-{session}", f"outside-{session}"
    paude = Paude(paude_exe, make_home(root / "paude-home"), make_repo(root / "repo"), session)
    paude.extra_env.update({"KUBECONFIG": str(node.kubeconfig),
                            "PATH": f"{kube_bin()}{os.pathsep}{os.environ['PATH']}"})
    (paude.repo / "paude.yaml").write_text(yaml.safe_dump({"version": 1, "sessions": {session: {
        "backend": "openshift", "allowed_domains": [ALLOWED],
        "agent": {"install": "none", "command": ["python3", "-c", SOURCE]},
        "image": {"base": BASE_IMAGE},
        "openshift": {"namespace": namespace, "context": "paude-test", "pvc_size": "1Gi",
                      "image_registry": f"{node.registry}/paude",
                      "registry_tls_verify": False}}}}))
    outside_net, metadata_net = f"{session}-outside", f"{session}-metadata"
    try:
        image = push_image(node, BASE_IMAGE, f"test/base:{session}")
        apply(node, {"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": namespace, "labels": RESTRICTED}},
              {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": outside}},
              pod(outside, "control", image, ["sleep", "infinity"]),
              pod(outside, "canary", image, ["python3", "-c", CANARY_SCRIPT], uid=0,
                  labels={"app": "canary"}),
              {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "canary", "namespace": outside},
               "spec": {"selector": {"app": "canary"},
                        "ports": [{"port": 80, "targetPort": 80}]}})
        add_volume(node, root / "volumes", f"pv-{session}", uid=AGENT_UID)

        podman("network", "create", "--label", f"paude.session={session}", outside_net)
        podman("network", "create", "--subnet", METADATA_SUBNET, "--label",
               f"paude.session={session}", metadata_net)
        canary = start_canary(f"{session}-canary", outside_net, session=session)
        metadata = start_canary(f"{session}-metadata", metadata_net, session=session,
                                ip=METADATA_IP, body="metadata")
        node.add_host(ALLOWED, canary.ip)
        node.add_host(OFF_LIST, canary.ip)

        paude.ok("apply", session, "--yes")
        wait_running(node, outside, "control")
        pod_canary_ip = wait_running(node, outside, "canary")
        pod_canary = Canary(Pod(node.kubectl_argv, outside, "canary", "main"), pod_canary_ip)
        wait_until(lambda: any(r["event"] == "ready" for r in pod_canary.records()),
                   timeout=30, what="the pod canary's listeners")
        proxies = node.items("-n", namespace, "pods", "-l", "paude.io/role=proxy")
        names = ClusterNames(session)
        yield World(
            node=node, session=session, namespace=namespace, outside=outside, canary=canary,
            metadata=metadata, pod_canary=pod_canary,
            service_ip=str(node.get("-n", outside, "service", "canary")["spec"]["clusterIP"]),
            proxy_ip=str(proxies[0]["status"]["podIP"]),
            proxy_service_ip=str(node.get("-n", namespace, "service", names.proxy)
                                 ["spec"]["clusterIP"]))
    finally:
        paude.run("destroy", session, "--yes", "--delete-data", "--force")
        node.kubectl("delete", "namespace", outside, "--wait=false")
        remove_session_objects(session)
        for net in (outside_net, metadata_net):
            podman("network", "rm", "--force", net, check=False)


def test_session_pods_meet_the_restricted_standard(world: World) -> None:
    """Every session pod runs in a namespace enforcing `restricted`; the same namespace
    refuses a pod that breaks it, which the unrestricted namespace admits (the control)."""
    pods = world.node.items("-n", world.namespace, "pods")
    roles = {p["metadata"]["labels"]["paude.io/role"]: p["status"]["phase"] for p in pods}
    assert roles == {"agent": "Running", "proxy": "Running", "gateway": "Running"}
    for namespace, admitted in ((world.namespace, False), (world.outside, True)):
        spec = json.dumps(pod(namespace, "rooted", "x", ["true"], uid=0))
        result = world.node.kubectl("create", "--dry-run=server", "-f", "-", stdin=spec)
        assert (result.returncode == 0) is admitted, result.stderr
        if not admitted:
            assert "violates PodSecurity" in result.stderr, result.stderr


def test_direct_tcp_and_udp_are_blocked(world: World) -> None:
    """Straight from the agent pod to a host beside the cluster."""
    assert_direct_blocked(world.canary, control=world.control, agent=world.agent)


def test_the_agent_has_no_resolver(world: World) -> None:
    """The control resolves a stand-in name and a Service through the cluster's DNS; the
    agent pod resolves nothing but its own hosts entries."""
    service = f"canary.{world.outside}.svc.cluster.local"
    seen = resolve(world.control, ALLOWED, service)
    assert seen == {ALLOWED: world.canary.ip, service: world.service_ip}
    assert resolve(world.agent, ALLOWED, service) == {ALLOWED: None, service: None}
    names = ClusterNames(world.session)
    assert resolve(world.agent, names.proxy)[names.proxy] == world.proxy_service_ip


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_dns_straight_to_a_resolver_is_blocked(world: World, proto: str) -> None:
    """Queries by address: to the cluster's DNS on the node, and to an outside resolver."""
    dns = node_address()
    assert dns_query(world.control, dns, proto, ALLOWED) == world.canary.ip
    assert dns_query(world.agent, dns, proto, ALLOWED) == ""
    ctl, agent = f"{marker('dns-ctl')}.exfil.test", f"{marker('dns-agent')}.exfil.test"
    assert dns_query(world.control, world.canary.ip, proto, ctl) == "127.0.0.1"
    world.canary.wait_for(ctl)
    assert dns_query(world.agent, world.canary.ip, proto, agent) == ""
    world.canary.assert_never([agent])


def test_other_pods_and_services_are_unreachable(world: World) -> None:
    for address in (world.pod_canary.ip, world.service_ip):
        ctl, agent = marker("pod-ctl"), marker("pod-agent")
        assert "canary-http" in tcp_send(world.control, address, 80, http_get(ctl)), address
        world.pod_canary.wait_for(ctl)
        assert tcp_send(world.agent, address, 80, http_get(agent)) == "", address
        world.pod_canary.assert_never([agent])


def test_the_api_server_is_unreachable(world: World) -> None:
    """Through the "kubernetes" Service and at the node's address: the control reaches
    the API server's TLS port (it answers a plain request with 400), the agent does not."""
    port = world.node.api_port()
    for host, target_port in ((API_SERVICE_IP, 443), (node_address(), port)):
        probe = "GET /version HTTP/1.0\r\n\r\n"
        assert "400 Bad Request" in tcp_send(world.control, host, target_port, probe), host
        assert tcp_send(world.agent, host, target_port, probe) == "", host


def test_the_node_is_unreachable(world: World) -> None:
    """The kubelet's port on the node's address."""
    status = world.node.get("node", "paude-test-node")["status"]
    port = int(status["daemonEndpoints"]["kubeletEndpoint"]["Port"])
    address = node_address()
    assert tcp_send(world.control, address, port, "GET / HTTP/1.0\r\n\r\n") != ""
    assert tcp_send(world.agent, address, port, "GET / HTTP/1.0\r\n\r\n") == ""


def test_metadata_address_is_unreachable(world: World) -> None:
    """Directly, through the proxy as a URL, and by CONNECT."""
    ctl = marker("meta-ctl")
    assert "metadata" in tcp_send(world.control, METADATA_IP, 80, http_get(ctl))
    world.metadata.wait_for(ctl)
    direct, proxied, tunnelled = (marker("meta-agent") for _ in range(3))
    assert tcp_send(world.agent, METADATA_IP, 80, http_get(direct)) == ""
    denied = curl(world.agent, f"http://{METADATA_IP}/{proxied}", proxy=world.proxy_url)
    assert denied.status == 403, denied
    assert connect(world.agent, world.proxy_address, f"{METADATA_IP}:443", tunnelled) == (403, "")
    world.metadata.assert_never([direct, proxied, tunnelled],
                                quiet=[(world.proxy_ip, 80), (world.proxy_ip, 443)])


def test_the_proxy_refuses_ip_literals_and_names_off_the_list(world: World) -> None:
    """The proxy's allowlist holds on the cluster: an address instead of the allowed name,
    and a name off the list, are refused; the allowed name (the control) gets through."""
    allowed = marker("allowed")
    through = curl(world.agent, f"http://{ALLOWED}/{allowed}", proxy=world.proxy_url)
    assert (through.status, through.body) == (200, "canary-http"), through
    assert world.canary.wait_for(allowed)["peer"] == world.proxy_ip

    literal, off_list, tunnelled = (marker("refused") for _ in range(3))
    for url in (f"http://{world.canary.ip}/{literal}", f"http://{OFF_LIST}/{off_list}"):
        assert curl(world.agent, url, proxy=world.proxy_url).status == 403, url
    assert connect(world.agent, world.proxy_address, f"{world.canary.ip}:443",
                   tunnelled) == (403, "")
    world.canary.assert_never([literal, off_list, tunnelled],
                              quiet=[(world.proxy_ip, 80), (world.proxy_ip, 443)])


def test_without_its_policies_the_agent_pod_gets_out(world: World) -> None:
    """The control for the whole matrix, run last: with the session's NetworkPolicies
    deleted, the same agent pod reaches the outside canary, the pod canary and the
    cluster's DNS. So what blocked it above was the policies, not the pod's routing."""
    deleted = world.node.kubectl("-n", world.namespace, "delete", "networkpolicy", "-l",
                                 f"paude.io/session={world.session}")
    assert deleted.returncode == 0 and deleted.stdout.count("deleted") == 6, deleted
    token = marker("unguarded")
    wait_until(lambda: "canary-http" in tcp_send(world.agent, world.canary.ip, 8080,
                                                 http_get(token)),
               timeout=30, what="the agent pod to reach the canary without its policies")
    world.canary.wait_for(token)
    assert "canary-http" in tcp_send(world.agent, world.pod_canary.ip, 80, http_get(token))
    assert dns_query(world.agent, node_address(), "udp", ALLOWED) == world.canary.ip
