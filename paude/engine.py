"""The only module that drives the Pulumi Automation API: stacks, state, secrets, events."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi import automation as auto
from semver import VersionInfo

from paude.errors import (
    EngineError,
    PaudeError,
    PolicyViolationError,
    SessionBusyError,
    SessionNotFoundError,
)
from paude.home import default_backend_url, passphrase
from paude.results import PolicyFinding, ProgressEvent, ResourceChange
from paude.toolchain import Engine, engine_env, ensure_engine

PROJECT = "paude"
Program = Callable[[], None]
OnProgress = Callable[[ProgressEvent], None]

# Step ops folded into the five a user reasons about.
_OP_MAP = {"create": "create", "update": "update", "delete": "delete", "same": "same",
           "replace": "replace", "create-replacement": "replace", "delete-replaced": "replace",
           "discard": "delete", "discard-replaced": "replace", "read": "same",
           "import": "create", "import-replacement": "replace"}
_PROGRESS_OPS = ("create", "update", "delete", "create-replacement")
_OP_RANK = {"replace": 4, "delete": 3, "create": 2, "update": 1, "same": 0}


@dataclass(frozen=True)
class EngineContext:
    """Where stacks live and how the engine is run."""

    home: Path
    backend_url: str
    engine: Engine
    passphrase: str = field(repr=False)

    @property
    def work_dir(self) -> Path:
        """Holds Pulumi.yaml and per-stack settings; never inside the installed package."""
        return self.home / "project"


def connect(home: Path, backend_url: str | None = None, *,
            on_install: Callable[[int, int | None], None] | None = None) -> EngineContext:
    """Locate (or install) the engine and describe the state backend."""
    engine = ensure_engine(home, progress=on_install)
    return EngineContext(home, backend_url or default_backend_url(home), engine, passphrase(home))


def _options(ctx: EngineContext) -> auto.LocalWorkspaceOptions:
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    env = {**engine_env(ctx.engine), "PULUMI_CONFIG_PASSPHRASE": ctx.passphrase}
    return auto.LocalWorkspaceOptions(
        work_dir=str(ctx.work_dir),
        pulumi_home=str(ctx.home / "pulumi"),
        pulumi_command=_command(ctx.engine),
        env_vars=env,
        secrets_provider="passphrase",
        project_settings=auto.ProjectSettings(
            name=PROJECT, runtime="python", backend=auto.ProjectBackend(url=ctx.backend_url)),
    )


def _command(engine: Engine) -> auto.PulumiCommand:
    # PulumiCommand wants ROOT/bin/pulumi, but a CLI found on PATH may sit anywhere; point
    # it at the binary paude already found and version-checked.
    command = auto.PulumiCommand.__new__(auto.PulumiCommand)
    command.command = str(engine.bin_dir / "pulumi")
    command.version = VersionInfo.parse(engine.version.lstrip("v"))
    return command


def _noop() -> None:
    """Placeholder program for operations that never run one (destroy, outputs)."""


@dataclass(frozen=True)
class StackHandle:
    """One session's stack, selected once and reused for every step of a command."""

    name: str
    stack: auto.Stack
    new: bool  # created by this command: nothing was ever applied


def open_stack(ctx: EngineContext, name: str, program: Program | None = None, *,
               create: bool = True) -> StackHandle | None:
    """Select the session's stack; create it when missing if `create`, else return None."""
    opts = _options(ctx)
    try:
        stack = auto.select_stack(stack_name=name, project_name=PROJECT,
                                  program=program or _noop, opts=opts)
        return StackHandle(name, stack, False)
    except auto.StackNotFoundError:
        if not create:
            return None
    except auto.CommandError as exc:
        raise _engine_error(exc, name) from exc
    try:
        stack = auto.create_stack(stack_name=name, project_name=PROJECT,
                                  program=program or _noop, opts=opts)
    except auto.CommandError as exc:
        raise _engine_error(exc, name) from exc
    return StackHandle(name, stack, True)


def outputs(handle: StackHandle) -> dict[str, Any]:
    """The stack's outputs (empty for a stack nothing was applied to)."""
    if handle.new:
        return {}
    try:
        return {k: v.value for k, v in handle.stack.outputs().items()}
    except auto.CommandError as exc:
        raise _engine_error(exc, handle.name) from exc


class _EventCollector:
    """Turns engine events into ResourceChanges and progress callbacks."""

    def __init__(self, on_progress: OnProgress | None) -> None:
        self.on_progress = on_progress
        self.changes: dict[str, ResourceChange] = {}
        self.errors: list[str] = []
        self.findings: list[PolicyFinding] = []
        self.started: dict[str, float] = {}
        self.lock = threading.Lock()

    def __call__(self, event: auto.EngineEvent) -> None:
        with self.lock:
            if event.diagnostic_event and event.diagnostic_event.severity == "error":
                self.errors.append(event.diagnostic_event.message.strip())
            if event.policy_event:
                self.findings.append(_finding(event.policy_event))
            if event.resource_pre_event:
                self._step(event.resource_pre_event.metadata, "start")
            if event.res_outputs_event:
                self._step(event.res_outputs_event.metadata, "done")
            if event.res_op_failed_event:
                self._step(event.res_op_failed_event.metadata, "failed")

    def _step(self, meta: auto.StepEventMetadata, phase: str) -> None:
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
            type=_short_type(meta.type),
            op=op,
            diff_keys=tuple(k for k in (meta.diffs or []) if not k.startswith("__")),
            replace_keys=tuple(k for k in (meta.keys or []) if not k.startswith("__")),
            retained=retained,
            old_inputs=_clean(state_old.inputs if state_old else None),
            new_inputs=_clean(state_new.inputs if state_new else None),
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

    def result(self) -> tuple[ResourceChange, ...]:
        return tuple(sorted(self.changes.values(), key=lambda c: c.name))


def _finding(event: auto.PolicyEvent) -> PolicyFinding:
    """A policy event as paude reports it. The engine sends the rule's description, then
    the violation text, which paude's pack writes as detail lines and a `Fix:` line."""
    lines = [ln for ln in event.message.strip().splitlines() if ln.strip()]
    fix = next((ln.removeprefix("Fix: ") for ln in lines if ln.startswith("Fix: ")), "")
    detail = [ln for ln in lines[1:] if not ln.startswith("Fix: ")] or lines[:1]
    urn = event.resource_urn or ""
    # A finding about the whole session comes with the stack's own URN.
    resource = "" if not urn or "::pulumi:pulumi:Stack::" in urn else urn.rsplit("::", 1)[-1]
    level = "mandatory" if event.enforcement_level == "mandatory" else "advisory"
    return PolicyFinding(rule=event.policy_name, level=level, resource=resource,
                         message=" ".join(detail), fix=fix)


def _short_type(type_: str) -> str:
    # pulumi-python:dynamic/podman:Container -> podman:Container
    return type_.split("dynamic/", 1)[-1] if "dynamic/" in type_ else type_


def _clean(inputs: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (inputs or {}).items() if not k.startswith("__")}


Findings = tuple[PolicyFinding, ...]


def preview(handle: StackHandle, *, on_progress: OnProgress | None = None,
            policy_packs: tuple[Path, ...] = (), keep_new: bool = False
            ) -> tuple[tuple[ResourceChange, ...], Findings]:
    """Plan a session against refreshed state, running the policy packs on it.

    A stack created only to plan a new session is removed again, so planning never
    leaves anything behind; `keep_new` leaves it for an apply that follows (which must
    call `discard` if it does not go ahead). A mandatory policy violation raises
    PolicyViolationError."""
    collector = _EventCollector(on_progress)
    ok = False
    try:
        handle.stack.preview(refresh=not handle.new, on_event=collector, color="never",
                             suppress_progress=True, diff=False,
                             policy_packs=[str(p) for p in policy_packs] or None)
        ok = True
    except auto.CommandError as exc:
        raise _failure(exc, handle.name, collector) from exc
    finally:
        if handle.new and not (keep_new and ok):
            discard(handle)
    return collector.result(), tuple(collector.findings)


def discard(handle: StackHandle) -> None:
    """Remove a stack this command created and never applied."""
    if handle.new:
        handle.stack.workspace.remove_stack(handle.name)


def up(handle: StackHandle, *, on_progress: OnProgress | None = None,
       policy_packs: tuple[Path, ...] = ()
       ) -> tuple[tuple[ResourceChange, ...], dict[str, Any], Findings]:
    """Apply a session (refreshing first so hand-made drift is repaired)."""
    collector = _EventCollector(on_progress)
    try:
        result = handle.stack.up(refresh=not handle.new, on_event=collector, color="never",
                                 suppress_progress=True,
                                 policy_packs=[str(p) for p in policy_packs] or None)
    except auto.CommandError as exc:
        raise _failure(exc, handle.name, collector) from exc
    outputs = {k: v.value for k, v in result.outputs.items()}
    return collector.result(), outputs, tuple(collector.findings)


def _failure(exc: auto.CommandError, name: str, collector: _EventCollector) -> PaudeError:
    if any(f.blocking for f in collector.findings):
        return PolicyViolationError(name, collector.findings, partial=collector.result())
    return _engine_error(exc, name, collector.errors)


def destroy(handle: StackHandle, *, on_progress: OnProgress | None = None
            ) -> tuple[tuple[ResourceChange, ...], tuple[str, ...]]:
    """Delete every resource of the stack except protected ones (the workspace), then the
    stack itself; returns the steps and the names of the protected resources left in place."""
    collector = _EventCollector(on_progress)
    try:
        handle.stack.destroy(on_event=collector, color="never", suppress_progress=True,
                             exclude_protected=True)
        kept = _protected(handle)
        # The stack still lists what it protects; those objects stay where they are and a
        # later apply adopts them by name.
        handle.stack.workspace.remove_stack(handle.name, force=bool(kept))
    except auto.CommandError as exc:
        raise _engine_error(exc, handle.name, collector.errors) from exc
    return collector.result(), kept


def _protected(handle: StackHandle) -> tuple[str, ...]:
    resources = (handle.stack.export_stack().deployment or {}).get("resources") or []
    return tuple(sorted(str(r.get("urn", "")).rsplit("::", 1)[-1]
                        for r in resources if r.get("protect")))


def _engine_error(exc: auto.CommandError, name: str,
                  diagnostics: list[str] | None = None) -> PaudeError:
    """Map an Automation API failure to the paude error a user can act on."""
    if isinstance(exc, auto.ConcurrentUpdateError):
        return SessionBusyError(
            f"session {name} is being changed by another paude or pulumi process",
            hint=f"wait for it to finish and retry; if no such process exists, run "
                 f"`pulumi cancel` on stack {name} or remove the stale lock under the "
                 "state backend")
    if isinstance(exc, auto.StackNotFoundError):
        return SessionNotFoundError(f"session {name} has no stack",
                                    hint=f"run `paude apply {name}` first")
    # Several resources failing for one cause report it once each: say it once.
    briefs = dict.fromkeys(_brief(d) for d in (diagnostics or []) if d)
    text = "\n".join(b for b in briefs if not b.startswith(_ENGINE_NOISE)) or _stderr_tail(exc)
    pack = _PACK_FAILURE.search(f"{text}\n{getattr(exc, 'stderr', '')}")
    if pack:
        return PaudeError(f"session {name}: the policy pack could not start: {pack.group(1)}",
                          hint="fix the custom rule or the organisation's policy file that "
                               "names it ($PAUDE_HOME/policy.yaml, default ~/.paude/policy.yaml), "
                               "then run the command again")
    return EngineError(f"the Pulumi engine failed for session {name}:\n{_indent(text)}",
                       hint="fix the cause above and run the command again; "
                            "PAUDE_DEBUG=1 shows the full engine output")


_PACK_FAILURE = re.compile(r"paude policy pack could not start: (.+)")
# The last exception line of a provider traceback: what a user needs, without frames.
_RAISED = re.compile(r"^\s*(?:paude\.errors\.\w+|RuntimeError|Exception): ", re.M)
_ENGINE_NOISE = ("update failed", "Resource monitor has terminated",
                 "failed to run remediation: context canceled")


def _brief(diagnostic: str) -> str:
    """Reduce a dynamic provider's traceback to its exception message."""
    found = list(_RAISED.finditer(diagnostic))
    if "Traceback (most recent call last)" not in diagnostic or not found:
        return diagnostic.strip()
    tail = diagnostic[found[-1].end():]
    lines = [ln for ln in tail.splitlines() if ln.strip() and not ln.strip().startswith(
        _ENGINE_NOISE)]
    return "\n".join(ln.strip() if i == 0 else ln.rstrip() for i, ln in enumerate(lines))


def _stderr_tail(exc: auto.CommandError) -> str:
    stderr = getattr(exc, "stderr", None) or str(exc)
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    return "\n".join(lines[-12:])


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
