"""An OpenShift / Kubernetes session applied to a real API server, with its images pushed
to a real registry: plan, apply, no drift, stop, an allowlist change, destroy keeping
the claim, re-apply adopting it, and --delete-data. There is no kubelet (pods never run),
so the session waits for nothing (openshift.wait_for_ready: false) and the checks read
what the API server stores."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.cluster import Cluster, define, start_cluster
from tests.integration.helpers import BASE_IMAGE, Paude

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi,
              pytest.mark.requires_k8s_provider, pytest.mark.requires_cluster,
              pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from start_cluster(tmp_path_factory.mktemp("cluster"))


def items(data: dict[str, Any]) -> list[dict[str, Any]]:
    return list(data["items"])


def test_session_lifecycle_on_a_real_api_server(paude: Paude, cluster: Cluster) -> None:
    ns = f"paude-{secrets.token_hex(3)}"
    name = paude.session
    define(paude, cluster, ns)

    # Plan: everything is new, nothing exists yet, the policies pass.
    plan = paude.plan_json()
    assert plan["new_session"] is True and plan["policy"] == {"passed": True, "findings": []}
    created = {r["resource"]: r["type"] for r in plan["resources"]}  # type: ignore[index]
    assert created["agent-image"] == "cluster:PushedImage"
    assert created["workspace"] == "kubernetes:core/v1:PersistentVolumeClaim"
    assert created["namespace"] == "kubernetes:core/v1:Namespace"
    assert not cluster.exists("namespace", ns)

    # Apply: images pushed, objects stored.
    paude.ok("apply", name, "--yes")
    agent = cluster.get("-n", ns, "statefulset", f"paude-{name}-agent")
    pod = agent["spec"]["template"]["spec"]  # type: ignore[index]
    image = pod["containers"][0]["image"]
    assert image.startswith(f"{cluster.registry}/paude/paude-agent:")
    assert image.rsplit(":", 1)[1] in cluster.tags("paude/paude-agent")
    proxy = cluster.get("-n", ns, "deployment", f"paude-{name}-proxy")
    proxy_image = proxy["spec"]["template"]["spec"]["containers"][0]["image"]  # type: ignore[index]
    assert proxy_image.rsplit(":", 1)[1] in cluster.tags("paude/paude-proxy")
    # The security posture, as the API server stored it.
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    assert pod["dnsPolicy"] == "None"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    address = {role: cluster.get("-n", ns, "service", f"paude-{name}-{role}")["spec"]["clusterIP"]  # type: ignore[index]
               for role in ("proxy", "gateway")}
    assert pod["hostAliases"] == [{"ip": address[role], "hostnames": [f"paude-{name}-{role}"]}
                                  for role in ("proxy", "gateway")]
    policies = {p["metadata"]["name"] for p in items(cluster.get("-n", ns, "networkpolicy"))}
    assert policies == {f"paude-{name}-{s}" for s in
                        ("default-deny", "agent-egress", "proxy-ingress", "proxy-egress",
                         "gateway-ingress", "gateway-egress")}
    claim = cluster.get("-n", ns, "pvc", f"paude-{name}-workspace")
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"  # type: ignore[index]
    claim_uid = claim["metadata"]["uid"]  # type: ignore[index]

    # No drift right after apply.
    assert paude.run("plan", name, "--detailed-exitcode").returncode == 0
    # list and status read the cluster through kubectl (no pod runs here: not ready).
    (row,) = json.loads(paude.ok("list", "--json").stdout)
    assert (row["name"], row["backend"]) == (name, "openshift")
    assert row["workspace"] == str(paude.repo.resolve())

    # --openshift-namespace: a check of where the session is, a filter for list.
    wrong = paude.run("status", name, "--openshift-namespace", f"{ns}-other")
    assert wrong.returncode == 1
    assert f"session {name} was applied with namespace {ns}, not {ns}-other" in wrong.stderr
    assert [r["name"] for r in json.loads(paude.ok(
        "list", "--openshift-namespace", ns, "--json").stdout)] == [name]
    assert json.loads(paude.ok("list", "--openshift-namespace", f"{ns}-other",
                               "--json").stdout) == []

    # stop scales the agent to zero, and that is not drift.
    paude.ok("stop", name, "--openshift-namespace", ns, "--openshift-context", "paude-test")
    assert cluster.get("-n", ns, "statefulset", f"paude-{name}-agent")["spec"]["replicas"] == 0  # type: ignore[index]
    result = paude.run("plan", name, "--detailed-exitcode")
    assert result.returncode == 0, result.stdout + result.stderr

    # Widening egress changes the proxy's configuration and restarts only the proxy.
    define(paude, cluster, ns, domains="[default, .example.com]")
    plan = paude.plan_json()
    kinds = {s["kind"] for s in plan["summary"]}  # type: ignore[index]
    assert "egress-widened" in kinds
    changed = {r["resource"] for r in plan["resources"]  # type: ignore[index]
               if r["action"] != "same"}
    assert changed == {"proxy-config", "proxy"}, changed
    assert [f["rule"] for f in plan["policy"]["findings"]] == [  # type: ignore[index]
        "allowlist-wider-than-default"]
    paude.ok("apply", name, "--yes")
    conf = cluster.get("-n", ns, "configmap", f"paude-{name}-proxy-config")
    assert "dstdomain -n .example.com" in conf["data"]["squid.conf"]  # type: ignore[index]

    # The same through `paude allowed-domains`: paude.yaml edited, only the proxy changes.
    agent_version = cluster.get("-n", ns, "statefulset", f"paude-{name}-agent")[
        "metadata"]["resourceVersion"]  # type: ignore[index]
    dry = paude.ok("allowed-domains", name, "--add", ".example.org", "--dry-run").stdout
    assert "egress widened" in dry and "+ .example.org" in dry
    paude.ok("allowed-domains", name, "--add", ".example.org", "--yes")
    assert "allowed_domains: [default, .example.com, .example.org]" in (
        paude.repo / "paude.yaml").read_text()
    conf = cluster.get("-n", ns, "configmap", f"paude-{name}-proxy-config")
    assert "dstdomain -n .example.org" in conf["data"]["squid.conf"]  # type: ignore[index]
    assert cluster.get("-n", ns, "statefulset", f"paude-{name}-agent")[
        "metadata"]["resourceVersion"] == agent_version  # type: ignore[index]

    # destroy keeps the claim and the namespace; everything else goes.
    paude.ok("destroy", name, "--yes")
    assert not cluster.exists("-n", ns, "statefulset", f"paude-{name}-agent")
    assert not cluster.exists("-n", ns, "deployment", f"paude-{name}-proxy")
    assert items(cluster.get("-n", ns, "networkpolicy")) == []
    assert cluster.get("-n", ns, "pvc", f"paude-{name}-workspace")["metadata"]["uid"] == claim_uid  # type: ignore[index]
    assert cluster.exists("namespace", ns)

    # A new apply adopts the same claim: the agent's work is still there.
    paude.ok("apply", name, "--yes")
    assert cluster.get("-n", ns, "pvc", f"paude-{name}-workspace")["metadata"]["uid"] == claim_uid  # type: ignore[index]
    assert cluster.exists("-n", ns, "statefulset", f"paude-{name}-agent")

    # --delete-data removes the claim too.
    paude.ok("destroy", name, "--yes", "--delete-data", "--force")
    assert not cluster.exists("-n", ns, "pvc", f"paude-{name}-workspace")
    assert paude.ok("list", "--json").stdout.strip() == "[]"


def test_mandatory_violation_on_a_cluster_creates_nothing(paude: Paude, cluster: Cluster) -> None:
    ns = f"paude-{secrets.token_hex(3)}"
    # A setup line makes this session's agent image new to the registry.
    define(paude, cluster, ns, domains="[all]",
           extra=f"    yolo: true\n    image: {{base: {BASE_IMAGE}, setup: 'echo {ns}'}}\n")
    before = set(cluster.tags("paude/paude-agent"))
    result = paude.run("apply", paude.session, "--yes")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[yolo-unrestricted-egress] resource agent:" in result.stderr
    assert "Traceback" not in result.stderr
    # Nothing pushed, nothing stored, no stack.
    assert set(cluster.tags("paude/paude-agent")) == before
    assert not cluster.exists("namespace", ns)
    assert paude.ok("list", "--json").stdout.strip() == "[]"


def test_seed_workflow_create_and_delete_on_a_cluster(paude: Paude, cluster: Cluster) -> None:
    """`paude create --backend openshift` with the cluster settings under defaults, then
    `paude delete --confirm --force`."""
    ns = f"paude-{secrets.token_hex(3)}"
    define(paude, cluster, ns)  # for the environment; the file is replaced below
    (paude.repo / "paude.yaml").write_text(
        f"version: 1\ndefaults:\n  agent: {{install: none}}\n  image: {{base: {BASE_IMAGE}}}\n"
        f"  openshift:\n    namespace: {ns}\n    context: paude-test\n"
        f"    create_namespace: true\n    image_registry: {cluster.registry}/paude\n"
        f"    registry_tls_verify: false\n    wait_for_ready: false\n"
        "sessions: {}\n")
    other = f"{paude.session}-b"
    result = paude.run("create", "--backend", "openshift", "--pvc-size", "3Gi", other)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"  {other}:" in (paude.repo / "paude.yaml").read_text()
    claim = cluster.get("-n", ns, "pvc", f"paude-{other}-workspace")
    assert claim["spec"]["resources"]["requests"]["storage"] == "3Gi"  # type: ignore[index]
    assert cluster.exists("-n", ns, "statefulset", f"paude-{other}-agent")
    remotes = paude.ok("list", "--json").stdout
    assert other in remotes
    paude.ok("delete", other, "--confirm", "--force")
    assert not cluster.exists("-n", ns, "pvc", f"paude-{other}-workspace")
    assert not cluster.exists("-n", ns, "statefulset", f"paude-{other}-agent")
