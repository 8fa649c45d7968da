"""A namespace an administrator limits with a LimitRange and a ResourceQuota: a session
fits and is admitted; a quota too small refuses it with paude's error (what, by which
quota, how to fix) before anything is made; a refusal only the API server knows of is
mapped to the same kind of error.

The API server runs its LimitRanger and ResourceQuota admission plugins, and the quota
controller counts usage. No pod runs (no kubelet, no workload controllers), so the pods
are checked with a server-side dry run of their templates: the same admission, nothing
stored."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
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


def create(cluster: Cluster, tmp: Path, *objects: dict[str, Any]) -> None:
    """Objects made as the namespace's administrator."""
    path = tmp / f"admin-{secrets.token_hex(3)}.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))
    result = cluster.kubectl("create", "-f", str(path))
    assert result.returncode == 0, result.stderr


def namespace(cluster: Cluster, tmp: Path, *rules: dict[str, Any]) -> str:
    """A namespace with the administrator's rules, once its quotas are counted."""
    ns = f"paude-{secrets.token_hex(3)}"
    create(cluster, tmp, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    create(cluster, tmp, *({**r, "metadata": {**r["metadata"], "namespace": ns}} for r in rules))
    deadline = time.monotonic() + 60
    for rule in rules:
        if rule["kind"] != "ResourceQuota":
            continue
        while not cluster.get("-n", ns, "resourcequota", rule["metadata"]["name"]).get(
                "status", {}).get("used"):
            assert time.monotonic() < deadline, "the quota controller never counted the quota"
            time.sleep(0.2)
    return ns


def resource_quota(name: str, hard: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name},
            "spec": {"hard": hard}}


LIMITS = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "team-limits"},
          "spec": {"limits": [
              {"type": "Container", "max": {"memory": "8Gi", "cpu": "4"},
               "min": {"memory": "64Mi", "cpu": "10m"},
               "default": {"memory": "512Mi", "cpu": "500m"},
               "defaultRequest": {"memory": "256Mi", "cpu": "100m"}},
              {"type": "PersistentVolumeClaim", "max": {"storage": "20Gi"}}]}}
QUOTA = resource_quota("team-quota", {
    "requests.cpu": "4", "requests.memory": "8Gi", "limits.cpu": "8", "limits.memory": "8Gi",
    "pods": "10", "services": "5", "persistentvolumeclaims": "2", "requests.storage": "20Gi"})


def dry_run_pod(cluster: Cluster, tmp: Path, ns: str, kind: str, name: str,
                memory: str | None = None) -> Any:
    """Create (server-side dry run) the pod a workload's controller would create."""
    template = cluster.get("-n", ns, kind, name)["spec"]["template"]  # type: ignore[index]
    spec = template["spec"]
    if memory:
        spec["containers"][0]["resources"]["limits"]["memory"] = memory
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": f"{name}-probe", "namespace": ns,
                        "labels": template["metadata"]["labels"]}, "spec": spec}
    path = tmp / f"{name}-pod.json"
    path.write_text(json.dumps(pod))
    return cluster.kubectl("create", "--dry-run=server", "-f", str(path))


def test_a_limited_namespace_admits_the_session(paude: Paude, cluster: Cluster,
                                                tmp_path: Path) -> None:
    ns = namespace(cluster, tmp_path, LIMITS, QUOTA)
    name = paude.session
    define(paude, cluster, ns, create_namespace=False)
    paude.ok("apply", name, "--yes")

    # Stored, and counted against the quota.
    for kind, obj in (("statefulset", "agent"), ("deployment", "proxy"),
                      ("deployment", "gateway"), ("pvc", "workspace")):
        assert cluster.exists("-n", ns, kind, f"paude-{name}-{obj}")
    used = cluster.get("-n", ns, "resourcequota", "team-quota")["status"]["used"]  # type: ignore[index]
    assert (used["services"], used["persistentvolumeclaims"], used["requests.storage"]) == (
        "2", "1", "2Gi")
    # The pods the controllers would make pass the LimitRange and the quota.
    workloads = (("statefulset", f"paude-{name}-agent"), ("deployment", f"paude-{name}-proxy"),
                 ("deployment", f"paude-{name}-gateway"))
    for kind, obj in workloads:
        result = dry_run_pod(cluster, tmp_path, ns, kind, obj)
        assert result.returncode == 0, result.stderr
    # Control: the same dry run refuses an agent above the LimitRange's maximum.
    result = dry_run_pod(cluster, tmp_path, ns, "statefulset", f"paude-{name}-agent", "16Gi")
    assert result.returncode != 0
    assert "maximum memory usage per Container is 8Gi" in result.stderr
    # A second apply counts the session once: nothing to change, nothing refused.
    assert paude.run("plan", name, "--detailed-exitcode").returncode == 0
    paude.ok("apply", name, "--yes")

    # A raised limit is checked too: only the difference counts against the quota.
    define(paude, cluster, ns, create_namespace=False, extra="    resources: {memory: 16Gi}\n")
    result = paude.run("apply", name, "--yes")
    assert result.returncode == 1, result.stdout + result.stderr
    assert ("    ResourceQuota team-quota: limits.memory 12Gi needed, 8Gi left of 8Gi\n"
            "    ResourceQuota team-quota: requests.memory 12Gi needed, 8Gi left of 8Gi\n"
            "    LimitRange team-limits: the agent container's memory limit 16Gi is above the "
            "maximum 8Gi\n") in result.stderr
    agent = cluster.get("-n", ns, "statefulset", f"paude-{name}-agent")
    assert agent["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"][  # type: ignore[index]
        "memory"] == "4Gi"
    # Control: a raise within both fits and is applied.
    define(paude, cluster, ns, create_namespace=False, extra="    resources: {memory: 6Gi}\n")
    paude.ok("apply", name, "--yes")
    agent = cluster.get("-n", ns, "statefulset", f"paude-{name}-agent")
    assert agent["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"][  # type: ignore[index]
        "memory"] == "6Gi"


def test_a_quota_too_small_is_refused_with_the_fix(paude: Paude, cluster: Cluster,
                                                   tmp_path: Path) -> None:
    ns = namespace(cluster, tmp_path, LIMITS,
                   resource_quota("small-quota", {"limits.memory": "2Gi", "pods": "10"}))
    name = paude.session
    define(paude, cluster, ns, create_namespace=False)
    result = paude.run("apply", name, "--yes")
    assert result.returncode == 1, result.stdout + result.stderr
    assert (f"namespace {ns} refuses session {name}:\n"
            "    ResourceQuota small-quota: limits.memory 4608Mi needed, 2Gi left of 2Gi\n"
            f"  fix: lower sessions.{name}.resources in paude.yaml") in result.stderr
    assert f"kubectl describe resourcequota,limitrange -n {ns}" in result.stderr
    assert "Traceback" not in result.stderr
    # Nothing was made in the namespace.
    for kind in ("statefulset", "deployment", "pvc", "service", "networkpolicy"):
        assert json.loads(cluster.kubectl("-n", ns, "get", kind, "-o", "json").stdout)[
            "items"] == []

    # Following the fix: a smaller agent fits (1Gi + 2 x 256Mi of 2Gi).
    define(paude, cluster, ns, create_namespace=False, extra="    resources: {memory: 1Gi}\n")
    paude.ok("apply", name, "--yes")
    assert cluster.exists("-n", ns, "statefulset", f"paude-{name}-agent")


def test_a_refusal_only_the_api_server_knows_is_explained(paude: Paude, cluster: Cluster,
                                                          tmp_path: Path) -> None:
    # paude's own check does not count NetworkPolicies; the API server does.
    ns = namespace(cluster, tmp_path, resource_quota(
        "no-policies", {"count/networkpolicies.networking.k8s.io": "0"}))
    name = paude.session
    define(paude, cluster, ns, create_namespace=False)
    result = paude.run("apply", name, "--yes")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"namespace {ns} refuses session {name}:\n    ResourceQuota no-policies refused " \
           "networkpolicies.networking.k8s.io" in result.stderr
    assert "limited count/networkpolicies.networking.k8s.io=0" in result.stderr
    assert "fix: ask the namespace's administrator to raise the quota" in result.stderr
    assert "Traceback" not in result.stderr
    # Following the fix: with the quota raised, apply completes the session.
    result = cluster.kubectl("-n", ns, "patch", "resourcequota", "no-policies", "--type=merge",
                             "-p", '{"spec": {"hard": {"count/networkpolicies.networking.k8s.io": '
                                   '"6"}}}')
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 60  # admission reads the quota's status, which the
    while cluster.get("-n", ns, "resourcequota", "no-policies")["status"]["hard"][  # type: ignore[index]
            "count/networkpolicies.networking.k8s.io"] != "6":  # controller updates
        assert time.monotonic() < deadline
        time.sleep(0.2)
    paude.ok("apply", name, "--yes")
    assert len(json.loads(cluster.kubectl("-n", ns, "get", "networkpolicy", "-o", "json")
                          .stdout)["items"]) == 6
