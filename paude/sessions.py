"""The service layer: plan, apply and destroy sessions; returns results, never prints."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from paude import credentials, engine, proxylog
from paude.backends import get_backend
from paude.config import PAUDE_FILE, find_project_root, load_paude_file, load_session
from paude.errors import AbortedError, ConfigError, ConfigProblem, OwnershipError, PaudeError
from paude.home import paude_home
from paude.models import PaudeFile, Session, validate_session_name
from paude.proxylog import ProxyRequest
from paude.results import ApplyResult, DestroyResult, PlanResult
from paude.summary import summarize

Confirm = Callable[[PlanResult], bool]


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
    try:
        return validate_session_name(name)
    except ValueError as exc:
        raise ConfigError("command line", [ConfigProblem("NAME", str(exc))],
                          hint="session names are lowercase letters, digits and '-'") from None


def open_project(cwd: Path | None = None) -> Project:
    """Find and validate the repository's paude.yaml."""
    root = find_project_root((cwd or Path.cwd()).resolve())
    return Project(root, load_paude_file(root / PAUDE_FILE))


def session_of(project: Project, name: str) -> tuple[Session, list[str]]:
    """The effective definition of one session, plus warnings about its image sources."""
    session, warnings = load_session(project.root, name)
    if "all" in session.allowed_domains:
        warnings.append(f"session {name}: allowed_domains includes 'all': egress is "
                        "UNRESTRICTED and the agent can send your code anywhere")
    if session.image.features:
        warnings.append("image.features (devcontainer features) are recorded but not installed; "
                        "install what you need with image.packages or image.setup")
    return session, warnings


InstallProgress = Callable[[int, int | None], None]


def _context(project: Project, on_install: InstallProgress | None) -> engine.EngineContext:
    url = os.environ.get("PAUDE_STATE_BACKEND") or project.file.state.backend
    return engine.connect(paude_home(), url, on_install=on_install)


def _program(session: Session, owner: str) -> engine.Program:
    if session.backend == "podman":
        from paude.stacks.podman.program import make_program

        identity = credentials.gather(Path.home(), os.environ,
                                      paude_home() / "sessions" / session.name / "mounts")
        program: engine.Program = make_program(session, owner, identity)
        return program
    raise PaudeError(f"session {session.name}: backend {session.backend!r} is not available yet",
                     hint="use backend: podman")


def _check_owner(handle: engine.StackHandle, owner: str) -> dict[str, object]:
    outputs = engine.outputs(handle)
    recorded = outputs.get("owner")
    if recorded and recorded != owner:
        raise OwnershipError(
            f"session {handle.name} belongs to the repository at {recorded}, not {owner}",
            hint=f"run paude from {recorded}, or choose another session name here")
    return outputs


def plan(name: str, *, cwd: Path | None = None,
         on_progress: engine.OnProgress | None = None,
         on_install: InstallProgress | None = None) -> PlanResult:
    """Preview what applying the session would change, against the live objects."""
    name = check_name(name)
    project = open_project(cwd)
    session, warnings = session_of(project, name)
    ctx = _context(project, on_install)
    handle = _open(ctx, name, _program(session, project.owner))
    _check_owner(handle, project.owner)
    changes = engine.preview(handle, on_progress=on_progress)
    return PlanResult(session=name, backend=session.backend, changes=changes,
                      summary=summarize(changes, new_session=handle.new),
                      new_session=handle.new, warnings=tuple(warnings))


def _open(ctx: engine.EngineContext, name: str, program: engine.Program) -> engine.StackHandle:
    handle = engine.open_stack(ctx, name, program)
    assert handle is not None  # create=True always yields a stack
    return handle


def apply(name: str, *, cwd: Path | None = None, confirm: Confirm | None = None,
          on_progress: engine.OnProgress | None = None,
          on_install: InstallProgress | None = None,
          on_warning: Callable[[str], None] | None = None) -> ApplyResult:
    """Converge the session on its definition; with `confirm`, show the plan and ask first."""
    name = check_name(name)
    started = time.monotonic()
    project = open_project(cwd)
    session, warnings = session_of(project, name)
    if on_warning is not None:
        for warning in warnings:
            on_warning(warning)  # before anything changes, not after
    ctx = _context(project, on_install)
    program = _program(session, project.owner)
    handle = _open(ctx, name, program)
    outputs = _check_owner(handle, project.owner)
    if confirm is not None:
        changes = engine.preview(handle)
        planned = PlanResult(name, session.backend, changes,
                             summarize(changes, new_session=handle.new), handle.new,
                             tuple(warnings))
        if not planned.has_changes:
            return ApplyResult(name, changes, dict(outputs), time.monotonic() - started,
                               planned.summary)
        if not confirm(planned):
            raise AbortedError("apply cancelled; nothing was changed")
        if handle.new:  # the preview removed the stack it created to plan
            handle = _open(ctx, name, program)
    applied, final = engine.up(handle, on_progress=on_progress)
    _write_index(name, session.backend, project.owner)
    return ApplyResult(name, applied, final, time.monotonic() - started,
                       summarize(applied, new_session=False))


def destroy(name: str, *, cwd: Path | None = None, delete_data: bool = False,
            confirm: Callable[[str], bool] | None = None,
            on_progress: engine.OnProgress | None = None,
            on_install: InstallProgress | None = None) -> DestroyResult:
    """Remove a session's containers and networks; its workspace only with delete_data."""
    name = check_name(name)
    started = time.monotonic()
    project = open_project(cwd)
    ctx = _context(project, on_install)
    handle = engine.open_stack(ctx, name, create=False)
    outputs = _check_owner(handle, project.owner) if handle is not None else None
    backend_name = str((outputs or {}).get("backend") or _declared_backend(project, name))
    if confirm is not None:
        what = "containers, networks" + (" AND the workspace volume (data)" if delete_data else "")
        if not confirm(f"destroy session {name}: remove its {what}?"):
            raise AbortedError("destroy cancelled; nothing was changed")
    deleted: list[str] = []
    kept: list[str] = []
    if handle is not None:
        changes = engine.destroy(handle, on_progress=on_progress)
        deleted = [c.name for c in changes if c.op == "delete" and not c.retained]
        kept = [c.name for c in changes if c.retained]
    elif not delete_data:
        raise PaudeError(f"session {name} has no stack to destroy",
                         hint=f"`paude destroy {name} --delete-data` removes a kept workspace")
    removed = get_backend(backend_name).delete_data(session=name) if delete_data else []
    if removed:
        kept = [k for k in kept if k != "workspace"]
    _remove_index(name)
    return DestroyResult(name, tuple(deleted), tuple(kept), bool(removed),
                         time.monotonic() - started)


def blocked(name: str, *, cwd: Path | None = None) -> list[ProxyRequest]:
    """Requests the session's proxy refused, oldest first."""
    name = check_name(name)
    project = open_project(cwd)
    session, _ = session_of(project, name)
    return proxylog.blocked(get_backend(session.backend).proxy_log(session=name))


def _declared_backend(project: Project, name: str) -> str:
    spec = project.file.sessions.get(name)
    return (spec.backend if spec and spec.backend else project.file.defaults.backend) or "podman"


def _index_path(name: str) -> Path:
    return paude_home() / "sessions" / f"{name}.json"


def _write_index(name: str, backend: str, owner: str) -> None:
    # A local index lets `paude list` answer without running the engine per session.
    path = _index_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"name": name, "backend": backend, "owner": owner, "applied_at": time.time()}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _remove_index(name: str) -> None:
    _index_path(name).unlink(missing_ok=True)
