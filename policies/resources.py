"""A neutral view of the resources a policy sees, for both backends.

The pack receives resources from the engine (type token, inputs, options); rules read them
through this view so they are plain functions, testable without the engine."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

POD_OWNERS = ("kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:Deployment")


@dataclass(frozen=True)
class Resource:
    """One resource of a session's stack, as the engine registered it."""

    type: str  # the type token, e.g. pulumi-python:dynamic/podman:Container
    name: str  # the logical name: agent, proxy, workspace, ...
    props: Mapping[str, Any] = field(default_factory=dict)
    protected: bool = False
    urn: str = ""

    @property
    def kind(self) -> str:
        """The short type: podman:Container, kubernetes:apps/v1:StatefulSet, ..."""
        return self.type.split("dynamic/", 1)[-1]

    @property
    def role(self) -> str:
        """The paude role label (agent, proxy, workspace, ...), or '' when unlabelled."""
        if self.kind.startswith("podman:"):
            labels = self.props.get("labels") or {}
            return str(labels.get("paude.role", ""))
        labels = (self.props.get("metadata") or {}).get("labels") or {}
        return str(labels.get("paude.io/role", ""))

    def annotation(self, key: str) -> str | None:
        """A Kubernetes metadata annotation."""
        value = ((self.props.get("metadata") or {}).get("annotations") or {}).get(key)
        return None if value is None else str(value)


@dataclass(frozen=True)
class Violation:
    """One finding of one rule: which resource and what is wrong with it."""

    detail: str
    resource: Resource | None = None


def of_kind(resources: Sequence[Resource], kind: str) -> Iterator[Resource]:
    """The resources of one short type."""
    return (r for r in resources if r.kind == kind)


def pod_spec(resource: Resource) -> Mapping[str, Any]:
    """The pod template's spec of a StatefulSet or Deployment ({} for anything else)."""
    if resource.kind not in POD_OWNERS:
        return {}
    template = ((resource.props.get("spec") or {}).get("template")) or {}
    return template.get("spec") or {}


def pod_labels(resource: Resource) -> Mapping[str, str]:
    """The labels of a workload's pods."""
    template = ((resource.props.get("spec") or {}).get("template")) or {}
    return (template.get("metadata") or {}).get("labels") or {}


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a label selector (matchLabels and matchExpressions) selects `labels`."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if (op == "In" and labels.get(key) not in values) \
                or (op == "NotIn" and present and labels.get(key) in values) \
                or (op == "Exists" and not present) or (op == "DoesNotExist" and present):
            return False
    return True
