"""What a namespace's administrator allows a session: ResourceQuota and LimitRange.

Every container of a cluster session carries requests and limits (paude/sizing.py), so a
namespace with a quota admits its pods. Whether the quota is large enough is known only
in the cluster, and a pod it refuses is refused to a controller, long after `paude
apply` returned (or as a readiness timeout). So apply checks first: it reads the
namespace's quotas and limit ranges and refuses, before anything is made, a session
they would refuse, naming the object, the amount and the fix. A refusal the check did
not foresee (the API server's own words, through the engine) is mapped to the same
error."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from paude import sizing
from paude.backends.kubernetes import KubernetesBackend
from paude.errors import EngineError, NamespaceRefusedError, PaudeError, ToolNotFoundError
from paude.models import Session
from paude.naming import ClusterNames

log = logging.getLogger(__name__)

_SUFFIX: dict[str, Decimal] = {
    "": Decimal(1), "m": Decimal("0.001"), "k": Decimal(10**3), "M": Decimal(10**6),
    "G": Decimal(10**9), "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60)}
_QUANTITY = re.compile(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?")
# Quota scopes a paude pod is in: it has no deadline and sets requests.
_PAUDE_SCOPES = frozenset({"NotTerminating", "NotBestEffort"})
ROLES = ("agent", "proxy", "gateway")


def quantity(text: Any) -> Decimal | None:
    """A Kubernetes quantity ("500m", "4Gi", "1e3") as a number; None when unreadable."""
    match = _QUANTITY.fullmatch(str(text).strip())
    if match is None:
        return None
    try:
        return Decimal(match.group(1)) * _SUFFIX[match.group(2) or ""]
    except InvalidOperation:
        return None


@dataclass(frozen=True)
class Container:
    """One container's requests and limits, by resource ("cpu", "memory")."""

    role: str
    requests: dict[str, Decimal]
    limits: dict[str, Decimal]


@dataclass(frozen=True)
class Needs:
    """What a session asks of its namespace."""

    containers: tuple[Container, ...]
    storage: Decimal | None
    storage_class: str | None
    # Objects the session makes, by quota key.
    objects: dict[str, int] = field(default_factory=dict)


def needs(session: Session) -> Needs:
    """The session's containers (one per pod) and its claim."""
    limits = {"agent": sizing.agent_limits(session.resources), "proxy": sizing.PROXY,
              "gateway": sizing.PROXY}
    containers = []
    for role in ROLES:
        resources = sizing.kubernetes(limits[role])
        containers.append(Container(role, _parsed(resources, "requests"),
                                    _parsed(resources, "limits")))
    cfg = session.openshift
    return Needs(tuple(containers), quantity(cfg.pvc_size), cfg.storage_class,
                 {"services": 2, "count/deployments.apps": 2, "count/statefulsets.apps": 1,
                  "configmaps": 1})


def _show(key: str, value: Decimal) -> str:
    if key.endswith(("memory", "storage")) and value == value.to_integral_value():
        return sizing.human_bytes(int(value))
    if key.endswith("cpu"):
        whole = value == value.to_integral_value()
        return str(int(value)) if whole else f"{int(value * 1000)}m"
    return str(value.normalize()) if value != value.to_integral_value() else str(int(value))


def _parsed(resources: Mapping[str, Any], kind: str) -> dict[str, Decimal]:
    found = {k: quantity(v) for k, v in (resources.get(kind) or {}).items()}
    return {k: v for k, v in found.items() if v is not None}


def running(session: str, workloads: Sequence[Mapping[str, Any]]
            ) -> dict[str, tuple[int, Container]]:
    """The session's pods as the cluster has them now, by role: (replicas, container)."""
    names = ClusterNames(session)
    roles = {("StatefulSet", names.agent): "agent", ("Deployment", names.proxy): "proxy",
             ("Deployment", names.gateway): "gateway"}
    out = {}
    for item in workloads:
        role = roles.get((str(item.get("kind")), str((item.get("metadata") or {}).get("name"))))
        spec = item.get("spec") or {}
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        if role is None or not containers:
            continue
        resources = containers[0].get("resources") or {}
        out[role] = (int(spec.get("replicas", 1) or 0), Container(
            role, _parsed(resources, "requests"), _parsed(resources, "limits")))
    return out


def _usage(pods: Sequence[tuple[int, Container]]) -> dict[str, Decimal]:
    """What pods count against a quota, by every key a quota may track it under."""
    out = {"pods": Decimal(sum(n for n, _ in pods))}
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            out[f"{kind}.{resource}"] = sum(
                (n * getattr(c, kind).get(resource, Decimal(0)) for n, c in pods), Decimal(0))
    out.update({"count/pods": out["pods"], "cpu": out["requests.cpu"],
                "memory": out["requests.memory"]})  # a quota's shorthands
    return out


def _demand(need: Needs, now: Mapping[str, tuple[int, Container]], *, new_claim: bool
            ) -> dict[str, Decimal]:
    """What an apply adds to a quota's usage: the pods as declared against the pods as they
    are (an apply keeps the agent's replicas: `paude stop` is not undone), the objects of
    a session new to the namespace, and a new claim."""
    after = [(now[c.role][0] if c.role in now else 1, c) for c in need.containers]
    before, new = _usage(list(now.values())), _usage(after)
    out = {key: new[key] - before[key] for key in new}
    if "agent" not in now:
        for key, count in need.objects.items():
            out[key] = Decimal(count)
            if "/" not in key:
                out[f"count/{key}"] = Decimal(count)
    if new_claim and need.storage is not None:
        out["persistentvolumeclaims"] = out["count/persistentvolumeclaims"] = Decimal(1)
        out["requests.storage"] = need.storage
        if need.storage_class:
            prefix = f"{need.storage_class}.storageclass.storage.k8s.io"
            out[f"{prefix}/requests.storage"] = need.storage
            out[f"{prefix}/persistentvolumeclaims"] = Decimal(1)
    return out


def _missing(need: Needs, key: str) -> list[str]:
    """Containers without the request or limit a quota on `key` requires of every pod."""
    kind, _, resource = {"cpu": "requests.cpu", "memory": "requests.memory"}.get(
        key, key).partition(".")
    if kind not in ("requests", "limits") or resource not in ("cpu", "memory"):
        return []
    return [c.role for c in need.containers if resource not in getattr(c, kind)]


def quota_problems(need: Needs, quotas: Sequence[Mapping[str, Any]],
                   now: Mapping[str, tuple[int, Container]], *, new_claim: bool) -> list[str]:
    """One line per quota key the session would exceed; `now`: its pods as they are."""
    demand = _demand(need, now, new_claim=new_claim)
    lines = []
    for quota in quotas:
        name = str((quota.get("metadata") or {}).get("name", "?"))
        spec = quota.get("spec") or {}
        if spec.get("scopeSelector") or not set(spec.get("scopes") or []) <= _PAUDE_SCOPES:
            continue  # scoped to pods that are not paude's (the API server decides)
        used = (quota.get("status") or {}).get("used") or {}
        for key, hard_text in sorted((spec.get("hard") or {}).items()):
            hard, wanted = quantity(hard_text), demand.get(key)
            if hard is None or wanted is None:
                continue
            if _missing(need, key):
                lines.append(f"ResourceQuota {name}: tracks {key}, which the "
                             f"{', '.join(_missing(need, key))} container sets none of")
                continue
            spent = quantity(used.get(key, "0")) or Decimal(0)
            if wanted > 0 and spent + wanted > hard:
                lines.append(f"ResourceQuota {name}: {key} {_show(key, wanted)} needed, "
                             f"{_show(key, max(hard - spent, Decimal(0)))} left of "
                             f"{_show(key, hard)}")
    return lines


def _bounds(label: str, item: Mapping[str, Any], owner: str, requests: dict[str, Decimal],
            limits: dict[str, Decimal], limit_word: str = "limit") -> list[str]:
    lines = []
    maxima, minima = item.get("max") or {}, item.get("min") or {}
    ratios = item.get("maxLimitRequestRatio") or {}
    for resource in sorted(set(maxima) | set(minima) | set(ratios)):
        high, low = quantity(maxima.get(resource)), quantity(minima.get(resource))
        ratio = quantity(ratios.get(resource))
        limit, request = limits.get(resource), requests.get(resource)
        if high is not None and limit is None and resource not in (item.get("default") or {}):
            lines.append(f"{label}: {owner} sets no {resource} limit; the maximum is "
                         f"{_show(resource, high)}")
        if high is not None and limit is not None and limit > high:
            lines.append(f"{label}: {owner}'s {resource} {limit_word} "
                         f"{_show(resource, limit)} is above the maximum {_show(resource, high)}")
        if low is not None and request is not None and request < low:
            lines.append(f"{label}: {owner}'s {resource} request {_show(resource, request)} "
                         f"is below the minimum {_show(resource, low)}")
        if ratio is not None and limit is not None and request and limit / request > ratio:
            lines.append(f"{label}: {owner}'s {resource} limit is {limit / request:.4g} times "
                         f"its request; at most {ratio.normalize()} is allowed")
    return lines


def limit_range_problems(need: Needs, ranges: Sequence[Mapping[str, Any]], *,
                         new_claim: bool) -> list[str]:
    """One line per container, pod or claim bound the session is outside of."""
    lines = []
    for limit_range in ranges:
        label = f"LimitRange {(limit_range.get('metadata') or {}).get('name', '?')}"
        for item in (limit_range.get("spec") or {}).get("limits") or []:
            kind = item.get("type")
            if kind in ("Container", "Pod"):
                for c in need.containers:
                    owner = f"the {c.role} {'container' if kind == 'Container' else 'pod'}"
                    lines += _bounds(label, item, owner, c.requests, c.limits)
            elif kind == "PersistentVolumeClaim" and new_claim and need.storage is not None:
                size = {"storage": need.storage}
                lines += _bounds(label, item, "the workspace claim", size, size, "request")
    return lines


def check(session: Session) -> None:
    """Refuse, before anything is made, a session its namespace would refuse; a namespace
    whose rules cannot be read is left to the API server."""
    namespace = session.openshift.namespace or "default"
    backend = KubernetesBackend(context=session.openshift.context, namespace=namespace)
    try:
        rules = backend.namespace_rules(session=session.name)
    except ToolNotFoundError:
        rules = None  # apply itself needs no kubectl; the API server still decides
    if rules is None:
        log.info("namespace %s: quotas and limit ranges not readable; not checked", namespace)
        return
    need = needs(session)
    problems = quota_problems(need, rules.quotas, running(session.name, rules.workloads),
                              new_claim=not rules.claim_exists)
    problems += limit_range_problems(need, rules.limit_ranges, new_claim=not rules.claim_exists)
    if problems:
        raise refusal(session, namespace, problems)


def refusal(session: Session, namespace: str, problems: Sequence[str], *,
            partial: bool = False) -> NamespaceRefusedError:
    """The error for what the namespace refuses: what, by which object, and the fix;
    `partial`: some objects were made before the refusal."""
    storage = any("storage" in p or "claim" in p for p in problems)
    compute = any("memory" in p or "cpu" in p for p in problems)
    fixes = []
    if compute:
        agent = sizing.agent_limits(session.resources).describe()
        fixes.append(f"lower sessions.{session.name}.resources in paude.yaml (the agent "
                     f"takes {agent}; the proxy and the gateway {sizing.PROXY.describe()} "
                     "each)")
    if storage:
        fixes.append(f"lower sessions.{session.name}.openshift.pvc_size in paude.yaml")
    # Object counts (pods, services, policies) are fixed by the session's design.
    fixes.append("ask the namespace's administrator to raise the quota or limit range "
                 f"(`kubectl describe resourcequota,limitrange -n {namespace}`)")
    then = (f"; then `paude apply {session.name}` completes the session (what was made "
            "stays)") if partial else "; nothing was changed"
    return NamespaceRefusedError(
        f"namespace {namespace} refuses session {session.name}:\n"
        + "\n".join(f"    {p}" for p in problems),
        hint="; or ".join(fixes) + then)


# The API server's words for an admission refusal, as the engine passes them on.
_EXCEEDED = re.compile(r"(?P<what>[\w.]+ \"[^\"]+\") is forbidden: exceeded quota: "
                       r"(?P<quota>[^,\s]+), requested: (?P<requested>\S+), "
                       r"used: (?P<used>\S+), limited: (?P<limited>\S+)")
_UNKNOWN = re.compile(r"(?P<what>[\w.]+ \"[^\"]+\") is forbidden: status unknown for "
                      r"quota: (?P<quota>[^,\s]+)")
_RANGE = re.compile(r"(?P<what>[\w.]+ \"[^\"]+\") is forbidden: \[?(?P<why>(?:maximum|minimum)"
                    r"[^\]\n]*?(?:per|limit to request ratio)[^\]\n]*)")


def api_refusal(message: str, session: Session) -> PaudeError | None:
    """The engine's failure, when it is the API server refusing an object for a quota or a
    limit range; None for any other failure."""
    namespace = session.openshift.namespace or "default"
    found = _EXCEEDED.search(message)
    if found:
        used = found["used"].rstrip(",")
        return refusal(session, namespace, [
            f"ResourceQuota {found['quota']} refused {found['what']}: requested "
            f"{found['requested'].rstrip(',')}, used {used}, limited "
            f"{found['limited'].rstrip(',')}"], partial=True)
    found = _UNKNOWN.search(message)
    if found:
        return NamespaceRefusedError(
            f"namespace {namespace} refused {found['what']}: ResourceQuota {found['quota']} "
            "has no usage yet (the cluster's quota controller has not counted it)",
            hint="wait a few seconds and run the command again; if it persists, ask the "
                 "cluster's administrator whether the resource quota controller runs")
    found = _RANGE.search(message)
    if found:
        return refusal(session, namespace, [
            f"a LimitRange refused {found['what']}: {found['why'].strip()}"], partial=True)
    return None


def engine_hint(exc: EngineError, session: Session) -> PaudeError:
    """An OpenShift session planned where no cluster (or no provider) is reachable."""
    if session.backend != "openshift":
        return exc
    refused = api_refusal(exc.message, session)
    if refused is not None:
        return refused
    text = exc.message.lower()
    if "no resource plugin" in text or ("kubernetes" in text and "plugin" in text):
        return PaudeError(
            f"session {session.name}: the pulumi-kubernetes provider plugin is not installed",
            hint="build it with `scripts/build-engine.sh --kubernetes` (see docs/engine.md)")
    if "unreachable" in text or "kubeconfig" in text or "connection refused" in text:
        cause = next((ln.strip() for ln in exc.message.splitlines()
                      if "unreachable" in ln or "refused" in ln), exc.message)
        return PaudeError(
            f"session {session.name}: no OpenShift / Kubernetes cluster is reachable "
            f"(context {session.openshift.context or 'current'}):\n    {cause[:300]}",
            hint=f"log in (`oc login`) or pick a context, or review the manifests offline "
                 f"with `paude plan {session.name} --render DIR`")
    return exc
