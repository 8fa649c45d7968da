"""Engine events turned into what paude reports: resource changes, progress, policy
findings, and whether a refresh found the live objects as the state records them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from paude import engine_text as text
from paude.results import PolicyFinding, ProgressEvent, ResourceChange

if TYPE_CHECKING:
    from pulumi import automation as auto

PROJECT = "paude"
OnProgress = Callable[[ProgressEvent], None]

# Step ops folded into the five a user reasons about.
_OP_MAP = {"create": "create", "update": "update", "delete": "delete", "same": "same",
           "replace": "replace", "create-replacement": "replace", "delete-replaced": "replace",
           "discard": "delete", "discard-replaced": "replace", "read": "same",
           "import": "create", "import-replacement": "replace"}
_PROGRESS_OPS = ("create", "update", "delete", "create-replacement")
_OP_RANK = {"replace": 4, "delete": 3, "create": 2, "update": 1, "same": 0}


class EventCollector:
    """Turns engine events into ResourceChanges and progress callbacks."""

    def __init__(self, on_progress: OnProgress | None) -> None:
        self.on_progress = on_progress
        self.changes: dict[str, ResourceChange] = {}
        self.errors: list[str] = []
        self.findings: list[PolicyFinding] = []
        self.started: dict[str, float] = {}
        self.lock = threading.Lock()
        # Refresh steps begun and found unchanged (the same outputs and inputs as recorded).
        self.refreshed: list[str] = []
        self.unchanged: list[str] = []

    def __call__(self, event: auto.EngineEvent) -> None:
        with self.lock:
            if event.diagnostic_event and event.diagnostic_event.severity == "error":
                self.errors.append(event.diagnostic_event.message.strip())
            if event.policy_event:
                self.findings.append(finding(event.policy_event))
            if event.resource_pre_event:
                self._step(event.resource_pre_event.metadata, "start")
            if event.res_outputs_event:
                self._step(event.res_outputs_event.metadata, "done")
            if event.res_op_failed_event:
                self._step(event.res_op_failed_event.metadata, "failed")

    def _step(self, meta: auto.StepEventMetadata, phase: str) -> None:
        if str(getattr(meta.op, "value", meta.op)) == "refresh":
            self._refresh(meta, phase)
            return
        if meta.type.startswith("pulumi:") or meta.urn.endswith("::" + PROJECT):
            return
        op = _OP_MAP.get(str(meta.op.value if hasattr(meta.op, "value") else meta.op))
        if op is None:
            return
        name = meta.urn.rsplit("::", 1)[-1]
        if phase == "start":
            self._record(name, meta, op)
            self.started[name] = time.monotonic()
        raw = str(meta.op.value if hasattr(meta.op, "value") else meta.op)
        # One progress line per resource: a replacement reports its create step only.
        if self.on_progress and raw in _PROGRESS_OPS:
            began = self.started.get(name)
            elapsed = None if phase == "start" or began is None else time.monotonic() - began
            if raw == "delete" and meta.old is not None and meta.old.retain_on_delete:
                op = "keep"  # leaves the stack, stays on the machine
            self.on_progress(ProgressEvent(name, op, phase, elapsed))

    def _record(self, name: str, meta: auto.StepEventMetadata, op: str) -> None:
        prior = self.changes.get(name)
        if prior is not None and _OP_RANK[prior.op] > _OP_RANK[op]:
            return
        state_old, state_new = meta.old, meta.new
        retained = bool(op in ("delete", "replace") and state_old is not None
                        and state_old.retain_on_delete)
        change = ResourceChange(
            name=name,
            type=text.short_type(meta.type),
            op=op,
            diff_keys=tuple(k for k in (meta.diffs or []) if not k.startswith("__")),
            replace_keys=tuple(k for k in (meta.keys or []) if not k.startswith("__")),
            retained=retained,
            old_inputs=text.clean(state_old.inputs if state_old else None),
            new_inputs=text.clean(state_new.inputs if state_new else None),
        )
        if prior is not None and prior.op == op:
            # A replacement arrives as several steps (replace, delete-replaced,
            # create-replacement), each carrying part of the picture: merge them.
            change = ResourceChange(
                name=name, type=change.type, op=op,
                diff_keys=change.diff_keys or prior.diff_keys,
                replace_keys=change.replace_keys or prior.replace_keys,
                retained=change.retained or prior.retained,
                old_inputs=change.old_inputs or prior.old_inputs,
                new_inputs=change.new_inputs or prior.new_inputs,
            )
        self.changes[name] = change

    def _refresh(self, meta: auto.StepEventMetadata, phase: str) -> None:
        if phase == "start":
            self.refreshed.append(meta.urn)
        elif phase == "done" and meta.old is not None and meta.new is not None and (
                meta.old.outputs == meta.new.outputs and meta.old.inputs == meta.new.inputs):
            self.unchanged.append(meta.urn)

    def in_sync(self) -> bool:
        """Every object the refresh read was as the state records it."""
        return bool(self.refreshed) and sorted(self.refreshed) == sorted(self.unchanged)

    def result(self) -> tuple[ResourceChange, ...]:
        return tuple(sorted(self.changes.values(), key=lambda c: c.name))


def finding(event: auto.PolicyEvent) -> PolicyFinding:
    """A policy event as a finding."""
    return text.finding(event.message, event.resource_urn or "", event.policy_name,
                        str(event.enforcement_level))
