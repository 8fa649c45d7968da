"""What the engine says, reduced to what a user needs: provider tracebacks, policy events,
lock holders, and the records a crash leaves in a stack's state. Plain text and JSON in,
plain values out; engine.py feeds it."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from paude.results import PolicyFinding

# The engine names each lock it finds: "URL: created by USER@HOST (pid N) at TIME".
LOCK_LINE = re.compile(r"(?P<url>\S+\.json): created by \S*?@(?P<host>\S+) \(pid (?P<pid>\d+)\)")
PACK_FAILURE = re.compile(r"paude policy pack could not start: (.+)")
# pulumi-kubernetes on a StatefulSet whose pod never became ready: the controller keeps
# that pod on the old revision until someone deletes it (kubernetes/kubernetes#67250).
STUCK_STATEFULSET = re.compile(r"failed to advance from revision[\s\S]*?\[Pod (?P<ns>[^/\]\s]+)/"
                               r"(?P<pod>[^\]\s]+)\]")
# The last exception line of a provider traceback: what a user needs, without frames.
_RAISED = re.compile(r"^\s*(?:paude\.errors\.\w+|RuntimeError|Exception): ", re.M)
ENGINE_NOISE = ("update failed", "Resource monitor has terminated",
                "failed to run remediation: context canceled")
# How the state marks a secret value (kept encrypted in an export).
SECRET_SIG = "4dabf18193072939515e22adb298388d"
_OP_WORDS = {"creating": "create", "updating": "update", "deleting": "delete",
             "reading": "read", "importing": "import"}


def brief(diagnostic: str) -> str:
    """Reduce a dynamic provider's traceback to its exception message."""
    found = list(_RAISED.finditer(diagnostic))
    if "Traceback (most recent call last)" not in diagnostic or not found:
        return diagnostic.strip()
    tail_text = diagnostic[found[-1].end():]
    lines = [ln for ln in tail_text.splitlines() if ln.strip() and not ln.strip().startswith(
        ENGINE_NOISE)]
    return "\n".join(ln.strip() if i == 0 else ln.rstrip() for i, ln in enumerate(lines))


def tail(stderr: str) -> str:
    """The last lines of the engine's stderr, where its error is."""
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    return "\n".join(lines[-12:])


def indent(text: str) -> str:
    """Indent every line by four spaces (detail under an error message)."""
    return "\n".join("    " + line for line in text.splitlines())


def finding(message: str, urn: str, rule: str, enforcement: str) -> PolicyFinding:
    """A policy event as paude reports it. The engine sends the rule's description, then
    the violation text, which paude's pack writes as detail lines and a `Fix:` line."""
    lines = [ln for ln in message.strip().splitlines() if ln.strip()]
    fix = next((ln.removeprefix("Fix: ") for ln in lines if ln.startswith("Fix: ")), "")
    detail = [ln for ln in lines[1:] if not ln.startswith("Fix: ")] or lines[:1]
    # A finding about the whole session comes with the stack's own URN.
    resource = "" if not urn or "::pulumi:pulumi:Stack::" in urn else urn.rsplit("::", 1)[-1]
    level = "mandatory" if enforcement == "mandatory" else "advisory"
    return PolicyFinding(rule=rule, level=level, resource=resource, message=" ".join(detail),
                         fix=fix)


def short_type(type_: str) -> str:
    """pulumi-python:dynamic/podman:Container -> podman:Container."""
    return type_.split("dynamic/", 1)[-1] if "dynamic/" in type_ else type_


def clean(inputs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Inputs without the engine's own (`__provider`, ...)."""
    return {k: v for k, v in (inputs or {}).items() if not k.startswith("__")}


def describe_pending(operations: list[dict[str, Any]]) -> str:
    """Pending operations of a state export, as "create agent, delete proxy"."""
    return ", ".join(sorted(
        f"{_OP_WORDS.get(str(op.get('type', '')), 'change')} "
        f"{str((op.get('resource') or {}).get('urn', '')).rsplit('::', 1)[-1]}"
        for op in operations))


def plain_outputs(deployment: Mapping[str, Any]) -> dict[str, Any] | None:
    """The stack outputs recorded in a state export; None when one is a secret (the export
    keeps those encrypted)."""
    root = next((r for r in deployment.get("resources") or []
                 if isinstance(r, dict) and r.get("type") == "pulumi:pulumi:Stack"), None)
    values = (root or {}).get("outputs") or {}
    if not isinstance(values, dict) or SECRET_SIG in json.dumps(values):
        return None
    return dict(values)


def adopt_pending_creates(deployment: Mapping[str, Any]) -> dict[str, Any]:
    """The deployment with the objects paude's dynamic resources were creating recorded as
    resources (their id is the name or tag they are created under), and no pending
    operations: a refresh then keeps those that exist and forgets the rest."""
    resources = [r for r in deployment.get("resources") or [] if isinstance(r, dict)]
    known = {r.get("urn") for r in resources}
    for op in deployment.get("pending_operations") or []:
        res = op.get("resource") if isinstance(op, dict) else None
        if op.get("type") != "creating" or not isinstance(res, dict) or res.get("urn") in known:
            continue
        inputs = res.get("inputs") or {}
        ident = inputs.get("name") or inputs.get("tag")
        if str(res.get("type", "")).startswith("pulumi-python:dynamic/") and isinstance(ident,
                                                                                      str):
            # Appended last: what it depends on is already in the state, and nothing that
            # depends on it could have been created before it.
            resources.append({**res, "id": ident, "outputs": dict(inputs)})
            known.add(res.get("urn"))
    return {**deployment, "resources": resources, "pending_operations": []}
