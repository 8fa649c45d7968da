"""Hand-made changes to a cluster session's workloads that server-side apply keeps."""

from __future__ import annotations

import copy
from typing import Any

from paude.cluster_drift import Drift, excuse, pod_drift, workload_drift
from paude.results import PolicyFinding

DECLARED: dict[str, Any] = {"spec": {
    "automountServiceAccountToken": False,
    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
    "containers": [{"name": "agent", "securityContext": {
        "privileged": False, "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True}}],
    "volumes": [{"name": "workspace", "persistentVolumeClaim": {"claimName": "w"}}]}}


def agent(template: dict[str, Any], name: str = "paude-demo-agent") -> dict[str, Any]:
    return {"kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"template": template}}


def test_the_declared_pod_has_no_drift() -> None:
    assert pod_drift(DECLARED, {"agent"}) == []


def test_each_opening_is_named() -> None:
    pod = copy.deepcopy(DECLARED)
    spec = pod["spec"]
    spec.update(hostNetwork=True, hostPID=True, automountServiceAccountToken=True)
    spec["securityContext"]["runAsNonRoot"] = False
    spec["volumes"].append({"name": "root", "hostPath": {"path": "/"}})
    spec["containers"][0]["securityContext"].update(
        privileged=True, allowPrivilegeEscalation=True, runAsUser=0,
        capabilities={"add": ["SYS_ADMIN", "NET_ADMIN"]})
    spec["containers"].append({"name": "sidecar"})
    spec["initContainers"] = [{"name": "agent"}]
    assert pod_drift(pod, {"agent"}) == [
        "hostNetwork turned on", "hostPID turned on", "the service account token is mounted",
        "the pod may run as root (runAsNonRoot not set)", "host path / mounted as volume root",
        "initContainer agent added", "container agent is privileged",
        "container agent allows privilege escalation",
        "container agent adds capabilities SYS_ADMIN, NET_ADMIN", "container agent runs as root",
        "container sidecar added"]


def test_only_the_sessions_workloads_are_read() -> None:
    opened = copy.deepcopy(DECLARED)
    opened["spec"]["hostNetwork"] = True
    proxy = copy.deepcopy(DECLARED)
    proxy["spec"]["containers"][0]["name"] = "squid"
    items = [agent(opened), agent(opened, name="paude-other-agent"),
             {"kind": "Deployment", "metadata": {"name": "paude-demo-proxy"},
              "spec": {"template": proxy}}]
    found = workload_drift(items, "demo")
    assert found == (Drift("agent", "StatefulSet", ("hostNetwork turned on",)),)
    assert found[0].urn("demo", "paude") == \
        "urn:pulumi:demo::paude::kubernetes:apps/v1:StatefulSet::agent"
    item = found[0].summary()
    assert item.kind == "drift" and item.security
    assert workload_drift([agent(DECLARED)], "demo") == ()  # control


def test_only_findings_on_drifted_workloads_are_excused() -> None:
    on_agent = PolicyFinding("no-privileged-or-host-write", "mandatory", "agent", "privileged")
    on_proxy = PolicyFinding("no-privileged-or-host-write", "mandatory", "proxy", "privileged")
    advice = PolicyFinding("public-host-writes", "advisory", "agent", "writes")
    drift = (Drift("agent", "StatefulSet", ("container agent is privileged",)),)
    excused = excuse((on_agent, on_proxy, advice), drift)
    assert excused[0].level == "advisory" and "changed outside paude" in excused[0].message
    assert excused[1] == on_proxy and excused[1].blocking
    assert excused[2] == advice
    assert excuse((on_agent,), ()) == (on_agent,)  # control: no drift, still blocking
