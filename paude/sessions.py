"""The service layer: plan, apply and destroy sessions; returns results, never prints."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from paude import (
    cluster_drift,
    credentials,
    domains,
    engine,
    engine_early,
    forkserver,
    gateway,
    gitsync,
    index,
    machine,
    naming,
    ownership,
    policy,
    provenance,
    quota,
)
from paude.backends import get_backend
from paude.config import PAUDE_FILE, find_project_root, load_paude_file, session_from
from paude.errors import (
    AbortedError,
    EngineError,
    PaudeError,
    PolicyViolationError,
)
from paude.guard import guard_unfetched
from paude.home import paude_home
from paude.models import PaudeFile, Session
from paude.results import ApplyResult, DestroyResult, PlanResult
from paude.summary import summarize

Confirm = Callable[[PlanResult], bool]


@dataclass
class Receipt:
    """What an apply made, filled in as it goes: read by an undo after a failure, when
    there is no result to read."""

    created_stack: bool = False


@dataclass(frozen=True)
class Project:
    """The user's repository and its paude.yaml."""

    root: Path
    file: PaudeFile

    @property
    def owner(self) -> str:
        """The identity recorded in each stack: the repository's absolute path."""
        return str(self.root.resolve())


def check_name(name: str) -> str:
    """Validate a session name given on the command line."""
    return naming.check_session_name(name)


def open_project(cwd: Path | None = None) -> Project:
    """Find and validate the repository's paude.yaml."""
    root = find_project_root((cwd or Path.cwd()).resolve())
    return Project(root, load_paude_file(root / PAUDE_FILE))


def session_of(project: Project, name: str) -> tuple[Session, list[str]]:
    """The effective definition of one session, plus warnings about its image sources."""
    session, warnings = session_from(project.file, project.root, name)
    if "all" in session.allowed_domains:
        warnings.append(f"session {name}: allowed_domains includes 'all': egress is "
                        "UNRESTRICTED and the agent can send your code anywhere")
    return session, warnings


InstallProgress = Callable[[int, int | None], None]
Notice = Callable[[str], None]


def _context(project: Project, on_install: InstallProgress | None,
             on_notice: Notice | None = None) -> engine.EngineContext:
    url = machine.state_backend(project.file.state.backend, project.root / PAUDE_FILE)
    return engine.connect(paude_home(), url, on_install=on_install, on_notice=on_notice)


def program_of(session: Session, owner: str, *, rebuild: str = "",
             render_dir: Path | None = None) -> engine.Program:
    identity = credentials.gather(Path.home(), os.environ,
                                  paude_home() / "sessions" / session.name / "mounts",
                                  Path(owner))
    # A missing or unusable model credential is a plan-time error naming what to set.
    gateway.check(identity.gateway, needs_model=Path(session.agent.command[0]).name == "claude",
                  allow=domains.expand(session.allowed_domains, session.denied_requests))
    program: engine.Program
    if session.backend == "podman":
        from paude.stacks.podman.program import make_program

        program = make_program(session, owner, identity, rebuild=rebuild)
        return program
    from paude.stacks.openshift.program import make_program as cluster_program

    program = cluster_program(session, owner, identity,
                              render_dir=str(render_dir) if render_dir else None, rebuild=rebuild)
    return program


def require_owner(root: Path, name: str) -> None:
    """The cheap check, before the engine: the session's labels and index entry name this
    repository (or nothing). The stack's own `owner` output is checked once it is open."""
    ownership.require(name, cwd=root,
                      backend=get_backend(gitsync.session_backend(name), name))


def _check_owner(handle: engine.StackHandle, owner: str) -> dict[str, object]:
    outputs = engine.outputs(handle)
    recorded = outputs.get("owner")
    if recorded and recorded != owner:
        raise ownership.refusal(handle.name, str(recorded), owner)
    return outputs


def plan(name: str, *, cwd: Path | None = None, project: Project | None = None,
         on_progress: engine.OnProgress | None = None,
         on_install: InstallProgress | None = None,
         on_notice: Notice | None = None) -> PlanResult:
    """Preview what applying the session would change, against the live objects.

    `project` plans an in-memory definition (create --dry-run) instead of paude.yaml."""
    name = check_name(name)
    project = project or open_project(cwd)
    session, warnings = session_of(project, name)
    forkserver.start()  # warms up the engine's plugins while paude reads and checks
    require_owner(project.root, name)
    ctx = _context(project, on_install, on_notice)
    config = policy.load(project.root)
    pack = policy.launcher(config)
    handle = open_stack(ctx, name, program_of(session, project.owner), purpose="plan")
    observed = _observe(handle, session)
    _check_owner(handle, project.owner)
    review = provenance.review(project.root, session, config,
                               provenance.recorded(name, project.owner))
    return _preview(handle, session, pack, warnings, on_progress, review=review,
                    observed=observed)


def _observe(handle: engine.StackHandle, session: Session) -> Future[bool] | None:
    """Start paude's own refresh of a podman session's objects (prerefresh.py), read in
    threads while the engine starts its preview; None where the engine must refresh."""
    if handle.new or session.backend != "podman" or not handle.exported:
        return None
    from paude.stacks.podman import prerefresh

    deployment = dict(handle.exported)
    if not prerefresh.judgeable(deployment):
        return None
    started: Future[bool] = prerefresh.start(deployment)
    return started


def _preview(handle: engine.StackHandle, session: Session, pack: Path, warnings: list[str],
             on_progress: engine.OnProgress | None = None, *, keep_new: bool = False,
             review: provenance.Review | None = None,
             observed: Future[bool] | None = None) -> PlanResult:
    """Preview under the policy pack, and say where the definition's changes came from. A
    mandatory violation raises, carrying the plan so far (plan --all reports it with the
    other sessions)."""
    definition = review.changes if review is not None else ()
    # The definition-changed-by-session rule is judged here, not in the pack (which sees
    # only resources); its finding joins the engine's.
    host = (review.finding,) if review is not None and review.finding is not None else ()
    drift = () if handle.new else cluster_drift.find(session)
    handle.replace[:] = [d.urn(handle.name, engine.PROJECT) for d in drift]
    drifted = tuple(d.summary() for d in drift)
    try:
        changes, findings = engine.preview(handle, on_progress=on_progress, policy_packs=(pack,),
                                           keep_new=keep_new, observed=observed)
    except PolicyViolationError as exc:
        changes = tuple(exc.partial or ())
        # Judged on a workload as it is live, changed by hand, which apply replaces.
        findings = cluster_drift.excuse(exc.findings, drift)
        if any(f.blocking for f in findings):
            plan = PlanResult(handle.name, session.backend, changes,
                              (*drifted, *summarize(changes, new_session=handle.new,
                                                    definition=definition)),
                              handle.new, tuple(warnings), (*exc.findings, *host), definition)
            if not host:
                exc.partial = plan
                raise
            raise PolicyViolationError(handle.name, plan.policy, partial=plan) from exc
    except EngineError as exc:
        raise quota.engine_hint(exc, session) from exc
    result = PlanResult(session=handle.name, backend=session.backend, changes=changes,
                        summary=(*drifted, *summarize(changes, new_session=handle.new,
                                                      definition=definition)),
                        new_session=handle.new, warnings=tuple(warnings),
                        policy=(*findings, *host), definition_changes=definition)
    if any(f.blocking for f in host):
        if keep_new:
            engine.discard(handle)
        raise PolicyViolationError(handle.name, result.policy, partial=result)
    return result


def plan_all(*, cwd: Path | None = None, on_install: InstallProgress | None = None,
             on_notice: Notice | None = None) -> list[PlanResult]:
    """Plan every session defined in paude.yaml, by name."""
    project = open_project(cwd)
    if not project.file.sessions:
        raise PaudeError("paude.yaml defines no sessions",
                         hint="add one with `paude create NAME`")
    results = []
    for name in sorted(project.file.sessions):
        try:
            results.append(plan(name, project=project, on_install=on_install,
                                on_notice=on_notice))
        except PolicyViolationError as exc:
            # One session breaking a rule must not hide the others' plans from review.
            if not isinstance(exc.partial, PlanResult):
                raise
            results.append(exc.partial)
    return results


def open_stack(ctx: engine.EngineContext, name: str, program: engine.Program, *,
          purpose: engine.Purpose = "apply") -> engine.StackHandle:
    handle = engine.open_stack(ctx, name, program, purpose=purpose)
    assert handle is not None  # create=True always yields a stack
    return handle


def apply(name: str, *, cwd: Path | None = None, project: Project | None = None,
          confirm: Confirm | None = None,
          on_progress: engine.OnProgress | None = None,
          on_install: InstallProgress | None = None,
          on_warning: Callable[[str], None] | None = None,
          rebuild: bool = False, receipt: Receipt | None = None,
          on_notice: Notice | None = None) -> ApplyResult:
    """Converge the session on its definition; with `confirm`, show the plan and ask first.

    The workspace volume is retained on delete and re-adopted by name, so no apply can
    delete the agent's work; data only goes with destroy --delete-data or delete."""
    name = check_name(name)
    started = time.monotonic()
    project = project or open_project(cwd)
    session, warnings = session_of(project, name)
    forkserver.start()  # warms up the engine's plugins while paude reads and checks
    require_owner(project.root, name)
    if on_warning is not None:
        for warning in warnings:
            on_warning(warning)  # before anything changes, not after
    ctx = _context(project, on_install, on_notice)
    config = policy.load(project.root)
    pack = policy.launcher(config)
    program = program_of(session, project.owner, rebuild=f"{time.time():.0f}" if rebuild else "")
    handle = open_stack(ctx, name, program)
    if receipt is not None:
        receipt.created_stack = handle.new
    observed = _observe(handle, session)
    outputs = _check_owner(handle, project.owner)
    review = provenance.review(project.root, session, config,
                               provenance.recorded(name, project.owner))
    # The update starts now and waits at its gate for the verdict below (engine_early.py);
    # it is refused on the way out unless it was let go.
    with _early(handle, observed, review, on_progress, asks=confirm is not None) as early:
        # Always plan first, under the policies: `up` applies resource by resource, so a
        # violation first seen there would leave the session half-built.
        planned = _preview(handle, session, pack, warnings, keep_new=True, review=review,
                           observed=observed)
        # What this apply used becomes the baseline the next plan compares the definition with.
        baseline = review.snapshot
        if not planned.has_changes:
            engine.discard(handle)
            index.write(name, backend=session.backend, owner=project.owner, outputs=outputs,
                        definition=baseline.inputs, head=baseline.head)
            _configure_remote(project.root, name)  # an apply killed after its update left none
            return ApplyResult(name, planned.changes, dict(outputs), time.monotonic() - started,
                               planned.summary, planned.policy)
        if confirm is not None and not _confirmed(confirm, planned, handle):
            raise AbortedError("apply cancelled; nothing was changed")
        if session.backend == "openshift":
            quota.check(session)  # a namespace's quota or limit range: refused before any change
        # The update runs the program the preview just checked, with the same inputs: the
        # policy verdict stands, and running the pack again would only cost time.
        try:
            if early is not None:
                applied, final = early.go()
            else:
                applied, final, _ = engine.up(handle, on_progress=on_progress)
        except EngineError as exc:
            raise quota.engine_hint(exc, session) from exc
    index.write(name, backend=session.backend, owner=project.owner, outputs=final,
                definition=baseline.inputs, head=baseline.head)
    _configure_remote(project.root, name)
    return ApplyResult(name, applied, final, time.monotonic() - started,
                       summarize(applied, new_session=False), planned.policy)


def _early(handle: engine.StackHandle, observed: Future[bool] | None,
           review: provenance.Review, on_progress: engine.OnProgress | None, *,
           asks: bool) -> contextlib.AbstractContextManager[engine_early.Early | None]:
    """The update, started beside the preview: a new session's, and, applied without a
    question, a session's whose definition changed and whose objects paude reads itself.

    Not for an apply that most likely changes nothing (its engine would only compete with
    the preview), nor where the engine must refresh (paude does not read the objects
    itself), nor for an existing session's apply that asks first: an update refused at
    its gate still writes the stack's state (the same resources, its secrets encrypted
    anew) and a failed update to the history, which a "no" must not do. A refused new
    session's stack is removed anyway."""
    if handle.new or (observed is not None and review.changes and not asks):
        return engine_early.start(handle, on_progress=on_progress)
    return contextlib.nullcontext()


def _confirmed(confirm: Confirm, planned: PlanResult, handle: engine.StackHandle) -> bool:
    """Ask; a new session's stack goes again unless the answer is yes (Ctrl+C included)."""
    answer = False
    try:
        answer = confirm(planned)
    finally:
        if not answer:
            engine.discard(handle)
    return answer


def destroy(name: str, *, cwd: Path | None = None, delete_data: bool = False,
            force: bool = False, confirm: Callable[[str], bool] | None = None,
            on_progress: engine.OnProgress | None = None,
            on_install: InstallProgress | None = None,
            keep_remote: bool = False, on_notice: Notice | None = None) -> DestroyResult:
    """Remove a session's containers and networks; its workspace only with delete_data.

    `keep_remote` leaves the paude-NAME git remote (an undo that did not add it)."""
    name = check_name(name)
    started = time.monotonic()
    project = open_project(cwd)
    require_owner(project.root, name)
    ctx = _context(project, on_install, on_notice)
    handle = engine.open_stack(ctx, name, create=False, purpose="destroy")
    outputs = _check_owner(handle, project.owner) if handle is not None else None
    backend_name = str((outputs or {}).get("backend") or _declared_backend(project, name))
    if delete_data and not force and not _interrupted_delete(backend_name, name):
        guard_unfetched(project.root, backend_name, name, container_expected=handle is not None)
    if confirm is not None:
        what = "containers, networks" + (" AND the workspace volume (data)" if delete_data else "")
        if not confirm(f"destroy session {name}: remove its {what}?"):
            raise AbortedError("destroy cancelled; nothing was changed")
    if delete_data:
        index.mark_delete_checked(name)
    deleted: list[str] = []
    kept: list[str] = []
    if handle is not None:
        changes, protected = engine.destroy(handle, on_progress=on_progress)
        deleted = [c.name for c in changes if c.op == "delete" and not c.retained]
        kept = [c.name for c in changes if c.retained] + list(protected)
        # A killed apply can leave an object it made but never recorded; it goes too.
        get_backend(backend_name, name).remove_leftovers(session=name, owner=project.owner)
    elif not delete_data and index.read(name) is None:
        # (A session still in the index lost its stack to a destroy that was killed: this
        # run finishes it.)
        raise PaudeError(f"session {name} has no stack to destroy",
                         hint=f"`paude destroy {name} --delete-data` removes a kept workspace")
    removed = get_backend(backend_name, name).delete_data(session=name) if delete_data else []
    if removed:
        kept = [k for k in kept if k != "workspace"]
    if gitsync.is_repo(project.root) and not keep_remote:
        gitsync.remove_remote(project.root, name)
    index.remove(name)  # last: while the entry exists, running destroy again finishes the job
    return DestroyResult(name, tuple(deleted), tuple(kept), bool(removed),
                         time.monotonic() - started)


def _interrupted_delete(backend_name: str, name: str) -> bool:
    """A delete killed after its check took the agent down: nothing has run the agent since
    (a start clears the record), so there is nothing new to check, and no agent to ask."""
    return index.delete_checked(name) and not get_backend(backend_name, name).status(
        session=name).agent_running


def _configure_remote(repo: Path, name: str) -> None:
    # The remote is a stack output; apply records it in the owning repository.
    if gitsync.is_repo(repo):
        gitsync.add_remote(repo, name)


def _declared_backend(project: Project, name: str) -> str:
    spec = project.file.sessions.get(name)
    return (spec.backend if spec and spec.backend else project.file.defaults.backend) or "podman"
