"""Service calls that look at a session and change nothing live: its manifests rendered
offline, and the requests its proxy and gateway logged."""

from __future__ import annotations

import tempfile
from pathlib import Path

from paude import engine, policy, proxylog, quota, sessions
from paude.backends import get_backend
from paude.errors import EngineError, PaudeError
from paude.home import paude_home
from paude.proxylog import ProxyRequest


def render(name: str, directory: Path, *, cwd: Path | None = None) -> list[Path]:
    """Render an OpenShift / Kubernetes session's manifests into `directory`; no cluster is
    contacted and no state is kept (a throwaway stack in a temporary backend)."""
    name = sessions.check_name(name)
    project = sessions.open_project(cwd)
    session, _ = sessions.session_of(project, name)
    if session.backend != "openshift":
        raise PaudeError(f"session {name} runs on {session.backend}; only OpenShift / "
                         "Kubernetes sessions render manifests",
                         hint=f"`paude plan {name}` shows a podman session's plan")
    directory = directory.resolve()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file of that name, a read-only place
        raise PaudeError(f"cannot write manifests to {directory}: {exc.strerror}",
                         hint="give --render a folder, new or existing") from None
    with tempfile.TemporaryDirectory(prefix="paude-render-") as tmp:
        # The engine is the one paude installed; only the state is thrown away.
        found = engine.locate(paude_home())
        ctx = engine.EngineContext(Path(tmp), f"file://{tmp}", found, "render")
        program = sessions.program_of(session, project.owner, render_dir=directory)
        handle = sessions.open_stack(ctx, name, program)
        try:
            engine.up(handle, policy_packs=(policy.pack_for(project.root),))
        except EngineError as exc:
            raise quota.engine_hint(exc, session) from exc
    return sorted(p for p in directory.rglob("*.yaml"))


def audit(name: str, *, cwd: Path | None = None) -> list[ProxyRequest]:
    """Every request through the session's proxy and gateway, allowed or refused, oldest
    first."""
    name = sessions.check_name(name)
    project = sessions.open_project(cwd)
    session, _ = sessions.session_of(project, name)
    sessions.require_owner(project.root, name)
    return proxylog.requests(get_backend(session.backend, name).proxy_log(session=name))
