"""Which repository a session belongs to, checked before any command touches the session.

A session is made by `paude apply` in one repository; its stack output `owner`, the
`paude.repository` label on its podman objects and the local index all record that
repository's path. Session names are shared by every repository on the machine, so a
command run in repository B with A's session name would otherwise act on A's session:
push B's branch into it (under A's allowlist), attach the user to A's agent, delete A's
work. Every session command asks here first, before any engine run or exec."""

from __future__ import annotations

from pathlib import Path

from paude import index
from paude.backends.base import Backend
from paude.errors import OwnershipError
from paude.project_root import PAUDE_FILE, find_project_root


def current_repository(cwd: Path | None = None) -> Path | None:
    """The repository the command runs in (the folder holding paude.yaml, else the git top
    level), or None outside any repository."""
    root = find_project_root((cwd or Path.cwd()).resolve())
    if (root / PAUDE_FILE).is_file() or (root / ".git").exists():
        return root.resolve()
    return None


def refusal(session: str, owner: str, here: str) -> OwnershipError:
    """The error for a session that belongs to another repository."""
    return OwnershipError(
        f"session {session} belongs to the repository at {owner}, not {here}",
        hint=f"run paude from {owner}, or choose another session name here")


def recorded_owners(session: str, backend: Backend | None = None, *,
                    live: str | None = None) -> list[str]:
    """Every repository recorded as the session's owner: the live objects' label (when the
    backend can read one), then the index. Normally one; two disagreeing both count."""
    found: list[str] = []
    if live is None and backend is not None:
        live = backend.owner(session=session)
    if live:
        found.append(live)
    entry = index.read(session)
    if entry is not None and entry.owner and entry.owner not in found:
        found.append(entry.owner)
    return found


def require(session: str, *, cwd: Path | None = None, backend: Backend | None = None,
            live: str | None = None) -> None:
    """Refuse (OwnershipError) when the command runs inside a repository that does not own
    the session. Outside any repository there is no other repository to confuse the session
    with, and the command acts on the session by name. `live`: the owner label a read the
    caller already made found (the backend is then not asked again)."""
    here = current_repository(cwd)
    if here is None:
        return
    for owner in recorded_owners(session, backend, live=live):
        if owner != str(here):
            raise refusal(session, owner, str(here))
