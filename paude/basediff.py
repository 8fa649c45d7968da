"""Resource steps between two declarations of one session (the base side and the working
tree's), decided as the engine would: podman objects by their providers' own diff
functions, Kubernetes objects by the fields the API server cannot change in place."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pulumi.dynamic import ResourceProvider

from paude.engine_text import SECRET_SIG as _SECRET_SIG  # Pulumi's marker of a secret value
from paude.engine_text import short_type
from paude.mockrun import Declared
from paude.results import ResourceChange


def _providers() -> dict[str, ResourceProvider]:
    # The same diff functions the engine calls on `paude plan NAME`.
    from paude.stacks.openshift.images import ClusterBuildProvider, PushedImageProvider
    from paude.stacks.podman.resources import (
        ContainerProvider,
        ImageProvider,
        NetworkProvider,
        VolumeProvider,
    )

    return {"podman:Image": ImageProvider(), "podman:Network": NetworkProvider(),
            "podman:Volume": VolumeProvider(), "podman:Container": ContainerProvider(),
            "cluster:ClusterBuild": ClusterBuildProvider(),
            "cluster:PushedImage": PushedImageProvider()}


# Kubernetes fields the API server refuses to change: a new value means a new object.
_IMMUTABLE = {
    "*": (("metadata", "name"), ("metadata", "namespace")),
    "kubernetes:core/v1:PersistentVolumeClaim": (
        ("spec", "storageClassName"), ("spec", "accessModes"), ("spec", "volumeName")),
    "kubernetes:apps/v1:StatefulSet": (
        ("spec", "selector"), ("spec", "serviceName"), ("spec", "volumeClaimTemplates")),
    "kubernetes:apps/v1:Deployment": (("spec", "selector"),),
}


def plain(value: Any) -> Any:
    """Inputs as plain data: a secret becomes a digest of its value (a changed secret still
    shows as a change; its value never reaches a plan)."""
    if isinstance(value, Mapping):
        if _SECRET_SIG in value:
            text = json.dumps(value.get("value"), sort_keys=True, default=str)
            return f"<secret sha256:{hashlib.sha256(text.encode()).hexdigest()[:12]}>"
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _get(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = data
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _drop(data: dict[str, Any], dotted: str) -> dict[str, Any]:
    """`data` without the field at a dotted path (ignore_changes: not drift, not a change)."""
    head, _, rest = dotted.partition(".")
    if head not in data:
        return data
    out = dict(data)
    if rest and isinstance(out[head], dict):
        out[head] = _drop(out[head], rest)
    elif not rest:
        del out[head]
    return out


def _kubernetes(old: Declared, new: Declared, olds: dict[str, Any], news: dict[str, Any]
                ) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    for path in new.ignore_changes:
        olds, news = _drop(olds, path), _drop(news, path)
    changed = tuple(sorted(k for k in set(olds) | set(news) if olds.get(k) != news.get(k)))
    if not changed:
        return "same", (), ()
    paths = (*_IMMUTABLE["*"], *_IMMUTABLE.get(new.type, ()))
    replace = [".".join(p) for p in paths if _get(olds, p) != _get(news, p)]
    if new.type == "kubernetes:core/v1:PersistentVolumeClaim":
        size = ("spec", "resources", "requests", "storage")
        if _shrinks(_get(olds, size), _get(news, size)):  # claims only grow
            replace.append(".".join(size))
    return ("replace" if replace else "update"), changed, tuple(replace)


_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6,
          "G": 10**9, "T": 10**12}


def _bytes(quantity: Any) -> float | None:
    text = str(quantity or "")
    for unit, factor in sorted(_UNITS.items(), key=lambda u: -len(u[0])):
        if text.endswith(unit):
            try:
                return float(text[:-len(unit)]) * factor
            except ValueError:
                return None
    try:
        return float(text)
    except ValueError:
        return None


def _shrinks(old: Any, new: Any) -> bool:
    a, b = _bytes(old), _bytes(new)
    return a is not None and b is not None and b < a


def change(name: str, old: Declared | None, new: Declared | None) -> ResourceChange:
    """The step that takes one resource from its base declaration to the working tree's."""
    if old is None and new is not None:
        return ResourceChange(name, short_type(new.type), "create",
                              new_inputs=plain(new.inputs))
    if new is None and old is not None:
        return ResourceChange(name, short_type(old.type), "delete",
                              retained=old.retain_on_delete, old_inputs=plain(old.inputs))
    assert old is not None and new is not None
    olds, news = plain(old.inputs), plain(new.inputs)
    kind = short_type(new.type)
    if old.type != new.type:  # another backend: a different object altogether
        return ResourceChange(name, kind, "replace", ("type",), ("type",),
                              retained=old.retain_on_delete, old_inputs=olds, new_inputs=news)
    provider = _providers().get(kind)
    changed: tuple[str, ...]
    replace: tuple[str, ...]
    if provider is not None:
        result = provider.diff("", olds, news)
        changed = tuple(sorted(k for k in set(olds) | set(news) if olds.get(k) != news.get(k)))
        if not result.changes:
            op, changed, replace = "same", (), ()
        else:
            replace = tuple(result.replaces or ())
            op = "replace" if replace else "update"
    else:
        op, changed, replace = _kubernetes(old, new, olds, news)
    return ResourceChange(name, kind, op, changed, replace,
                          retained=op == "replace" and old.retain_on_delete,
                          old_inputs=olds, new_inputs=news)


def changes(old: Mapping[str, Declared], new: Mapping[str, Declared]
            ) -> tuple[ResourceChange, ...]:
    """Every resource of either side, with its step."""
    return tuple(change(n, old.get(n), new.get(n)) for n in sorted(set(old) | set(new)))
