"""Nothing the host lacks is deleted: the check every destructive command runs first."""

from __future__ import annotations

from pathlib import Path

from paude.backends import get_backend
from paude.errors import UnfetchedWorkError
from paude.work import describe as describe_work
from paude.work import refusal_hint
from paude.work import report as report_work


def guard_unfetched(repo: Path, backend_name: str, name: str, *,
                    container_expected: bool) -> None:
    """Refuse to lose work the host lacks: commits on any ref, uncommitted, untracked or
    non-repository files (callers skip this with --force)."""
    backend = get_backend(backend_name, name)
    status = backend.status(session=name)
    if not status.exists:
        # A workspace kept by an earlier destroy has no container to look into: that is
        # not the same as having nothing in it.
        if container_expected or backend.data_exists(session=name):
            raise UnfetchedWorkError(
                f"cannot check session {name} for unfetched work: its agent container is "
                "gone", hint=f"run `paude apply {name}` (it re-attaches the workspace) and "
                f"`paude rescue {name}` first, or pass --force to delete the workspace anyway")
        return
    started = not status.agent_running
    if started:
        backend.start(session=name)  # the check reads the workspace inside the agent
    try:
        # Outside a git repository the host has nothing, so every commit counts as unfetched.
        found = report_work(repo, backend, name)
        if found.blocking:
            raise UnfetchedWorkError(describe_work(found, name), hint=refusal_hint(name))
    finally:
        if started:
            backend.stop(session=name)  # a stopped session stays stopped, refused or not
