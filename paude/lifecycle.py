"""The seed's session commands: create, start, stop, connect, delete and rescue (list and
status: paude/overview.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from paude import index, ownership
from paude.backends import get_backend
from paude.errors import ConfigError, ConfigProblem, PaudeError, SessionNotFoundError
from paude.naming import check_session_name, validate_session_name

if TYPE_CHECKING:
    from paude import gitsync, sessions
    from paude.backends.base import Backend
    from paude.definition import CreateFlags, Definition
    from paude.engine import OnProgress
    from paude.gitseed import GitSeedResult
    from paude.models import Session
    from paude.rescue import RescueResult
    from paude.results import ApplyResult, DestroyResult, PlanResult
    from paude.verify import VerifyResult

# start, stop and connect import only what they use: the engine, the schema
# models and git are imported by the commands that need them (a quick command costs
# little more than the podman call it makes).


@dataclass(frozen=True)
class CreateResult:
    """What `paude create` did (or, with dry_run, would do)."""

    name: str
    definition: Definition
    plan: PlanResult | None = None
    applied: ApplyResult | None = None
    git: GitSeedResult | None = None  # create --git


def resolve_name(name: str | None, cwd: Path | None = None) -> str:
    """NAME, else the current repository's session, else the only one, else an error
    listing the candidates."""
    if name:
        return check_session_name(name)
    from paude.config import PAUDE_FILE, find_project_root, load_paude_file

    root = find_project_root((cwd or Path.cwd()).resolve())
    defined = sorted(load_paude_file(root / PAUDE_FILE).sessions) if (
        root / PAUDE_FILE).exists() else []
    if len(defined) == 1:
        return defined[0]
    entries = index.read_all()
    mine = [e.name for e in entries if e.owner == str(root)]
    if len(mine) == 1:
        return mine[0]
    everywhere = [e.name for e in entries]
    if not defined and len(everywhere) == 1:
        return everywhere[0]
    candidates = defined or everywhere
    raise PaudeError(
        "which session? " + (f"candidates: {', '.join(candidates)}" if candidates
                             else "no sessions exist yet"),
        hint="name one, e.g. `paude start NAME`" if candidates
        else "create one with `paude create NAME`")


def default_name(cwd: Path | None = None) -> str:
    """`paude create` without NAME: the repository folder's name, if it is a valid one."""
    from paude.config import find_project_root

    root = find_project_root((cwd or Path.cwd()).resolve())
    try:
        return validate_session_name(root.name)
    except ValueError as exc:
        raise ConfigError("command line", [ConfigProblem("NAME", str(exc))],
                          hint="give the session a name: `paude create NAME`") from None


def create(name: str | None, flags: CreateFlags, *, cwd: Path | None = None,
           dry_run: bool = False, rebuild: bool = False,
           confirm: sessions.Confirm | None = None, on_progress: OnProgress | None = None,
           on_warning: Callable[[str], None] | None = None,
           on_notice: Callable[[str], None] | None = None, git: bool = False) -> CreateResult:
    """Write sessions.NAME into paude.yaml from the flags, then apply it (with git: then
    push the repository in, see paude.gitseed).

    A create that fails leaves no half-made session: paude.yaml is restored and a new
    session's partial stack is destroyed."""
    from paude import gitsync, locks, sessions
    from paude.config import find_project_root
    from paude.definition import commit_definition, plan_definition, restore
    from paude.home import paude_home

    name = check_session_name(name) if name else default_name(cwd)
    root = find_project_root((cwd or Path.cwd()).resolve())
    # Before paude.yaml changes: another repository's session is refused, not redefined here.
    sessions.require_owner(root, name)
    if not dry_run:
        # Before paude.yaml is read: a second create of the session waits for this one
        # instead of writing (or undoing) the definition under it.
        locks.hold_session(paude_home(), name, on_notice=on_notice)
    definition = plan_definition(root, name, flags)
    project = sessions.Project(root, definition.file)
    if dry_run:
        return CreateResult(name, definition, plan=sessions.plan(name, project=project))
    session, _ = sessions.session_of(project, name)
    if git or _headless(definition, name):
        # The code is pushed in after the apply: a folder that cannot push is refused
        # before anything is written or made, not after.
        gitsync.current_branch(root)
    # What exists before this run: the undo of a failed create removes only what the run
    # itself made (a kept workspace from an earlier session holds the agent's work).
    before = _Existing(data=_backend_for(session).data_exists(session=name),
                       remote=gitsync.is_repo(root) and gitsync.has_remote(root, name))
    receipt = sessions.Receipt()
    definition = commit_definition(root, name, flags)
    project = sessions.Project(root, definition.file)
    try:
        applied = sessions.apply(name, project=project, confirm=confirm, rebuild=rebuild,
                                 on_progress=on_progress, on_warning=on_warning,
                                 receipt=receipt, on_notice=on_notice)
    except BaseException:
        if definition.new_session:
            _undo(root, name, session, before, receipt)  # needs paude.yaml as written
        restore(definition, name)
        raise
    if git:
        from paude import gitseed

        try:
            seeded = gitseed.seed(root, name, backend=get_backend(backend_of(name), name))
        except PaudeError as exc:
            # The session stands (the apply succeeded): say so, and how to finish the push.
            exc.message = f"session {name} was created, but pushing the repository in " \
                          f"failed: {exc.message}"
            exc.hint = f"{exc.hint + '; then ' if exc.hint else ''}run " \
                       f"`paude remote add --push {name}` and `git push paude-{name} --tags`"
            raise
        return CreateResult(name, definition, applied=applied, git=seeded)
    if _headless(definition, name):
        # A headless prompt works on the user's code, so it goes in now; the agent waits
        # for it (see the agent entrypoint).
        gitsync.remote_add(root, name, push=True, backend=get_backend(backend_of(name), name))
    return CreateResult(name, definition, applied=applied)


def _headless(definition: Definition, name: str) -> bool:
    from paude import sessions

    root = definition.path.parent
    session, _ = sessions.session_of(sessions.Project(root, definition.file), name)
    return any(a in ("-p", "--print") or a.startswith("--print=") for a in session.agent.args)


@dataclass(frozen=True)
class _Existing:
    """What a create found in place before it applied anything."""

    data: bool  # the workspace volume / claim
    remote: bool  # the paude-NAME git remote


def _backend_for(session: Session) -> Backend:
    """The backend where a (possibly never applied) session's objects would be."""
    from paude.backends.kubernetes import KubernetesBackend

    if session.backend == "openshift":
        return KubernetesBackend(context=session.openshift.context,
                                 namespace=session.openshift.namespace)
    return get_backend(session.backend)


def _undo(root: Path, name: str, session: Session, before: _Existing,
          receipt: sessions.Receipt) -> None:
    """Take back what a failed create made, and nothing else: a stack it did not create,
    a workspace or a remote that were there before all stay."""
    from paude import sessions

    # Nothing may be left half-made; if this fails too, the original error says why.
    if receipt.created_stack:
        with contextlib.suppress(Exception):
            sessions.destroy(name, cwd=root, delete_data=False, force=True,
                             keep_remote=before.remote)
    if not before.data:
        with contextlib.suppress(Exception):
            _backend_for(session).delete_data(session=name)


def start(name: str, *, cwd: Path | None = None) -> list[str]:
    """Start a session's containers; returns the argv that attaches to the agent."""
    backend = _owned(name, cwd)
    index.forget_delete_check(name)  # the agent may work again: a delete checks afresh
    backend.start(session=name)
    return backend.attach_argv(session=name)


def stop(name: str, *, cwd: Path | None = None) -> None:
    """Stop a session's containers, keeping everything (not a stack change)."""
    _owned(name, cwd).stop(session=name)


def attach_argv(name: str, *, cwd: Path | None = None) -> list[str]:
    """The argv that attaches to a running agent's tmux session."""
    backend = _owned(name, cwd)
    status = backend.status(session=name)
    if not status.agent_running:
        raise PaudeError(f"session {name} is not running",
                         hint=f"start it with `paude start {name}`")
    return backend.attach_argv(session=name)


def verify(name: str, *, cwd: Path | None = None) -> VerifyResult:
    """The sandbox's self-test from inside the session's agent (see paude/verify.py)."""
    from paude.verify import verify as run_verify

    return run_verify(_owned(name, cwd), name)


def delete(name: str, *, force: bool = False, cwd: Path | None = None,
           on_progress: OnProgress | None = None,
           on_notice: Callable[[str], None] | None = None) -> DestroyResult:
    """Destroy a session with its data (refusing while it holds work the host lacks)."""
    from paude import gitsync, sessions

    ownership.require(name, cwd=cwd, backend=get_backend(gitsync.session_backend(name), name))
    entry = index.read(name)
    where = Path(entry.owner) if entry and Path(entry.owner).is_dir() else cwd
    return sessions.destroy(name, cwd=where, delete_data=True, force=force,
                            on_progress=on_progress, on_notice=on_notice)


def rescue(name: str, *, cwd: Path | None = None) -> RescueResult:
    """Save all of a session's work under refs/paude/NAME/ in its repository; a stopped
    session is started for it and stopped again."""
    from paude.rescue import rescue as rescue_work

    backend = _owned(name, cwd)
    observed = backend.status(session=name)
    if not observed.exists:
        raise SessionNotFoundError(f"session {name} has no agent container to rescue from",
                                   hint=f"`paude apply {name}` recreates it around its kept "
                                        "workspace")
    started = not observed.agent_running
    if started:
        backend.start(session=name)
    try:
        return rescue_work(owner_repo(name, cwd), backend, name)
    finally:
        if started:
            with contextlib.suppress(PaudeError):
                backend.stop(session=name)


def remote_add(name: str, *, push: bool, cwd: Path | None = None) -> gitsync.RemoteAddResult:
    """`paude remote add`: the repository must be a git repository that owns the session,
    checked before anything in the session changes."""
    from paude import gitsync

    repo = (cwd or Path.cwd())
    gitsync.require_repo(repo)
    # Not necessarily applied here yet: the recorded backend, else podman's.
    backend = get_backend(gitsync.session_backend(name), name)
    ownership.require(name, cwd=repo, backend=backend)
    return gitsync.remote_add(repo, name, push=push, backend=backend)


def _owned(name: str, cwd: Path | None) -> Backend:
    """The applied session's backend, once the repository here is known to own it."""
    backend = get_backend(backend_of(name), name)
    ownership.require(name, cwd=cwd, backend=backend)
    return backend


def owner_repo(name: str, cwd: Path | None) -> Path:
    """The repository the session belongs to (where its work is fetched)."""
    from paude.project_root import find_project_root

    entry = index.read(name)
    if entry and Path(entry.owner).is_dir():
        return Path(entry.owner)
    return find_project_root((cwd or Path.cwd()).resolve())


def backend_of(name: str) -> str:
    """The backend the index records for an applied session (an error when none is)."""
    entry = index.read(name)
    if entry is None:
        raise SessionNotFoundError(f"session {name} is not applied on this machine",
                                   hint=f"create it with `paude create {name}` "
                                        f"(or `paude apply {name}`)")
    return entry.backend
