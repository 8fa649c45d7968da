"""Hand-made changes to a cluster session's workloads that server-side apply cannot take back.

Every object paude makes carries `pulumi.com/patchForce`, so a field paude states and
someone changed by hand (`kubectl patch`, `kubectl edit`) is reclaimed by the next apply.
Server-side apply owns only what paude sends, though: a field paude leaves unstated stays
as the editor set it, and some `false` values cannot be stated at all (the API drops
`hostNetwork: false` before it records who set it). So plan and apply read the live
workloads themselves, and a workload opened up by hand (the node's namespaces, privileged
or escalating containers, added capabilities, host paths, containers paude never made) is
drift: the plan says so, marked security-relevant, and apply replaces the workload as
declared. The workspace is its own claim and stays.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from paude.backends.kubernetes import KubernetesBackend
from paude.errors import ToolNotFoundError
from paude.models import Session
from paude.naming import ClusterNames
from paude.results import PolicyFinding, SummaryItem

_TYPES = {"StatefulSet": "kubernetes:apps/v1:StatefulSet",
          "Deployment": "kubernetes:apps/v1:Deployment"}
_NODE_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")
_DETAILS = 6


@dataclass(frozen=True)
class Drift:
    """One workload changed by hand, and how."""

    resource: str  # the stack program's logical name: agent, proxy, gateway
    kind: str
    lines: tuple[str, ...]

    def urn(self, stack: str, project: str) -> str:
        return f"urn:pulumi:{stack}::{project}::{_TYPES[self.kind]}::{self.resource}"

    def summary(self) -> SummaryItem:
        return SummaryItem("drift", f"{self.resource} changed outside paude "
                           f"({self.lines[0]}); apply replaces it as declared (the "
                           "workspace claim stays)", security=True,
                           details=self.lines[:_DETAILS])


def pod_drift(pod: Mapping[str, Any], containers: set[str]) -> list[str]:
    """What in a live pod template opens the sandbox beyond what paude declares."""
    spec = pod.get("spec") or {}
    lines = [f"{key} turned on" for key in _NODE_NAMESPACES if spec.get(key)]
    if spec.get("automountServiceAccountToken") is not False:
        lines.append("the service account token is mounted")
    if (spec.get("securityContext") or {}).get("runAsNonRoot") is not True:
        lines.append("the pod may run as root (runAsNonRoot not set)")
    lines += [f"host path {(v.get('hostPath') or {}).get('path', '?')} mounted as volume "
              f"{v.get('name', '?')}" for v in spec.get("volumes") or [] if "hostPath" in v]
    for field, container in _containers(spec):
        lines += _container_drift(field, container, containers)
    return lines


def _containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(field) or []:
            yield field, container


def _container_drift(field: str, container: Mapping[str, Any], expected: set[str]
                     ) -> list[str]:
    name = container.get("name", "?")
    if field != "containers" or name not in expected:
        return [f"{field[:-1]} {name} added"]
    security = container.get("securityContext") or {}
    lines = []
    if security.get("privileged"):
        lines.append(f"container {name} is privileged")
    if security.get("allowPrivilegeEscalation") is not False:
        lines.append(f"container {name} allows privilege escalation")
    added = (security.get("capabilities") or {}).get("add") or []
    if added:
        lines.append(f"container {name} adds capabilities {', '.join(map(str, added))}")
    if security.get("runAsUser") == 0:
        lines.append(f"container {name} runs as root")
    return lines


def workload_drift(items: Sequence[Mapping[str, Any]], session: str) -> tuple[Drift, ...]:
    """Drift of each of the session's workloads among the objects the API server returned."""
    names = ClusterNames(session)
    # (kind, name) -> (the stack program's logical name, the containers paude puts there)
    wanted = {("StatefulSet", names.agent): ("agent", {"agent"}),
              ("Deployment", names.proxy): ("proxy", {"squid"}),
              ("Deployment", names.gateway): ("gateway", {"gateway"})}
    found = []
    for item in items:
        kind = str(item.get("kind"))
        key = (kind, (item.get("metadata") or {}).get("name"))
        if key not in wanted:
            continue
        resource, containers = wanted[key]
        template = (item.get("spec") or {}).get("template") or {}
        lines = pod_drift(template, containers)
        if lines:
            found.append(Drift(resource, kind, tuple(lines)))
    return tuple(sorted(found, key=lambda d: d.resource))


def find(session: Session) -> tuple[Drift, ...]:
    """The session's workloads changed by hand; nothing when the cluster cannot be read
    with kubectl or oc (the engine's refresh still takes back what paude states)."""
    if session.backend != "openshift":
        return ()
    backend = KubernetesBackend(context=session.openshift.context,
                                namespace=session.openshift.namespace or "default")
    try:
        items = backend.session_objects(session=session.name)
    except ToolNotFoundError:
        return ()
    return workload_drift(items or [], session.name)


def excuse(findings: Sequence[PolicyFinding], drift: Sequence[Drift]
           ) -> tuple[PolicyFinding, ...]:
    """Findings with those on drifted workloads made advisory.

    The policy pack sees a workload's planned state, and for a workload that exists the
    engine plans it as a server-side apply onto the live object: what was opened by hand
    shows there though apply replaces the object with the declared one. paude declares
    none of it on its own objects (their security fields are fixed, not taken from
    paude.yaml), so such a finding is the drift, reported in the plan's summary."""
    drifted = {d.resource for d in drift}
    return tuple(dataclasses.replace(f, level="advisory",
                                     message=f"{f.message} (live, changed outside paude; "
                                             "apply replaces it)")
                 if f.blocking and f.resource in drifted else f for f in findings)
