"""A namespace's ResourceQuota and LimitRange against a session's requests and limits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from paude import quota, sizing
from paude.errors import NamespaceRefusedError, ToolNotFoundError
from paude.models import PaudeFile, Session, resolve
from paude.proc import CommandResult
from paude.stacks.openshift import objects


def session_of(spec: dict[str, Any] | None = None) -> Session:
    base = {"backend": "openshift", "openshift": {"namespace": "team-a", "pvc_size": "10Gi"}}
    return resolve(PaudeFile.model_validate({"sessions": {"demo": {**base, **(spec or {})}}}),
                   "demo")


def rq(name: str, hard: dict[str, str], used: dict[str, str] | None = None,
       **spec: Any) -> dict[str, Any]:
    return {"kind": "ResourceQuota", "metadata": {"name": name},
            "spec": {"hard": hard, **spec}, "status": {"hard": hard, "used": used or {}}}


def lr(name: str, *limits: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "LimitRange", "metadata": {"name": name}, "spec": {"limits": list(limits)}}


@pytest.mark.parametrize(("text", "value"), [
    ("500m", Decimal("0.5")), ("2", Decimal(2)), ("4Gi", Decimal(4 * 2**30)),
    ("1e3", Decimal(1000)), ("1.5G", Decimal(1_500_000_000)), ("x", None), ("", None)])
def test_quantities(text: str, value: Decimal | None) -> None:
    assert quota.quantity(text) == value


def test_what_a_default_session_asks() -> None:
    need = quota.needs(session_of())
    agent, proxy, gateway = need.containers
    assert agent.limits == {"memory": Decimal(4 * 2**30), "cpu": Decimal(2)}
    assert agent.requests == {"memory": Decimal(4 * 2**30), "cpu": Decimal("0.25")}
    assert proxy.limits == gateway.limits == {"memory": Decimal(256 * 2**20), "cpu": Decimal(1)}
    assert need.storage == Decimal(10 * 2**30)


def test_a_quota_with_room_admits_the_session() -> None:
    quotas = [rq("team", {"requests.cpu": "2", "requests.memory": "8Gi", "limits.cpu": "8",
                          "limits.memory": "8Gi", "pods": "10", "services": "5",
                          "requests.storage": "50Gi", "persistentvolumeclaims": "3"},
                 {"limits.memory": "1Gi", "pods": "1"})]
    assert quota.quota_problems(quota.needs(session_of()), quotas, {}, new_claim=True) == []


def test_a_quota_too_small_names_key_amounts_and_quota() -> None:
    quotas = [rq("small", {"limits.memory": "4Gi", "requests.storage": "5Gi", "pods": "10"},
                 {"limits.memory": "1Gi"})]
    assert quota.quota_problems(quota.needs(session_of()), quotas, {}, new_claim=True) == [
        "ResourceQuota small: limits.memory 4608Mi needed, 3Gi left of 4Gi",
        "ResourceQuota small: requests.storage 10Gi needed, 5Gi left of 5Gi"]


def stored(session: Session, agent_replicas: int = 1) -> list[dict[str, Any]]:
    """The session's workloads as the API server holds them after an apply."""
    agent = objects.agent_statefulset(session.name, "img", {}, [], [], "10.0.0.1",
                                      sizing.agent_limits(session.resources))
    proxy = objects.proxy_deployment(session.name, "img", "hash")
    gateway = objects.gateway_deployment(session.name, "img", "{}", [], "10.0.0.1")
    return [{"kind": "StatefulSet", "metadata": {"name": f"paude-{session.name}-agent"},
             "spec": {**agent, "replicas": agent_replicas}},
            {"kind": "Deployment", "metadata": {"name": f"paude-{session.name}-proxy"},
             "spec": proxy},
            {"kind": "Deployment", "metadata": {"name": f"paude-{session.name}-gateway"},
             "spec": gateway}]


def test_what_exists_is_already_counted() -> None:
    session = session_of()
    now = quota.running("demo", stored(session))
    assert now["agent"][0] == 1 and now["agent"][1] == quota.needs(session).containers[0]
    # The quota is full with this very session's pods and claim: nothing more is needed.
    quotas = [rq("full", {"limits.memory": "4608Mi", "requests.storage": "10Gi", "pods": "3",
                          "services": "2"},
                 {"limits.memory": "4608Mi", "requests.storage": "10Gi", "pods": "3",
                  "services": "2"})]
    assert quota.quota_problems(quota.needs(session), quotas, now, new_claim=False) == []


def test_a_raised_limit_needs_only_the_difference() -> None:
    before = session_of()
    now = quota.running("demo", stored(before))
    quotas = [rq("team", {"limits.memory": "8Gi"}, {"limits.memory": "4608Mi"})]
    bigger = quota.needs(session_of({"resources": {"memory": "6Gi"}}))
    assert quota.quota_problems(quota.needs(session_of({"resources": {"memory": "8Gi"}})),
                                quotas, now, new_claim=False) == [
        "ResourceQuota team: limits.memory 4Gi needed, 3584Mi left of 8Gi"]
    assert quota.quota_problems(bigger, quotas, now, new_claim=False) == []


def test_a_stopped_agent_stays_stopped() -> None:
    session = session_of({"resources": {"memory": "8Gi"}})
    now = quota.running("demo", stored(session_of(), agent_replicas=0))
    quotas = [rq("team", {"limits.memory": "1Gi"}, {"limits.memory": "512Mi"})]
    assert quota.quota_problems(quota.needs(session), quotas, now, new_claim=False) == []


def test_a_quota_on_a_limit_the_session_removed() -> None:
    need = quota.needs(session_of({"resources": {"cpus": "unlimited"}}))
    quotas = [rq("cpu", {"limits.cpu": "100"})]
    assert quota.quota_problems(need, quotas, {}, new_claim=True) == [
        "ResourceQuota cpu: tracks limits.cpu, which the agent container sets none of"]
    shorthand = [rq("short", {"cpu": "100"})]  # requests.cpu
    assert quota.quota_problems(need, shorthand, {}, new_claim=True) == [
        "ResourceQuota short: tracks cpu, which the agent container sets none of"]


def test_quotas_scoped_to_other_pods_are_left_to_the_server() -> None:
    tiny = {"limits.memory": "1Mi"}
    need = quota.needs(session_of())
    assert quota.quota_problems(need, [rq("t", tiny, scopes=["Terminating"]),
                                       rq("p", tiny, scopeSelector={"matchExpressions": []})],
                                {}, new_claim=True) == []
    # Control: a scope paude's pods are in applies.
    assert quota.quota_problems(need, [rq("n", tiny, scopes=["NotTerminating"])],
                                {}, new_claim=True)


def test_limit_ranges() -> None:
    need = quota.needs(session_of())
    roomy = lr("ok", {"type": "Container", "max": {"memory": "8Gi", "cpu": "4"},
                      "min": {"memory": "64Mi", "cpu": "10m"}},
               {"type": "PersistentVolumeClaim", "max": {"storage": "20Gi"}})
    assert quota.limit_range_problems(need, [roomy], new_claim=True) == []
    tight = lr("tight", {"type": "Container", "max": {"memory": "2Gi"},
                         "min": {"cpu": "500m"}, "maxLimitRequestRatio": {"cpu": "4"}},
               {"type": "PersistentVolumeClaim", "max": {"storage": "5Gi"}})
    assert quota.limit_range_problems(need, [tight], new_claim=True) == [
        "LimitRange tight: the agent container's cpu request 250m is below the minimum 500m",
        "LimitRange tight: the agent container's cpu limit is 8 times its request; at most 4 "
        "is allowed",
        "LimitRange tight: the agent container's memory limit 4Gi is above the maximum 2Gi",
        "LimitRange tight: the proxy container's cpu request 250m is below the minimum 500m",
        "LimitRange tight: the gateway container's cpu request 250m is below the minimum 500m",
        "LimitRange tight: the workspace claim's storage request 10Gi is above the maximum "
        "5Gi"]
    ratio = lr("ratio", {"type": "Pod", "maxLimitRequestRatio": {"cpu": "4"}})
    assert quota.limit_range_problems(need, [ratio], new_claim=False) == [
        "LimitRange ratio: the agent pod's cpu limit is 8 times its request; at most 4 is "
        "allowed"]


def test_a_maximum_on_a_limit_the_session_removed() -> None:
    need = quota.needs(session_of({"resources": {"memory": "unlimited"}}))
    bound = {"type": "Container", "max": {"memory": "8Gi"}}
    assert quota.limit_range_problems(need, [lr("m", bound)], new_claim=False) == [
        "LimitRange m: the agent container sets no memory limit; the maximum is 8Gi"]
    # Control: the limit range's default limit fills it in.
    assert quota.limit_range_problems(
        need, [lr("m", {**bound, "default": {"memory": "1Gi"}})], new_claim=False) == []


class Cluster:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, rules: list[dict[str, Any]],
                 ours: list[dict[str, Any]], code: int = 0) -> None:
        self.replies = [json.dumps({"items": rules}), json.dumps({"items": ours})]
        self.code = code
        monkeypatch.setattr("paude.backends.kubernetes.proc.run", self.run)
        monkeypatch.setattr("paude.backends.kubernetes.proc.which", lambda _t: None)

    def run(self, argv: Sequence[str], **_kw: Any) -> CommandResult:
        return CommandResult(tuple(argv), self.code, self.replies.pop(0), "")


def test_check_refuses_before_anything_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    Cluster(monkeypatch, [rq("small", {"limits.memory": "1Gi"}),
                          lr("tight", {"type": "Container", "max": {"memory": "2Gi"}})], [])
    with pytest.raises(NamespaceRefusedError) as caught:
        quota.check(session_of())
    assert caught.value.message == (
        "namespace team-a refuses session demo:\n"
        "    ResourceQuota small: limits.memory 4608Mi needed, 1Gi left of 1Gi\n"
        "    LimitRange tight: the agent container's memory limit 4Gi is above the maximum 2Gi")
    assert caught.value.hint is not None
    assert caught.value.hint.startswith("lower sessions.demo.resources in paude.yaml (the "
                                        "agent takes memory 4Gi, 2 CPUs, 4096 processes")
    assert "kubectl describe resourcequota,limitrange -n team-a" in caught.value.hint
    assert "pvc_size" not in caught.value.hint
    assert caught.value.hint.endswith("; nothing was changed")
    assert caught.value.exit_code == 1


def test_check_of_a_running_session_counts_it_once(monkeypatch: pytest.MonkeyPatch) -> None:
    Cluster(monkeypatch, [rq("small", {"limits.memory": "5Gi"}, {"limits.memory": "4608Mi"})],
            [*stored(session_of()), {"kind": "PersistentVolumeClaim"}])
    quota.check(session_of())


def test_check_leaves_an_unreadable_namespace_to_the_server(
        monkeypatch: pytest.MonkeyPatch) -> None:
    Cluster(monkeypatch, [rq("small", {"limits.memory": "1Gi"})], [], code=1)
    quota.check(session_of())


# Recorded from kube-apiserver, as the engine passes them on.
EXCEEDED = ('kubernetes:core/v1:Secret (credentials):\n  error: resource team-a/paude-demo-'
            'credentials was not successfully created by the Kubernetes API server: secrets '
            '"paude-demo-credentials" is forbidden: exceeded quota: objects, requested: '
            'count/secrets=1,secrets=1, used: count/secrets=0,secrets=0, limited: '
            'count/secrets=0,secrets=0')
RANGE = ('error: persistentvolumeclaims "paude-demo-workspace" is forbidden: maximum storage '
         'usage per PersistentVolumeClaim is 5Gi, but request is 10Gi')
UNKNOWN = ('error: services "paude-demo-proxy" is forbidden: status unknown for quota: '
           'objects, resources: services')


def test_api_refusals_are_mapped() -> None:
    session = session_of()
    found = quota.api_refusal(EXCEEDED, session)
    assert isinstance(found, NamespaceRefusedError)
    assert found.message == (
        "namespace team-a refuses session demo:\n    ResourceQuota objects refused secrets "
        '"paude-demo-credentials": requested count/secrets=1,secrets=1, used '
        "count/secrets=0,secrets=0, limited count/secrets=0,secrets=0")
    assert found.hint == (
        "ask the namespace's administrator to raise the quota or limit range (`kubectl "
        "describe resourcequota,limitrange -n team-a`); then `paude apply demo` completes "
        "the session (what was made stays)")
    found = quota.api_refusal(RANGE, session)
    assert found is not None and found.message.endswith(
        'a LimitRange refused persistentvolumeclaims "paude-demo-workspace": maximum storage '
        "usage per PersistentVolumeClaim is 5Gi, but request is 10Gi")
    assert found.hint is not None and "pvc_size" in found.hint
    found = quota.api_refusal(UNKNOWN, session)
    assert found is not None and "has no usage yet" in found.message
    assert quota.api_refusal("error: connection refused", session) is None


def test_check_without_kubectl_is_left_to_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(argv: Sequence[str], **_kw: Any) -> CommandResult:
        raise ToolNotFoundError("kubectl is not installed or not on PATH")

    monkeypatch.setattr("paude.backends.kubernetes.proc.run", missing)
    monkeypatch.setattr("paude.backends.kubernetes.proc.which", lambda _t: None)
    quota.check(session_of())
