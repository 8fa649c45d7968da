"""A cluster session is a real session: `paude list` and `paude status` read it from the
API server, and its pushed images are read back from the registry (a tag deleted there
is drift that apply repairs).

The test API server has no kubelet: pods never run, so readiness is what the test writes
into the workloads' status, as a kubelet and the controllers would."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.cluster import Cluster, define, start_cluster
from tests.integration.helpers import Paude

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi,
              pytest.mark.requires_k8s_provider, pytest.mark.requires_cluster,
              pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from start_cluster(tmp_path_factory.mktemp("cluster"))


def listed(paude: Paude) -> dict[str, str]:
    rows = json.loads(paude.ok("list", "--json").stdout)
    return {row["name"]: f"{row['backend']} {row['status']}" for row in rows}


def state(paude: Paude) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(paude.ok("status", paude.session, "--json").stdout)
    return data


def set_ready(cluster: Cluster, namespace: str, kind: str, name: str, ready: int) -> None:
    """What the controllers and a kubelet would report for a workload's pods."""
    status = json.dumps({"status": {"replicas": ready, "readyReplicas": ready,
                                    "availableReplicas": ready}})
    result = cluster.kubectl("-n", namespace, "patch", kind, name, "--subresource=status",
                             "--type=merge", "-p", status)
    assert result.returncode == 0, result.stderr


def test_list_and_status_read_the_cluster(paude: Paude, cluster: Cluster) -> None:
    ns = f"paude-{secrets.token_hex(3)}"
    name = paude.session
    define(paude, cluster, ns)
    paude.ok("apply", name, "--yes")

    # Applied, the agent wanted but no pod ready yet: pending, not missing.
    assert listed(paude) == {name: "openshift pending"}
    found = state(paude)
    assert (found["backend"], found["state"], found["agent_alive"]) == (
        "openshift", "pending", False)

    # Pods ready: running.
    set_ready(cluster, ns, "statefulset", f"paude-{name}-agent", 1)
    set_ready(cluster, ns, "deployment", f"paude-{name}-proxy", 1)
    assert listed(paude) == {name: "openshift running"}
    found = state(paude)
    assert (found["state"], found["proxy_alive"]) == ("running", True)
    # No pod to exec into here: the agent's tmux session is not alive.
    assert found["agent_alive"] is False

    # stop scales the agent to zero; the proxy runs on.
    paude.ok("stop", name)
    assert listed(paude) == {name: "openshift stopped"}
    assert state(paude)["state"] == "stopped"

    # Its objects deleted behind paude's back: missing (control: the same read that said
    # running and stopped above).
    for kind, obj in (("statefulset", "agent"), ("deployment", "proxy")):
        assert cluster.kubectl("-n", ns, "delete", kind, f"paude-{name}-{obj}",
                               "--wait=false").returncode == 0
    assert listed(paude) == {name: "openshift missing"}
    assert state(paude)["state"] == "absent"

    paude.ok("apply", name, "--yes")
    assert listed(paude) == {name: "openshift pending"}
    paude.ok("destroy", name, "--yes", "--delete-data", "--force")
    assert listed(paude) == {}


def test_a_tag_deleted_from_the_registry_is_drift(paude: Paude, cluster: Cluster) -> None:
    ns = f"paude-{secrets.token_hex(3)}"
    name = paude.session
    define(paude, cluster, ns)
    paude.ok("apply", name, "--yes")
    agent = cluster.get("-n", ns, "statefulset", f"paude-{name}-agent")
    image = agent["spec"]["template"]["spec"]["containers"][0]["image"]  # type: ignore[index]
    tag = image.rsplit(":", 1)[1]
    # Control: right after apply, the registry holds the tag and the plan is clean.
    assert tag in cluster.tags("paude/paude-agent")
    assert paude.run("plan", name, "--detailed-exitcode").returncode == 0

    cluster.delete_tag("paude/paude-agent", tag)
    assert tag not in cluster.tags("paude/paude-agent")
    plan = paude.plan_json()
    drift = [s for s in plan["summary"] if s["kind"] == "drift"]  # type: ignore[union-attr]
    assert [d["text"] for d in drift] == [
        "agent image changed outside paude; apply pushes it again"]
    assert drift[0]["details"] == [
        f"tag {tag} is missing from {cluster.registry}/paude/paude-agent"]
    actions = {r["resource"]: r["action"] for r in plan["resources"]}  # type: ignore[index]
    assert actions["agent-image"] == "replace" and actions["proxy-image"] == "same"
    # Pushed again, not rebuilt; the pods' definition does not change.
    assert actions["agent"] == "same"
    assert "image-rebuilt" not in {s["kind"] for s in plan["summary"]}  # type: ignore[union-attr]
    assert paude.run("plan", name, "--detailed-exitcode").returncode == 2

    paude.ok("apply", name, "--yes")
    assert tag in cluster.tags("paude/paude-agent")
    result = paude.run("plan", name, "--detailed-exitcode")
    assert result.returncode == 0, result.stdout + result.stderr
    paude.ok("destroy", name, "--yes", "--delete-data", "--force")


def test_a_hand_edited_proxy_configuration_is_drift_that_apply_repairs(
        paude: Paude, cluster: Cluster) -> None:
    ns = f"paude-{secrets.token_hex(3)}"
    name = paude.session
    define(paude, cluster, ns)
    paude.ok("apply", name, "--yes")
    assert paude.run("plan", name, "--detailed-exitcode").returncode == 0  # control

    # The proxy's configuration opened to everything by hand (kubectl patch): the field
    # is paude's, so the plan shows the change and apply takes it back instead of
    # stopping at a server-side apply conflict.
    config_map = f"paude-{name}-proxy-config"
    config = cluster.get("-n", ns, "configmap", config_map)
    declared = config["data"]["squid.conf"]  # type: ignore[index]
    opened = declared.replace("http_access deny all paude_m_default", "http_access allow all")
    assert opened != declared
    assert cluster.kubectl("-n", ns, "patch", "configmap", config_map, "--type=merge", "-p",
                           json.dumps({"data": {"squid.conf": opened}})).returncode == 0
    plan = paude.plan_json()
    actions = {r["resource"]: r["action"] for r in plan["resources"]}  # type: ignore[index]
    assert actions["proxy-config"] == "update", actions
    narrowed = [s for s in plan["summary"] if s["kind"] == "egress-narrowed"]  # type: ignore[union-attr]
    assert narrowed and narrowed[0]["security_relevant"] is True
    paude.ok("apply", name, "--yes")
    conf = cluster.get("-n", ns, "configmap", config_map)
    assert conf["data"]["squid.conf"] == declared  # type: ignore[index]
    result = paude.run("plan", name, "--detailed-exitcode")
    assert result.returncode == 0, result.stdout + result.stderr
    paude.ok("destroy", name, "--yes", "--delete-data", "--force")



def test_a_workload_opened_up_by_hand_is_drift_that_apply_replaces(
        paude: Paude, cluster: Cluster) -> None:
    ns = f"paude-{secrets.token_hex(3)}"
    name = paude.session
    define(paude, cluster, ns)
    paude.ok("apply", name, "--yes")
    assert paude.run("plan", name, "--detailed-exitcode").returncode == 0  # control
    agent = f"paude-{name}-agent"
    # Server-side apply leaves these to whoever set them: hostNetwork is a field paude can
    # never own (the API drops `false`), the capability list and the extra container were
    # never paude's, and privileged escalation is one paude states.
    patch = {"spec": {"template": {"spec": {"hostNetwork": True, "containers": [
        {"name": "agent", "securityContext": {"privileged": True,
                                              "allowPrivilegeEscalation": True,
                                              "capabilities": {"add": ["SYS_ADMIN"]}}},
        {"name": "sidecar", "image": "busybox", "command": ["sleep", "1d"]}]}}}}
    assert cluster.kubectl("-n", ns, "patch", "statefulset", agent, "--type=strategic", "-p",
                           json.dumps(patch)).returncode == 0

    plan = paude.plan_json()
    actions = {r["resource"]: r["action"] for r in plan["resources"]}  # type: ignore[index]
    assert actions["agent"] == "replace", actions
    assert actions["workspace"] == "same", actions
    drift = [s for s in plan["summary"] if s["kind"] == "drift"]  # type: ignore[union-attr]
    assert drift and drift[0]["security_relevant"] is True, plan["summary"]
    details = "\n".join(drift[0]["details"])
    for expected in ("hostNetwork turned on", "container agent is privileged",
                     "adds capabilities SYS_ADMIN", "container sidecar added"):
        assert expected in details, details
    # The policy pack judges the declared workload that replaces it: nothing blocks.
    assert plan["policy"]["passed"] is True, plan["policy"]  # type: ignore[index]

    paude.ok("apply", name, "--yes")
    spec = cluster.get("-n", ns, "statefulset", agent)["spec"]["template"]["spec"]  # type: ignore[index]
    assert not spec.get("hostNetwork")
    assert [c["name"] for c in spec["containers"]] == ["agent"]
    security = spec["containers"][0]["securityContext"]
    assert security["privileged"] is False and security["allowPrivilegeEscalation"] is False
    assert "add" not in security["capabilities"]
    assert cluster.exists("-n", ns, "pvc", f"paude-{name}-workspace")
    result = paude.run("plan", name, "--detailed-exitcode")
    assert result.returncode == 0, result.stdout + result.stderr
    paude.ok("destroy", name, "--yes", "--delete-data", "--force")
