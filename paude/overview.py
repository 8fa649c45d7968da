"""`paude list` and `paude status`: what applied sessions are doing, read where they run
(one podman call, one cluster read per namespace, one exec for the work), never an engine
run. Returns results, never prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from paude import index, lifecycle, ownership, placement
from paude.backends import get_backend
from paude.errors import PaudeError

if TYPE_CHECKING:
    from paude.backends.base import Backend, RuntimeStatus
    from paude.work import WorkReport
    from paude.workspace_setup import SetupStatus


@dataclass(frozen=True)
class SessionRow:
    """One line of `paude list`."""

    name: str
    backend: str
    status: str
    workspace: str

    def to_json(self) -> dict[str, str]:
        """The JSON form of `paude list --json`."""
        return {"name": self.name, "backend": self.backend, "status": self.status,
                "workspace": self.workspace}


@dataclass(frozen=True)
class SessionStatus:
    """`paude status NAME`."""

    name: str
    backend: str
    state: str
    agent_alive: bool
    proxy_alive: bool
    unfetched: int | None  # commits on branches; None: could not tell (not running)
    branches: dict[str, int] = field(default_factory=dict)
    report: WorkReport | None = None  # all the work the host lacks; None: could not tell
    work_error: str | None = None  # why the work could not be read, when it could not
    memory_kills: int | None = None  # processes killed at the agent's memory limit
    oom_killed: bool = False  # the agent's container ended at its memory limit
    setup: SetupStatus | None = None  # the session's setup; None: could not tell

    def to_json(self) -> dict[str, object]:
        """The JSON form of `paude status --json` (unfetched_* kept from the first version)."""
        return {"name": self.name, "backend": self.backend, "state": self.state,
                "agent_alive": self.agent_alive, "proxy_alive": self.proxy_alive,
                "unfetched_commits": self.unfetched, "unfetched_by_branch": self.branches,
                "work": self.report.to_json() if self.report else None,
                "work_error": self.work_error,
                "memory": {"processes_killed": self.memory_kills,
                           "container_killed": self.oom_killed},
                "setup": self.setup.to_json() if self.setup else None}


# `paude list`'s words for a backend's states.
_LISTED = {"absent": "missing", "partial": "degraded"}


def list_sessions(backend: str | None = None,
                  only: placement.Placement | None = None) -> list[SessionRow]:
    """Every applied session (on one backend, in one context/namespace, when given) with
    its status, read where it runs: one podman call, one cluster read per namespace, no
    engine run. `unknown`: the backend could not be read."""
    entries = [e for e in index.read_all() if backend is None or e.backend == backend]
    if only is not None:
        entries = [e for e in entries if placement.matches(only, e.backend, e.context,
                                                           e.namespace)]
    places: dict[tuple[str, str | None, str | None], list[str]] = {}
    for entry in entries:
        where = (entry.context, entry.namespace) if entry.backend == "openshift" else (None, None)
        places.setdefault((entry.backend, *where), []).append(entry.name)
    states: dict[str, RuntimeStatus] = {}
    for (backend, context, namespace), names in places.items():
        observed = _place_backend(backend, context, namespace).observe(sessions=names)
        states.update(observed or {})
    return [SessionRow(e.name, e.backend, _LISTED.get(states[e.name].state, states[e.name].state)
                       if e.name in states else "unknown", e.owner) for e in entries]


def _place_backend(backend: str, context: str | None, namespace: str | None) -> Backend:
    from paude.backends.kubernetes import KubernetesBackend

    if backend == "openshift":
        return KubernetesBackend(context=context, namespace=namespace)
    return get_backend(backend)


def status(name: str, *, cwd: Path | None = None) -> SessionStatus:
    """Running or stopped, agent and proxy alive, and the work the host lacks (read only
    while the agent runs: status starts nothing)."""
    from concurrent.futures import ThreadPoolExecutor

    from paude import work

    backend_name = lifecycle.backend_of(name)
    backend = get_backend(backend_name, name)
    repo = lifecycle.owner_repo(name, cwd)
    with ThreadPoolExecutor(1) as pool:  # the host's own commits, read beside podman's answer
        tips = pool.submit(work.host_tips, repo)
        observed = backend.status(session=name)
    # Checked before anything runs in the session; status's own read carries the label.
    ownership.require(name, cwd=cwd, backend=backend, live=observed.owner)
    found: WorkReport | None = None
    error = setup = None
    if observed.agent_running:
        from paude import workspace_setup

        answer = None
        try:
            found, answer = work.report_with_setup(repo, backend, name, known=tips.result())
        except PaudeError as exc:
            error = exc.message
        # One exec answers both; only when the report failed does the setup get its own.
        setup = (workspace_setup.from_answer(*answer, name) if answer
                 else workspace_setup.state(backend, name))
    branches = {r.name: r.commits for r in found.of_kind("branch")} if found else {}
    return SessionStatus(name, backend_name, observed.state, observed.agent_alive,
                         observed.proxy_running, found.commits if found else None, branches,
                         found, error, observed.memory_kills, observed.oom_killed, setup)
