"""The module that drives the Pulumi Automation API: stacks, state, secrets, events (with
its helpers engine_workspace, engine_early, engine_events, engine_errors and engine_text)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pulumi import automation as auto

from paude import engine_errors, forkserver, locks, statefile
from paude import engine_text as text
from paude.engine_events import EventCollector, finding
from paude.engine_workspace import PROJECT as PROJECT
from paude.engine_workspace import EngineContext as EngineContext
from paude.engine_workspace import Notice as Notice
from paude.engine_workspace import OnProgress as OnProgress
from paude.engine_workspace import Program as Program
from paude.engine_workspace import Purpose as Purpose
from paude.engine_workspace import (
    _Named,
    _options,
    _workspace,
    _write_project,
    quiet_abandoned_programs,
)
from paude.engine_workspace import connect as connect
from paude.engine_workspace import locate as locate
from paude.errors import (
    PaudeError,
    PolicyViolationError,
)
from paude.results import PolicyFinding, ResourceChange

if TYPE_CHECKING:
    from paude.engine_early import Early


@dataclass(frozen=True)
class StackHandle:
    """One session's stack, selected once and reused for every step of a command."""

    name: str
    stack: auto.Stack
    new: bool  # created by this command: nothing was ever applied
    # The deployment read when the stack was opened, until outputs() uses it.
    exported: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # [True] after a preview whose refresh found every object as the state records it: the
    # update that follows need not read them all again.
    in_sync: list[bool] = field(default_factory=list, repr=False, compare=False)
    # URNs to replace whatever their diff says: workloads changed by hand in ways a
    # refresh cannot see (paude/cluster_drift.py).
    replace: list[str] = field(default_factory=list, repr=False, compare=False)
    # A new session's stack: `pulumi stack init` running meanwhile (None: not made, a plan
    # makes none), and the empty stack its preview runs on instead (see _spare).
    making: Future[None] | None = field(default=None, repr=False, compare=False)
    spare: Callable[[], auto.Stack] | None = field(default=None, repr=False, compare=False)
    # An update started early and held at its gate (paude/engine_early.py).
    early: list[Early] = field(default_factory=list, repr=False, compare=False)


def open_stack(ctx: EngineContext, name: str, program: Program | None = None, *,
               create: bool = True, purpose: Purpose = "apply") -> StackHandle | None:
    """Select the session's stack; create it when missing if `create`, else return None.

    Holds the session's lock for the rest of the process (shared by plans, alone for
    changes), clears backend locks a killed engine left, and resolves the operations a
    crash interrupted, as suits the `purpose` (see recover)."""
    exclusive = purpose != "plan"
    # Before the first lock and the first thread: the server is a fork of this process.
    forkserver.start()
    quiet_abandoned_programs()
    locks.hold_session(ctx.home, name, exclusive=exclusive, on_notice=ctx.on_notice)
    locks.clear_stale_state_locks(ctx.backend_url, PROJECT, name, on_notice=ctx.on_notice)
    locks.repair_state_files(ctx.backend_url, PROJECT, name, on_notice=ctx.on_notice)
    opts = _options(ctx)
    handle = _select(ctx, name, program, opts)
    if handle is None:
        if not create:
            return None
        stack = _Named(name, _workspace(program, opts), ctx.backend_url)

        def spare() -> auto.Stack:
            return _spare(ctx, program)

        if purpose == "plan":  # the preview runs on the spare stack; nothing is made
            return StackHandle(name, stack, True, spare=spare)
        # `pulumi stack init` (an engine start and a key derivation) runs beside the
        # preview, which needs no stack of the session's own: nothing is applied to it.
        making: Future[None] = Future()
        threading.Thread(target=_make, args=(stack, making), name=f"paude-init-{name}",
                         daemon=True).start()
        return StackHandle(name, stack, True, making=making, spare=spare)
    recover(ctx, handle, purpose)
    return handle


def _make(stack: auto.Stack, done: Future[None]) -> None:
    try:
        stack.workspace.create_stack(stack.name)
    except BaseException as exc:  # reported where the stack is needed (made())
        done.set_exception(exc)
    else:
        done.set_result(None)


def made(handle: StackHandle) -> None:
    """Wait until a new session's stack exists (an engine error if it could not be made)."""
    if handle.making is None:
        return
    try:
        handle.making.result()
    except auto.CommandError as exc:
        raise _engine_error(exc, handle.name) from exc


SPARE = "new-session-preview"


def _spare(ctx: EngineContext, program: Program | None) -> auto.Stack:
    """The stack a new session's preview runs on: empty, kept in a backend of its own
    under PAUDE_HOME and made once, shared by every new session (a preview writes nothing
    and takes no lock). A preview of a new session compares the definition with nothing;
    which empty stack it runs on changes nothing but the stack's name in the engine's
    URNs, which paude does not use. State found in it (it never gets any) is not trusted:
    the stack is made again."""
    folder = ctx.home / "spare"
    url = f"file://{folder / 'state'}"
    # The engine, its plugins and PULUMI_HOME are the session's; only the state and the
    # project folder (which holds the stack's settings) are the spare's own.
    spare_ctx = EngineContext(folder, url, ctx.engine, ctx.passphrase)
    (folder / "state").mkdir(parents=True, exist_ok=True)
    _write_project(spare_ctx)
    opts = _options(ctx)
    opts.work_dir = str(spare_ctx.work_dir)
    opts.env_vars = {**(opts.env_vars or {}), "PULUMI_BACKEND_URL": url}
    stack = _Named(SPARE, _workspace(program, opts), url)
    with locks.serialized(ctx.home, "spare-stack"):
        made_before = (folder / "state" / ".pulumi" / "stacks" / PROJECT / f"{SPARE}.json")
        try:
            if made_before.exists():
                deployment = statefile.read(url, PROJECT, SPARE)
                if deployment is None or deployment is statefile.MISSING or (
                        deployment.get("resources") or deployment.get("pending_operations")):
                    stack.workspace.remove_stack(SPARE, force=True)
            if not made_before.exists():
                stack.workspace.create_stack(SPARE)
        except auto.CommandError as exc:
            raise _engine_error(exc, SPARE) from exc
    return stack


def _select(ctx: EngineContext, name: str, program: Program | None,
            opts: auto.LocalWorkspaceOptions) -> StackHandle | None:
    """The stack and its deployment if it exists: read from a file backend's state file,
    else exported by the engine (which also says when it is missing)."""
    stack = _Named(name, _workspace(program, opts), ctx.backend_url)
    deployment = statefile.read(ctx.backend_url, PROJECT, name)
    if deployment is statefile.MISSING:
        return None
    if deployment is None:
        try:
            deployment = dict(stack.export_stack().deployment or {})
        except auto.StackNotFoundError:
            return None
        except auto.CommandError as exc:
            raise _engine_error(exc, name) from exc
    return StackHandle(name, stack, False, deployment)


def recover(ctx: EngineContext, handle: StackHandle, purpose: Purpose = "apply") -> int:
    """Resolve the operations a killed engine left pending; returns how many there were.

    A create, update or delete under way when the engine died stays in the state as a
    pending operation, and its object may or may not exist. For an apply the records are
    dropped: paude's resources find their objects by name (networks and the volume are
    adopted, a leftover container, perhaps half made, is replaced, an image tag is reused).
    For a destroy, objects that were being created are taken into the state first, so the
    destroy removes them too. Either way the engine's own refresh then clears the records
    and forgets what does not exist. A plan changes nothing and only reports them."""
    deployment = dict(handle.exported)  # as read when the stack was opened
    pending = [op for op in deployment.get("pending_operations") or [] if isinstance(op, dict)]
    if not pending:
        return 0
    what = text.describe_pending(pending)
    if purpose == "plan":
        ctx.notice(f"session {handle.name}: a killed paude left {what} unfinished; the next "
                   f"`paude apply {handle.name}` or `paude destroy {handle.name}` resolves it")
        return len(pending)
    try:
        if purpose == "destroy":
            # The engine's own export: the import must get back what it gave.
            exported = handle.stack.export_stack()
            handle.stack.import_stack(auto.Deployment(
                version=exported.version,
                deployment=text.adopt_pending_creates(dict(exported.deployment or {}))))
        handle.stack.refresh(clear_pending_creates=True, color="never", suppress_progress=True)
    except auto.CommandError as exc:
        raise _engine_error(exc, handle.name) from exc
    handle.exported.clear()
    ctx.notice(f"session {handle.name}: resolved what a killed paude left unfinished ({what})")
    return len(pending)


def outputs(handle: StackHandle) -> dict[str, Any]:
    """The stack's outputs (empty for a stack nothing was applied to)."""
    if handle.new:
        return {}
    deployment = dict(handle.exported)
    handle.exported.clear()
    values = text.plain_outputs(deployment) if deployment else None
    if values is not None:
        return values
    try:
        # Not read on open, or holding secrets (which the export keeps encrypted).
        return {k: v.value for k, v in handle.stack.outputs().items()}
    except auto.CommandError as exc:
        raise _engine_error(exc, handle.name) from exc


# The collector lives in paude/engine_events.py; these names are engine's own API.
_EventCollector = EventCollector
_finding = finding


Findings = tuple[PolicyFinding, ...]


def preview(handle: StackHandle, *, on_progress: OnProgress | None = None,
            policy_packs: tuple[Path, ...] = (), keep_new: bool = False,
            observed: Future[bool] | None = None
            ) -> tuple[tuple[ResourceChange, ...], Findings]:
    """Plan a session against refreshed state, running the policy packs on it.

    `observed`, when given, is paude's own refresh (stacks/podman/prerefresh.py) running
    meanwhile: the preview then starts without the engine's refresh, and stands if that
    found every object as recorded; otherwise it runs again with the engine's refresh.

    A stack created only to plan a new session is removed again, so planning never
    leaves anything behind; `keep_new` leaves it for an apply that follows (which must
    call `discard` if it does not go ahead). A mandatory policy violation raises
    PolicyViolationError."""
    packs = [str(p) for p in policy_packs] or None
    if observed is not None and not handle.new:
        collector = _EventCollector(on_progress)
        failure: PaudeError | None = None
        try:
            handle.stack.preview(refresh=False, on_event=collector, color="never",
                                 suppress_progress=True, diff=False,
                                 replace=handle.replace or None, policy_packs=packs)
        except auto.CommandError as exc:
            failure = _failure(exc, handle.name, collector)
        if _observed_unchanged(observed):
            handle.in_sync[:] = [True]
            if failure is not None:
                raise failure
            return collector.result(), tuple(collector.findings)
    collector = _EventCollector(on_progress)
    ok = False
    try:
        target = handle.spare() if handle.new and handle.spare else handle.stack
        target.preview(refresh=not handle.new, on_event=collector, color="never",
                       suppress_progress=True, diff=False,
                       replace=handle.replace or None, policy_packs=packs)
        ok = True
        handle.in_sync[:] = [collector.in_sync()]
    except auto.CommandError as exc:
        raise _failure(exc, handle.name, collector) from exc
    finally:
        if handle.new and not (keep_new and ok):
            discard(handle)
    return collector.result(), tuple(collector.findings)


def _observed_unchanged(observed: Future[bool]) -> bool:
    """paude's own refresh found every object as recorded (a failure of it: not known)."""
    try:
        return observed.result() is True
    except Exception:  # the engine's refresh then decides, and reports what went wrong
        return False


def discard(handle: StackHandle) -> None:
    """Remove a stack this command created and never applied."""
    for early in handle.early:
        early.stop()  # before the stack goes: the update holds it
    if not handle.new or (handle.spare is not None and handle.making is None):
        return  # not new, or never made (a plan's)
    if handle.making is not None:
        try:
            handle.making.result()
        except Exception:  # never made: nothing to remove
            return
    handle.stack.workspace.remove_stack(handle.name)


def up(handle: StackHandle, *, on_progress: OnProgress | None = None,
       policy_packs: tuple[Path, ...] = ()
       ) -> tuple[tuple[ResourceChange, ...], dict[str, Any], Findings]:
    """Apply a session, refreshing first so hand-made drift is repaired (unless the preview
    just before found none: reading every object again costs an engine plugin's start)."""
    made(handle)
    collector = _EventCollector(on_progress)
    try:
        refresh = not handle.new and handle.in_sync != [True]
        result = handle.stack.up(refresh=refresh, on_event=collector, color="never",
                                 suppress_progress=True, replace=handle.replace or None,
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
    stderr = str(getattr(exc, "stderr", None) or exc)
    kind: engine_errors.Kind = (
        "busy" if isinstance(exc, auto.ConcurrentUpdateError)
        else "missing" if isinstance(exc, auto.StackNotFoundError) else "failed")
    return engine_errors.describe(kind, name, stderr, diagnostics or [])
